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
            assert!(interpreter.contains("/nonexistent/interp"), "{interpreter}");
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
