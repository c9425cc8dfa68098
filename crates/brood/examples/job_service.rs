//! A tokio service that runs jobs as child processes, each with a timeout.
//!
//! `cargo run -p brood --features tokio --example job_service`
//!
//! Jobs arrive on a channel; each runs concurrently as its own process group
//! (`Tree::Group`), its output captured with `communicate_async`. A job past
//! its timeout is SIGKILLed — its whole group, helpers included — and reported
//! with the output it had written. Each child also has `OnDrop::Kill`: if the
//! service drops a job (a task cancelled, the runtime shut down), the child
//! goes with it instead of running on unowned.

use brood::{Command, Error, OnDrop, Stdio, Tree};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct Job {
    name: &'static str,
    script: &'static str,
    timeout: Duration,
}

#[derive(Debug)]
enum Outcome {
    Done { code: i32, stdout: String },
    TimedOut { partial: String },
    Failed(String),
}

async fn run(job: &Job) -> Outcome {
    let spawned = Command::new("sh")
        .args(["-c", job.script])
        .stdout(Stdio::piped())
        .tree(Tree::Group)
        .on_drop(OnDrop::Kill)
        .spawn();
    let mut p = match spawned {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    match p.communicate_async(None, Some(job.timeout)).await {
        Ok((out, _)) => Outcome::Done {
            code: p.returncode().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out).into_owned(),
        },
        Err(Error::Timeout { stdout, .. }) => {
            // The whole group, so that `sleep` under `sh` goes too.
            let _ = p.kill();
            let _ = p.child().wait_async().await;
            Outcome::TimedOut {
                partial: String::from_utf8_lossy(&stdout).into_owned(),
            }
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    brood::init();
    let (tx, mut rx) = mpsc::channel::<Job>(16);
    let service = tokio::spawn(async move {
        let mut running = tokio::task::JoinSet::new();
        while let Some(job) = rx.recv().await {
            running.spawn(async move {
                let started = Instant::now();
                let outcome = run(&job).await;
                (job.name, started.elapsed(), outcome)
            });
        }
        let mut report = Vec::new();
        while let Some(done) = running.join_next().await {
            report.push(done.expect("a job task panicked"));
        }
        report
    });

    let jobs = [
        Job {
            name: "greet",
            script: "echo hello",
            timeout: Duration::from_secs(2),
        },
        Job {
            name: "fail",
            script: "echo trying; exit 3",
            timeout: Duration::from_secs(2),
        },
        Job {
            name: "hang",
            script: "echo started; sleep 30 & wait",
            timeout: Duration::from_millis(300),
        },
        Job {
            name: "count",
            script: "seq 1 3",
            timeout: Duration::from_secs(2),
        },
    ];
    for job in jobs {
        tx.send(job).await.expect("the service stopped");
    }
    drop(tx);

    let mut report = service.await.expect("the service panicked");
    report.sort_by_key(|(name, ..)| *name);
    let mut ok = true;
    for (name, took, outcome) in &report {
        println!("{name:<6} {took:>10.1?}  {outcome:?}");
        if let Outcome::Failed(why) = outcome {
            eprintln!("job_service: {name} could not run: {why}");
        }
        ok &= match (*name, outcome) {
            ("greet", Outcome::Done { code: 0, stdout }) => stdout == "hello\n",
            ("fail", Outcome::Done { code: 3, .. }) => true,
            ("hang", Outcome::TimedOut { partial }) => partial == "started\n",
            ("count", Outcome::Done { code: 0, stdout }) => stdout == "1\n2\n3\n",
            _ => false,
        };
    }
    if !ok || report.len() != 4 {
        eprintln!("job_service: unexpected outcomes");
        std::process::exit(1);
    }
}
