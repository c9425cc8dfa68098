//! The agent: pulls a job's chunks of tasks from the server and runs each
//! on a local brood [`Pool`] as one map (a one-item chunk as a submitted
//! task, so that several run side by side), sending a heartbeat for each
//! while it runs, then its outcomes, then the ack.
//!
//! A task whose worker dies (segfault, abort, `exit`, timeout) is answered
//! like any other, with its `TaskError`: the agent goes on, the task is not
//! run again. A task whose *agent* dies is not acked: after the ack wait
//! (the heartbeat timeout) the server gives it to another agent. So a task
//! runs at least once, and the driver keeps one outcome per item.

use crate::alive::Drivers;
use crate::error::ClusterError;
use crate::job::{
    AGENTS, COUNT, Credentials, INIT, ITEM, SOFT_TIMEOUT, TIMEOUT, Target, chunk_range,
};
use crate::pools::Pools;
use crate::presence::{Presence, Running};
use async_nats::StatusCode;
use async_nats::jetstream::consumer::pull::BatchConfig;
use async_nats::jetstream::{self, AckKind, consumer};
use brood::remote::{Withdraw, chunk_shares, failed_outcomes};
use brood::{CallOptions, Pool, TaskError};
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long one pull for tasks waits for them on the server.
const PULL: Duration = Duration::from_secs(1);

/// How often a running chunk looks whether its driver withdrew it.
const WATCH: Duration = Duration::from_millis(100);

/// How often an agent reads the consumer's settings again.
const REREAD: Duration = Duration::from_secs(30);

