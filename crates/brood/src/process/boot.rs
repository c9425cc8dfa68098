//! Start-up of a process brood re-executed: [`init`] takes over a Spawn child or
//! the fork server before the program's own `main` runs.

use super::child::CODE_SETUP;
use super::{forkserver, spawn};
use crate::error::{Error, Result};

pub(crate) use crate::runtime::ENV;

/// The first line of a program's `main`.
///
/// In a process that brood started by re-execution (a [`StartMethod::Spawn`](crate::StartMethod::Spawn)
/// child, or the fork server) it takes over — runs the requested function or
/// serves — and never returns. Anywhere else it returns at once; calling it
/// again costs one atomic load.
///
/// ```
/// # #[allow(clippy::needless_doctest_main)]
/// fn main() {
///     brood::init();
///     // … the program …
/// }
/// ```
///
/// Tests, benches and doctests that do not own `main` use
/// [`init_before_main!`](crate::init_before_main) instead.
pub fn init() {
    if crate::runtime::mark_init_done() {
        return;
    }
    let Some(marker) = std::env::var_os(ENV) else {
        return;
    };
    // Our own children must not take the marker for theirs. init runs first in
    // `main` (or before it), before other threads; with threads already there
    // the environment cannot be changed soundly, and the marker stays (brood
    // sets it afresh for the children it re-executes).
    crate::sys::env::remove_if_single_threaded(ENV);
    // brood's set-up here (the request, its descriptors, a pool worker's
    // channel) must not fail for a tight soft descriptor limit: raised now,
    // the program's is set again just before the function runs.
    crate::fdlimit::make_room();
    // We run /proc/self/exe, which the kernel names `exe`: `ps -e`, `top`
    // and `pgrep` see the program's name instead (argv[0] is brood's title).
    if let Some(title) = std::env::args_os().next() {
        crate::sys::proctitle::set_comm(&title.to_string_lossy());
    }
    let marker = marker.to_string_lossy().into_owned();
    let request = marker
        .split_once(':')
        .and_then(|(what, pid)| Some((what, pid.parse::<u32>().ok()?)));
    match request {
        Some(("spawn", parent)) => spawn::child_main(parent),
        Some(("server", client)) => forkserver::server::main(client),
        _ => {
            eprintln!("brood: {ENV}={marker:?} is not a brood request; exiting");
            crate::exit::exit_now(CODE_SETUP)
        }
    }
}

/// Runs [`init`] before `main`, from the executable's `.init_array`: for
/// integration tests, benches and examples whose `main` is not yours (libtest's).
/// Put it once at the top level of each test file that starts a [`Process`](crate::Process)
/// with [`StartMethod::Spawn`](crate::StartMethod::Spawn) or [`StartMethod::ForkServer`](crate::StartMethod::ForkServer) (the default):
/// without it the re-executed test binary would run the tests again instead of
/// the function, and the start fails.
///
/// ```
/// brood::init_before_main!();
/// # fn main() {}
/// ```
///
/// The entry is an ordinary ELF constructor: it runs after the C library is set
/// up, in link order with other constructors. The test suite checks that a
/// function run this way sees the standard library ready (`std::env::args`
/// included); a stack overflow there aborts without Rust's usual message, since
/// that handler is installed by `main`'s runtime setup.
#[macro_export]
macro_rules! init_before_main {
    () => {
        #[used]
        #[unsafe(link_section = ".init_array")]
        static __BROOD_INIT_BEFORE_MAIN: extern "C" fn() = {
            extern "C" fn __brood_init_before_main() {
                $crate::init();
            }
            __brood_init_before_main
        };
    };
}

/// Refuses to start a child from a re-executed process that skipped [`init`]
/// (it would otherwise start its parent's work again, recursively).
pub(super) fn check_initialised() -> Result<()> {
    if crate::runtime::init_skipped() {
        return Err(Error::NotInitialised {
            pid: crate::sys::getpid(),
            marker: ENV,
        });
    }
    Ok(())
}
