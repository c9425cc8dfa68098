//! `fork(2)`, `_exit(2)` and thread identity.
//!
//! # References
//! fork(2), _exit(2), gettid(2), proc(5) (`/proc/self/stat` field 20, num_threads).

use std::convert::Infallible;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Which side of a fork we are on.
pub enum Forked {
    /// In the new child.
    Child,
    /// In the caller; the child's pid.
    Parent(u32),
}

/// `fork()`.
///
/// # Safety
/// In a multi-threaded process the child may only call async-signal-safe functions
/// until it execs or exits, unless the caller knows no other thread held a lock
/// (malloc's are handled by glibc; others, such as stdout's, are not).
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller takes on fork's contract (see above).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            close_parent_only();
            Ok(Forked::Child)
        }
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// A descriptor that belongs to this process alone: a child forked by
/// [`fork`] closes its copy first thing. Each names something of the
/// parent's that every child (a fork-server child, a function run with
/// `StartMethod::Fork`) would otherwise hold for nothing, or wrongly.
#[derive(Clone, Copy, Debug)]
pub enum ParentOnly {
    /// [`thread_count`]'s open `/proc/self/stat`: it describes the parent.
    Stat = 0,
    /// The lock on this process's cgroup directory (`cgroup::DirLock`): a
    /// child holding it would make a dead parent's directory look alive.
    CgroupDir = 1,
    /// The lock held for a moment on a dead process's cgroup directory
    /// while its leftovers are removed.
    CgroupSweep = 2,
    /// The fork server's `/proc/<pid>/stat`, which the client reads before
    /// it claims a spare.
    ServerStat = 3,
}

/// The descriptor of each [`ParentOnly`] kind in this process; -1: none.
static PARENT_ONLY: [std::sync::atomic::AtomicI32; 4] =
    [const { std::sync::atomic::AtomicI32::new(-1) }; 4];

/// Says that `fd` (`None`: no descriptor any more) is this process's
/// descriptor of `kind`, for forked children to close. Clear it *before*
/// closing the descriptor, so that no child closes a number used again.
pub fn parent_only(kind: ParentOnly, fd: Option<std::os::fd::RawFd>) {
    PARENT_ONLY[kind as usize].store(fd.unwrap_or(-1), std::sync::atomic::Ordering::Release);
}

