//! `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD)`, then `execve`: how
//! `Command` starts a program at a cost that does not grow with the parent's memory.
//!
//! A plain `fork` copies the parent's page tables, so its cost grows with the
//! parent's memory (tens of milliseconds for a parent with gigabytes). With
//! `CLONE_VM` the child borrows the parent's memory instead, and with
//! `CLONE_VFORK` the calling thread sleeps until the child has called `execve`
//! (or exited), so the two never run at the same time on the same memory. This is
//! what glibc's `posix_spawn` and CPython's `_posixsubprocess` do. `CLONE_PIDFD`
//! (Linux 5.2) returns a pidfd for the child from the same call, so there is no
//! window in which the pid could name another process.
//!
//! Because the child shares our memory (and, through the thread pointer, the
//! calling thread's thread-local storage), it may only make raw system calls until
//! `execve`: no allocation, no locks, no panics, no Rust standard-library I/O.
//! Everything it needs — C strings, pointer arrays, the file descriptors to install,
//! the candidate paths of the program — is prepared by the parent in an
//! [`ExecPlan`]; the child reports a failure as `{step, errno}` in memory the
//! parent reads once it resumes.
//!
//! [`spawn_forked`] is the other path, for a command with `pre_exec` closures:
//! a closure may allocate or touch any state, which a child sharing our memory
//! must never do, so it gets a full `fork` (its own copy of our memory, at a cost
//! that grows with it) and reports a failure through a close-on-exec pipe.
//!
//! # References
//! clone(2) (`CLONE_VM`, `CLONE_VFORK`, `CLONE_PIDFD` since Linux 5.2), execve(2),
//! sigaction(2), pthread_sigmask(3), prctl(2) (`PR_SET_PDEATHSIG`), setpgid(2),
//! setsid(2), dup2(2), chdir(2), setgroups(2), setgid(2), setuid(2), fork(2),
//! _exit(2), waitid(2) (`P_PIDFD` since Linux 5.4), sysconf(3) (`_SC_ARG_MAX`).

mod step;
pub use step::{SpawnFailure, Step};

use std::ffi::{CStr, c_char, c_int, c_void};
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The child's stack. It only runs [`child_main`] and the libc syscall wrappers it
/// calls, a few hundred bytes of frames even in a debug build; 64 KiB leaves a wide
/// margin. It lives on the heap (a malloc of this size is served from the arena,
/// cheaper than an `mmap` + `munmap` per spawn) and is freed once `clone` returns,
/// which with `CLONE_VFORK` is after the child stopped using it.
const STACK_SIZE: usize = 64 * 1024;

/// Highest signal number the kernel knows (`_NSIG - 1` on every Linux architecture
/// brood builds for).
const MAX_SIGNAL: c_int = 64;

/// How the child joins a process group or session before `execve`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NewGroup {
    /// Stay in the parent's group.
    No,
    /// `setpgid(0, 0)`: lead a new process group.
    Group,
    /// `setpgid(0, pgid)`: join an existing group (0: a new one, as `Group`).
    Join(libc::pid_t),
    /// `setsid()`: lead a new session (and group).
    Session,
}

/// A NULL-terminated array of pointers to C strings that live at least as long
/// as `'a` (what `execve` takes for `argv` and `envp`). Built safely from
/// borrowed strings, so a plan made of these never points at freed memory.
pub struct CStrArray<'a> {
    ptrs: Vec<*const c_char>,
    _strings: PhantomData<&'a CStr>,
}

// SAFETY: the pointers point into `&'a CStr`s, which are immutable and `Sync`;
// the array is only ever read.
unsafe impl Send for CStrArray<'_> {}
// SAFETY: as above.
unsafe impl Sync for CStrArray<'_> {}

