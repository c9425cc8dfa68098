//! `brood lab`: measures the field report's claims on this machine, for CPython
//! and for brood, and prints the matrix.
//!
//! How a run goes:
//! 1. find the interpreters ([`python`]); write the Python scenario script into
//!    a private temporary directory;
//! 2. become a child subreaper and start the one reaper thread ([`reap`]);
//! 3. run every selected (scenario × interpreter × start method) and every brood
//!    play of it (`brood lab-child …`, this same binary) on up to `--jobs`
//!    worker threads, each run observed through `/proc` ([`observe`]) and judged
//!    from what was seen ([`scenarios`]);
//! 4. kill whatever is left below the lab (also on Ctrl-C / SIGTERM), print the
//!    report ([`report`]).
//!
//! Default scope: `python3` runs every scenario under every start method; the
//! other interpreters found (PATH, pyenv) run the version sweep only (the
//! scenarios marked `sweep`, where versions are known to differ, under their
//! default start method), which keeps the default run well under a minute on
//! two cores (two runs per CPU at once: runs mostly wait; 38 s with python3
//! plus nine pyenv versions, 272 runs; 29 s with python3 alone, 182 runs,
//! measured beside other builds). `--all-pythons` runs everything everywhere (about
//! 4 minutes with ten interpreters); `--python PATH…` chooses the interpreters
//! (full matrix each).
//!
//! brood's side: each scenario that brood can play runs twice more, as
//! `brood lab-child KIND MODE …` with brood's defaults for that kind of child
//! (for `Process`, the library's default start method, ForkServer), and with
//! the policy that changes the row (`OnParentDeath::Signal(KILL)`,
//! `OnExit::Wait`, `Tree::Group`, …). Both print the same line protocol as the
//! Python script and are judged by the same code.

pub mod claims; // the claims, in English and Chinese
pub mod observe; // running and watching one scenario
pub mod python; // finding the interpreters
pub mod reap; // subreaper, the one reaper thread, cleanup
pub mod report; // matrix, evidence table, Markdown, HTML, JSON
pub mod scenarios; // what each claim's runs do, and their verdicts

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use claims::Lang;
use observe::Run;
use python::{Interpreter, Scope};
use scenarios::{Judgement, Kind, Scenario, Verdict};

/// The Python side of every scenario (Python 2.7 syntax).
const ACTOR_PY: &str = include_str!("py/actor.py");

/// Options of `brood lab`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Output format.
    pub format: report::Format,
    /// `--html FILE`: also write the page there.
    pub html: Option<PathBuf>,
    /// `--only`: comma-separated claim ids/prefixes or scenario key substrings.
    pub only: Option<String>,
    /// `--python`: interpreters to use instead of searching.
    pub pythons: Vec<PathBuf>,
    /// `--all-pythons`: the full matrix for every interpreter found.
    pub all_pythons: bool,
    /// `--no-brood`: Python only.
    pub no_brood: bool,
    /// Language of the claim texts.
    pub lang: Lang,
    /// Parallel runs (default: twice the number of CPUs).
    pub jobs: Option<usize>,
    /// Per-run timeout.
    pub timeout: Duration,
}

/// Errors that make the lab itself fail (not a verdict).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// No interpreter could be used and brood is off.
    #[error("no usable Python interpreter: {0}")]
    NoPython(String),
    /// The scenario script could not be written.
    #[error("cannot prepare the scenario directory: {0}")]
    TempDir(std::io::Error),
    /// The reaper could not be set up.
    #[error(transparent)]
    Reap(#[from] reap::ReapError),
    /// The current executable is unknown (needed for brood's side).
    #[error("cannot find the brood executable: {0}")]
    Exe(std::io::Error),
    /// Writing the report failed.
    #[error("cannot write the report: {0}")]
    Output(#[from] report::ReportError),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted; every process the lab started was killed")]
    Interrupted,
    /// Installing the signal handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// `--only` selected no scenario.
    #[error(
        "--only {0:?} selects no scenario; claims are P1-P5, F1-F5, S1-S4, X1, X2, N1-N11 (brood lab --list)"
    )]
    NothingSelected(String),
}

/// Who played the parent.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// CPython.
    Python {
        /// `3.11.7`.
        version: String,
        /// The interpreter's path.
        interpreter: String,
        /// The start method (for `multiprocessing.Process` scenarios).
        method: Option<String>,
    },
    /// brood, through `brood lab-child`.
    Brood {
        /// `None`: brood's defaults; else the policy's name.
        policy: Option<String>,
    },
}