/// Clears the [`ParentOnly`] slot of `kind` if it still names `fd` (a later
/// descriptor of the same kind may have taken it). Before closing `fd`.
pub fn parent_only_forget(kind: ParentOnly, fd: std::os::fd::RawFd) {
    let _ = PARENT_ONLY[kind as usize].compare_exchange(
        fd,
        -1,
        std::sync::atomic::Ordering::AcqRel,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// In a new child, first thing: close the parent's own descriptors. Only
/// atomic swaps and `close(2)`, all async-signal-safe. The parent's `File`s
/// for them stay in cells this child abandons (`ForkLocal`, or memory that
/// is never dropped here), so no number is closed twice.
fn close_parent_only() {
    for slot in &PARENT_ONLY {
        let fd = slot.swap(-1, std::sync::atomic::Ordering::Acquire);
        if fd >= 0 {
            // SAFETY: `fd` was open in the parent at the fork, as one of its
            // own descriptors (see `parent_only`); nothing in this new child
            // has run yet that could have closed it or reused its number,
            // and nothing here will use it again.
            unsafe { libc::close(fd) };
        }
    }
}

/// How many of the parent's pipe and socket ends a `Process` child closes at
/// most (a start with more open at once leaves the rest to the child).
const CHILD_ENDS: usize = 1024;

/// The parent's ends of pipes and sockets connected to its children (a
/// `Command`'s piped stdio, a `Process`'s argument and result pipes, a
/// pool's worker channels), by descriptor number and inode: a `Process` child
/// forked by brood closes them (a `cat` whose stdin the parent closed must
/// see its input end then, not when an unrelated Fork child exits). Entries
/// are never trusted alone: an end the user closed leaves its number, which
/// may be reused, so the child closes a number only if it still names a
/// pipe or socket of the recorded inode (pipefs and sockfs number their
/// inodes afresh, never reusing one soon). Stale entries are swept when the
/// table is full.
static CHILD_END_FD: [std::sync::atomic::AtomicI32; CHILD_ENDS] =
    [const { std::sync::atomic::AtomicI32::new(-1) }; CHILD_ENDS];
static CHILD_END_INO: [std::sync::atomic::AtomicU64; CHILD_ENDS] =
    [const { std::sync::atomic::AtomicU64::new(0) }; CHILD_ENDS];
/// A slot being written: neither free nor readable yet.
const CLAIMED: i32 = -2;

/// The inode of `fd` if it is a pipe or a socket. Async-signal-safe.
fn pipe_inode(fd: std::os::fd::RawFd) -> Option<u64> {
    // SAFETY: `stat` is plain data, valid when zeroed.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat fills a stat struct we own; a number that is not open
    // (the table may hold stale ones) is EBADF, not undefined behaviour.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    let kind = st.st_mode & libc::S_IFMT;
    (kind == libc::S_IFIFO || kind == libc::S_IFSOCK).then_some(st.st_ino)
}

/// Records `fd` as the parent's end of a pipe or socket connected to one of
/// its children (see [`CHILD_END_FD`]). False if it is neither, or the table
/// is full of live ends.
pub fn child_end(fd: BorrowedFd<'_>) -> bool {
    use std::sync::atomic::Ordering;
    let fd = fd.as_raw_fd();
    let Some(ino) = pipe_inode(fd) else {
        return false;
    };
    if claim_child_end(fd, ino) {
        return true;
    }
    // Full. A sweep reads every entry (an `fstat` each): when one freed
    // nothing (the ends are live: thousands of children in flight), the next
    // registrations skip it rather than pay that on every start.
    if SWEEP_SKIPS
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        return false;
    }
    if sweep_child_ends() == 0 {
        SWEEP_SKIPS.store(CHILD_ENDS / 4, Ordering::Relaxed);
        return false;
    }
    claim_child_end(fd, ino)
}

/// Registrations still to skip the sweep after one that freed nothing.
static SWEEP_SKIPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Where the next claim starts looking: after the last one taken, so that a
/// table holding many live ends is not scanned from its start each time.
static NEXT_END: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Takes a free entry for `(fd, ino)`; false if none is free.
fn claim_child_end(fd: std::os::fd::RawFd, ino: u64) -> bool {
    use std::sync::atomic::Ordering;
    let start = NEXT_END.load(Ordering::Relaxed);
    for i in (0..CHILD_ENDS).map(|k| (start + k) % CHILD_ENDS) {
        if CHILD_END_FD[i]
            .compare_exchange(-1, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            CHILD_END_INO[i].store(ino, Ordering::Relaxed);
            CHILD_END_FD[i].store(fd, Ordering::Release);
            NEXT_END.store(i + 1, Ordering::Relaxed);
            return true;
        }
    }
    false
}

/// Frees the entries whose number no longer names their pipe or socket;
/// returns how many.
fn sweep_child_ends() -> usize {
    use std::sync::atomic::Ordering;
    let mut freed = 0;
    for (slot, ino_slot) in CHILD_END_FD.iter().zip(&CHILD_END_INO) {
        let fd = slot.load(Ordering::Acquire);
        if fd >= 0
            && pipe_inode(fd) != Some(ino_slot.load(Ordering::Relaxed))
            && slot
                .compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            freed += 1;
        }
    }
    freed
}

/// In a new `Process` child (forked by brood for its function, not
/// `fork_with`'s, which keeps every descriptor as `os.fork` does): closes the
/// parent's ends of its other children's pipes and sockets, and forgets
/// them. Atomic loads, `fstat` and `close`: async-signal-safe.
pub fn close_child_ends() {
    use std::sync::atomic::Ordering;
    for (slot, ino_slot) in CHILD_END_FD.iter().zip(&CHILD_END_INO) {
        let fd = slot.swap(-1, Ordering::Acquire);
        if fd >= 0 && pipe_inode(fd) == Some(ino_slot.load(Ordering::Relaxed)) {
            // SAFETY: `fd` names, in this new child, the very pipe or socket
            // end the parent recorded (checked by inode just now); this
            // child's own ends were never recorded, and nothing here uses it.
            unsafe { libc::close(fd) };
        }
    }
}

/// `fork()`, with the child side confined to `child`, which cannot return (it
/// ends in `_exit` or `execve`): so the child never runs the caller's code after
/// the fork. Returns the child's pid in the parent.
///
/// What `child` may do is `fork_with`'s contract: in a multi-threaded parent,
/// nothing that needs a lock another thread may have held at the fork.
pub fn fork_then(child: impl FnOnce() -> Infallible) -> io::Result<u32> {
    // SAFETY: the child side runs `child`, which never returns (its type has no
    // value), so the caller's frames never run twice.
    match unsafe { fork() }? {
        // `child()` has no value, so nothing after the call runs.
        #[allow(unreachable_code)]
        Forked::Child => match child() {},
        Forked::Parent(pid) => Ok(pid),
    }
}

/// `_exit(code)`: leave at once, running no `atexit` handler and flushing nothing.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// For tests of process-wide state (signal dispositions): runs `child` in a
/// forked copy, which `_exit`s with what it returns (or dies trying), and
/// returns how that copy ended, as `waitid` reports it.
#[cfg(test)]
pub fn ending_of(child: impl FnOnce() -> i32) -> super::pidfd::Reap {
    use std::os::fd::AsFd;
    let pid = fork_then(|| exit_now(child())).unwrap();
    let fd = super::pidfd::open(pid).unwrap();
    super::pidfd::wait_exited(fd.as_fd(), None).unwrap();
    super::pidfd::try_reap(fd.as_fd()).unwrap()
}