impl<'a> CStrArray<'a> {
    /// The strings, in order, followed by NULL.
    pub fn new(strings: impl IntoIterator<Item = &'a CStr>) -> CStrArray<'a> {
        let mut ptrs: Vec<*const c_char> = strings.into_iter().map(CStr::as_ptr).collect();
        ptrs.push(std::ptr::null());
        CStrArray {
            ptrs,
            _strings: PhantomData,
        }
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }

    fn strings(&self) -> &[*const c_char] {
        self.ptrs.split_last().map_or(&[], |(_, rest)| rest)
    }
}

/// Everything the child does between `clone` and `execve`, prepared by the parent.
pub struct ExecPlan<'a> {
    /// Paths to try with `execve`, in order (PATH already resolved).
    pub candidates: &'a CStrArray<'a>,
    /// `argv`.
    pub argv: &'a CStrArray<'a>,
    /// `envp`.
    pub envp: &'a CStrArray<'a>,
    /// For fds 0, 1, 2: the descriptor to `dup2` onto it, or -1 to leave it as is.
    /// The `dup2`s run in order 0, 1, 2. Each source must be ≥ 3, so that no
    /// `dup2` overwrites another's source — except 1 as the source of 2, which
    /// makes stderr a copy of the stdout just installed (`2>&1`).
    pub stdio: [c_int; 3],
    /// Directory to `chdir` to.
    pub cwd: Option<&'a CStr>,
    /// Process group or session.
    pub group: NewGroup,
    /// Supplementary groups to set with `setgroups`, if any.
    pub groups: Option<&'a [libc::gid_t]>,
    /// Group id to set with `setgid`, if any.
    pub gid: Option<libc::gid_t>,
    /// User id to set with `setuid`, if any (last: it may drop the right to the
    /// other two).
    pub uid: Option<libc::uid_t>,
    /// Parent-death signal to arm with `PR_SET_PDEATHSIG`, or 0.
    pub death_signal: c_int,
    /// Descriptor limits (soft, hard) to set with `setrlimit(RLIMIT_NOFILE)`:
    /// the program's own soft limit, when the parent raised its.
    pub nofile: Option<(u64, u64)>,
    /// The child's own limits and niceness (after `nofile`, so they win).
    pub limits: super::rlimit::ChildLimits,
    /// The keeper's registration pipe (see `super::keeper`), or -1: once in
    /// its group, the child registers it there, before arming `death_signal`.
    pub keeper: c_int,
    /// `cgroup.procs` of the child's own cgroup (see `super::cgroup`), or -1:
    /// the child joins it first, before anything else of its own.
    pub cgroup: c_int,
    /// Our pid, recorded before the clone: if the child's parent is no longer this
    /// after arming the death signal, the parent died during the start-up.
    pub parent: libc::pid_t,
    /// Take the foreground of the terminal on the child's fd 0 (`tcsetpgrp`) once
    /// in its new group. Done here, before `execve` and with every signal still
    /// blocked, so the program never starts in the background (an interactive
    /// shell would stop itself) and SIGTTOU cannot stop the child meanwhile.
    pub foreground: bool,
    /// The exact signal state the program starts with, or `None` for the default
    /// (handlers reset, ignored signals kept except SIGPIPE, nothing blocked).
    pub start_signals: Option<StartSignals>,
}

/// The signal dispositions and mask a program starts with (what a supervisor
/// such as `brood run` inherited and must pass on, since it catches signals
/// itself).
#[derive(Copy, Clone)]
pub struct StartSignals {
    /// Bit `n - 1` set: signal `n` starts ignored (`SIG_IGN`); every other
    /// signal starts with its default action.
    pub ignored: u64,
    /// The signal mask the program starts with.
    pub blocked: libc::sigset_t,
}

impl StartSignals {
    /// From bit sets (bit `n - 1` for signal `n`).
    pub fn new(ignored: u64, blocked: u64) -> StartSignals {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it and
        // sigaddset only sets bits in it (EINVAL for a number glibc reserves,
        // which is then simply left out).
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in 1..=MAX_SIGNAL {
                if blocked >> (sig - 1) & 1 == 1 {
                    libc::sigaddset(&mut set, sig);
                }
            }
            set
        };
        StartSignals {
            ignored,
            blocked: set,
        }
    }
}

