//! `brood run` and signals, on real processes: each of the 28 catchable signals
//! (all but SIGKILL, SIGSTOP and SIGCHLD) sent to `brood run` reaches the
//! command and `brood run` survives it — measured side by side with tini and
//! dumb-init when they are installed; rewriting; the group or the child; the
//! signal state the command inherits; job control.

mod run_support;

use run_support::*;
use std::process::Stdio;
use std::time::Duration;

/// The 28 catchable signals other than SIGCHLD.
fn catchable() -> Vec<i32> {
    (1..32)
        .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP && s != libc::SIGCHLD)
        .collect()
}

fn name(sig: i32) -> String {
    brood::Signal::from_raw(sig).unwrap().name()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The command got it.
    Forwarded,
    /// The forwarder lived on but the command never got it.
    Dropped,
    /// The forwarder died of it.
    Killed,
    /// The command was sent SIGSTOP instead (dumb-init's job control).
    AsStop,
}

/// Sends each catchable signal to the forwarder `prefix … probe` and tells
/// what became of it. Each signal is followed, once the forwarder has taken it
/// off its pending set, by a sentinel it forwards (SIGUSR1, or SIGUSR2 when
/// SIGUSR1 is measured); the probe reports the signals read together on one
/// line, so the signal was forwarded iff it shows up by the sentinel's line.
/// A forwarder that stopped itself (job control) is continued.
fn measure(prefix: &[&str]) -> Vec<(i32, Outcome)> {
    let mut results = Vec::new();
    let mut session = None;
    for sig in catchable() {
        let (child, lines, probe) = session.get_or_insert_with(|| start_probe(prefix));
        let probe = *probe;
        let fwd = child.id();
        kill(fwd, sig);
        let dequeued = until(Duration::from_secs(5), || {
            !pending(fwd, sig) || child.try_wait().unwrap().is_some()
        });
        assert!(dequeued, "{prefix:?} never took {}", name(sig));
        let sentinel = if sig == libc::SIGUSR1 {
            libc::SIGUSR2
        } else {
            libc::SIGUSR1
        };
        let sentinel_name = name(sentinel);
        kill(fwd, sentinel);
        let mut seen = Vec::new();
        // A forwarder killed by a core-dumping signal takes a while to die:
        // its death, too, ends the wait.
        let mut died = false;
        let mut probe_stopped = false;
        // A forwarder that stopped itself after a job-control signal is
        // continued only once the probe told of that signal (or after a
        // while): the SIGCONT it forwards next would make the kernel discard
        // the stop signal still pending at the probe, unread.
        let mut stopped_since: Option<std::time::Instant> = None;
        let job_control = matches!(sig, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU);
        let answered = until(Duration::from_secs(10), || {
            if child.try_wait().unwrap().is_some() {
                died = true;
                return true;
            }
            if state(fwd) == Some('T') {
                let since = *stopped_since.get_or_insert_with(std::time::Instant::now);
                let told = seen.contains(&name(sig));
                if !job_control || told || since.elapsed() > Duration::from_secs(2) {
                    kill(fwd, libc::SIGCONT);
                }
            }
            if state(probe) == Some('T') {
                probe_stopped = true;
                kill(probe, libc::SIGCONT);
            }
            while let Some(line) = lines.next(Duration::from_millis(5)) {
                let names = got(&line);
                let done = names.contains(&sentinel_name);
                seen.extend(names);
                if done {
                    return true;
                }
            }
            false
        });
        assert!(
            answered,
            "{prefix:?}: the sentinel after {} never arrived",
            name(sig)
        );
        let outcome = if seen.contains(&name(sig)) {
            Outcome::Forwarded
        } else if died {
            Outcome::Killed
        } else if probe_stopped {
            Outcome::AsStop
        } else {
            Outcome::Dropped
        };
        results.push((sig, outcome));
        if died {
            session = None;
            kill(probe, libc::SIGKILL);
            gone_within(probe, Duration::from_secs(5));
        }
    }
    if let Some((mut child, _, probe)) = session {
        drop(child.stdin.take());
        let _cleanup = Cleanup(vec![probe, child.id()]);
        if state(child.id()) == Some('T') {
            kill(child.id(), libc::SIGCONT);
        }
        let _ = exit_within(&mut child, Duration::from_secs(10));
    }
    results
}

