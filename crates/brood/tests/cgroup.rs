//! `Tree::Cgroup`: kill reaches every process the child started, even those
//! that left its group with `setsid` and a double fork — where `Tree::Group`
//! shows the escape — for a `Command` and a `Process` of each start method;
//! the cgroup goes when the child is reaped; `containment()` agrees with
//! `/proc/self/cgroup`. Skipped, saying why, where cgroups cannot be used.

mod support;

use brood::{Command, Error, Limits, Process, StartMethod, Tree};
use std::path::PathBuf;
use std::time::Duration;
use support::*;

brood::init_before_main!();

const TRIALS: usize = 100;

fn usable() -> bool {
    let c = brood::containment();
    if !c.cgroups {
        eprintln!("skipped: {}", c.why);
    }
    c.cgroups
}

/// A shell that starts an escapee (new session, double fork) and a plain
/// child, prints their pids, and waits.
const ESCAPE: &str = "setsid sh -c 'sleep 101 & echo $!' ; sleep 102 & echo $!; wait";

fn escape_with(tree: Tree, cleanup: &mut Cleanup) -> (brood::Popen, Vec<u32>) {
    let mut p = Command::new("sh")
        .args(["-c", ESCAPE])
        .tree(tree)
        .stdout(brood::Stdio::piped())
        .spawn()
        .unwrap();
    cleanup.add(p.pid());
    let out = p.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
    let pids: Vec<u32> = (0..2)
        .map(|_| lines.next().unwrap().unwrap().parse().unwrap())
        .collect();
    for &q in &pids {
        cleanup.add(q);
    }
    (p, pids)
}

#[test]
fn kill_leaves_nothing_even_after_setsid_and_a_double_fork() {
    if !usable() {
        return;
    }
    require_own_process();
    become_subreaper();
    let mut left = Vec::new();
    for _ in 0..TRIALS {
        let mut cleanup = Cleanup::default();
        let (p, pids) = escape_with(Tree::Cgroup, &mut cleanup);
        p.kill().unwrap();
        p.wait().unwrap();
        for q in pids {
            if !wait_exit(q, Duration::from_secs(5)) {
                left.push(q);
            }
        }
    }
    assert!(
        left.is_empty(),
        "{} escaped in {TRIALS} trials: {left:?}",
        left.len()
    );
}

#[test]
fn a_group_is_escaped_by_setsid_as_documented() {
    require_own_process();
    become_subreaper();
    let mut cleanup = Cleanup::default();
    let (p, pids) = escape_with(Tree::Group, &mut cleanup);
    p.kill().unwrap();
    p.wait().unwrap();
    // The plain child went with the group; the one in its own session did not.
    assert!(wait_exit(pids[1], Duration::from_secs(5)));
    assert!(alive(pids[0]), "setsid leaves the group");
    kill_and_reap(pids[0]);
}

