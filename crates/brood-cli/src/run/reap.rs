//! Reaping adopted orphans: every process re-parented to `brood run` (a
//! subreaper, or PID 1) is collected the moment it ends, except the command
//! itself, whose status belongs to brood's library.

use super::verbose::Log;
use crate::sys::wait;

/// Reaps every exited child except `command`; returns how many. With `-v`, one
/// line each: pid and how it ended.
pub fn orphans(command: Option<u32>, log: &Log) -> usize {
    let mut reaped = 0;
    loop {
        let pid = match wait::peek_exited() {
            Ok(Some(pid)) if Some(pid) != command => pid,
            // None left, or the command's own exit (the library reaps it; the
            // others are collected right after it).
            _ => return reaped,
        };
        match wait::reap(pid) {
            Some(status) => log.decision(format_args!("reaped orphan pid {pid}: {status}")),
            None => return reaped,
        }
        reaped += 1;
    }
}
