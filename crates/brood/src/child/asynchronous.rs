//! [`Child::wait_async`]: the same state machine as the blocking waits, awaited
//! on tokio's reactor instead of a blocked thread.
//!
//! An own child is awaited on (a copy of) its pidfd, registered with tokio
//! through `AsyncFd`: it becomes readable when the process ends, and the task
//! then reaps it under the child's lock exactly as a blocking `wait` does
//! (whoever takes the lock first reaps, everybody reads the same status). A
//! fork-server child's status is a message the client thread receives, so its
//! wait is woken by that thread through the child's waker list, as is a wait
//! outside a tokio runtime (brood's reaper thread reaps every own child and
//! wakes the list), which is what makes the future work on any executor.

use super::{Child, ChildInner, WaitSource, answer};
use crate::sys::pidfd;
use crate::sys::reactor::Registered;
use crate::{Error, ExitStatus, Result};
use std::future::Future;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::task::Poll;
use tokio::io::Interest;

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl Child {
    /// Waits, without blocking a thread, until the child ends and returns its
    /// status; the async [`Child::wait`] (feature `tokio`).
    ///
    /// It shares everything with the blocking waits: any number of tasks and
    /// threads may wait at once, whoever is first reaps, all see the same
    /// status, and a child reaped by foreign code is
    /// [`Error::ReapedElsewhere`] (a fork-server child whose server died,
    /// [`Error::ServerDied`]). No SIGCHLD handler, no `waitpid(-1)`: children
    /// of `tokio::process` in the same program keep their own statuses.
    ///
    /// The future owns what it needs (`'static`, `Send`), so it may be
    /// spawned. **Dropping it never touches the child**: cancellation is
    /// explicit ([`Child::kill`]), and what a dropped *handle* does is the
    /// child's [`OnDrop`](crate::OnDrop).
    ///
    /// Inside a tokio runtime (it needs IO enabled: `enable_io`/`enable_all`)
    /// it waits on the child's pidfd; elsewhere it is woken by brood's reaper
    /// thread, so it works under any executor.
    ///
    /// ```
    /// # brood::init();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let child = brood::Command::new("sh").args(["-c", "exit 7"]).spawn()?.into_child();
    /// let status = child.wait_async().await?;
    /// assert_eq!(status.code(), Some(7));
    /// assert_eq!(child.wait()?, status); // the same status, for every waiter
    /// # Ok::<(), brood::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn wait_async(&self) -> impl Future<Output = Result<ExitStatus>> + Send + use<> {
        let inner = Arc::clone(&self.inner);
        async move { wait(&inner).await }
    }
}

async fn wait(inner: &ChildInner) -> Result<ExitStatus> {
    if let Some(status) = answer(inner.pid, inner.refresh()?)? {
        return Ok(status);
    }
    if inner.source == WaitSource::Own
        && tokio::runtime::Handle::try_current().is_ok()
        && let Some(fd) = &inner.pidfd
    {
        // Out of descriptors for the copy: the reaper's notice still comes.
        let watched =
            pidfd::duplicate(fd.as_fd()).and_then(|copy| Registered::new(copy, Interest::READABLE));
        if let Ok(watched) = watched {
            return on_pidfd(inner, watched).await;
        }
    }
    notified(inner).await
}

/// Waits for the pidfd to become readable, then reaps under the lock.
async fn on_pidfd(inner: &ChildInner, watched: Registered) -> Result<ExitStatus> {
    loop {
        let mut ready = watched
            .get()
            .readable()
            .await
            .map_err(|e| Error::os("poll(pidfd)", inner.pid, e))?;
        if let Some(status) = answer(inner.pid, inner.refresh()?)? {
            return Ok(status);
        }
        // Not ended after all (a readiness the reactor reported early).
        ready.clear_ready();
    }
}

/// Waits for the child's state to change, as told by whoever changes it (the
/// reaper thread, a blocking waiter, the fork-server client thread).
async fn notified(inner: &ChildInner) -> Result<ExitStatus> {
    std::future::poll_fn(|cx| match inner.ended_or_register(cx.waker()) {
        None => Poll::Pending,
        Some(state) => match answer(inner.pid, state) {
            Ok(Some(status)) => Poll::Ready(Ok(status)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        },
    })
    .await
}
