//! Resource limits: `getrlimit(2)` / `setrlimit(2)`.
//!
//! # References
//! getrlimit(2) (`RLIMIT_NOFILE`).

use std::io;

/// Raises this process's soft limit on open descriptors to its hard limit (as
/// the Go runtime does at start) and returns the new soft limit. The fork
/// server holds a pidfd per child, so it must not inherit a client's low soft
/// limit; its children get the client's limit back (see `restore_nofile`).
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let mut raised = before;
    raised.current = before.maximum;
    setrlimit(Resource::Nofile, raised)?;
    Ok((
        before.current.unwrap_or(u64::MAX),
        before.maximum.unwrap_or(u64::MAX),
    ))
}

/// The soft and hard limits on open descriptors (`u64::MAX`: unlimited).
pub fn nofile() -> (u64, u64) {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (l.current.unwrap_or(u64::MAX), l.maximum.unwrap_or(u64::MAX))
}

/// Sets the soft limit on open descriptors back to `soft` (a fork-server
/// child takes its client's limit, as it would with any other start method).
pub fn restore_nofile(soft: u64) -> io::Result<()> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    l.current = Some(soft);
    Ok(setrlimit(Resource::Nofile, l)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn raise_then_restore() {
        let (soft, hard) = super::raise_nofile().unwrap();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current.unwrap_or(u64::MAX), hard);
        super::restore_nofile(soft).unwrap();
        let back = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(back.current.unwrap_or(u64::MAX), soft);
    }
}
