//! Observing real processes for the lifecycle tests: `/proc/<pid>/stat`,
//! `kill(pid, 0)`, pidfds, all through `brood::os`. Nothing here mocks the kernel.
#![allow(dead_code)]

use brood::os::{self, PidFd, procfs};
use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

/// Makes this test process a child subreaper: orphans of the processes it starts
/// are re-parented here, so the test can watch them and must reap them.
pub fn become_subreaper() {
    os::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
}

/// State letter and parent pid from `/proc/<pid>/stat`, if the process exists.
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let s = procfs::stat(pid).unwrap()?;
    Some((s.state.as_char(), s.ppid))
}

/// Pids in `/proc` whose state letter and parent pass `keep`.
pub fn pids_where(keep: impl Fn(char, u32) -> bool) -> Vec<u32> {
    let pids = procfs::pids().unwrap();
    pids.into_iter()
        .filter(|&pid| stat(pid).is_some_and(|(state, parent)| keep(state, parent)))
        .collect()
}

/// Pids of zombies (state Z) whose parent is `ppid`.
pub fn zombies_of(ppid: u32) -> Vec<u32> {
    pids_where(|state, parent| state == 'Z' && parent == ppid)
}

/// `kill(pid, 0)` finds it (alive or zombie).
pub fn exists(pid: u32) -> bool {
    os::pid_exists(pid)
}

/// Alive: exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    procfs::stat(pid)
        .unwrap()
        .is_some_and(|s| !s.state.has_ended())
}

/// What `ps` shows for `pid`: its command line as one string, the trailing
/// NULs of a rewritten title cut; empty once it is gone.
pub fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .to_string()
}

/// The first line `p` writes on its piped stdout (which this takes), with
/// its newline.
pub fn first_line(p: &mut brood::Popen) -> String {
    let mut line = String::new();
    BufReader::new(p.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line
}

pub fn me() -> u32 {
    std::process::id()
}

/// Waits until the process `pid` (not necessarily our child) has exited, up to
/// `timeout`, by polling a pidfd. True if it exited (or was already gone).
/// If it is our child (an orphan re-parented to this subreaper), reaps it.
pub fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let exited = match PidFd::open(pid) {
        Ok(fd) => fd.wait_exited(Some(timeout)).unwrap(),
        Err(_) => true,
    };
    if exited {
        reap_if_ours(pid);
    }
    exited
}

/// Reaps `pid` if it is a (non-brood) child of ours: orphans re-parented to us.
pub fn reap_if_ours(pid: u32) {
    if stat(pid).is_some_and(|(_, ppid)| ppid == me()) {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid with a valid status pointer.
        unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    }
}

/// SIGKILLs `pid` if it still exists and reaps it if it is ours. For cleanup.
pub fn kill_and_reap(pid: u32) {
    if pid > 1 && exists(pid) {
        // SAFETY: plain kill of a pid this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        wait_exit(pid, Duration::from_secs(5));
    }
}

/// Kills every pid registered with it when dropped, so a failing assertion does
/// not leave processes behind.
#[derive(Default)]
pub struct Cleanup(pub Vec<u32>);

impl Cleanup {
    pub fn add(&mut self, pid: u32) -> u32 {
        self.0.push(pid);
        pid
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in self.0.iter().rev() {
            kill_and_reap(pid);
        }
    }
}

/// A pipe whose read end the test keeps, for children to report lines on.
pub struct Report {
    reader: BufReader<std::io::PipeReader>,
    pub writer: Option<std::io::PipeWriter>,
}

impl Report {
    pub fn new() -> Report {
        let (r, w) = std::io::pipe().unwrap();
        Report {
            reader: BufReader::new(r),
            writer: Some(w),
        }
    }

    /// A raw fd children may `write` to.
    pub fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.writer.as_ref().unwrap().as_raw_fd()
    }

    /// Closes our copy of the write end, so that EOF comes once every child closed
    /// theirs.
    pub fn close_writer(&mut self) {
        self.writer = None;
    }

    /// The next line, without its newline. Fails the test (rather than hanging
    /// it) when nothing comes within 10 s.
    pub fn line(&mut self) -> String {
        if self.reader.buffer().is_empty() {
            let ready = readable_within(self.reader.get_ref(), Duration::from_secs(10));
            assert!(ready, "no line from the child within 10 s");
        }
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    pub fn pid(&mut self) -> u32 {
        let line = self.line();
        line.parse()
            .unwrap_or_else(|_| panic!("expected a pid, got {line:?}"))
    }

    pub fn rest(&mut self) -> String {
        self.close_writer();
        let mut s = String::new();
        self.reader.read_to_string(&mut s).unwrap();
        s
    }
}