impl Actor {
    /// A short label (`py3.11.7 spawn`, `brood`, `brood + Tree::Group`).
    pub fn label(&self) -> String {
        match self {
            Actor::Python {
                version, method, ..
            } => match method {
                Some(m) => format!("py{version} {m}"),
                None => format!("py{version}"),
            },
            Actor::Brood { policy: None } => "brood default".into(),
            Actor::Brood { policy: Some(p) } => format!("brood + {p}"),
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Claim id.
    pub claim: &'static str,
    /// Scenario key.
    pub scenario: &'static str,
    /// What the scenario does.
    pub variant: &'static str,
    /// Who played the parent.
    pub actor: Actor,
    /// Verdict and evidence.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// Wall time of the run.
    pub duration_s: f64,
    /// Whether the run hit `--timeout`.
    pub timed_out: bool,
}

struct Job {
    order: usize,
    scenario: Scenario,
    actor: Actor,
    program: PathBuf,
    args: Vec<String>,
    env: &'static [(&'static str, &'static str)],
    cost: u32,
}

/// Runs the lab and prints the report. Ok when the lab ran, whatever the verdicts.
pub fn run(opts: &Options) -> Result<(), LabError> {
    let started = Instant::now();
    // Before the lab's own load: what the machine was doing when it started.
    let machine = report::machine::Machine::read();
    let stop = Arc::new(AtomicBool::new(false));
    // Ctrl-C, SIGTERM and a closed terminal stop the lab in order: the runs end,
    // every process below the lab is killed, then it exits (130). Only a SIGKILL
    // of the lab itself cannot be cleaned up after.
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(LabError::Signals)?;
    }

    // Interpreters first: their probes wait for their own children, which must
    // happen before the reaper thread owns every wait.
    let (interpreters, unusable) = python::discover(&opts.pythons, opts.all_pythons);
    if interpreters.is_empty() && opts.no_brood {
        let why = unusable
            .iter()
            .map(|u| format!("{}: {}", u.path, u.reason))
            .collect::<Vec<_>>();
        return Err(LabError::NoPython(why.join("; ")));
    }
    let dir = tempfile::Builder::new()
        .prefix("brood-lab-")
        .tempdir()
        .map_err(LabError::TempDir)?;
    let script = dir.path().join("actor.py");
    std::fs::write(&script, ACTOR_PY).map_err(LabError::TempDir)?;
    // The runs' TMPDIR: removed with `dir` when the lab ends, also on Ctrl-C
    // (after every process below the lab was killed).
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).map_err(LabError::TempDir)?;
    let exe = std::env::current_exe().map_err(LabError::Exe)?;

    let jobs = plan(opts, &interpreters, &script, &exe);
    if let (true, Some(only)) = (jobs.is_empty(), &opts.only) {
        return Err(LabError::NothingSelected(only.clone()));
    }
    reap::start()?;
    let results = execute(jobs, opts, &tmp, &stop);
    let leftovers = reap::kill_all_descendants(Duration::from_secs(5));
    if !leftovers.is_empty() {
        eprintln!("brood lab: warning: could not end pids {leftovers:?}");
    }
    if stop.load(Ordering::Relaxed) {
        return Err(LabError::Interrupted);
    }
    let lab = report::Lab {
        lang: opts.lang,
        interpreters,
        unusable,
        results,
        duration_s: started.elapsed().as_secs_f64(),
        machine,
    };
    if let Some(path) = &opts.html {
        report::html::write(&lab, path)?;
    }
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    report::print(&report::render(&lab, opts.format, color)?)?;
    Ok(())
}

/// The start methods a `Process` scenario runs under: each one the interpreter
/// offers (its default only, in a sweep); `None` for Python 2.7, which has none.
fn method_list(interp: &Interpreter) -> Vec<Option<String>> {
    let known = ["fork", "spawn", "forkserver"];
    if !interp.has_contexts() {
        return vec![None];
    }
    let mut methods: Vec<String> = interp
        .start_methods
        .iter()
        .filter(|m| known.contains(&m.as_str()))
        .cloned()
        .collect();
    if interp.scope == Scope::Sweep {
        methods.truncate(1);
    }
    methods.into_iter().map(Some).collect()
}

