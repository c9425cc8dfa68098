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
use std::time::Duration;

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
        self.wait_at_most(ready, None)
    }

    /// `epoll_wait` for at most `timeout` (`None`: no limit); `ready` is left
    /// empty when it passed. An interrupted wait counts as a wake-up with
    /// nothing ready: the caller loops anyway, and an EINTR is never a reason
    /// to wait the whole timeout again.
    pub fn wait_at_most(&self, ready: &mut Vec<u64>, timeout: Option<Duration>) -> io::Result<()> {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        let timeout = timeout.map(|t| rustix::event::Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        loop {
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) if timeout.is_none() => continue,
                Err(rustix::io::Errno::INTR) => break,
                Err(e) => return Err(e.into()),
            }
        }
        ready.clear();
        ready.extend(events.iter().map(|e| e.data.u64()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_with_a_timeout_ends_empty_and_one_without_sees_a_ready_pipe() {
        let w = Watcher::new().unwrap();
        let (r, wr) = crate::sys::pipe::pipe().unwrap();
        w.add(&r, 7).unwrap();
        let mut ready = vec![99];
        let t = std::time::Instant::now();
        w.wait_at_most(&mut ready, Some(Duration::from_millis(20)))
            .unwrap();
        assert!(ready.is_empty());
        assert!(
            t.elapsed() >= Duration::from_millis(19),
            "{:?}",
            t.elapsed()
        );
        rustix::io::write(&wr, b"x").unwrap();
        w.wait(&mut ready).unwrap();
        assert_eq!(ready, [7]);
    }
}
