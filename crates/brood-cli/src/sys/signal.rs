//! kill(2) and signal dispositions.

/// Sends `sig` to the one process `pid`; false when it does not exist (or
/// `pid` would name a group, init or every process).
pub fn kill(pid: u32, sig: i32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 1 {
        return false; // never signal init, a process group by accident, or everyone
    }
    // SAFETY: kill has no memory arguments; raw > 1 names one process.
    unsafe { libc::kill(raw, sig) == 0 }
}

/// Sends `sig` to this process itself.
pub fn raise_self(sig: i32) {
    kill(std::process::id(), sig);
}

/// Sets `sig`'s disposition to SIG_IGN (for SIGCHLD: the kernel then reaps
/// every child itself, the moment it ends).
pub fn ignore(sig: i32) {
    // SAFETY: setting a disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}
