//! Where a `SharedSlice` may cross: a pool task's argument or result, and a
//! `Fork` `Process` argument. Elsewhere (an initializer's argument, a
//! `Spawn`/`ForkServer` `Process` argument) it is refused before any child
//! exists, with an error that names the rule.

mod support;

use brood::{Error, Pool, Process, SharedSlice, StartMethod};
use support::*;

brood::init_before_main!();

fn total(data: SharedSlice<u64>) -> u64 {
    data.iter().sum()
}

fn keep(data: SharedSlice<u64>) -> SharedSlice<u64> {
    data
}

fn assert_refused(err: Error, of: &str) {
    let text = err.to_string();
    match err {
        Error::ArgumentEncode { of: got, reason } => {
            assert_eq!(got, of);
            assert!(
                reason.contains("a SharedSlice crosses only in a pool task's argument or result"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        text.starts_with(&format!("cannot encode the argument of {of}: ")),
        "{text}"
    );
}

#[test]
fn an_initializer_argument_is_refused_naming_the_rule() {
    let data = SharedSlice::from_fn(1000, |i| i as u64).unwrap();
    let err = Pool::builder(2)
        .initializer(keep, data)
        .build()
        .unwrap_err();
    assert_refused(err, "the pool's initializer");
    assert!(children_of(me()).is_empty(), "no worker was made");
    // What works instead: the data in each item, mapped once per worker.
    let data = SharedSlice::from_fn(1000, |i| i as u64).unwrap();
    let pool = Pool::new(2).unwrap();
    let sums = pool.try_map(total, (0..4).map(|_| data.clone())).unwrap();
    assert_eq!(sums, [499_500; 4]);
}

#[test]
fn a_process_argument_crosses_with_fork_and_is_refused_otherwise() {
    let data = SharedSlice::from_fn(1000, |i| i as u64).unwrap();
    let forked = Process::new(total, data.clone())
        .start_method(StartMethod::Fork)
        .start()
        .unwrap();
    assert_eq!(forked.join().unwrap(), 499_500);
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let err = Process::new(total, data.clone())
            .name("summer")
            .start_method(method)
            .start()
            .unwrap_err();
        assert_refused(err, "process \"summer\"");
        assert!(
            children_of(me()).is_empty(),
            "{method:?}: no child was made"
        );
        assert_eq!(
            brood::fork_server_pid(),
            None,
            "{method:?}: nor a fork server"
        );
    }
}
