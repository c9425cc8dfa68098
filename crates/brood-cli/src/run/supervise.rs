//! One run of the command: start it, pass every signal on, follow its stops,
//! reap orphans, until it exits (or the timeout passes).

use super::options::{ForwardTo, RunOptions};
use super::scope::{Ending, Scope};
use super::signals::{self, Action};
use super::terminal::Terminal;
use super::verbose::Log;
use super::{RunError, reap};
use crate::procfs;
use crate::sys::inherited::Inherited;
use crate::sys::signalfd::{Received, SignalFd};
use crate::sys::wait::{self, JobChange};
use crate::sys::{kill, poll};
use brood::{Child, ExitStatus, OnParentDeath, Popen, Signal, Tree};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How often `--kill-orphans` looks for adopted processes (the kernel tells
/// nobody when a process is re-parented).
const ORPHAN_CHECK: Duration = Duration::from_millis(200);

/// How one run ended.
#[derive(Copy, Clone, Debug)]
pub enum Ended {
    /// The command exited with this status.
    Exited(ExitStatus),
    /// `--timeout` passed; everything was ended.
    TimedOut,
}

/// The state that lasts across runs (restarts).
pub struct Supervisor<'a> {
    /// The options.
    pub opts: &'a RunOptions,
    /// Every signal we take, as data.
    pub signals: SignalFd,
    /// `-v`.
    pub log: Log,
    /// The terminal at start.
    pub terminal: Terminal,
    /// Whom we answer for.
    pub scope: Scope,
    /// The signal state the command must start with.
    pub inherited: Inherited,
    /// `--timeout`'s deadline, for the whole run.
    pub deadline: Option<Instant>,
    /// Our parent at start (for `--die-with-parent`).
    pub parent: u32,
    /// A shutdown was asked for (SIGTERM/SIGINT/SIGQUIT, or our parent died):
    /// no restart after the command exits.
    pub shutting_down: bool,
    /// When to SIGKILL everything after our parent died.
    pub kill_at: Option<Instant>,
    /// The terminal hung up on us (the kernel's SIGHUP): we exit 129, as a
    /// process killed by the hang-up would, even if the command saw end of
    /// file and exited 0 before the forwarded SIGHUP reached it.
    pub hung_up: bool,
    /// Our own `NOTIFY_SOCKET` (systemd's `Type=notify`), until READY=1 was
    /// passed on to it: with `--ready`, once the command is first ready.
    pub notify_socket: Option<std::ffi::OsString>,
}

/// How a start ended (with `--ready`, see `starting.rs`).
pub enum Started {
    /// Running (and ready); with the signals that came while it got ready,
    /// to handle now.
    Ready(Popen, Vec<Received>),
    /// A signal that ends brood run came first and ended the command (pid).
    Stopped(ExitStatus, u32),
}

/// Per-run state.
struct Running {
    child: Popen,
    pid: u32,
    /// We forwarded a job-control stop and stopped ourselves: the command's
    /// resulting stop is not a reason to stop again.
    expect_stop: bool,
    /// `--kill-orphans`: adopted processes sent SIGTERM, by (pid, start time),
    /// with when to SIGKILL them.
    orphans: BTreeMap<(u32, u64), Instant>,
}

