//! `brood::Process` for the lab's scenarios: the child runs [`child_body`]
//! under the library's default start method (or `method=fork|spawn|forkserver`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use brood::{Child, Process, StartMethod};

use super::kit::{Asked, Body, Unplayable};
use super::{Args, body, say};
use crate::sys::wait::{Waited, waitpid};

/// The function a `Process` child runs: (body name, seconds, exit code).
fn child_body(a: (String, f64, i32)) -> i32 {
    let code = body(&a.0, a.1, a.2);
    if code != 0 {
        // Python's `sys.exit(code)` in the child: the exit code is the result.
        brood::exit_now(code);
    }
    code
}

fn method(a: Option<&str>) -> Option<StartMethod> {
    match a {
        Some("fork") => Some(StartMethod::Fork),
        Some("spawn") => Some(StartMethod::Spawn),
        Some("forkserver") => Some(StartMethod::ForkServer),
        _ => None,
    }
}

fn build(p: Asked, b: Body) -> Process<(String, f64, i32), i32> {
    let mut pr = Process::new(child_body, (b.name, b.secs, b.code));
    pr.daemon(b.daemon);
    if let Some(m) = method(p.method) {
        pr.start_method(m);
    }
    if let Some(x) = p.on_exit {
        pr.on_exit(x);
    }
    if let Some(x) = p.on_parent_death {
        pr.on_parent_death(x);
    }
    if let Some(x) = p.tree {
        pr.tree(x);
    }
    pr
}

/// Starts a `Process` child and gives back its `Child`.
pub fn start(p: Asked, b: Body) -> Result<Child, String> {
    let handle = build(p, b).start().map_err(|e| e.to_string())?;
    let child = handle.child().clone();
    // The handle stays alive until the process ends, as a Python `Process`
    // object held by the parent does: leaking it keeps its connection open.
    std::mem::forget(handle);
    Ok(child)
}

/// P5 with brood: a daemon child ends; the parent waits for it with its own
/// `waitpid(-1)` / `waitpid(pid)` (racing brood's reaper) or with `join()`.
pub fn os_wait(a: &Args, p: Asked) -> Result<ExitCode, Unplayable> {
    let how = a.get("wait").unwrap_or("wait").to_string();
    let b = Body {
        name: "sleep".into(),
        secs: 0.1,
        code: 0,
        daemon: true,
    };
    let h = build(p, b).start().map_err(|e| e.to_string())?;
    let pid = h.pid();
    say("child", &[("pid", pid.to_string()), ("daemon", "1".into())]);
    if how == "join" {
        match h.join() {
            Ok(_) => say("waited", &[("how", how.clone()), ("pid", pid.to_string())]),
            Err(e) => say(
                "wait_error",
                &[("how", how.clone()), ("type", e.to_string())],
            ),
        }
    } else {
        // Bounded: with the fork server the child is not ours, and a blocking
        // wait would wait for the server instead.
        let target = if how == "waitpid" { pid as i32 } else { -1 };
        let deadline = Instant::now() + Duration::from_millis(1500);
        loop {
            let got = waitpid(target, false);
            if let Ok(Waited::Reaped(got, st)) = got {
                say(
                    "waited",
                    &[
                        ("how", how.clone()),
                        ("pid", got.to_string()),
                        ("status", st.to_string()),
                    ],
                );
                break;
            }
            if got.is_err() || Instant::now() >= deadline {
                let errno = got.err().and_then(|e| e.raw_os_error()).unwrap_or(0);
                say(
                    "wait_error",
                    &[
                        ("how", how.clone()),
                        ("errno", errno.to_string()),
                        ("type", "nothing_reaped".into()),
                    ],
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::mem::forget(h);
    say("main_done", &[("how", "return".into())]);
    Ok(ExitCode::SUCCESS)
}
