//! The child's side, shared by every start method: run the function, catch a
//! panic, send the outcome as one frame.

use super::crossing::{self, FnRef};
use crate::ipc::{self, FrameKind};
use crate::policy::{Policy, Tree};
use crate::sys;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};

/// Exit code of a child whose function returned.
pub(crate) const CODE_OK: i32 = 0;
/// Exit code of a child whose function panicked (Python: an exception gives 1).
pub(crate) const CODE_PANIC: i32 = 1;
/// Exit code of a child that could not even run the function (bad request).
pub(crate) const CODE_SETUP: i32 = 3;

/// What a re-executed child (or a fork-server child) is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) func: FnRef,
    /// 0 own, 1 group, 2 session.
    pub(crate) tree: u8,
    /// The parent-death signal, 0 for none.
    pub(crate) death_signal: i32,
    pub(crate) name: String,
}

impl Request {
    /// The policies the child arms itself (its `OnExit` is the client's
    /// business, not the child's).
    pub(crate) fn policy(&self) -> Policy {
        Policy {
            on_exit: crate::OnExit::Detach,
            on_parent_death: crate::Signal::from_raw(self.death_signal)
                .map_or(crate::OnParentDeath::Survive, crate::OnParentDeath::Signal),
            tree: match self.tree {
                1 => Tree::Group,
                2 => Tree::Session,
                _ => Tree::Own,
            },
        }
    }

    pub(crate) fn new(func: FnRef, policy: &Policy, name: &str) -> Request {
        Request {
            func,
            tree: match policy.tree {
                Tree::Own => 0,
                Tree::Group => 1,
                Tree::Session => 2,
            },
            death_signal: policy.death_signal().map_or(0, |s| s.as_raw()),
            name: name.to_string(),
        }
    }
}

/// In a fresh child, before the function: the same set-up as every forked
/// child (`crate::fork::arm_child`). Returns an error message on failure.
pub(crate) fn arm(req: &Request, parent: u32) -> Result<(), String> {
    crate::fork::arm_child(&req.policy(), parent).map_err(|(step, e)| format!("{step}: {e}"))
}

/// Runs `f(arg)` and sends the outcome to `out`; returns the exit code.
pub(crate) fn run_and_send<A, R>(f: fn(A) -> R, arg: A, out: BorrowedFd<'_>) -> i32
where
    R: Serialize + 'static,
{
    match panic::catch_unwind(AssertUnwindSafe(move || f(arg))) {
        Ok(value) => match ipc::write_frame(out, FrameKind::Value, &value) {
            Ok(()) => CODE_OK,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                send_failure(out, &format!("cannot encode the result: {e}"));
                CODE_SETUP
            }
            // The parent closed its end (it died or stopped caring).
            Err(_) => CODE_OK,
        },
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            if let Ok(frame) = ipc::encode_frame(FrameKind::Panic, &msg) {
                let _ = sys::pipe::write_all(out, &frame);
            }
            CODE_PANIC
        }
    }
}

/// The text of a panic payload (`panic!("…")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic with a non-string payload)".to_string()
    }
}

/// Sends a `Failed` frame: the child could not run the function.
pub(crate) fn send_failure(out: BorrowedFd<'_>, msg: &str) {
    if let Ok(frame) = ipc::encode_frame(FrameKind::Failed, msg) {
        let _ = sys::pipe::write_all(out, &frame);
    }
}

/// One per `(A, R)`: the function a re-executed child jumps to (see
/// [`crossing`]). Decodes the argument and runs [`run_and_send`].
pub(crate) fn trampoline<A, R>(func: usize, arg: Vec<u8>, out: RawFd) -> i32
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    // SAFETY: `out` is the open result descriptor owned by `run_request`, which
    // outlives this call.
    let out = unsafe { BorrowedFd::borrow_raw(out) };
    // SAFETY: `func` was resolved by `crossing::resolve` from an offset that the
    // parent computed for a `fn(A) -> R` with the same `(A, R)` as this
    // trampoline instance (both offsets come from one generic instantiation in
    // `Process::<A, R>::start`), in a process running the same executable file;
    // see `crossing` for why the address then names the same function here.
    let f = unsafe { std::mem::transmute::<*const (), fn(A) -> R>(func as *const ()) };
    match ipc::decode::<A>(arg) {
        Ok(arg) => run_and_send(f, arg, out),
        Err(e) => {
            send_failure(out, &format!("cannot decode the argument: {e}"));
            CODE_SETUP
        }
    }
}

/// Runs a request in a re-executed or fork-server child: read the argument
/// frame, resolve the function, run it. Returns the exit code.
pub(crate) fn run_request(req: &Request, arg: OwnedFd, out: OwnedFd) -> i32 {
    let fail = |msg: String| {
        send_failure(out.as_fd(), &msg);
        CODE_SETUP
    };
    let (tramp, func) = match crossing::resolve(&req.func) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let payload = match ipc::read_frame(arg.as_fd()) {
        Ok((FrameKind::Value, payload)) => payload,
        Ok((kind, _)) => return fail(format!("expected the argument, got a {kind:?} frame")),
        // The parent died or gave up before sending the argument.
        Err(e) => return fail(format!("cannot read the argument: {e}")),
    };
    drop(arg);
    tramp(func, payload, out.as_raw_fd())
}
