//! The agent: pulls a job's tasks from the server and runs them on a local
//! brood [`Pool`], one task per free worker, sending a heartbeat for each
//! while it runs, then its outcome, then the ack.
//!
//! A task whose worker dies (segfault, abort, `exit`, timeout) is answered
//! like any other, with its `TaskError`: the agent goes on, the task is not
//! run again. A task whose *agent* dies is not acked: after the ack wait
//! (the heartbeat timeout) the server gives it to another agent. So a task
//! runs at least once, and the driver keeps one outcome per item.

use crate::alive::Drivers;
use crate::error::ClusterError;
use crate::job::{AGENTS, Credentials, ITEM, TIMEOUT, Target};
use async_nats::jetstream::{self, AckKind, consumer};
use brood::{CallOptions, Pool};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long one pull for tasks waits for them on the server.
const PULL: Duration = Duration::from_secs(1);

/// How often an agent reads the consumer's settings again.
const REREAD: Duration = Duration::from_secs(30);

/// An agent of one job: this same executable, run on each machine, serving
/// the tasks of [`ClusterPool`](crate::ClusterPool)s of that job name.
///
/// ```no_run
/// # brood::init();
/// // On each machine, at the top of main (or see `agent_from_env`):
/// brood_cluster::Agent::new("nats://queue.internal:4222", "nightly-etl")
///     .workers(8)
///     .run()?;
/// # Ok::<(), brood_cluster::ClusterError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Agent {
    target: Target,
    workers: Option<usize>,
    task_timeout: Option<Duration>,
}

impl Agent {
    /// An agent for job `job` on the server at `url`.
    pub fn new(url: &str, job: &str) -> Agent {
        Agent {
            target: Target::new(url, job),
            workers: None,
            task_timeout: None,
        }
    }

    /// How to log in to the server.
    pub fn credentials(&mut self, c: Credentials) -> &mut Self {
        self.target.credentials = c;
        self
    }

    /// Local workers (default: one per CPU).
    pub fn workers(&mut self, n: usize) -> &mut Self {
        self.workers = Some(n.max(1));
        self
    }

    /// A task that runs longer has its worker killed and fails with
    /// `TaskError::Timeout` (as `PoolBuilder::task_timeout`).
    pub fn task_timeout(&mut self, t: Duration) -> &mut Self {
        self.task_timeout = Some(t);
        self
    }

