//! `brood run`'s exit status: the command's own, in the shell's convention, and
//! a few codes of its own, each documented in `--help` and the README.

use brood::ExitStatus;

// A usage error (unknown option, bad value) exits 2 with the usage line: clap's
// code, before anything is started.
/// `--ready`: the command did not become ready (it ended first, the time
/// passed, or it sent STOPPING=1); it was ended.
pub const NOT_READY: u8 = 122;
/// `brood run` itself failed (could not set up signals, watch the command, …).
pub const FAILED: u8 = 123;
/// `--timeout` passed; the whole tree was ended (as `timeout(1)`).
pub const TIMED_OUT: u8 = 124;
/// `--check-leftovers` found processes the command left running (and the
/// command otherwise succeeded).
pub const LEFTOVERS: u8 = 125;
/// The program was found but could not be executed (no permission, not an
/// executable format, argument list too long), as shells do.
pub const CANNOT_EXECUTE: u8 = 126;
/// The terminal hung up on `brood run` (128 + SIGHUP) and the command exited
/// after it, as tini and dumb-init end under a hang-up.
pub const HUNG_UP: u8 = 129;
/// The program was not found, as shells do.
pub const NOT_FOUND: u8 = 127;

/// The table `brood run --help` ends with (kept beside the constants).
pub const TABLE: &str = "\
Exit status:
  N        the command's own exit status (0 also for each --success-code N)
  128+N    the command was killed by signal N (143: SIGTERM, 137: SIGKILL)
  129      also: the terminal hung up and the command exited after it
  2        usage error (unknown option, bad value): nothing was started
  122      --ready: the command did not become ready; it was ended
  123      brood run itself failed (signal set-up, watching the command, --chdir)
  124      --timeout passed; the whole tree was ended
  125      --check-leftovers: the command succeeded but left processes running
  126      the program was found but cannot be executed
  127      the program was not found";

/// The code for a command that ended with `status`, after `--success-code`.
pub fn of_status(status: ExitStatus, success_codes: &[u8]) -> u8 {
    let code = status.shell_code().clamp(0, 255) as u8;
    match status {
        ExitStatus::Exited(_) if success_codes.contains(&code) => 0,
        _ => code,
    }
}

#[cfg(test)]
mod tests {
    use super::of_status;
    use brood::{ExitStatus, Signal};

    #[test]
    fn shell_convention_and_success_codes() {
        assert_eq!(of_status(ExitStatus::Exited(3), &[]), 3);
        assert_eq!(of_status(ExitStatus::Exited(3), &[3]), 0);
        let killed = ExitStatus::Signaled {
            signal: Signal::TERM,
            core_dumped: false,
        };
        assert_eq!(of_status(killed, &[]), 143);
        // A signal death is never remapped, even when 143 is listed.
        assert_eq!(of_status(killed, &[143]), 143);
    }
}
