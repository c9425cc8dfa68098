//! Runs every example of `crates/brood/examples/` (cargo builds them with the
//! tests) and checks what each claims on the real processes: which children
//! are gone after the example exits, which are left, what was printed. Every
//! example process carries a tag in its environment, so whatever one leaves
//! behind is found and killed by pid.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const TAG: &str = "BROOD_EXAMPLE_RUN";

/// Builds brood's examples once, for a run that did not (`cargo nextest run
/// --workspace` and `cargo test` build them with the tests; `-p brood-cli`
/// alone does not).
fn build_examples() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args = vec!["build", "--quiet", "-p", "brood", "--examples"];
        if !cfg!(debug_assertions) {
            args.push("--release");
        }
        let ok = Command::new(cargo)
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cargo build -p brood --examples failed");
    });
}

fn example(name: &str) -> Command {
    // Examples land beside the test's binaries: target/<profile>/examples/.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_brood"));
    let path = bin.parent().unwrap().join("examples").join(name);
    if !path.is_file() {
        build_examples();
    }
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p brood --examples`",
        path.display()
    );
    let mut c = Command::new(path);
    c.env(TAG, format!("{}-{name}", std::process::id()))
        .stdin(Stdio::null());
    c
}

/// Every process still tagged for `name` after a moment's grace (brood's
/// fork server leaves a moment after its parent), killed; returns them.
fn leftovers(name: &str) -> Vec<(u32, u64)> {
    let tagged = || with_env_prefix(&format!("{TAG}={}-{name}", std::process::id()));
    let _ = poll(Duration::from_secs(3), || tagged().is_empty().then_some(()));
    kill_now(name)
}

/// Every process still tagged for `name` right now, killed; returns them.
fn kill_now(name: &str) -> Vec<(u32, u64)> {
    let left = with_env_prefix(&format!("{TAG}={}-{name}", std::process::id()));
    kill_all(&left);
    left
}

/// Runs the example to its exit. Its output goes to files, not pipes: a child
/// it leaves running would hold a pipe open and make the wait a wait for the
/// child. Returns (stdout, stderr, how long the example itself ran).
fn run(name: &str, args: &[&str]) -> (String, String, Duration) {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let t0 = Instant::now();
    let status = example(name)
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap_or_else(|e| panic!("cannot run example {name}: {e}"));
    let took = t0.elapsed();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    let (text, errs) = (read(out), read(err));
    assert!(status.success(), "{name} failed: {status}\n{text}\n{errs}");
    (text, errs, took)
}

/// The number after `word ` in `text` (`daemon child 123` → 123).
fn pid_after(text: &str, word: &str) -> u32 {
    text.split(word)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or_else(|| panic!("no pid after {word:?} in {text}"))
}

fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _, _)) if state != 'Z')
}

fn gone_within(pid: u32, budget: Duration) -> bool {
    poll(budget, || (!alive(pid)).then_some(())).is_some()
}

#[test]
fn process_at_exit_waits_for_one_child_and_ends_the_daemon() {
    let (text, _, took) = run("process_at_exit", &[]);
    let waited = pid_after(&text, "non-daemon child");
    let ended = pid_after(&text, "daemon child");
    let ok =
        gone_within(waited, Duration::from_secs(2)) && gone_within(ended, Duration::from_secs(2));
    let left = leftovers("process_at_exit");
    assert!(ok && left.is_empty(), "children left: {left:?}\n{text}");
    assert!(
        took >= Duration::from_millis(300),
        "exit did not wait for the 0.3 s child: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "exit waited for the daemon child: {took:?}"
    );
}

#[test]
fn fork_no_fallthrough_prints_parent_once() {
    let (text, _, _) = run("fork_no_fallthrough", &[]);
    assert_eq!(text.matches("forked child").count(), 1, "{text}");
    assert_eq!(text.matches("parent ").count(), 1, "{text}");
    assert!(text.contains("child exited with 7"), "{text}");
    assert!(leftovers("fork_no_fallthrough").is_empty());
}

#[test]
fn popen_outlives_parent_detached_lives_on_and_tied_does_not() {
    let (text, _, _) = run("popen_outlives_parent", &[]);
    let detached = pid_after(&text, "detached");
    let tied = pid_after(&text, "tied");
    let tied_gone = gone_within(tied, Duration::from_secs(2));
    let detached_alive = alive(detached);
    let detached_ends = gone_within(detached, Duration::from_secs(5));
    let left = leftovers("popen_outlives_parent");
    assert!(tied_gone, "the tied child outlived its parent\n{text}");
    assert!(
        detached_alive,
        "the detached child did not outlive its parent\n{text}"
    );
    assert!(detached_ends && left.is_empty(), "left: {left:?}");
}

#[test]
fn exit_ends_the_daemon_child_and_exit_now_leaves_it() {
    let (text, _, _) = run("exit_vs_exit_now", &["exit"]);
    let d = pid_after(&text, "daemon child");
    let ended = gone_within(d, Duration::from_secs(1));
    let left = leftovers("exit_vs_exit_now");
    assert!(
        ended && left.is_empty(),
        "exit left the daemon child: {left:?}\n{text}"
    );

    let (text, _, _) = run("exit_vs_exit_now", &["exit_now"]);
    let d = pid_after(&text, "daemon child");
    let survived = alive(d);
    let left = kill_now("exit_vs_exit_now");
    assert!(survived, "exit_now touched the daemon child\n{text}");
    assert!(left.iter().any(|(p, _)| *p == d), "{left:?}");
}

#[test]
fn pipeline_matches_the_shell() {
    let (text, _, _) = run("pipeline", &[]);
    let shell = Command::new("sh")
        .args(["-c", "seq 1 100000 | gzip -c | wc -c"])
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&shell.stdout).trim().to_string();
    assert!(
        text.contains(&format!("= {want}")),
        "{text} vs shell {want}"
    );
    assert!(leftovers("pipeline").is_empty());
}

#[test]
fn pool_stats_fails_only_the_bad_chunks() {
    let (text, errs, took) = run("pool_stats", &[]);
    assert!(text.contains("6 of 8 chunks done"), "{text}");
    // The panic comes back with where it happened.
    assert!(text.contains("    3 failed at "), "{text}");
    assert!(text.contains("pool_stats.rs:"), "{text}");
    assert!(text.contains(": chunk 3 holds"), "{text}");
    assert!(text.contains("    5 timed out after 500ms"), "{text}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        !errs.contains("panicked"),
        "the quiet hook should keep panics off stderr"
    );
    assert!(leftovers("pool_stats").is_empty());
}

/// Lines of a running child's stdout, read on a thread.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_with(rx: &mpsc::Receiver<String>, word: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(word) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn supervisor_restarts_a_killed_worker_and_stops_cleanly_on_sigterm() {
    let mut sup = example("supervisor")
        .arg("30")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(&mut sup);
    let ready = next_with(&rx, "ready workers=");
    let workers: Vec<u32> = ready
        .as_deref()
        .and_then(|l| l.split('=').nth(1))
        .map(|l| l.split(',').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    let mut restarted = None;
    if workers.len() == 3 {
        // SAFETY: kill has no memory arguments; the pid was just announced.
        unsafe { libc::kill(workers[1] as i32, libc::SIGKILL) };
        restarted = next_with(&rx, "restarted as");
    }
    // SAFETY: as above; the supervisor is our own child, not yet waited for.
    unsafe { libc::kill(sup.id() as i32, libc::SIGTERM) };
    let status = poll(Duration::from_secs(10), || sup.try_wait().ok().flatten());
    if status.is_none() {
        let _ = sup.kill();
    }
    let _ = sup.wait();
    let fresh = restarted.as_deref().map(|l| pid_after(l, "restarted as"));
    let all: Vec<u32> = workers.iter().copied().chain(fresh).collect();
    let gone = all.iter().all(|p| gone_within(*p, Duration::from_secs(3)));
    let left = leftovers("supervisor");
    assert_eq!(workers.len(), 3, "no ready line: {ready:?}");
    assert!(restarted.is_some(), "the killed worker was not restarted");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
    assert!(gone && left.is_empty(), "workers left: {left:?}");
}