    /// Runs the agent until its connection cannot go on; returns only with
    /// the reason.
    pub fn run(&self) -> Result<(), ClusterError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Pool(format!("cannot start the agent's runtime: {e}")))?;
        let workers = self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let pool = Pool::new(workers).map_err(|e| ClusterError::Pool(e.to_string()))?;
        let result = rt.block_on(self.serve(&pool, workers));
        let _ = pool.terminate();
        result
    }

    async fn serve(&self, pool: &Pool, workers: usize) -> Result<(), ClusterError> {
        let client = self.target.connect().await?;
        let drivers = Drivers::listen(&client, &self.target).await?;
        let js = jetstream::new(client);
        let (tasks, _) = self.target.streams(&js).await?;
        // The driver makes the consumer with its settings; an agent that
        // comes first waits for it.
        let mut consumer: consumer::PullConsumer = loop {
            match tasks.get_consumer(AGENTS).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        let free = Arc::new(Semaphore::new(workers));
        let mut ack_wait = consumer
            .info()
            .await
            .map_or(Duration::from_secs(10), |i| i.config.ack_wait);
        let mut read_at = Instant::now();
        loop {
            // As many tasks as there are free workers, and no more: a task
            // waiting here is one another agent could be running.
            let first = Arc::clone(&free)
                .acquire_owned()
                .await
                .map_err(|e| ClusterError::Pool(e.to_string()))?;
            let mut permits = vec![first];
            while let Ok(p) = Arc::clone(&free).try_acquire_owned() {
                permits.push(p);
            }
            // The heartbeat period is a third of the ack wait, read now and
            // then, so that a driver's new setting reaches running agents
            // without a request per pull.
            if read_at.elapsed() >= REREAD
                && let Ok(info) = consumer.info().await
            {
                ack_wait = info.config.ack_wait;
                read_at = Instant::now();
            }
            let batch = consumer
                .batch()
                .max_messages(permits.len())
                .expires(PULL)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(_) => {
                    // The server is away (restarting, say): the client
                    // reconnects; try again shortly.
                    drop(permits);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            // The pull ends at its expiry, or if the server never says so
            // (it restarted meanwhile, say) soon after: a pull left waiting
            // would keep this agent's free workers from all work.
            let deadline = tokio::time::Instant::now() + PULL * 2;
            while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, batch.next()).await {
                let Ok(msg) = msg else { break };
                if self
                    .target
                    .map_of(msg.subject.as_str())
                    .is_some_and(|m| drivers.gone(m))
                {
                    // Nobody will read its result: never give it out again.
                    let _ = msg.ack_with(AckKind::Term).await;
                    continue;
                }
                let Some(permit) = permits.pop() else { break };
                // The driver's timeout for the task, else the agent's.
                let timeout = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(TIMEOUT))
                    .and_then(|v| v.as_str().parse().ok())
                    .map(Duration::from_millis)
                    .or(self.task_timeout);
                let call = match timeout {
                    Some(t) => pool.with(CallOptions::new().timeout(t)),
                    None => pool.with(CallOptions::new()),
                };
                let handle = match call.submit_encoded(&msg.payload) {
                    Ok(h) => h,
                    Err(e) => return Err(ClusterError::Pool(e.to_string())),
                };
                let js = js.clone();
                let target = self.target.clone();
                tokio::spawn(async move {
                    answer(&js, &target, msg, handle, ack_wait / 3).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Waits for a task's outcome with heartbeats, publishes it, then acks the
/// task. A step that fails leaves the task unacked: the server gives it out
/// again after the ack wait.
async fn answer(
    js: &jetstream::Context,
    target: &Target,
    msg: jetstream::Message,
    mut handle: brood::remote::EncodedHandle,
    beat: Duration,
) {
    let beat = beat.max(Duration::from_millis(100));
    let outcome = loop {
        tokio::select! {
            outcome = &mut handle => break outcome,
            _ = tokio::time::sleep(beat) => {
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        }
    };
    let (Some(map), Some(item)) = (
        target.map_of(msg.subject.as_str()),
        msg.headers.as_ref().and_then(|h| h.get(ITEM)),
    ) else {
        // Not a task of ours: never give it out again.
        let _ = msg.ack_with(AckKind::Term).await;
        return;
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(ITEM, item.as_str());
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("{map}.{}", item.as_str()).as_str(),
    );
    let published = match js
        .publish_with_headers(target.results_subject(map), headers, outcome.into())
        .await
    {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    if published {
        // A lost ack makes the task run again, and the driver drops the
        // repeat: no need to wait for the server's confirmation.
        let _ = msg.ack().await;
    }
}

/// Becomes an agent if the environment asks for one, at the top of `main`:
/// with `BROOD_AGENT=nats://host:4222` (and `BROOD_AGENT_JOB=name`), runs
/// [`Agent::run`] and exits the process when it ends (status 1, with the
/// reason on stderr); without `BROOD_AGENT`, returns at once. Optional:
/// `BROOD_AGENT_WORKERS` (default one per CPU), `BROOD_AGENT_USER` and
/// `BROOD_AGENT_PASSWORD`, `BROOD_AGENT_TOKEN`, `BROOD_AGENT_CREDS` (a
/// `.creds` file).
///
/// ```no_run
/// brood::init_before_main!();
///
/// fn main() {
///     brood_cluster::agent_from_env();
///     // ... the driver's code: ClusterPool::connect(...)?.map(...)
/// }
/// ```
pub fn agent_from_env() {
    let Some(url) = std::env::var_os("BROOD_AGENT") else {
        return;
    };
    let code = match agent_of_env(&url.to_string_lossy()).and_then(|a| a.run()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("brood agent: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn agent_of_env(url: &str) -> Result<Agent, ClusterError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let job = var("BROOD_AGENT_JOB").ok_or_else(|| {
        ClusterError::Environment(
            "BROOD_AGENT is set but BROOD_AGENT_JOB (the job's name) is not".into(),
        )
    })?;
    let mut agent = Agent::new(url, &job);
    if let Some(n) = var("BROOD_AGENT_WORKERS") {
        let n = n.parse().map_err(|_| {
            ClusterError::Environment(format!("BROOD_AGENT_WORKERS={n:?} is not a number"))
        })?;
        agent.workers(n);
    }
    if let (Some(user), Some(password)) = (var("BROOD_AGENT_USER"), var("BROOD_AGENT_PASSWORD")) {
        agent.credentials(Credentials::UserPassword { user, password });
    } else if let Some(t) = var("BROOD_AGENT_TOKEN") {
        agent.credentials(Credentials::Token(t));
    } else if let Some(p) = var("BROOD_AGENT_CREDS") {
        agent.credentials(Credentials::CredsFile(p.into()));
    }
    Ok(agent)
}
