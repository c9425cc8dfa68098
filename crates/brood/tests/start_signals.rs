//! Every start method gives a `Process` child the same signal state, taken
//! at its own `start()`: nothing blocked, the signals the program ignores at
//! that moment ignored, the rest at their default action. The fork server
//! is started once, from whatever thread and signal state the program had
//! then: none of that may leak into children started later.

mod support;

use brood::{Process, StartMethod};
use std::time::Duration;

brood::init_before_main!();

/// The child's `SigBlk` and `SigIgn`, read by the child itself.
fn signal_state(_: ()) -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
    };
    (field("SigBlk:"), field("SigIgn:"))
}

fn park(_: ()) -> u8 {
    support::park()
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

fn set_blocked(sig: i32, blocked: bool) {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

fn set_ignored(sig: i32, ignored: bool) {
    let action = if ignored {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    };
    // SAFETY: SIG_IGN / SIG_DFL install no handler code.
    unsafe { libc::signal(sig, action) };
}

fn state_of(method: StartMethod) -> (u64, u64) {
    Process::new(signal_state, ())
        .start_method(method)
        .start()
        .unwrap()
        .join()
        .unwrap()
}

fn check(method: StartMethod) {
    support::require_own_process();
    // The first start (which launches the fork server) with SIGTERM blocked
    // and SIGUSR2 ignored: the child has nothing blocked, USR2 ignored.
    set_blocked(libc::SIGTERM, true);
    set_ignored(libc::SIGUSR2, true);
    let (blocked, ignored) = state_of(method);
    let has = |set: u64, sig: i32| set & bit(sig) != 0;
    assert!(
        !has(blocked, libc::SIGTERM),
        "{method:?}: TERM blocked in the first child"
    );
    assert!(
        has(ignored, libc::SIGUSR2),
        "{method:?}: USR2 not ignored in the first child"
    );
    // Then the program changes its mind: the next child follows.
    set_blocked(libc::SIGTERM, false);
    set_ignored(libc::SIGUSR2, false);
    set_ignored(libc::SIGHUP, true);
    let (blocked, ignored) = state_of(method);
    assert_eq!(
        blocked, 0,
        "{method:?}: a later child has {blocked:#x} blocked"
    );
    let wrong = [
        (libc::SIGUSR2, false),
        (libc::SIGTERM, false),
        (libc::SIGHUP, true),
    ]
    .into_iter()
    .filter(|&(sig, want)| has(ignored, sig) != want)
    .collect::<Vec<_>>();
    assert!(
        wrong.is_empty(),
        "{method:?}: ignored in a later child (signal, expected): {wrong:?}"
    );
    set_ignored(libc::SIGHUP, false);
    // And terminate() ends it at once.
    let h = Process::new(park, ())
        .start_method(method)
        .daemon(true)
        .start()
        .unwrap();
    let watch = support::pidfd(h.pid()).unwrap();
    h.terminate().unwrap();
    assert!(
        support::exits_within(&watch, Duration::from_secs(10)),
        "{method:?}: terminate() left the child running"
    );
    assert!(h.join().is_err());
}

#[test]
fn fork_children_start_with_the_state_at_their_start() {
    check(StartMethod::Fork);
}

#[test]
fn spawn_children_start_with_the_state_at_their_start() {
    check(StartMethod::Spawn);
}

#[test]
fn forkserver_children_start_with_the_state_at_their_start() {
    check(StartMethod::ForkServer);
}

#[test]
fn forkserver_children_of_a_server_started_off_the_main_thread() {
    support::require_own_process();
    // A thread with SIGTERM blocked starts the server; the main thread,
    // which never blocked it, starts the next child.
    std::thread::spawn(|| {
        set_blocked(libc::SIGTERM, true);
        state_of(StartMethod::ForkServer)
    })
    .join()
    .unwrap();
    let (blocked, _) = state_of(StartMethod::ForkServer);
    assert_eq!(
        blocked, 0,
        "the server's launching thread's mask leaked: {blocked:#x}"
    );
}

/// `fork_with` is `os.fork`: the child has the mask of the thread that called
/// it — also when brood creates it on its spawner thread (a parent-death
/// signal off the main thread), whichever thread first started that one.
#[test]
fn fork_with_on_the_spawner_thread_keeps_the_callers_mask() {
    support::require_own_process();
    let blocked_in_child = |block: bool| {
        std::thread::spawn(move || {
            set_blocked(libc::SIGTERM, block);
            let child = brood::ForkBuilder::new()
                .on_parent_death(brood::OnParentDeath::Signal(brood::Signal::KILL))
                .fork_with(|| {
                    let (blocked, _) = signal_state(());
                    i32::from(blocked & bit(libc::SIGTERM) != 0)
                })
                .unwrap();
            child.wait().unwrap().code()
        })
        .join()
        .unwrap()
    };
    assert_eq!(
        blocked_in_child(true),
        Some(1),
        "the caller's blocked SIGTERM"
    );
    assert_eq!(
        blocked_in_child(false),
        Some(0),
        "the spawner thread's mask leaked"
    );
}
