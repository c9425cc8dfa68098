//! brood's side of the deeper scenarios: output buffered across a fork (N7),
//! the exit hook's signals after a foreign wait (N8), implicit reaping (N9).

use std::io::Write;
use std::process::ExitCode;

use super::kit::{Unplayable, leave, pid_of, sleep_body};
use super::start::start;
use super::{Args, go, say};
use crate::sys::wait::{Waited, waitpid};

/// N7: text left in stdout's buffer when the child is made.
///
/// Rust's stdout is line-buffered whatever it is connected to, so only text
/// without a newline is still in the buffer at the fork: that is what the
/// parent prints first. A child that flushed its inherited copy would add a
/// second `before_fork` to the pipe.
pub fn buffered(a: &Args) -> Result<ExitCode, Unplayable> {
    print!("before_fork pid={}", std::process::id());
    let c = start(a, sleep_body(0.0, 0, false))?;
    let _ = c.wait();
    println!();
    let _ = std::io::stdout().flush();
    say("child", &[pid_of(&c)]);
    Ok(leave("return"))
}

/// N8: two daemon children; the parent reaps the first with its own
/// `waitpid(pid)` (racing brood's reaper, which may get there first), then
/// returns, and brood's exit hook applies the children's policies.
pub fn exit_signals(a: &Args) -> Result<ExitCode, Unplayable> {
    let first = start(a, sleep_body(0.1, 0, true))?;
    say(
        "child",
        &[
            pid_of(&first),
            ("daemon", "1".into()),
            ("role", "reaped".into()),
        ],
    );
    let second = start(a, sleep_body(30.0, 0, true))?;
    say(
        "child",
        &[
            pid_of(&second),
            ("daemon", "1".into()),
            ("role", "running".into()),
        ],
    );
    let how = ("how", "waitpid".to_string());
    match waitpid(first.pid() as i32, true) {
        Ok(Waited::Reaped(pid, st)) => say(
            "waited",
            &[how, ("pid", pid.to_string()), ("status", st.to_string())],
        ),
        Ok(Waited::NothingYet) => say("wait_error", &[how, ("type", "nothing".into())]),
        Err(e) => say(
            "wait_error",
            &[
                how,
                ("errno", e.raw_os_error().unwrap_or(0).to_string()),
                ("type", "ECHILD_or_other".into()),
            ],
        ),
    }
    // As on the Python side: the first child is gone from /proc before exit.
    let proc_dir = format!("/proc/{}", first.pid());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::path::Path::new(&proc_dir).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let gone = !std::path::Path::new(&proc_dir).exists();
    say(
        "first_gone",
        &[pid_of(&first), ("gone", u8::from(gone).to_string())],
    );
    go();
    Ok(leave("return"))
}

/// N9: the same calls as the Python side, where brood has them.
pub fn implicit(a: &Args) -> Result<ExitCode, Unplayable> {
    let via = a.get("via").unwrap_or("poll").to_string();
    let secs = if via == "del_running" { 0.6 } else { 0.0 };
    let c = start(a, sleep_body(secs, 0, false))?;
    say("child", &[pid_of(&c)]);
    go();
    match via.as_str() {
        "start_another" | "new_popen" => {
            let other = start(a, sleep_body(30.0, 0, false))?;
            say("other", &[pid_of(&other)]);
        }
        "is_alive" => say("answer", &[("is_alive", c.is_alive().to_string())]),
        "exitcode" | "poll" => {
            let answer = match c.poll() {
                Ok(Some(st)) => st.exitcode().to_string(),
                Ok(None) => "None".into(),
                Err(e) => e.to_string(),
            };
            say("answer", &[(via.as_str(), answer)]);
        }
        "del_gc" | "del_running" | "del_exited" => drop(c),
        other => return Err(Unplayable(format!("no brood call for {other}"))),
    }
    say("acted", &[("via", via.clone())]);
    go();
    Ok(leave("return"))
}
