//! A program that forgot `brood::init()` and whose `main` ends at once (here:
//! a constructor that exits in the re-executed copy, before `main`): the copy
//! may be gone before brood's first message reaches it. The start still says
//! `Error::NotInitialised`, every time.

mod support;

use brood::{Error, Process, StartMethod};

/// In a copy brood re-executed (its marker is set), leave before `main`, as a
/// program would whose `main` skips `brood::init()` and returns at once.
extern "C" fn leave_at_once_if_reexecuted() {
    if std::env::var_os("__BROOD_CHILD").is_some() {
        // SAFETY: `_exit` ends the process without running anything else.
        unsafe { libc::_exit(0) };
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static LEAVE_AT_ONCE: extern "C" fn() = leave_at_once_if_reexecuted;

/// Starts per test: a race lost 1 time in 10 shows.
const TRIES: usize = 50;

fn nothing(_: ()) -> u8 {
    0
}

fn every_start_is_not_initialised(method: StartMethod) {
    for i in 0..TRIES {
        match Process::new(nothing, ()).start_method(method).start() {
            Err(Error::NotInitialised { marker, .. }) => assert_eq!(marker, "__BROOD_CHILD"),
            other => panic!("{method:?} start {i}: {other:?}"),
        }
        assert!(support::children_of(support::me()).is_empty());
    }
}

#[test]
fn spawn_of_a_program_that_ends_at_once() {
    every_start_is_not_initialised(StartMethod::Spawn);
}

#[test]
fn fork_server_of_a_program_that_ends_at_once() {
    every_start_is_not_initialised(StartMethod::ForkServer);
}