/// Every run to make, in report order.
fn plan(
    opts: &Options,
    interps: &[Interpreter],
    script: &std::path::Path,
    exe: &std::path::Path,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    for s in scenarios::all()
        .into_iter()
        .filter(|s| scenarios::selected(s, opts.only.as_deref()))
    {
        for interp in interps {
            if interp.scope == Scope::Sweep && !s.sweep {
                continue;
            }
            let methods = if s.kind == Kind::Process {
                method_list(interp)
            } else {
                vec![None]
            };
            for method in methods {
                let mut args: Vec<String> = s.interp.flags.iter().map(|f| f.to_string()).collect();
                args.extend([script.display().to_string(), s.kind.arg().to_string()]);
                args.push(method.clone().unwrap_or_else(|| "-".into()));
                args.extend(s.mode.iter().map(|a| a.to_string()));
                let slow_start = matches!(method.as_deref(), Some("spawn" | "forkserver"));
                jobs.push(Job {
                    order: jobs.len(),
                    scenario: s,
                    actor: Actor::Python {
                        version: interp.version.clone(),
                        interpreter: interp.path.display().to_string(),
                        method,
                    },
                    program: interp.path.clone(),
                    args,
                    env: s.interp.env,
                    cost: cost(&s) + u32::from(slow_start),
                });
            }
        }
        if opts.no_brood {
            continue;
        }
        if let Some(play) = s.brood {
            let mut plays = vec![(None, play.default)];
            if let Some((name, args)) = play.policy {
                plays.push((Some(name.to_string()), args));
            }
            for (policy, args) in plays {
                let mut a = vec!["lab-child".to_string()];
                a.extend(args.iter().map(|x| x.to_string()));
                jobs.push(Job {
                    order: jobs.len(),
                    scenario: s,
                    actor: Actor::Brood { policy },
                    program: exe.to_path_buf(),
                    args: a,
                    env: &[],
                    cost: cost(&s),
                });
            }
        }
    }
    jobs
}

/// A rough relative duration, so the longest runs start first.
fn cost(s: &Scenario) -> u32 {
    match s.claim {
        "N1" | "N5" => 6,
        "P1" | "X2" | "F1" | "F2" | "S1" | "S2" | "N2" | "N6" | "N9" | "N11" => 3,
        _ => 2,
    }
}

fn execute(
    mut jobs: Vec<Job>,
    opts: &Options,
    tmp: &std::path::Path,
    stop: &Arc<AtomicBool>,
) -> Vec<RunResult> {
    let total = jobs.len();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.cost));
    // Two runs per CPU: a run mostly waits (a child's sleep, a budget that
    // shows a hang), using a tenth of a CPU on average (20 s of CPU time in a
    // 60 s lab on two cores), so the CPUs stay far from busy.
    let workers = opts
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| 2 * n.get())
                .unwrap_or(4)
        })
        .clamp(1, 64);
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {wide_msg}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, RunResult)>> = Mutex::new(Vec::new());
    let tags = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers.min(total.max(1)) {
            scope.spawn(|| {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    bar.set_message(format!("{} {}", job.scenario.key, job.actor.label()));
                    let tag = format!(
                        "{}-{}",
                        std::process::id(),
                        tags.fetch_add(1, Ordering::Relaxed)
                    );
                    if let Some(r) = run_one(job, tag, tmp, opts.timeout, stop) {
                        results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((job.order, r));
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(order, _)| *order);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Runs one job; `None` when brood reports that it cannot play the scenario.
fn run_one(
    job: &Job,
    tag: String,
    tmp: &std::path::Path,
    timeout: Duration,
    stop: &Arc<AtomicBool>,
) -> Option<RunResult> {
    let s = &job.scenario;
    let t0 = Instant::now();
    let (judgement, timed_out) = match Run::start(
        &job.program,
        &job.args,
        job.env,
        tmp,
        tag,
        timeout,
        Arc::clone(stop),
    ) {
        Err(e) => (
            Judgement {
                verdict: Verdict::Inconclusive,
                evidence: e.to_string(),
            },
            false,
        ),
        Ok(mut run) => {
            let outcome = (s.drive)(&mut run);
            let obs = run.finish();
            if obs.first("unsupported").is_some() {
                return None;
            }
            let judgement = match outcome {
                Ok(()) => (s.judge)(&obs),
                Err(why) => scenarios::aborted(&obs, &why),
            };
            (judgement, obs.timed_out)
        }
    };
    Some(RunResult {
        claim: s.claim,
        scenario: s.key,
        variant: s.variant,
        actor: job.actor.clone(),
        judgement,
        duration_s: t0.elapsed().as_secs_f64(),
        timed_out,
    })
}
