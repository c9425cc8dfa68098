//! What a process and a cgroup have used, as the kernel counts it: CPU time
//! and the children's waited-for CPU time from `/proc/<pid>/stat`, resident
//! memory now and at its peak from `/proc/<pid>/status`, a cgroup's CPU time
//! from its `cpu.stat` (core to cgroup v2: no controller needed).
//!
//! # References
//! proc(5) (`stat` fields 14–17, `status` `VmRSS`/`VmHWM`),
//! Documentation/admin-guide/cgroup-v2.rst (`cpu.stat`, `memory.peak`).

use std::path::Path;
use std::time::Duration;

/// What one process has used, as `/proc/<pid>/stat` and `status` say.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProcUsage {
    /// Its own CPU time in user mode (`utime`).
    pub user: Duration,
    /// Its own CPU time in the kernel (`stime`).
    pub system: Duration,
    /// The user CPU time of the children it has waited for (`cutime`).
    pub children_user: Duration,
    /// The system CPU time of the children it has waited for (`cstime`).
    pub children_system: Duration,
    /// Resident memory now, in bytes (`VmRSS`; 0 for a zombie).
    pub rss: u64,
    /// Resident memory at its peak, in bytes (`VmHWM`; 0 for a zombie).
    pub peak_rss: u64,
    /// Whether it has ended and waits to be reaped (state `Z`): its CPU
    /// time counts, but it runs no more.
    pub zombie: bool,
}

fn ticks(n: u64) -> Duration {
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_nanos(n.saturating_mul(1_000_000_000) / hz)
}

/// What process `pid` has used, or `None` if it is gone.
///
/// ```
/// let me = brood::os::procfs::usage(std::process::id()).unwrap();
/// assert!(me.rss > 0 && me.peak_rss >= me.rss);
/// ```
pub fn process(pid: u32) -> Option<ProcUsage> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let field = |n| super::procfs::stat_number(&stat, n);
    let mut usage = ProcUsage {
        user: ticks(field(14)?),
        system: ticks(field(15)?),
        children_user: ticks(field(16)?),
        children_system: ticks(field(17)?),
        zombie: super::procfs::stat_field(&stat, 3) == Some("Z"),
        ..ProcUsage::default()
    };
    // A zombie has no memory, and no `Vm` lines.
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |k| k * 1024)
        };
        usage.rss = kib("VmRSS:");
        usage.peak_rss = kib("VmHWM:");
    }
    Some(usage)
}

/// A cgroup's CPU time, user and system (`cpu.stat`): every process that
/// ever ran in it, reaped or not.
pub fn cgroup_cpu(dir: &Path) -> Option<(Duration, Duration)> {
    let text = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let usec = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((
        Duration::from_micros(usec("user_usec")?),
        Duration::from_micros(usec("system_usec")?),
    ))
}

/// A cgroup's memory now and at its peak (`memory.current`,
/// `memory.peak`), where the memory controller is enabled.
pub fn cgroup_memory(dir: &Path) -> Option<(u64, u64)> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    Some((read("memory.current")?, read("memory.peak")?))
}

/// One line of a pressure file: the share of time some (or all) of the
/// cgroup's tasks were stalled, averaged over 10 s, 60 s and 300 s (in
/// percent), and the total stalled time.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct RawStall {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: Duration,
}

/// `cpu.pressure`, `memory.pressure` or `io.pressure` of a cgroup
/// (`name` without the suffix): the `some` and `full` lines (PSI, Linux
/// 4.20; `full` for CPU from 5.13).
pub fn cgroup_pressure(dir: &Path, name: &str) -> Option<(RawStall, Option<RawStall>)> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.pressure"))).ok()?;
    let line = |kind: &str| {
        let rest = text.lines().find_map(|l| l.strip_prefix(kind))?;
        let mut s = RawStall::default();
        for pair in rest.split_whitespace() {
            let (key, value) = pair.split_once('=')?;
            match key {
                "avg10" => s.avg10 = value.parse().ok()?,
                "avg60" => s.avg60 = value.parse().ok()?,
                "avg300" => s.avg300 = value.parse().ok()?,
                "total" => s.total = Duration::from_micros(value.parse().ok()?),
                _ => {}
            }
        }
        Some(s)
    };
    Some((line("some ")?, line("full ")))
}

/// What this process has used, as getrusage(2) counts it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OwnUsage {
    /// CPU time in user mode: its threads', and that of the children it
    /// waited for (`RUSAGE_SELF` + `RUSAGE_CHILDREN`).
    pub user: Duration,
    /// CPU time in the kernel, counted the same way.
    pub system: Duration,
    /// Its resident memory at its peak, in bytes (`ru_maxrss`: the same
    /// high-water mark as `VmHWM`).
    pub peak_rss: u64,
}

/// getrusage(2) for `who`.
fn rusage(who: libc::c_int) -> Option<libc::rusage> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is valid for writes of one `rusage`; `who` is one of the
    // kernel's constants.
    let rc = unsafe { libc::getrusage(who, ru.as_mut_ptr()) };
    // SAFETY: getrusage filled it in (it returned 0); it was zeroed before.
    (rc == 0).then(|| unsafe { ru.assume_init() })
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec.max(0) as u64, 0) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// What this process has used so far (µs precision; two system calls).
pub fn own() -> OwnUsage {
    let mut u = OwnUsage::default();
    if let Some(me) = rusage(libc::RUSAGE_SELF) {
        u.user += timeval(me.ru_utime);
        u.system += timeval(me.ru_stime);
        u.peak_rss = (me.ru_maxrss.max(0) as u64).saturating_mul(1024);
    }
    if let Some(kids) = rusage(libc::RUSAGE_CHILDREN) {
        u.user += timeval(kids.ru_utime);
        u.system += timeval(kids.ru_stime);
    }
    u
}
