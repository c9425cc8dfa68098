//! Unix-domain sockets that carry file descriptors: the private channel between a
//! brood process and the children or fork server it starts.
//!
//! - `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`: two connected ends with
//!   no filesystem name, so nobody but the holders of an end can talk on it.
//!   Sequenced packets keep message boundaries, so every message travels with the
//!   descriptors attached to it.
//! - `sendmsg`/`recvmsg` with `SCM_RIGHTS`: pass open descriptors (pipes, pidfds)
//!   to the peer; received ones are made close-on-exec (`MSG_CMSG_CLOEXEC`).
//! - `getsockopt(SO_PEERCRED)`: the pid/uid/gid of the peer (for a socketpair: of
//!   the process that made the pair).
//!
//! # References
//! socketpair(2), unix(7) (`SCM_RIGHTS`, `SO_PEERCRED`), sendmsg(2), recvmsg(2),
//! cmsg(3).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The most descriptors brood attaches to one message.
pub const MAX_FDS: usize = 4;

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)`.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned two open descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Space for the control message of [`MAX_FDS`] descriptors, suitably aligned.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// `sendmsg(fd, {data}, SCM_RIGHTS fds, MSG_NOSIGNAL)`: one packet with `fds`
/// attached. A closed peer gives `EPIPE`, never SIGPIPE.
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: an all-zero msghdr is a valid "no name, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
        debug_assert!(space <= cbuf.0.len());
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points to `space` writable, 8-aligned bytes, enough
        // for one cmsghdr with `payload` bytes of data (checked above), so
        // CMSG_FIRSTHDR is non-null and CMSG_DATA has room for every fd.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: `msg` and everything it points to live across the call.
        let rc = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if rc >= 0 {
            return if rc as usize == data.len() {
                Ok(())
            } else {
                Err(io::Error::new(io::ErrorKind::WriteZero, "short sendmsg"))
            };
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `recvmsg(fd, MSG_CMSG_CLOEXEC)`: one packet into `buf` and the descriptors
/// attached to it (close-on-exec). `Ok((0, []))` means the peer closed.
///
/// A packet larger than `buf`, or one with more than [`MAX_FDS`] descriptors, is
/// an error (`EMSGSIZE`); descriptors that came with it are closed, not leaked.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: as in send_with_fds.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len() as _;
    let n = loop {
        // SAFETY: `msg` points to live, writable buffers of the sizes given.
        let rc = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if rc >= 0 {
            break rc as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk
    // only within it, and each SCM_RIGHTS payload is an array of fresh descriptors
    // that this process now owns.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        // The message itself was cut: `fds` is dropped here, whatever arrived
        // is closed.
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    // MSG_CTRUNC: the kernel dropped descriptors we had no room for (EMFILE)
    // or no buffer space for. The message is whole; the caller sees fewer
    // descriptors than were sent and fails that one request — never the
    // whole channel.
    Ok((n, fds))
}

/// The credentials of a socket's peer: `getsockopt(SO_PEERCRED)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's pid (for a socketpair: the process that called `socketpair`).
    pub pid: u32,
    /// Its user id.
    pub uid: u32,
}

/// `getsockopt(fd, SOL_SOCKET, SO_PEERCRED)`.
pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<PeerCred> {
    // SAFETY: ucred is plain integers; zero is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid as u32,
        uid: cred.uid,
    })
}

/// `getuid()`.
pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}
