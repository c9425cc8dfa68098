//! [`Limits`]: resource limits and niceness a child sets on itself before it
//! runs anything (Python's `preexec_fn=lambda: resource.setrlimit(…)`, without
//! running Python code between fork and exec).

use crate::sys::rlimit::{ChildLimit, ChildLimits, Which};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Resource limits for a child: set in the child between its creation and
/// the program (or function), for every kind — [`Command`](crate::Command),
/// [`Process`](crate::Process) with each start method, `fork_with`, a
/// [`Pool`](crate::Pool)'s workers.
///
/// Each limit is set as both the soft and the hard limit, so the child cannot
/// raise it again (CPU time: the hard limit one second later, so that the
/// child first gets SIGXCPU, then SIGKILL if it ignores that). A limit above
/// this process's own hard limit needs privilege; a child that cannot set a
/// limit does not start (the error names the call).
///
/// A child that hits a limit ends in a way that says so: SIGXCPU for CPU
/// time; for address space its allocation fails (a Rust program aborts:
/// SIGABRT), for open files and processes the call fails with
/// `EMFILE`/`EAGAIN`.
///
/// ```
/// # brood::init();
/// use brood::{Command, Limits};
/// use std::time::Duration;
///
/// let out = Command::new("sh")
///     .args(["-c", "ulimit -t; ulimit -n"])
///     .limits(Limits::new().cpu_time(Duration::from_secs(7)).open_files(64))
///     .run()?;
/// assert_eq!(String::from_utf8_lossy(&out.stdout), "7\n64\n");
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    address_space: Option<u64>,
    cpu_seconds: Option<u64>,
    open_files: Option<u64>,
    processes: Option<u64>,
    core_size: Option<u64>,
    nice: Option<i32>,
    /// cgroup limits (with `Tree::Cgroup`): `memory.max`, `pids.max`, and
    /// `cpu.max` as (quota, period) in µs.
    #[serde(default)]
    memory_max: Option<u64>,
    #[serde(default)]
    pids_max: Option<u64>,
    #[serde(default)]
    cpu_max: Option<(u64, u64)>,
}

impl Limits {
    /// No limit changed.
    pub fn new() -> Limits {
        Limits::default()
    }

    /// At most `bytes` of address space (`RLIMIT_AS`).
    ///
    /// A child forked from this process ([`StartMethod::Fork`](crate::StartMethod::Fork))
    /// starts with this process's address space: below that, it can map
    /// nothing more. A [`Pool`](crate::Pool) of forked workers, which must map
    /// their channels, refuses such a limit with
    /// [`Error::AddressSpaceBelowParent`](crate::Error::AddressSpaceBelowParent)
    /// before any worker exists; `ForkServer` and `Spawn` children start small.
    pub fn address_space(mut self, bytes: u64) -> Limits {
        self.address_space = Some(bytes);
        self
    }

    /// At most `time` of CPU (`RLIMIT_CPU`, whole seconds, at least one).
    pub fn cpu_time(mut self, time: Duration) -> Limits {
        self.cpu_seconds = Some(time.as_secs().max(1));
        self
    }

    /// At most `n` open descriptors (`RLIMIT_NOFILE`).
    pub fn open_files(mut self, n: u64) -> Limits {
        self.open_files = Some(n);
        self
    }

    /// At most `n` processes for the child's user (`RLIMIT_NPROC`; root is
    /// not bound by it).
    pub fn processes(mut self, n: u64) -> Limits {
        self.processes = Some(n);
        self
    }

    /// Core dumps of at most `bytes` (`RLIMIT_CORE`; 0: none).
    pub fn core_size(mut self, bytes: u64) -> Limits {
        self.core_size = Some(bytes);
        self
    }

    /// The child's niceness, -20 (first) to 19 (last); below this process's
    /// own needs privilege.
    pub fn nice(mut self, nice: i32) -> Limits {
        self.nice = Some(nice.clamp(-20, 19));
        self
    }

    /// At most `bytes` of memory for the child's whole cgroup (`memory.max`:
    /// past it the kernel reclaims, then OOM-kills inside the cgroup). Needs
    /// [`Tree::Cgroup`](crate::Tree::Cgroup) and the `memory` controller
    /// available to brood's cgroups ([`containment`](crate::containment)
    /// lists them); otherwise the start fails with
    /// [`Error::CgroupUnavailable`](crate::Error::CgroupUnavailable) naming
    /// what is missing.
    pub fn memory_max(mut self, bytes: u64) -> Limits {
        self.memory_max = Some(bytes);
        self
    }

    /// At most `n` processes (and threads) in the child's cgroup
    /// (`pids.max`); needs the `pids` controller, as for
    /// [`memory_max`](Limits::memory_max).
    pub fn pids_max(mut self, n: u64) -> Limits {
        self.pids_max = Some(n);
        self
    }

    /// At most `fraction` of one CPU for the child's cgroup (`cpu.max`, over
    /// a 100 ms period); needs the `cpu` controller, as for
    /// [`memory_max`](Limits::memory_max).
    pub fn cpu_max(mut self, fraction: f64) -> Limits {
        let period = 100_000u64;
        let quota = ((fraction.max(0.01)) * period as f64) as u64;
        self.cpu_max = Some((quota, period));
        self
    }

    /// The cgroup files to write, with their controller: (controller, file,
    /// value).
    pub(crate) fn cgroup_files(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut v = Vec::new();
        if let Some(b) = self.memory_max {
            v.push(("memory", "memory.max", b.to_string()));
        }
        if let Some(n) = self.pids_max {
            v.push(("pids", "pids.max", n.to_string()));
        }
        if let Some((q, p)) = self.cpu_max {
            v.push(("cpu", "cpu.max", format!("{q} {p}")));
        }
        v
    }

    /// What the child sets on itself (made here, in the parent, so that the
    /// child allocates nothing).
    /// An address-space limit at or below what this process maps, which
    /// children forked from it start with: `(limit, mapped)`, if so.
    pub(crate) fn below_forked_size(&self) -> Option<(u64, u64)> {
        let limit = self.address_space?;
        let mapped = crate::sys::procfs::vm_bytes(crate::sys::getpid())?;
        (limit <= mapped).then_some((limit, mapped))
    }

    pub(crate) fn for_child(&self) -> ChildLimits {
        let same = |which, v: Option<u64>| {
            v.map(|v| ChildLimit {
                which,
                soft: v,
                hard: v,
            })
        };
        ChildLimits {
            limits: [
                same(Which::AddressSpace, self.address_space),
                self.cpu_seconds.map(|s| ChildLimit {
                    which: Which::CpuTime,
                    soft: s,
                    hard: s.saturating_add(1),
                }),
                same(Which::OpenFiles, self.open_files),
                same(Which::Processes, self.processes),
                same(Which::CoreSize, self.core_size),
            ],
            nice: self.nice,
        }
    }
}
