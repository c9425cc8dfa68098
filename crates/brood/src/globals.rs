//! State that belongs to one process: the reaper's registry and brood's own threads.
//!
//! After `fork` the child has a copy of the parent's memory but only the forking
//! thread: the parent's reaper and spawner threads do not exist there, and any
//! lock another thread held is locked forever. So the state is keyed by pid: the
//! first brood call in a new process builds fresh state and abandons (leaks) the
//! copied one without touching its locks. The children listed in the copy are the
//! parent's, not ours, and must not be waited for or signalled by the child.

use crate::process::forkserver::client::Conn as ForkServerConn;
use crate::reaper::Registry;
use crate::spawner::Spawner;
use crate::sys;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) struct Globals {
    /// The process this state belongs to.
    pid: u32,
    pub(crate) registry: Registry,
    pub(crate) spawner: Spawner,
    /// How many threads brood itself started in this process (reaper, spawner,
    /// signal and fork-server threads): the fork warning discounts them.
    pub(crate) own_threads: AtomicUsize,
    /// This process's connection to its fork server. A forked child must not
    /// use (or wait on a lock of) its parent's: it starts a server of its own.
    pub(crate) fork_server: Mutex<Option<Arc<ForkServerConn>>>,
}

static CURRENT: AtomicPtr<Globals> = AtomicPtr::new(std::ptr::null_mut());

/// This process's state, made on first use (and anew in a forked child).
pub(crate) fn globals() -> &'static Globals {
    let pid = sys::getpid();
    loop {
        let seen = CURRENT.load(Ordering::Acquire);
        // SAFETY: a non-null CURRENT always points to a leaked, never-freed Globals.
        if let Some(g) = unsafe { seen.as_ref() } {
            if g.pid == pid {
                return g;
            }
        }
        let fresh = Box::into_raw(Box::new(Globals {
            pid,
            registry: Registry::new(),
            spawner: Spawner::default(),
            own_threads: AtomicUsize::new(0),
            fork_server: Mutex::new(None),
        }));
        match CURRENT.compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // The old state (if any) is the parent's: leaked on purpose, see above.
            Ok(_) => {
                // SAFETY: just published; never freed.
                return unsafe { &*fresh };
            }
            Err(_) => {
                // Another thread of this process won the race; use its state.
                // SAFETY: `fresh` was never published, so we still own it.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
    }
}

/// This process's state if it was already made, without making it. A forked
/// child that never started children of its own has none: leaving it must not
/// allocate (each page it writes is a copy-on-write fault, a real part of a
/// fork's cost).
pub(crate) fn existing() -> Option<&'static Globals> {
    let seen = CURRENT.load(Ordering::Acquire);
    // SAFETY: a non-null CURRENT always points to a leaked, never-freed Globals.
    unsafe { seen.as_ref() }.filter(|g| g.pid == sys::getpid())
}

/// Starts a thread that brood owns, counted for the fork warning.
pub(crate) fn spawn_own_thread(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let g = globals();
    g.own_threads.fetch_add(1, Ordering::Relaxed);
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .inspect_err(|_| {
            g.own_threads.fetch_sub(1, Ordering::Relaxed);
        })
}
