//! `-v`: one line on stderr per decision, so a container's log shows what its
//! init did and why.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where decisions are told.
#[derive(Copy, Clone, Debug)]
pub struct Log {
    verbose: bool,
}

impl Log {
    /// Tells decisions only with `verbose`.
    pub fn new(verbose: bool) -> Log {
        Log { verbose }
    }

    /// A decision, shown with `-v`.
    pub fn decision(&self, what: fmt::Arguments<'_>) {
        if self.verbose {
            say(what);
        }
    }

    /// Something the user must see whatever `-v` says (timeouts, restarts,
    /// giving up, leftovers).
    pub fn notice(&self, what: fmt::Arguments<'_>) {
        say(what);
    }
}

/// Set once stderr's reader is gone: nothing is written there again.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// One line on stderr. Never panics (unlike `eprintln!`): stderr may be a
/// terminal that hung up or a closed pipe, and the init must carry on. Once
/// a write failed with `EPIPE` (or `EIO`, a hung-up terminal) no line is
/// written again: each such write raises a SIGPIPE on us, which we read as
/// any other signal, and a loop that logged what it read raised one more
/// for ever.
pub fn say(what: fmt::Arguments<'_>) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = writeln!(std::io::stderr().lock(), "brood run: {what}")
        && (e.kind() == io::ErrorKind::BrokenPipe || e.raw_os_error() == Some(libc::EIO))
    {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}
