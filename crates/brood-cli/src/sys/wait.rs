//! Collecting children that brood's library does not own: orphans re-parented
//! to `brood run` (a subreaper, or PID 1), and the command's stops and
//! continues (job control), which the library's reaper never consumes (it waits
//! with `WEXITED` only).
//!
//! The lab's own `waitpid` (it reaps the CPython processes it runs, as their
//! subreaper) is here too.
//!
//! # References
//! waitid(2) (`WNOWAIT`, `P_PIDFD` since Linux 5.4), waitpid(2).

use brood::ExitStatus;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn waitid(idtype: libc::idtype_t, id: libc::id_t, flags: i32) -> io::Result<libc::siginfo_t> {
    loop {
        // SAFETY: siginfo_t is plain data for which all zeroes is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only into `info`, which we own.
        if unsafe { libc::waitid(idtype, id, &mut info, flags) } == 0 {
            return Ok(info);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// The pid of one child of ours that has exited and is not reaped yet, without
/// reaping it (`WNOWAIT`), so that the command's own status stays for the
/// library; `None` if there is none (or no child at all).
pub fn peek_exited() -> io::Result<Option<u32>> {
    match waitid(
        libc::P_ALL,
        0,
        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
    ) {
        // SAFETY: waitid filled a CLD_* siginfo, whose si_pid is valid to read.
        Ok(info) => Ok(match unsafe { info.si_pid() } {
            0 => None,
            pid => Some(pid as u32),
        }),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reaps the exited child `pid` (found by [`peek_exited`]): its status, or
/// `None` if it was not ours to reap after all.
pub fn reap(pid: u32) -> Option<ExitStatus> {
    let mut status = 0;
    // SAFETY: waitpid on one specific pid, writing into our own int.
    let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    (rc == pid as libc::pid_t)
        .then(|| ExitStatus::from_wait_status(status))
        .flatten()
}

/// A change of the command's run state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum JobChange {
    /// Stopped by this signal (SIGTSTP, SIGTTIN, SIGTTOU, SIGSTOP).
    Stopped(i32),
    /// Continued by SIGCONT.
    Continued,
}

/// The stop or continue of the child behind `pidfd` not yet reported, if any.
pub fn job_change(pidfd: BorrowedFd<'_>) -> io::Result<Option<JobChange>> {
    let info = match waitid(
        libc::P_PIDFD,
        pidfd.as_raw_fd() as libc::id_t,
        libc::WSTOPPED | libc::WCONTINUED | libc::WNOHANG,
    ) {
        Ok(info) => info,
        // Already reaped by the library's reaper: no change to report.
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: waitid filled a CLD_* siginfo (or left it zeroed: pid 0).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(match info.si_code {
        libc::CLD_STOPPED | libc::CLD_TRAPPED => Some(JobChange::Stopped(status)),
        libc::CLD_CONTINUED => Some(JobChange::Continued),
        _ => None,
    })
}

/// What one `waitpid` call gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// A child was reaped: its pid and raw wait status.
    Reaped(u32, i32),
    /// `WNOHANG` and no child has ended.
    NothingYet,
}

/// `waitpid(target, WNOHANG when !block)`: `target` -1 is any child. Errors
/// carry errno (ECHILD: no such child of this process; EINTR).
pub fn waitpid(target: i32, block: bool) -> std::io::Result<Waited> {
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: waitpid writes the status into our local integer only.
    let got = unsafe { libc::waitpid(target, &mut status, flags) };
    match got {
        0 => Ok(Waited::NothingYet),
        p if p > 0 => Ok(Waited::Reaped(p as u32, status)),
        _ => Err(std::io::Error::last_os_error()),
    }
}
