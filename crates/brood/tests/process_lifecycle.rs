//! Claims P1–P5 and X1/X2 of the seed report, for each start method, on real
//! processes. A scenario's parent is this test binary re-executed with
//! `BROOD_SCENARIO=<claim>:<method>:<fifo>`: a constructor runs the scenario
//! before libtest's main and leaves the way the claim says (returning from
//! "main" is `std::process::exit`, which runs the same `atexit` hooks). The
//! parent prints the pids it made on stdout; children block on a FIFO the test
//! writes to, so nothing here sleeps to synchronise.

mod support;

use brood::{JoinError, OnExit, OnParentDeath, Process, Signal, StartMethod};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Cleanup, alive, become_subreaper, kill_and_reap, wait_exit};

brood::init_before_main!();

#[used]
#[unsafe(link_section = ".init_array")]
static SCENARIO: extern "C" fn() = scenario_entry;

extern "C" fn scenario_entry() {
    brood::init();
    let Some(spec) = std::env::var_os("BROOD_SCENARIO") else {
        return;
    };
    // SAFETY: this runs from .init_array, before main and before any thread
    // exists, so nothing else can read the environment meanwhile.
    unsafe { std::env::remove_var("BROOD_SCENARIO") };
    let spec = spec.to_string_lossy().into_owned();
    let mut parts = spec.splitn(3, ':');
    let (claim, method, fifo) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let method = match method {
        "Fork" => StartMethod::Fork,
        "Spawn" => StartMethod::Spawn,
        _ => StartMethod::ForkServer,
    };
    scenario(claim, method, fifo.to_string());
}

// --- functions the children run ---

/// Blocks until the FIFO is written and closed.
fn hold(fifo: String) -> u8 {
    let mut s = String::new();
    let _ = std::fs::File::open(fifo).and_then(|mut f| f.read_to_string(&mut s));
    1
}

fn hold_ignoring_term(fifo: String) -> u8 {
    support::ignore_term();
    hold(fifo)
}

fn quick(x: u8) -> u8 {
    x
}

// --- the scenario parents ---

fn out(line: String) {
    println!("{line}");
    std::io::stdout().flush().unwrap();
}

fn scenario(claim: &str, m: StartMethod, fifo: String) -> ! {
    let start = |p: &mut Process<String, u8>| p.start_method(m).start().unwrap();
    match claim {
        // P1: a non-daemon child delays the parent's exit until it ends.
        "p1" => {
            let h = start(&mut Process::new(hold, fifo));
            out(format!("child {}", h.pid()));
            std::process::exit(0) // = returning from main
        }
        // P2: a daemon that ignores SIGTERM is SIGKILLed after the grace.
        "p2" => {
            let h = start(Process::new(hold_ignoring_term, fifo).daemon(true).on_exit(
                OnExit::Terminate {
                    grace: Duration::from_millis(300),
                },
            ));
            wait_ignoring_term(h.pid());
            out(format!("child {}", h.pid()));
            std::process::exit(0)
        }
        // P3: the parent is killed by the test; the child survives, or not.
        "p3survive" | "p3kill" => {
            let mut p = Process::new(hold, fifo);
            if claim == "p3kill" {
                p.on_parent_death(OnParentDeath::Signal(Signal::KILL));
            }
            let h = start(&mut p);
            out(format!("child {}", h.pid()));
            support::park()
        }
        // P5: foreign code reaps; then the parent exits.
        "p5" | "p5ign" => {
            if claim == "p5ign" {
                // SAFETY: SIG_IGN for SIGCHLD: the kernel reaps children itself.
                unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
            }
            let h = Process::new(quick, 9)
                .start_method(m)
                .daemon(true)
                .start()
                .unwrap();
            out(format!("child {}", h.pid()));
            let mut st = 0;
            // SAFETY: a foreign wait for any child, as the seed's P5 does.
            let got = unsafe { libc::waitpid(-1, &mut st, 0) };
            let verdict = match h.join() {
                Ok(v) => format!("value {v}"),
                Err(JoinError::ReapedElsewhere { .. }) => "reaped-elsewhere".to_string(),
                Err(e) => format!("error {e}"),
            };
            out(format!(
                "foreign {got} join {verdict} exitcode {:?}",
                h.exitcode()
            ));
            std::process::exit(0)
        }
        // X1: exit_now touches no child.
        "x1" => {
            let h = start(&mut Process::new(hold, fifo));
            out(format!("child {}", h.pid()));
            brood::exit_now(0)
        }
        // X2: exit waits for the non-daemon child and ends the daemon one.
        "x2" => {
            let daemon = start(Process::new(hold_ignoring_term, format!("{fifo}.d")).daemon(true));
            let h = start(&mut Process::new(hold, fifo));
            wait_ignoring_term(daemon.pid());
            out(format!("child {}", h.pid()));
            out(format!("daemon {}", daemon.pid()));
            brood::exit(0)
        }
        // Eight busy threads holding locks: ForkServer and Spawn work; Fork warns.
        "threads" => {
            let lock = std::sync::Arc::new(std::sync::Mutex::new(0u64));
            for _ in 0..8 {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    loop {
                        let mut g = lock.lock().unwrap();
                        *g = g.wrapping_add(1);
                    }
                });
            }
            for m in [
                StartMethod::ForkServer,
                StartMethod::Spawn,
                StartMethod::Fork,
            ] {
                let h = Process::new(quick, 3).start_method(m).start().unwrap();
                out(format!("{m:?} {:?}", h.join()));
            }
            brood::exit_now(0)
        }
        _ => brood::exit_now(99),
    }
}

