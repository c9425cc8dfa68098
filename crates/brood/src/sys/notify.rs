//! The kernel side of readiness notifications: systemd's `NOTIFY_SOCKET` (a
//! datagram socket in a private directory whose messages carry the sender's
//! pid, vouched for by the kernel) and s6's notification descriptor (a pipe's
//! write end placed at a number the child's program expects).
//!
//! # References
//! unix(7) (`SO_PASSCRED`, `SCM_CREDENTIALS`, `SCM_RIGHTS`), sd_notify(3),
//! s6's `notification-fd`, dup2(2).

use super::clone::PreExec;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg, sockopt::set_socket_passcred,
};
use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// A new directory only we can enter (mode 0700), named unguessably under
/// `parent`: the notification socket lives there, so no other user can
/// replace it or connect to it.
pub fn private_dir(parent: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    loop {
        let dir = parent.join(format!("brood-ready-{:016x}", super::random::u64()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A datagram socket bound at `path`, non-blocking and close-on-exec, that
/// asks the kernel for every sender's credentials (set before anyone can
/// send, so that no message arrives without them).
pub fn bind_notify(path: &Path) -> io::Result<UnixDatagram> {
    let sock = UnixDatagram::bind(path)?;
    set_socket_passcred(&sock, true)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// One message of a notification socket: its text and the pid of its
/// sender. Descriptors sent along (systemd-notify's `BARRIER=1` passes one
/// and waits for it to be closed) are closed when the message is dropped.
pub struct Message {
    pub text: Vec<u8>,
    pub pid: Option<u32>,
    /// Held until the message is handled, then closed.
    pub _fds: Vec<OwnedFd>,
}

/// The next message waiting on `sock`, or `None` when there is none.
pub fn recv_notify(sock: BorrowedFd<'_>) -> io::Result<Option<Message>> {
    let mut buf = vec![0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8), ScmCredentials(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(
        sock,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    );
    let got = match got {
        Ok(got) => got,
        Err(rustix::io::Errno::AGAIN) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    buf.truncate(got.bytes);
    let (mut pid, mut fds) = (None, Vec::new());
    for message in control.drain() {
        match message {
            RecvAncillaryMessage::ScmCredentials(cred) => {
                pid = Some(cred.pid.as_raw_nonzero().get() as u32);
            }
            RecvAncillaryMessage::ScmRights(received) => fds.extend(received),
            _ => {}
        }
    }
    Ok(Some(Message {
        text: buf,
        pid,
        _fds: fds,
    }))
}

/// The process group of `pid`, if it exists.
pub fn pgid_of(pid: u32) -> Option<u32> {
    let pid = rustix::process::Pid::from_raw(pid as i32)?;
    rustix::process::getpgid(Some(pid))
        .ok()
        .map(|g| g.as_raw_nonzero().get() as u32)
}

/// A hook for the child, run just before `execve`, that puts `fd` (the write
/// end of s6's notification pipe) at number `target`, open across `execve`.
pub fn place_fd(fd: &OwnedFd, target: RawFd) -> PreExec {
    let raw = fd.as_fd().as_raw_fd();
    let hook = move || {
        if raw == target {
            // dup2 onto itself keeps close-on-exec: clear it instead.
            // SAFETY: fcntl on a descriptor the child holds; no memory involved.
            if unsafe { libc::fcntl(raw, libc::F_SETFD, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
        // SAFETY: dup2 of an open descriptor onto a number the caller chose;
        // the copy has no close-on-exec, which is what the program needs.
        } else if unsafe { libc::dup2(raw, target) } != target {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook only makes two system calls: no lock, no allocation.
    unsafe { PreExec::new(hook) }
}
