//! `brood run`: supervise one command so that it leaves no orphan and no zombie.
//!
//! What tini, dumb-init and `timeout` do, in one:
//! - **subreaper** (`PR_SET_CHILD_SUBREAPER`): every process the command leaves
//!   behind is re-parented here instead of to init, so it can be reaped (on each
//!   SIGCHLD) and killed at the end;
//! - **signals** SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 sent to
//!   `brood run` are forwarded to the command's process group (the command leads
//!   one, and gets the terminal's foreground when there is one, so Ctrl-C reaches
//!   it once, directly);
//! - **the whole tree ends with the command**: when the command exits or the
//!   timeout passes, every remaining descendant (found through `/proc`, whatever
//!   its group or session) gets SIGTERM, then SIGKILL after the grace;
//! - **parent death**: the command gets `--on-parent-death` (SIGKILL by default)
//!   if `brood run` itself dies, even by SIGKILL;
//! - **exit status**: the command's code, `128 + N` if signal N killed it, 124 on
//!   timeout (as `timeout` does), 125 when `--check-leftovers` found processes the
//!   command left running and it otherwise succeeded.

use crate::procfs;
use brood::{Command, OnParentDeath, Signal, Tree};
use signal_hook::iterator::Signals;
use std::time::{Duration, Instant};

/// The options of `brood run`.
pub struct RunOptions {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Signal for the command when `brood run` dies; `None` to let it survive.
    pub on_parent_death: Option<Signal>,
    /// End the tree after this long.
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Report (and fail on) processes left running after the command exited.
    pub check_leftovers: bool,
}

/// Exit code when the timeout ended the command (as `timeout(1)`).
pub const TIMED_OUT: u8 = 124;
/// Exit code when `--check-leftovers` found processes left behind.
pub const LEFTOVERS: u8 = 125;

