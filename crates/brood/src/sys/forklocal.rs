//! [`ForkLocal`]: a value that belongs to one process, made anew after `fork`.
//!
//! After `fork(2)` the child holds a copy of the parent's memory but only the
//! thread that forked: the parent's other threads (brood's reaper, spawner and
//! fork-server listener) do not exist there, and a lock one of them held stays
//! locked forever. State such as "the children I started" or "my spawner
//! thread" is therefore wrong in the child *and* possibly locked. A `ForkLocal`
//! keys its value by the pid that made it: the first use in a new process
//! builds a fresh value and abandons the inherited copy without touching it (not
//! even to drop it: dropping could take one of those locks). The abandoned copy
//! is leaked; a process leaks at most one per fork it descends from.
//!
//! The models are CPython's `multiprocessing.util.register_after_fork` (state
//! reset in the child) and tokio's one `ORPHAN_QUEUE` per module: each concern
//! keeps its own cell beside its code, rather than one bundle of globals.
//!
//! Getting the value takes no lock: one atomic load and a pid comparison
//! (`getpid(2)` is a plain system call; glibc no longer caches it).
//!
//! # References
//! fork(2) ("The child process is created with a single thread"), getpid(2).

use std::sync::atomic::{AtomicPtr, Ordering};

/// A value of type `T` per process; see the module documentation.
pub struct ForkLocal<T: 'static> {
    current: AtomicPtr<Slot<T>>,
    make: fn() -> T,
}

struct Slot<T> {
    pid: u32,
    value: T,
}

impl<T: Send + Sync + 'static> ForkLocal<T> {
    /// A cell whose value `make` builds on first use in each process.
    pub const fn new(make: fn() -> T) -> ForkLocal<T> {
        ForkLocal {
            current: AtomicPtr::new(std::ptr::null_mut()),
            make,
        }
    }

    /// This process's value, made now if this process has none yet.
    pub fn get(&'static self) -> &'static T {
        let pid = super::getpid();
        loop {
            let seen = self.current.load(Ordering::Acquire);
            if let Some(slot) = Self::deref(seen).filter(|s| s.pid == pid) {
                return &slot.value;
            }
            let fresh = Box::into_raw(Box::new(Slot {
                pid,
                value: (self.make)(),
            }));
            match self
                .current
                .compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // The slot we replaced (if any) is the parent's: leaked on purpose.
                Ok(_) => {
                    // SAFETY: `fresh` is now published and is never freed.
                    return &unsafe { &*fresh }.value;
                }
                Err(_) => {
                    // Another thread of this process published first; use its value.
                    // SAFETY: `fresh` was never published, so this thread owns it.
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }

    /// This process's value if it was made already, without making it. A forked
    /// child that never used the cell has none, and leaving it then allocates
    /// nothing (each page a forked child writes costs a copy-on-write fault).
    pub fn existing(&'static self) -> Option<&'static T> {
        let pid = super::getpid();
        Self::deref(self.current.load(Ordering::Acquire))
            .filter(|s| s.pid == pid)
            .map(|s| &s.value)
    }

    fn deref(ptr: *mut Slot<T>) -> Option<&'static Slot<T>> {
        // SAFETY: `current` is only ever null or a pointer from `Box::into_raw` that
        // was published by a successful compare-exchange and is never freed.
        unsafe { ptr.as_ref() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static MADE: AtomicUsize = AtomicUsize::new(0);
    static CELL: ForkLocal<usize> = ForkLocal::new(|| MADE.fetch_add(1, Ordering::SeqCst) + 1);

    #[test]
    fn made_once_per_process_and_anew_after_fork() {
        assert_eq!(CELL.existing(), None);
        let first = *CELL.get();
        assert_eq!(*CELL.get(), first, "the same process sees the same value");
        let threads: Vec<_> = (0..4).map(|_| std::thread::spawn(|| *CELL.get())).collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), first);
        }
        // In a forked child the inherited value is not this process's: a new one
        // is made. The child reports through its exit code.
        // SAFETY: the child only touches the cell (an allocation: glibc's fork
        // handlers keep malloc usable) and leaves with _exit.
        match unsafe { super::super::fork::fork() }.unwrap() {
            super::super::fork::Forked::Child => {
                let before = CELL.existing().is_none();
                let made = *CELL.get();
                let code = if before && made == first + 1 { 0 } else { 1 };
                super::super::fork::exit_now(code)
            }
            super::super::fork::Forked::Parent(pid) => {
                let fd = super::super::pidfd::open(pid).unwrap();
                super::super::pidfd::wait_exited(std::os::fd::AsFd::as_fd(&fd), None).unwrap();
                let status = super::super::pidfd::try_reap(std::os::fd::AsFd::as_fd(&fd)).unwrap();
                assert_eq!(status, super::super::pidfd::Reap::Exited(0));
            }
        }
        assert_eq!(*CELL.get(), first, "the parent keeps its own value");
    }
}
