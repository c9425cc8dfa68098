//! The observer: runs one scenario's parent program and watches it and its
//! children through `/proc`, the line protocol and the lab's reaper.
//!
//! The parent program (a Python script or `brood lab-child`) prints facts on
//! stdout, one per line: `event key=value …` (for example `child pid=4321
//! daemon=1`, `main_done how=return`). The observer time-stamps each line on
//! arrival, starts watching every pid a line names, and samples each watched
//! pid's `/proc/<pid>/stat` every few milliseconds: state (Z = zombie), parent
//! pid (re-parenting to the lab shows the parent is gone), and when it
//! disappeared. A line on the program's stdin is the lab's go-ahead where a
//! scenario must look before the program moves on.
//!
//! Every process of a run carries the environment entry `BROOD_LAB_RUN=<tag>`;
//! at the end the run kills each of its processes by pid (found through that
//! tag, the program's process group and the tree below them) and waits until
//! they are gone.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::reap::{self, Ended};
use crate::procfs;

/// One protocol line, time-stamped on arrival.
#[derive(Debug, Clone)]
pub struct Line {
    /// Seconds since the run started.
    pub t: f64,
    /// The first word.
    pub event: String,
    /// The `key=value` words.
    pub kv: BTreeMap<String, String>,
    /// The line as it came (two writers' text may share one line).
    pub raw: String,
}

impl Line {
    /// Parses `event key=value …` received at `t`; `None` for a blank line.
    pub fn parse(t: f64, text: &str) -> Option<Line> {
        let mut words = text.split_whitespace();
        let event = words.next()?.to_string();
        let kv = words
            .filter_map(|w| {
                w.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Some(Line {
            t,
            event,
            kv,
            raw: text.to_string(),
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kv.get(key).map(String::as_str)
    }

    /// The value of `pid`.
    pub fn pid(&self) -> Option<u32> {
        self.get("pid")?.parse().ok()
    }
}

/// What the observer saw of one process.
#[derive(Debug, Clone, Default)]
pub struct Track {
    /// Start time (clock ticks), naming the process even if the pid is reused.
    pub starttime: Option<u64>,
    /// When the observer first saw it in `/proc`.
    pub seen_at: Option<f64>,
    /// When it was first seen in state Z.
    pub zombie_at: Option<f64>,
    /// When it was last seen in state Z.
    pub zombie_last: Option<f64>,
    /// When it disappeared from `/proc` (or its pid was reused).
    pub gone_at: Option<f64>,
    /// Its parent pids over time: (when first seen, ppid).
    pub ppids: Vec<(f64, u32)>,
    /// How it ended, when the lab itself reaped it (an adopted orphan, or the parent).
    pub ended: Option<Ended>,
}

impl Track {
    /// Whether it was still there (alive or zombie) at time `t`.
    pub fn present_at(&self, t: f64) -> bool {
        self.seen_at.is_some_and(|s| s <= t) && self.gone_at.is_none_or(|g| g > t)
    }

    /// When it was first seen with `ppid` as its parent.
    pub fn adopted_by(&self, ppid: u32) -> Option<f64> {
        self.ppids.iter().find(|(_, p)| *p == ppid).map(|(t, _)| *t)
    }
}

/// Everything a run observed: the input of the verdict.
#[derive(Debug, Clone, Default)]
pub struct Obs {
    /// The lab's pid (the subreaper orphans are re-parented to).
    pub lab_pid: u32,
    /// The parent program's pid.
    pub parent: u32,
    /// Protocol lines, in order.
    pub lines: Vec<Line>,
    /// Every watched process, the parent included.
    pub procs: BTreeMap<u32, Track>,
    /// Signals the lab sent: (when, pid, signal).
    pub sent: Vec<(f64, u32, i32)>,
    /// The parent's stderr (its last 8 KiB).
    pub stderr: String,
    /// When the observation ended (before cleanup).
    pub end_t: f64,
    /// Whether the run hit its timeout.
    pub timed_out: bool,
    /// Named durations the driver chose (for example the hang budget).
    pub notes: BTreeMap<String, String>,
    /// Whether every writer of the parent's stdout has gone (no more lines can come).
    pub stdout_closed: bool,
    /// Processes that no protocol line announced, found by [`Run::scan_descendants`].
    pub found: Vec<Found>,
}

/// A process of the run that the parent program did not announce.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its pid.
    pub pid: u32,
    /// Its command line then.
    pub cmdline: String,
    /// Found as the parent of the program's children rather than below the
    /// program (a fork server that detached itself).
    pub parent_of_children: bool,
}

impl Obs {
    /// The lines of `event`.
    pub fn events<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Line> + 'a {
        self.lines.iter().filter(move |l| l.event == event)
    }

    /// The first line of `event`.
    pub fn first(&self, event: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.event == event)
    }

    /// The pids of the `child` lines.
    pub fn children(&self) -> Vec<u32> {
        self.events("child").filter_map(Line::pid).collect()
    }

    /// The track of `pid` (an empty one if it was never watched).
    pub fn track(&self, pid: u32) -> Track {
        self.procs.get(&pid).cloned().unwrap_or_default()
    }

    /// When the parent ended, and how.
    pub fn parent_exit(&self) -> Option<(f64, Option<Ended>)> {
        let t = self.procs.get(&self.parent)?;
        t.gone_at.map(|g| (g, t.ended))
    }

    /// The last non-empty line of stderr, for evidence.
    pub fn stderr_tail(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
    }
}

/// Why a driver stopped early.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Abort {
    /// The lab was interrupted (Ctrl-C, SIGTERM).
    #[error("interrupted")]
    Interrupted,
    /// The run's timeout passed.
    #[error("timed out")]
    Timeout,
    /// The expected protocol line did not come.
    #[error("no `{0}` line from the parent program")]
    Missing(String),
}

