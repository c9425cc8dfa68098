//! A `Tree::Group` child's group once the child has ended: a reused group id is
//! never signalled, and a stop ends as soon as the last member has, zombies
//! or not.
//!
//! The reuse is made, not waited for: as root, `clone3` with `set_tid` gives
//! an unrelated process the old child's pid (and it then leads a group of
//! that number, as a process reusing the pid after a wrap-around would).
//! Without the privilege for that, those tests skip, saying why.

mod support;

use brood::{Command, OnDrop, Process, Signal, StartMethod, Supervisor, Tree};
use std::time::{Duration, Instant};
use support::Cleanup;

brood::init_before_main!();

/// Starts `/bin/sleep 30` as pid `pid`, leading a process group of its own;
/// `None` when this process may not choose pids (not root) or the pid is
/// taken. The process is our (non-brood) child: reap it with `waitpid`.
fn sleeper_at(pid: u32) -> Option<u32> {
    use std::ffi::CString;
    let prog = CString::new("/bin/sleep").unwrap();
    let arg = CString::new("30").unwrap();
    let argv = [prog.as_ptr(), arg.as_ptr(), std::ptr::null()];
    let env: [*const libc::c_char; 1] = [std::ptr::null()];
    let tid: [libc::pid_t; 1] = [pid as libc::pid_t];
    // struct clone_args (CLONE_ARGS_SIZE_VER1: through set_tid_size).
    let mut args = [0u64; 11];
    args[4] = libc::SIGCHLD as u64; // exit_signal
    args[8] = tid.as_ptr() as u64; // set_tid
    args[9] = 1; // set_tid_size
    // SAFETY: clone3 without CLONE_VM is a fork; the child only calls
    // async-signal-safe setpgid/execve/_exit on memory prepared before.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, args.as_ptr(), 80usize) };
    match rc {
        0 => unsafe {
            libc::setpgid(0, 0);
            libc::execve(prog.as_ptr(), argv.as_ptr(), env.as_ptr());
            libc::_exit(127)
        },
        n if n > 0 => {
            assert_eq!(n as u32, pid);
            // Wait until it leads its group: its stat says so.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !brood::os::procfs::stat(pid)
                .unwrap()
                .is_some_and(|s| s.pgrp == Some(pid) && s.comm == "sleep")
            {
                assert!(Instant::now() < deadline, "the sleeper never started");
                std::thread::yield_now();
            }
            Some(pid)
        }
        _ => {
            let e = std::io::Error::last_os_error();
            eprintln!("skipped: cannot start a process at pid {pid} (clone3 set_tid: {e})");
            None
        }
    }
}

/// Sends the sleeper SIGVTALRM (which ends it, and which is taken after any
/// lower-numbered signal already pending — SIGKILL, SIGTERM), reaps it, and
/// returns the signal it died of: SIGVTALRM unless someone else signalled it.
fn what_ended(sleeper: u32) -> Signal {
    let mut st = 0;
    // SAFETY: our own unreaped child.
    unsafe {
        libc::kill(sleeper as i32, libc::SIGVTALRM);
        libc::waitpid(sleeper as i32, &mut st, 0);
    }
    assert!(libc::WIFSIGNALED(st), "status {st:#x}");
    Signal::from_raw(libc::WTERMSIG(st)).unwrap()
}

/// A group child that ended, then its pid (and so its group id) taken by an
/// unrelated group leader: every way of signalling the old handle's tree
/// leaves that process alone.
fn check_reused_group(child: brood::Child) {
    let pid = child.pid();
    let Some(sleeper) = sleeper_at(pid) else {
        return;
    };
    let mut clean = Cleanup::default();
    clean.add(sleeper);
    let _ = child.kill();
    let _ = child.terminate();
    let _ = child.signal_tree(Signal::HUP);
    let _ = child.terminate_timeout(Duration::from_millis(10));
    drop(child); // the last handle, with OnDrop::Kill
    assert_eq!(
        what_ended(sleeper),
        Signal::VTALARM,
        "the reused group was signalled"
    );
    clean.0.clear();
}

/// Starts `sh -c script` leading a group, with stdout piped; returns the
/// handle and the first line the script printed (a member's pid).
fn group_shell(script: &str) -> (brood::Popen, u32) {
    let mut p = Command::new("sh")
        .args(["-c", script])
        .tree(Tree::Group)
        .stdout(brood::Stdio::piped())
        .spawn()
        .unwrap();
    let line = support::first_line(&mut p);
    let member = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a pid: {line:?}"));
    (p, member)
}

