//! A set of pidfds to wait on at once: `epoll(7)` on Linux (kqueue's
//! `EVFILT_PROC` would play this part on macOS).
//!
//! Level-triggered: a pidfd that stays readable (its process has exited but was
//! not reaped yet) is reported again on every wait until it is removed, so a
//! wake-up can never be lost between a reap that failed and the next wait.
//!
//! # References
//! epoll_create1(2), epoll_ctl(2), epoll_wait(2).

use rustix::event::epoll;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// The set.
pub struct Watcher {
    epoll: OwnedFd,
}

impl Watcher {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Watcher> {
        Ok(Watcher {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
        })
    }

    /// `epoll_ctl(EPOLL_CTL_ADD, fd, EPOLLIN)`, reporting `key` when `fd` is readable.
    pub fn add(&self, fd: impl AsFd, key: u64) -> io::Result<()> {
        Ok(epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(key),
            epoll::EventFlags::IN,
        )?)
    }

    /// `epoll_ctl(EPOLL_CTL_ADD)` for readability and, with `writable`, for
    /// room to write too.
    #[cfg(feature = "tokio")]
    pub fn add_with(&self, fd: impl AsFd, key: u64, writable: bool) -> io::Result<()> {
        let mut flags = epoll::EventFlags::IN;
        if writable {
            flags |= epoll::EventFlags::OUT;
        }
        Ok(epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(key),
            flags,
        )?)
    }

    /// The epoll descriptor itself: readable while any member is ready, so
    /// another reactor can wait on the whole set.
    #[cfg(feature = "tokio")]
    pub fn into_fd(self) -> OwnedFd {
        self.epoll
    }

    /// `epoll_ctl(EPOLL_CTL_DEL, fd)`.
    pub fn remove(&self, fd: impl AsFd) -> io::Result<()> {
        Ok(epoll::delete(&self.epoll, fd)?)
    }

    /// `epoll_wait` without a timeout; fills `ready` with the keys of readable fds.
    pub fn wait(&self, ready: &mut Vec<u64>) -> io::Result<()> {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        loop {
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        ready.clear();
        ready.extend(events.iter().map(|e| e.data.u64()));
        Ok(())
    }
}
