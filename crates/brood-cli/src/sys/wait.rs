//! waitpid(2).

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
