//! [`Signal`]: a POSIX signal number with the names rustix gives them.

use std::fmt;

/// A signal, as a small copyable number.
///
/// The constants are named as `rustix::process::Signal` names them (`TERM`, not
/// `SIGTERM`); [`Signal::name`] gives the conventional `SIGTERM` spelling.
///
/// ```
/// use brood::Signal;
/// assert_eq!(Signal::TERM.as_raw(), 15);
/// assert_eq!(Signal::KILL.to_string(), "SIGKILL");
/// assert_eq!(Signal::from_raw(2), Some(Signal::INT));
/// assert_eq!(Signal::from_raw(0), None);
/// ```
#[derive(
    Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "i32", into = "i32")]
pub struct Signal(i32);

macro_rules! signals {
    ($($name:ident = $raw:ident, $text:literal;)*) => {
        impl Signal {
            $(
                #[doc = concat!("`", $text, "`")]
                pub const $name: Signal = Signal(libc::$raw);
            )*

            /// The conventional name (`"SIGTERM"`), or `"SIG<n>"` for a real-time signal.
            pub fn name(self) -> String {
                match self.0 {
                    $(libc::$raw => $text.to_string(),)*
                    n => format!("SIG{n}"),
                }
            }
        }
    };
}

signals! {
    HUP = SIGHUP, "SIGHUP";
    INT = SIGINT, "SIGINT";
    QUIT = SIGQUIT, "SIGQUIT";
    ILL = SIGILL, "SIGILL";
    TRAP = SIGTRAP, "SIGTRAP";
    ABORT = SIGABRT, "SIGABRT";
    BUS = SIGBUS, "SIGBUS";
    FPE = SIGFPE, "SIGFPE";
    KILL = SIGKILL, "SIGKILL";
    USR1 = SIGUSR1, "SIGUSR1";
    SEGV = SIGSEGV, "SIGSEGV";
    USR2 = SIGUSR2, "SIGUSR2";
    PIPE = SIGPIPE, "SIGPIPE";
    ALARM = SIGALRM, "SIGALRM";
    TERM = SIGTERM, "SIGTERM";
    CHILD = SIGCHLD, "SIGCHLD";
    CONT = SIGCONT, "SIGCONT";
    STOP = SIGSTOP, "SIGSTOP";
    TSTP = SIGTSTP, "SIGTSTP";
    TTIN = SIGTTIN, "SIGTTIN";
    TTOU = SIGTTOU, "SIGTTOU";
    URG = SIGURG, "SIGURG";
    XCPU = SIGXCPU, "SIGXCPU";
    XFSZ = SIGXFSZ, "SIGXFSZ";
    VTALARM = SIGVTALRM, "SIGVTALRM";
    PROF = SIGPROF, "SIGPROF";
    WINCH = SIGWINCH, "SIGWINCH";
    IO = SIGIO, "SIGIO";
    SYS = SIGSYS, "SIGSYS";
}

impl Signal {
    /// The signal with number `raw`, if `raw` names a signal this system can deliver
    /// (1 to `SIGRTMAX`).
    pub fn from_raw(raw: i32) -> Option<Signal> {
        (1..=libc::SIGRTMAX()).contains(&raw).then_some(Signal(raw))
    }

    /// The signal's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// Parses `"TERM"`, `"SIGTERM"`, `"sigterm"` or `"15"`.
    ///
    /// ```
    /// use brood::Signal;
    /// assert_eq!(Signal::parse("sigkill"), Some(Signal::KILL));
    /// assert_eq!(Signal::parse("15"), Some(Signal::TERM));
    /// assert_eq!(Signal::parse("NOPE"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Signal> {
        if let Ok(n) = text.parse::<i32>() {
            return Signal::from_raw(n);
        }
        let upper = text.to_ascii_uppercase();
        let wanted = upper.strip_prefix("SIG").unwrap_or(&upper);
        (1..32)
            .filter_map(Signal::from_raw)
            .find(|s| s.name().strip_prefix("SIG") == Some(wanted))
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl From<Signal> for i32 {
    fn from(sig: Signal) -> i32 {
        sig.0
    }
}

impl TryFrom<i32> for Signal {
    type Error = NotASignal;

    /// As [`Signal::from_raw`], with an error that says which number it was.
    fn try_from(raw: i32) -> Result<Signal, NotASignal> {
        Signal::from_raw(raw).ok_or(NotASignal(raw))
    }
}

/// A number that is not a signal this system can deliver.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a signal number (1 to SIGRTMAX)")]
pub struct NotASignal(pub i32);
