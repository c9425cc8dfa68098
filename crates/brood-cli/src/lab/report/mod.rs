//! The lab's report, in every shape:
//!
//! - [`matrix`] and [`terminal`]: the default, per claim its verdict and a
//!   row per scenario, at the terminal's width ([`hazard`], [`verdict`]);
//! - [`detail`]: the evidence table (`--detail`) and the Markdown sections;
//! - [`show`]: one claim's evidence (`brood lab show P5`);
//! - [`html`]: one self-contained page with the grid as SVG (`--html FILE`);
//! - [`json`]: the versioned JSON document (`--json`; schema in
//!   `crates/brood-cli/lab-schema.json`, described in `docs/lab.md`);
//! - [`list`]: the claims themselves (`--list`, and `docs/claims.md`).

pub mod detail;
pub mod hazard;
pub mod html;
pub mod json;
pub mod list;
pub mod machine;
pub mod matrix;
pub mod show;
pub mod terminal;
pub mod text;
pub mod verdict;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use super::claims::{CLAIMS, Lang};
use super::python::{Interpreter, Unusable};
use super::{Actor, RunResult};

/// Output formats on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The compact glyph matrix.
    Matrix,
    /// The evidence table (`--detail`).
    Detail,
    /// Markdown: the matrix, then the evidence per claim.
    Markdown,
    /// JSON (see [`json`]).
    Json,
    /// One claim's evidence (`brood lab show ID`).
    Show,
}

/// Errors writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// stdout failed (closed pipe, full disk).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Serialising failed.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// The HTML page could not be written.
    #[error("cannot write {path}: {source}")]
    Html {
        /// The file asked for.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Everything the report shows.
pub struct Lab {
    /// Language of claim texts.
    pub lang: Lang,
    /// Interpreters used.
    pub interpreters: Vec<Interpreter>,
    /// Interpreters skipped.
    pub unusable: Vec<Unusable>,
    /// Every run, in report order.
    pub results: Vec<RunResult>,
    /// Wall time of the lab.
    pub duration_s: f64,
    /// The machine the lab ran on.
    pub machine: machine::Machine,
}

/// The text of `format`.
pub fn render(lab: &Lab, format: Format, color: bool) -> Result<String, ReportError> {
    Ok(match format {
        Format::Json => json::json(lab)? + "\n",
        Format::Markdown => detail::markdown(lab),
        Format::Detail => detail::table(lab, color),
        Format::Matrix => terminal::terminal(lab, color),
        Format::Show => show::text(lab),
    })
}

/// Text made safe for one Markdown table cell.
pub fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Writes `text` to stdout; a reader that stopped early (`brood lab | head`)
/// is not a failure.
pub fn print(text: &str) -> Result<(), ReportError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Runs of one scenario: the Python runs, brood's default, brood's policy.
pub struct Group<'a> {
    /// The scenario key.
    pub key: &'static str,
    /// What the scenario does.
    pub variant: &'static str,
    /// CPython's runs, in report order.
    pub python: Vec<&'a RunResult>,
    /// brood with its defaults.
    pub brood: Option<&'a RunResult>,
    /// brood with the policy that changes the row.
    pub policy: Option<&'a RunResult>,
}

/// Groups results by claim, then scenario, keeping report order.
pub fn groups(results: &[RunResult]) -> Vec<(&'static str, Vec<Group<'_>>)> {
    let mut order: Vec<&'static str> = Vec::new();
    let mut by_key: BTreeMap<&'static str, Group<'_>> = BTreeMap::new();
    for r in results {
        let g = by_key.entry(r.scenario).or_insert_with(|| {
            order.push(r.scenario);
            Group {
                key: r.scenario,
                variant: r.variant,
                python: Vec::new(),
                brood: None,
                policy: None,
            }
        });
        match &r.actor {
            Actor::Python { .. } => g.python.push(r),
            Actor::Brood { policy: None } => g.brood = Some(r),
            Actor::Brood { policy: Some(_) } => g.policy = Some(r),
        }
    }
    let mut out: Vec<(&'static str, Vec<Group<'_>>)> = Vec::new();
    for claim in CLAIMS {
        let keys: Vec<&'static str> = order
            .iter()
            .copied()
            .filter(|k| by_key.get(k).is_some_and(|g| first(g).claim == claim.id))
            .collect();
        let gs: Vec<Group<'_>> = keys.iter().filter_map(|k| by_key.remove(k)).collect();
        if !gs.is_empty() {
            out.push((claim.id, gs));
        }
    }
    out
}

fn first<'a>(g: &Group<'a>) -> &'a RunResult {
    g.python
        .first()
        .copied()
        .or(g.brood)
        .or(g.policy)
        .expect("a group has at least one run")
}

