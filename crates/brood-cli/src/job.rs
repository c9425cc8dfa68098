//! `brood job`: a cluster job on a NATS server seen from outside — its
//! agents, its queue and its live maps — once, or redrawn every second.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brood_cluster::{AgentRecord, ClusterError, Credentials, JobStatus, JobWatch};
use comfy_table::{ContentArrangement, Table, presets};

/// `brood job`'s arguments.
#[derive(clap::Args)]
pub struct JobArgs {
    /// The NATS server, as `nats://host:4222`.
    #[arg(long, value_name = "URL")]
    nats: String,
    /// Log in with this user (and --password).
    #[arg(long, requires = "password", conflicts_with_all = ["token", "creds"])]
    user: Option<String>,
    /// The user's password.
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Log in with this token.
    #[arg(long, conflicts_with = "creds")]
    token: Option<String>,
    /// Log in with this `.creds` file (a user JWT and its NKey seed).
    #[arg(long, value_name = "FILE")]
    creds: Option<PathBuf>,
    /// The job's name.
    name: String,
    /// Redraw every second until Ctrl-C (through a server restart).
    #[arg(long)]
    watch: bool,
    /// Print one JSON object (with --watch: one a line, every second).
    #[arg(long)]
    json: bool,
}

/// Runs `brood job`; its exit status: 0, or 1 with the reason on stderr.
pub fn main(a: JobArgs) -> u8 {
    match show(&a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("brood job: {e}");
            1
        }
    }
}

fn show(a: &JobArgs) -> Result<(), ClusterError> {
    let credentials = match (&a.user, &a.password, &a.token, &a.creds) {
        (Some(user), Some(password), _, _) => Credentials::UserPassword {
            user: user.clone(),
            password: password.clone(),
        },
        (_, _, Some(token), _) => Credentials::Token(token.clone()),
        (_, _, _, Some(path)) => Credentials::CredsFile(path.clone()),
        _ => Credentials::None,
    };
    if !a.watch {
        let status = JobStatus::read(&a.nats, credentials, &a.name, JobStatus::LISTEN)?;
        print(&a.nats, &status, a.json, false);
        return Ok(());
    }
    let watch = JobWatch::open(&a.nats, credentials, &a.name)?;
    // The first view once every agent had its turn to say it is there.
    std::thread::sleep(JobStatus::LISTEN);
    loop {
        match watch.status() {
            Ok(status) => print(&a.nats, &status, a.json, true),
            Err(e @ ClusterError::NoSuchJob { .. }) => return Err(e),
            // The server may be restarting: the client reconnects by
            // itself, and a later view says how the job is.
            Err(e) => eprintln!("brood job: {e}; trying again"),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Prints one view; a redrawn one clears the screen first.
fn print(url: &str, status: &JobStatus, json: bool, redraw: bool) {
    let text = if json {
        // A JobStatus holds strings and numbers only.
        serde_json::to_string(status).unwrap_or_default() + "\n"
    } else if redraw {
        format!("\x1b[H\x1b[2J{}", render(url, status, now()))
    } else {
        render(url, status, now())
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) ends nothing here: the watch goes on
    // until Ctrl-C, as asked.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The view: a line of totals, the live maps, a table of agents.
fn render(url: &str, s: &JobStatus, now: u64) -> String {
    let mut out = format!(
        "job {} on {url}: chunks {} pending, {} running ({} redelivered); items {} done, {} failed\n",
        s.job, s.pending, s.running, s.redelivered, s.done, s.failed
    );
    out += &match s.drivers.as_slice() {
        [] => "maps: none (no driver is beating)\n".to_string(),
        maps => format!(
            "maps: {} ({} chunks' outcomes stored)\n",
            maps.join(", "),
            s.results
        ),
    };
    if s.agents.is_empty() {
        out += "agents: none heard\n";
        return out;
    }
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "host",
            "pid",
            "build",
            "up",
            "workers",
            "in hand",
            "answered",
            "failed",
            "longest running chunk",
        ]);
    for a in &s.agents {
        table.add_row([
            a.host.clone(),
            a.pid.to_string(),
            short_build(&a.build),
            duration(now.saturating_sub(a.started_at)),
            a.workers.to_string(),
            a.running.to_string(),
            a.answered.to_string(),
            a.failed.to_string(),
            longest(a),
        ]);
    }
    out += &format!("{table}\n");
    out
}

/// A build id cut to 12 hex digits: enough to tell two builds apart.
fn short_build(build: &str) -> String {
    match build.split_once(' ') {
        Some((kind, hex)) if hex.len() > 12 => format!("{kind} {}…", &hex[..12]),
        _ => build.to_string(),
    }
}

fn longest(a: &AgentRecord) -> String {
    a.longest.as_ref().map_or_else(String::new, |l| {
        format!(
            "map {} {}: {}",
            l.map,
            match l.items {
                1 => format!("item {}", l.item),
                n => format!("items {}-{}", l.item, l.item + n - 1),
            },
            duration(l.seconds as u64)
        )
    })
}

/// `42s`, `3m05s`, `2h07m`.
fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_builds_read_short() {
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(185), "3m05s");
        assert_eq!(duration(7620), "2h07m");
        assert_eq!(
            short_build("build-id 0123456789abcdef0123"),
            "build-id 0123456789ab…"
        );
        assert_eq!(short_build("unknown"), "unknown");
    }

    #[test]
    fn the_view_names_the_stuck_agent_s_task() {
        let s: JobStatus = serde_json::from_value(serde_json::json!({
            "job": "etl", "pending": 5, "running": 2, "redelivered": 1, "results": 3,
            "done": 40, "failed": 1, "drivers": ["Xk3"],
            "agents": [{
                "id": "box-7-0a", "host": "box", "pid": 7, "build": "build-id 00ff",
                "workers": 2, "running": 2, "answered": 40, "failed": 1,
                "started_at": 1000,
                "longest": { "map": "Xk3", "item": 12, "items": 4, "seconds": 93.5 }
            }]
        }))
        .unwrap();
        let text = render("nats://h:4222", &s, 1000 + 3700);
        assert!(text.starts_with(
            "job etl on nats://h:4222: chunks 5 pending, 2 running (1 redelivered); items 40 done, 1 failed\n"
        ));
        assert!(text.contains("maps: Xk3 (3 chunks' outcomes stored)"));
        for cell in [
            "box",
            "build-id 00ff",
            "1h01m",
            "map Xk3 items 12-15: 1m33s",
        ] {
            assert!(text.contains(cell), "{cell} in\n{text}");
        }
    }
}
