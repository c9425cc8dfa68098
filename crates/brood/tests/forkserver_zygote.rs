//! The fork server's spares (zygote children), observed on the real
//! processes: they are the server's children, a start takes one (the child's
//! pid was a spare's), the server makes new ones, they die with the server and
//! with the client, never linger as zombies, and a child that came from a
//! spare has exactly its own policy.
//!
//! Waiting for the server to fork a spare is a bounded look at the kernel's
//! view (`/proc`), as in `process_forkserver.rs`: the server gives no signal
//! of it, by design (spares are made off every path a caller waits on).

mod support;

use brood::{JoinError, Limits, OnParentDeath, Process, Signal, StartMethod, Tree};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

fn one(_: ()) -> u8 {
    1
}

fn park(_: ()) -> u8 {
    support::park()
}

/// What a child sees of itself: pid, parent-death signal, process group,
/// soft limit on open files, parent, what its descriptors are.
fn me_inside(_: ()) -> (u32, i32, u32, u64, u32, Vec<String>) {
    let mut sig: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int through the pointer we own.
    unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut sig as *mut libc::c_int) };
    // SAFETY: getpgid(0) and getppid take no pointers.
    let (pgid, ppid) = unsafe { (libc::getpgid(0) as u32, libc::getppid() as u32) };
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    (
        std::process::id(),
        sig,
        pgid,
        files,
        ppid,
        fds_of(std::process::id()),
    )
}

/// The descriptors `pid` holds, by what they are.
fn fds_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            std::fs::read_link(e.path()).map_or_else(|_| "?".into(), |l| l.display().to_string())
        })
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .trim_end_matches('\0')
                .to_string()
        })
        .unwrap_or_default()
}

/// The server's live spares, by what `ps` calls them.
fn spares_of(server: u32) -> Vec<u32> {
    let mut pids: Vec<u32> = children_of(server)
        .into_iter()
        .filter(|&p| alive(p) && cmdline(p).ends_with(" (brood spare)"))
        .collect();
    pids.sort_unstable();
    pids
}

/// Looks at the kernel's view until `cond` holds, for at most 10 s.
fn until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

fn start(f: fn(()) -> u8) -> brood::Handle<u8> {
    Process::new(f, ())
        .start_method(StartMethod::ForkServer)
        .start()
        .unwrap()
}

/// A running server and its full complement of spares (the default two).
fn server_with_spares(clean: &mut Cleanup) -> (u32, Vec<u32>) {
    assert_eq!(start(one).join().unwrap(), 1);
    let server = clean.add(brood::fork_server_pid().unwrap());
    assert!(
        until(|| spares_of(server).len() == 2),
        "spares of {server}: {:?}",
        spares_of(server)
    );
    let spares = spares_of(server);
    for &s in &spares {
        clean.add(s);
    }
    (server, spares)
}

#[test]
fn a_start_takes_a_spare_and_the_server_makes_new_ones() {
    let mut clean = Cleanup::default();
    let (server, spares) = server_with_spares(&mut clean);
    let first = start(park);
    clean.add(first.pid());
    assert!(
        spares.contains(&first.pid()),
        "{} not in {spares:?}",
        first.pid()
    );
    assert_eq!(stat(first.pid()).unwrap().1, server, "the server's child");
    // It specialises: it renames itself after its own name.
    assert!(
        until(|| cmdline(first.pid()).contains(" (brood Process-")),
        "{}",
        cmdline(first.pid())
    );
    let second = start(park);
    clean.add(second.pid());
    assert!(
        spares.contains(&second.pid()),
        "{} not in {spares:?}",
        second.pid()
    );
    assert_ne!(first.pid(), second.pid());
    // None left ready: the server forks two new ones although children run.
    assert!(
        until(|| {
            let now = spares_of(server);
            now.len() == 2 && now.iter().all(|p| !spares.contains(p))
        }),
        "refilled: {:?}",
        spares_of(server)
    );
    for &s in &spares_of(server) {
        clean.add(s);
    }
    for h in [&first, &second] {
        h.kill().unwrap();
        assert!(matches!(h.join(), Err(JoinError::Killed { .. })));
        // Reported only once reaped: never a zombie of the server.
        assert!(!exists(h.pid()), "{} still there", h.pid());
    }
    assert!(zombies_of(server).is_empty());
}

#[test]
fn a_child_from_a_spare_has_exactly_its_policy() {
    let mut clean = Cleanup::default();
    let (server, spares) = server_with_spares(&mut clean);
    let h = Process::new(me_inside, ())
        .start_method(StartMethod::ForkServer)
        .on_parent_death(OnParentDeath::Signal(Signal::TERM))
        .tree(Tree::Group)
        .limits(Limits::new().open_files(77))
        .start()
        .unwrap();
    assert!(spares.contains(&h.pid()), "{} not in {spares:?}", h.pid());
    let (pid, sig, pgid, files, ppid, open) = h.join().unwrap();
    assert_eq!(pid, h.pid());
    // Nothing of the spare's (its channel, the poke pipe, the pidfds) nor
    // of the server's (its socket, epoll set, siblings' pidfds).
    for kind in ["socket", "pidfd", "eventpoll"] {
        assert!(!open.iter().any(|f| f.contains(kind)), "a {kind}: {open:?}");
    }
    assert_eq!(sig, libc::SIGTERM, "its own death signal, not the spare's");
    assert_eq!(pgid, pid, "its own group");
    assert_eq!(files, 77);
    assert_eq!(ppid, server);

    // The next spare, with the defaults (Survive, Own): no death signal, the
    // server's group, the client's descriptor limit.
    let spares = {
        assert!(until(|| spares_of(server).len() == 2));
        spares_of(server)
    };
    let h = Process::new(me_inside, ())
        .start_method(StartMethod::ForkServer)
        .start()
        .unwrap();
    assert!(spares.contains(&h.pid()), "{} not in {spares:?}", h.pid());
    let (pid, sig, pgid, files, _, _) = h.join().unwrap();
    assert_eq!(sig, 0, "a Survive child has no death signal");
    assert_ne!(pgid, pid);
    let ours = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    assert_eq!(files, ours);
}