/// The closing lines every text report shares: runs, time, machine,
/// interpreters (the full one with its start methods, then the sweep).
pub fn footer(lab: &Lab) -> String {
    use super::python::Scope;
    let lang = lab.lang;
    let mut s = match lang {
        Lang::En => format!(
            "{} runs in {:.1} s on {}",
            lab.results.len(),
            lab.duration_s,
            lab.machine.summary()
        ),
        Lang::Zh => format!(
            "{} 次运行，用时 {:.1} 秒，机器：{}",
            lab.results.len(),
            lab.duration_s,
            lab.machine.summary()
        ),
    };
    let full: Vec<String> = lab
        .interpreters
        .iter()
        .filter(|i| i.scope == Scope::Full)
        .map(|i| {
            let methods = if i.start_methods.is_empty() {
                text::tr(lang, "always forks", "总是 fork").to_string()
            } else {
                i.start_methods.join("/")
            };
            format!("{} {} ({methods})", i.version, i.path.display())
        })
        .collect();
    let sweep: Vec<&str> = lab
        .interpreters
        .iter()
        .filter(|i| i.scope == Scope::Sweep)
        .map(|i| i.version.as_str())
        .collect();
    if !full.is_empty() {
        let _ = write!(
            s,
            "\n{} {}",
            text::tr(lang, "CPython, every scenario:", "CPython，全部场景："),
            full.join(", ")
        );
    }
    if !sweep.is_empty() {
        let _ = write!(
            s,
            "\n{} {}",
            text::tr(
                lang,
                "version sweep (default start method):",
                "版本扫描（默认启动方式）："
            ),
            sweep.join(", ")
        );
    }
    for u in &lab.unusable {
        let _ = write!(
            s,
            "\n{} {} — {}",
            text::tr(lang, "not used:", "未使用："),
            u.path,
            u.reason
        );
    }
    s
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A small hand-made lab for the renderers' tests.

    use super::*;
    use crate::lab::scenarios::{Judgement, Verdict};

    pub fn result(
        claim: &'static str,
        scenario: &'static str,
        actor: Actor,
        verdict: Verdict,
    ) -> RunResult {
        RunResult {
            claim,
            scenario,
            variant: "code after the block | twice",
            actor,
            judgement: Judgement {
                verdict,
                evidence: "ran in 2 process(es) <&>".into(),
            },
            duration_s: 0.1,
            timed_out: false,
        }
    }

    pub fn py(version: &str, method: Option<&str>) -> Actor {
        Actor::Python {
            version: version.into(),
            interpreter: format!("/usr/bin/python{version}"),
            method: method.map(String::from),
        }
    }

    fn interp(version: &str, methods: &[&str], scope: crate::lab::python::Scope) -> Interpreter {
        let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
        Interpreter {
            path: format!("/usr/bin/python{version}").into(),
            version: version.into(),
            major_minor: (parts.next().unwrap_or(0), parts.next().unwrap_or(0)),
            start_methods: methods.iter().map(|m| m.to_string()).collect(),
            scope,
        }
    }

    pub fn lab() -> Lab {
        use crate::lab::python::Scope;
        Lab {
            lang: Lang::Zh,
            interpreters: vec![
                interp("3.11.7", &["fork", "spawn", "forkserver"], Scope::Full),
                interp("2.7.18", &[], Scope::Sweep),
            ],
            unusable: vec![Unusable {
                path: "python9".into(),
                reason: "cannot run".into(),
            }],
            results: vec![
                result("F3", "F3.if", py("3.11.7", None), Verdict::Holds),
                result("F3", "F3.if", py("2.7.18", None), Verdict::Holds),
                result(
                    "F3",
                    "F3.if",
                    Actor::Brood { policy: None },
                    Verdict::DoesNotHold,
                ),
                result(
                    "F3",
                    "F3.if",
                    Actor::Brood {
                        policy: Some("raw fork".into()),
                    },
                    Verdict::Holds,
                ),
                result(
                    "P5",
                    "P5.os-wait",
                    py("3.11.7", Some("fork")),
                    Verdict::Holds,
                ),
                result(
                    "P5",
                    "P5.os-wait",
                    py("3.11.7", Some("spawn")),
                    Verdict::Holds,
                ),
                result(
                    "P5",
                    "P5.os-wait",
                    py("3.11.7", Some("forkserver")),
                    Verdict::DoesNotHold,
                ),
                result("P5", "P5.os-wait", py("2.7.18", None), Verdict::Holds),
                result("P5", "P5.join", py("3.11.7", Some("fork")), Verdict::Holds),
                result("P5", "P5.join", py("3.11.7", Some("spawn")), Verdict::Holds),
                result(
                    "P5",
                    "P5.join",
                    py("3.11.7", Some("forkserver")),
                    Verdict::DoesNotHold,
                ),
                result("P5", "P5.join", py("2.7.18", None), Verdict::Partly),
                result(
                    "P5",
                    "P5.join",
                    Actor::Brood { policy: None },
                    Verdict::Inconclusive,
                ),
            ],
            duration_s: 1.0,
            machine: machine::Machine {
                kernel: "6.1.0-test".into(),
                cpus: 2,
                cpu_model: "Test CPU".into(),
                load: "0.10 0.20 0.30".into(),
            },
        }
    }
}
