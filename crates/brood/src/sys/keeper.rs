//! The keeper: a small process that outlives its parent just long enough to
//! signal the process groups registered with it when the parent dies —
//! SIGKILL included. `PR_SET_PDEATHSIG` reaches only a direct child; the
//! keeper reaches the child's whole group.
//!
//! It is made by a double fork (an intermediate that exits at once, so the
//! keeper is not our child and no `waitpid(-1)` of ours can take it), in its
//! own session (a signal to our group or terminal does not reach it), with
//! every descriptor closed but two: a pidfd of the parent (readable when the
//! parent ends) and the read end of the registration pipe. Children register
//! *themselves*, before they run anything, by writing one [`Record`]
//! (`pgid`, `signal`) into the pipe; the parent writes `signal` 0 to forget a
//! group whose leader it reaped. Everything in the keeper is a plain system
//! call on memory prepared before the fork: nothing is allocated and no lock
//! is taken, so it is sound after a fork from a threaded parent.
//!
//! # References
//! fork(2), setsid(2), close_range(2), poll(2), pidfd_open(2), kill(2)
//! (`kill(-pgid, sig)`), pipe(7) (writes of at most `PIPE_BUF` are atomic).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// One registration: 8 bytes, so that writes from many children never
/// interleave (a pipe write of at most `PIPE_BUF` is atomic).
pub type Record = [u8; 8];

/// The record for group `pgid` and `sig` (0: forget the group).
pub fn record(pgid: u32, sig: i32) -> Record {
    let mut r = [0u8; 8];
    r[..4].copy_from_slice(&pgid.to_le_bytes());
    r[4..].copy_from_slice(&sig.to_le_bytes());
    r
}

/// How many groups a keeper holds at once (the rest are not registered).
const CAPACITY: usize = 4096;

/// Writes one record into the pipe: async-signal-safe, for a child between
/// its creation and the program. Errors are the caller's to ignore or report.
pub fn register(fd: RawFd, rec: &Record) -> io::Result<()> {
    // SAFETY: writes 8 bytes from a live buffer to a descriptor number; a
    // wrong number fails with EBADF, nothing else.
    let n = unsafe { libc::write(fd, rec.as_ptr().cast(), rec.len()) };
    if n == rec.len() as isize {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The longest cgroup directory path a keeper can hold.
const PATH_MAX: usize = 512;

/// Starts a keeper for this process; returns the registration pipe's write
/// end (close-on-exec). `cgroups`: the directory where this process makes
/// its children's cgroups (it may not exist yet): at the parent's end the
/// keeper also signals every cgroup there whose name is `d<signal>-<n>`
/// (see [`cgroup_name`]).
pub fn start(cgroups: Option<&std::path::Path>) -> io::Result<OwnedFd> {
    let me = super::pidfd::open(super::getpid())?;
    let (reg_r, reg_w) = super::pipe::pipe()?;
    // Everything the keeper uses exists before the fork: the path too, NUL
    // terminated in a fixed buffer.
    let mut base = [0u8; PATH_MAX];
    if let Some(dir) = cgroups {
        use std::os::unix::ffi::OsStrExt;
        let bytes = dir.as_os_str().as_bytes();
        if bytes.len() < PATH_MAX {
            base[..bytes.len()].copy_from_slice(bytes);
        }
    }
    let fds = (me.as_raw_fd(), reg_r.as_raw_fd());
    let intermediate = super::fork::fork_then(move || {
        // SAFETY: fork is called in a child that runs nothing but system calls.
        match unsafe { libc::fork() } {
            0 => keep(fds.0, fds.1, &base),
            _ => super::fork::exit_now(0),
        }
    })?;
    drop((me, reg_r));
    // The intermediate exits at once; it is ours to reap (by pid: nothing of
    // brood's waits for it).
    let mut status = 0;
    // SAFETY: waits for our own child, with a valid status pointer.
    unsafe { libc::waitpid(intermediate as libc::pid_t, &mut status, 0) };
    Ok(reg_w)
}

/// The name of a child's cgroup in the directory given to [`start`]: with a
/// parent-death signal `d<sig>-<n>` (the keeper signals it), else `c<n>`.
pub fn cgroup_name(n: u64, death_signal: Option<i32>) -> String {
    match death_signal {
        Some(sig) => format!("d{sig}-{n}"),
        None => format!("c{n}"),
    }
}

/// Calls `each` with the name of every entry of the open directory `dir`,
/// from its start: `getdents64` into a stack buffer, nothing allocated.
///
/// # Safety
/// `dir` is an open directory descriptor of this process.
unsafe fn for_each_entry(dir: RawFd, mut each: impl FnMut(&[u8])) {
    // SAFETY: rewinding our own directory descriptor.
    unsafe { libc::lseek(dir, 0, libc::SEEK_SET) };
    let mut entries = [0u8; 4096];
    loop {
        // SAFETY: getdents64 fills at most the buffer's length.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir,
                entries.as_mut_ptr(),
                entries.len(),
            )
        };
        if n <= 0 {
            return;
        }
        let mut at = 0usize;
        while at + 19 < n as usize {
            // struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
            let reclen = u16::from_ne_bytes([entries[at + 16], entries[at + 17]]) as usize;
            if reclen == 0 {
                return;
            }
            let name = &entries[at + 19..(at + reclen).min(n as usize)];
            let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            each(&name[..len]);
            at += reclen;
        }
    }
}

