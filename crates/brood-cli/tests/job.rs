//! `brood job` against a real `nats-server -js` on a free loopback port
//! (its own store; killed and reaped at the end): a job shown as JSON and
//! as a table, with credentials; `--watch` redrawing; a missing job or
//! server is exit status 1 naming it.

mod common;

use common::brood;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// The server to run: `BROOD_NATS_SERVER` (as brood-cluster's tests), else
/// `nats-server`.
fn server_binary() -> std::ffi::OsString {
    std::env::var_os("BROOD_NATS_SERVER").unwrap_or_else(|| "nats-server".into())
}

/// A `nats-server -js` of the test's own; killed and reaped on drop.
struct Server {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl Server {
    /// `None`, with a message, where `nats-server` is not installed.
    fn start(options: &[&str]) -> Option<Server> {
        if Command::new(server_binary())
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: nats-server is not installed; test.sh installs it with apt");
            return None;
        }
        let store = tempfile::tempdir().unwrap();
        let mut child = Command::new(server_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(store.path())
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Its log says where it listens, then that it is ready.
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let (mut url, mut line) = (None, String::new());
        while !line.contains("Server is ready") {
            line.clear();
            assert_ne!(log.read_line(&mut line).unwrap(), 0, "nats-server ended");
            if let Some(at) = line.split("Listening for client connections on ").nth(1) {
                url = Some(format!("nats://{}", at.trim()));
            }
        }
        // The rest of its log is drained, so that it never blocks writing.
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        Some(Server {
            child,
            url: url.unwrap(),
            _store: store,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn job(args: &[&str]) -> Output {
    brood().arg("job").args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_job_the_server_never_saw_exits_1_naming_it() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let out = job(&["--nats", &server.url, "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let says = stderr(&out);
    assert!(
        says.starts_with("brood job: no job \"nosuch\"") && says.contains(&server.url),
        "{says}"
    );
}

#[test]
fn no_server_exits_1_naming_its_url() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", l.local_addr().unwrap());
    drop(l);
    let out = job(&["--nats", &url, "etl"]);
    assert_eq!(out.status.code(), Some(1));
    let says = stderr(&out);
    assert!(
        says.contains("cannot connect") && says.contains(&url),
        "{says}"
    );
}

#[test]
fn a_job_shows_as_json_and_as_a_table_with_a_password() {
    let Some(server) = Server::start(&["--user", "u", "--pass", "p"]) else {
        return;
    };
    // A driver makes the job (its streams and the agents' consumer).
    let _driver = brood_cluster::ClusterPool::builder(&server.url, "etl")
        .credentials(brood_cluster::Credentials::UserPassword {
            user: "u".into(),
            password: "p".into(),
        })
        .connect()
        .unwrap();
    let login = ["--user", "u", "--password", "p", "--nats", &server.url];
    let out = job(&[&login[..], &["etl", "--json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["job"], "etl");
    for n in [
        "pending",
        "running",
        "redelivered",
        "results",
        "done",
        "failed",
    ] {
        assert_eq!(v[n], 0, "{n} in {v}");
    }
    assert_eq!(v["agents"], Value::Array(vec![]));

    let out = job(&[&login[..], &["etl"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "job etl on {}: chunks 0 pending, 0 running",
            server.url
        )),
        "{text}"
    );
    assert!(text.contains("agents: none heard"), "{text}");

    // A wrong password: refused, exit 1.
    let out = job(&[
        "--user",
        "u",
        "--password",
        "x",
        "--nats",
        &server.url,
        "etl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
}

#[test]
fn watch_prints_a_view_every_second_until_stopped() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let _driver = brood_cluster::ClusterPool::connect(&server.url, "etl").unwrap();
    let mut watch = brood()
        .args(["job", "--nats", &server.url, "etl", "--watch", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["job"], "etl");
    }
    // Still watching; Ctrl-C ends it.
    assert_eq!(watch.try_wait().unwrap(), None);
    // SAFETY: kill(2) of our own child, not yet reaped.
    unsafe { libc::kill(watch.id() as i32, libc::SIGINT) };
    let status = watch.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT));
}
