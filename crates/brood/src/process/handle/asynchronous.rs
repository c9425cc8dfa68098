//! [`Handle::join_async`] (feature `tokio`): the result channel and the child
//! awaited on the reactor, with the same outcomes as [`Handle::join`].

use super::{Handle, JoinError, Reading};
use crate::sys::{self, reactor::Registered};
use crate::wire::frame::Feed;
use crate::{Child, Error};
use serde::de::DeserializeOwned;
use std::os::fd::AsFd;
use std::task::Poll;
use tokio::io::Interest;

/// What one look at the result channel found.
enum Look {
    /// The channel is done with (a frame, its end, or an error recorded).
    Done,
    /// Nothing more to read yet.
    Pending,
}

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl<R: DeserializeOwned + 'static> Handle<R> {
    /// Awaits the child's end and returns the function's result, without
    /// blocking a thread: the async [`Handle::join`] (feature `tokio`), with
    /// the same outcomes (see [`JoinError`]).
    ///
    /// Dropping the future never touches the child, and loses nothing: the
    /// part of the result already read is kept, and a later `join` or
    /// `join_async` goes on from there. For a time limit, wrap it in
    /// `tokio::time::timeout`.
    ///
    /// ```
    /// # brood::init();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use brood::Process;
    /// fn square(x: u64) -> u64 { x * x }
    /// let h = Process::new(square, 12).start()?;
    /// assert_eq!(h.join_async().await.unwrap(), 144);
    /// # Ok::<(), brood::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn join_async(&self) -> Result<R, JoinError> {
        let pid = self.pid();
        let watched = {
            let rd = self.lock_reading();
            if rd.taken {
                return Err(JoinError::AlreadyJoined { pid });
            }
            match &rd.fd {
                None => None,
                Some(fd) => Some(
                    fd.try_clone()
                        .and_then(|copy| Registered::new(copy, Interest::READABLE))
                        .map_err(|e| io_error(pid, "registering the result pipe", e))?,
                ),
            }
        };
        if let Some(watched) = watched {
            let exited = self.child.wait_async();
            let mut exited = std::pin::pin!(exited);
            // The wait answered (the child ended, or its status is lost).
            let mut answered = false;
            loop {
                if let Look::Done = self.look(answered)? {
                    break;
                }
                // Readable, or the child ended (then the next look drains
                // what it wrote and stops).
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(Ok(mut guard)) = watched.get().poll_read_ready(cx) {
                        guard.clear_ready();
                        return Poll::Ready(());
                    }
                    let done = exited.as_mut().poll(cx).is_ready();
                    answered |= done;
                    if done { Poll::Ready(()) } else { Poll::Pending }
                })
                .await;
            }
        }
        let waited = self.child.wait_async().await;
        let mut rd = self.lock_reading();
        if rd.taken {
            return Err(JoinError::AlreadyJoined { pid });
        }
        self.conclude(&mut rd, waited)
    }

    /// Reads what the result channel holds without blocking. The child's end
    /// is checked *before* reading, so that all it wrote before it ended is
    /// read before the channel is declared cut short. `ended`: the wait for
    /// the child has already answered.
    fn look(&self, ended: bool) -> Result<Look, JoinError> {
        let pid = self.pid();
        let mut guard = self.lock_reading();
        let rd: &mut Reading = &mut guard;
        let Some(fd) = rd.fd.as_ref() else {
            return Ok(Look::Done);
        };
        sys::pipe::set_nonblocking(fd.as_fd(), true).map_err(|e| io_error(pid, "fcntl", e))?;
        let ended = ended || has_ended(&self.child);
        let fed = rd.reader.feed(fd.as_fd());
        match fed {
            Ok(Feed::Done) => rd.frame = rd.reader.take(),
            Ok(Feed::Eof) => self.cut_short(rd),
            Ok(Feed::Pending) if ended => self.cut_short(rd),
            Ok(Feed::Pending) => return Ok(Look::Pending),
            Err(e) => rd.error = Some(e.to_string()),
        }
        rd.fd = None;
        Ok(Look::Done)
    }

    fn lock_reading(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.reading.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Has the process ended (its pidfd readable; no pidfd: its recorded state —
/// reaped elsewhere, or a fork-server child whose server kept the pidfd)?
fn has_ended(child: &Child) -> bool {
    match child.pidfd() {
        Some(fd) => sys::pidfd::has_exited(fd).unwrap_or(true),
        None => !child.is_alive(),
    }
}

fn io_error(pid: u32, what: &str, e: std::io::Error) -> JoinError {
    JoinError::Io {
        pid,
        source: Error::io(format!("{what} (process {pid})"), e),
    }
}