fn count(results: &[(i32, Outcome)], outcome: Outcome) -> usize {
    results.iter().filter(|(_, o)| *o == outcome).count()
}

fn names_with(results: &[(i32, Outcome)], outcome: Outcome) -> String {
    let list: Vec<String> = results
        .iter()
        .filter(|(_, o)| *o == outcome)
        .map(|(s, _)| name(*s).trim_start_matches("SIG").to_string())
        .collect();
    list.join(" ")
}

fn installed(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every one of the 28 reaches the command and `brood run` survives them all;
/// and it forwards every signal that tini or dumb-init forwards.
#[test]
fn every_catchable_signal_is_forwarded_and_survived() {
    let brood = measure(&["brood", "run", "--"]);
    println!(
        "brood run: forwarded {}/28, died of {}, dropped {}",
        count(&brood, Outcome::Forwarded),
        count(&brood, Outcome::Killed),
        count(&brood, Outcome::Dropped)
    );
    assert_eq!(
        count(&brood, Outcome::Forwarded),
        28,
        "not forwarded: {} / died of: {}",
        names_with(&brood, Outcome::Dropped),
        names_with(&brood, Outcome::Killed)
    );
    for (program, args) in [("tini", &["--"][..]), ("dumb-init", &[][..])] {
        if !installed(program) {
            println!("{program} is not installed: skipping the comparison with it");
            continue;
        }
        let mut prefix = vec![program];
        prefix.extend_from_slice(args);
        let theirs = measure(&prefix);
        println!(
            "{program}: forwarded {}/28; as SIGSTOP [{}]; died of [{}]; dropped [{}]",
            count(&theirs, Outcome::Forwarded),
            names_with(&theirs, Outcome::AsStop),
            names_with(&theirs, Outcome::Killed),
            names_with(&theirs, Outcome::Dropped)
        );
        for (sig, outcome) in &theirs {
            if *outcome == Outcome::Forwarded {
                assert!(
                    brood.contains(&(*sig, Outcome::Forwarded)),
                    "{program} forwards {} but brood run does not",
                    name(*sig)
                );
            }
        }
    }
}

/// `--rewrite TERM:USR1` turns a container's SIGTERM into what the program
/// expects; `--rewrite INT:0` drops SIGINT.
#[test]
fn signals_are_rewritten_or_dropped() {
    let (mut child, lines, probe) = start_probe(&[
        "brood",
        "run",
        "--rewrite",
        "TERM:USR1",
        "--rewrite",
        "INT:0",
        "--",
    ]);
    let _cleanup = Cleanup(vec![probe, child.id()]);
    kill(child.id(), libc::SIGTERM);
    let line = lines.next(Duration::from_secs(5)).expect("a signal");
    assert_eq!(got(&line), ["SIGUSR1"], "{line}");
    kill(child.id(), libc::SIGINT);
    assert!(until(Duration::from_secs(5), || !pending(
        child.id(),
        libc::SIGINT
    )));
    kill(child.id(), libc::SIGHUP);
    let line = lines.next(Duration::from_secs(5)).expect("a signal");
    assert_eq!(got(&line), ["SIGHUP"], "SIGINT was not dropped: {line}");
    drop(child.stdin.take());
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(10)),
        Some(Some(0))
    );
}

