//! systemd's `NOTIFY_SOCKET` for one child: a socket in a private directory,
//! the messages it accepts (only from the child's own tree) and what they say.

use crate::policy::Tree;
use crate::sys::{notify, procfs};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// How far up the parent chain a sender is followed to find the child (a
/// deeper descendant still counts if it is in the child's process group).
const MAX_DEPTH: usize = 64;

/// The socket and its directory, removed when dropped.
pub(crate) struct NotifySocket {
    dir: PathBuf,
    pub(crate) path: PathBuf,
    sock: UnixDatagram,
    /// The last `STATUS=` the child's tree sent.
    pub(crate) status: Option<String>,
}

/// What the messages read so far said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Said {
    Nothing,
    Ready,
    Stopping,
}

impl NotifySocket {
    pub(crate) fn new() -> io::Result<NotifySocket> {
        let dir = notify::private_dir(&std::env::temp_dir())?;
        let path = dir.join("notify");
        match notify::bind_notify(&path) {
            Ok(sock) => Ok(NotifySocket {
                dir,
                path,
                sock,
                status: None,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Reads every waiting message; those from the child's tree (`child`
    /// with `tree`) are obeyed in order, the others dropped.
    pub(crate) fn read(&mut self, child: u32, tree: Tree) -> io::Result<Said> {
        while let Some(message) = notify::recv_notify(self.sock.as_fd())? {
            if !message.pid.is_some_and(|pid| in_tree(pid, child, tree)) {
                continue;
            }
            for line in String::from_utf8_lossy(&message.text).lines() {
                match line {
                    "READY=1" => return Ok(Said::Ready),
                    "STOPPING=1" => return Ok(Said::Stopping),
                    _ => {
                        if let Some(status) = line.strip_prefix("STATUS=") {
                            self.status = Some(status.to_string());
                        }
                    }
                }
            }
            // Its descriptors (a BARRIER=1's) close here, after its text
            // was read: the sender may now go on.
        }
        Ok(Said::Nothing)
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Whether `sender` is `child`, a descendant of it, or (when the child has
/// its own group) in its process group: the kernel names the sender, so
/// nobody outside the tree can pass for it. A sender that has already ended
/// cannot be placed and does not count (systemd's own rule; `systemd-notify`
/// waits until its message was read).
fn in_tree(sender: u32, child: u32, tree: Tree) -> bool {
    if sender == child {
        return true;
    }
    if tree != Tree::Own && notify::pgid_of(sender) == Some(child) {
        return true;
    }
    let mut pid = sender;
    for _ in 0..MAX_DEPTH {
        match procfs::stat(pid) {
            Ok(Some(stat)) if stat.ppid == child => return true,
            Ok(Some(stat)) if stat.ppid > 1 => pid = stat.ppid,
            _ => return false,
        }
    }
    false
}