/// At the parent's end: every `d<sig>-<n>` cgroup in `base` gets `sig` —
/// SIGKILL through `cgroup.kill`, another signal to each member. System
/// calls on stack buffers only.
///
/// # Safety
/// Called in the keeper, a fresh single-purpose process; `base` is a
/// NUL-terminated path (or empty).
unsafe fn signal_cgroups(base: &[u8; PATH_MAX]) {
    if base[0] == 0 {
        return;
    }
    // SAFETY: `base` is NUL terminated (the buffer is longer than the path).
    let dir = unsafe {
        libc::open(
            base.as_ptr().cast(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return;
    }
    // SAFETY: `dir` is open; `signal_one`'s contract is this function's.
    unsafe { for_each_entry(dir, |name| signal_one(dir, name)) };
    // Nobody will sweep our parent's cgroups any more: remove those that are
    // (or, once killed, become) empty, then the directory itself.
    // SAFETY: as for this function.
    unsafe { remove_cgroups(dir, base) };
    // SAFETY: our own descriptor.
    unsafe { libc::close(dir) };
}

/// Removes every cgroup in `dir` that is empty — the `d…` ones the keeper
/// just signalled are given up to two seconds in all to empty — and then
/// `base`.
///
/// # Safety
/// As for [`signal_cgroups`]; `dir` is `base`, open.
unsafe fn remove_cgroups(dir: RawFd, base: &[u8; PATH_MAX]) {
    // Milliseconds left to wait, for all of them together.
    let mut budget = 2000u32;
    let remove = |name: &[u8]| {
        if name.is_empty() || name[0] == b'.' || name.len() >= 255 {
            return;
        }
        let mut path = [0u8; 256];
        path[..name.len()].copy_from_slice(name);
        let signalled = name[0] == b'd';
        loop {
            // SAFETY: a NUL-terminated relative path in a stack buffer.
            if unsafe { libc::unlinkat(dir, path.as_ptr().cast(), libc::AT_REMOVEDIR) } == 0 {
                break;
            }
            if !signalled || budget == 0 {
                break;
            }
            budget -= 1;
            let ms = libc::timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000,
            };
            // SAFETY: sleeps; a valid timespec.
            unsafe { libc::nanosleep(&ms, std::ptr::null_mut()) };
        }
    };
    // SAFETY: `dir` is open.
    unsafe { for_each_entry(dir, remove) };
    // SAFETY: `base` is NUL terminated.
    unsafe { libc::rmdir(base.as_ptr().cast()) };
}

/// One entry of [`signal_cgroups`]: `d<sig>-<n>` gets its signal.
///
/// # Safety
/// As for [`signal_cgroups`]; `dir` is open.
unsafe fn signal_one(dir: RawFd, name: &[u8]) {
    let Some(rest) = name.strip_prefix(b"d") else {
        return;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let sig = rest[..digits].iter().fold(0i32, |s, &b| {
        s.saturating_mul(10).saturating_add((b - b'0') as i32)
    });
    if sig == 0 {
        return;
    }
    let file: &[u8] = if sig == libc::SIGKILL {
        b"/cgroup.kill\0"
    } else {
        b"/cgroup.procs\0"
    };
    let mut path = [0u8; 256];
    if name.len() + file.len() > path.len() {
        return;
    }
    path[..name.len()].copy_from_slice(name);
    path[name.len()..name.len() + file.len()].copy_from_slice(file);
    if sig == libc::SIGKILL {
        // SAFETY: a NUL-terminated relative path in a stack buffer.
        let fd =
            unsafe { libc::openat(dir, path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: one byte from a static buffer; our own descriptor.
            unsafe {
                libc::write(fd, b"1".as_ptr().cast(), 1);
                libc::close(fd);
            }
        }
        return;
    }
    // SAFETY: as above.
    let fd = unsafe { libc::openat(dir, path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return;
    }
    let mut pids = [0u8; 4096];
    // SAFETY: reads at most the buffer's length.
    let n = unsafe { libc::read(fd, pids.as_mut_ptr().cast(), pids.len()) };
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    let mut pid: i32 = 0;
    for &b in &pids[..n.max(0) as usize] {
        if b.is_ascii_digit() {
            pid = pid.saturating_mul(10).saturating_add((b - b'0') as i32);
        } else {
            if pid > 0 {
                // SAFETY: kill touches no memory.
                unsafe { libc::kill(pid, sig) };
            }
            pid = 0;
        }
    }
}

/// The keeper's life: wait for registrations and for the parent's end; at
/// the end, signal every group registered and every cgroup that asks for it.
fn keep(parent: RawFd, registrations: RawFd, cgroups: &[u8; PATH_MAX]) -> ! {
    let mut groups = [(0u32, 0i32); CAPACITY];
    let mut count = 0usize;
    // SAFETY: plain system calls on descriptors this fresh copy of the process
    // owns and on stack buffers that outlive each call; nothing allocates.
    unsafe {
        libc::setsid();
        // Keep the two descriptors as 0 and 1, close every other one: the
        // keeper must not hold a copy of the parent's pipes (a child would
        // never see the end of its stdin).
        let p = libc::fcntl(parent, libc::F_DUPFD_CLOEXEC, 16);
        let r = libc::fcntl(registrations, libc::F_DUPFD_CLOEXEC, 16);
        if p < 0 || r < 0 || libc::dup2(p, 0) != 0 || libc::dup2(r, 1) != 1 {
            libc::_exit(1);
        }
        libc::syscall(libc::SYS_close_range, 2u32, u32::MAX, 0u32);
        let mut open = true; // the registration pipe still has writers
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if open { 1 } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if libc::poll(fds.as_mut_ptr(), 2, -1) < 0 {
                continue; // EINTR
            }
            if fds[1].revents != 0 {
                let mut buf = [0u8; 8 * 64];
                let n = libc::read(1, buf.as_mut_ptr().cast(), buf.len());
                if n == 0 {
                    open = false;
                }
                for rec in buf[..n.max(0) as usize].chunks_exact(8) {
                    let pgid = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
                    let sig = i32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
                    let at = groups[..count].iter().position(|g| g.0 == pgid);
                    match (at, sig) {
                        (Some(i), 0) => {
                            count -= 1;
                            groups[i] = groups[count];
                        }
                        (Some(i), s) => groups[i].1 = s,
                        (None, 0) => {}
                        (None, s) if count < CAPACITY => {
                            groups[count] = (pgid, s);
                            count += 1;
                        }
                        (None, _) => {}
                    }
                }
            }
            if fds[0].revents != 0 {
                // The parent ended: its groups get their signal.
                for &(pgid, sig) in &groups[..count] {
                    libc::kill(-(pgid as libc::pid_t), sig);
                }
                signal_cgroups(cgroups);
                libc::_exit(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn records_carry_the_group_and_the_signal() {
        let r = super::record(4242, 9);
        assert_eq!(u32::from_le_bytes(r[..4].try_into().unwrap()), 4242);
        assert_eq!(i32::from_le_bytes(r[4..].try_into().unwrap()), 9);
        assert_eq!(super::record(1, 0)[4..], [0, 0, 0, 0]);
    }
}
