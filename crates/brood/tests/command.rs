//! Command / Popen against real processes: seed rows S3/S4, communicate (f), bad
//! input (g), trees, escalation, and signals never reaching a reused pid.
//! The lifecycle rows that need a parent to die (S1, S2, guarantee (a)) are in
//! `command_lifecycle.rs`, which runs its own helper processes.

mod support;

use brood::{Command, Error, ExitStatus, OnParentDeath, Signal, SpawnError, Stdio, Tree};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use support::*;

fn spawn_error(result: Result<brood::Popen, Error>) -> (String, SpawnError, String) {
    match result {
        Err(e @ Error::Spawn { .. }) => {
            let text = e.to_string();
            let Error::Spawn { program, cause } = e else {
                unreachable!()
            };
            (program, cause, text)
        }
        other => panic!("expected Error::Spawn, got {other:?}"),
    }
}

/// S3: a signal to the child ends the child; the parent lives, and the return
/// code is -N as in Python.
#[test]
fn s3_signal_to_child_gives_minus_n() {
    for (sig, code) in [(Signal::TERM, -15), (Signal::KILL, -9)] {
        let child = Command::new("sleep").arg("60").spawn().unwrap();
        assert!(running(child.pid()));
        child.send_signal(sig).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(sig));
        assert_eq!(child.returncode(), Some(code));
        assert!(!running(child.pid()));
    }
}

