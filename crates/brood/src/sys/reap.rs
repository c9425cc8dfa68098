//! Ending one's own child by pid, for the one case with no pidfd to use: a
//! child just forked whose `pidfd_open` failed (no descriptor left). brood is
//! its parent and has not waited for it, so its pid cannot be reused yet: the
//! pid is safe to signal and to wait for.
//!
//! # References
//! kill(2), waitpid(2).

use std::io;

/// SIGKILL to our own unreaped child `pid`, then `waitpid` for it.
pub fn kill_and_reap_own(pid: u32) -> io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    // ESRCH cannot happen for an unreaped child; if it is already a zombie the
    // kill is a no-op.
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reaps `pid` if it is a child of ours that has ended (`waitpid(pid,
/// WNOHANG)`); true if it was reaped. Only for a zombie of ours that nobody
/// else waits for: its pid cannot be reused before this reaps it.
pub fn reap_ended_own(pid: u32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG) {
            Ok(Some(_)) => return true,
            Ok(None) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fork::{self, Forked};

    #[test]
    fn the_child_is_gone_and_reaped() {
        // SAFETY: the child only sleeps until killed.
        match unsafe { fork::fork() }.unwrap() {
            Forked::Child => loop {
                std::thread::park();
            },
            Forked::Parent(pid) => {
                super::kill_and_reap_own(pid).unwrap();
                // Reaped: no longer a child of ours to wait for (no zombie).
                let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
                let again =
                    rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
                assert_eq!(again.unwrap_err(), rustix::io::Errno::CHILD);
            }
        }
    }
}
