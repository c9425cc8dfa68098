//! A test's own `nats-server`, its agent processes, and the reaping of what
//! they leave.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The server the tests run: `BROOD_NATS_SERVER` (test.sh runs the suite
/// again with a newer server than Debian's, see there), else `nats-server`.
pub fn server_binary() -> std::ffi::OsString {
    std::env::var_os("BROOD_NATS_SERVER").unwrap_or_else(|| "nats-server".into())
}

/// A `nats-server -js` on a free loopback port (the server picks it: `-p -1`)
/// with a store of its own; killed and reaped on drop.
pub struct Server {
    child: Child,
    pub url: String,
    _store: tempfile::TempDir,
    addr: String,
    options: Vec<String>,
    log: Log,
}

/// The lines a server logged after it was ready, kept across its restarts.
type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Starts `nats-server -js` on `addr` with `store`, and waits until its log
/// says it is ready; its URL from the same log.
fn spawn_server(
    store: &Path,
    addr: &str,
    port: &[&str],
    options: &[String],
    kept: &Log,
) -> (Child, String) {
    let mut child = Command::new(server_binary())
        .args(["-js", "-a", addr, "-sd"])
        .arg(store)
        .args(port)
        .args(options)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its log says where it listens, then that it is ready.
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    loop {
        line.clear();
        if log.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("nats-server ended before it was ready: {status}");
        }
        if let Some(at) = line.split("Listening for client connections on ").nth(1) {
            url = Some(format!("nats://{}", at.trim()));
        }
        if line.contains("Server is ready") {
            break;
        }
    }
    // The rest of its log is read as it comes, so that it never blocks
    // writing it, and kept.
    let kept = std::sync::Arc::clone(kept);
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    (child, url.expect("nats-server named no client port"))
}

impl Server {
    /// `None`, with a message, where `nats-server` is not installed.
    pub fn start() -> Option<Server> {
        Server::start_with(&[])
    }

    /// With more options (`--user`, say).
    pub fn start_with(options: &[&str]) -> Option<Server> {
        Server::start_on("127.0.0.1", options)
    }

    /// Listening on `addr` only (an address of a link the test made).
    pub fn start_on(addr: &str, options: &[&str]) -> Option<Server> {
        if Command::new(server_binary())
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: nats-server is not installed; test.sh installs it with apt");
            return None;
        }
        let store = tempfile::tempdir().unwrap();
        let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        let log = Log::default();
        let (child, url) = spawn_server(store.path(), addr, &["-p", "-1"], &options, &log);
        Some(Server {
            child,
            url,
            _store: store,
            addr: addr.to_string(),
            options,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines of its log that contain `what`, so far.
    pub fn logged(&self, what: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(what)).cloned().collect()
    }

    /// Stops the server (SIGTERM: it shuts down cleanly), waits for it, and
    /// starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        // SAFETY: kill(2) of our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap();
        let port = self.url.rsplit(':').next().unwrap().to_string();
        let (child, url) = spawn_server(
            self._store.path(),
            &self.addr,
            &["-p", &port],
            &self.options,
            &self.log,
        );
        assert_eq!(url, self.url);
        self.child = child;
    }

    /// The job's task queue: tasks not yet given out, given out and not
    /// acked, and messages still in the stream.
    /// Whether this server takes a finished call's results away at once
    /// (2.10.11 or later: the driver purges by subject); an older one keeps
    /// them until they age out (see brood-cluster's `cleanup`).
    pub fn drops_results_at_the_end(&self) -> bool {
        let v: Vec<u64> = self
            .version()
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        v >= vec![2, 10, 11]
    }

