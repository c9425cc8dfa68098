//! Per-worker state: the value a pool's
//! [initializer](super::PoolBuilder::initializer) returns, made once in each
//! worker (Python's `initializer=`), and lent to every `fn(&S, A) -> R` task
//! that worker runs.
//!
//! The initializer and the task cross like any pool function (an offset in
//! the executable, see `worker.rs`); the state itself never crosses: it lives
//! in the worker, so it may hold anything — a loaded model, an open file, a
//! table — serializable or not.

use super::chunk::{run_chunk, run_item};
use crate::process::child::catch;
use crate::sys::image::{self, FnRef};
use crate::wire::PanicReport;
use serde::{Serialize, de::DeserializeOwned};
use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::os::fd::BorrowedFd;

thread_local! {
    /// The worker's state, once its initializer ran.
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// Why the initializer failed, for the hello.
    static INIT_FAILED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs the worker's initializer: its value becomes the state.
pub(super) struct RunInit;

impl<I, S> image::Runner<fn(I) -> S> for RunInit
where
    I: DeserializeOwned + 'static,
    S: 'static,
{
    fn run(f: fn(I) -> S, arg: Cow<'_, [u8]>, _out: Option<BorrowedFd<'_>>) -> i32 {
        let outcome = match postcard::from_bytes::<I>(&arg) {
            Err(e) => Err(format!("cannot decode the initializer's argument: {e}")),
            Ok(i) => {
                catch(move || f(i)).map_err(|PanicReport { message, location }| match location {
                    Some(l) => format!("panicked at {l}: {message}"),
                    None => format!("panicked: {message}"),
                })
            }
        };
        match outcome {
            Ok(state) => STATE.with(|s| *s.borrow_mut() = Some(Box::new(state))),
            Err(why) => INIT_FAILED.with(|w| *w.borrow_mut() = Some(why)),
        }
        0
    }
}

/// Runs the initializer named by `init`; why it failed, if it did.
pub(super) fn initialize(init: &(FnRef, Vec<u8>)) -> Result<(), String> {
    let resolved = image::resolve(&init.0).map_err(|e| e.to_string())?;
    resolved.run(Cow::Borrowed(&init.1), None);
    INIT_FAILED
        .with(|w| w.borrow_mut().take())
        .map_or(Ok(()), Err)
}

/// Runs one `fn(&S, A) -> R` task against the worker's state.
pub(super) struct RunWithState;

impl<S, A, R> image::Runner<fn(&S, A) -> R> for RunWithState
where
    S: 'static,
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    /// Runs a whole chunk: `arg` holds its items, `out` is the pool's socket.
    fn run(f: fn(&S, A) -> R, arg: Cow<'_, [u8]>, out: Option<BorrowedFd<'_>>) -> i32 {
        let Some(sock) = out else { return 1 };
        STATE.with(|s| {
            let s = s.borrow();
            let state = s.as_ref().and_then(|b| b.downcast_ref::<S>());
            run_chunk(&arg, sock, |item, batch, catcher| {
                let Some(state) = state else {
                    return batch.push_failure(&format!(
                        "the worker has no state of type {}: give the pool an initializer \
                         that returns one (PoolBuilder::initializer)",
                        std::any::type_name::<S>()
                    ));
                };
                run_item(item, batch, catcher, |a| f(state, a));
            })
        })
    }
}

/// The crossing form of an initializer.
pub(super) fn init_ref<I, S>(f: fn(I) -> S) -> Result<FnRef, image::CrossingError>
where
    I: DeserializeOwned + 'static,
    S: 'static,
{
    image::fn_ref::<fn(I) -> S, RunInit>(f)
}

/// The crossing form of a task that sees the worker's state.
pub(super) fn task_ref<S, A, R>(f: fn(&S, A) -> R) -> Result<FnRef, image::CrossingError>
where
    S: 'static,
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    image::fn_ref::<fn(&S, A) -> R, RunWithState>(f)
}