impl Supervisor<'_> {
    /// Starts the command and supervises it until it exits; returns how, and
    /// the command's process group.
    pub fn run_once(&mut self) -> Result<(Ended, u32), RunError> {
        let (child, held) = match self.spawn()? {
            Started::Ready(child, held) => (child, held),
            Started::Stopped(status, pid) => {
                self.log.decision(format_args!(
                    "command (pid {pid}) {status} before it was ready"
                ));
                return Ok((Ended::Exited(status), pid));
            }
        };
        let pid = child.pid();
        self.log.decision(format_args!(
            "spawned {} (pid {pid}, leading group {pid}){}",
            child.program(),
            if self.terminal.hand_over() {
                ", in the terminal's foreground"
            } else {
                ""
            }
        ));
        let mut run = Running {
            child,
            pid,
            expect_stop: false,
            orphans: BTreeMap::new(),
        };
        // What came while it got ready, in order.
        for got in held {
            self.on_signal(got, &mut run, false);
        }
        loop {
            if let Some(status) = run.child.poll()? {
                self.terminal.take_back(pid);
                self.log
                    .decision(format_args!("command (pid {pid}) {status}"));
                return Ok((Ended::Exited(status), pid));
            }
            let now = Instant::now();
            if self.deadline.is_some_and(|d| now >= d) {
                return self.time_out(&run);
            }
            if self.kill_at.is_some_and(|d| now >= d) {
                self.kill_at = None;
                let n = self.scope.signal_all(libc::SIGKILL, pid);
                let _ = run.child.kill();
                self.log.decision(format_args!(
                    "our parent died {:?} ago: SIGKILL to the command's group and {n} process(es)",
                    self.opts.grace
                ));
            }
            let wake = [
                self.deadline,
                self.kill_at,
                self.opts.kill_orphans.then(|| now + ORPHAN_CHECK),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.saturating_duration_since(now));
            let pidfd = run.child.child().pidfd().ok_or(RunError::Os {
                what: "watching the command",
                source: std::io::Error::other("the command has no pidfd"),
            })?;
            poll::readable(&[self.signals.as_fd(), pidfd], wake).map_err(|source| {
                RunError::Os {
                    what: "poll",
                    source,
                }
            })?;
            self.drain_signals(&mut run)?;
            if self.opts.kill_orphans {
                self.end_adopted(&mut run);
            }
        }
    }

    fn spawn(&mut self) -> Result<Started, RunError> {
        let opts = self.opts;
        let (program, args) = opts.command.split_first().ok_or(RunError::NoCommand)?;
        let bits = |set: u64| (1..=64).filter(move |n| set >> (n - 1) & 1 == 1);
        let death = opts
            .on_parent_death
            .map_or(OnParentDeath::Survive, OnParentDeath::Signal);
        let mut cmd = brood::Command::new(program);
        cmd.args(args)
            .tree(Tree::Group)
            .on_parent_death(death)
            .foreground(self.terminal.hand_over())
            .start_signals(
                bits(self.inherited.ignored).filter_map(Signal::from_raw),
                bits(self.inherited.blocked).filter_map(Signal::from_raw),
            );
        if let Some(dir) = &opts.chdir {
            cmd.current_dir(dir);
        }
        let Some(sign) = &opts.ready else {
            let child = cmd.spawn().map_err(RunError::from_spawn)?;
            return Ok(Started::Ready(child, Vec::new()));
        };
        // brood run says when the command is ready, not the command: it
        // does not get our socket (`Ready::Notify` gives it one of brood's).
        cmd.env_remove("NOTIFY_SOCKET");
        let left = self.deadline.map_or(opts.ready_timeout, |d| {
            opts.ready_timeout
                .min(d.saturating_duration_since(Instant::now()))
        });
        let (child, held) = match self.start_ready(cmd, sign, left)? {
            Started::Ready(child, held) => (child, held),
            stopped => return Ok(stopped),
        };
        self.log
            .decision(format_args!("command (pid {}) is ready", child.pid()));
        if let Some(socket) = self.notify_socket.take() {
            match crate::sys::notify::send(&socket, b"READY=1") {
                Ok(()) => self
                    .log
                    .decision(format_args!("READY=1 sent to NOTIFY_SOCKET {socket:?}")),
                Err(e) => self.log.decision(format_args!(
                    "READY=1 could not be sent to NOTIFY_SOCKET {socket:?}: {e}"
                )),
            }
        }
        Ok(Started::Ready(child, held))
    }

    /// Reads every pending signal and acts on each; a SIGCONT first, so that a
    /// stop reported in the same batch is seen as already over.
    fn drain_signals(&mut self, run: &mut Running) -> Result<(), RunError> {
        let mut batch = Vec::new();
        while let Some(got) = self.signals.read().map_err(|source| RunError::Os {
            what: "reading signals",
            source,
        })? {
            batch.push(got);
        }
        let resumed = batch.iter().any(|g| g.signo == libc::SIGCONT);
        batch.sort_by_key(|g| g.signo != libc::SIGCONT);
        for got in batch {
            self.on_signal(got, run, resumed);
        }
        Ok(())
    }

    fn on_signal(&mut self, got: Received, run: &mut Running, resumed: bool) {
        // Our own doing (a write to a closed pipe raises SIGPIPE on us): not
        // the command's business.
        if signals::is_own(&got) {
            return;
        }
        let from = if got.pid == 0 {
            "the kernel".to_string()
        } else {
            format!("pid {}", got.pid)
        };
        let name = signals::name(got.signo);
        match signals::action(got.signo, &self.opts.rewrite) {
            Action::Child => self.on_child_change(run, resumed),
            Action::Drop => self
                .log
                .decision(format_args!("got {name} from {from}; dropped (--rewrite)")),
            Action::Forward { send, then_stop } => {
                if got.signo == libc::SIGCONT && self.terminal.give_again(run.pid) {
                    self.log.decision(format_args!(
                        "resumed: the terminal's foreground back to group {}",
                        run.pid
                    ));
                }
                if matches!(got.signo, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) {
                    self.shutting_down = true;
                }
                if got.signo == libc::SIGHUP && got.code == libc::SI_KERNEL {
                    self.hung_up = true;
                    self.shutting_down = true;
                }
                if Some(got.signo) == self.opts.die_with_parent.map(Signal::as_raw)
                    && self.parent_died(&got)
                {
                    self.on_parent_died();
                }
                let to = self.forward(run.child.child(), send);
                self.log.decision(format_args!(
                    "got {name} from {from}; forwarded {send} to {to}"
                ));
                if then_stop {
                    run.expect_stop = true;
                    self.terminal.take_back(run.pid);
                    self.log
                        .decision(format_args!("stopping myself after {name} (job control)"));
                    kill::stop_self();
                }
            }
        }
    }

    fn forward(&self, child: &Child, sig: Signal) -> String {
        let pid = child.pid();
        match self.opts.forward_to {
            ForwardTo::Group => {
                let _ = child.signal_tree(sig);
                format!("group {pid}")
            }
            ForwardTo::Child => {
                let _ = child.send_signal(sig);
                format!("pid {pid}")
            }
        }
    }

    /// SIGCHLD: the command may have stopped or continued; orphans may wait.
    fn on_child_change(&mut self, run: &mut Running, resumed: bool) {
        if let Some(fd) = run.child.child().pidfd() {
            match wait::job_change(fd) {
                Ok(Some(JobChange::Stopped(sig))) => {
                    self.log.decision(format_args!(
                        "command (pid {}) stopped by {}",
                        run.pid,
                        signals::name(sig)
                    ));
                    // Stopped from the terminal (Ctrl-Z): stop too, so the
                    // shell that started us gets the terminal back; `fg`
                    // resumes us and we resume the command.
                    let ours = std::mem::take(&mut run.expect_stop);
                    if !ours
                        && !resumed
                        && self.terminal.hand_over()
                        && signals::is_job_control(sig)
                    {
                        self.terminal.take_back(run.pid);
                        self.log.decision(format_args!(
                            "stopping myself with the command (job control)"
                        ));
                        kill::stop_self();
                    }
                }
                Ok(Some(JobChange::Continued)) => self
                    .log
                    .decision(format_args!("command (pid {}) continued", run.pid)),
                Ok(None) | Err(_) => {}
            }
        }
        reap::orphans(Some(run.pid), &self.log);
    }

    fn scope_me(&self) -> u32 {
        std::process::id()
    }

    /// Did this `--die-with-parent` signal come from our parent's death?
    fn parent_died(&self, got: &Received) -> bool {
        let now = brood::os::getppid();
        now != self.parent || (self.parent == 0 && got.pid == 0)
    }

    /// Our parent died: the command gets the signal (forwarded by the caller),
    /// and whatever is left is SIGKILLed after the grace.
    pub fn on_parent_died(&mut self) {
        self.shutting_down = true;
        if self.kill_at.is_none() {
            self.kill_at = Some(Instant::now() + self.opts.grace);
            self.log.decision(format_args!(
                "our parent (pid {}) died; ending the tree (SIGKILL after {:?})",
                self.parent, self.opts.grace
            ));
        }
    }

    /// `--timeout`: end everything, the command included.
    fn time_out(&mut self, run: &Running) -> Result<(Ended, u32), RunError> {
        self.terminal.take_back(run.pid);
        self.log.notice(format_args!(
            "{} (pid {}) ran past {:?}; ending its tree",
            run.child.program(),
            run.pid,
            self.opts.timeout.unwrap_or_default()
        ));
        let _ = run.child.terminate();
        self.ending(Some(run.pid), run.pid).end(self.opts.grace);
        let _ = run.child.kill();
        run.child.wait()?;
        Ok((Ended::TimedOut, run.pid))
    }

    /// The ending of what is left, for group `group`.
    pub fn ending(&self, command: Option<u32>, group: u32) -> Ending<'_> {
        Ending {
            scope: self.scope,
            group,
            command,
            signals: &self.signals,
            log: self.log,
        }
    }

    /// `--kill-orphans`: every process adopted while the command runs gets
    /// SIGTERM, then SIGKILL after the grace.
    fn end_adopted(&self, run: &mut Running) {
        let me = self.scope_me();
        let now = Instant::now();
        for s in self.scope.living() {
            if s.ppid != me || s.pid == run.pid {
                continue;
            }
            let key = (s.pid, s.starttime);
            let sig = match run.orphans.get(&key) {
                None => {
                    run.orphans.insert(key, now + self.opts.grace);
                    self.log.decision(format_args!(
                        "adopted orphan pid {} ({}) is not part of the command's tree: SIGTERM",
                        s.pid, s.comm
                    ));
                    Signal::TERM
                }
                Some(&at) if now >= at => {
                    self.log.decision(format_args!(
                        "escalation: SIGKILL to adopted orphan pid {} after the grace",
                        s.pid
                    ));
                    Signal::KILL
                }
                Some(_) => continue,
            };
            super::scope::signal_checked(&s, sig);
        }
        run.orphans
            .retain(|(pid, start), _| procfs::stat(*pid).is_some_and(|s| s.starttime == *start));
    }

    /// Waits `delay` before a restart. False if a signal (other than a harmless
    /// one) or the timeout came first: then there is no restart.
    pub fn back_off(&mut self, delay: Duration) -> Result<bool, RunError> {
        let until = Instant::now() + delay;
        loop {
            let now = Instant::now();
            if self.deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            if now >= until {
                return Ok(true);
            }
            let wake = self.deadline.map_or(until, |d| d.min(until));
            poll::readable(&[self.signals.as_fd()], Some(wake - now)).map_err(|source| {
                RunError::Os {
                    what: "poll",
                    source,
                }
            })?;
            while let Some(got) = self.signals.read().map_err(|source| RunError::Os {
                what: "reading signals",
                source,
            })? {
                reap::orphans(None, &self.log);
                if signals::is_harmless(got.signo) || signals::is_own(&got) {
                    continue;
                }
                self.log.notice(format_args!(
                    "got {} while waiting to restart; not restarting",
                    signals::name(got.signo)
                ));
                return Ok(false);
            }
        }
    }
}