    /// The server's version, as it tells its clients.
    pub fn version(&self) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = async_nats::connect(&self.url).await.unwrap();
            client.server_info().version
        })
    }

    pub fn queue_state(&self, job: &str) -> (u64, usize, u64) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let js = async_nats::jetstream::new(async_nats::connect(&self.url).await.unwrap());
            let mut stream = js.get_stream(format!("BROOD_{job}_TASKS")).await.unwrap();
            let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                stream.get_consumer("agents").await.unwrap();
            let c = consumer.info().await.unwrap().clone();
            let s = stream.info().await.unwrap().state.messages;
            (c.num_pending, c.num_ack_pending, s)
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent: this test binary again, running `agent_role` with
/// `BROOD_AGENT` set. SIGKILLed and reaped on drop (its workers die with it).
pub struct AgentProc {
    child: Child,
    done: bool,
}

impl AgentProc {
    pub fn start(url: &str, job: &str, workers: usize, env: &[(&str, &str)]) -> AgentProc {
        AgentProc::start_exe(&std::env::current_exe().unwrap(), url, job, workers, env)
    }

    /// An agent from another executable file (a copy of this one).
    pub fn start_exe(
        exe: &Path,
        url: &str,
        job: &str,
        workers: usize,
        env: &[(&str, &str)],
    ) -> AgentProc {
        AgentProc::spawn(agent_command(exe, url, job, workers, env))
    }

    /// An agent (this test binary) in the network namespace bound at
    /// `netns` (`/run/netns/NAME`): it joins it between fork and exec.
    pub fn start_in_netns(
        netns: &Path,
        url: &str,
        job: &str,
        workers: usize,
        env: &[(&str, &str)],
    ) -> AgentProc {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let ns = std::fs::File::open(netns).unwrap();
        let mut cmd = agent_command(&std::env::current_exe().unwrap(), url, job, workers, env);
        // SAFETY: setns(2) is async-signal-safe and only reads the
        // descriptor, which `ns` keeps open until the spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            })
        };
        AgentProc::spawn(cmd)
    }

    /// An agent (this test binary) leading a process group of its own,
    /// which its workers join: [`AgentProc::kill_group`] ends them all.
    pub fn start_group(url: &str, job: &str, workers: usize, env: &[(&str, &str)]) -> AgentProc {
        use std::os::unix::process::CommandExt;
        let mut cmd = agent_command(&std::env::current_exe().unwrap(), url, job, workers, env);
        cmd.process_group(0);
        AgentProc::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> AgentProc {
        AgentProc {
            child: cmd.spawn().unwrap(),
            done: false,
        }
    }

    /// SIGKILL to the agent's whole process group (one `kill(2)`: the
    /// agent and its workers at once), and reap the agent. Its workers,
    /// reparented to this process, are reaped by [`Family::reap_dead`].
    pub fn kill_group(&mut self) {
        if !self.done {
            // SAFETY: kill(2) of the group our own unreaped child leads
            // (its pid cannot be reused before we reap it). ESRCH: none of
            // the group is left.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
            self.done = true;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs (not reaped, not a zombie).
    pub fn running(&mut self) -> bool {
        if !self.done && self.child.try_wait().unwrap().is_some() {
            self.done = true;
        }
        !self.done
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.done = true;
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The command of an agent: `exe` running `agent_role` with `BROOD_AGENT`
/// set.
fn agent_command(
    exe: &Path,
    url: &str,
    job: &str,
    workers: usize,
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "agent_role",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("BROOD_AGENT", url)
    .env("BROOD_AGENT_JOB", job)
    .env("BROOD_AGENT_WORKERS", workers.to_string())
    .envs(env.iter().copied())
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    cmd
}

/// This test process as the subreaper of everything it starts, so that an
/// agent's workers and fork server, orphaned when the agent dies, come back
/// to it to be reaped (they die with their parent: brood's pool policy).
pub struct Family {
    keep: Vec<u32>,
}

impl Family {
    /// Children with these pids (the server's) are left alone.
    pub fn adopt(keep: &[u32]) -> Family {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) changes only a flag of this
        // process.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
        Family {
            keep: keep.to_vec(),
        }
    }

    /// Waits for every child of ours but those kept: the orphans of dead
    /// agents, each already reparented to us when its parent's wait
    /// returned, and each with its parent-death signal on its way. Only
    /// with no agent alive: an agent's fork server is our child too.
    pub fn reap_orphans(&self) {
        loop {
            let orphans: Vec<u32> = children_of(std::process::id())
                .into_iter()
                .filter(|p| !self.keep.contains(p))
                .collect();
            if orphans.is_empty() {
                return;
            }
            for pid in orphans {
                let mut status = 0;
                // SAFETY: waitpid on a child of ours, into a local.
                unsafe { libc::waitpid(pid as i32, &mut status, 0) };
            }
        }
    }

    /// Reaps, without waiting, every child of ours that has ended (a
    /// zombie), but those kept and those in `live` (agents whose `Child`
    /// reaps them): the orphans of agents killed while others still run.
    pub fn reap_dead(&self, live: &[u32]) {
        for pid in children_of(std::process::id()) {
            if self.keep.contains(&pid) || live.contains(&pid) {
                continue;
            }
            let mut status = 0;
            // SAFETY: waitpid on a child of ours, into a local; WNOHANG
            // leaves one still running alone.
            unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
        }
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        self.reap_orphans();
    }
}

/// A process as `/proc/<pid>/stat` shows it.
pub struct Stat {
    pub pid: u32,
    /// `R`, `S`, `Z`…
    pub state: char,
    pub ppid: u32,
    pub pgid: u32,
}

/// Every process of the machine, from `/proc/<pid>/stat`.
pub fn processes() -> Vec<Stat> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp …": the name may hold anything but
        // ends at the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().take(4).collect();
        if let [state, ppid, pgid, _] = f[..]
            && let (Some(state), Ok(ppid), Ok(pgid)) =
                (state.chars().next(), ppid.parse(), pgid.parse())
        {
            out.push(Stat {
                pid,
                state,
                ppid,
                pgid,
            });
        }
    }
    out
}

/// The pids whose parent is `ppid`.
pub fn children_of(ppid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == ppid)
        .map(|p| p.pid)
        .collect()
}

