//! The machine the lab ran on, for the report's header and JSON.

use serde::Serialize;

/// What the report says about the machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// The first CPU's model name (`/proc/cpuinfo`), or empty.
    pub cpu_model: String,
    /// The load averages when the lab started (`/proc/loadavg`, 1/5/15 min).
    pub load: String,
}

impl Machine {
    /// Reads the machine's facts now.
    pub fn read() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_default();
        let load = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Machine {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            load,
        }
    }

    /// One line: `Linux 6.1.0, 2 CPUs (model), load 0.10 0.20 0.30`.
    pub fn summary(&self) -> String {
        let model = if self.cpu_model.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.cpu_model)
        };
        format!(
            "Linux {}, {} CPUs{model}, load {}",
            self.kernel, self.cpus, self.load
        )
    }
}
