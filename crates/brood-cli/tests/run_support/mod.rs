//! Helpers for the `brood run` tests: the binaries, reading a child's output
//! with deadlines, pending signals and states from `/proc`, a pseudo-terminal,
//! and cleaning up by pid. Waiting is always for an observable condition
//! (a line, a state, a pidfd); the short pauses between polls only pace loops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `brood` (or the binary named by `BROOD_UNDER_TEST`, to show a test failing
/// on another build).
pub fn brood() -> Command {
    Command::new(brood_path())
}

/// The path [`brood`] runs.
pub fn brood_path() -> String {
    std::env::var("BROOD_UNDER_TEST").unwrap_or(env!("CARGO_BIN_EXE_brood").into())
}

/// The signal probe: prints `ready PID`, then one `got NAME:PID …` line per
/// batch of signals received; exits 0 at end of stdin.
pub const PROBE: &str = env!("CARGO_BIN_EXE_brood-signal-probe");

pub fn kill(pid: u32, sig: i32) {
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// The state letter of `pid` (`R`, `S`, `T`, `Z`…), if it exists.
pub fn state(pid: u32) -> Option<char> {
    Some(brood::os::procfs::stat(pid).ok()??.state.as_char())
}

/// The ppid of `pid`.
pub fn ppid(pid: u32) -> Option<u32> {
    Some(brood::os::procfs::stat(pid).ok()??.ppid)
}

/// Is `sig` pending for process `pid` (thread or shared)?
pub fn pending(pid: u32, sig: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    text.lines()
        .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .any(|bits| bits >> (sig - 1) & 1 == 1)
}

/// The hex bit set of a `/proc/<pid>/status` field such as `SigIgn`.
pub fn status_bits(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// Polls `f` until true or `budget` passes.
pub fn until(budget: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + budget;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until `pid` has exited (pidfd), reaping it if it is our child.
pub fn gone_within(pid: u32, timeout: Duration) -> bool {
    let exited = match brood::os::PidFd::open(pid) {
        Ok(fd) => fd.wait_exited(Some(timeout)).unwrap(),
        Err(_) => true,
    };
    if exited {
        let mut st = 0;
        // SAFETY: reaping pid if (and only if) it is our child; WNOHANG.
        unsafe { libc::waitpid(pid as i32, &mut st, libc::WNOHANG) };
    }
    exited
}

/// Kills the listed pids at the end of a test, whatever happened.
pub struct Cleanup(pub Vec<u32>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if brood::os::pid_exists(pid) && state(pid) != Some('Z') {
                kill(pid, libc::SIGKILL);
                kill(pid, libc::SIGCONT);
            }
            gone_within(pid, Duration::from_secs(5));
        }
    }
}

/// The lines a child prints, read by a thread so that waits can have deadlines.
pub struct Lines(mpsc::Receiver<String>);

impl Lines {
    pub fn new(out: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines(rx)
    }

    pub fn of(child: &mut Child) -> Lines {
        let out: ChildStdout = child.stdout.take().expect("piped stdout");
        Lines::new(out)
    }

    /// The next line within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.0.recv_timeout(timeout).ok()
    }

    /// Lines until one satisfies `pred` (returned with those before it).
    pub fn until(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.0.recv_timeout(left).ok()?;
            let done = pred(&line);
            seen.push(line);
            if done {
                return Some(seen);
            }
        }
    }
}

/// `brood run [args] -- probe` (or `prefix probe` for tini/dumb-init), piped;
/// returns the child, its lines, and the probe's pid.
pub fn start_probe(prefix: &[&str]) -> (Child, Lines, u32) {
    let (program, rest) = prefix.split_first().unwrap();
    let mut cmd = if *program == "brood" {
        brood()
    } else {
        Command::new(program)
    };
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe. No core files from a forwarder
    // that dies of SIGSEGV and friends.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    cmd.args(rest).arg(PROBE).stderr(Stdio::piped());
    spawn_and_read_pid(&mut cmd, "ready ")
}

/// Spawns `cmd` with stdin and stdout piped and reads its first line, which
/// must be `prefix` and a pid: the child, its remaining lines, that pid.
pub fn spawn_and_read_pid(cmd: &mut Command, prefix: &str) -> (Child, Lines, u32) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::of(&mut child);
    let first = lines.next(Duration::from_secs(10)).expect("a first line");
    let pid = first
        .trim()
        .strip_prefix(prefix)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not {prefix:?} and a pid: {first:?}"));
    (child, lines, pid)
}

/// `brood run ARGS` with stdin piped, stdout read as lines, stderr dropped;
/// returns it with the pid its command prints first.
pub fn start_reporting(args: &[&str]) -> (Child, Lines, u32) {
    let mut cmd = brood();
    cmd.arg("run").args(args).stderr(Stdio::null());
    spawn_and_read_pid(&mut cmd, "")
}

/// `brood run -- bash --norc --noprofile -i` on `pty`, prompt `$ `.
pub fn interactive_bash(pty: &Pty, extra: &[&str]) -> Child {
    pty.spawn(
        brood()
            .arg("run")
            .arg("--")
            .args(["bash", "--norc", "--noprofile"])
            .args(extra)
            .arg("-i")
            .env("PS1", "$ "),
    )
}

/// The signal names of a probe's `got …` line.
pub fn got(line: &str) -> Vec<String> {
    line.strip_prefix("got ")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|w| w.split(':').next())
        .map(str::to_string)
        .collect()
}

/// A pseudo-terminal: the master side, read by a thread.
pub struct Pty {
    pub master: OwnedFd,
    pub slave_path: std::ffi::CString,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Pty {
    pub fn open() -> Pty {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let slave_path = ptsname(&master, Vec::new()).unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let fd = master.try_clone().unwrap();
        let sink = output.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        // Polls with a short timeout so that `hang_up` can make it let go of
        // its descriptor: the terminal hangs up only when every master fd is
        // closed.
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 10_000_000,
                };
                if rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0) == 0 {
                    continue;
                }
                match rustix::io::read(&fd, &mut buf) {
                    Ok(0) => return,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    // EIO once every slave is closed.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Pty {
            master,
            slave_path,
            output,
            stop,
            reader: Some(reader),
        }
    }

    /// Starts `cmd` as a session leader with this terminal as its controlling
    /// terminal and standard streams (as a terminal emulator does).
    pub fn spawn(&self, cmd: &mut Command) -> Child {
        use std::os::unix::process::CommandExt;
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.slave_path.to_str().unwrap())
                .unwrap()
        };
        cmd.stdin(open()).stdout(open()).stderr(open());
        // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(std::io::stdin())?;
                Ok(())
            });
        }
        cmd.spawn().unwrap()
    }

    /// Closes the master side: the terminal hangs up.
    pub fn hang_up(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }

    pub fn write(&self, text: &str) {
        rustix::io::write(&self.master, text.as_bytes()).unwrap();
    }

    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal has shown `text`.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> bool {
        until(timeout, || self.output().contains(text))
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The exit code of `child` once it exits within `timeout`, or `None`.
pub fn exit_within(child: &mut Child, timeout: Duration) -> Option<Option<i32>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            return Some(st.code().or(st.signal().map(|s| 128 + s)));
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
