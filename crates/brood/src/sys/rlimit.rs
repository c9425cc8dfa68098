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

/// Which limit a [`ChildLimit`] sets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Which {
    /// `RLIMIT_AS`: bytes of address space.
    AddressSpace,
    /// `RLIMIT_CPU`: seconds of CPU time (SIGXCPU at the soft limit, SIGKILL
    /// at the hard).
    CpuTime,
    /// `RLIMIT_NOFILE`: open descriptors.
    OpenFiles,
    /// `RLIMIT_NPROC`: processes of the user.
    Processes,
    /// `RLIMIT_CORE`: bytes of core dump.
    CoreSize,
}

impl Which {
    fn resource(self) -> rustix::process::Resource {
        use rustix::process::Resource;
        match self {
            Which::AddressSpace => Resource::As,
            Which::CpuTime => Resource::Cpu,
            Which::OpenFiles => Resource::Nofile,
            Which::Processes => Resource::Nproc,
            Which::CoreSize => Resource::Core,
        }
    }

    /// The call, as errors name it.
    pub fn step(self) -> &'static str {
        match self {
            Which::AddressSpace => "setrlimit(RLIMIT_AS)",
            Which::CpuTime => "setrlimit(RLIMIT_CPU)",
            Which::OpenFiles => "setrlimit(RLIMIT_NOFILE)",
            Which::Processes => "setrlimit(RLIMIT_NPROC)",
            Which::CoreSize => "setrlimit(RLIMIT_CORE)",
        }
    }
}

/// One limit for a new child: soft and hard.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ChildLimit {
    /// Which.
    pub which: Which,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// What a new child sets on itself before it runs anything: made in the
/// parent, applied in the child without allocating (a fixed array), so that
/// it fits between `fork`/`clone` and `exec`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildLimits {
    /// The limits to set.
    pub limits: [Option<ChildLimit>; 5],
    /// `setpriority(PRIO_PROCESS, 0, nice)`.
    pub nice: Option<i32>,
}

impl ChildLimits {
    /// Sets them on the calling process; the failing call and its error.
    /// Async-signal-safe: plain system calls, nothing allocated.
    pub fn apply(&self) -> Result<(), (&'static str, io::Error)> {
        for l in self.limits.iter().flatten() {
            let limit = rustix::process::Rlimit {
                current: Some(l.soft),
                maximum: Some(l.hard),
            };
            rustix::process::setrlimit(l.which.resource(), limit)
                .map_err(|e| (l.which.step(), io::Error::from(e)))?;
        }
        if let Some(nice) = self.nice {
            rustix::process::setpriority_process(None, nice)
                .map_err(|e| ("setpriority", io::Error::from(e)))?;
        }
        Ok(())
    }

    /// Whether these set `RLIMIT_NOFILE`.
    pub fn sets_open_files(&self) -> bool {
        self.limits
            .iter()
            .flatten()
            .any(|l| l.which == Which::OpenFiles)
    }
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
