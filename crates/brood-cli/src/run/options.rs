//! `brood run`'s command line: the clap definition, the value parsers (a bad
//! value is a usage error, exit 2 with the usage line), and the options the
//! supervisor works from.

use super::exit;
use brood::Signal;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

const ABOUT: &str = "\
Run one command as its init: a subreaper (or PID 1) that forwards every signal, \
reaps every orphan, ends the whole tree with the command, and exits with the \
command's status.";

const LONG_ABOUT: &str = "\
Run one command as its init (what tini and dumb-init do, plus whole-tree ending, \
timeouts and restarts).

Signals: every signal that can be caught except SIGCHLD (the 28 classic ones and \
the real-time ones) is forwarded to the command's process group, which the command \
leads (--forward-to group, the default, as dumb-init). Why the group: a shell \
script ENTRYPOINT that does not `exec` passes no SIGTERM on to its children, so \
with the command alone a container's stop would wait out the grace and end in \
SIGKILL; the group gets it the way a terminal's Ctrl-C reaches a whole job, and \
nothing outside the command's group is touched. --forward-to child sends to the \
command alone (tini's default), for programs that manage their own workers. \
Signals that were ignored when brood run started (under nohup, SIGHUP) stay \
ignored: not forwarded, and the command starts with them ignored; blocked ones \
reach the command blocked.

Job control, as dumb-init: SIGTSTP/SIGTTIN/SIGTTOU sent to brood run are \
forwarded, then brood run stops itself; SIGCONT resumes it and is forwarded. On a \
terminal the command gets the foreground before it starts; when it is stopped \
from the terminal (Ctrl-Z), brood run stops too, so the shell that started it \
gets the terminal back, and `fg` resumes both.

As PID 1 (a container's entrypoint): every orphan is reaped at once; when the \
command exits, every process left in the namespace gets SIGTERM, then SIGKILL \
after --grace. Otherwise brood run is a subreaper and ends every descendant the \
same way. The working directory is the caller's unless --chdir is given.";

/// `brood run [OPTIONS] [--] COMMAND [ARGS…]`.
#[derive(clap::Args, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT, after_help = exit::TABLE)]
pub struct RunArgs {
    /// Where forwarded signals go: the command's process group, or the command
    /// alone.
    #[arg(long, value_enum, value_name = "WHERE", default_value = "group")]
    forward_to: ForwardTo,
    /// Forward signal FROM as TO (dumb-init's -r), e.g. TERM:QUIT; TO 0 drops
    /// FROM. Repeatable.
    #[arg(long, value_name = "FROM:TO", value_parser = parse_rewrite)]
    rewrite: Vec<(Signal, Option<Signal>)>,
    /// Signal the command gets if brood run dies, even by SIGKILL ("none" to let
    /// it survive).
    #[arg(long, value_name = "SIG", default_value = "KILL", value_parser = parse_signal_or_none)]
    on_parent_death: MaybeSignal,
    /// brood run itself gets SIG when its own parent dies (tini's -p); it then
    /// forwards SIG and ends the whole tree after --grace.
    #[arg(long, value_name = "SIG", value_parser = parse_signal)]
    die_with_parent: Option<Signal>,
    /// End the command's whole tree after this long (10s, 500ms, 2m), restarts
    /// included; exit 124.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when ending the tree.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    grace: Duration,
    /// When the command exits, wait for every other descendant to end on its own
    /// instead of ending them (--timeout still applies).
    #[arg(long)]
    wait_all: bool,
    /// End (SIGTERM, then SIGKILL after --grace) every orphan adopted while the
    /// command runs: a process whose parent died is no longer part of the
    /// command's tree. Checked every 200ms.
    #[arg(long)]
    kill_orphans: bool,
    /// Restart the command when it exits: on-failure (a status other than 0 or a
    /// --success-code) or always. Each restart waits: 100 ms doubling up to 30s,
    /// jittered, back to 100 ms after a run of 10s.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "never")]
    restart: Restart,
    /// Give up after this many restarts within --within; exit with the last status.
    #[arg(long, value_name = "N", default_value_t = 5)]
    max_restarts: u32,
    /// The window --max-restarts counts in.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    within: Duration,
    /// Count exit code N as success (tini's -e): brood run exits 0 and does not
    /// restart on failure. Repeatable.
    #[arg(long, value_name = "N")]
    success_code: Vec<u8>,
    /// Start the command in DIR (default: the caller's working directory).
    #[arg(long, value_name = "DIR")]
    chdir: Option<PathBuf>,
    /// Wait until the command is ready before counting it started: a line of
    /// its stdout containing TEXT (line:TEXT, stderr:TEXT for stderr), a TCP
    /// port on 127.0.0.1 that accepts (tcp:PORT), a Unix socket that accepts
    /// (unix:PATH), a file that appears (file:PATH), systemd's READY=1 on a
    /// NOTIFY_SOCKET of brood run's own (notify), or s6's newline on
    /// descriptor N (fd:N). If brood run has a NOTIFY_SOCKET itself (under
    /// systemd's Type=notify), it sends READY=1 there once the command is
    /// ready, and the command does not get that socket.
    #[arg(long, value_name = "SIGN", value_parser = parse_ready)]
    ready: Option<brood::Ready>,
    /// How long --ready waits; the command is then ended, exit 122.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    ready_timeout: Duration,
    /// List processes the command left running, and exit 125 if there were any
    /// (and the command itself succeeded).
    #[arg(long)]
    check_leftovers: bool,
    /// One line on stderr per decision: spawned, signal received and where it
    /// went, orphan reaped and how it ended, escalation to SIGKILL.
    #[arg(short, long)]
    verbose: bool,
    /// The command and its arguments: everything after `--`, or from the first
    /// argument that is not an option.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Where forwarded signals go.
#[derive(clap::ValueEnum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ForwardTo {
    /// The command's process group (the command leads it).
    Group,
    /// The command alone.
    Child,
}

/// When to start the command again.
#[derive(clap::ValueEnum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Never: brood run exits with the command.
    Never,
    /// When it exits with a status other than 0 or a --success-code.
    OnFailure,
    /// Whatever its status.
    Always,
}

/// What `brood run` works from.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The program and its arguments.
    pub command: Vec<OsString>,
    /// Where forwarded signals go.
    pub forward_to: ForwardTo,
    /// Signal rewriting: `None` drops the signal.
    pub rewrite: BTreeMap<i32, Option<Signal>>,
    /// For the command when `brood run` dies; `None` to let it survive.
    pub on_parent_death: Option<Signal>,
    /// For `brood run` when its own parent dies.
    pub die_with_parent: Option<Signal>,
    /// The whole run's limit.
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Wait for every descendant after the command exits.
    pub wait_all: bool,
    /// End adopted orphans while the command runs.
    pub kill_orphans: bool,
    /// Restart policy.
    pub restart: Restart,
    /// Intensity: at most this many restarts …
    pub max_restarts: u32,
    /// … within this window.
    pub within: Duration,
    /// Exit codes that count as 0.
    pub success_codes: Vec<u8>,
    /// The command's working directory.
    pub chdir: Option<PathBuf>,
    /// The command counts as started once this sign shows.
    pub ready: Option<brood::Ready>,
    /// How long to wait for it.
    pub ready_timeout: Duration,
    /// Report and fail on leftovers.
    pub check_leftovers: bool,
    /// One line per decision.
    pub verbose: bool,
}

