//! `brood lab-child KIND MODE [key=value …]`: brood plays the parent's role of a
//! lab scenario, printing the same line protocol as the Python script
//! (`src/lab/py/actor.py`), so that the lab observes and judges both alike.
//!
//! KIND is `process` (`brood::Process`), `fork` (`brood::fork_with`) or `popen`
//! (`brood::Command`). Policies come as `on_exit=wait|terminate|terminate_fast|detach`,
//! `on_parent_death=kill`, `tree=group`; without them each kind keeps brood's
//! defaults. A scenario brood cannot play prints `unsupported …` and the lab
//! leaves brood's cell empty. `lab-child body NAME SECS CODE` is the child's
//! side for `popen` (this same binary, run as the child program).

mod deeper;
mod kit;
mod play;
mod pool;
mod process;
mod start;

use std::collections::BTreeMap;
use std::process::ExitCode;

/// Runs before argument parsing: brood's children started by re-execution
/// (the Spawn and ForkServer start methods) take over here and never return.
pub fn init() {
    brood::init();
}

/// Writes one protocol line straight to fd 1 with a single `write(2)`: no
/// buffer that a fork could duplicate, no lock that a fork could inherit held.
pub fn say(event: &str, kv: &[(&str, String)]) {
    let mut line = event.to_string();
    for (k, v) in kv {
        line.push(' ');
        line.push_str(k);
        line.push('=');
        line.push_str(&v.replace(char::is_whitespace, "_"));
    }
    line.push('\n');
    crate::sys::fd::write_stdout(line.as_bytes());
}

/// The scenario's arguments.
pub struct Args {
    /// `process`, `fork` or `popen`.
    pub kind: String,
    /// The mode (what the parent does).
    pub mode: String,
    /// `key=value` options.
    pub opts: BTreeMap<String, String>,
}

impl Args {
    fn parse(args: &[String]) -> Option<Args> {
        let (kind, mode) = (args.first()?.clone(), args.get(1)?.clone());
        let opts = args[2..]
            .iter()
            .filter_map(|a| {
                a.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Some(Args { kind, mode, opts })
    }

    /// The option `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.opts.get(key).map(String::as_str)
    }

    /// The option `key` as seconds (`default` when absent or malformed).
    pub fn secs(&self, key: &str, default: f64) -> f64 {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .unwrap_or(default)
    }
}

/// Plays one scenario.
pub fn main(args: &[String]) -> ExitCode {
    let Some(a) = Args::parse(args) else {
        eprintln!(
            "usage: brood lab-child KIND MODE [key=value …] | brood lab-child body NAME SECS CODE"
        );
        return ExitCode::from(2);
    };
    if a.kind == "body" {
        let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0.0);
        let code = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
        return ExitCode::from(body(&a.mode, secs, code) as u8);
    }
    say(
        "parent",
        &[
            ("pid", std::process::id().to_string()),
            ("kind", a.kind.clone()),
        ],
    );
    play::play(&a)
}

/// Says that brood does not play this scenario; the lab drops the run.
pub fn unsupported(why: &str) -> ExitCode {
    say("unsupported", &[("why", why.to_string())]);
    ExitCode::from(3)
}

/// A child's body: announce, maybe ignore SIGTERM or start a grandchild, sleep,
/// return the exit code.
pub fn body(name: &str, secs: f64, code: i32) -> i32 {
    let pid = std::process::id().to_string();
    match name {
        "ignore_term" => {
            crate::sys::signal::ignore(libc::SIGTERM);
            say(
                "child_running",
                &[("pid", pid), ("sigterm", "ignored".into())],
            );
        }
        "grandchild" => {
            say("child_running", &[("pid", pid)]);
            match std::process::Command::new("sleep").arg("30").spawn() {
                // Deliberately never waited for: the lab watches what becomes of it.
                Ok(g) => say("grandchild", &[("pid", g.id().to_string())]),
                Err(e) => say("grandchild_error", &[("error", e.to_string())]),
            }
        }
        _ => say("child_running", &[("pid", pid)]),
    }
    std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    code
}

/// Blocks until the lab's go-ahead line arrives on stdin (or stdin closes).
pub fn go() {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}
