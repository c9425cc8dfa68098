//! Process results for every start method: values, large arguments and results
//! both ways, panics, signals, timeouts, a multi-threaded parent.

mod support;

use brood::{JoinError, Process, Signal, StartMethod};
use std::time::Duration;

brood::init_before_main!();

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

fn add(x: (u64, u64)) -> u64 {
    x.0 + x.1
}

fn greet(name: String) -> (String, Vec<i32>) {
    (format!("hello {name}"), vec![1, -2, 3])
}

fn echo_len(v: Vec<u8>) -> (usize, bool) {
    (v.len(), v == make(v.len()))
}

fn make(n: usize) -> Vec<u8> {
    vec![(n % 251) as u8; n]
}

fn echo(v: Vec<u8>) -> Vec<u8> {
    v
}

fn boom(what: String) -> u8 {
    panic!("it broke: {what}")
}

fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn exit_early(code: i32) -> u8 {
    brood::exit_now(code)
}

#[test]
fn join_returns_the_value() {
    for m in METHODS {
        let h = Process::new(add, (2, 40)).start_method(m).start().unwrap();
        assert_eq!(h.join().unwrap(), 42, "{m:?}");
        assert_eq!(h.exitcode(), Some(0));
        assert!(!h.is_alive());
        assert!(matches!(h.join(), Err(JoinError::AlreadyJoined { .. })));
        let h = Process::new(greet, "bob".to_string())
            .start_method(m)
            .name("g")
            .start()
            .unwrap();
        assert_eq!(h.name(), "g");
        assert_eq!(h.join().unwrap(), ("hello bob".to_string(), vec![1, -2, 3]));
    }
}

#[test]
fn hundred_megabytes_each_way() {
    const N: usize = 100 << 20;
    let want = make(N);
    for m in METHODS {
        let h = Process::new(echo_len, make(N))
            .start_method(m)
            .start()
            .unwrap();
        assert_eq!(h.join().unwrap(), (N, true), "{m:?} argument");
        let h = Process::new(make, N).start_method(m).start().unwrap();
        assert!(h.join().unwrap() == want, "{m:?} result");
        let h = Process::new(echo, make(N)).start_method(m).start().unwrap();
        assert!(h.join().unwrap() == want, "{m:?} both ways");
    }
}

#[test]
fn a_panic_comes_back_with_its_message_and_location_and_prints_nothing() {
    // The fork server (started on first use) inherits the stderr of that
    // moment: make sure that is the captured one.
    let ((), stderr) = support::capture_stderr(|| {
        for m in METHODS {
            let h = Process::new(boom, "gears".to_string())
                .start_method(m)
                .start()
                .unwrap();
            match h.join() {
                Err(JoinError::Panicked {
                    message,
                    pid,
                    location,
                }) => {
                    assert_eq!(message, "it broke: gears", "{m:?}");
                    assert_eq!(pid, h.pid());
                    let location = location.unwrap_or_else(|| panic!("{m:?}: no location"));
                    assert!(
                        location.contains("process_results.rs:"),
                        "{m:?}: {location}"
                    );
                }
                other => panic!("{m:?}: {other:?}"),
            }
            assert_eq!(h.exitcode(), Some(1));
        }
    });
    assert!(
        !stderr.contains("it broke"),
        "the panic was printed on the parent's stderr: {stderr:?}"
    );
}

#[test]
fn a_killed_child_reports_the_signal() {
    for m in METHODS {
        let h = Process::new(sleepy, 60_000)
            .start_method(m)
            .start()
            .unwrap();
        let err = h.join_timeout(Duration::from_millis(30)).unwrap_err();
        assert!(matches!(err, JoinError::Timeout { .. }), "{m:?}: {err:?}");
        assert!(h.is_alive());
        h.terminate().unwrap();
        match h.join() {
            Err(JoinError::Killed { signal, .. }) => assert_eq!(signal, Signal::TERM),
            other => panic!("{m:?}: {other:?}"),
        }
        assert_eq!(h.exitcode(), Some(-15));
        let h = Process::new(sleepy, 60_000)
            .start_method(m)
            .start()
            .unwrap();
        h.kill().unwrap();
        assert!(matches!(
            h.join(),
            Err(JoinError::Killed {
                signal: Signal::KILL,
                ..
            })
        ));
        assert_eq!(h.exitcode(), Some(-9));
    }
}

#[test]
fn an_exit_without_result_says_so() {
    for m in METHODS {
        let h = Process::new(exit_early, 7).start_method(m).start().unwrap();
        match h.join() {
            Err(JoinError::NoResult { status, .. }) => assert_eq!(status.code(), Some(7), "{m:?}"),
            other => panic!("{m:?}: {other:?}"),
        }
    }
}

#[test]
fn a_closure_without_captures_crosses_too() {
    for m in METHODS {
        let h = Process::new(|x: i32| x * 3, 5)
            .start_method(m)
            .start()
            .unwrap();
        assert_eq!(h.join().unwrap(), 15, "{m:?}");
    }
}

fn argv0_seen(_: ()) -> bool {
    std::env::args_os().next().is_some()
}

#[test]
fn the_standard_library_is_ready_in_a_reexecuted_child() {
    for m in METHODS {
        let h = Process::new(argv0_seen, ())
            .start_method(m)
            .start()
            .unwrap();
        assert!(
            h.join().unwrap(),
            "{m:?}: std::env::args() is empty in the child"
        );
    }
}

/// Starts a grandchild (a plain fork that parks), then parks.
fn with_grandchild(_: ()) -> u8 {
    // SAFETY: the grandchild only parks (pause) until a signal ends it.
    if unsafe { libc::fork() } == 0 {
        loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        }
    }
    loop {
        // SAFETY: as above.
        unsafe { libc::pause() };
    }
}

/// Python forbids daemonic processes to have children; brood allows it, and with
/// `Tree::Group` terminating the daemon reaches its children too.
#[test]
fn a_daemon_may_have_children_and_a_group_terminate_reaches_them() {
    // Orphans come to us, so that we reap the grandchild (and see it end).
    support::become_subreaper();
    for m in METHODS {
        let h = Process::new(with_grandchild, ())
            .daemon(true)
            .tree(brood::Tree::Group)
            .start_method(m)
            .start()
            .unwrap();
        let grandchild = loop {
            let children = brood::os::procfs::children(h.pid()).unwrap();
            if let Some(&pid) = children.unwrap_or_default().first() {
                break pid;
            }
            std::thread::yield_now();
        };
        let fd = brood::os::PidFd::open(grandchild).unwrap();
        // The killed grandchild stays in the group as our zombie until we reap
        // it below, so the group looks alive for the whole (short) grace.
        let status = h.terminate_timeout(Duration::from_millis(100)).unwrap();
        assert_eq!(status.signal(), Some(Signal::TERM), "{m:?}");
        assert!(
            fd.wait_exited(Some(Duration::from_secs(2))).unwrap(),
            "{m:?}: the grandchild survived"
        );
        support::reap_if_ours(grandchild);
    }
}

fn stdin_is_null(_: ()) -> bool {
    std::fs::read_link("/proc/self/fd/0").is_ok_and(|p| p == std::path::Path::new("/dev/null"))
}

#[test]
fn the_child_reads_dev_null() {
    for m in METHODS {
        let h = Process::new(stdin_is_null, ())
            .start_method(m)
            .start()
            .unwrap();
        assert!(h.join().unwrap(), "{m:?}");
    }
}
