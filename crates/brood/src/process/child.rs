//! What every start method shares: the child's side (run the function, catch a
//! panic with its location, send the outcome as one frame) and the parent's
//! (name the function for crossing, send the argument).

use crate::error::{Error, Result};
use crate::sys::{self, image};
use crate::wire::{FrameKind, PanicReport, Request, frame};
use serde::{Serialize, de::DeserializeOwned};
use std::borrow::Cow;
use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, Once};

/// Exit code of a child whose function returned (its result was sent).
pub(crate) const CODE_OK: i32 = 0;
/// Exit code of a child whose function panicked.
pub(crate) const CODE_PANIC: i32 = 1;
/// Exit code of a child that could not run the function at all.
pub(crate) const CODE_SETUP: i32 = 3;

/// Runs a `Process`'s function in the child: decodes the argument, sends the
/// outcome to the result pipe.
pub(crate) struct RunProcess;

impl<A, R> image::Runner<fn(A) -> R> for RunProcess
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    fn run(f: fn(A) -> R, arg: Cow<'_, [u8]>, out: Option<BorrowedFd<'_>>) -> i32 {
        let Some(out) = out else {
            return CODE_SETUP;
        };
        match frame::decode::<A>(arg.into_owned()) {
            Ok(arg) => run_and_send(f, arg, out),
            Err(e) => {
                send_failure(out, &format!("cannot decode the argument: {e}"));
                CODE_SETUP
            }
        }
    }
}

/// The crossing form of `f`, to run as a `Process`.
pub(crate) fn fn_ref<A, R>(f: fn(A) -> R) -> Result<image::FnRef>
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    image::fn_ref::<fn(A) -> R, RunProcess>(f).map_err(Error::Crossing)
}

/// Sends the argument frame; a child that died first (EPIPE) is not an error
/// here (its `join` reports how it ended).
pub(crate) fn send_arg(fd: OwnedFd, arg: &frame::Encoded<'_>, to: &str) -> Result<()> {
    match arg.write(fd.as_fd()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Ok(()),
        Err(e) => Err(Error::io(format!("sending the argument to {to}"), e)),
    }
}

/// Runs `f(arg)` and sends its value, or its panic, to `out`; the exit code.
pub(crate) fn run_and_send<A, R>(f: fn(A) -> R, arg: A, out: BorrowedFd<'_>) -> i32
where
    R: Serialize + 'static,
{
    // brood's set-up is done: the function gets the program's soft
    // descriptor limit.
    crate::fdlimit::give_back();
    match catch(move || f(arg)) {
        Ok(value) => match frame::write_frame(out, FrameKind::Value, &value) {
            Ok(()) => CODE_OK,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                send_failure(out, &format!("cannot encode the result: {e}"));
                CODE_SETUP
            }
            // The parent closed its end (it died or stopped caring).
            Err(_) => CODE_OK,
        },
        Err(report) => {
            if let Ok(frame) = frame::encode_frame(FrameKind::Panic, &report) {
                let _ = sys::pipe::write_all(out, &frame);
            }
            CODE_PANIC
        }
    }
}

thread_local! {
    /// Set while brood runs a child's function on this thread: the panic hook
    /// then records the panic's location here instead of printing it.
    static CAUGHT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Runs `f`, turning a panic into a [`PanicReport`] (its message and
/// location). The panic is not printed: it travels to the parent, which returns
/// it as an error. Set `BROOD_PRINT_PANICS=1` to have it printed as well.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> std::result::Result<T, PanicReport> {
    install_hook();
    // Nested (a pool worker's task inside the worker's own run): the outer
    // catch is restored afterwards.
    let outer = CAUGHT.with(|c| c.replace(Some(None)));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    let location = CAUGHT.with(|c| c.replace(outer)).flatten();
    outcome.map_err(|payload| PanicReport {
        message: panic_message(payload.as_ref()),
        location,
    })
}

/// [`catch`] for many calls in a row on this thread (a pool worker's
/// chunk of items): the catch state is set up once, not per call.
pub(crate) fn catching<T>(body: impl FnOnce(&mut Catcher) -> T) -> T {
    install_hook();
    let outer = CAUGHT.with(|c| c.replace(Some(None)));
    let out = body(&mut Catcher(()));
    CAUGHT.with(|c| c.replace(outer));
    out
}

/// Catches the panics of calls made inside [`catching`].
pub(crate) struct Catcher(());

impl Catcher {
    /// Runs `f`, turning a panic into a [`PanicReport`], as [`catch`] does.
    pub(crate) fn catch<T>(
        &mut self,
        f: impl FnOnce() -> T,
    ) -> std::result::Result<T, PanicReport> {
        panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| PanicReport {
            message: panic_message(payload.as_ref()),
            // The hook left it here (and a nested catch restored the slot).
            location: CAUGHT.with(|c| c.borrow_mut().as_mut().and_then(Option::take)),
        })
    }
}

