//! [`StartMethod::Fork`](super::StartMethod::Fork): `fork(2)` in the caller, then
//! run the function. The argument needs no crossing (the child has a copy of
//! our memory); the result comes back through a pipe.

use super::child::run_and_send;
use crate::fork::fork_running;
use crate::policy::Policy;
use crate::sys;
use crate::{Child, Error, Result};
use serde::Serialize;
use std::os::fd::{AsFd, OwnedFd};

/// Forks a child that runs `f(arg)`; returns it and the read end of its result
/// pipe.
///
/// With a parent-death signal the fork happens on a thread that lives as long
/// as the process (the kernel ties the signal to the forking *thread*); see
/// `crate::spawner`. `fork_running` warns once when foreign threads exist.
pub(super) fn start<A, R>(
    f: fn(A) -> R,
    arg: A,
    policy: Policy,
    handed_down: Option<OwnedFd>,
) -> Result<(Child, OwnedFd)>
where
    A: Send,
    R: Serialize + 'static,
{
    // The child flushes Rust's stdout and stderr as it leaves: set them up once
    // here, so that no child pays for it in copy-on-write faults.
    static STDIO: std::sync::Once = std::sync::Once::new();
    STDIO.call_once(|| {
        let _ = (std::io::stdout(), std::io::stderr(), sys::pipe::dev_null());
    });
    // The panic hook that turns the function's panic into a report: installed
    // here, once, so that no child pays for installing it (the hook's lock,
    // the environment, an allocation: a dozen copy-on-write faults each).
    super::child::install_hook();
    // The command name the child shows: the program's, not the name of the
    // thread that forked it (a forked child's main thread is a copy of it).
    static PROGRAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let program = PROGRAM.get_or_init(|| {
        let argv0 = std::env::args_os().next().unwrap_or_default();
        argv0.to_string_lossy().into_owned()
    });
    let (r, w) = crate::fdlimit::with_room(sys::pipe::pipe)
        .map_err(|e| crate::fdlimit::error("creating the result pipe", e))?;
    sys::fork::child_end(r.as_fd());
    let go = move || {
        // On the thread that forks (see `warm_catch`).
        super::child::warm_catch();
        // The child side never returns into the caller: it runs `f`, sends the
        // outcome and leaves through `_exit`. Between fork and `f` it only arms
        // its policies (async-signal-safe, in fork_running).
        fork_running(&policy, move || {
            // As with every start method (and Python's), the child's stdin
            // is /dev/null: it must not compete with the parent for input.
            let _ = sys::pipe::null_onto(0);
            // The parent's ends of its other children's pipes and sockets
            // are not this child's to hold (a `cat` would wait for this
            // child's exit to see the end of its input).
            sys::fork::close_child_ends();
            // Nothing blocked, whatever thread (the spawner's, maybe) and
            // mask forked it: as every start method gives its children.
            sys::sigmask::unblock_all();
            sys::proctitle::set_comm(program);
            super::child::keep_handed_down(handed_down);
            let code = run_and_send(f, arg, w.as_fd());
            drop(w);
            crate::exit::leave_forked_child(code)
        })
    };
    let child = crate::spawner::run_for(&policy, go).map_err(Error::Fork)??;
    Ok((child, r))
}
