//! [`wait_any`]: the first of several children to end, with one `poll(2)` —
//! no thread per child (Python's `multiprocessing.connection.wait` over
//! sentinels, `os.wait()` restricted to the children you name).

use crate::child::NO_PIDFD_TICK;
use crate::{Child, Error, ExitStatus, Result};
use std::time::{Duration, Instant};

/// Waits until one of `children` has ended, at most `timeout` (`None`: no
/// limit), and returns its index and status — the lowest index when several
/// have ended. `Ok(None)` when the time ran out, or at once for an empty
/// slice. The others are left as they are: call again for the next one.
///
/// A child reaped by someone else, or whose fork server died first, is an
/// error naming it ([`Error::ReapedElsewhere`], [`Error::ServerDied`]), as
/// its own wait would be.
///
/// ```
/// # brood::init();
/// use brood::Command;
/// use std::time::Duration;
///
/// let slow = Command::new("sleep").arg("10").spawn()?.into_child();
/// let quick = Command::new("sh").args(["-c", "exit 3"]).spawn()?.into_child();
/// let (i, status) = brood::wait_any(&[&slow, &quick], None)?.unwrap();
/// assert_eq!((i, status.code()), (1, Some(3)));
/// assert_eq!(brood::wait_any(&[&slow], Some(Duration::from_millis(10)))?, None);
/// slow.kill()?;
/// # Ok::<(), brood::Error>(())
/// ```
pub fn wait_any(
    children: &[&Child],
    timeout: Option<Duration>,
) -> Result<Option<(usize, ExitStatus)>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        // Already ended (or not ours any more): answer without waiting.
        for (i, child) in children.iter().enumerate() {
            if let Some(status) = child.poll()? {
                return Ok(Some((i, status)));
            }
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if children.is_empty() || left == Some(Duration::ZERO) {
            return Ok(None);
        }
        let fds: Vec<_> = children.iter().filter_map(|c| c.pidfd()).collect();
        let wait = if fds.len() < children.len() {
            Some(left.map_or(NO_PIDFD_TICK, |l| l.min(NO_PIDFD_TICK)))
        } else {
            left
        };
        let ready = crate::sys::pidfd::wait_any(&fds, wait)
            .map_err(|e| Error::io("poll(pidfd) over several children", e))?;
        if let Some(k) = ready {
            // That pidfd's child has ended; a fork-server child's status is
            // a message that follows at once: wait for it.
            let i = children
                .iter()
                .enumerate()
                .filter(|(_, c)| c.pidfd().is_some())
                .nth(k)
                .map_or(0, |(i, _)| i);
            if let Some(status) = children[i].wait_timeout(Duration::from_secs(5))? {
                return Ok(Some((i, status)));
            }
        }
    }
}

/// [`wait_any`] for async code (feature `tokio`): the first of `children` to
/// end, awaited on the runtime's reactor (every pidfd registered there, no
/// thread). `Ok(None)` at once for an empty slice. Dropping the future leaves
/// every child as it was.
///
/// ```
/// # brood::init();
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use brood::Command;
/// let slow = Command::new("sleep").arg("10").spawn()?.into_child();
/// let quick = Command::new("true").spawn()?.into_child();
/// let (i, status) = brood::wait_any_async(&[&slow, &quick]).await?.unwrap();
/// assert_eq!(i, 1);
/// assert!(status.success());
/// slow.kill()?;
/// # Ok::<(), brood::Error>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub async fn wait_any_async(children: &[&Child]) -> Result<Option<(usize, ExitStatus)>> {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    type Waiting<'a> = Pin<Box<dyn Future<Output = Result<ExitStatus>> + Send + 'a>>;
    if children.is_empty() {
        return Ok(None);
    }
    let mut waits: Vec<Waiting<'_>> = children
        .iter()
        .map(|c| Box::pin(c.wait_async()) as Waiting<'_>)
        .collect();
    std::future::poll_fn(|cx| {
        for (i, w) in waits.iter_mut().enumerate() {
            if let Poll::Ready(r) = w.as_mut().poll(cx) {
                return Poll::Ready(r.map(|s| Some((i, s))));
            }
        }
        Poll::Pending
    })
    .await
}