impl RunArgs {
    /// The options, once clap has checked every value.
    pub fn into_options(self) -> RunOptions {
        RunOptions {
            command: self.command,
            forward_to: self.forward_to,
            rewrite: self
                .rewrite
                .into_iter()
                .map(|(from, to)| (from.as_raw(), to))
                .collect(),
            on_parent_death: self.on_parent_death.0,
            die_with_parent: self.die_with_parent,
            timeout: self.timeout,
            grace: self.grace,
            wait_all: self.wait_all,
            kill_orphans: self.kill_orphans,
            restart: self.restart,
            max_restarts: self.max_restarts,
            within: self.within,
            success_codes: self.success_code,
            chdir: self.chdir,
            ready: self.ready,
            ready_timeout: self.ready_timeout,
            check_leftovers: self.check_leftovers,
            verbose: self.verbose,
        }
    }
}

/// `TERM`, `SIGTERM`, `15`; SIGKILL and SIGSTOP are refused where they could
/// never be caught, so here any deliverable signal is accepted.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let sig = Signal::parse(text)
        .ok_or_else(|| format!("unknown signal {text:?} (try TERM, SIGUSR1, 15)"))?;
    // Between the classic signals and SIGRTMIN lie the C library's own (glibc's
    // threads use 32 and 33): no program expects them, and sending one to a
    // program in the middle of its thread set-up breaks it.
    let (first_rt, last_rt) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if (32..first_rt).contains(&sig.as_raw()) {
        return Err(format!(
            "signal {} is reserved by the C library's threads; signals are 1-31 and the real-time {first_rt}-{last_rt} (SIGRTMIN-SIGRTMAX)",
            sig.as_raw()
        ));
    }
    Ok(sig)
}

