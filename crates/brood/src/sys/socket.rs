//! Unix-domain sockets that carry file descriptors: the private channels between
//! a brood process and the children, workers or fork server it starts.
//!
//! - `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`: two connected ends with
//!   no filesystem name, so nobody but the holders of an end can talk on it.
//!   Sequenced packets keep message boundaries, so every message travels with the
//!   descriptors attached to it. `SOCK_STREAM` pairs carry a pool's frames.
//! - `sendmsg`/`recvmsg` with `SCM_RIGHTS`: pass open descriptors (pipes, pidfds,
//!   a worker's channel) to the peer; received ones are made close-on-exec
//!   (`MSG_CMSG_CLOEXEC`).
//! - `getsockopt(SO_PEERCRED)`: the pid/uid of the peer (for a socketpair: of
//!   the process that made the pair).
//!
//! All of it through rustix's typed ancillary buffers: no `msghdr` is built by
//! hand, and nothing here is `unsafe`.
//!
//! # References
//! socketpair(2), unix(7) (`SCM_RIGHTS`, `SO_PEERCRED`), sendmsg(2), recvmsg(2),
//! cmsg(3).

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

/// The most descriptors brood attaches to one message.
pub const MAX_FDS: usize = 4;

/// `socketpair(AF_UNIX, kind | SOCK_CLOEXEC, 0)`.
fn pair(kind: SocketType) -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        kind,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)`: messages.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    pair(SocketType::SEQPACKET)
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)`: a byte stream each way.
pub fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    pair(SocketType::STREAM)
}

/// `sendmsg(fd, {data}, SCM_RIGHTS fds, MSG_NOSIGNAL)`: one packet with `fds`
/// attached. A closed peer gives `EPIPE`, never SIGPIPE.
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    match send_some_with_fds(sock, data, fds)? {
        n if n == data.len() => Ok(()),
        _ => Err(io::Error::new(io::ErrorKind::WriteZero, "short sendmsg")),
    }
}

/// [`send_with_fds`] on a stream that may take only part of `data` (a
/// non-blocking socket): the bytes sent. The descriptors go with the first
/// byte, so once this returns a count they are sent.
pub fn send_some_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        // Cannot happen: the buffer has room for MAX_FDS, checked above.
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let iov = [IoSlice::new(data)];
    loop {
        match rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `recvmsg(fd, MSG_CMSG_CLOEXEC)`: one packet into `buf` and the descriptors
/// attached to it (close-on-exec). `Ok((0, []))` means the peer closed.
///
/// A packet larger than `buf` is an error (`EMSGSIZE`); descriptors that came
/// with it are closed, not leaked. Descriptors the kernel could not hand over
/// (no free slot here: `MSG_CTRUNC`) are simply missing: the message is whole,
/// and the caller fails that one request — never the whole channel.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    recv(sock, buf, RecvFlags::CMSG_CLOEXEC)
}

/// [`recv_with_fds`] for a message whose descriptors are its point (a pool
/// worker's hello and its progress page): `EMFILE` when the kernel could not
/// hand them all over (`MSG_CTRUNC`: no free slot here), instead of the
/// message without them.
pub fn recv_with_all_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let (n, fds, cut) = recv_flagged(sock, buf, RecvFlags::CMSG_CLOEXEC)?;
    if cut {
        return Err(io::Error::from_raw_os_error(libc::EMFILE));
    }
    Ok((n, fds))
}

/// [`recv_with_fds`] that does not wait (`MSG_DONTWAIT`): `Ok(None)` when no
/// packet is there, even on a blocking socket.
pub fn try_recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    match recv(sock, buf, RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT) {
        Ok(got) => Ok(Some(got)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

fn recv(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: RecvFlags,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    recv_flagged(sock, buf, flags).map(|(n, fds, _)| (n, fds))
}

/// `recvmsg`, and whether descriptors were dropped (`MSG_CTRUNC`).
fn recv_flagged(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: RecvFlags,
) -> io::Result<(usize, Vec<OwnedFd>, bool)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let got = loop {
        match rustix::net::recvmsg(sock, &mut iov, &mut control, flags) {
            Ok(got) => break got,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    if got.flags.contains(ReturnFlags::TRUNC) {
        // The message itself was cut: `fds` is dropped here, whatever arrived
        // is closed.
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    Ok((got.bytes, fds, got.flags.contains(ReturnFlags::CTRUNC)))
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
    let cred = rustix::net::sockopt::socket_peercred(sock)?;
    Ok(PeerCred {
        pid: cred.pid.as_raw_nonzero().get() as u32,
        uid: cred.uid.as_raw(),
    })
}

/// `getuid()`.
pub fn getuid() -> u32 {
    rustix::process::getuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// The inode behind a descriptor: the same open file on both sides.
    fn ino(fd: BorrowedFd<'_>) -> u64 {
        rustix::fs::fstat(fd).unwrap().st_ino
    }

    #[test]
    fn descriptors_cross_with_their_message() {
        let (a, b) = seqpacket_pair().unwrap();
        let (r, w) = crate::sys::pipe::pipe().unwrap();
        send_with_fds(a.as_fd(), b"hello", &[r.as_fd(), w.as_fd()]).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 2);
        assert_eq!(ino(fds[0].as_fd()), ino(r.as_fd()));
        let flags = rustix::io::fcntl_getfd(&fds[1]).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        // The peer of a socketpair is the process that made it.
        assert_eq!(peer_cred(a.as_fd()).unwrap().pid, std::process::id());
        drop(a);
        assert_eq!(recv_with_fds(b.as_fd(), &mut buf).unwrap().0, 0);
    }

    #[test]
    fn too_many_descriptors_are_refused_before_sending() {
        let (a, _b) = seqpacket_pair().unwrap();
        let fds: Vec<BorrowedFd<'_>> = (0..=MAX_FDS).map(|_| a.as_fd()).collect();
        let e = send_with_fds(a.as_fd(), b"x", &fds).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn a_cut_message_is_an_error_and_its_descriptors_are_closed() {
        let (a, b) = seqpacket_pair().unwrap();
        let (r, w) = crate::sys::pipe::pipe().unwrap();
        send_with_fds(a.as_fd(), b"longer than four", &[r.as_fd()]).unwrap();
        drop(r); // the only read end left is the one in the message
        let mut buf = [0u8; 4];
        let e = recv_with_fds(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
        // Had the received end leaked, the write would succeed.
        let wrote = rustix::io::write(&w, b"x");
        assert_eq!(wrote, Err(rustix::io::Errno::PIPE));
    }

    #[test]
    fn descriptors_without_room_are_dropped_but_the_message_arrives() {
        // More descriptors than our buffer holds: the kernel delivers what fits
        // and sets MSG_CTRUNC (as it does when we have no free slot). The
        // message is whole, with fewer descriptors.
        let (a, b) = seqpacket_pair().unwrap();
        let fds: Vec<BorrowedFd<'_>> = (0..MAX_FDS + 3).map(|_| a.as_fd()).collect();
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS + 3))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(
            &a,
            &[IoSlice::new(b"many")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        let mut buf = [0u8; 16];
        let (n, got) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"many");
        assert!(got.len() < MAX_FDS + 3, "{} descriptors", got.len());
    }
}
