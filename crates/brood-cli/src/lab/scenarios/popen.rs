//! `subprocess.Popen`: claims S1–S4. The child is a Python process running one
//! of the script's bodies, so it reports itself like the other kinds' children.

use super::common::*;
use super::{BroodPlay, Kind, Scenario};

/// The scenarios of this family, in report order.
pub fn list() -> Vec<Scenario> {
    let mut rows = parent_leaves_rows!(Kind::Popen, "popen", "S1", "S2");
    rows.extend(signals_and_zombies_rows!(Kind::Popen, "popen", "S3", "S4"));
    rows
}
