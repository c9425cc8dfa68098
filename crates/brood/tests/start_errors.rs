//! Errors name what really failed: a missing `#!` interpreter, a directory,
//! the process limit (for every kind), and the user's program rather than
//! `/proc/self/exe` for re-executed children.

mod support;

use brood::{Command, Error, Process, SpawnError, StartMethod};
use std::os::unix::fs::PermissionsExt;

brood::init_before_main!();

fn nothing(_: ()) {}

#[test]
fn a_script_whose_interpreter_is_missing_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tool");
    std::fs::write(&script, "#!/nonexistent/interp -x\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    match Command::new(&script).spawn() {
        Err(Error::Spawn {
            cause: SpawnError::InterpreterNotFound { path, interpreter },
            ..
        }) => {
            assert_eq!(path, script);
            // Exactly the path, as the docs say.
            assert_eq!(
                interpreter.as_deref(),
                Some(std::path::Path::new("/nonexistent/interp"))
            );
        }
        other => panic!("{other:?}"),
    }
    // A program that is really missing is still "not found".
    let missing = dir.path().join("absent");
    assert!(matches!(
        Command::new(&missing).spawn(),
        Err(Error::Spawn {
            cause: SpawnError::NotFound { .. },
            ..
        })
    ));
}

/// A script saved with DOS line endings: the kernel looks for "/bin/sh\r",
/// and the message names the line ending rather than "/bin/sh not found".
#[test]
fn a_dos_line_ending_in_the_shebang_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dos");
    std::fs::write(&script, "#!/bin/sh\r\necho hi\r\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Command::new(&script).spawn().unwrap_err();
    let text = err.to_string();
    assert!(text.contains("DOS line ending"), "{text}");
    assert!(text.contains(r#""/bin/sh\r""#), "{text}");
    match err {
        Error::Spawn {
            cause: SpawnError::InterpreterNotFound { interpreter, .. },
            ..
        } => assert_eq!(
            interpreter.as_deref(),
            Some(std::path::Path::new("/bin/sh\r"))
        ),
        other => panic!("{other:?}"),
    }
}

/// A binary whose dynamic loader is missing names that loader (read from
/// its `PT_INTERP`): a copy of `true` with the loader's name changed.
#[test]
fn a_binary_whose_loader_is_missing_names_the_loader() {
    let original = std::fs::read("/bin/true").unwrap();
    let Some(at) = original
        .windows(b"/lib".len())
        .position(|w| w == b"/lib")
        .filter(|&i| {
            original[i..].starts_with(b"/lib64/ld-") || original[i..].starts_with(b"/lib/ld-")
        })
    else {
        eprintln!("/bin/true names no /lib*/ld-* loader: nothing to test here");
        return;
    };
    let mut patched = original.clone();
    // Same length, so every offset stays: "/lib…" becomes "/nol…".
    patched[at..at + 4].copy_from_slice(b"/nol");
    let end = at + patched[at..].iter().position(|&b| b == 0).unwrap();
    let loader = String::from_utf8(patched[at..end].to_vec()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("true");
    std::fs::write(&binary, &patched).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    match Command::new(&binary).spawn() {
        Err(Error::Spawn {
            cause: SpawnError::InterpreterNotFound { interpreter, .. },
            ..
        }) => assert_eq!(interpreter.as_deref(), Some(std::path::Path::new(&loader))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_directory_says_it_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    match Command::new(dir.path()).spawn() {
        Err(Error::Spawn {
            cause: SpawnError::IsADirectory { path },
            ..
        }) => assert_eq!(path, dir.path()),
        other => panic!("{other:?}"),
    }
}

/// In a forked copy of this test that drops to an unprivileged uid (root
/// ignores `RLIMIT_NPROC`) with a process limit of 1: every kind of start says
/// the process limit was reached. The copy reports through its exit code and
/// stderr.
/// Runs `f` in a forked copy of this (single-threaded) test, which changes
/// its process-wide state there only, and returns the copy's exit code
/// (99: it panicked; `None`: killed by a signal).
fn in_a_forked_copy(f: fn() -> i32) -> Option<i32> {
    support::require_own_process();
    // SAFETY: the copy runs `f` and _exits; `f` starts processes only through
    // brood and touches no lock another thread held.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = std::panic::catch_unwind(f).unwrap_or(99);
        // SAFETY: leaving the forked copy without running the harness's code.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child, with a valid status pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

#[test]
fn the_process_limit_is_a_typed_error_for_every_kind() {
    let code = in_a_forked_copy(under_the_process_limit);
    assert_eq!(
        code,
        Some(0),
        "the unprivileged copy failed; see its stderr"
    );
}

fn under_the_process_limit() -> i32 {
    let nobody = 65534;
    // SAFETY: plain credential and limit calls in a single-threaded child.
    unsafe {
        let limit = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(nobody) != 0
            || libc::setuid(nobody) != 0
            || libc::setrlimit(libc::RLIMIT_NPROC, &limit) != 0
        {
            eprintln!(
                "cannot drop privileges: {}",
                std::io::Error::last_os_error()
            );
            return 10;
        }
    }
    let mut failures = 0;
    let mut check = |what: &str, ok: bool, err: String| {
        if !ok {
            eprintln!("{what}: not a process-limit error: {err}");
            failures += 1;
        }
    };
    let e = Command::new("true").spawn().unwrap_err();
    check(
        "Command",
        matches!(
            &e,
            Error::Spawn {
                cause: SpawnError::ProcessLimit,
                ..
            }
        ),
        e.to_string(),
    );
    let e = brood::fork_with(|| 0).unwrap_err();
    check(
        "fork_with",
        matches!(e, Error::ProcessLimit { .. }),
        e.to_string(),
    );
    let e = Process::new(nothing, ())
        .start_method(StartMethod::Fork)
        .start()
        .unwrap_err();
    check(
        "Process Fork",
        matches!(e, Error::ProcessLimit { .. }),
        e.to_string(),
    );
    let e = Process::new(nothing, ())
        .start_method(StartMethod::Spawn)
        .start()
        .unwrap_err();
    let named = matches!(&e, Error::Spawn { program, cause: SpawnError::ProcessLimit }
        if !program.contains("/proc/self/exe") && program.contains("start_errors"));
    check("Process Spawn (names the program)", named, e.to_string());
    let e = Process::new(nothing, ())
        .start_method(StartMethod::ForkServer)
        .start()
        .unwrap_err();
    check(
        "Process ForkServer",
        matches!(e, Error::ProcessLimit { .. }),
        e.to_string(),
    );
    failures
}

/// After `unshare(CLONE_NEWPID)` the kernel lets the process start no thread
/// (its children go to the new namespace), and brood reaps on one: a start
/// fails saying so and what to do instead, and leaves no child behind.
#[test]
fn a_start_after_unsharing_a_pid_namespace_says_why_it_cannot() {
    match in_a_forked_copy(after_unsharing) {
        Some(10) => eprintln!("skipped: unshare(CLONE_NEWPID) refused here"),
        code => assert_eq!(code, Some(0), "the unsharing copy failed; see its stderr"),
    }
}

fn after_unsharing() -> i32 {
    // SAFETY: unshare(2) in a single-threaded forked child.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return 10;
    }
    let mut failures = 0;
    let mut check = |what: &str, e: Error| {
        let text = e.to_string();
        if !text.contains("CLONE_NEWPID") || !text.contains("forked after") {
            eprintln!("{what}: the error does not say why: {text}");
            failures += 1;
        }
    };
    check("Command", Command::new("true").status().unwrap_err());
    check("fork_with", brood::fork_with(|| 0).unwrap_err());
    check(
        "Process Fork",
        Process::new(nothing, ())
            .start_method(StartMethod::Fork)
            .start()
            .unwrap_err(),
    );
    let me = std::process::id();
    let left = support::children_of(me);
    if !left.is_empty() {
        eprintln!("children left behind: {left:?}");
        failures += 1;
    }
    failures
}
