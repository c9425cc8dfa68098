//! `brood tree [PID]`: the process tree with states, zombies, and who reaps whom.
//!
//! The reaper of a process is its parent: only the parent's `wait` frees a
//! zombie. When the parent ends first, the kernel hands the child to the nearest
//! ancestor marked as a child subreaper (`PR_SET_CHILD_SUBREAPER`), or to init
//! (pid 1 of the pid namespace). `/proc` does not show the subreaper mark, so the
//! tree names the parent as the reaper and says when that parent is init, which
//! means the process was orphaned (or started by init).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::procfs::{self, Stat};

/// Errors of `brood tree`.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The pid given on the command line does not exist.
    #[error("no process with pid {0} (it may have ended)")]
    NoSuchPid(u32),
}

/// Renders the tree under `root` (or every process of the current user when
/// `root` is `None`) as text.
pub fn render(root: Option<u32>) -> Result<String, TreeError> {
    let snap = procfs::snapshot();
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for s in snap.values() {
        children.entry(s.ppid).or_default().push(s.pid);
    }
    let roots: Vec<u32> = match root {
        Some(pid) => {
            if !snap.contains_key(&pid) {
                return Err(TreeError::NoSuchPid(pid));
            }
            vec![pid]
        }
        None => user_roots(&snap),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7}  {:<5}  {:>9}  {:>8}  {:<34}  COMMAND",
        "PID", "STATE", "TREE CPU", "TREE RSS", "REAPED BY"
    );
    let mut zombies = 0;
    let mut costs = BTreeMap::new();
    for &pid in &roots {
        subtree_cost(&children, pid, &mut costs);
    }
    let view = View {
        snap: &snap,
        children: &children,
        costs: &costs,
    };
    for pid in roots {
        walk(&view, pid, "", true, true, &mut out, &mut zombies);
    }
    if zombies > 0 {
        let _ = writeln!(
            out,
            "\n{zombies} zombie(s): each stays until the process named under REAPED BY waits for it (or ends)."
        );
    }
    let _ = writeln!(
        out,
        "REAPED BY is the parent; if the parent ends first, the kernel hands the child to the \
         nearest ancestor that is a child subreaper, else to init (1)."
    );
    let _ = writeln!(
        out,
        "TREE CPU and TREE RSS are the process's and its descendants' (CPU: user + system, \
         with the children each has waited for; RSS: resident now, shared pages counted \
         in each process)."
    );
    Ok(out)
}

/// What `walk` reads.
struct View<'a> {
    snap: &'a BTreeMap<u32, Stat>,
    children: &'a BTreeMap<u32, Vec<u32>>,
    costs: &'a BTreeMap<u32, (Duration, u64)>,
}

/// The CPU time and resident memory of `pid` and its descendants, for it
/// and each of them, into `costs`.
fn subtree_cost(
    children: &BTreeMap<u32, Vec<u32>>,
    pid: u32,
    costs: &mut BTreeMap<u32, (Duration, u64)>,
) -> (Duration, u64) {
    let own = brood::os::procfs::usage(pid).unwrap_or_default();
    let mut total = (
        own.user + own.system + own.children_user + own.children_system,
        own.rss,
    );
    for &kid in children.get(&pid).map_or(&[][..], Vec::as_slice) {
        // A pid is its own parent only for the kernel's roots (0).
        if kid != pid {
            let (cpu, rss) = subtree_cost(children, kid, costs);
            total = (total.0 + cpu, total.1 + rss);
        }
    }
    costs.insert(pid, total);
    total
}

/// `1.23s`, `12m3s`.
fn show_cpu(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.2}s")
    } else {
        format!("{}m{}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// `812K`, `12.3M`, `1.2G`.
fn show_bytes(b: u64) -> String {
    let k = b as f64 / 1024.0;
    if k < 1024.0 {
        format!("{k:.0}K")
    } else if k < 1024.0 * 1024.0 {
        format!("{:.1}M", k / 1024.0)
    } else {
        format!("{:.1}G", k / 1024.0 / 1024.0)
    }
}

/// The current user's processes whose parent is not also theirs: the tops of
/// the user's subtrees.
fn user_roots(snap: &BTreeMap<u32, Stat>) -> Vec<u32> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
    let mine = |pid: u32| procfs::uid(pid) == Some(me);
    snap.values()
        .filter(|s| mine(s.pid))
        .filter(|s| !snap.contains_key(&s.ppid) || !mine(s.ppid))
        .map(|s| s.pid)
        .collect()
}

fn walk(
    view: &View<'_>,
    pid: u32,
    prefix: &str,
    last: bool,
    top: bool,
    out: &mut String,
    zombies: &mut usize,
) {
    let (snap, children) = (view.snap, view.children);
    let Some(s) = snap.get(&pid) else { return };
    let branch = if top {
        String::new()
    } else if last {
        format!("{prefix}└─ ")
    } else {
        format!("{prefix}├─ ")
    };
    let mut command = procfs::cmdline(pid);
    if command.is_empty() {
        command = format!("[{}]", s.comm);
    }
    let state = if s.is_zombie() {
        *zombies += 1;
        "Z !".to_string()
    } else {
        s.state.to_string()
    };
    let (cpu, rss) = view.costs.get(&pid).copied().unwrap_or_default();
    let _ = writeln!(
        out,
        "{:>7}  {:<5}  {:>9}  {:>8}  {:<34}  {branch}{}",
        pid,
        state,
        show_cpu(cpu),
        show_bytes(rss),
        reaper(snap, s),
        truncate(&command, 100)
    );
    let kids = children.get(&pid).cloned().unwrap_or_default();
    let next_prefix = if top {
        String::new()
    } else if last {
        format!("{prefix}   ")
    } else {
        format!("{prefix}│  ")
    };
    for (i, kid) in kids.iter().enumerate() {
        walk(
            view,
            *kid,
            &next_prefix,
            i + 1 == kids.len(),
            false,
            out,
            zombies,
        );
    }
}

/// Who will reap `s`: its parent, described.
fn reaper(snap: &BTreeMap<u32, Stat>, s: &Stat) -> String {
    if s.ppid == 0 {
        return "the kernel".to_string();
    }
    let comm = snap.get(&s.ppid).map(|p| p.comm.as_str()).unwrap_or("?");
    let who = if s.ppid == 1 {
        format!("init 1 ({comm})")
    } else {
        format!("parent {} ({comm})", s.ppid)
    };
    if s.is_zombie() {
        format!("{who}, not yet")
    } else {
        who
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_this_process() {
        let me = std::process::id();
        let text = render(Some(me)).unwrap();
        assert!(text.contains(&me.to_string()));
        assert!(text.contains("REAPED BY"));
    }

    #[test]
    fn unknown_pid_is_an_error() {
        assert!(matches!(
            render(Some(u32::MAX - 1)),
            Err(TreeError::NoSuchPid(_))
        ));
    }
}
