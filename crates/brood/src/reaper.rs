//! The reaper: the one owner of waiting for brood's children.
//!
//! Every child brood starts is registered in a [`Registry`], in start order. A
//! child whose status brood collects itself hands the registry its pidfd, which
//! goes into one epoll set watched by one background thread; when the child
//! ends, that thread calls [`Watched::on_ready`], which reaps it at once — so no
//! child is ever a zombie, even when its handle was dropped and nobody ever
//! waits. Threads that wait for a child themselves poll its pidfd and reap it
//! under the child's own lock, so the status goes to exactly one place and a
//! waiter never pays a second thread hop.
//!
//! No `SIGCHLD` handler is installed and `waitpid(-1)` is never called, so code
//! that manages its own children beside brood is not disturbed.
//!
//! The registry knows nothing of what a child is: it is written against the
//! small [`Watched`] trait (tokio's `Wait` seam in its orphan queue is the
//! model), so its state machine is unit-tested below with plain pipes standing
//! in for pidfds, while the real-process tests exercise it through `Child`.
//!
//! Set-up that fails (no descriptor left for the epoll set, no thread) is not
//! remembered: the next registration tries again.

use crate::runtime::spawn_own_thread;
use crate::sys::watch::Watcher;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What the registry holds: one child, seen through what reaping needs.
pub(crate) trait Watched: Send + Sync + 'static {
    /// The start sequence number the registry was asked for ([`Registry::next_seq`]).
    fn seq(&self) -> u64;
    /// The descriptor that becomes readable when the child ends, if the reaper
    /// should watch it (`None` for a child whose status another process reports).
    fn watch_fd(&self) -> Option<BorrowedFd<'_>>;
    /// The descriptor became readable: reap. Called on the reaper thread. An
    /// error means this child can never be reaped here: it stops being watched.
    fn on_ready(&self) -> io::Result<()>;
}

/// Which step of setting up the reaper failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error("epoll_create1")]
    Epoll(#[source] io::Error),
    #[error("starting the reaper thread")]
    Thread(#[source] io::Error),
    #[error("epoll_ctl(EPOLL_CTL_ADD)")]
    Watch(#[source] io::Error),
}

impl SetupError {
    /// The step, for an error message.
    pub(crate) fn step(&self) -> &'static str {
        match self {
            SetupError::Epoll(_) => "epoll_create1",
            SetupError::Thread(_) => "starting the reaper thread",
            SetupError::Watch(_) => "epoll_ctl(EPOLL_CTL_ADD)",
        }
    }

    /// The system's error.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            SetupError::Epoll(e) | SetupError::Thread(e) | SetupError::Watch(e) => e,
        }
    }
}

/// The live children of one process, in start order.
pub(crate) struct Registry<T: Watched> {
    children: Mutex<BTreeMap<u64, Arc<T>>>,
    next_seq: AtomicU64,
    /// The epoll set, made with the first watched child.
    watcher: OnceLock<Watcher>,
    /// Whether the reaper thread runs; with `setup`, so that a failed start is
    /// retried by the next registration instead of remembered.
    reaping: AtomicBool,
    setup: Mutex<()>,
}

impl<T: Watched> Registry<T> {
    pub(crate) fn new() -> Registry<T> {
        Registry {
            children: Mutex::new(BTreeMap::new()),
            next_seq: AtomicU64::new(1),
            watcher: OnceLock::new(),
            reaping: AtomicBool::new(false),
            setup: Mutex::new(()),
        }
    }

    /// The next start sequence number.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a freshly started child. From here on it will be reaped. On an
    /// error the child is not registered, and the caller still owns its fate.
    pub(crate) fn adopt(&'static self, child: Arc<T>) -> Result<(), SetupError> {
        if let Some(fd) = child.watch_fd() {
            let watcher = self.watcher()?;
            self.lock().insert(child.seq(), Arc::clone(&child));
            // Level-triggered: a child that already ended is reported at once.
            if let Err(e) = watcher.add(fd, child.seq()) {
                self.lock().remove(&child.seq());
                return Err(SetupError::Watch(e));
            }
        } else {
            self.lock().insert(child.seq(), child);
        }
        Ok(())
    }

    /// Removes a child that has finished (or that brood gives up on).
    pub(crate) fn forget(&self, child: &T) {
        if let (Some(w), Some(fd)) = (self.watcher.get(), child.watch_fd()) {
            // ENOENT when it was never added or already removed: fine.
            let _ = w.remove(fd);
        }
        self.lock().remove(&child.seq());
    }

    /// The children that have not finished yet, in start order.
    pub(crate) fn live(&self) -> Vec<Arc<T>> {
        self.lock().values().cloned().collect()
    }

    /// How many children are registered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn get(&self, seq: u64) -> Option<Arc<T>> {
        self.lock().get(&seq).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<T>>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the reaper thread now if it does not run, so that a process
    /// that can start no thread finds out before it creates a child.
    pub(crate) fn ensure_running(&'static self) -> Result<(), SetupError> {
        self.watcher().map(drop)
    }

    /// Whether the reaper thread runs now.
    pub(crate) fn is_running(&self) -> bool {
        self.reaping.load(Ordering::Acquire)
    }

