//! Shutdown is one event: once this process has begun to leave — through
//! [`crate::exit`], a return from `main`, `std::process::exit`, or a signal
//! that [`crate::signals::graceful`] took over — no new child can start, so
//! none can escape the sweep that applies every child's `OnExit`.
//!
//! The sweep lists the children to end under the same lock under which every
//! new child is registered and the flag is read: a child registered before the
//! flag was set is in the list; one after is refused (killed at once, and its
//! start returns [`Error::ShuttingDown`](crate::Error::ShuttingDown)).

use crate::sys::forklocal::ForkLocal;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct State {
    begun: Mutex<bool>,
    changed: Condvar,
}

/// Per process: a forked child has not begun to leave because its parent did.
static STATE: ForkLocal<State> = ForkLocal::new(|| State {
    begun: Mutex::new(false),
    changed: Condvar::new(),
});

fn lock(state: &State) -> MutexGuard<'_, bool> {
    state.begun.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks the start of shutdown (idempotent) and wakes whoever waits for it.
pub(crate) fn begin() {
    let state = STATE.get();
    *lock(state) = true;
    state.changed.notify_all();
}

/// `Err(ShuttingDown)` once shutdown has begun: checked before a child is
/// created, so that none is made only to be ended (the gate in `exit::adopt`
/// is what guarantees it).
pub(crate) fn refuse_if_begun() -> crate::error::Result<()> {
    if shutting_down() {
        Err(crate::error::Error::ShuttingDown { pid: None })
    } else {
        Ok(())
    }
}

/// Runs `f` with the flag, holding the lock that [`begin`] takes: what `f`
/// sees cannot change under it.
pub(crate) fn gate<T>(f: impl FnOnce(bool) -> T) -> T {
    let begun = lock(STATE.get());
    f(*begun)
}

/// Whether this process has begun to shut down: a program's restart loop asks
/// this to stop restarting (starts fail with `Error::ShuttingDown` anyway).
///
/// ```
/// assert!(!brood::shutting_down());
/// ```
pub fn shutting_down() -> bool {
    STATE.existing().is_some_and(|s| *lock(s))
}

/// Blocks until this process begins to shut down, or `timeout` passes (`None`:
/// no limit); true if it has begun. For a program's own loop that must stop
/// what it does when a signal taken over by `signals::graceful` arrives.
///
/// ```
/// use std::time::Duration;
/// assert!(!brood::wait_for_shutdown(Some(Duration::from_millis(1))));
/// ```
pub fn wait_for_shutdown(timeout: Option<Duration>) -> bool {
    let state = STATE.get();
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut begun = lock(state);
    while !*begun {
        match deadline {
            None => begun = state.changed.wait(begun).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                begun = state
                    .changed
                    .wait_timeout(begun, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
    true
}
