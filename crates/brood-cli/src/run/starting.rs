//! `--ready`: the wait for the command to be ready, on a thread of its own,
//! while this thread keeps reading signals. A signal that ends brood run
//! (SIGTERM, SIGINT, SIGQUIT, a hang-up) reaches the starting command's tree
//! at once, as it would once it runs; any other is kept and handled once the
//! command is ready.

use super::RunError;
use super::signals::{self, Action};
use super::supervise::{Started, Supervisor};
use crate::sys::poll;
use crate::sys::signalfd::Received;
use brood::{Error, NotReady, Ready};
use std::os::fd::AsFd;
use std::time::Duration;

impl Supervisor<'_> {
    /// Starts `cmd` and waits until it shows `sign` (at most `timeout`).
    pub fn start_ready(
        &mut self,
        mut cmd: brood::Command,
        sign: &Ready,
        timeout: Duration,
    ) -> Result<Started, RunError> {
        let (done_r, done_w) = std::io::pipe().map_err(|source| RunError::Os {
            what: "pipe",
            source,
        })?;
        let sign = sign.clone();
        let mut held = Vec::new();
        let outcome = std::thread::scope(|scope| {
            let waiter = scope.spawn(move || {
                let started = cmd.spawn_ready(sign, timeout);
                drop(done_w);
                started
            });
            loop {
                let polled = poll::readable(&[self.signals.as_fd(), done_r.as_fd()], None);
                if waiter.is_finished() || polled.is_err() {
                    return waiter.join();
                }
                while let Ok(Some(got)) = self.signals.read() {
                    self.while_starting(got, &mut held);
                }
            }
        });
        let started = outcome.map_err(|_| RunError::Os {
            what: "waiting for the command to be ready",
            source: std::io::Error::other("the waiting thread panicked"),
        })?;
        match started {
            Ok(popen) => Ok(Started::Ready(popen, held)),
            Err(Error::NotReady {
                pid,
                why: NotReady::Exited(status),
                ..
            }) if self.shutting_down => Ok(Started::Stopped(status, pid)),
            Err(e) => Err(RunError::from_spawn(e)),
        }
    }

    /// A signal while the command starts: one that ends brood run goes to
    /// every process we answer for (the starting command's tree); the rest
    /// wait until it is ready.
    fn while_starting(&mut self, got: Received, held: &mut Vec<Received>) {
        if signals::is_own(&got) {
            return;
        }
        let ends_us = matches!(got.signo, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT)
            || (got.signo == libc::SIGHUP && got.code == libc::SI_KERNEL);
        let send = match signals::action(got.signo, &self.opts.rewrite) {
            Action::Forward { send, .. } => Some(send),
            _ => None,
        };
        match send {
            // Our group is not the command's: only a scope that names its
            // processes (PID 1, or /proc) can reach it before we know it.
            Some(send) if ends_us && (self.scope.pid1 || self.scope.procfs) => {
                self.shutting_down = true;
                self.hung_up |= got.signo == libc::SIGHUP;
                let n = self.scope.signal_all(send.as_raw(), 0);
                self.log.decision(format_args!(
                    "got {} while the command was starting; {send} to {n} process(es)",
                    signals::name(got.signo)
                ));
            }
            _ => held.push(got),
        }
    }
}
