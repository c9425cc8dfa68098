//! What every brood-side scenario shares: the policies asked for, a child's
//! body, how the parent leaves, and "not played".

use std::process::ExitCode;
use std::time::Duration;

use brood::{Child, OnExit, OnParentDeath, Signal, Tree};

use super::{Args, say};

/// The policies asked for on the command line (`None`: the kind's default).
#[derive(Clone, Copy, Default)]
pub struct Asked {
    pub on_exit: Option<OnExit>,
    pub on_parent_death: Option<OnParentDeath>,
    pub tree: Option<Tree>,
    /// `fork`, `spawn` or `forkserver` (for `process`).
    pub method: Option<&'static str>,
}

pub fn asked(a: &Args) -> Asked {
    Asked {
        method: match a.get("method") {
            Some("fork") => Some("fork"),
            Some("spawn") => Some("spawn"),
            Some("forkserver") => Some("forkserver"),
            _ => None,
        },
        on_exit: match a.get("on_exit") {
            Some("wait") => Some(OnExit::Wait),
            Some("terminate") => Some(OnExit::TERMINATE),
            Some("terminate_fast") => Some(OnExit::Terminate {
                grace: Duration::from_millis(200),
            }),
            Some("detach") => Some(OnExit::Detach),
            _ => None,
        },
        on_parent_death: match a.get("on_parent_death") {
            Some("kill") => Some(OnParentDeath::Signal(Signal::KILL)),
            Some("term") => Some(OnParentDeath::Signal(Signal::TERM)),
            _ => None,
        },
        tree: match a.get("tree") {
            Some("group") => Some(Tree::Group),
            Some("session") => Some(Tree::Session),
            _ => None,
        },
    }
}

/// What a child body does, for every kind.
pub struct Body {
    pub name: String,
    pub secs: f64,
    pub code: i32,
    pub daemon: bool,
}

pub fn leave(how: &str) -> ExitCode {
    say("main_done", &[("how", how.to_string())]);
    match how {
        "os_exit" => brood::exit_now(0),
        "sys_exit" => brood::exit(0),
        // "return": back to main, whose return runs libc's exit and so brood's
        // atexit hook, as a Rust program that just ends would.
        _ => ExitCode::SUCCESS,
    }
}

pub fn pid_of(c: &Child) -> (&'static str, String) {
    ("pid", c.pid().to_string())
}

/// A scenario brood does not play, and why.
pub struct Unplayable(pub String);

impl From<String> for Unplayable {
    fn from(s: String) -> Self {
        Unplayable(s)
    }
}

pub fn sleep_body(secs: f64, code: i32, daemon: bool) -> Body {
    Body {
        name: "sleep".into(),
        secs,
        code,
        daemon,
    }
}
