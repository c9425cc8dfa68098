//! The brood side of each scenario mode, with the brood library.

use std::process::ExitCode;
use std::time::Duration;

use brood::Signal;

use super::kit::{Body, Unplayable, asked, leave, pid_of, sleep_body};
use super::start::start;
use super::{Args, go, say, unsupported};

fn forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Plays `a.mode`.
pub fn play(a: &Args) -> ExitCode {
    match run(a) {
        Ok(code) => code,
        Err(Unplayable(why)) => unsupported(&why),
    }
}

fn run(a: &Args) -> Result<ExitCode, Unplayable> {
    match a.mode.as_str() {
        "pool" => super::pool::play(),
        "exit" => {
            let daemon = a.get("daemon") == Some("1");
            let name = a.get("body").unwrap_or("sleep").to_string();
            let c = start(
                a,
                Body {
                    name,
                    secs: a.secs("secs", 1.0),
                    code: 0,
                    daemon,
                },
            )?;
            say(
                "child",
                &[pid_of(&c), ("daemon", u8::from(daemon).to_string())],
            );
            go();
            Ok(leave(a.get("how").unwrap_or("return")))
        }
        "mixed" => {
            if a.get("graceful") == Some("int") {
                // SIGINT becomes brood::exit: the children's OnExit policies
                // apply, then the parent dies of SIGINT.
                brood::signals::graceful(&[Signal::INT]).map_err(|e| e.to_string())?;
            }
            let n = start(a, sleep_body(a.secs("secs", 0.8), 0, false))?;
            say("child", &[pid_of(&n), ("daemon", "0".into())]);
            let d = start(a, sleep_body(30.0, 0, true))?;
            say("child", &[pid_of(&d), ("daemon", "1".into())]);
            if a.get("how") == Some("sigint") {
                say("ready", &[]);
                forever()
            }
            go();
            Ok(leave(a.get("how").unwrap_or("return")))
        }
        "signal_parent" => {
            let mut kids = vec![start(a, sleep_body(30.0, 0, false))?];
            if a.kind == "process" {
                kids.push(start(a, sleep_body(30.0, 0, true))?);
            }
            for (i, k) in kids.iter().enumerate() {
                say("child", &[pid_of(k), ("daemon", i.to_string())]);
            }
            say("ready", &[]);
            forever()
        }
        "signal_child" => {
            let c = start(a, sleep_body(30.0, 0, false))?;
            say("child", &[pid_of(&c)]);
            match c.wait() {
                Ok(st) => say(
                    "child_exit",
                    &[pid_of(&c), ("exitcode", st.exitcode().to_string())],
                ),
                Err(e) => say("child_exit", &[pid_of(&c), ("error", e.to_string())]),
            }
            say("parent_alive", &[("pid", std::process::id().to_string())]);
            go();
            Ok(leave("return"))
        }
        "zombie" => {
            let c = start(a, sleep_body(a.secs("secs", 0.0), 0, false))?;
            say("child", &[pid_of(&c)]);
            go();
            Ok(leave("return"))
        }
        "starting" => {
            let c = start(a, sleep_body(1.5, 0, false))?;
            say("child", &[pid_of(&c)]);
            forever()
        }
        "reaped" => {
            if a.kind == "fork" {
                return Err(Unplayable(
                    "fork reaped: Python has no such scenario".into(),
                ));
            }
            // SIGCHLD ignored: the kernel reaps the child itself the moment it
            // ends, so no reaper, brood's included, can get its status first.
            crate::sys::signal::ignore(libc::SIGCHLD);
            let c = start(a, sleep_body(0.1, 3, false))?;
            say("child", &[pid_of(&c), ("true_exitcode", "3".into())]);
            let proc_dir = format!("/proc/{}", c.pid());
            while std::path::Path::new(&proc_dir).exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
            say(
                "foreign_reap",
                &[pid_of(&c), ("by", "SIGCHLD=SIG_IGN".into())],
            );
            match c.poll() {
                Ok(Some(st)) => say("answer", &[("poll", st.exitcode().to_string())]),
                Ok(None) => say(
                    "answer",
                    &[("poll", "None".into()), ("is_alive", "True".into())],
                ),
                Err(brood::Error::ReapedElsewhere { .. }) => {
                    say("answer", &[("reaped_elsewhere", "1".into())])
                }
                Err(e) => say("answer_error", &[("type", e.to_string())]),
            }
            Ok(leave("return"))
        }
        "grandchild" => {
            let c = start(
                a,
                Body {
                    name: "grandchild".into(),
                    secs: 30.0,
                    code: 0,
                    daemon: false,
                },
            )?;
            say("child", &[pid_of(&c)]);
            go();
            let _ = c.terminate();
            match c.wait() {
                Ok(st) => say(
                    "child_exit",
                    &[pid_of(&c), ("exitcode", st.exitcode().to_string())],
                ),
                Err(e) => say("child_exit", &[pid_of(&c), ("error", e.to_string())]),
            }
            go();
            Ok(leave("return"))
        }
        "buffered" => super::deeper::buffered(a),
        "exit_signals" if a.kind == "process" => super::deeper::exit_signals(a),
        "implicit" => super::deeper::implicit(a),
        "twice" if a.kind == "fork" => twice(a.get("style").unwrap_or("fork_with")),
        "os_wait" if a.kind == "process" => super::process::os_wait(a, asked(a)),
        other => Err(Unplayable(format!("mode {other} for kind {}", a.kind))),
    }
}

/// F3 with brood: `fork_with` (the child cannot fall through) or the raw,
/// unsafe `fork` (Python's shape, where it can).
fn twice(style: &str) -> Result<ExitCode, Unplayable> {
    say("style", &[("style", style.to_string())]);
    let me = || ("pid", std::process::id().to_string());
    let child = if style == "raw" {
        // SAFETY: this process has no threads that hold locks the child needs:
        // the child only writes with write(2) and leaves with exit_now.
        match unsafe { brood::fork() }.map_err(|e| e.to_string())? {
            brood::Fork::Child => {
                say("in_child", &[me()]);
                None
            }
            brood::Fork::Parent(c) => Some(c),
        }
    } else {
        let c = brood::fork_with(|| {
            say("in_child", &[("pid", std::process::id().to_string())]);
            0
        })
        .map_err(|e| e.to_string())?;
        Some(c)
    };
    // The code after the block.
    say("after_if", &[me()]);
    match child {
        Some(c) => {
            say("child", &[pid_of(&c)]);
            let _ = c.wait();
            Ok(leave("return"))
        }
        None => brood::exit_now(0),
    }
}