/// Waits until `pid` has SIGTERM ignored (bit 15 of `SigIgn` in
/// `/proc/<pid>/status`), so a scenario knows its child runs the function.
fn wait_ignoring_term(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let ign = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        if ign & (1 << (libc::SIGTERM - 1)) != 0 {
            return;
        }
        std::thread::yield_now();
    }
    panic!("child {pid} never ignored SIGTERM");
}

// --- the test side ---

struct Run {
    parent: std::process::Child,
    lines: BufReader<std::process::ChildStdout>,
    fifo: PathBuf,
    _dir: tempfile::TempDir,
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

fn run(claim: &str, m: StartMethod) -> Run {
    become_subreaper();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("hold");
    mkfifo(&fifo);
    mkfifo(&dir.path().join("hold.d"));
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .env(
            "BROOD_SCENARIO",
            format!("{claim}:{m:?}:{}", fifo.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(parent.stdout.take().unwrap());
    Run {
        parent,
        lines,
        fifo,
        _dir: dir,
    }
}

impl Run {
    fn pid_line(&mut self, what: &str) -> u32 {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        let rest = line
            .trim()
            .strip_prefix(what)
            .unwrap_or_else(|| panic!("expected {what:?}, got {line:?}"));
        rest.trim().parse().unwrap()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// Opens the FIFO for writing (which waits until the child opened it to read,
    /// that is, runs the function) and closes it: the child returns.
    fn release(&self, suffix: &str) {
        let path = format!("{}{suffix}", self.fifo.display());
        drop(std::fs::OpenOptions::new().write(true).open(path).unwrap());
    }

    fn parent_exited_within(&self, t: Duration) -> bool {
        let fd = brood::os::PidFd::open(self.parent.id()).unwrap();
        fd.wait_exited(Some(t)).unwrap()
    }

    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.parent.wait().unwrap();
        let mut err = String::new();
        self.parent
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err)
    }
}

fn p1(m: StartMethod) {
    let mut r = run("p1", m);
    let mut clean = Cleanup::default();
    let child = clean.add(r.pid_line("child"));
    // main has returned; the parent waits for its child.
    assert!(
        !r.parent_exited_within(Duration::from_millis(300)),
        "{m:?}: parent left early"
    );
    assert!(alive(child));
    let t = Instant::now();
    r.release("");
    assert!(r.parent_exited_within(Duration::from_secs(5)));
    let delay = t.elapsed();
    eprintln!("P1 {m:?}: parent exit {delay:?} after its child was released");
    let (status, _) = r.finish();
    assert!(status.success());
    assert!(wait_exit(child, Duration::from_secs(5)));
}

fn p2(m: StartMethod) {
    let mut r = run("p2", m);
    let mut clean = Cleanup::default();
    let child = clean.add(r.pid_line("child"));
    let t = Instant::now();
    assert!(
        r.parent_exited_within(Duration::from_secs(5)),
        "{m:?}: exit hung on a daemon ignoring SIGTERM"
    );
    let took = t.elapsed();
    eprintln!("P2 {m:?}: parent exit took {took:?} (grace 300 ms, then SIGKILL)");
    assert!(took >= Duration::from_millis(250), "{m:?}: {took:?}");
    assert!(
        wait_exit(child, Duration::from_secs(2)),
        "{m:?}: daemon still running"
    );
    let (status, err) = r.finish();
    assert!(status.success(), "{m:?}: {status:?} {err}");
}

fn p3(m: StartMethod) {
    for (claim, survives) in [("p3survive", true), ("p3kill", false)] {
        let mut r = run(claim, m);
        let mut clean = Cleanup::default();
        let child = clean.add(r.pid_line("child"));
        r.parent.kill().unwrap();
        let t = Instant::now();
        let _ = r.parent.wait();
        let gone = wait_exit(child, Duration::from_secs(1));
        assert_eq!(gone, !survives, "{m:?} {claim}");
        if !survives {
            eprintln!(
                "P3 {m:?}: child gone {:?} after its parent was SIGKILLed",
                t.elapsed()
            );
        } else {
            r.release("");
            assert!(wait_exit(child, Duration::from_secs(5)));
        }
    }
    // Signals to the child: the parent lives, exitcode -15 / -9.
    for (sig, code) in [(Signal::TERM, -15), (Signal::KILL, -9)] {
        let h = Process::new(park_child, ())
            .start_method(m)
            .start()
            .unwrap();
        h.child().send_signal(sig).unwrap();
        assert!(matches!(h.join(), Err(JoinError::Killed { signal, .. }) if signal == sig));
        assert_eq!(h.exitcode(), Some(code), "{m:?}");
    }
}

fn park_child(_: ()) -> u8 {
    support::park()
}

fn p4(m: StartMethod) {
    let h = Process::new(quick, 5).start_method(m).start().unwrap();
    let pid = h.pid();
    // Wait for the end without joining, then make sure no zombie remains.
    assert!(
        brood::os::wait_exited(h.child().pidfd().unwrap(), Some(Duration::from_secs(5))).unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while support::exists(pid) && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(
        !support::exists(pid),
        "{m:?}: pid {pid} lingers (zombie?) {:?}",
        support::stat(pid)
    );
    assert_eq!(h.exitcode(), Some(0));
    assert_eq!(h.join().unwrap(), 5);
}

fn p5(m: StartMethod) {
    for claim in ["p5", "p5ign"] {
        let mut r = run(claim, m);
        let child = r.pid_line("child");
        let verdict = r.line();
        let (status, err) = r.finish();
        assert!(status.success(), "{m:?} {claim}: {status:?}\n{err}");
        assert!(
            !err.contains("brood"),
            "{m:?} {claim}: brood complained at exit: {err}"
        );
        let foreign_won = verdict.starts_with(&format!("foreign {child} "));
        eprintln!("P5 {m:?} {claim}: {verdict}");
        if m == StartMethod::ForkServer {
            // The server's children are not ours: no foreign wait can take them.
            assert!(!foreign_won);
            assert!(
                verdict.ends_with("join value 9 exitcode Some(0)"),
                "{verdict}"
            );
        } else if foreign_won || claim == "p5ign" {
            // The status is lost; the value, which came through the pipe
            // before the child ended, is not.
            assert!(
                verdict.ends_with("join value 9 exitcode None"),
                "{m:?} {claim}: {verdict}"
            );
        } else {
            assert!(
                verdict.ends_with("join value 9 exitcode Some(0)"),
                "{verdict}"
            );
        }
    }
}

fn x1(m: StartMethod) {
    let mut r = run("x1", m);
    let mut clean = Cleanup::default();
    let child = clean.add(r.pid_line("child"));
    assert!(
        r.parent_exited_within(Duration::from_secs(2)),
        "{m:?}: exit_now waited"
    );
    assert!(alive(child), "{m:?}: exit_now touched the child");
    r.release("");
    assert!(wait_exit(child, Duration::from_secs(5)));
    let _ = r.finish();
}

fn x2(m: StartMethod) {
    let mut r = run("x2", m);
    let mut clean = Cleanup::default();
    let child = clean.add(r.pid_line("child"));
    let daemon = clean.add(r.pid_line("daemon"));
    // The daemon ignores SIGTERM: it is SIGKILLed after the default 1 s grace,
    // while the parent keeps waiting for the non-daemon child.
    assert!(
        wait_exit(daemon, Duration::from_secs(3)),
        "{m:?}: daemon not ended"
    );
    assert!(!r.parent_exited_within(Duration::from_millis(100)));
    assert!(alive(child));
    r.release("");
    assert!(r.parent_exited_within(Duration::from_secs(5)));
    assert!(r.finish().0.success());
    assert!(wait_exit(child, Duration::from_secs(5)));
    kill_and_reap(daemon);
}

#[test]
fn busy_threads_holding_locks() {
    let mut r = run("threads", StartMethod::ForkServer);
    for m in ["ForkServer", "Spawn", "Fork"] {
        assert_eq!(r.line(), format!("{m} Ok(3)"));
    }
    let (status, err) = r.finish();
    assert!(status.success());
    assert!(
        err.contains("brood: warning: fork() with 8 other thread(s)"),
        "{err}"
    );
    assert_eq!(err.matches("warning").count(), 1, "{err}");
}

macro_rules! per_method {
    ($($claim:ident),*) => {
        mod fork { $(#[test] fn $claim() { super::$claim(brood::StartMethod::Fork) })* }
        mod spawn { $(#[test] fn $claim() { super::$claim(brood::StartMethod::Spawn) })* }
        mod forkserver { $(#[test] fn $claim() { super::$claim(brood::StartMethod::ForkServer) })* }
    };
}

per_method!(p1, p2, p3, p4, p5, x1, x2);
