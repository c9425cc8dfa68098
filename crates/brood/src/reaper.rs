//! The reaper: the one owner of waiting for brood's children.
//!
//! Every child brood starts is registered here, in start order. A child whose
//! status brood collects itself (`WaitSource::Own`) has its pidfd in one epoll
//! set watched by one background thread; when the child ends, that thread reaps it
//! at once with `waitid(P_PIDFD)` — so no child is ever a zombie, even when its
//! handle was dropped and nobody ever waits — and the status stays in the shared
//! child state for whoever asks. Threads that wait for a child themselves poll its
//! pidfd and reap it under the same lock, so the status goes to exactly one place
//! and a waiter never pays a second thread hop.
//!
//! No `SIGCHLD` handler is installed and `waitpid(-1)` is never called, so code
//! that manages its own children beside brood is not disturbed; if that code reaps
//! *ours*, `waitid` answers `ECHILD` and the child becomes `ReapedElsewhere`.
//!
//! The registry is also the list `crate::exit` walks to apply each live child's
//! `OnExit` when the process ends normally.

use crate::child::{ChildInner, WaitSource};
use crate::globals::{globals, spawn_own_thread};
use crate::sys::watch::Watcher;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub(crate) struct Registry {
    /// Live children by start sequence number (so iteration is start order).
    children: Mutex<BTreeMap<u64, Arc<ChildInner>>>,
    next_seq: AtomicU64,
    /// The epoll set, made (and its thread started) with the first own child.
    watcher: OnceLock<std::io::Result<Watcher>>,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            children: Mutex::new(BTreeMap::new()),
            next_seq: AtomicU64::new(1),
            watcher: OnceLock::new(),
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a freshly started child. From here on it will be reaped.
    pub(crate) fn adopt(&self, child: Arc<ChildInner>) -> std::io::Result<()> {
        crate::exit::ensure_hooked();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(child.seq, Arc::clone(&child));
        if child.source == WaitSource::Own {
            let watcher = self.watcher()?;
            // Level-triggered: a child that already ended is reported at once.
            let fd = child.pidfd.as_ref().expect("an adopted child has a pidfd");
            if let Err(e) = watcher.add(fd, child.seq) {
                self.forget(&child);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes a child that has finished (or that brood gives up on).
    pub(crate) fn forget(&self, child: &ChildInner) {
        if child.source == WaitSource::Own {
            if let (Some(Ok(w)), Some(fd)) = (self.watcher.get(), &child.pidfd) {
                // ENOENT when it was never added or already removed: fine.
                let _ = w.remove(fd);
            }
        }
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&child.seq);
    }

    /// The children that have not finished yet, in start order.
    pub(crate) fn live(&self) -> Vec<Arc<ChildInner>> {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn get(&self, seq: u64) -> Option<Arc<ChildInner>> {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&seq)
            .cloned()
    }

    fn watcher(&self) -> std::io::Result<&Watcher> {
        let made = self.watcher.get_or_init(|| {
            let w = Watcher::new()?;
            spawn_own_thread("brood-reaper", reaper_loop)?;
            Ok(w)
        });
        made.as_ref()
            .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))
    }
}

/// The reaper thread. It is started inside `get_or_init`, so it may run before
/// the watcher is published: wait (briefly) until it is.
fn reaper_loop() {
    let registry = &globals().registry;
    loop {
        match registry.watcher.get() {
            Some(Ok(w)) => return run(registry, w),
            Some(Err(_)) => return,
            None => std::thread::yield_now(),
        }
    }
}

fn run(registry: &Registry, watcher: &Watcher) {
    let mut ready = Vec::new();
    loop {
        if watcher.wait(&mut ready).is_err() {
            // epoll_wait fails only on programming errors (EBADF, EINVAL). Waiters
            // still reap their own children; nothing better to do than stop.
            return;
        }
        for &seq in &ready {
            if let Some(child) = registry.get(seq) {
                if child.refresh().is_err() {
                    // waitid failed for a reason other than ECHILD: do not spin on
                    // a level-triggered fd that will never be reaped.
                    registry.forget(&child);
                }
            }
        }
    }
}
