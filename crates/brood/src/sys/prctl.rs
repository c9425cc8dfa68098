//! `prctl(2)`: the parent-death signal and the child subreaper.
//!
//! - `PR_SET_PDEATHSIG` (Linux 2.1.57): the kernel sends a signal to this process
//!   when its parent *thread* exits. brood therefore creates such children only
//!   from a thread that lives as long as the process (see `crate::spawner`), and
//!   closes the start-up race by re-checking the parent pid after arming.
//!   The setting is cleared by fork (not by execve, except for set-uid programs).
//! - `PR_SET_CHILD_SUBREAPER` (Linux 3.4): orphaned descendants are re-parented to
//!   this process instead of init, so a supervisor can reap and kill them.
//!
//! # References
//! prctl(2), PR_SET_PDEATHSIG(2const), PR_SET_CHILD_SUBREAPER(2const).

use std::io;

/// `prctl(PR_SET_PDEATHSIG, sig)`. Async-signal-safe: usable between fork and exec.
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes one integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `prctl(PR_SET_CHILD_SUBREAPER, on)`.
pub fn set_child_subreaper(on: bool) -> io::Result<()> {
    let me = on.then(rustix::process::getpid);
    Ok(rustix::process::set_child_subreaper(me)?)
}

/// `prctl(PR_GET_CHILD_SUBREAPER)`.
pub fn is_child_subreaper() -> io::Result<bool> {
    Ok(rustix::process::child_subreaper()?.is_some())
}