#[test]
fn a_spare_holds_only_its_own_descriptors() {
    let mut clean = Cleanup::default();
    let (_, spares) = server_with_spares(&mut clean);
    for s in spares {
        let fds = fds_of(s);
        // Its channel, the server's and the client's pidfds (and the poke
        // pipe); none of the server's socket, epoll set, siblings' pidfds or
        // other slots' channels, none of the numbers the server keeps high.
        let count = |kind: &str| fds.iter().filter(|f| f.contains(kind)).count();
        assert_eq!(count("socket"), 1, "spare {s}: {fds:?}");
        assert_eq!(count("pidfd"), 2, "spare {s}: {fds:?}");
        assert_eq!(count("eventpoll"), 0, "spare {s}: {fds:?}");
        let high = std::fs::read_dir(format!("/proc/{s}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&n| n >= 1024)
            .count();
        assert_eq!(high, 0, "spare {s}: {fds:?}");
    }
}

#[test]
fn spares_die_with_the_server_and_are_not_zombies() {
    become_subreaper();
    let mut clean = Cleanup::default();
    let (server, spares) = server_with_spares(&mut clean);
    // One dies on its own (killed from outside): the server reaps it, no
    // zombie, and makes another.
    kill_and_reap(spares[0]);
    assert!(until(|| stat(spares[0]).is_none()), "{:?}", stat(spares[0]));
    assert!(until(|| spares_of(server).len() == 2));
    let now = spares_of(server);
    for &s in &now {
        clean.add(s);
    }
    // The server dies: every spare goes with it.
    kill_and_reap(server);
    for &s in &now {
        assert!(
            wait_exit(s, Duration::from_secs(10)),
            "spare {s} outlived its server"
        );
        reap_if_ours(s);
        assert!(!exists(s) || stat(s).is_some_and(|(st, _)| st != 'Z'));
    }
    // And a new server serves the next start.
    assert_eq!(start(one).join().unwrap(), 1);
    clean.add(brood::fork_server_pid().unwrap());
}

#[test]
fn spares_die_with_a_sigkilled_client() {
    become_subreaper();
    let mut clean = Cleanup::default();
    let mut report = Report::new();
    let fd = report.fd();
    // The client is a forked child of ours: it starts its own server, says
    // which processes are its server and spares, and waits to be killed.
    let client = brood::fork_with(move || {
        let mut clean = Cleanup::default();
        let (server, spares) = server_with_spares(&mut clean);
        say(fd, &server.to_string());
        for s in spares {
            say(fd, &s.to_string());
        }
        std::mem::forget(clean);
        support::park()
    })
    .unwrap();
    clean.add(client.pid());
    let server = clean.add(report.pid());
    let spares = [clean.add(report.pid()), clean.add(report.pid())];
    assert!(spares.iter().all(|&s| alive(s)));
    // SAFETY: SIGKILL to the child this test forked.
    unsafe { libc::kill(client.pid() as i32, libc::SIGKILL) };
    assert_eq!(client.wait().unwrap().signal(), Some(Signal::KILL));
    for s in spares {
        assert!(
            wait_exit(s, Duration::from_secs(10)),
            "spare {s} outlived its client"
        );
    }
    // The server leaves once its spares are reaped (by it: none is left a
    // zombie for us, its subreaper, to find).
    assert!(
        wait_exit(server, Duration::from_secs(10)),
        "the server stayed"
    );
    assert!(zombies_of(me()).is_empty(), "{:?}", zombies_of(me()));
}

#[test]
fn the_number_of_spares_is_set_by_brood_forkserver_spares() {
    require_own_process();
    // SAFETY: this test has a process of its own, and no other thread of it
    // reads the environment now (the server is not started yet).
    unsafe { std::env::set_var("BROOD_FORKSERVER_SPARES", "3") };
    let mut clean = Cleanup::default();
    assert_eq!(start(one).join().unwrap(), 1);
    let server = clean.add(brood::fork_server_pid().unwrap());
    assert!(
        until(|| spares_of(server).len() == 3),
        "{:?}",
        spares_of(server)
    );
    for s in spares_of(server) {
        clean.add(s);
    }
    // Each start still takes one of them.
    let before = spares_of(server);
    let h = start(park);
    clean.add(h.pid());
    assert!(before.contains(&h.pid()));
    h.kill().unwrap();
    let _ = h.join();
}
