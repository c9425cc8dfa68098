//! cgroup v2: the unified hierarchy's mount, this process's cgroup, and the
//! files brood uses in cgroups it made itself (`cgroup.procs` to join,
//! `cgroup.kill` to end every member at once, `cgroup.freeze` to pause
//! them, `cgroup.events` to see it empty or frozen). Nothing here writes outside a directory the caller created.
//!
//! # References
//! Documentation/admin-guide/cgroup-v2.rst (`cgroup.procs`, `cgroup.kill`,
//! Linux 5.14; `cgroup.events`), proc(5) (`/proc/self/cgroup`,
//! `/proc/self/mountinfo`).

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Where the cgroup v2 hierarchy is mounted (`cgroup2` in
/// `/proc/self/mountinfo`), if it is.
pub fn mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// This process's cgroup v2 path (the `0::` line of `/proc/self/cgroup`).
pub fn own() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// The controllers available in the cgroup at `dir` (`cgroup.controllers`).
pub fn controllers(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|t| t.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `cgroup.procs` of `dir`, open for writing (close-on-exec), for a child to
/// join with [`join`].
pub fn procs_for_joining(dir: &Path) -> io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))?;
    Ok(OwnedFd::from(f))
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open on
/// `fd` (writing "0" means "me"). Async-signal-safe: one `write`, for a child
/// between its creation and the program.
pub fn join(fd: RawFd) -> io::Result<()> {
    // SAFETY: writes one byte from a static buffer to a descriptor number.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    if n == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SIGKILL to every process in `dir` at once (`cgroup.kill`): a fork racing
/// it cannot escape (Linux 5.14).
pub fn kill(dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join("cgroup.kill"), b"1")
}

/// The pids in `dir` now (`cgroup.procs`).
pub fn members(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether any process is left in `dir` (`populated 1` in `cgroup.events`).
pub fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Whether the kernel has `cgroup.kill` in `dir`.
pub fn has_kill(dir: &Path) -> bool {
    dir.join("cgroup.kill").exists()
}

/// Freezes (`on`) or thaws every process in `dir` at once (`cgroup.freeze`,
/// Linux 5.2): a process forked meanwhile is frozen too.
pub fn freeze(dir: &Path, on: bool) -> io::Result<()> {
    std::fs::write(dir.join("cgroup.freeze"), if on { b"1" } else { b"0" })
}

/// Waits until `cgroup.events` of `dir` says `frozen 1` (or `0` for
/// `frozen == false`), up to `deadline`; true if it does. The kernel wakes
/// a `poll` for `POLLPRI` on that file at each change.
pub fn wait_frozen(dir: &Path, frozen: bool, deadline: std::time::Instant) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let events = std::fs::File::open(dir.join("cgroup.events"))?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let mut buf = [0u8; 256];
    loop {
        let n = events.read_at(&mut buf, 0)?;
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == want)
        {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut fds = [libc::pollfd {
            fd: events.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        }];
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        super::pipe::poll(&mut fds, ms)?;
    }
}