/// A chunk's items go to the agent's workers in this many shares a worker
/// (a local map's default is four): the call was cut into chunks to spread
/// it already, and each share is a trip to a worker and back, whose wakeups
/// made a quarter of an agent's time on tiny items.
const SHARES_PER_WORKER: usize = 2;

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
        let pool = Arc::new(Pool::new(workers).map_err(|e| ClusterError::Pool(e.to_string()))?);
        let result = rt.block_on(self.serve(Arc::clone(&pool), workers));
        // The chunks still running end with the runtime's tasks.
        drop(rt);
        let _ = pool.terminate();
        result
    }

    async fn serve(&self, plain: Arc<Pool>, workers: usize) -> Result<(), ClusterError> {
        let client = self.target.connect().await?;
        let presence = Presence::start(&client, &self.target, workers);
        let drivers = Arc::new(Drivers::listen(&client, &self.target).await?);
        let js = jetstream::new(client);
        let (tasks, _) = self.target.streams(&js).await?;
        let inits = self.target.inits(&js).await?;
        let data_store = self.target.data_store(&js).await?;
        let pools = Arc::new(Pools::new(
            plain,
            workers,
            inits,
            data_store,
            self.target.clone(),
        ));
        // The driver makes the consumer with its settings; an agent that
        // comes first waits for it.
        let mut consumer: consumer::PullConsumer = loop {
            match tasks.get_consumer(AGENTS).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        // One chunk in hand per worker at most: chunks of many items take
        // the whole local pool in turn (the next one waits there, ready),
        // one-item chunks run side by side. No more: a chunk in hand when
        // the agent dies counts a delivery, run or not.
        let free = Arc::new(Semaphore::new(workers));
        // One inbox for every pull, kept: a subscription per pull would
        // cost the server two more operations per chunk.
        let inbox: async_nats::Subject = js.client().new_inbox().into();
        let mut replies = js
            .client()
            .subscribe(inbox.clone())
            .await
            .map_err(|e| ClusterError::server("subscribe to the agent's inbox", e))?;
        let taker = Arc::new(Taker {
            js,
            target: self.target.clone(),
            pools,
            drivers,
            presence,
            task_timeout: self.task_timeout,
        });
        let mut ack_wait = consumer
            .info()
            .await
            .map_or(Duration::from_secs(10), |i| i.config.ack_wait);
        let mut read_at = Instant::now();
        // The pulls out, oldest first, each with its slot and the time by
        // which the server answers it (a chunk, or "expired").
        let mut asked: VecDeque<(tokio::time::Instant, OwnedSemaphorePermit)> = VecDeque::new();
        loop {
            let oldest = asked.front().map(|(by, _)| *by);
            tokio::select! {
                // Each free slot asks on its own, at once: a pull's round
                // trip for one slot overlaps another's run.
                permit = Arc::clone(&free).acquire_owned() => {
                    let permit = permit.map_err(|e| ClusterError::Pool(e.to_string()))?;
                    // The heartbeat period is a third of the ack wait, read
                    // now and then, so that a driver's new setting reaches
                    // running agents without a request per pull.
                    if read_at.elapsed() >= REREAD
                        && let Ok(info) = consumer.info().await
                    {
                        ack_wait = info.config.ack_wait;
                        read_at = Instant::now();
                    }
                    let pull = BatchConfig {
                        batch: 1,
                        expires: Some(PULL),
                        ..Default::default()
                    };
                    match consumer.request_batch(pull, inbox.clone()).await {
                        Ok(()) => asked.push_back((tokio::time::Instant::now() + PULL * 2, permit)),
                        Err(_) => {
                            // The server is away (restarting, say): the
                            // client reconnects; try again shortly.
                            drop(permit);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                reply = replies.next() => {
                    let Some(reply) = reply else {
                        return Err(ClusterError::Pool("the connection to the server ended".into()));
                    };
                    match reply.status {
                        None | Some(StatusCode::OK) => {
                            // A chunk: it takes the oldest pull's slot (the
                            // server answers pulls in order). One that came
                            // after its pull was given up runs all the same.
                            let slot = asked.pop_front().map(|(_, p)| p);
                            let msg = jetstream::Message {
                                message: reply,
                                context: taker.js.clone(),
                            };
                            Arc::clone(&taker).answer(msg, slot, ack_wait / 3);
                        }
                        Some(StatusCode::IDLE_HEARTBEAT) => {}
                        // Expired, or refused: the slot asks again.
                        Some(_) => drop(asked.pop_front()),
                    }
                }
                // Unanswered past its expiry: the server lost the pull (it
                // restarted, say); a pull left waiting would keep its slot
                // from all work.
                () = tokio::time::sleep_until(oldest.unwrap_or_else(tokio::time::Instant::now)), if oldest.is_some() => {
                    drop(asked.pop_front());
                }
            }
        }
    }
}

/// What answering the chunks an agent takes needs.
struct Taker {
    js: jetstream::Context,
    target: Target,
    pools: Arc<Pools>,
    drivers: Arc<Drivers>,
    presence: Presence,
    task_timeout: Option<Duration>,
}

impl Taker {
    /// Answers a chunk taken, in a task of its own; its slot is free again
    /// once it has run.
    fn answer(
        self: Arc<Self>,
        msg: jetstream::Message,
        slot: Option<OwnedSemaphorePermit>,
        beat: Duration,
    ) {
        let Some(map) = self.target.map_of(msg.subject.as_str()).map(str::to_string) else {
            // Not a task of ours: never give it out again.
            tokio::spawn(async move {
                let _ = msg.ack_with(AckKind::Term).await;
            });
            return;
        };
        if self.drivers.gone(&map) {
            // Nobody will read its result: never give it out again.
            tokio::spawn(async move {
                let _ = msg.ack_with(AckKind::Term).await;
            });
            return;
        }
        let job = Job {
            js: self.js.clone(),
            target: self.target.clone(),
            pools: Arc::clone(&self.pools),
            drivers: Arc::clone(&self.drivers),
            opts: self.options(&msg),
            beat,
            running: self.presence.running(&self.target, &msg),
            map,
        };
        tokio::spawn(job.answer(msg, slot));
    }

    /// The options of a chunk: the driver's timeouts for it, else the
    /// agent's.
    fn options(&self, msg: &jetstream::Message) -> CallOptions {
        let ms = |name: &str| {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .and_then(|v| v.as_str().parse().ok())
                .map(Duration::from_millis)
        };
        let mut opts = CallOptions::new();
        if let Some(t) = ms(TIMEOUT).or(self.task_timeout) {
            opts = opts.timeout(t);
        }
        if let Some(t) = ms(SOFT_TIMEOUT) {
            opts = opts.soft_timeout(t);
        }
        opts
    }
}

/// What answering one chunk needs.
struct Job {
    js: jetstream::Context,
    target: Target,
    pools: Arc<Pools>,
    drivers: Arc<Drivers>,
    opts: CallOptions,
    beat: Duration,
    running: Running,
    map: String,
}

impl Job {
    /// Runs a chunk on the local pool with heartbeats, publishes its
    /// outcomes, then acks it. A chunk whose driver is gone or withdrew it
    /// is withdrawn (its workers killed) and dropped. A step that fails
    /// leaves it unacked: the server gives it out again after the ack wait.
    async fn answer(self, msg: jetstream::Message, permit: Option<OwnedSemaphorePermit>) {
        let Some((first, count)) = chunk_range(msg.headers.as_ref()) else {
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        };
        let Ok(withdraw) = Withdraw::new().map(Arc::new) else {
            // No descriptor for it: leave the chunk to another agent.
            return;
        };
        let beat = self.beat.max(Duration::from_millis(100));
        let init = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(INIT))
            .map(|v| v.as_str().to_string());
        // A pool with the chunk's initializer may take a while to make (its
        // workers run it): the chunk's heartbeats go on meanwhile.
        let pools = Arc::clone(&self.pools);
        let (opts, payload, w) = (
            self.opts
                .clone()
                .chunk_size(count.div_ceil(SHARES_PER_WORKER * self.pools.workers())),
            msg.payload.clone(),
            Arc::clone(&withdraw),
        );
        let mut run = tokio::spawn(async move {
            let ready = async {
                let ids = chunk_shares(&payload).unwrap_or_default();
                Ok::<_, String>((pools.get(init.as_deref()).await?, pools.shared(&ids).await?))
            };
            let (pool, shared) = match ready.await {
                Ok(x) => x,
                Err(why) => {
                    return Ok(failed_outcomes(count, &TaskError::Failed { reason: why }));
                }
            };
            if count == 1 {
                // Awaited here, not waited for on a blocking thread: the hop
                // there and back was a good part of a one-item chunk's cost.
                // The tick polls it again, so that a withdrawal is seen.
                let running = pool.with(opts).submit_chunk(&payload, Some(&w), &shared)?;
                tokio::pin!(running);
                let mut tick = tokio::time::interval(WATCH);
                loop {
                    tokio::select! {
                        outcomes = &mut running => return Ok(outcomes),
                        _ = tick.tick() => {}
                    }
                }
            }
            tokio::task::spawn_blocking(move || {
                pool.with(opts)
                    .map_encoded_shared(&payload, Some(&w), &shared)
            })
            .await
            .unwrap_or_else(|e| {
                Ok(failed_outcomes(
                    count,
                    &TaskError::Failed {
                        reason: format!("the agent's thread running it failed: {e}"),
                    },
                ))
            })
        });
        let mut beat_at = Instant::now();
        let outcomes = loop {
            tokio::select! {
                out = &mut run => break out,
                _ = tokio::time::sleep(WATCH) => {
                    if self.drivers.gone(&self.map) {
                        withdraw.fire();
                    }
                    if beat_at.elapsed() >= beat {
                        let _ = msg.ack_with(AckKind::Progress).await;
                        beat_at = Instant::now();
                    }
                }
            }
        };
        // Run: the next chunk may be pulled while this one's outcomes go.
        drop(permit);
        if withdraw.fired() {
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
        let outcomes = match outcomes {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => failed_outcomes(
                count,
                &TaskError::Failed {
                    reason: format!("the agent's pool could not run it: {e}"),
                },
            ),
            // The blocking task panicked: leave the chunk to another agent.
            Err(_) => return,
        };
        let limit = self.js.client().server_info().max_payload;
        let outcomes = if outcomes.len() > limit {
            failed_outcomes(
                count,
                &TaskError::Failed {
                    reason: format!(
                        "the results of its chunk are {} bytes encoded, over the server's \
                         payload limit of {limit} bytes (nats-server's max_payload): use a \
                         smaller chunk_size, return less, or raise the limit",
                        outcomes.len()
                    ),
                },
            )
        } else {
            outcomes
        };
        let outcomes = bytes::Bytes::from(outcomes);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(ITEM, first.to_string().as_str());
        headers.insert(COUNT, count.to_string().as_str());
        // The task's own id names its outcomes: a redelivery of it answers
        // under the same id (the server keeps one), a task sent again (a
        // retry, a resumed call) under its new one.
        let task_id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map_or_else(
                || format!("{}.{first}.{count}", self.map),
                |v| v.as_str().to_string(),
            );
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{task_id}.out").as_str(),
        );
        let published = match self
            .js
            .publish_with_headers(
                self.target.results_subject(&self.map),
                headers,
                outcomes.clone(),
            )
            .await
        {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        // Counted once they are on their way (a pass over them).
        self.running.answered(&outcomes);
        if published {
            // A lost ack makes the chunk run again, and the driver drops the
            // repeat: no need to wait for the server's confirmation.
            let _ = msg.ack().await;
        }
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