/// A signal, or `none`.
#[derive(Copy, Clone, Debug)]
pub struct MaybeSignal(Option<Signal>);

fn parse_signal_or_none(text: &str) -> Result<MaybeSignal, String> {
    if text.eq_ignore_ascii_case("none") {
        Ok(MaybeSignal(None))
    } else {
        parse_signal(text).map(|s| MaybeSignal(Some(s)))
    }
}

/// `FROM:TO`, TO `0` to drop FROM.
fn parse_rewrite(text: &str) -> Result<(Signal, Option<Signal>), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not FROM:TO (e.g. TERM:QUIT)"))?;
    let from = parse_signal(from)?;
    if from == Signal::KILL || from == Signal::STOP || from == Signal::CHILD {
        return Err(format!(
            "{from} is never forwarded, so it cannot be rewritten"
        ));
    }
    let to = if to.trim() == "0" {
        None
    } else {
        Some(parse_signal(to)?)
    };
    Ok((from, to))
}

/// `line:TEXT`, `stderr:TEXT`, `tcp:PORT`, `unix:PATH`, `file:PATH`,
/// `notify`, `fd:N`.
fn parse_ready(text: &str) -> Result<brood::Ready, String> {
    use brood::Ready;
    let bad = || {
        format!(
            "{text:?} is not a sign of readiness (line:TEXT, stderr:TEXT, tcp:PORT, unix:PATH, file:PATH, notify, fd:N)"
        )
    };
    if text == "notify" {
        return Ok(Ready::Notify);
    }
    let (kind, value) = text.split_once(':').ok_or_else(bad)?;
    Ok(match kind {
        "line" => Ready::Stdout(value.into()),
        "stderr" => Ready::Stderr(value.into()),
        "tcp" => Ready::Tcp(value.parse().map_err(|_| bad())?),
        "unix" => Ready::Unix(value.into()),
        "file" => Ready::File(value.into()),
        "fd" => match value.parse() {
            Ok(n) if n > 2 => Ready::NotifyFd(n),
            _ => {
                return Err(format!(
                    "fd:{value}: the descriptor must be a number above 2"
                ));
            }
        },
        _ => return Err(bad()),
    })
}

/// Parses `10`, `1.5`, `500ms`, `10s`, `2m`, `1h` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (ms, s, m, h)")),
    };
    let secs = value * scale;
    if !(secs.is_finite() && (0.0..1e9).contains(&secs)) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("NaN").is_err());
    }

    #[test]
    fn readiness_signs() {
        use brood::Ready;
        assert_eq!(parse_ready("line:up").unwrap(), Ready::Stdout("up".into()));
        assert_eq!(
            parse_ready("line:a:b").unwrap(),
            Ready::Stdout("a:b".into())
        );
        assert_eq!(parse_ready("tcp:8080").unwrap(), Ready::Tcp(8080));
        assert_eq!(parse_ready("notify").unwrap(), Ready::Notify);
        assert_eq!(parse_ready("fd:3").unwrap(), Ready::NotifyFd(3));
        assert!(parse_ready("fd:1").is_err());
        assert!(parse_ready("tcp:http").is_err());
        assert!(parse_ready("soon").is_err());
    }

    #[test]
    fn rewrites() {
        assert_eq!(
            parse_rewrite("TERM:QUIT").unwrap(),
            (Signal::TERM, Some(Signal::QUIT))
        );
        assert_eq!(parse_rewrite("sigint:0").unwrap(), (Signal::INT, None));
        assert!(parse_rewrite("TERM").is_err());
        assert!(parse_rewrite("KILL:TERM").is_err());
        assert!(parse_rewrite("TERM:NOPE").is_err());
    }

    #[test]
    fn reserved_signals_are_refused() {
        // 1:32 where 1-31 are meant: 32 and 33 belong to glibc's threads.
        let err = parse_rewrite("1:32").unwrap_err();
        assert!(err.contains("signal 32 is reserved"), "{err}");
        assert!(err.contains("1-31"), "{err}");
        assert!(parse_rewrite("33:TERM").is_err());
        assert!(parse_rewrite("1:31").is_ok());
        let rtmin = libc::SIGRTMIN();
        assert!(parse_rewrite(&format!("TERM:{rtmin}")).is_ok());
    }
}
