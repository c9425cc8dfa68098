//! Ending a chunk early: Ctrl-C in the driver, a chunk withdrawn in the
//! agent.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Ctrl-C, watched for as long as this lives, as a local pool call watches
/// for it: SIGINT with its default disposition is caught meanwhile (and
/// kills the program again once the last watch is gone); a program that
/// handles SIGINT itself keeps it, and this never fires.
///
/// ```
/// let watch = brood::remote::CtrlC::watch()?;
/// assert!(!watch.fired());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct CtrlC(crate::sys::interrupt::InterruptWatch);

impl std::fmt::Debug for CtrlC {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtrlC")
            .field("fired", &self.fired())
            .finish()
    }
}

impl CtrlC {
    /// Starts watching.
    pub fn watch() -> std::io::Result<CtrlC> {
        crate::sys::interrupt::InterruptWatch::new().map(CtrlC)
    }

    /// Whether Ctrl-C came since the watch began.
    pub fn fired(&self) -> bool {
        self.0.fired()
    }
}

/// Withdraws a chunk that [`PoolCall::map_encoded`] is running, from
/// another thread: the workers running its items are killed, and the items
/// without a result fail with [`TaskError::Interrupted`].
///
/// ```
/// let stop = brood::remote::Withdraw::new()?;
/// stop.fire();
/// assert!(stop.fired());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Withdraw {
    fired: AtomicBool,
    pipe: (OwnedFd, OwnedFd),
}

impl Withdraw {
    /// A withdrawal not fired yet.
    pub fn new() -> std::io::Result<Withdraw> {
        Ok(Withdraw {
            fired: AtomicBool::new(false),
            pipe: crate::fdlimit::with_room(crate::sys::pipe::wake_pipe)?,
        })
    }

    /// Withdraws the chunk (at once if it runs, before it starts if not).
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let _ = crate::sys::pipe::write_some(self.pipe.1.as_fd(), &[1]);
    }

    /// Whether [`Withdraw::fire`] was called.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// The descriptor that turns readable when it fires.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.0.as_fd()
    }
}
