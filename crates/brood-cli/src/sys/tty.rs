//! The controlling terminal on stdin: whose group holds its foreground, and
//! taking it back. Handing it *to* the command happens in the child before
//! `execve` (`brood::Command::foreground`).
//!
//! # References
//! tcgetpgrp(3), tcsetpgrp(3), getpgrp(2), credentials(7) (job control).

/// Our process group (`getpgrp`).
pub fn own_group() -> u32 {
    // SAFETY: getpgrp cannot fail and touches no memory.
    unsafe { libc::getpgrp() as u32 }
}

/// The foreground group of the terminal on fd 0, or `None` if fd 0 is not our
/// controlling terminal.
pub fn foreground() -> Option<u32> {
    // SAFETY: isatty and tcgetpgrp only read the state of fd 0.
    unsafe {
        if libc::isatty(0) != 1 {
            return None;
        }
        let pgrp = libc::tcgetpgrp(0);
        (pgrp > 0).then_some(pgrp as u32)
    }
}

/// Makes `pgid` the foreground group of the terminal on fd 0. SIGTTOU is
/// blocked meanwhile: a background group calling tcsetpgrp would be stopped.
pub fn set_foreground(pgid: u32) -> std::io::Result<()> {
    // SAFETY: sigset_t is plain data; we block SIGTTOU in this thread around
    // the tcsetpgrp on fd 0, then restore the previous mask.
    unsafe {
        let mut ttou: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut ttou);
        libc::sigaddset(&mut ttou, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &ttou, &mut old);
        let rc = libc::tcsetpgrp(0, pgid as libc::pid_t);
        let err = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if rc == 0 { Ok(()) } else { Err(err) }
    }
}
