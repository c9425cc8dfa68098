//! systemd's `sd_notify`, the sending side: one datagram to the socket named
//! by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
//!
//! # References
//! sd_notify(3), unix(7).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `text` to the socket `NOTIFY_SOCKET` names.
pub fn send(socket: &OsStr, text: &[u8]) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let name = socket.as_bytes();
    let addr = match name.strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(socket))?,
    };
    sock.send_to_addr(text, &addr)?;
    Ok(())
}