/// What a test with agents needs: its server, this process as the reaper
/// of what dead agents leave, and a directory of its own. Dropped last (it
/// is made first), so every agent is gone before the reaping.
pub struct Scene {
    pub server: Server,
    pub family: Family,
    pub dir: tempfile::TempDir,
}

impl Scene {
    /// `None`, with a message, where `nats-server` is not installed.
    pub fn new() -> Option<Scene> {
        Some(Scene::of(Server::start()?))
    }

    /// With a server started otherwise (on another address, say).
    pub fn of(server: Server) -> Scene {
        let family = Family::adopt(&[server.pid()]);
        Scene {
            server,
            family,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// A file in the scene's directory, as a `String` for a task argument.
    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// A FIFO in the directory, and its read end: opened read-write, so that
    /// the open neither waits for a writer nor sees the end of the file
    /// between two of them.
    pub fn fifo(&self, name: &str) -> (String, std::fs::File) {
        let path = self.file(name);
        let status = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(status.success(), "mkfifo {path}");
        let end = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (path, end)
    }
}

/// Reads one line.
pub fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line
}

/// A copy of this test binary in `dir` whose build id differs (one byte of
/// its `.note.gnu.build-id` flipped): the same code, another build. `None`
/// where the binary has no build id (its identity is then its hash, and
/// any copy with one byte changed would do, but the note is what linkers
/// write).
pub fn other_build(dir: &Path, build: &str) -> Option<std::path::PathBuf> {
    let hex = build.strip_prefix("build-id ")?;
    let id: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let at = bytes.windows(id.len()).position(|w| w == id)?;
    bytes[at + id.len() - 1] ^= 0xff;
    let path = dir.join("other-build");
    std::fs::write(&path, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(path)
}

/// In a task: says `line` on the FIFO (one write, so two tasks' lines never
/// interleave), then never returns (its worker is killed by the test).
pub fn announce_and_park(fifo: &str, line: &str) -> ! {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
    drop(f);
    loop {
        std::thread::park();
    }
}

/// The lines of a file (none if it does not exist yet).
pub fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Appends a line to a file (a task's record of its run).
pub fn append(path: &str, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}