/// S4: children that end unwaited, with their Popen dropped, are never zombies.
#[test]
fn s4_no_zombie_after_unwaited_end() {
    let mut watched = Vec::new();
    for i in 0..50 {
        let p = Command::new("sh")
            .args(["-c", &format!("exit {}", i % 3)])
            .spawn()
            .unwrap();
        let pid = p.pid();
        // A pidfd of our own, opened while the child cannot have been reaped
        // yet... or already was (then there is nothing to watch).
        if let Some(fd) = pidfd(pid) {
            watched.push((pid, fd));
        }
        drop(p);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (pid, fd) in &watched {
        assert!(
            exits_within(fd, Duration::from_secs(5)),
            "child {pid} did not end"
        );
        // Exited; now it must not stay a zombie: the reaper collects it.
        while stat(*pid).is_some_and(|(s, p)| s == 'Z' && p == me()) {
            assert!(Instant::now() < deadline, "child {pid} stayed a zombie");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn run_captures_and_checks() {
    let out = Command::new("sh")
        .args(["-c", "echo out; echo err >&2"])
        .run()
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status, ExitStatus::Exited(0));

    match Command::new("sh")
        .args(["-c", "echo so-far; kill -9 $$"])
        .run()
    {
        Err(Error::Failed {
            status,
            stdout,
            program,
            ..
        }) => {
            assert_eq!(status.exitcode(), -9);
            assert_eq!(stdout, b"so-far\n");
            assert_eq!(program, "sh");
        }
        other => panic!("{other:?}"),
    }
    let out = Command::new("sh")
        .args(["-c", "exit 7"])
        .check(false)
        .run()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));

    let out = Command::new("wc")
        .arg("-c")
        .input(vec![b'x'; 100_000])
        .run()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100000");
}

/// (f) 64 MiB each way through `cat`: neither side may block the other.
#[test]
fn f_communicate_64_mib_both_ways() {
    let input: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut p = Command::new("sh")
        .args(["-c", "cat; head -c 1000000 /dev/zero >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = p
        .communicate(Some(&input), Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(out.len(), input.len());
    assert!(out == input, "bytes differ");
    assert_eq!(err.len(), 1_000_000);
    assert_eq!(p.returncode(), Some(0));
    assert!(p.stdin.is_none() && p.stdout.is_none() && p.stderr.is_none());
}

/// (f) the timeout path: partial output, child left running, a later call
/// continues and returns everything from the start (as Python's does).
#[test]
fn f_communicate_timeout_then_continue() {
    let (control, writer) = std::io::pipe().unwrap();
    let mut p = Command::new("sh")
        .args(["-c", "echo first; echo warn >&2; read x; echo second"])
        .stdin(control)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    match p.communicate(None, Some(Duration::from_millis(300))) {
        Err(Error::Timeout {
            stdout,
            stderr,
            pid,
            timeout,
            ..
        }) => {
            assert_eq!(stdout, b"first\n");
            assert_eq!(stderr, b"warn\n");
            assert_eq!(pid, p.pid());
            assert_eq!(timeout, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    assert!(p.is_alive());
    assert!(running(p.pid()));
    let mut writer = writer;
    writer.write_all(b"go\n").unwrap();
    drop(writer);
    let (out, err) = p.communicate(None, Some(Duration::from_secs(10))).unwrap();
    assert_eq!(out, b"first\nsecond\n");
    assert_eq!(err, b"warn\n");
    assert_eq!(p.returncode(), Some(0));
}

/// (f) the timeout path with input pending, then the child killed.
#[test]
fn f_communicate_timeout_then_kill() {
    let mut p = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let big = vec![0u8; 4 << 20]; // more than a pipe holds: sleep never reads it
    let err = p
        .communicate(Some(&big), Some(Duration::from_millis(100)))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(p.stdin.is_some(), "stdin stays open for a later call");
    assert!(p.is_alive());
    p.kill().unwrap();
    assert_eq!(p.wait().unwrap().signal(), Some(Signal::KILL));
    // The next call finishes: EPIPE on stdin is not an error, stdout ends.
    let (out, _) = p.communicate(None, Some(Duration::from_secs(10))).unwrap();
    assert!(out.is_empty());
}

#[test]
fn communicate_rejects_misuse() {
    let mut p = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
    let err = p.communicate(Some(b"x"), None).unwrap_err();
    assert!(err.to_string().contains("stdin is not piped"), "{err}");
    p.communicate(None, None).unwrap();
}

/// `run` with a timeout ends the child's whole tree (Tree::Group) and says so.
#[test]
fn run_timeout_kills_the_tree() {
    become_subreaper();
    let started = Instant::now();
    let err = Command::new("sh")
        .args(["-c", "sleep 60 & echo $!; wait"])
        .tree(Tree::Group)
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap_err();
    let Error::Timeout { stdout, pid, .. } = err else {
        panic!("{err:?}")
    };
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!running(pid));
    let grandchild: u32 = String::from_utf8_lossy(&stdout).trim().parse().unwrap();
    if let Some(fd) = pidfd(grandchild) {
        assert!(
            exits_within(&fd, Duration::from_secs(1)),
            "grandchild {grandchild} survived"
        );
    }
    reap(grandchild);
}

/// (e) Tree::Group: kill() reaches a grandchild.
#[test]
fn tree_group_kill_reaches_grandchild() {
    become_subreaper();
    let mut p = Command::new("sh")
        .args(["-c", "sleep 60 & echo $!; wait"])
        .tree(Tree::Group)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(p.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let grandchild: u32 = line.trim().parse().unwrap();
    let fd = pidfd(grandchild).expect("grandchild alive");
    assert_eq!(stat(grandchild).map(|(_, ppid)| ppid), Some(p.pid()));
    p.kill().unwrap();
    assert_eq!(p.wait().unwrap().signal(), Some(Signal::KILL));
    assert!(
        exits_within(&fd, Duration::from_secs(1)),
        "grandchild {grandchild} survived"
    );
    reap(grandchild);
}

/// (d) terminate_timeout on a child that ignores SIGTERM: SIGKILL after the grace,
/// to the whole group, so that nothing of it is left.
#[test]
fn terminate_timeout_escalates() {
    let mut p = Command::new("sh")
        .args([
            "-c",
            r#"trap "" TERM; echo ready; while :; do sleep 1; done"#,
        ])
        .stdout(Stdio::piped())
        // The group takes the shell's `sleep 1` along (it ignores SIGTERM too).
        .tree(Tree::Group)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(p.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let grace = Duration::from_millis(300);
    let started = Instant::now();
    let status = p.terminate_timeout(grace).unwrap();
    assert!(started.elapsed() >= grace);
    assert_eq!(status.signal(), Some(Signal::KILL));
    assert_eq!(p.returncode(), Some(-9));
}

/// A reaped child is never signalled again: the pid may belong to someone else.
#[test]
fn signals_after_reap_are_no_ops() {
    let p = Command::new("true").spawn().unwrap();
    assert!(p.wait().unwrap().success());
    p.send_signal(Signal::KILL).unwrap();
    p.terminate().unwrap();
    p.kill().unwrap();
    assert!(!p.is_alive());
    assert_eq!(p.returncode(), Some(0));
}

/// (c) for Command: a foreign waitpid(pid) reaps our child first; every query
/// then says ReapedElsewhere, never "running", never a signal to the pid.
#[test]
fn reaped_elsewhere_answers_everywhere() {
    for _attempt in 0..50 {
        let p = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = p.pid();
        let waiter = std::thread::spawn(move || {
            let mut st = 0;
            // SAFETY: waitpid on one pid with a status word we own.
            unsafe { libc::waitpid(pid as i32, &mut st, 0) }
        });
        // Let the foreign waiter block first; it then usually wins the reap.
        while stat(pid).is_some_and(|_| !waiter_blocked(pid)) {
            std::thread::yield_now();
        }
        // SAFETY: the child is alive and unreaped (the waiter waits for it).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let foreign = waiter.join().unwrap() == pid as i32;
        if !foreign {
            continue; // brood reaped it first; try again
        }
        let gone =
            |r: Result<(), Error>| matches!(r, Err(Error::ReapedElsewhere { pid: q }) if q == pid);
        assert!(gone(p.poll().map(drop)));
        assert!(gone(p.wait().map(drop)));
        assert!(gone(p.wait_timeout(Duration::from_millis(10)).map(drop)));
        assert!(gone(p.send_signal(Signal::TERM)));
        assert!(gone(p.terminate()));
        assert!(gone(p.kill()));
        assert!(gone(
            p.terminate_timeout(Duration::from_millis(10)).map(drop)
        ));
        assert!(!p.is_alive());
        assert_eq!(p.returncode(), None);
        return;
    }
    panic!("the foreign waitpid never won the race in 50 attempts");
}

/// Is some thread of ours blocked in wait4 for `pid`? (/proc/self/task/*/syscall
/// starts with the number of the system call a thread sleeps in: `wait4`'s
/// on this architecture, where a 20 ms pause used to stand for it outside
/// x86_64.)
fn waiter_blocked(pid: u32) -> bool {
    let _ = pid;
    let wait4 = format!("{} ", libc::SYS_wait4);
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .any(|t| {
            std::fs::read_to_string(t.path().join("syscall")).is_ok_and(|s| s.starts_with(&wait4))
        })
}

/// (g) every bad input is a typed Error::Spawn naming the program and the cause.
#[test]
fn g_missing_program() {
    let (program, cause, text) = spawn_error(Command::new("brood-no-such-program").spawn());
    assert_eq!(program, "brood-no-such-program");
    assert!(matches!(cause, SpawnError::NotFound { .. }), "{cause:?}");
    assert!(
        text.contains("brood-no-such-program") && text.contains("not found"),
        "{text}"
    );

    let (_, cause, text) = spawn_error(Command::new("/no/such/dir/prog").spawn());
    assert!(matches!(cause, SpawnError::NotFound { .. }), "{cause:?}");
    assert!(text.contains("/no/such/dir/prog"), "{text}");

    let (_, cause, _) = spawn_error(Command::new("").spawn());
    assert!(matches!(cause, SpawnError::NotFound { .. }), "{cause:?}");
}

#[test]
fn g_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-executable");
    std::fs::write(&path, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (program, cause, text) = spawn_error(Command::new(&path).spawn());
    assert_eq!(program, path.to_string_lossy());
    assert!(matches!(cause, SpawnError::PermissionDenied), "{cause:?}");
    assert!(
        text.contains("not-executable") && text.contains("permission denied"),
        "{text}"
    );

    // Through PATH: EACCES wins over the ENOENT of other directories.
    let path_var = format!("/nonexistent:{}:/bin", dir.path().display());
    let (_, cause, _) = spawn_error(Command::new("not-executable").env("PATH", path_var).spawn());
    assert!(matches!(cause, SpawnError::PermissionDenied), "{cause:?}");
}

#[test]
fn g_missing_current_dir() {
    let (program, cause, text) = spawn_error(
        Command::new("true")
            .current_dir("/no/such/directory")
            .spawn(),
    );
    assert_eq!(program, "true");
    assert!(
        matches!(&cause, SpawnError::CurrentDir { dir, source } if dir.to_str() == Some("/no/such/directory") && source.raw_os_error() == Some(libc::ENOENT)),
        "{cause:?}"
    );
    assert!(text.contains("/no/such/directory"), "{text}");
}

#[test]
fn g_nul_bytes() {
    let (_, cause, text) = spawn_error(Command::new("echo").args(["ok", "bad\0arg"]).spawn());
    assert!(
        matches!(&cause, SpawnError::NulByte { what } if what == "argument 2"),
        "{cause:?}"
    );
    assert!(text.contains("echo") && text.contains("NUL"), "{text}");

    let (_, cause, _) = spawn_error(Command::new("echo").env("BAD\0KEY", "v").spawn());
    assert!(matches!(cause, SpawnError::NulByte { .. }), "{cause:?}");
    let (_, cause, text) = spawn_error(Command::new("echo").env("KEY", "bad\0value").spawn());
    assert!(matches!(cause, SpawnError::NulByte { .. }), "{cause:?}");
    assert!(text.contains("KEY"), "{text}");
    let (_, cause, _) = spawn_error(Command::new("ec\0ho").spawn());
    assert!(matches!(cause, SpawnError::NulByte { .. }), "{cause:?}");
    let (_, cause, _) = spawn_error(Command::new("true").current_dir("/t\0mp").spawn());
    assert!(matches!(cause, SpawnError::NulByte { .. }), "{cause:?}");
    let (_, cause, _) = spawn_error(Command::new("true").env("A=B", "v").spawn());
    assert!(
        matches!(cause, SpawnError::InvalidEnvKey { .. }),
        "{cause:?}"
    );
}

#[test]
fn g_argument_list_too_long() {
    // Many medium arguments: over the total limit.
    let arg = "x".repeat(100_000);
    let count = 8 * 1024 * 1024 / 100_000;
    let (program, cause, text) = spawn_error(Command::new("true").args(vec![arg; count]).spawn());
    assert_eq!(program, "true");
    assert!(matches!(cause, SpawnError::TooLong { .. }), "{cause:?}");
    assert!(text.contains("too long"), "{text}");

    // One argument over the kernel's per-string limit.
    let (_, cause, text) = spawn_error(Command::new("true").arg("y".repeat(200_000)).spawn());
    assert!(
        matches!(cause, SpawnError::EntryTooLong { .. }),
        "{cause:?}"
    );
    assert!(text.contains("argument 1"), "{text}");
}

/// The exec child resets SIGPIPE (which Rust ignores) and the signal mask.
#[test]
fn child_starts_with_default_signals() {
    let out = Command::new("cat").arg("/proc/self/status").run().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(field("SigBlk:"), 0);
    assert_eq!(
        field("SigIgn:") & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE still ignored"
    );
}

/// Policies are applied in the exec child: group, session, parent-death signal.
#[test]
fn policies_reach_the_exec_child() {
    let p = Command::new("sleep")
        .arg("60")
        .tree(Tree::Group)
        .spawn()
        .unwrap();
    // SAFETY: getpgid only reads.
    let pgid = unsafe { libc::getpgid(p.pid() as i32) };
    assert_eq!(pgid, p.pid() as i32);
    p.kill().unwrap();
    p.wait().unwrap();

    let p = Command::new("sleep")
        .arg("60")
        .tree(Tree::Session)
        .spawn()
        .unwrap();
    // SAFETY: getsid only reads.
    assert_eq!(unsafe { libc::getsid(p.pid() as i32) }, p.pid() as i32);
    p.kill().unwrap();
    p.wait().unwrap();

    let p = Command::new("sleep")
        .arg("60")
        .on_parent_death(OnParentDeath::Signal(Signal::USR1))
        .spawn()
        .unwrap();
    assert!(running(p.pid()));
    p.kill().unwrap();
    p.wait().unwrap();
}

#[test]
fn stdio_files_and_pipes_between_children() {
    let mut first = Command::new("echo")
        .arg("hello")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut second = Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(first.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, _) = second.communicate(None, None).unwrap();
    assert_eq!(out, b"HELLO\n");
    first.wait().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    let file = std::fs::File::create(&path).unwrap();
    Command::new("echo")
        .arg("to file")
        .stdout(file)
        .spawn()
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "to file\n");

    let mut text = String::new();
    let mut p = Command::new("cat")
        .stdin(std::fs::File::open(&path).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    p.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    assert_eq!(text, "to file\n");
    p.wait().unwrap();
}

#[test]
fn environment_and_path_search() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("brood-test-script");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"script in $(pwd) with ${ONLY-none}\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The child's PATH decides where the program is found.
    let out = Command::new("brood-test-script")
        .env("PATH", format!("{}:/bin:/usr/bin", dir.path().display()))
        .current_dir("/")
        .run()
        .unwrap();
    assert_eq!(out.stdout, b"script in / with none\n");

    // A relative path is taken from the child's working directory.
    let out = Command::new("./brood-test-script")
        .current_dir(dir.path())
        .env("ONLY", "x")
        .run()
        .unwrap();
    let expected = format!("script in {} with x\n", dir.path().display());
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    // An empty environment searches /bin:/usr/bin.
    let out = Command::new("env").env_clear().run().unwrap();
    assert!(out.stdout.is_empty());
    let out = Command::new("sh")
        .args(["-c", "echo ${HOME-unset}"])
        .env_remove("HOME")
        .run()
        .unwrap();
    assert_eq!(out.stdout, b"unset\n");
}

/// Many threads spawning at once, with and without a parent-death signal (which
/// goes through the spawner thread).
#[test]
fn concurrent_spawns() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..25 {
                    let mut cmd = Command::new("sh");
                    cmd.args(["-c", &format!("exit {}", (t + i) % 5)]);
                    if i % 2 == 0 {
                        cmd.on_parent_death(OnParentDeath::Signal(Signal::KILL));
                    }
                    let status = cmd.spawn().unwrap().wait().unwrap();
                    assert_eq!(status.code(), Some((t + i) % 5));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
