//! What a `std::process::Command` user reaches for, on real processes:
//! `output`, `status`, stderr merged into stdout, `arg0`, credentials,
//! `process_group` and `pre_exec` (the full-fork path).

mod support;

use brood::{Command, Error, SpawnError, Stdio, Tree};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::*;

/// `/proc/<pid>/status` line `name:` (without the name), if the process exists.
fn status_line(pid: u32, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `output` captures both streams and does not turn a failure into an error;
/// its stdin is /dev/null, as std's.
#[test]
fn output_captures_both_streams_and_returns_any_status() {
    let out = Command::new("sh")
        .args([
            "-c",
            "echo out; echo err >&2; readlink /proc/self/fd/0; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"out\n/dev/null\n");
    assert_eq!(out.stderr, b"err\n");
    // `run` with the same command: check is on.
    let failed = Command::new("sh").args(["-c", "exit 3"]).run();
    assert!(matches!(failed, Err(Error::Failed { .. })), "{failed:?}");
}

/// `status` inherits every stream: the child's stdout is our own.
#[test]
fn status_inherits_the_streams() {
    let ours = std::fs::read_link("/proc/self/fd/1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("fd1");
    let status = Command::new("sh")
        .args([
            "-c",
            "v=$(readlink /proc/$$/fd/1); echo \"$v\" > \"$0\"; exit 6",
        ])
        .arg0(&seen)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(6));
    let theirs = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(theirs.trim_end(), ours.to_string_lossy());
}

/// stderr merged into a piped stdout: one pipe, so writes keep their order.
#[test]
fn stderr_merged_into_stdout_keeps_the_order_of_writes() {
    let script = "i=0; while [ $i -lt 200 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
    let out = Command::new("sh")
        .args(["-c", script])
        .stderr(Stdio::merge_into_stdout())
        .output()
        .unwrap();
    let expected: String = (0..200).map(|i| format!("out{i}\nerr{i}\n")).collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    assert!(out.stderr.is_empty());

    // With spawn: no separate stderr pipe; the merged text is on stdout.
    let mut p = Command::new("sh")
        .args(["-c", "echo a; echo b >&2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::merge_into_stdout())
        .spawn()
        .unwrap();
    assert!(p.stderr.is_none());
    let (text, _) = p.communicate(None, None).unwrap();
    assert_eq!(text, b"a\nb\n");
}

/// Merging is for stderr only; asking it for stdout is a typed error and no
/// process is made.
#[test]
fn merge_for_stdout_is_refused() {
    let err = Command::new("true")
        .stdout(Stdio::merge_into_stdout())
        .spawn()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Spawn {
                cause: SpawnError::MergeNotStderr { stream: "stdout" },
                ..
            }
        ),
        "{err:?}"
    );
}

/// `arg0` is what the child sees as argv[0]; the program is still executed.
#[test]
fn arg0_names_the_child() {
    let p = Command::new("sleep")
        .arg0("brood-renamed-sleep")
        .arg("30")
        .spawn()
        .unwrap();
    // vfork lets us go on once execve has swapped the memory in, a moment
    // before the kernel writes the new argument area: wait for it (bounded).
    let read = || std::fs::read(format!("/proc/{}/cmdline", p.pid())).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read().is_empty() && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(read(), b"brood-renamed-sleep\x0030\x00");
    let exe = std::fs::read_link(format!("/proc/{}/exe", p.pid())).unwrap();
    assert!(exe.ends_with("sleep"), "{exe:?}");
    p.kill().unwrap();
    p.wait().unwrap();
}

/// As root: the child runs with the uid, gid and supplementary groups asked
/// for, as its `/proc/<pid>/status` shows.
#[test]
fn uid_gid_groups_apply_in_the_child() {
    let root = status_line(me(), "Uid").is_some_and(|l| l.starts_with("0 "));
    if !root {
        eprintln!("skipped: changing credentials needs root");
        return;
    }
    let p = Command::new("sleep")
        .arg("30")
        .uid(65534)
        .gid(65533)
        .groups(&[65531, 65532])
        .spawn()
        .unwrap();
    // The credentials are set before execve, so once spawn returned they show.
    assert_eq!(
        status_line(p.pid(), "Uid").unwrap(),
        "65534 65534 65534 65534"
    );
    assert_eq!(
        status_line(p.pid(), "Gid").unwrap(),
        "65533 65533 65533 65533"
    );
    assert_eq!(status_line(p.pid(), "Groups").unwrap(), "65531 65532");
    p.kill().unwrap();
    p.wait().unwrap();
}

/// A credential the kernel refuses fails in the child and comes back as a
/// typed error naming the step: more supplementary groups than `NGROUPS_MAX`
/// (65536) for everyone, and `setuid(0)` without root.
#[test]
fn refused_credentials_name_the_step() {
    let too_many = vec![1u32; 70_000];
    let err = Command::new("true").groups(&too_many).spawn().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Spawn {
                cause: SpawnError::Setup {
                    step: "setgroups",
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    let root = status_line(me(), "Uid").is_some_and(|l| l.starts_with("0 "));
    if !root {
        let err = Command::new("true").uid(0).spawn().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Spawn {
                    cause: SpawnError::Setup { step: "setuid", .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

/// `process_group(0)` makes the child lead a new group; `process_group(pgid)`
/// joins an existing one. With `Tree::Group` it is a typed error.
#[test]
fn process_group_places_the_child() {
    let leader = Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    let lpid = leader.pid();
    let pgrp = |pid: u32| brood::os::procfs::stat(pid).unwrap().unwrap().pgrp;
    assert_eq!(pgrp(lpid), Some(lpid));
    let member = Command::new("sleep")
        .arg("30")
        .process_group(lpid as i32)
        .spawn()
        .unwrap();
    assert_eq!(pgrp(member.pid()), Some(lpid));
    // Only the placement: a kill still reaches the child alone.
    leader.kill().unwrap();
    leader.wait().unwrap();
    assert!(alive(member.pid()));
    member.kill().unwrap();
    member.wait().unwrap();

    let err = Command::new("true")
        .process_group(0)
        .tree(Tree::Group)
        .spawn()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Spawn {
                cause: SpawnError::ProcessGroupWithTree { pgid: 0, .. },
                ..
            }
        ),
        "{err:?}"
    );
}

/// `pre_exec` runs in the child just before execve, in its own copy of memory
/// (a full fork: the flag it sets is not ours), and its error is typed.
#[test]
fn pre_exec_runs_in_a_forked_child() {
    let touched = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&touched);
    let mut cmd = Command::new("pwd");
    // SAFETY: the closure only stores to an atomic and changes directory.
    unsafe {
        cmd.pre_exec(move || {
            flag.store(true, Ordering::SeqCst);
            std::env::set_current_dir("/tmp")
        })
    };
    let out = cmd.run().unwrap();
    assert_eq!(out.stdout, b"/tmp\n");
    assert!(
        !touched.load(Ordering::SeqCst),
        "pre_exec ran in our memory: not a full fork"
    );

    let mut failing = Command::new("true");
    // SAFETY: the closure only returns an error.
    unsafe { failing.pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EPERM))) };
    let err = failing.spawn().unwrap_err();
    match err {
        Error::Spawn {
            cause: SpawnError::Setup { step, source },
            ..
        } => {
            assert_eq!(step, "pre_exec");
            assert_eq!(source.raw_os_error(), Some(libc::EPERM));
        }
        other => panic!("{other:?}"),
    }
    // The failed child was reaped: no zombie left behind.
    assert!(zombies_of(me()).is_empty());
}
