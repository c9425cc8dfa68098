//! The fork-aware runtime: what brood keeps per process besides its children.
//!
//! Each concern keeps its own [`ForkLocal`](crate::sys::forklocal::ForkLocal)
//! cell beside its code (the children in `child`, the spawner thread in
//! `spawner`, the fork-server connection in `process::forkserver::client`);
//! this module holds the one piece they share: brood's own threads, counted so
//! that the fork warning can tell them from the program's.

use crate::sys::forklocal::ForkLocal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many threads brood itself started in this process (reaper, spawner,
/// signal and fork-server threads). A forked child starts at zero: its parent's
/// threads did not come along.
static OWN_THREADS: ForkLocal<AtomicUsize> = ForkLocal::new(|| AtomicUsize::new(0));

/// How many of this process's threads are brood's own.
pub(crate) fn own_threads() -> usize {
    OWN_THREADS
        .existing()
        .map_or(0, |n| n.load(Ordering::Relaxed))
}

/// Starts a thread that brood owns, counted for the fork warning.
pub(crate) fn spawn_own_thread(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let count = OWN_THREADS.get();
    count.fetch_add(1, Ordering::Relaxed);
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map_err(|e| {
            count.fetch_sub(1, Ordering::Relaxed);
            why_no_thread(e)
        })
}

/// Starts a thread of brood's that ends on its own (the thread of submitted
/// tasks), counted for the fork warning while it runs.
pub(crate) fn spawn_own_passing_thread(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    /// Uncounts the thread as it ends, however it ends.
    struct Ends;
    impl Drop for Ends {
        fn drop(&mut self) {
            OWN_THREADS.get().fetch_sub(1, Ordering::Relaxed);
        }
    }
    spawn_own_thread(name, move || {
        let _ends = Ends;
        body();
    })
}

/// A failed thread start, said plainly when the cause is the process's own
/// `unshare(CLONE_NEWPID)` (clone(2) then answers a bare `EINVAL`).
fn why_no_thread(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() == Some(libc::EINVAL) && crate::sys::ns::children_in_another_pid_namespace()
    {
        return std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no thread can start here: this process called unshare(CLONE_NEWPID), and brood \
             needs threads of its own to reap its children; use brood in a process forked after \
             the unshare (the new namespace's PID 1)",
        );
    }
    e
}

/// The environment variable that marks a process brood started by
/// re-execution, and says what it is for (`spawn:<parent pid>` or
/// `server:<client pid>`); its stdin is the private socket.
pub(crate) const ENV: &str = "__BROOD_CHILD";

/// Set by the first `brood::init()` call.
static INIT_DONE: AtomicBool = AtomicBool::new(false);

/// Marks `init` as run; true if it had run already.
pub(crate) fn mark_init_done() -> bool {
    INIT_DONE.swap(true, Ordering::AcqRel)
}

/// Whether this process was started by brood to run a function but skipped
/// `init` (so the program's own `main` runs instead): worked out once per
/// process. A forked child reads the parent's answer, which `fork` makes ready
/// before forking, so the child never waits on a half-made `OnceLock`.
pub(crate) fn init_skipped() -> bool {
    static MARKED: OnceLock<bool> = OnceLock::new();
    *MARKED.get_or_init(|| {
        #[cfg(test)]
        test_gate::pass();
        !INIT_DONE.load(Ordering::Acquire) && std::env::var_os(ENV).is_some()
    })
}

/// A pause point inside brood's one-time initialisations, for the test in `fork.rs`:
/// a thread that passes it while it is armed stays inside the initialisation
/// until the test opens it.
#[cfg(test)]
pub(crate) mod test_gate {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    pub(crate) static ARMED: AtomicBool = AtomicBool::new(false);
    pub(crate) static ENTERED: AtomicBool = AtomicBool::new(false);
    pub(crate) static OPEN: AtomicBool = AtomicBool::new(false);

    pub(crate) fn pass() {
        if ARMED.load(Ordering::Acquire) {
            ENTERED.store(true, Ordering::Release);
            while !OPEN.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