/// Errors starting a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The parent program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// One scenario run in progress.
pub struct Run {
    start: Instant,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    rx: Receiver<(Instant, String)>,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
    tag: String,
    obs: Obs,
}

/// The environment variable that tags a run's processes.
pub const TAG_VAR: &str = "BROOD_LAB_RUN";

impl Run {
    /// Starts `program args…` in its own process group, tagged with `tag`,
    /// with `TMPDIR` set to `tmpdir` (inside the lab's own temporary
    /// directory: what a killed parent leaves there, such as
    /// multiprocessing's `pymp-*` directories, goes with it); `env` replaces
    /// the lab's default environment entries.
    pub fn start(
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        tmpdir: &Path,
        tag: String,
        timeout: Duration,
        stop: Arc<AtomicBool>,
    ) -> Result<Run, RunError> {
        let start = Instant::now();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env(TAG_VAR, &tag)
            .env("TMPDIR", tmpdir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            // Its own group: the terminal's Ctrl-C reaches the lab only, which
            // then cleans up in order, and killpg reaches the whole run.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RunError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let parent = child.id();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if s.len() > 8192 {
                        let cut = s.len() - 8192;
                        let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(0);
                        s.drain(..cut);
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        // The handle is dropped without a wait: the reaper thread owns every wait.
        drop(child);
        let mut run = Run {
            start,
            deadline: start + timeout,
            stop,
            rx,
            stdin,
            stderr,
            tag,
            obs: Obs {
                lab_pid: std::process::id(),
                parent,
                ..Obs::default()
            },
        };
        run.watch(parent);
        Ok(run)
    }

    /// Seconds since the run started.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// What has been observed so far.
    pub fn obs(&self) -> &Obs {
        &self.obs
    }

    /// Records a named value for the verdict.
    pub fn note(&mut self, key: &str, value: impl ToString) {
        self.obs.notes.insert(key.to_string(), value.to_string());
    }

    fn watch(&mut self, pid: u32) {
        let t = self.now();
        self.obs.procs.entry(pid).or_default();
        self.sample_one(pid, t);
    }

    fn sample_one(&mut self, pid: u32, t: f64) {
        let since = self.start;
        let Some(track) = self.obs.procs.get_mut(&pid) else {
            return;
        };
        if track.gone_at.is_some() {
            // /proc can drop a process a moment before the reaper thread files
            // its status: pick the status up late.
            if track.ended.is_none() {
                track.ended = reap::ended(pid, since).map(|(_, how)| how);
            }
            return;
        }
        if let Some((_, how)) = reap::ended(pid, since) {
            track.ended = Some(how);
            if track.seen_at.is_none() {
                track.seen_at = Some(t);
            }
            track.gone_at = Some(t);
            return;
        }
        match procfs::stat(pid) {
            Some(s) if track.starttime.is_none_or(|st| st == s.starttime) => {
                track.starttime = Some(s.starttime);
                track.seen_at.get_or_insert(t);
                if s.is_zombie() {
                    track.zombie_at.get_or_insert(t);
                    track.zombie_last = Some(t);
                }
                if track.ppids.last().is_none_or(|(_, p)| *p != s.ppid) {
                    track.ppids.push((t, s.ppid));
                }
            }
            _ => {
                // Gone, or the pid now names another process. A process that
                // ended before it was ever seen still counts as seen and gone.
                track.seen_at.get_or_insert(t);
                track.gone_at = Some(t);
            }
        }
    }

    fn sample(&mut self) {
        let t = self.now();
        let pids: Vec<u32> = self.obs.procs.keys().copied().collect();
        for pid in pids {
            self.sample_one(pid, t);
        }
    }

    fn take_line(&mut self, at: Instant, text: &str) {
        let t = at.saturating_duration_since(self.start).as_secs_f64();
        if let Some(line) = Line::parse(t, text) {
            let watch = matches!(
                line.event.as_str(),
                "child" | "child_running" | "grandchild" | "worker"
            );
            if let (true, Some(pid)) = (watch, line.pid()) {
                self.watch(pid);
            }
            self.obs.lines.push(line);
        }
    }

    /// Observes until `until` returns true or `budget` passes; Ok(true) when the
    /// condition was met, Ok(false) when the budget ran out.
    pub fn wait_until(
        &mut self,
        budget: Duration,
        mut until: impl FnMut(&Obs) -> bool,
    ) -> Result<bool, Abort> {
        let end = Instant::now() + budget;
        loop {
            self.sample();
            if until(&self.obs) {
                return Ok(true);
            }
            if self.stop.load(Ordering::Relaxed) {
                return Err(Abort::Interrupted);
            }
            let now = Instant::now();
            if now >= self.deadline {
                self.obs.timed_out = true;
                return Err(Abort::Timeout);
            }
            if now >= end {
                return Ok(false);
            }
            let step = Duration::from_millis(4).min(end - now);
            match self.rx.recv_timeout(step) {
                Ok((at, text)) => {
                    self.take_line(at, &text);
                    while let Ok((at, text)) = self.rx.try_recv() {
                        self.take_line(at, &text);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // stdout closed: every writer is gone; keep sampling /proc.
                Err(RecvTimeoutError::Disconnected) => {
                    self.obs.stdout_closed = true;
                    std::thread::sleep(step)
                }
            }
        }
    }

    /// Observes for `d`, whatever happens.
    pub fn observe_for(&mut self, d: Duration) -> Result<(), Abort> {
        self.wait_until(d, |_| false).map(|_| ())
    }

    /// Waits for `count` lines of `event`; `Abort::Missing` when they do not come
    /// within `budget` (or the parent ends first and no more can come).
    pub fn expect(&mut self, event: &str, count: usize, budget: Duration) -> Result<(), Abort> {
        let ok = self.wait_until(budget, |o| {
            o.events(event).count() >= count || o.stdout_closed
        })?;
        if ok && self.obs.events(event).count() >= count {
            Ok(())
        } else {
            Err(Abort::Missing(event.to_string()))
        }
    }

    /// Waits until `pid` is gone from `/proc`; false when `budget` passed first.
    pub fn wait_gone(&mut self, pid: u32, budget: Duration) -> Result<bool, Abort> {
        self.watch(pid);
        self.wait_until(budget, |o| {
            o.procs.get(&pid).is_some_and(|t| t.gone_at.is_some())
        })
    }

    /// Sends `sig` to `pid` and records it.
    pub fn signal(&mut self, pid: u32, sig: i32) {
        let t = self.now();
        if reap::kill(pid, sig) {
            self.obs.sent.push((t, pid, sig));
        }
    }

    /// Watches every process below the parent that is not watched yet, and
    /// records it in [`Obs::found`] with its command line. Returns the new pids.
    pub fn scan_descendants(&mut self) -> Vec<u32> {
        let snap = procfs::snapshot();
        let below: Vec<u32> = procfs::descendants(&snap, self.obs.parent)
            .into_iter()
            .filter(|pid| !self.obs.procs.contains_key(pid))
            .collect();
        let mut new = below.clone();
        // A fork server that detached itself is no descendant of the parent,
        // but it is the parent of the parent's children.
        for child in self.obs.children() {
            if let Some(s) = snap.get(&child) {
                let p = s.ppid;
                let known = [0, 1, self.obs.parent, self.obs.lab_pid];
                if !known.contains(&p) && !self.obs.procs.contains_key(&p) && !new.contains(&p) {
                    new.push(p);
                }
            }
        }
        for &pid in &new {
            self.obs.found.push(Found {
                pid,
                cmdline: procfs::cmdline(pid),
                parent_of_children: !below.contains(&pid),
            });
            self.watch(pid);
        }
        new
    }

    /// Starts a helper of the lab's own for this run (a tracer), tagged like
    /// the run's processes so that [`Run::finish`] ends it; it is watched, and
    /// the lab's reaper collects it. Its output goes to /dev/null.
    pub fn spawn_helper(&mut self, program: &str, args: &[String]) -> Result<u32, RunError> {
        let child = Command::new(program)
            .args(args)
            .env(TAG_VAR, &self.tag)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RunError::Spawn {
                program: program.to_string(),
                source,
            })?;
        let pid = child.id();
        // Not waited for here: the reaper thread owns every wait.
        drop(child);
        self.watch(pid);
        Ok(pid)
    }

    /// Writes the go-ahead line to the parent's stdin.
    pub fn go(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(b"go\n");
            let _ = stdin.flush();
        }
    }

    /// Ends the observation, kills every process of the run and waits until
    /// they are gone. Returns what was observed.
    pub fn finish(mut self) -> Obs {
        // Drain what already arrived, and what is still on its way: a parent
        // seen gone in /proc may have lines in the pipe that the reader thread
        // has not passed on yet (a loaded machine delays it). Once every
        // writer is gone the pipe closes; a child that lives on keeps it open,
        // so the wait is short.
        while let Ok((at, text)) = self.rx.try_recv() {
            self.take_line(at, &text);
        }
        let _ = self.wait_until(Duration::from_millis(50), |o| o.stdout_closed);
        self.sample();
        self.obs.end_t = self.now();
        // The parent is the lab's own child: once it is gone, its status is on
        // its way from the reaper thread; give it a moment to arrive.
        let parent = self.obs.parent;
        let _ = self.wait_until(Duration::from_millis(50), |o| {
            o.procs
                .get(&parent)
                .is_none_or(|t| t.gone_at.is_none() || t.ended.is_some())
        });
        self.stdin = None;
        let victims = self.victims();
        reap::kill_and_wait(victims, Duration::from_secs(3));
        self.obs.stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        self.obs
    }

    /// The run's processes still there: tagged descendants of the lab, members
    /// of the parent's process group, watched pids, and everything below them.
    fn victims(&self) -> Vec<(u32, u64)> {
        let snap = procfs::snapshot();
        let entry = format!("{TAG_VAR}={}", self.tag);
        let below_lab = procfs::descendants(&snap, self.obs.lab_pid);
        let mut roots: HashSet<u32> = below_lab
            .iter()
            .copied()
            .filter(|pid| {
                snap.get(pid).is_some_and(|s| s.pgid == self.obs.parent)
                    || procfs::environ_has(*pid, &entry)
            })
            .collect();
        for (pid, track) in &self.obs.procs {
            if snap
                .get(pid)
                .is_some_and(|s| Some(s.starttime) == track.starttime)
            {
                roots.insert(*pid);
            }
        }
        let mut all: HashSet<u32> = roots.clone();
        for root in roots {
            all.extend(procfs::descendants(&snap, root));
        }
        all.into_iter()
            .filter_map(|pid| snap.get(&pid).map(|s| (pid, s.starttime)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let l = Line::parse(1.5, "child pid=42 daemon=1").unwrap();
        assert_eq!(l.event, "child");
        assert_eq!(l.pid(), Some(42));
        assert_eq!(l.get("daemon"), Some("1"));
        assert!(Line::parse(0.0, "   ").is_none());
    }
}
