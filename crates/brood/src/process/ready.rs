//! [`Process::start_ready`] and [`ready`]: a function child that says when it
//! is ready, as a [`Command`](crate::Command) does with
//! [`Ready::NotifyFd`](crate::Ready::NotifyFd) — s6's protocol, over a
//! pipe that the parent hands down to the child alone (inherited by a
//! forked child, attached with `SCM_RIGHTS` to a re-executed or fork-server
//! one's request): no name, so no other process can declare it ready.

use super::{Handle, Process};
use crate::error::{Error, Result};
use crate::ready::output::Output;
use crate::ready::watch::{self, Sign};
use crate::sys::pipe;
use serde::{Serialize, de::DeserializeOwned};
use std::os::fd::AsFd;
use std::time::Duration;

impl<A, R> Process<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    /// Starts the child and returns its handle once its function called
    /// [`brood::ready()`](ready). If the function returns first (or the child
    /// dies), or `timeout` passes, the child is killed (its whole tree with
    /// [`Tree::Group`](crate::Tree::Group) or
    /// [`Tree::Cgroup`](crate::Tree::Cgroup)) and reaped, and the start fails
    /// with [`Error::NotReady`]. Works with every start method.
    ///
    /// ```
    /// # brood::init();
    /// use brood::Process;
    /// use std::time::Duration;
    /// fn serve(port: u16) -> u16 {
    ///     // ... bind, load, warm up ...
    ///     brood::ready();
    ///     std::thread::sleep(Duration::from_secs(30));
    ///     port
    /// }
    /// let server = Process::new(serve, 8080).start_ready(Duration::from_secs(10))?;
    /// assert!(server.is_alive());
    /// server.kill()?;
    /// # let _ = server.join();
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn start_ready(&mut self, timeout: Duration) -> Result<Handle<R>> {
        let (handle, mut sign, output) = self.start_signalling()?;
        let waited = watch::wait(handle.child(), &mut sign, &output, timeout);
        self.ready_or_ended(handle, waited)
    }

    /// [`start_ready`](Process::start_ready) without blocking a thread
    /// (feature `tokio`): the wait runs on tokio's reactor. Dropping the
    /// future before it is done kills the child (its tree with a group or
    /// cgroup), as a failed start does.
    ///
    /// ```
    /// # brood::init();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// fn serve(_: ()) { brood::ready(); std::thread::sleep(std::time::Duration::from_secs(30)); }
    /// let server = brood::Process::new(serve, ())
    ///     .start_ready_async(std::time::Duration::from_secs(10))
    ///     .await?;
    /// server.kill()?;
    /// # let _ = server.join();
    /// # Ok::<(), brood::Error>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn start_ready_async(&mut self, timeout: Duration) -> Result<Handle<R>> {
        let (handle, mut sign, output) = self.start_signalling()?;
        let guard = EndOnDrop(Some(handle.child().clone()));
        let waited = watch::wait_async(handle.child(), &mut sign, &output, timeout).await;
        guard.disarm();
        self.ready_or_ended(handle, waited)
    }

    /// Starts the child with the write end of a fresh pipe handed down:
    /// the child, the sign to wait for, and the (empty) output a wait needs.
    fn start_signalling(&mut self) -> Result<(Handle<R>, Sign, Output)> {
        let (read, write) =
            pipe::pipe().map_err(|e| Error::io("creating the notification pipe", e))?;
        pipe::set_nonblocking(read.as_fd(), true)
            .map_err(|e| Error::io("creating the notification pipe", e))?;
        let output = Output::new().map_err(|e| Error::io("waiting for readiness", e))?;
        // Our copy of the write end closes once the child has its own (or
        // here, if the start failed before taking it).
        let started = self.hand_down(write).start();
        self.handed_down = None;
        Ok((started?, Sign::Fd(Some(read)), output))
    }

    /// The child once ready; otherwise it is ended and reaped.
    fn ready_or_ended(
        &self,
        handle: Handle<R>,
        waited: std::result::Result<(), watch::Failed>,
    ) -> Result<Handle<R>> {
        match waited {
            Ok(()) => Ok(handle),
            Err(failed) => {
                let pid = handle.pid();
                let _ = handle.child().terminate_timeout(Duration::ZERO);
                let name = self.name.clone().unwrap_or_default();
                Err(watch::error(name, pid, failed, String::new()))
            }
        }
    }
}

/// Ends a child still waited for when dropped (an async start given up).
#[cfg(feature = "tokio")]
struct EndOnDrop(Option<crate::child::Child>);

#[cfg(feature = "tokio")]
impl EndOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

#[cfg(feature = "tokio")]
impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            let _ = child.terminate_timeout(Duration::ZERO);
        }
    }
}

/// Says that this process is ready, to the parent that started it with
/// [`Process::start_ready`] (whose start then returns); true if it was told.
/// Anywhere else — a process started otherwise, a second call — it does
/// nothing and returns false.
///
/// ```
/// # brood::init();
/// // Not a child started with `start_ready`: nobody to tell.
/// assert!(!brood::ready());
/// ```
pub fn ready() -> bool {
    let Some(fd) = super::child::take_handed_down() else {
        return false;
    };
    if !pipe::is_pipe_writer(fd.as_fd()) {
        // Handed down for something else (a pool worker's channel).
        super::child::keep_handed_down(Some(fd));
        return false;
    }
    // The pipe closes as `fd` goes: the parent's read sees the newline.
    pipe::write_all(fd.as_fd(), b"\n").is_ok()
}