/// A `true` that led a group (or session) of its own, ended and reaped,
/// its last handle dropping with `OnDrop::Kill`.
fn ended_leader(tree: Tree) -> brood::Child {
    let child = Command::new("true")
        .tree(tree)
        .on_drop(OnDrop::Kill)
        .spawn()
        .unwrap()
        .into_child();
    assert!(child.wait().unwrap().success());
    child
}

#[test]
fn a_command_never_signals_a_reused_group() {
    check_reused_group(ended_leader(Tree::Group));
}

#[test]
fn a_session_child_never_signals_a_reused_group() {
    check_reused_group(ended_leader(Tree::Session));
}

fn seven(_: ()) -> u8 {
    7
}

#[test]
fn a_forkserver_process_never_signals_a_reused_group() {
    let h = Process::new(seven, ())
        .start_method(StartMethod::ForkServer)
        .tree(Tree::Group)
        .on_drop(OnDrop::Kill)
        .start()
        .unwrap();
    let child = h.child().clone();
    assert_eq!(h.join().unwrap(), 7);
    drop(h);
    check_reused_group(child);
}

#[test]
fn stragglers_of_an_ended_leader_are_still_signalled() {
    // The leader exits at once, leaving a member of its group running: the
    // group is not gone, and kill() must still reach that member.
    let (child, member) = group_shell("sleep 30 >/dev/null & echo $!");
    let mut clean = Cleanup::default();
    clean.add(member);
    assert!(child.wait().unwrap().success());
    let watch = support::pidfd(member).unwrap();
    child.kill().unwrap();
    assert!(
        support::exits_within(&watch, Duration::from_secs(10)),
        "the member was not killed"
    );
}

/// As a subreaper, the members a SIGTERM ended are zombies of ours: the stop
/// must not take them for living members and wait out its grace.
#[test]
fn a_group_stop_ends_with_its_last_member_under_a_subreaper() {
    support::require_own_process();
    support::become_subreaper();
    let (child, member) = group_shell("sleep 30 >/dev/null & echo $!; wait");
    let mut clean = Cleanup::default();
    clean.add(member);
    let t = Instant::now();
    let status = child.terminate_timeout(Duration::from_secs(5)).unwrap();
    let took = t.elapsed();
    assert_eq!(status.signal(), Some(Signal::TERM));
    eprintln!("the group stop took {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "the stop took {took:?} (grace 5 s)"
    );
    // And the member, re-parented to us, was reaped: no zombie left.
    assert!(
        !support::exists(member),
        "the member is left as {:?}",
        support::stat(member)
    );
    assert!(support::zombies_of(support::me()).is_empty());
    clean.0.clear();
}

#[test]
fn a_group_stop_still_waits_for_a_member_that_ignores_sigterm() {
    support::require_own_process();
    support::become_subreaper();
    let (child, member) = group_shell("(trap '' TERM; exec sleep 30 >/dev/null) & echo $!; wait");
    let mut clean = Cleanup::default();
    clean.add(member);
    // Wait until the subshell has exec'd sleep with SIGTERM ignored.
    let deadline = Instant::now() + Duration::from_secs(10);
    while brood::os::procfs::stat(member).unwrap().map(|s| s.comm) != Some("sleep".into()) {
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    let t = Instant::now();
    child.terminate_timeout(Duration::from_millis(300)).unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "gave up early: {took:?}"
    );
    assert!(
        !support::exists(member),
        "the member survived: {:?}",
        support::stat(member)
    );
    clean.0.clear();
}

/// Two group children of a supervisor, stopped: the stop ends when they have,
/// not after each one's grace.
#[test]
fn a_supervisor_stop_ends_with_its_children_under_a_subreaper() {
    support::require_own_process();
    support::become_subreaper();
    let shell = || {
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 30; true"]);
        c
    };
    let grace = brood::Shutdown::Grace(Duration::from_secs(5));
    let sv = Supervisor::new(brood::Strategy::OneForOne)
        .child(brood::ChildSpec::command("a", shell).shutdown(grace))
        .child(brood::ChildSpec::command("b", shell).shutdown(grace))
        .start()
        .unwrap();
    // Both shells have started their sleep.
    let deadline = Instant::now() + Duration::from_secs(10);
    for pid in sv.children().into_iter().filter_map(|(_, pid)| pid) {
        while support::children_of(pid).is_empty() {
            assert!(Instant::now() < deadline, "no sleep under {pid}");
            std::thread::yield_now();
        }
    }
    let t = Instant::now();
    sv.stop().unwrap();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the stop took {took:?} (grace 5 s each)"
    );
    assert!(support::zombies_of(support::me()).is_empty());
}