/// Memory the child and the parent share (`CLONE_VM`): the plan, and the report of
/// a failure. Atomics, so that the compiler cannot assume the parent's view of the
/// report is unchanged across the clone call (the kernel's vfork completion orders
/// the child's stores before the parent's loads).
struct Shared<'a> {
    plan: &'a ExecPlan<'a>,
    step: AtomicI32,
    errno: AtomicI32,
}

/// A closure run in the child just before `execve` (`Command::pre_exec`).
pub struct PreExec(Box<dyn FnMut() -> io::Result<()> + Send + Sync>);

impl PreExec {
    /// Wraps a closure for [`spawn_forked`].
    ///
    /// # Safety
    /// The closure runs in a forked copy of a possibly multi-threaded process: it
    /// must not rely on a lock another thread may have held at the fork (the
    /// contract of `std::os::unix::process::CommandExt::pre_exec`).
    pub unsafe fn new(f: impl FnMut() -> io::Result<()> + Send + Sync + 'static) -> PreExec {
        PreExec(Box::new(f))
    }
}

impl std::fmt::Debug for PreExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreExec(..)")
    }
}

/// Starts the program described by `plan`: returns its pid and pidfd once it has
/// called `execve` successfully, or the failure.
///
/// All signals are blocked in the calling thread around the clone, so that no
/// handler of ours can run in the child while it shares our memory; the child
/// resets every handled signal to `SIG_DFL` before it unblocks them. The `stdio`
/// descriptors should be open (a closed one is a `Dup2` failure, not undefined
/// behaviour).
pub fn spawn(plan: &ExecPlan<'_>) -> Result<(u32, OwnedFd), SpawnFailure> {
    let shared = Shared {
        plan,
        step: AtomicI32::new(0),
        errno: AtomicI32::new(0),
    };
    let mut stack: Vec<u128> = Vec::with_capacity(STACK_SIZE / 16);
    // The stack grows down: pass its (16-byte aligned) top.
    // SAFETY: one past the end of the allocation, which is allowed.
    let top = unsafe { stack.as_mut_ptr().add(stack.capacity()) }.cast::<c_void>();

    let mut pidfd: c_int = -1;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
    // No handler of ours may run in the child while it shares our memory: block
    // everything here; the child resets the handlers before it unblocks.
    let saved = super::sigmask::block_all();
    // SAFETY: `child_main` never returns into our frames: it ends in `execve` or
    // `_exit` on its own stack `top`, which stays allocated until clone returns —
    // and with CLONE_VFORK clone returns only after the child has exec'd or exited,
    // so the child no longer uses the stack nor `shared`. `shared` outlives the call.
    // With CLONE_PIDFD the kernel stores the child's pidfd in `pidfd` (the
    // parent_tid argument).
    let pid = unsafe {
        libc::clone(
            child_main,
            top,
            flags,
            (&shared as *const Shared<'_>).cast_mut().cast::<c_void>(),
            &mut pidfd as *mut c_int,
        )
    };
    let clone_error = io::Error::last_os_error();
    saved.restore();
    drop(stack);

    if pid < 0 {
        return Err(SpawnFailure::Clone(clone_error));
    }
    // SAFETY: the kernel gave us this new pidfd and nothing else owns it.
    let pidfd = unsafe { super::pidfd::from_raw(pidfd) };
    match Step::from_code(shared.step.load(Ordering::Acquire)) {
        None => Ok((pid as u32, pidfd)),
        Some(step) => {
            let error = io::Error::from_raw_os_error(shared.errno.load(Ordering::Acquire));
            reap_blocking(&pidfd);
            Err(SpawnFailure::Child { step, error })
        }
    }
}

/// Reaps a child that reported a failure and is exiting with 127. Blocking: the
/// vfork completion comes when the child releases our memory, shortly *before* it
/// becomes a zombie, so a non-blocking wait could miss it.
fn reap_blocking(pidfd: &OwnedFd) {
    loop {
        // SAFETY: siginfo_t is plain data for which all zeroes is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes the siginfo_t we own; the pidfd is open.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        if rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// The errno of the last failed libc call. In the child this reads the *parent
/// thread's* errno slot (we share its thread pointer); the parent is suspended
/// and does not look at errno after clone, so the child may use it freely.
fn errno() -> c_int {
    // SAFETY: __errno_location always returns a valid pointer for this thread.
    unsafe { *libc::__errno_location() }
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Shared` of `spawn`, alive until we exec or exit.
    let shared = unsafe { &*arg.cast::<Shared<'_>>() };
    exec_child(shared.plan, &mut [], shared)
}

/// How the child tells the parent which step failed, then exits with 127.
trait Report {
    fn fail(&self, step: Step, err: c_int) -> !;
}

/// The `CLONE_VM` path: stores in the memory the parent reads when it resumes.
impl Report for Shared<'_> {
    fn fail(&self, step: Step, err: c_int) -> ! {
        self.errno.store(err, Ordering::Release);
        self.step.store(step.code(), Ordering::Release);
        // SAFETY: _exit ends the child at once, touching no shared state.
        unsafe { libc::_exit(127) }
    }
}

/// The fork path: 8 bytes `{step, errno}` on the report pipe's write end.
struct ReportPipe(c_int);

impl Report for ReportPipe {
    fn fail(&self, step: Step, err: c_int) -> ! {
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&step.code().to_ne_bytes());
        msg[4..].copy_from_slice(&err.to_ne_bytes());
        // SAFETY: a write of our own stack buffer to our descriptor, then _exit.
        unsafe {
            libc::write(self.0, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    }
}

/// The child, between `clone` (or `fork`) and `execve`.
///
/// It makes only these calls, each a thin glibc wrapper around one system call —
/// async-signal-safe, allocation-free and lock-free, so safe in a process that
/// shares the parent's memory while another of the parent's threads may hold any
/// lock:
/// - `sigaction` (read, then reset to `SIG_DFL`, every handled signal; SIGPIPE to
///   `SIG_DFL` even when ignored, since Rust ignores it; or, with
///   `start_signals`, exactly the listed ones to `SIG_IGN` and all others to
///   `SIG_DFL`): once signals are unblocked below, a signal must kill the child
///   or be ignored, never run one of the parent's handlers on the parent's memory.
/// - `setpgid(0, 0)` or `setsid()` for `Tree::Group` / `Tree::Session`.
/// - `prctl(PR_SET_PDEATHSIG)`, `getppid`, `getpid`, `kill`: arm the parent-death
///   signal, and deliver it ourselves if the parent already died.
/// - `dup2` onto fds 0–2 (every source is ≥ 3, prepared by the parent, so none
///   overwrites another; dup2 clears close-on-exec on the new descriptor).
/// - `tcsetpgrp(0)` with `foreground` (ENOTTY/ENXIO, no terminal to take, are
///   not errors), while every signal is still blocked.
/// - `chdir`; `setgroups`, `setgid`, `setuid` as raw system calls: glibc's
///   wrappers signal every thread of the process to change its credentials too,
///   and with `CLONE_VM` those would be the parent's threads; the raw call changes
///   only this one-thread child, which is what it is.
/// - `sigprocmask` (an empty mask, or `start_signals`' mask), then the
///   `pre_exec` closures (only on the [`spawn_forked`] path), `execve` for each
///   candidate.
/// - `_exit(127)` on failure, after storing `{step, errno}` in the shared report.
///
/// No panic is possible: no indexing, no arithmetic that can overflow, no
/// `unwrap`; every loop walks a slice or a fixed range.
fn exec_child(plan: &ExecPlan<'_>, hooks: &mut [&mut PreExec], report: &impl Report) -> ! {
    // SAFETY: (the whole block) every call below is a syscall wrapper given
    // pointers to our own stack or to the parent's prepared, immutable plan
    // (whose strings outlive it, see `CStrArray`).
    unsafe {
        for sig in 1..=MAX_SIGNAL {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            // EINVAL for the signals glibc reserves for itself (32, 33): skip.
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let (keep, wanted) = match &plan.start_signals {
                None => (
                    old.sa_sigaction == libc::SIG_DFL
                        || (old.sa_sigaction == libc::SIG_IGN && sig != libc::SIGPIPE),
                    libc::SIG_DFL,
                ),
                Some(start) => {
                    let wanted = if start.ignored >> (sig - 1) & 1 == 1 {
                        libc::SIG_IGN
                    } else {
                        libc::SIG_DFL
                    };
                    (old.sa_sigaction == wanted, wanted)
                }
            };
            if keep {
                continue;
            }
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = wanted;
            if libc::sigaction(sig, &dfl, std::ptr::null_mut()) != 0 {
                report.fail(Step::Sigaction, errno());
            }
        }

        if plan.cgroup >= 0
            && let Err(e) = super::cgroup::join(plan.cgroup)
        {
            report.fail(Step::Cgroup, e.raw_os_error().unwrap_or(0));
        }

        match plan.group {
            NewGroup::No => {}
            NewGroup::Group | NewGroup::Join(0) => {
                if libc::setpgid(0, 0) != 0 {
                    report.fail(Step::Setpgid, errno());
                }
            }
            NewGroup::Join(pgid) => {
                if libc::setpgid(0, pgid) != 0 {
                    report.fail(Step::Setpgid, errno());
                }
            }
            NewGroup::Session => {
                if libc::setsid() < 0 {
                    report.fail(Step::Setsid, errno());
                }
            }
        }

        if let Some((soft, hard)) = plan.nofile {
            let limit = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // Best effort, as in a forked child: a limit left high is no
            // reason to fail the start.
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        // rustix's calls do not set errno: the error comes back as a value.
        if let Err((_, e)) = plan.limits.apply() {
            report.fail(Step::Limits, e.raw_os_error().unwrap_or(0));
        }

        if plan.keeper >= 0 && plan.death_signal != 0 {
            let rec = super::keeper::record(libc::getpid() as u32, plan.death_signal);
            if let Err(e) = super::keeper::register(plan.keeper, &rec) {
                report.fail(Step::Keeper, e.raw_os_error().unwrap_or(0));
            }
        }

        if plan.death_signal != 0 {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                plan.death_signal as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                report.fail(Step::DeathSignal, errno());
            }
            // The parent may have died between clone and prctl: then no signal
            // will ever come. Deliver it ourselves (it stays pending while signals
            // are blocked, and kills us once the mask is restored — SIGKILL at once).
            if libc::getppid() != plan.parent {
                libc::kill(libc::getpid(), plan.death_signal);
            }
        }

        for (target, &source) in (0..).zip(plan.stdio.iter()) {
            if source >= 0 && libc::dup2(source, target) < 0 {
                report.fail(Step::Dup2, errno());
            }
        }

        // After the dup2s, so that it is the program's own stdin; after setpgid,
        // so that there is a group of ours to make the foreground one.
        if plan.foreground && libc::tcsetpgrp(0, libc::getpid()) != 0 {
            let err = errno();
            if err != libc::ENOTTY && err != libc::ENXIO {
                report.fail(Step::Foreground, err);
            }
        }

        if let Some(cwd) = plan.cwd
            && libc::chdir(cwd.as_ptr()) != 0
        {
            report.fail(Step::Chdir, errno());
        }

        if let Some(groups) = plan.groups
            && libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0
        {
            report.fail(Step::Setgroups, errno());
        }
        if let Some(gid) = plan.gid
            && libc::syscall(libc::SYS_setgid, gid) != 0
        {
            report.fail(Step::Setgid, errno());
        }
        if let Some(uid) = plan.uid
            && libc::syscall(libc::SYS_setuid, uid) != 0
        {
            report.fail(Step::Setuid, errno());
        }

        let mut mask: libc::sigset_t = std::mem::zeroed();
        match &plan.start_signals {
            Some(start) => mask = start.blocked,
            None => {
                libc::sigemptyset(&mut mask);
            }
        }
        if libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut()) != 0 {
            report.fail(Step::Sigmask, errno());
        }

        for hook in hooks.iter_mut() {
            if let Err(e) = (hook.0)() {
                report.fail(Step::PreExec, e.raw_os_error().unwrap_or(libc::EINVAL));
            }
        }

        // Like execvp: try each candidate; remember EACCES over ENOENT; stop at an
        // error that another directory of PATH would not fix.
        let mut saw_eacces = false;
        let mut last = libc::ENOENT;
        for &path in plan.candidates.strings() {
            libc::execve(path, plan.argv.as_ptr(), plan.envp.as_ptr());
            last = errno();
            match last {
                libc::EACCES => saw_eacces = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => report.fail(Step::Exec, last),
            }
        }
        report.fail(Step::Exec, if saw_eacces { libc::EACCES } else { last })
    }
}

/// Starts the program described by `plan` in a full `fork` of this process, runs
/// `hooks` in the child just before `execve`, and returns its pid and pidfd once
/// it has exec'd, or the failure. The cost of the fork grows with our memory (it
/// copies the page tables), which is why [`spawn`] is the default path.
///
/// The child reports a failed step as 8 bytes `{step, errno}` on a close-on-exec
/// pipe; end of file without them means `execve` succeeded.
pub fn spawn_forked(
    plan: &ExecPlan<'_>,
    hooks: &mut [&mut PreExec],
) -> Result<(u32, OwnedFd), SpawnFailure> {
    let (report_r, report_w) = super::pipe::pipe().map_err(SpawnFailure::Clone)?;
    let saved = super::sigmask::block_all();
    // SAFETY: the child side never returns: `exec_child` ends in `execve` or
    // `_exit`. Until then it runs the same syscalls as the CLONE_VM path, then
    // the caller's hooks, whose contract the caller accepted with `PreExec::new`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        exec_child(plan, hooks, &ReportPipe(report_w.as_raw_fd()))
    }
    let fork_error = io::Error::last_os_error();
    saved.restore();
    drop(report_w);
    if pid < 0 {
        return Err(SpawnFailure::Clone(fork_error));
    }
    // Our unreaped child: its pid stays ours until brood reaps it, unless foreign
    // code does (then `is_own_child` says so).
    let pidfd = match super::pidfd::open(pid as u32) {
        Ok(fd) if super::pidfd::is_own_child(fd.as_fd()).unwrap_or(false) => fd,
        Ok(_) => {
            return Err(SpawnFailure::Clone(io::Error::from_raw_os_error(
                libc::ESRCH,
            )));
        }
        Err(e) => {
            // No descriptor for the pidfd (EMFILE, say): nobody could wait for
            // this child, so it ends here; still our unreaped child, its pid
            // is safe to use. A start tried again makes a new one.
            let _ = super::reap::kill_and_reap_own(pid as u32);
            return Err(SpawnFailure::Clone(e));
        }
    };
    let mut msg = [0u8; 8];
    let mut got = 0;
    while got < msg.len() {
        match super::pipe::read(report_r.as_fd(), &mut msg[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    if got < msg.len() {
        return Ok((pid as u32, pidfd));
    }
    let [a, b, c, d, e, f, g, h] = msg;
    let step = Step::from_code(i32::from_ne_bytes([a, b, c, d])).unwrap_or(Step::Exec);
    let error = io::Error::from_raw_os_error(i32::from_ne_bytes([e, f, g, h]));
    reap_blocking(&pidfd);
    Err(SpawnFailure::Child { step, error })
}

/// The kernel's limit on arguments plus environment, before brood's cap:
/// `sysconf(_SC_ARG_MAX)` (a quarter of the stack limit), or 128 KiB if unknown.
pub fn arg_max() -> usize {
    // SAFETY: sysconf only reads a limit.
    let n = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
    if n > 0 { n as usize } else { 128 * 1024 }
}
