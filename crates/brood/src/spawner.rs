//! The spawner: a brood thread that lives as long as the process, from which
//! children with a parent-death signal are created.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that created the child exits, not
//! when the process does. A child started from a short-lived worker thread would be
//! killed when that thread ends, although its parent process lives on. So such
//! children are created either on the main thread (which ends only with the
//! process) or on this thread, which never ends.

use crate::policy::Policy;
use crate::runtime::spawn_own_thread;
use crate::sys::fork::is_main_thread;
use crate::sys::forklocal::ForkLocal;
use std::sync::{Mutex, mpsc};

use crate::sys::thread::Job;

/// This process's spawner (a forked child gets its own: its parent's thread
/// did not come along).
static SPAWNER: ForkLocal<Spawner> = ForkLocal::new(Spawner::default);

/// Runs `f` where a child with `policy` must be created; see [`Spawner::run_for`].
pub(crate) fn run_for<T: Send>(
    policy: &Policy,
    f: impl FnOnce() -> T + Send,
) -> std::io::Result<T> {
    SPAWNER.get().run_for(policy, f)
}

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
        // A child made there gets the creating thread's mask: the caller's,
        // not the one the spawner thread happened to start with.
        let mask = crate::sys::sigmask::current();
        crate::sys::thread::run_borrowed(&self.sender()?, move || {
            let own = mask.apply();
            let out = f();
            own.apply();
            out
        })
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