/// `kill(pid, sig)` to one member (a pid read from `cgroup.procs`).
pub fn kill_member(pid: u32, sig: i32) {
    // SAFETY: kill touches no memory; a gone pid gives ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// An exclusive `flock(2)` on one of brood's cgroup directories. A brood
/// process holds one on its own directory for as long as it lives; another
/// that can take it knows the owner is gone, whatever pid namespace either
/// is in (a pid says nothing across namespaces). Exec'd children never have
/// the descriptor (`O_CLOEXEC`), forked ones close it first thing
/// ([`ParentOnly`](super::fork::ParentOnly)); the lock ends with the owner.
#[derive(Debug)]
pub struct DirLock {
    /// Held, not read: the lock lasts as long as this descriptor.
    _file: std::fs::File,
    kind: super::fork::ParentOnly,
}

/// How long a brood process waits for its own directory's lock: someone
/// removing a dead owner's leftovers holds it for a moment.
const OWN_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl DirLock {
    /// Makes `dir` if it is not there, and locks it as this process's own.
    /// `WouldBlock` when another process has held it for [`OWN_LOCK_WAIT`]:
    /// a live brood process with the same pid in another pid namespace.
    pub fn make_own(dir: &Path) -> io::Result<DirLock> {
        let give_up = std::time::Instant::now() + OWN_LOCK_WAIT;
        loop {
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let file = match std::fs::File::open(dir) {
                Ok(f) => f,
                // Removed between the two: make it again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < give_up => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "another process holds its lock (a brood process with the same pid in \
                         another pid namespace, sharing this cgroup?)",
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            // Whoever held it may have removed the directory meanwhile.
            if same_file(&file, dir) {
                return Ok(DirLock::held(file, super::fork::ParentOnly::CgroupDir));
            }
        }
    }

    /// Locks `dir` if nobody holds it, for a moment: `None` while its owner
    /// (or anyone) has it, or when it is gone.
    pub fn take_abandoned(dir: &Path) -> Option<DirLock> {
        let file = std::fs::File::open(dir).ok()?;
        file.try_lock().ok()?;
        Some(DirLock::held(file, super::fork::ParentOnly::CgroupSweep))
    }

    fn held(file: std::fs::File, kind: super::fork::ParentOnly) -> DirLock {
        use std::os::fd::AsRawFd;
        super::fork::parent_only(kind, Some(file.as_raw_fd()));
        DirLock { _file: file, kind }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Forked children stop closing the number before it can be reused.
        super::fork::parent_only(self.kind, None);
    }
}

/// Whether the open `file` is what `path` names now.
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::DirLock;

    #[test]
    fn this_process_has_a_cgroup_and_the_mount_is_found_when_there_is_one() {
        // Every Linux process is in some v2 cgroup when v2 is mounted.
        if let Some(m) = super::mount() {
            assert!(m.is_absolute());
            assert!(super::own().is_some_and(|p| p.starts_with('/')));
        }
    }

    #[test]
    fn an_owned_directory_cannot_be_taken_until_its_lock_is_dropped() {
        // A plain directory stands in for a cgroup: flock(2) is the VFS's.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("brood-1");
        let own = DirLock::make_own(&dir).unwrap();
        assert!(dir.is_dir());
        assert!(DirLock::take_abandoned(&dir).is_none());
        drop(own);
        let taken = DirLock::take_abandoned(&dir).expect("free once dropped");
        drop(taken);
        assert!(DirLock::take_abandoned(&tmp.path().join("gone")).is_none());
    }

    #[test]
    fn a_forked_child_does_not_keep_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("brood-2");
        let own = DirLock::make_own(&dir).unwrap();
        // The child outlives our lock: had it kept its copy, the directory
        // would still be held after we drop ours.
        use std::os::fd::AsRawFd;
        let (ready_r, ready_w) = super::super::pipe::pipe().unwrap();
        let (go_r, go_w) = super::super::pipe::pipe().unwrap();
        let fds = (ready_w.as_raw_fd(), go_r.as_raw_fd(), go_w.as_raw_fd());
        let pid = super::super::fork::fork_then(move || {
            let (ready, go, go_w) = fds;
            let mut b = [0u8; 1];
            // SAFETY: in the child, on its own pipe ends, with a stack buffer:
            // says it runs (by then the fork closed what it must), closes its
            // copy of `go`'s write end (so our drop is its end of file), waits.
            unsafe {
                libc::write(ready, b.as_ptr().cast(), 1);
                libc::close(go_w);
                libc::read(go, b.as_mut_ptr().cast(), 1);
            }
            super::super::fork::exit_now(0)
        })
        .unwrap();
        let mut b = [0u8; 1];
        // SAFETY: reads one byte from our own pipe into a stack buffer.
        unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        drop((own, go_r, ready_w));
        let free = DirLock::take_abandoned(&dir).is_some();
        drop(go_w);
        let mut status = 0;
        // SAFETY: waits for our own child, with a valid status pointer.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        assert!(free, "the forked child still held the lock");
    }
}
