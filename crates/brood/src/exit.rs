//! Leaving the process: [`exit`] (Python's `sys.exit`) applies every live child's
//! [`OnExit`], [`exit_now`] (Python's `os._exit`) applies nothing.
//!
//! Returning from `main` and `std::process::exit` call libc's `exit`, which runs
//! the `atexit` hook brood installs with its first child, so they behave like
//! [`exit`].

use crate::child::{Child, WaitSource, live_children};
use crate::error::{Error, Result};
use crate::policy::{OnExit, Policy};
use crate::sys;
use std::os::fd::OwnedFd;
use std::sync::Once;
use std::time::Instant;

/// Applies every live child's [`OnExit`], then ends the process with `code`
/// (Python's `sys.exit`, claim X2).
///
/// The order follows Python's `multiprocessing` at exit: first every
/// `Terminate` child is sent SIGTERM (in start order), so their graces run
/// together; then, in start order, `Wait` children are waited for and `Terminate`
/// children are waited for until their grace ends and then SIGKILLed. `Detach`
/// children are left running.
///
/// ```no_run
/// brood::init();
/// let child = brood::ForkBuilder::new()
///     .on_exit(brood::OnExit::Wait)
///     .fork_with(|| 0)?;
/// brood::exit(0); // returns only after `child` has ended
/// # Ok::<(), brood::Error>(())
/// ```
pub fn exit(code: i32) -> ! {
    leave();
    std::process::exit(code)
}

/// Shutdown begins (no child starts from now on), then every live child's
/// `OnExit` applies.
pub(crate) fn leave() {
    crate::shutdown::begin();
    apply_on_exit();
    // No child starts any more: brood's empty cgroups go.
    crate::cgroups::sweep();
}

/// Ends the process at once with `code`, touching no child and flushing nothing
/// (Python's `os._exit`, claim X1): every child keeps running unless its
/// [`OnParentDeath`](crate::OnParentDeath) says otherwise.
///
/// ```no_run
/// brood::exit_now(3);
/// ```
pub fn exit_now(code: i32) -> ! {
    sys::fork::exit_now(code)
}

/// Applies the `OnExit` policy of every child still running, as [`exit`] does,
/// without exiting (and without beginning shutdown: children may still be
/// started afterwards). Idempotent: children already handled have ended.
pub fn apply_on_exit() {
    // First pass: SIGTERM every Terminate child, each remembering when its
    // grace ends (None: not signalled, so nothing to finish). A process that
    // never started a child has none, and allocates nothing here. The list is
    // taken under the shutdown gate: a child registered after it is refused.
    // A process that never had a child (a forked child, typically, on its
    // way out) does not even make the gate: each page it would write there
    // is a copy-on-write fault.
    let listed = if crate::child::any_ever() {
        crate::shutdown::gate(|_| live_children())
    } else {
        Vec::new()
    };
    let live: Vec<(Child, Option<Instant>)> = listed
        .into_iter()
        .map(|child| {
            let deadline = match child.inner.policy.on_exit {
                OnExit::Terminate { grace } if child.is_alive() && child.terminate().is_ok() => {
                    Some(Instant::now() + grace)
                }
                _ => None,
            };
            (child, deadline)
        })
        .collect();
    for (child, deadline) in live {
        match (child.inner.policy.on_exit, deadline) {
            // A child reaped elsewhere is gone already: nothing to wait for.
            (OnExit::Wait, _) => drop(child.wait()),
            (OnExit::Terminate { .. }, Some(deadline)) => drop(child.finish_by(deadline)),
            _ => {}
        }
    }
    // Handles dropped with `OnDrop::Terminate` whose grace has not ended yet.
    crate::ondrop::finish_pending();
}

/// Registers a child that was just created (see [`Child::register`]) and makes
/// sure that the process's normal exit will apply its `OnExit`. Every kind of
/// child comes through here.
pub(crate) fn adopt(pid: u32, pidfd: OwnedFd, policy: Policy, source: WaitSource) -> Result<Child> {
    adopt_with(pid, Some(pidfd), None, policy, source)
}

/// [`adopt`] for a fork-server child, whose pidfd the server may keep (then
/// `relay` signals it through the server).
pub(crate) fn adopt_remote(
    pid: u32,
    pidfd: Option<OwnedFd>,
    relay: crate::child::Relay,
    policy: Policy,
) -> Result<Child> {
    adopt_with(pid, pidfd, Some(relay), policy, WaitSource::Remote)
}

fn adopt_with(
    pid: u32,
    pidfd: Option<OwnedFd>,
    relay: Option<crate::child::Relay>,
    policy: Policy,
    source: WaitSource,
) -> Result<Child> {
    ensure_hooked();
    let (child, refused) = crate::shutdown::gate(|begun| {
        Child::register(pid, pidfd, relay, policy, source, crate::ondrop::apply).map(|c| (c, begun))
    })?;
    if refused {
        // Started while the process was leaving: it would escape the sweep.
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::ShuttingDown { pid: Some(pid) });
    }
    Ok(child)
}

/// Installs the `atexit` hook once per process image (fork inherits it, and the
/// hook then works on the child's own children).
pub(crate) fn ensure_hooked() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| sys::atexit::register(at_exit));
}

fn at_exit() {
    // `sys::atexit` calls this from libc's exit: unwinding out of it would abort.
    let _ = std::panic::catch_unwind(leave);
}

/// How a forked child leaves once its function returned: its own children's
/// `OnExit` applies, Rust's buffered output is flushed when that cannot wait on
/// a lock (see `forkflush.rs`), and then `_exit` — never
/// libc's `exit`, which would run `atexit` handlers the parent installed for
/// itself (a forked child must not flush the parent's C stdio buffers twice).
pub(crate) fn leave_forked_child(code: i32) -> ! {
    // `f` has returned: nothing of the child's own runs any more to start
    // children, so no shutdown flag (whose state would cost the child a page).
    apply_on_exit();
    crate::cgroups::sweep();
    crate::forkflush::flush_in_forked_child();
    sys::fork::exit_now(code)
}
