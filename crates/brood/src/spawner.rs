//! The spawner: a brood thread that lives as long as the process, from which
//! children with a parent-death signal are created.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that created the child exits, not
//! when the process does. A child started from a short-lived worker thread would be
//! killed when that thread ends, although its parent process lives on. So such
//! children are created either on the main thread (which ends only with the
//! process) or on this thread, which never ends.

use crate::globals::spawn_own_thread;
use crate::policy::Policy;
use crate::sys::fork::is_main_thread;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A handle on this process's spawner thread (made on first use).
#[derive(Default)]
pub(crate) struct Spawner {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Spawner {
    /// Runs `f` where a child with `policy` must be created: on a durable thread
    /// (see [`Spawner::run_durable`]) when the policy asks for a parent-death
    /// signal, which the kernel ties to the creating thread; on the caller's
    /// thread otherwise.
    pub(crate) fn run_for<T: Send>(
        &self,
        policy: &Policy,
        f: impl FnOnce() -> T + Send,
    ) -> std::io::Result<T> {
        if policy.death_signal().is_some() {
            self.run_durable(f)
        } else {
            Ok(f())
        }
    }

    /// Runs `f` on a thread that lives as long as the process — the caller's own
    /// when it is the main thread, the spawner's otherwise — and returns its result.
    /// A panic in `f` is resumed in the caller.
    pub(crate) fn run_durable<T: Send>(&self, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
        if is_main_thread() {
            return Ok(f());
        }
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
            let _ = done_tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
        });
        // SAFETY: the job may borrow from the caller's stack, so it must not
        // outlive this call. We block on `done_rx` until the job has run or been
        // dropped (either drops `done_tx`, the only sender), so every borrow it
        // holds ends before we return.
        let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
        self.sender()?
            .send(job)
            .map_err(|_| std::io::Error::other("brood's spawner thread has stopped"))?;
        match done_rx.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => panic::resume_unwind(panic),
            Err(_) => Err(std::io::Error::other(
                "brood's spawner thread dropped a job",
            )),
        }
    }

    fn sender(&self) -> std::io::Result<mpsc::Sender<Job>> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = jobs.as_ref() {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::channel::<Job>();
        spawn_own_thread("brood-spawner", move || {
            for job in rx {
                job();
            }
        })?;
        *jobs = Some(tx.clone());
        Ok(tx)
    }
}
