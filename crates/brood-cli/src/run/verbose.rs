//! `-v`: one line on stderr per decision, so a container's log shows what its
//! init did and why.

use std::fmt;
use std::io::Write;

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

/// One line on stderr. Never panics (unlike `eprintln!`): stderr may be a
/// terminal that hung up or a closed pipe, and the init must carry on.
pub fn say(what: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "brood run: {what}");
}
