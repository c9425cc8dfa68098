//! `Limits` on every kind, observed on the real child: `/proc/<pid>/limits`
//! and `/proc/<pid>/stat` of a child that waits, and how a child that hits a
//! limit ends (SIGXCPU; an allocation refused by RLIMIT_AS).

mod support;

use brood::{Command, JoinError, Limits, Process, Signal, StartMethod};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

fn limits() -> Limits {
    Limits::new()
        .address_space(3 << 30)
        .cpu_time(Duration::from_secs(50))
        .open_files(77)
        .core_size(0)
        .nice(7)
}

/// The soft and hard values of one row of `/proc/<pid>/limits`.
fn limit_row(pid: u32, name: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    let fields: Vec<&str> = row[name.len()..].split_whitespace().collect();
    (fields[0].to_string(), fields[1].to_string())
}

/// Field 19 of `/proc/<pid>/stat`: the nice value.
fn nice_of(pid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(16).unwrap().parse().unwrap()
}

fn check(pid: u32, what: &str) {
    assert_eq!(
        limit_row(pid, "Max address space"),
        ((3u64 << 30).to_string(), (3u64 << 30).to_string()),
        "{what}"
    );
    assert_eq!(
        limit_row(pid, "Max cpu time"),
        ("50".into(), "51".into()),
        "{what}"
    );
    assert_eq!(
        limit_row(pid, "Max open files"),
        ("77".into(), "77".into()),
        "{what}"
    );
    assert_eq!(
        limit_row(pid, "Max core file size"),
        ("0".into(), "0".into()),
        "{what}"
    );
    assert_eq!(nice_of(pid), 7, "{what}");
}

/// Stays a while (the test kills it once it has looked).
fn nap(seconds: u64) {
    std::thread::sleep(Duration::from_secs(seconds))
}

#[test]
fn a_command_child_has_its_limits_and_niceness() {
    let mut cleanup = Cleanup::default();
    let child = Command::new("sleep")
        .arg("30")
        .limits(limits())
        .spawn()
        .unwrap();
    cleanup.add(child.pid());
    check(child.pid(), "Command");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn process_children_of_every_start_method_have_their_limits() {
    for m in METHODS {
        let mut cleanup = Cleanup::default();
        let h = Process::new(nap, 30)
            .start_method(m)
            .limits(limits())
            .start()
            .unwrap();
        cleanup.add(h.pid());
        // A re-executed child sets its limits between clone and exec; a
        // forked one just after the fork: look until they are there.
        let t = Instant::now();
        loop {
            let (soft, _) = limit_row(h.pid(), "Max open files");
            if soft == "77" {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{m:?}: limits never set"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        check(h.pid(), &format!("{m:?}"));
        h.kill().unwrap();
        let _ = h.join();
    }
}

#[test]
fn cpu_time_ends_a_spinning_child_with_sigxcpu() {
    let mut cleanup = Cleanup::default();
    let t = Instant::now();
    let child = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .limits(Limits::new().cpu_time(Duration::from_secs(1)))
        .spawn()
        .unwrap();
    cleanup.add(child.pid());
    let status = child
        .wait_timeout(Duration::from_secs(20))
        .unwrap()
        .expect("ended");
    assert_eq!(status.signal(), Some(Signal::XCPU), "{status}");
    assert!(t.elapsed() >= Duration::from_millis(900));
}

/// Allocates and touches 1 GiB.
fn gigabyte(_: ()) -> usize {
    let v = vec![1u8; 1 << 30];
    v.iter().step_by(4096).map(|&b| b as usize).sum()
}

#[test]
fn an_address_space_limit_refuses_a_gigabyte_in_every_start_method() {
    for m in METHODS {
        let mut cleanup = Cleanup::default();
        let h = Process::new(gigabyte, ())
            .start_method(m)
            .limits(Limits::new().address_space(768 << 20))
            .start()
            .unwrap();
        cleanup.add(h.pid());
        match h.join() {
            // Rust's allocation-failure handler aborts.
            Err(JoinError::Killed { signal, .. }) => assert_eq!(signal, Signal::ABORT, "{m:?}"),
            other => panic!("{m:?}: a 1 GiB allocation under 768 MiB gave {other:?}"),
        }
    }
    // Without the limit the same function succeeds.
    let h = Process::new(gigabyte, ()).start().unwrap();
    assert_eq!(h.join().unwrap(), 1 << 18);
}

#[test]
fn a_limit_the_child_may_not_set_is_an_error_naming_the_call() {
    // Raising a hard limit past this process's own needs privilege: drop it
    // first in a forked copy of the test.
    require_own_process();
    let code = brood::fork_with(|| {
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(u64::MAX);
        // SAFETY: setuid in a single-purpose forked copy of the test.
        if unsafe { libc::setgid(65534) } != 0 || unsafe { libc::setuid(65534) } != 0 {
            return 10;
        }
        let e = Command::new("true")
            .limits(Limits::new().open_files(hard.saturating_add(1000)))
            .spawn()
            .unwrap_err();
        if e.to_string().contains("setrlimit") {
            0
        } else {
            eprintln!("{e}");
            11
        }
    })
    .unwrap()
    .wait()
    .unwrap();
    assert_eq!(code.code(), Some(0));
}

fn inc(x: u32) -> u32 {
    x + 1
}

/// An address-space limit below what this process maps: a pool of forked
/// workers (which start with all of it) is refused before any worker exists,
/// with a message about memory — it was `WorkerDidNotConnect { how: "exited
/// with 0" }`. Workers that start small (ForkServer, Spawn) take the limit.
#[test]
fn an_address_space_below_the_parent_is_refused_for_forked_workers() {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    let mapped = pages * 4096;
    let small = Limits::new().address_space(16 << 20);
    assert!(mapped > 16 << 20, "this test maps {mapped} bytes");
    let before = children_of(me());
    let err = brood::Pool::builder(1)
        .start_method(StartMethod::Fork)
        .limits(small)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, brood::Error::AddressSpaceBelowParent { limit, .. } if limit == 16 << 20),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("memory (address space)"), "{text}");
    assert_eq!(children_of(me()), before, "no worker was made");
    for method in [StartMethod::ForkServer, StartMethod::Spawn] {
        let pool = brood::Pool::builder(1)
            .start_method(method)
            .limits(small)
            .build()
            .unwrap();
        assert_eq!(pool.try_map(inc, [1]).unwrap(), [2], "{method:?}");
    }
}