/// `gettid()`.
pub fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// Is the caller the process's main thread (tid == pid)?
pub fn is_main_thread() -> bool {
    gettid() == super::getpid()
}

/// How many threads this process has: field 20 of `/proc/self/stat`.
pub fn thread_count() -> io::Result<usize> {
    match self_stat() {
        Ok(stat) => Ok(stat.num_threads as usize),
        // Read it the long way.
        Err(_) => Ok(super::procfs::stat_self()
            .map_err(io::Error::other)?
            .num_threads as usize),
    }
}

/// The classic signals (1–31) this process ignores now, bit `sig - 1` each:
/// field 33 of `/proc/self/stat` (`sigignore`), one `pread` where asking
/// `sigaction` signal by signal costs 31 system calls.
pub fn ignored_signals() -> io::Result<u64> {
    let mut buf = [0u8; 1024];
    let text = read_self_stat(&mut buf)?;
    super::procfs::stat_number(text, 33)
        .ok_or_else(|| io::Error::other("/proc/self/stat has no sigignore field"))
}

/// This process's `/proc/self/stat`, parsed.
fn self_stat() -> io::Result<super::procfs::Stat> {
    let mut buf = [0u8; 1024];
    let text = read_self_stat(&mut buf)?;
    super::procfs::parse_stat(text).map_err(io::Error::other)
}

/// Reads `/proc/self/stat` into `buf`. Asked before every fork, so the file
/// stays open (one per process: an inherited one would describe the parent)
/// and each ask is one `pread` instead of open, stat, two reads and close.
fn read_self_stat(buf: &mut [u8; 1024]) -> io::Result<&[u8]> {
    use std::os::unix::fs::FileExt;
    static STAT: super::forklocal::ForkLocal<std::sync::Mutex<Option<std::fs::File>>> =
        super::forklocal::ForkLocal::new(|| std::sync::Mutex::new(None));
    let mut file = STAT.get().lock().unwrap_or_else(|e| e.into_inner());
    if file.is_none() {
        use std::os::fd::AsRawFd;
        let opened = std::fs::File::open("/proc/self/stat")?;
        parent_only(ParentOnly::Stat, Some(opened.as_raw_fd()));
        *file = Some(opened);
    }
    let n = file.as_ref().map_or(Ok(0), |f| f.read_at(buf, 0))?;
    if n == 0 || n == buf.len() {
        // Cannot happen for a stat line (at most ~350 bytes of numbers and a
        // 15-byte name).
        return Err(io::Error::other("/proc/self/stat: unexpected length"));
    }
    Ok(&buf[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_closes_recorded_ends_but_not_a_number_reused() {
        use std::os::fd::AsFd;
        let (live_r, _live_w) = super::super::pipe::pipe().unwrap();
        assert!(child_end(live_r.as_fd()));
        let (stale_r, stale_w) = super::super::pipe::pipe().unwrap();
        assert!(child_end(stale_r.as_fd()));
        let stale = stale_r.as_raw_fd();
        drop(stale_r);
        // The number comes back (lowest free), now naming another pipe.
        let (reused, _w2) = super::super::pipe::pipe().unwrap();
        let reused_fd = if reused.as_raw_fd() == stale {
            reused.as_raw_fd()
        } else {
            -1
        };
        let live = live_r.as_raw_fd();
        // SAFETY: fcntl(F_GETFD) only asks whether a number is open.
        let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
        let ended = ending_of(move || {
            close_child_ends();
            if open(live) {
                return 1;
            }
            if reused_fd >= 0 && !open(reused_fd) {
                return 2;
            }
            0
        });
        assert_eq!(ended, super::super::pidfd::Reap::Exited(0));
        assert!(open(live), "the parent's own end is untouched");
        drop(stale_w);
    }

    #[test]
    fn a_forked_child_holds_no_copy_of_the_stat_descriptor() {
        thread_count().unwrap();
        let fd = PARENT_ONLY[ParentOnly::Stat as usize].load(std::sync::atomic::Ordering::Relaxed);
        // SAFETY: fcntl(F_GETFD) only asks whether `fd` is open.
        let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
        assert!(fd >= 0 && open(fd));
        // In the child: the parent's descriptor is closed, and asking again
        // opens one of the child's own (which describes the child).
        let ended = ending_of(move || {
            if open(fd) {
                return 1;
            }
            match thread_count() {
                Ok(1) => {}
                _ => return 2,
            }
            let own =
                PARENT_ONLY[ParentOnly::Stat as usize].load(std::sync::atomic::Ordering::Relaxed);
            if own < 0 || !open(own) {
                return 3;
            }
            0
        });
        assert_eq!(ended, super::super::pidfd::Reap::Exited(0));
        assert!(open(fd), "the parent's own is untouched");
    }
}