/// By default a signal reaches the command's whole group (a shell's children
/// too); `--forward-to child` reaches the command alone.
#[test]
fn group_by_default_child_on_request() {
    for (args, probe_first) in [
        (&[][..], "SIGUSR2"),
        (&["--forward-to", "child"][..], "SIGTERM"),
    ] {
        let mut cmd = brood();
        cmd.arg("run")
            .args(args)
            .args(["--grace", "5s", "--", "sh", "-c"])
            // The shell's USR2 trap exits; its probe child is in its group.
            .arg(format!("trap 'exit 9' USR2; exec 3<&0; {PROBE} <&3 & wait"))
            .stderr(Stdio::null());
        let (mut child, lines, probe) = spawn_and_read_pid(&mut cmd, "ready ");
        let _cleanup = Cleanup(vec![probe, child.id()]);
        kill(child.id(), libc::SIGUSR2);
        // With the group, the probe gets USR2 itself; with the child only the
        // shell does, exits, and the probe gets the ending's SIGTERM.
        let line = lines.next(Duration::from_secs(10)).expect("a signal");
        assert_eq!(got(&line)[0], probe_first, "{args:?}: {line}");
        kill(probe, libc::SIGKILL);
        assert_eq!(
            exit_within(&mut child, Duration::from_secs(10)),
            Some(Some(9))
        );
    }
}

/// Under `nohup` (SIGHUP ignored), with SIGPIPE ignored and SIGUSR2 blocked by
/// whoever started `brood run`, the command starts the same way.
#[test]
fn inherited_ignored_and_blocked_signals_reach_the_command() {
    use std::os::unix::process::CommandExt;
    let mut cmd = brood();
    cmd.args(["run", "--", "cat", "/proc/self/status"]);
    // SAFETY: signal(2) and sigprocmask(2) are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bit = |s: i32| 1u64 << (s - 1);
    let ignored = status_bits(&text, "SigIgn");
    let blocked = status_bits(&text, "SigBlk");
    assert_eq!(
        ignored & bit(libc::SIGHUP),
        bit(libc::SIGHUP),
        "SIGHUP not ignored: {text}"
    );
    assert_eq!(
        ignored & bit(libc::SIGPIPE),
        bit(libc::SIGPIPE),
        "SIGPIPE not ignored: {text}"
    );
    assert_eq!(blocked, bit(libc::SIGUSR2), "mask: {text}");

    // And without any of that, the command starts clean: nothing ignored or
    // blocked, although brood run itself blocks every signal.
    let out = brood()
        .args(["run", "--", "cat", "/proc/self/status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // (Signals 32 and 33 belong to glibc, which keeps them out of reach.)
    let classic = (1u64 << 31) - 1;
    assert_eq!(status_bits(&text, "SigIgn") & classic, 0, "{text}");
    assert_eq!(status_bits(&text, "SigBlk") & classic, 0, "{text}");
}

/// SIGTSTP to `brood run` stops the command's group and `brood run`; SIGCONT
/// resumes both (dumb-init's job control).
#[test]
fn job_control_stops_and_resumes_both() {
    for stop in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
        let (mut child, _lines, command) =
            start_reporting(&["--", "sh", "-c", "echo $$; exec sleep 60"]);
        let _cleanup = Cleanup(vec![command, child.id()]);
        let supervisor = child.id();
        // Wait for the exec, so the stop hits sleep, not the shell.
        assert!(until(Duration::from_secs(5), || {
            std::fs::read_to_string(format!("/proc/{command}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")
        }));
        kill(supervisor, stop);
        assert!(
            until(Duration::from_secs(5), || state(command) == Some('T')
                && state(supervisor) == Some('T')),
            "{}: command {:?}, brood run {:?}",
            name(stop),
            state(command),
            state(supervisor)
        );
        kill(supervisor, libc::SIGCONT);
        assert!(
            until(Duration::from_secs(5), || state(command) == Some('S')
                && matches!(state(supervisor), Some('S' | 'R'))),
            "after SIGCONT: command {:?}, brood run {:?}",
            state(command),
            state(supervisor)
        );
        kill(supervisor, libc::SIGTERM);
        assert_eq!(
            exit_within(&mut child, Duration::from_secs(10)),
            Some(Some(143))
        );
    }
}