    /// The epoll set with its thread running, made (or made again, after a
    /// failure) now if needed.
    fn watcher(&'static self) -> Result<&'static Watcher, SetupError> {
        if self.reaping.load(Ordering::Acquire)
            && let Some(w) = self.watcher.get()
        {
            return Ok(w);
        }
        let _setup = self.setup.lock().unwrap_or_else(|e| e.into_inner());
        let watcher = match self.watcher.get() {
            Some(w) => w,
            None => {
                let made = crate::fdlimit::with_room(Watcher::new).map_err(SetupError::Epoll)?;
                self.watcher.get_or_init(|| made)
            }
        };
        if !self.reaping.load(Ordering::Acquire) {
            spawn_own_thread("brood-reaper", move || self.run(watcher))
                .map_err(SetupError::Thread)?;
            self.reaping.store(true, Ordering::Release);
        }
        Ok(watcher)
    }

    /// The reaper thread's loop.
    fn run(&self, watcher: &Watcher) {
        let mut ready = Vec::new();
        loop {
            if watcher.wait(&mut ready).is_err() {
                // epoll_wait fails only on programming errors (EBADF, EINVAL).
                // Waiters still reap their own children; let the next
                // registration start a new thread.
                self.reaping.store(false, Ordering::Release);
                return;
            }
            for &seq in &ready {
                if let Some(child) = self.get(seq)
                    && child.on_ready().is_err()
                {
                    // Reaping failed for a reason other than "not ours": do
                    // not spin on a level-triggered fd that stays readable.
                    self.forget(&child);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The registry's state machine, with pipes standing in for pidfds: a pipe's
    //! read end becomes readable when a byte is written, as a pidfd does when its
    //! process ends.
    use super::*;
    use crate::sys::pipe;
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::mpsc;

    struct Fake {
        seq: u64,
        read: Option<OwnedFd>,
        registry: &'static Registry<Fake>,
        reaped: Mutex<Option<mpsc::Sender<u64>>>,
        fail: bool,
    }

    impl Watched for Fake {
        fn seq(&self) -> u64 {
            self.seq
        }
        fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
            self.read.as_ref().map(|fd| fd.as_fd())
        }
        fn on_ready(&self) -> io::Result<()> {
            if self.fail {
                if let Some(tx) = self.reaped.lock().unwrap().take() {
                    let _ = tx.send(self.seq);
                }
                return Err(io::Error::other("cannot reap"));
            }
            // What a real child does once reaped: leave the registry.
            self.registry.forget(self);
            if let Some(tx) = self.reaped.lock().unwrap().take() {
                let _ = tx.send(self.seq);
            }
            Ok(())
        }
    }

    fn registry() -> &'static Registry<Fake> {
        Box::leak(Box::new(Registry::new()))
    }

    fn fake(
        registry: &'static Registry<Fake>,
        watched: bool,
        fail: bool,
    ) -> (Arc<Fake>, Option<OwnedFd>, mpsc::Receiver<u64>) {
        let (tx, rx) = mpsc::channel();
        let (read, write) = if watched {
            let (r, w) = pipe::pipe().unwrap();
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        let f = Arc::new(Fake {
            seq: registry.next_seq(),
            read,
            registry,
            reaped: Mutex::new(Some(tx)),
            fail,
        });
        (f, write, rx)
    }

    #[test]
    fn live_is_in_start_order_and_a_readable_child_is_reaped_and_forgotten() {
        let reg = registry();
        let (a, a_end, a_rx) = fake(reg, true, false);
        let (b, _b_end, _b_rx) = fake(reg, false, false);
        let (c, _c_end, _c_rx) = fake(reg, true, false);
        for f in [&c, &a, &b] {
            reg.adopt(Arc::clone(f)).unwrap();
        }
        let order: Vec<u64> = reg.live().iter().map(|f| f.seq).collect();
        assert_eq!(order, vec![a.seq, b.seq, c.seq]);
        // "a ends": the reaper thread reaps it, and it leaves the registry.
        pipe::write_all(a_end.as_ref().unwrap().as_fd(), b"x").unwrap();
        assert_eq!(a_rx.recv().unwrap(), a.seq);
        assert_eq!(
            reg.live().iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![b.seq, c.seq]
        );
    }

    #[test]
    fn a_child_that_cannot_be_reaped_stops_being_watched() {
        let reg = registry();
        let (f, end, rx) = fake(reg, true, true);
        reg.adopt(Arc::clone(&f)).unwrap();
        pipe::write_all(end.as_ref().unwrap().as_fd(), b"x").unwrap();
        assert_eq!(rx.recv().unwrap(), f.seq);
        // It was forgotten: a level-triggered fd that stays readable is not
        // reported again (no busy loop), and the registry no longer lists it.
        while reg.len() != 0 {
            std::thread::yield_now();
        }
        // A new child is still served by the same thread.
        let (g, g_end, g_rx) = fake(reg, true, false);
        reg.adopt(Arc::clone(&g)).unwrap();
        pipe::write_all(g_end.as_ref().unwrap().as_fd(), b"x").unwrap();
        assert_eq!(g_rx.recv().unwrap(), g.seq);
    }

    #[test]
    fn a_failed_watch_leaves_the_child_unregistered() {
        let reg = registry();
        let (f, _end, _rx) = fake(reg, true, false);
        reg.adopt(Arc::clone(&f)).unwrap();
        // A regular file cannot be watched: epoll_ctl(ADD) answers EPERM.
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let bad = Arc::new(Fake {
            seq: reg.next_seq(),
            read: Some(OwnedFd::from(file)),
            registry: reg,
            reaped: Mutex::new(None),
            fail: false,
        });
        let err = reg.adopt(bad).unwrap_err();
        assert_eq!(err.step(), "epoll_ctl(EPOLL_CTL_ADD)");
        assert_eq!(err.into_io().raw_os_error(), Some(libc::EPERM));
        assert_eq!(
            reg.len(),
            1,
            "only the child that could be watched is registered"
        );
    }
}