/// Makes this thread's catch state exist before a fork from it, so that a
/// child does not register its destructor itself (the first use of a
/// thread-local with a destructor registers it with the C library: a symbol
/// lookup by the dynamic linker and an allocation, a dozen copy-on-write
/// faults in every child).
pub(crate) fn warm_catch() {
    CAUGHT.with(|_| {});
}

/// Installs, once per process image, a panic hook that records the location
/// of a panic inside [`catch`] and passes every other panic to the hook that
/// was there before. It is installed before any fork, so a forked child never
/// has to take the hook's lock to change it.
pub(crate) fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        let print = std::env::var_os("BROOD_PRINT_PANICS").is_some_and(|v| v != "0");
        panic::set_hook(Box::new(move |info| {
            let inside = CAUGHT.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        *slot = info.location().map(|l| l.to_string());
                        true
                    }
                    None => false,
                }
            });
            if !inside || print {
                previous(info);
            }
        }));
    });
}

/// The message of a panic payload (`panic!("…")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic with a non-string payload)".to_string()
    }
}

/// Tells the parent the function could not be run, and why.
pub(crate) fn send_failure(out: BorrowedFd<'_>, msg: &str) {
    if let Ok(frame) = frame::encode_frame(FrameKind::Failed, msg) {
        let _ = sys::pipe::write_all(out, &frame);
    }
}

/// A descriptor the parent handed down to this child beside its argument (a
/// pool worker's channel to its pool), until the function takes it. Private
/// to the two processes: nothing else can open it, unlike any name.
static HANDED_DOWN: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Keeps the descriptor handed down to this child (see [`HANDED_DOWN`]).
pub(crate) fn keep_handed_down(fd: Option<OwnedFd>) {
    // Nothing to keep: do not write the lock's page (a copy-on-write fault
    // in a forked child).
    if fd.is_some() {
        *HANDED_DOWN.lock().unwrap_or_else(|e| e.into_inner()) = fd;
    }
}

/// The descriptor the parent handed down to this child, once.
pub(crate) fn take_handed_down() -> Option<OwnedFd> {
    HANDED_DOWN.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// The descriptors a request comes with: the argument pipe's read end, the
/// result pipe's write end, maybe one handed down for the function, and —
/// last, when `cgroup` — the child's `cgroup.procs`.
pub(crate) struct RequestFds {
    pub(crate) arg: OwnedFd,
    pub(crate) out: OwnedFd,
    pub(crate) handed_down: Option<OwnedFd>,
    pub(crate) cgroup: Option<OwnedFd>,
}

/// Splits a request's descriptors (see [`RequestFds`]).
pub(crate) fn request_fds(
    fds: Vec<OwnedFd>,
    cgroup: bool,
) -> std::result::Result<RequestFds, String> {
    let mut fds = fds.into_iter();
    let (Some(arg), Some(out)) = (fds.next(), fds.next()) else {
        return Err("the request did not come with its two pipes".into());
    };
    let mut rest: Vec<OwnedFd> = fds.collect();
    let cgroup = if cgroup {
        match rest.pop() {
            Some(fd) => Some(fd),
            None => return Err("the request did not come with its cgroup".into()),
        }
    } else {
        None
    };
    if rest.len() > 1 {
        return Err("the request came with more descriptors than it names".into());
    }
    Ok(RequestFds {
        arg,
        out,
        handed_down: rest.pop(),
        cgroup,
    })
}

/// Runs a received request in a re-executed or fork-server child: resolve the
/// function, read the argument, run. `handed_down` is kept for the function.
pub(crate) fn run_request(
    req: &Request,
    arg: OwnedFd,
    out: OwnedFd,
    handed_down: Option<OwnedFd>,
) -> i32 {
    keep_handed_down(handed_down);
    let fail = |msg: String| {
        send_failure(out.as_fd(), &msg);
        CODE_SETUP
    };
    let resolved = match image::resolve(&req.func) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let payload = match frame::read_frame(arg.as_fd()) {
        Ok((FrameKind::Value, payload)) => payload,
        Ok((kind, _)) => return fail(format!("expected the argument, got a {kind:?} frame")),
        // The parent died or gave up before sending the argument.
        Err(e) => return fail(format!("cannot read the argument: {e}")),
    };
    drop(arg);
    resolved.run(Cow::Owned(payload), Some(out.as_fd()))
}
