//! Handing a borrowed job to a long-lived thread and waiting for it.
//!
//! `PR_SET_PDEATHSIG` is tied to the thread that creates a child, so brood
//! creates such children on a thread that lives as long as the process (see
//! `crate::spawner`). The caller's closure may borrow from the caller's stack —
//! safe only because the caller blocks until the job has run: this module is
//! where that promise is kept, in one place.
//!
//! # References
//! PR_SET_PDEATHSIG(2const) ("the parent thread").

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;

/// A job for a long-lived thread.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Sends `f` to the thread reading `queue`, blocks until it has run there, and
/// returns its result; a panic in `f` is resumed in the caller. An error if the
/// thread is gone (the job is then dropped unrun).
pub fn run_borrowed<T: Send>(
    queue: &mpsc::Sender<Job>,
    f: impl FnOnce() -> T + Send,
) -> io::Result<T> {
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let _ = done_tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
    });
    // SAFETY: the job may borrow from the caller's stack, so it must not outlive
    // this call. We block on `done_rx` below until the job has run or been
    // dropped (either drops `done_tx`, the only sender), so every borrow it holds
    // ends before we return. A failed `send` hands the job back inside its error,
    // which is dropped right here.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
    queue
        .send(job)
        .map_err(|_| io::Error::other("brood's spawner thread has stopped"))?;
    match done_rx.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => panic::resume_unwind(panic),
        Err(_) => Err(io::Error::other("brood's spawner thread dropped a job")),
    }
}

/// Proof that this process has one thread, so that `fork(2)` is safe in it
/// (no other thread can hold a lock the child needs). Only brood's own
/// single-threaded processes (the fork server) make one, once, at start.
pub struct SingleThreaded(std::marker::PhantomData<*const ()>);

impl SingleThreaded {
    /// Checks that the process has exactly one thread (from `/proc/self/stat`).
    pub fn check() -> io::Result<SingleThreaded> {
        match super::fork::thread_count()? {
            1 => Ok(SingleThreaded(std::marker::PhantomData)),
            n => Err(io::Error::other(format!(
                "expected a single-threaded process, found {n} threads"
            ))),
        }
    }

    /// `fork()` — safe here: the token says no other thread exists. (It is
    /// `!Send`, and its holder starts no thread.)
    pub fn fork(&self) -> io::Result<super::fork::Forked> {
        // SAFETY: the process had one thread when the token was made, and the
        // token's owner (the fork server) never starts another.
        unsafe { super::fork::fork() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_job_runs_on_the_other_thread_and_its_panic_comes_back() {
        let (tx, rx) = mpsc::channel::<Job>();
        let worker = std::thread::spawn(move || {
            for job in rx {
                job();
            }
        });
        let worker_id = worker.thread().id();
        let mut local = vec![1, 2];
        let ran_on = run_borrowed(&tx, || {
            local.push(3); // borrows the caller's stack mutably
            std::thread::current().id()
        })
        .unwrap();
        assert_eq!(ran_on, worker_id);
        assert_eq!(local, [1, 2, 3]);
        let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run_borrowed(&tx, || panic!("boom")).unwrap();
        }));
        assert!(panicked.is_err());
        drop(tx);
        worker.join().unwrap();
        let (dead_tx, dead_rx) = mpsc::channel::<Job>();
        drop(dead_rx);
        assert!(run_borrowed(&dead_tx, || 1).is_err());
    }
}
