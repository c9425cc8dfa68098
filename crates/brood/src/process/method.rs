//! [`StartMethod`]: how a `Process` makes its child, and the process-wide default.

use std::sync::atomic::{AtomicU8, Ordering};

/// How a [`Process`](crate::Process) makes its child.
///
/// ```
/// # brood::init();
/// use brood::{Process, StartMethod};
/// fn twice(x: i64) -> i64 { 2 * x }
/// for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
///     let h = Process::new(twice, 21).start_method(m).start()?;
///     assert_eq!(h.start_method(), m);
///     assert_eq!(h.join().unwrap(), 42);
/// }
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum StartMethod {
    /// `fork(2)` in the caller, then run the function. The cheapest; unsafe in
    /// spirit when other threads hold locks the child needs (brood warns).
    Fork,
    /// Re-execute this program; [`init`](crate::init) in the child runs the function.
    Spawn,
    /// Ask brood's fork server (one per process, started by re-execution on first
    /// use) to fork the child. Safe with threads, and nearly as cheap as `Fork`;
    /// its cost does not grow with the caller's memory, and when the server
    /// has a child forked ahead (see [`set_fork_server_spares`](crate::set_fork_server_spares))
    /// a start is only a message to it.
    ForkServer,
}

static DEFAULT_METHOD: AtomicU8 = AtomicU8::new(2);

/// Sets the start method of every later [`Process`](crate::Process) that does not choose one
/// (Python's `multiprocessing.set_start_method`). The default is
/// [`StartMethod::ForkServer`].
///
/// ```
/// # brood::init();
/// brood::set_start_method(brood::StartMethod::Spawn);
/// assert_eq!(brood::start_method(), brood::StartMethod::Spawn);
/// brood::set_start_method(brood::StartMethod::ForkServer);
/// ```
pub fn set_start_method(method: StartMethod) {
    DEFAULT_METHOD.store(method as u8, Ordering::Relaxed);
}

/// The process-wide default start method.
pub fn start_method() -> StartMethod {
    match DEFAULT_METHOD.load(Ordering::Relaxed) {
        0 => StartMethod::Fork,
        1 => StartMethod::Spawn,
        _ => StartMethod::ForkServer,
    }
}
