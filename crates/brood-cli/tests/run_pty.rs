//! `brood run` on a pseudo-terminal, as a user at a terminal runs it: an
//! interactive shell never starts stopped (200 tries), a hang-up ends
//! `brood run` with 129, the shell's background jobs keep running while its
//! foreground jobs get the terminal, and Ctrl-Z stops the command and
//! `brood run` together.

mod run_support;

use run_support::*;
use std::time::Duration;

const TRIES: usize = 200;
const THREADS: usize = 4;

/// `brood run -- bash -m` on a fresh terminal, 200 times: bash finds itself in
/// the foreground at once (the hand-off happens in the child before exec), so
/// it never stops itself with SIGTTIN; each try ends with `exit 7`.
#[test]
fn interactive_shell_never_starts_stopped() {
    let hangs: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let mut hangs = Vec::new();
                    for _ in 0..TRIES / THREADS {
                        let pty = Pty::open();
                        let mut child = interactive_bash(&pty, &["-m"]);
                        let _cleanup = Cleanup(vec![child.id()]);
                        pty.write("exit 7\n");
                        match exit_within(&mut child, Duration::from_secs(10)) {
                            Some(Some(7)) => {}
                            other => {
                                let bash = std::fs::read_to_string(format!(
                                    "/proc/{}/task/{}/children",
                                    child.id(),
                                    child.id()
                                ))
                                .unwrap_or_default();
                                let states: Vec<_> = bash
                                    .split_whitespace()
                                    .filter_map(|p| p.parse().ok())
                                    .map(|p: u32| (p, state(p)))
                                    .collect();
                                hangs.push(format!("{other:?}, children {states:?}"));
                            }
                        }
                    }
                    hangs
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(
        hangs.is_empty(),
        "{} of {TRIES} tries did not end: {hangs:?}",
        hangs.len()
    );
}

/// The terminal hangs up (its master side closes): bash dies of SIGHUP and
/// `brood run` exits 129, as tini does.
#[test]
fn terminal_hang_up_exits_129() {
    let pty = Pty::open();
    let mut child = interactive_bash(&pty, &[]);
    let _cleanup = Cleanup(vec![child.id()]);
    pty.write("echo read''y\n");
    assert!(
        pty.wait_for("ready\r\n", Duration::from_secs(10)),
        "{}",
        pty.output()
    );
    pty.hang_up();
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(10)),
        Some(Some(129))
    );
}

/// Inside `brood run -- bash -i`: a background job keeps running (state S,
/// not stopped), and a foreground job gets the terminal (it reads the line
/// typed), as under dumb-init.
#[test]
fn background_jobs_run_and_foreground_jobs_get_the_terminal() {
    let pty = Pty::open();
    let mut child = interactive_bash(&pty, &[]);
    let _cleanup = Cleanup(vec![child.id()]);
    pty.write("sleep 30 & echo bg=$!.en''d\n");
    assert!(
        pty.wait_for(".end\r\n", Duration::from_secs(10)),
        "{}",
        pty.output()
    );
    let out = pty.output();
    let bg: u32 = out
        .rsplit("bg=")
        .next()
        .and_then(|rest| rest.split('.').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out:?}"));
    let _bg = Cleanup(vec![bg]);
    assert!(
        until(Duration::from_secs(5), || state(bg) == Some('S')),
        "background job state {:?}",
        state(bg)
    );
    // A foreground job reading the terminal: stopped by SIGTTIN unless bash
    // handed it the foreground.
    pty.write("head -n1 | tr a-z A-Z\n");
    pty.write("hello\n");
    assert!(
        pty.wait_for("HELLO", Duration::from_secs(10)),
        "{}",
        pty.output()
    );
    assert_eq!(state(bg), Some('S'), "background job stopped meanwhile");
    pty.write("exit 3\n");
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(10)),
        Some(Some(3))
    );
    // brood run ended the job bash left behind.
    assert!(gone_within(bg, Duration::from_secs(5)));
}

/// Ctrl-Z on the terminal stops the command, and `brood run` stops with it
/// (so the shell that started it would get the terminal back); SIGCONT (what
/// `fg` sends) resumes both, and the command has the terminal again.
#[test]
fn ctrl_z_stops_the_command_and_brood_run() {
    let pty = Pty::open();
    let mut child =
        pty.spawn(brood().args(["run", "--", "sh", "-c", "echo pid=$$.; exec sleep 30"]));
    let _cleanup = Cleanup(vec![child.id()]);
    assert!(
        pty.wait_for(".\r\n", Duration::from_secs(10)),
        "{}",
        pty.output()
    );
    let out = pty.output();
    let command: u32 = out
        .split("pid=")
        .nth(1)
        .and_then(|r| r.split('.').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let _command = Cleanup(vec![command]);
    assert!(until(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{command}/comm")).is_ok_and(|c| c.trim() == "sleep")
    }));
    pty.write("\x1a");
    let supervisor = child.id();
    assert!(
        until(Duration::from_secs(5), || state(command) == Some('T')
            && state(supervisor) == Some('T')),
        "command {:?}, brood run {:?}",
        state(command),
        state(supervisor)
    );
    kill(supervisor, libc::SIGCONT);
    assert!(
        until(Duration::from_secs(5), || state(command) == Some('S')),
        "command {:?} after SIGCONT",
        state(command)
    );
    let fg = rustix::termios::tcgetpgrp(&pty.master).unwrap();
    assert_eq!(
        fg.as_raw_nonzero().get() as u32,
        command,
        "the terminal's foreground"
    );
    kill(supervisor, libc::SIGTERM);
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(10)),
        Some(Some(143))
    );
}
