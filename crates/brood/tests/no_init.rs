//! A test binary that forgot `brood::init_before_main!()` (a program that
//! forgot `brood::init()` first in `main`): a re-executed child runs this
//! binary's own `main` instead of the function. The start says so with a
//! typed error naming the cause, for Spawn and for the fork server, and the
//! child's own attempt to start children fails too (no recursion).

mod support;

use brood::{Error, Process, StartMethod};

fn nothing(_: ()) -> u8 {
    0
}

#[test]
fn spawn_without_init_is_a_typed_error() {
    // In the re-executed copy, this same test runs again (libtest's main), and
    // its start is refused: it was started by brood but init did not run.
    match Process::new(nothing, ())
        .start_method(StartMethod::Spawn)
        .start()
    {
        Err(Error::NotInitialised { marker, .. }) => assert_eq!(marker, "__BROOD_CHILD"),
        other => panic!("{other:?}"),
    }
    assert!(support::children_of(support::me()).is_empty());
}

#[test]
fn a_fork_server_without_init_is_a_typed_error() {
    match Process::new(nothing, ())
        .start_method(StartMethod::ForkServer)
        .start()
    {
        Err(e @ Error::NotInitialised { .. }) => {
            assert!(e.to_string().contains("brood::init()"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(support::children_of(support::me()).is_empty());
}
