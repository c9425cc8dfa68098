//! Registering a descriptor with tokio's reactor (feature `tokio`): one
//! `epoll_ctl(EPOLL_CTL_ADD)` on the runtime's epoll set, undone when the
//! registration is dropped.
//!
//! tokio's registration is `unsafe` because the reactor keeps the descriptor
//! *number*: it must stay open, and mean the same file, until deregistered.
//! [`Registered`] owns its descriptor and hands out only a shared reference to
//! the `AsyncFd`, so nothing can close or replace it while it is registered.
//!
//! # References
//! epoll_ctl(2); tokio's `AsyncFd::register_with_interest`.

use std::io;
use std::os::fd::OwnedFd;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A descriptor owned by, and registered with, the current tokio runtime.
pub struct Registered(AsyncFd<OwnedFd>);

impl Registered {
    /// Registers `fd` with the current runtime for `interest`. An error (not
    /// a panic) when called outside a tokio runtime.
    pub fn new(fd: OwnedFd, interest: Interest) -> io::Result<Registered> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "not inside a tokio runtime (brood's async API runs on tokio)",
            ));
        }
        // SAFETY: the AsyncFd owns `fd`, so the descriptor stays open and
        // means the same file until the AsyncFd is dropped (which
        // deregisters before closing); `Registered` never gives out `&mut`
        // access, so the OwnedFd cannot be replaced meanwhile, and an
        // OwnedFd's `as_raw_fd` always returns the same number.
        let fd = unsafe { AsyncFd::register_with_interest(fd, interest) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Registered(fd))
    }

    /// The registration, to await readiness on.
    pub fn get(&self) -> &AsyncFd<OwnedFd> {
        &self.0
    }
}
