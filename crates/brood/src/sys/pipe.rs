//! Pipes for arguments and results, and the descriptor plumbing around them.
//!
//! - `pipe2(O_CLOEXEC)`: a one-way byte channel; close-on-exec so that programs a
//!   child execs do not hold our ends open.
//! - `fcntl(F_SETPIPE_SZ)` (Linux 2.6.35): a bigger kernel buffer means fewer
//!   context switches per megabyte; capped by `/proc/sys/fs/pipe-max-size` for
//!   unprivileged users, so a refusal is ignored.
//! - `O_NONBLOCK`, `dup3`, `open("/dev/null")` for the re-executed child's stdin.
//!
//! # References
//! pipe(2), fcntl(2) (`F_SETPIPE_SZ`, `F_SETFL`, `F_SETFD`), dup(2), poll(2).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `pipe2(O_CLOEXEC | O_NONBLOCK)`: a self-pipe, whose read end wakes a
/// `poll` (a signal handler or another thread writes a byte; a full pipe
/// already says the same, so writes may fail with `EAGAIN`).
pub fn wake_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Empties the read end of a [`wake_pipe`] (after it woke a `poll`).
pub fn drain(fd: BorrowedFd<'_>) {
    let mut sink = [0u8; 64];
    while matches!(read(fd, &mut sink), Ok(n) if n > 0) {}
}

/// `fcntl(fd, F_SETPIPE_SZ, bytes)`; best effort (the kernel may refuse or round).
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) {
    // SAFETY: an fcntl on a borrowed, open descriptor with an integer argument.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes as libc::c_int) };
}

/// Sets or clears `O_NONBLOCK`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL/F_SETFL) on a borrowed, open descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if new != flags && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `read(2)`, retrying on EINTR. `Ok(0)` is end of file; `WouldBlock` on an empty
/// non-blocking pipe.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let rc = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `read(2)` into the spare capacity of `buf` (at most `max` bytes), growing its
/// length by what was read. Avoids zeroing memory the kernel is about to fill.
pub fn read_into_spare(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let want = spare.len().min(max);
    loop {
        // SAFETY: `spare` is valid for writes of `want` bytes; the kernel writes
        // only initialised bytes, and we only extend `len` by what it wrote.
        let rc = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
        if rc >= 0 {
            let n = rc as usize;
            // SAFETY: the first `n` spare bytes were just initialised by read(2).
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes all of `data` to a blocking descriptor, retrying on EINTR.
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: `data` is valid for reads of its length.
        let rc = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[rc as usize..];
    }
    Ok(())
}

/// `fcntl(F_DUPFD_CLOEXEC, 3)`: a close-on-exec copy at a number above the
/// standard three.
pub fn dup_high(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a borrowed, open descriptor; the result is fresh.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(rc) })
}

/// Points descriptor `target` (0, 1 or 2) at `/dev/null`.
pub fn null_onto(target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 of an open descriptor onto a standard descriptor number; the
    // previous occupant of `target` is closed by the kernel, and the copy does
    // not inherit close-on-exec.
    if unsafe { libc::dup2(dev_null()?.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes all of `bytes` to `fd` with raw `write(2)`s, retrying on EINTR and
/// giving up on any other error. Async-signal-safe and allocation-free: for a
/// forked child's last words.
pub fn write_all_raw(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reads of its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[(n as usize).min(bytes.len())..];
        } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// One `write(2)` of as much of `data` as the descriptor takes (for a
/// non-blocking pipe: what fits); EINTR and EAGAIN come back as errors.
pub fn write_some(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is valid for reads of its length.
    let rc = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// `poll(2)` on `fds` for at most `timeout_ms` (-1: no limit); the number of
/// descriptors with events. EINTR comes back as an error.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the kernel to fill.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Would a write of up to `PIPE_BUF` bytes to `fd` go through without
/// blocking now? (`poll(POLLOUT)` with no wait.) A pipe that is full, or a
/// terminal that is stopped, says no; a regular file always says yes; a
/// descriptor that is not open (or in error) says yes too, since a write
/// there fails at once rather than waits.
pub fn writable_now(fd: RawFd) -> bool {
    let mut fds = [libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    }];
    match poll(&mut fds, 0) {
        Ok(0) => false,
        Ok(_) => true,
        Err(_) => true,
    }
}

/// `/dev/null`, opened once (read-write, close-on-exec) for the process's life.
/// A forked child inherits it, so it only dup2s it instead of allocating a path
/// and opening a file (each page a fresh child writes is a copy-on-write fault):
/// call this in the parent before forking.
pub fn dev_null() -> io::Result<BorrowedFd<'static>> {
    static NULL: std::sync::OnceLock<io::Result<std::fs::File>> = std::sync::OnceLock::new();
    let null = NULL.get_or_init(|| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
    });
    null.as_ref()
        .map(|f| f.as_fd())
        .map_err(|e| io::Error::new(e.kind(), e.to_string()))
}

/// Borrows a standard descriptor (0, 1, 2) that is open for the process's life.
pub fn borrow_std(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the standard descriptors stay open (brood only ever dup2s onto
    // them, which keeps the number open).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Whether `fd` is the write end of a pipe (a FIFO opened for writing).
pub fn is_pipe_writer(fd: BorrowedFd<'_>) -> bool {
    let fifo = rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
    });
    let writes = rustix::fs::fcntl_getfl(fd)
        .is_ok_and(|fl| fl.intersects(rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::RDWR));
    fifo && writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_pipe_never_blocks_and_drains_empty() {
        let (r, w) = wake_pipe().unwrap();
        let mut b = [0u8; 1];
        assert_eq!(
            read(r.as_fd(), &mut b).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // Filled up: the write that no longer fits fails instead of waiting.
        let big = vec![1u8; 1 << 20];
        while write_some(w.as_fd(), &big).is_ok() {}
        drain(r.as_fd());
        assert_eq!(
            read(r.as_fd(), &mut b).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