/// Waits (reading `/proc`, up to 10 s) until a child of `parent` leads a
/// session of its own: it has called `setsid`.
fn until_a_child_leads_its_session(parent: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let escaped = || {
        brood::os::procfs::pids()
            .unwrap_or_default()
            .into_iter()
            .any(|p| {
                brood::os::procfs::stat(p)
                    .ok()
                    .flatten()
                    .is_some_and(|s| s.ppid == parent && s.session == Some(p))
            })
    };
    while !escaped() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A Process child whose grandchild leaves its session; prints its pid,
/// then closes its stdout (the sign that the line is out: see below).
fn escaper(_: ()) {
    let c = Command::new("setsid")
        .args(["sleep", "103"])
        .spawn()
        .unwrap();
    println!("{}", c.pid());
    // SAFETY: closing this process's own stdout, written for the last time
    // just above (println! flushes the line).
    unsafe { libc::close(1) };
    std::thread::sleep(Duration::from_secs(100));
}

/// Until `pid` has closed its stdout (bounded: 10 s).
fn until_stdout_closed(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let fd1 = format!("/proc/{pid}/fd/1");
    while std::path::Path::new(&fd1).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_process_of_every_start_method_is_contained() {
    if !usable() {
        return;
    }
    require_own_process();
    become_subreaper();
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let mut cleanup = Cleanup::default();
        let mut report = Report::new();
        let fd = report.fd();
        // The report pipe as the child's stdout: a forked middle process
        // points its stdout there, then starts the Process.
        let middle = brood::fork_with(move || {
            // SAFETY: pointing our stdout at the report pipe, in the child.
            unsafe { libc::dup2(fd, 1) };
            let h = Process::new(escaper, ())
                .start_method(m)
                .tree(Tree::Cgroup)
                .start()
                .unwrap();
            // The kill must reach the escapee once it is out of the child's
            // session: wait until /proc shows it so (a 300 ms pause stood
            // for that).
            until_a_child_leads_its_session(h.pid());
            // And until its line is out: killed before its println, it
            // would leave the test nothing to read.
            until_stdout_closed(h.pid());
            h.kill().unwrap();
            let _ = h.join();
            0
        })
        .unwrap();
        report.close_writer();
        cleanup.add(middle.pid());
        let escapee = report.pid();
        cleanup.add(escapee);
        assert_eq!(middle.wait().unwrap().code(), Some(0), "{m:?}");
        assert!(
            wait_exit(escapee, Duration::from_secs(5)),
            "{m:?}: the escapee outlived the kill"
        );
        for p in children_of(me()) {
            wait_exit(p, Duration::from_secs(5));
        }
    }
}

#[test]
fn the_cgroup_goes_when_the_child_is_reaped_and_containment_agrees_with_proc() {
    let c = brood::containment();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let v2 = own.lines().find_map(|l| l.strip_prefix("0::"));
    assert_eq!(c.own.as_deref(), v2, "{c:?}");
    if !usable() {
        return;
    }
    let base: PathBuf = c.brood_dir.clone().unwrap();
    let child = Command::new("sleep")
        .arg("30")
        .tree(Tree::Cgroup)
        .spawn()
        .unwrap();
    let mut cleanup = Cleanup::default();
    cleanup.add(child.pid());
    // It is in a cgroup of brood's own.
    let mine = std::fs::read_to_string(format!("/proc/{}/cgroup", child.pid())).unwrap();
    let path = mine
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string();
    let dir = c.mount.clone().unwrap().join(path.trim_start_matches('/'));
    assert!(
        dir.starts_with(&base),
        "{} not under {}",
        dir.display(),
        base.display()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

const CGROUP_THEN_SLEEP: &str =
    "while read l; do case $l in 0::*) echo $l;; esac; done < /proc/self/cgroup; exec sleep 30";

/// The cgroup is gone by the time `wait` answers, whichever of the reaper
/// thread and the waiter reaped the child. Many children, so a window between
/// the reap and the removal would show.
#[test]
fn wait_returns_only_after_the_cgroup_is_gone() {
    if !usable() {
        return;
    }
    let mount = brood::containment().mount.unwrap();
    let mut cleanup = Cleanup::default();
    for i in 0..TRIALS * 2 {
        let mut p = Command::new("sh")
            // Builtins only: a helper process could still be exiting in the
            // cgroup when the shell is killed, and keep it (rightly) alive.
            .args(["-c", CGROUP_THEN_SLEEP])
            .tree(Tree::Cgroup)
            .stdout(brood::Stdio::piped())
            .spawn()
            .unwrap();
        cleanup.add(p.pid());
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(p.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let path = line
            .trim()
            .strip_prefix("0::")
            .unwrap()
            .trim_start_matches('/');
        let dir = mount.join(path);
        assert!(dir.exists(), "{}", dir.display());
        p.kill().unwrap();
        p.wait().unwrap();
        assert!(
            !dir.exists(),
            "run {i}: {} outlived the wait",
            dir.display()
        );
    }
}

#[test]
fn cgroup_limits_apply_where_their_controller_is_and_say_why_where_not() {
    // Without a cgroup of its own, a cgroup limit is a typed error.
    let e = Command::new("true")
        .limits(Limits::new().pids_max(4))
        .spawn()
        .unwrap_err();
    assert!(
        matches!(&e, Error::CgroupUnavailable { reason } if reason.contains("Tree::Cgroup")),
        "{e}"
    );
    if !usable() {
        return;
    }
    let c = brood::containment();
    let mut cleanup = Cleanup::default();
    let run = Command::new("sh")
        .args([
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo done",
        ])
        .tree(Tree::Cgroup)
        .limits(Limits::new().pids_max(4))
        .stderr(brood::Stdio::piped())
        .stdout(brood::Stdio::piped())
        .spawn();
    if c.controllers.iter().any(|x| x == "pids") {
        // The shell cannot start its 8 sleepers under 4 processes.
        let mut p = run.unwrap();
        cleanup.add(p.pid());
        let (_, err) = p.communicate(None, Some(Duration::from_secs(20))).unwrap();
        assert!(
            String::from_utf8_lossy(&err).contains("fork") || !err.is_empty(),
            "no fork failed under pids.max 4"
        );
    } else {
        // This machine: no controller delegated to cgroup v2. Said so, by name.
        match run {
            Err(Error::CgroupUnavailable { reason }) => {
                assert!(reason.contains("pids"), "{reason}")
            }
            other => panic!("a pids limit without the pids controller gave {other:?}"),
        }
        eprintln!("pids controller not available here: the start said so");
    }
}

/// Runs `true` in a cgroup, as a brood program's first `Tree::Cgroup` start
/// (which makes its directory): 0 when it ran, for a forked child's code.
fn true_in_a_cgroup() -> i32 {
    match Command::new("true").tree(Tree::Cgroup).status() {
        Ok(s) if s.success() => 0,
        Ok(_) => 2,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// A parent that dies while a `Survive` child runs in one of its cgroups
/// cannot remove that cgroup, and nobody else did once the child ended: the
/// next brood process to make its cgroup directory beside it removes what the
/// dead one left — and nothing of a live process's.
#[test]
fn a_dead_parents_leftover_cgroups_go_when_the_next_brood_makes_its_own() {
    if !usable() {
        return;
    }
    require_own_process();
    become_subreaper();
    let mine = brood::containment().brood_dir.unwrap();
    let here = mine.parent().unwrap().to_path_buf();
    // Ours, alive, and empty once its child is reaped: it must stay.
    assert_eq!(true_in_a_cgroup(), 0);
    assert!(mine.exists());

    let mut report = Report::new();
    let fd = report.fd();
    let parent = brood::fork_with(move || {
        // SAFETY: pointing our stdout at the report pipe, in the child.
        unsafe { libc::dup2(fd, 1) };
        let child = Command::new("sleep")
            .arg("100")
            .tree(Tree::Cgroup)
            .spawn()
            .unwrap();
        println!("{}", child.pid());
        std::mem::forget(child);
        std::thread::sleep(Duration::from_secs(100));
        0
    })
    .unwrap();
    report.close_writer();
    let mut cleanup = Cleanup::default();
    cleanup.add(parent.pid());
    let survivor = report.pid();
    cleanup.add(survivor);
    parent.kill().unwrap();
    parent.wait().unwrap();
    let left = here.join(format!("brood-{}", parent.pid()));
    assert!(alive(survivor), "the Survive child died with its parent");
    // Its cgroup stays (a test running beside this one that starts a
    // Tree::Cgroup child may remove it first, as the next one does here).
    kill_and_reap(survivor);

    let next = brood::fork_with(true_in_a_cgroup).unwrap();
    cleanup.add(next.pid());
    assert_eq!(next.wait().unwrap().code(), Some(0));
    assert!(!left.exists(), "{} was left behind", left.display());
    assert!(
        mine.exists(),
        "a live process's {} was removed",
        mine.display()
    );
}

/// A brood process whose pid a dead one had finds that one's directory,
/// with a cgroup of the name it would use next: it goes on with another.
#[test]
fn a_pid_used_again_takes_the_next_cgroup_name() {
    if !usable() {
        return;
    }
    let here = brood::containment()
        .brood_dir
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let (go_r, go_w) = std::io::pipe().unwrap();
    let child = brood::fork_with(move || {
        let mut b = [0u8; 1];
        if std::io::Read::read(&mut &go_r, &mut b).is_err() {
            return 3;
        }
        true_in_a_cgroup()
    })
    .unwrap();
    let mut cleanup = Cleanup::default();
    cleanup.add(child.pid());
    // What a dead brood process with this pid would have left.
    let left = here.join(format!("brood-{}", child.pid()));
    std::fs::create_dir(&left).unwrap();
    std::fs::create_dir(left.join("c1")).unwrap();
    std::io::Write::write_all(&mut &go_w, b"g").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // It swept at its exit: the empty leftover with its own cgroups.
    assert!(!left.exists(), "{} was left behind", left.display());
}

/// The lock is what tells a live owner: a brood process in a pid namespace
/// of its own, where our pid does not exist, leaves our directory alone.
#[test]
fn a_live_process_keeps_its_directory_from_one_that_cannot_see_its_pid() {
    if !usable() {
        return;
    }
    require_own_process();
    let mine = brood::containment().brood_dir.unwrap();
    assert_eq!(true_in_a_cgroup(), 0);
    assert!(mine.exists());
    let me = std::process::id();
    let outer = brood::fork_with(move || {
        // SAFETY: unshare(2) in a single-threaded forked child; only the
        // children it forks from now on are in the new namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            return 10;
        }
        // This process may start no thread now (clone(2): EINVAL), so no
        // brood fork: a plain one, whose child is pid 1 there and may.
        // SAFETY: fork in a single-threaded process; the child runs brood
        // and leaves with _exit.
        let inner = unsafe { libc::fork() };
        if inner == 0 {
            let code = if brood::os::pid_exists(me) {
                4 // then this test shows nothing
            } else {
                true_in_a_cgroup()
            };
            // Leaves as a brood program does: its own empty cgroups go.
            brood::exit(code);
        }
        let mut status = 0;
        // SAFETY: waits for our own child, with a valid status pointer.
        if inner < 0 || unsafe { libc::waitpid(inner, &mut status, 0) } != inner {
            return 6;
        }
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            7
        }
    })
    .unwrap();
    let mut cleanup = Cleanup::default();
    cleanup.add(outer.pid());
    match outer.wait().unwrap().code() {
        Some(10) => {
            eprintln!("skipped: no pid namespace here (unshare refused)");
            return;
        }
        code => assert_eq!(code, Some(0)),
    }
    assert!(
        mine.exists(),
        "{} of a live process was removed",
        mine.display()
    );
}