/// Why `brood run` itself failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No command was given.
    #[error("no command given (usage: brood run [OPTIONS] -- CMD [ARGS…])")]
    NoCommand,
    /// The command could not be started or watched.
    #[error(transparent)]
    Brood(#[from] brood::Error),
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs the command under supervision; returns the exit code for `brood run`.
pub fn run(opts: &RunOptions) -> Result<u8, RunError> {
    let (program, args) = opts.command.split_first().ok_or(RunError::NoCommand)?;
    brood::os::set_child_subreaper(true).map_err(|source| RunError::Os {
        what: "prctl(PR_SET_CHILD_SUBREAPER)",
        source,
    })?;
    let forwarded = [
        Signal::TERM,
        Signal::INT,
        Signal::HUP,
        Signal::QUIT,
        Signal::USR1,
        Signal::USR2,
    ];
    let mut raw: Vec<i32> = forwarded.iter().map(|s| s.as_raw()).collect();
    raw.push(libc::SIGCHLD);
    // Installed before the spawn so that no signal between the two is lost; the
    // exec'd command gets default handlers back.
    let mut signals = Signals::new(&raw).map_err(|source| RunError::Os {
        what: "installing signal handlers",
        source,
    })?;
    let death = opts
        .on_parent_death
        .map_or(OnParentDeath::Survive, OnParentDeath::Signal);
    let child = Command::new(program)
        .args(args)
        .tree(Tree::Group)
        .on_parent_death(death)
        .spawn()?;
    let main_pid = child.pid();
    let terminal = Foreground::give_to(main_pid);

    let handle = signals.handle();
    let watcher = {
        let child = child.child().clone();
        std::thread::spawn(move || {
            for sig in signals.forever() {
                if sig == libc::SIGCHLD {
                    reap_orphans(main_pid);
                } else if let Some(sig) = Signal::from_raw(sig) {
                    let _ = child.signal_tree(sig);
                }
            }
        })
    };

    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let status = child.child().wait_until(deadline)?;
    let timed_out = status.is_none();
    if timed_out {
        eprintln!(
            "brood run: {program:?} (pid {main_pid}) ran past {:?}; ending its tree",
            opts.timeout.unwrap_or_default()
        );
        end_tree(opts.grace);
    }
    let status = match status {
        Some(s) => s,
        None => child.wait()?,
    };
    drop(terminal);

    let leftovers = living_descendants();
    if opts.check_leftovers {
        for s in &leftovers {
            eprintln!(
                "brood run: left behind: pid {} ({}) {}",
                s.pid,
                s.comm,
                procfs::cmdline(s.pid)
            );
        }
    }
    end_tree(opts.grace);
    handle.close();
    let _ = watcher.join();
    reap_orphans(main_pid);

    let code = if timed_out {
        TIMED_OUT
    } else {
        status.shell_code().clamp(0, 255) as u8
    };
    Ok(
        if code == 0 && opts.check_leftovers && !leftovers.is_empty() {
            LEFTOVERS
        } else {
            code
        },
    )
}

/// Every descendant of this process that is still running (not a zombie).
fn living_descendants() -> Vec<procfs::Stat> {
    let snap = procfs::snapshot();
    procfs::descendants(&snap, std::process::id())
        .into_iter()
        .filter_map(|pid| snap.get(&pid).cloned())
        .filter(|s| !s.is_zombie())
        .collect()
}

/// Reaps every zombie child of ours except the command itself, which brood's
/// reaper owns: `waitpid(-1)` would steal its status.
fn reap_orphans(main_pid: u32) {
    let me = std::process::id();
    for s in procfs::snapshot().values() {
        if s.ppid == me && s.pid != main_pid && s.is_zombie() {
            let mut status = 0;
            // SAFETY: waitpid on one specific zombie child of ours.
            unsafe { libc::waitpid(s.pid as i32, &mut status, libc::WNOHANG) };
        }
    }
}

/// SIGTERM to every descendant, then SIGKILL to what is left after `grace`;
/// reaps them as they go. Each signal goes through a pidfd opened after checking
/// the process's start time, so a pid reused meanwhile is never hit.
fn end_tree(grace: Duration) {
    let deadline = Instant::now() + grace;
    signal_descendants(libc::SIGTERM);
    while !living_descendants().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..50 {
        if living_descendants().is_empty() {
            break;
        }
        signal_descendants(libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal_descendants(sig: i32) {
    let Some(sig) = Signal::from_raw(sig) else {
        return;
    };
    for s in living_descendants() {
        let Ok(fd) = brood::os::PidFd::open(s.pid) else {
            continue;
        };
        // The pid might have been reused between the snapshot and the open.
        if procfs::stat(s.pid).is_some_and(|now| now.starttime == s.starttime) {
            let _ = fd.send_signal(sig);
        }
    }
}

/// While alive, the command's process group holds the terminal's foreground (if
/// we had it), so the terminal's Ctrl-C and job control reach the command
/// directly; dropping it takes the foreground back.
struct Foreground {
    ours: Option<libc::pid_t>,
}

impl Foreground {
    fn give_to(pgid: u32) -> Foreground {
        // SAFETY: isatty/tcgetpgrp/getpgrp only read state of fd 0 and ourselves.
        let ours = unsafe {
            let me = libc::getpgrp();
            (libc::isatty(0) == 1 && libc::tcgetpgrp(0) == me).then_some(me)
        };
        if ours.is_some() {
            // SAFETY: handing the foreground of our own terminal to our child's group.
            unsafe { libc::tcsetpgrp(0, pgid as libc::pid_t) };
        }
        Foreground { ours }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if let Some(pgrp) = self.ours {
            // SAFETY: taking back the foreground: SIGTTOU is ignored meanwhile, as
            // a background group calling tcsetpgrp would otherwise be stopped.
            unsafe {
                let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(0, pgrp);
                libc::signal(libc::SIGTTOU, old);
            }
        }
    }
}

/// Parses `10`, `1.5`, `500ms`, `10s`, `2m`, `1h` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (ms, s, m, h)")),
    };
    let secs = value * scale;
    if !(secs.is_finite() && (0.0..1e9).contains(&secs)) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("NaN").is_err());
    }
}
