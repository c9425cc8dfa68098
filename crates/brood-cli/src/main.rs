//! `brood`: measure Python's child-process lifecycle claims against CPython and
//! brood (`lab`), and show process trees with their zombies (`tree`).

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
struct LabArgs {
    /// Print JSON (schema: crates/brood-cli/lab-schema.json).
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print a Markdown report.
    #[arg(long)]
    markdown: bool,
    /// Run only these: comma-separated claim ids or prefixes (P3, F) or scenario
    /// key substrings (kill-parent).
    #[arg(long, value_name = "PATTERN")]
    only: Option<String>,
    /// Use these interpreters (each gets the full matrix) instead of searching.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    python: Vec<PathBuf>,
    /// Give every interpreter found the full matrix (default: python3 full,
    /// the others the version sweep).
    #[arg(long)]
    all_pythons: bool,
    /// Skip brood's side (Python only).
    #[arg(long)]
    no_brood: bool,
    /// Language of the claim texts.
    #[arg(long, value_enum, default_value = "en")]
    lang: lab::claims::Lang,
    /// Runs in parallel (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Per-run timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 20.0)]
    timeout: f64,
}

fn main() -> ExitCode {
    lab_child::init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Lab(a) => {
            let format = if a.json {
                lab::report::Format::Json
            } else if a.markdown {
                lab::report::Format::Markdown
            } else {
                lab::report::Format::Table
            };
            if !(a.timeout.is_finite() && a.timeout > 0.0 && a.timeout < 3600.0) {
                eprintln!("brood lab: --timeout must be between 0 and 3600 seconds");
                return ExitCode::from(2);
            }
            let opts = lab::Options {
                format,
                only: a.only,
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
        Cmd::LabChild { args } => lab_child::main(&args),
    }
}
