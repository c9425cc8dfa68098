//! Starting the child of a scenario, for each kind (`fork`, `popen`,
//! `process`), with the policies asked for.

use brood::{Child, Command, ForkBuilder};

use super::kit::{Body, asked};
use super::{Args, body};

pub fn start(a: &Args, b: Body) -> Result<Child, String> {
    let p = asked(a);
    match a.kind.as_str() {
        "fork" => {
            let mut f = ForkBuilder::new();
            if let Some(x) = p.on_exit {
                f.on_exit(x);
            }
            if let Some(x) = p.on_parent_death {
                f.on_parent_death(x);
            }
            if let Some(x) = p.tree {
                f.tree(x);
            }
            let Body {
                name, secs, code, ..
            } = b;
            f.fork_with(move || body(&name, secs, code))
                .map_err(|e| e.to_string())
        }
        "popen" => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let mut c = Command::new(exe);
            c.args([
                "lab-child",
                "body",
                &b.name,
                &b.secs.to_string(),
                &b.code.to_string(),
            ]);
            if let Some(x) = p.on_exit {
                c.on_exit(x);
            }
            if let Some(x) = p.on_parent_death {
                c.on_parent_death(x);
            }
            if let Some(x) = p.tree {
                c.tree(x);
            }
            c.spawn().map(|p| p.into_child()).map_err(|e| e.to_string())
        }
        "process" => super::process::start(p, b),
        other => Err(format!("unknown kind {other}")),
    }
}
