//! N5 on brood's side: `Pool::new(2).map` over 0..4 where the task for item 1
//! SIGKILLs its own worker — the scenario that hangs Python's `Pool.map`.

use super::kit::Unplayable;
use super::say;
use std::process::ExitCode;

/// The task: item 1 kills the worker running it, mid-task.
fn pool_task(i: u64) -> u64 {
    if i == 1 {
        // The worker SIGKILLs itself, which is the point of the scenario.
        crate::sys::signal::raise_self(libc::SIGKILL);
    }
    i
}

/// Plays the scenario; prints `pool_started`, then `map_done result=…` (each
/// item's value, or the error that item got) or `map_error type=…`.
pub fn play() -> Result<ExitCode, Unplayable> {
    let pool =
        brood::Pool::new(2).map_err(|e| Unplayable(format!("cannot start the pool: {e}")))?;
    say("pool_started", &[]);
    match pool.map(pool_task, 0..4u64) {
        Ok(results) => {
            let result = results
                .iter()
                .map(|r| match r {
                    Ok(v) => v.to_string(),
                    Err(brood::TaskError::WorkerDied {
                        signal: Some(s), ..
                    }) => {
                        format!("WorkerDied({s})")
                    }
                    Err(e) => format!("{e:?}").chars().take(40).collect(),
                })
                .collect::<Vec<_>>()
                .join(",");
            say("map_done", &[("result", result)]);
        }
        Err(e) => say("map_error", &[("type", format!("{e}"))]),
    }
    drop(pool);
    say("main_done", &[("how", "return".into())]);
    Ok(ExitCode::SUCCESS)
}