/// `poll(2)`s `fd` for input (or hang-up) up to `timeout`; true if it came.
fn readable_within(fd: impl std::os::fd::AsFd, timeout: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = Timespec::try_from(left).unwrap();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&left)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Writes a line to a raw fd with one write(2): safe in a forked child.
pub fn say(fd: i32, text: &str) {
    let line = format!("{text}\n");
    // SAFETY: writing a valid buffer to an fd the test created.
    unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}

/// Blocks forever (until a signal ends the process).
pub fn park() -> ! {
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}

/// Ignore SIGTERM in the calling process.
pub fn ignore_term() {
    // SAFETY: setting a signal disposition to SIG_IGN.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
}

pub fn elapsed_since(t: Instant) -> Duration {
    t.elapsed()
}

/// Running: exists and is not a zombie (the name the Command tests use).
pub fn running(pid: u32) -> bool {
    alive(pid)
}

/// Pids whose parent is `parent` (any state).
pub fn children_of(parent: u32) -> Vec<u32> {
    procfs::children(parent).unwrap().unwrap_or_default()
}

/// `pidfd_open(pid)`: None if the process is already gone.
pub fn pidfd(pid: u32) -> Option<PidFd> {
    PidFd::open(pid).ok()
}

/// Waits up to `timeout` for the process behind `fd` to exit; true if it did.
pub fn exits_within(fd: &PidFd, timeout: Duration) -> bool {
    fd.wait_exited(Some(timeout)).unwrap()
}

/// Reaps `pid` if it is (now) our child, waiting up to a second for its exit
/// notification to finish.
pub fn reap(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let mut st = 0;
        // SAFETY: waitpid on a specific pid with a status word we own.
        let rc = unsafe { libc::waitpid(pid as i32, &mut st, libc::WNOHANG) };
        if rc == pid as i32 || rc < 0 || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Tests that change process-wide state (SIGCHLD's disposition, a `waitpid(-1)`,
/// counting every zombie of this process) need a process of their own, which
/// nextest gives each test (`./test.sh`). Under plain `cargo test`, tests share
/// one process on several threads and would disturb each other at random, so
/// these refuse at once, saying why.
pub fn require_own_process() {
    let mode = std::env::var("NEXTEST_EXECUTION_MODE").unwrap_or_default();
    assert_eq!(
        mode, "process-per-test",
        "this test changes process-wide state and needs a process of its own: run it with \
         `cargo nextest run` (./test.sh does), not `cargo test`"
    );
}

/// Runs `f` with this process's stderr (fd 2) pointed at a pipe, and returns
/// what was written there by then — by this process and by the children that
/// inherited that stderr (they must have written before `f` returned). The
/// read does not block: a child still holding the pipe cannot stall it.
pub fn capture_stderr<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::os::fd::AsFd;
    let (r, w) = rustix::pipe::pipe().unwrap();
    let saved = rustix::io::dup(std::io::stderr().as_fd()).unwrap();
    rustix::stdio::dup2_stderr(&w).unwrap();
    drop(w);
    let out = f();
    rustix::stdio::dup2_stderr(&saved).unwrap();
    rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = rustix::io::read(&r, &mut buf) {
        text.extend_from_slice(&buf[..n]);
    }
    (out, String::from_utf8_lossy(&text).into_owned())
}

/// A forked copy of the test ends within `within`, and with 0 (it checks
/// what the test cannot see and says so with its exit code).
pub fn ends_with_zero(child: &brood::Child, within: Duration, what: &str) {
    let status = child
        .wait_timeout(within)
        .unwrap()
        .unwrap_or_else(|| panic!("{what} did not end within {within:?}"));
    assert_eq!(status.code(), Some(0), "{what} {status}");
}

/// Kills the fork server (pid `server`) while `h`, a parked `Survive`
/// child of it, runs: the child lives on, a join does not hang and does not
/// make a status up (`ServerDied` once the child, killed through its pidfd,
/// has ended).
pub fn kill_server_under<R: serde::de::DeserializeOwned + std::fmt::Debug + 'static>(
    h: &brood::Handle<R>,
    server: u32,
) {
    use brood::JoinError;
    kill_and_reap(server);
    assert!(alive(h.pid()), "a Survive child outlives the server");
    assert!(matches!(
        h.join_timeout(Duration::from_millis(50)),
        Err(JoinError::Timeout { .. })
    ));
    h.kill().unwrap();
    assert!(
        matches!(h.join(), Err(JoinError::ServerDied { .. })),
        "{:?}",
        h.join()
    );
    assert!(wait_exit(h.pid(), Duration::from_secs(5)));
}
