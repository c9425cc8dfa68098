//! Opt-in: turn termination signals into a normal exit, so that children's
//! [`OnExit`](crate::OnExit) policies apply when the parent is told to stop.

use crate::runtime::spawn_own_thread;
use crate::{Error, Result, Signal};
use signal_hook::iterator::Signals;
use std::sync::atomic::{AtomicU64, Ordering};

/// The signals [`graceful`] took over in this process, one bit each (signal `n`
/// is bit `n - 1`, so 1 to 64 fit). A forked
/// child inherits the handlers but not the thread that reads their self-pipe, so
/// in the child those signals would vanish: `reset_in_child` puts them back.
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// The highest signal number on Linux (`SIGRTMAX`).
const MAX_SIGNAL: i32 = 64;

/// Signal `sig`'s bit in [`TAKEN`] (none for a number outside 1..=64).
fn bit(sig: i32) -> u64 {
    u32::try_from(sig - 1)
        .ok()
        .and_then(|shift| 1u64.checked_shl(shift))
        .unwrap_or(0)
}

/// In a freshly forked child: restore the default action of every signal that
/// [`graceful`] took over in the parent. Async-signal-safe (an atomic load and
/// `signal(2)`).
pub(crate) fn reset_in_child() {
    let taken = TAKEN.load(Ordering::Relaxed);
    for sig in 1..=MAX_SIGNAL {
        if taken & bit(sig) != 0 {
            crate::sys::signal::reset_to_default(sig);
        }
    }
}

/// Makes each of `signals` behave like [`crate::exit`]: apply every live child's
/// `OnExit`, then die *by the same signal* (the default action), so whoever waits
/// for this process still sees "killed by SIGTERM".
///
/// A dedicated thread receives the signals (through signal-hook's self-pipe), so
/// the policies run outside signal-handler context. SIGKILL and SIGSTOP cannot be
/// caught and are refused.
///
/// ```no_run
/// brood::signals::graceful(&[brood::Signal::TERM, brood::Signal::INT])?;
/// # Ok::<(), brood::Error>(())
/// ```
pub fn graceful(signals: &[Signal]) -> Result<()> {
    if let Some(bad) = signals
        .iter()
        .find(|s| **s == Signal::KILL || **s == Signal::STOP)
    {
        return Err(Error::Uncatchable { signal: *bad });
    }
    let raw: Vec<i32> = signals.iter().map(|s| s.as_raw()).collect();
    for &sig in &raw {
        TAKEN.fetch_or(bit(sig), Ordering::Relaxed);
    }
    let mut iter = Signals::new(&raw).map_err(|source| Error::Signals {
        step: "installing the handlers",
        source,
    })?;
    spawn_own_thread("brood-graceful", move || {
        if let Some(sig) = iter.forever().next() {
            crate::exit::leave();
            // Resets the disposition to SIG_DFL and raises: we die of `sig`.
            let _ = signal_hook::low_level::emulate_default_handler(sig);
            crate::sys::fork::exit_now(128 + sig);
        }
    })
    .map_err(|source| Error::Signals {
        step: "starting the signal thread",
        source,
    })?;
    Ok(())
}
