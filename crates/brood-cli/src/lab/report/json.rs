//! `--json`: one versioned document. `crates/brood-cli/lab-schema.json` is
//! its JSON Schema (draft 2020-12), `docs/lab.md` describes each field, and
//! the test suite checks real output against the schema.
//!
//! Version `brood-lab/2` (this one) moved `kernel` and `cpus` into `machine`
//! and added `machine.cpu_model`, `machine.load` and `scenarios`.

use serde::Serialize;

use super::Lab;
use super::machine::Machine;
use crate::lab::RunResult;
use crate::lab::claims::{CLAIMS, Lang};
use crate::lab::python::{Interpreter, Unusable};
use crate::lab::scenarios;

/// The `schema` field: bumped whenever a field changes meaning or goes away.
pub const SCHEMA: &str = "brood-lab/2";

#[derive(Serialize)]
struct ClaimOut {
    id: &'static str,
    family: &'static str,
    text: &'static str,
    en: &'static str,
    zh: &'static str,
}

#[derive(Serialize)]
struct ScenarioOut {
    key: &'static str,
    claim: &'static str,
    variant: &'static str,
    kind: &'static str,
    sweep: bool,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: &'static str,
    brood_version: &'static str,
    machine: &'a Machine,
    duration_s: f64,
    lang: &'static str,
    interpreters: &'a [Interpreter],
    unusable: &'a [Unusable],
    claims: Vec<ClaimOut>,
    scenarios: Vec<ScenarioOut>,
    runs: &'a [RunResult],
}

/// The JSON text.
pub fn json(lab: &Lab) -> Result<String, serde_json::Error> {
    let report = JsonReport {
        schema: SCHEMA,
        brood_version: env!("CARGO_PKG_VERSION"),
        machine: &lab.machine,
        duration_s: lab.duration_s,
        lang: match lab.lang {
            Lang::En => "en",
            Lang::Zh => "zh",
        },
        interpreters: &lab.interpreters,
        unusable: &lab.unusable,
        claims: CLAIMS
            .iter()
            .map(|c| ClaimOut {
                id: c.id,
                family: c.family,
                text: c.text(lab.lang),
                en: c.en,
                zh: c.zh,
            })
            .collect(),
        scenarios: scenarios::all()
            .into_iter()
            .filter(|s| lab.results.iter().any(|r| r.scenario == s.key))
            .map(|s| ScenarioOut {
                key: s.key,
                claim: s.claim,
                variant: s.variant,
                kind: s.kind.arg(),
                sweep: s.sweep,
            })
            .collect(),
        runs: &lab.results,
    };
    serde_json::to_string_pretty(&report)
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn json_has_the_schema_fields() {
        let v: serde_json::Value = serde_json::from_str(&json(&fixture::lab()).unwrap()).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["machine"]["cpus"], 2);
        assert_eq!(v["runs"][0]["actor"]["kind"], "python");
        assert_eq!(v["runs"][2]["actor"]["policy"], serde_json::Value::Null);
        assert_eq!(v["runs"][3]["verdict"], "holds");
        assert_eq!(v["lang"], "zh");
        assert_eq!(v["scenarios"][0]["key"], "P5.os-wait");
    }
}
