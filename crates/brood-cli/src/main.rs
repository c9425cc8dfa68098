//! `brood`: measure Python's child-process lifecycle claims against CPython and
//! brood (`lab`), show process trees with their zombies (`tree`), and watch a
//! cluster job on a NATS server (`job`).

mod job;
mod lab;
mod lab_child;
mod procfs;
mod run;
mod sys;
mod tree;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "brood",
    version,
    about = "Child processes that live and die the way their parent says"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure the field report's claims on this machine, for CPython and for brood.
    Lab(LabArgs),
    /// Run one command as its init: every signal forwarded, every orphan reaped,
    /// the whole tree ended with it, its exit status.
    Run(run::RunArgs),
    /// Show the process tree under PID (default: all of your processes), with
    /// states, zombies, and which process will reap each.
    Tree {
        /// The root of the tree.
        pid: Option<u32>,
    },
    /// Show a cluster job on a NATS server: its agents (and the chunk each has
    /// run longest), its chunks pending and running, items done and failed,
    /// its live maps.
    Job(job::JobArgs),
    /// Play the parent's role of one lab scenario with the brood library
    /// (used by `brood lab`; prints the lab's line protocol).
    #[command(hide = true)]
    LabChild {
        /// KIND MODE [key=value …]
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = false)]
struct LabArgs {
    /// `show ID`: one claim's evidence in full.
    #[command(subcommand)]
    action: Option<LabAction>,
    /// Print the claims (with --markdown: the text of docs/claims.md) and exit.
    #[arg(long, conflicts_with_all = ["json", "detail", "html"])]
    list: bool,
    /// Print JSON (schema brood-lab/2: crates/brood-cli/lab-schema.json, docs/lab.md).
    #[arg(long, conflicts_with_all = ["markdown", "detail"])]
    json: bool,
    /// Print Markdown: the matrix, then each claim's evidence.
    #[arg(long, conflicts_with = "detail")]
    markdown: bool,
    /// Print the evidence table (a row per interpreter and start method)
    /// instead of the matrix.
    #[arg(long)]
    detail: bool,
    /// Also write one self-contained HTML page with the matrix and every
    /// run's evidence to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Run only these: comma-separated claim ids (N1 is N1 alone), family
    /// letters (F) or scenario key substrings (kill-parent).
    #[arg(long, value_name = "PATTERN")]
    only: Option<String>,
    /// Use these interpreters (each gets the full matrix) instead of searching.
    #[arg(long, global = true, value_name = "PATH", num_args = 1..)]
    python: Vec<PathBuf>,
    /// Give every interpreter found the full matrix (default: python3 full,
    /// the others the version sweep).
    #[arg(long, global = true)]
    all_pythons: bool,
    /// Skip brood's side (Python only).
    #[arg(long, global = true)]
    no_brood: bool,
    /// Language of the claim texts.
    #[arg(long, global = true, value_enum, default_value = "en")]
    lang: lab::claims::Lang,
    /// Runs in parallel (default: twice the number of CPUs; runs mostly wait).
    #[arg(long, global = true, value_name = "N")]
    jobs: Option<usize>,
    /// Per-run timeout in seconds.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 20.0)]
    timeout: f64,
}

#[derive(Subcommand)]
enum LabAction {
    /// Run one claim's scenarios and print its evidence in full.
    Show {
        /// The claim's id (P5, N11); `brood lab --list` lists them.
        claim: String,
    },
}

fn lab_main(a: LabArgs) -> ExitCode {
    if a.list {
        let text = if a.markdown {
            lab::report::list::markdown()
        } else {
            lab::report::list::text(a.lang)
        };
        return match lab::report::print(&text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("brood lab: {e}");
                ExitCode::from(1)
            }
        };
    }
    let mut only = a.only;
    let format = match &a.action {
        Some(LabAction::Show { claim }) => {
            let Some(c) = lab::claims::find(claim) else {
                eprintln!("brood lab show: no claim {claim:?}; brood lab --list lists them");
                return ExitCode::from(2);
            };
            only = Some(c.id.to_string());
            lab::report::Format::Show
        }
        None if a.json => lab::report::Format::Json,
        None if a.markdown => lab::report::Format::Markdown,
        None if a.detail => lab::report::Format::Detail,
        None => lab::report::Format::Matrix,
    };
    if !(a.timeout.is_finite() && a.timeout > 0.0 && a.timeout < 3600.0) {
        eprintln!("brood lab: --timeout must be between 0 and 3600 seconds");
        return ExitCode::from(2);
    }
    let opts = lab::Options {
        format,
        html: a.html,
        only,
        pythons: a.python,
        all_pythons: a.all_pythons,
        no_brood: a.no_brood,
        lang: a.lang,
        jobs: a.jobs,
        timeout: Duration::from_secs_f64(a.timeout),
    };
    match lab::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(lab::LabError::Interrupted) => {
            eprintln!("brood lab: {}", lab::LabError::Interrupted);
            ExitCode::from(130)
        }
        Err(e @ lab::LabError::NothingSelected(_)) => {
            eprintln!("brood lab: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("brood lab: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    lab_child::init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Lab(a) => lab_main(a),
        Cmd::Run(a) => ExitCode::from(run::main(a)),
        Cmd::Tree { pid } => match tree::render(pid) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("brood tree: {e}");
                ExitCode::from(1)
            }
        },
        Cmd::Job(a) => ExitCode::from(job::main(a)),
        Cmd::LabChild { args } => lab_child::main(&args),
    }
}
