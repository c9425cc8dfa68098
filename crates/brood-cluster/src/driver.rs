//! The driver: [`ClusterPool`], whose `map` publishes one task per item to
//! the job's work queue and collects one outcome per item.

use crate::alive::Beat;
use crate::error::ClusterError;
use crate::job::{AGENTS, Credentials, ITEM, TIMEOUT, Target};
use async_nats::jetstream::{self, consumer, stream};
use brood::TaskError;
use brood::remote::{decode_result, encode_task};
use futures_util::StreamExt;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// A map's reader of its results.
type Results = consumer::pull::Ordered;

/// How long the driver waits for a result before it reads them anew: a
/// reader whose server restarted may otherwise wait a minute to notice.
const QUIET: Duration = Duration::from_secs(3);

/// Settings of a [`ClusterPool`], from [`ClusterPool::builder`].
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    target: Target,
    heartbeat_timeout: Duration,
    max_deliveries: u32,
    task_timeout: Option<Duration>,
}

impl ClusterBuilder {
    /// How to log in to the server.
    pub fn credentials(&mut self, c: Credentials) -> &mut Self {
        self.target.credentials = c;
        self
    }

    /// Trust these PEM root certificates for TLS, and require TLS.
    pub fn tls_roots(&mut self, pem: impl Into<PathBuf>) -> &mut Self {
        self.target.tls_roots = Some(pem.into());
        self.target.require_tls = true;
        self
    }

    /// How long to wait for the server at connect (default 5 s).
    pub fn connect_timeout(&mut self, t: Duration) -> &mut Self {
        self.target.connect_timeout = t;
        self
    }

    /// An agent that has sent no heartbeat for a task this long is taken for
    /// dead, and the task goes to another agent (default 10 s; agents beat
    /// every third of it).
    pub fn heartbeat_timeout(&mut self, t: Duration) -> &mut Self {
        self.heartbeat_timeout = t.max(Duration::from_millis(300));
        self
    }

    /// A task given out this many times without an answer (every agent that
    /// took it died) fails with `TaskError::Failed` (default 5).
    pub fn max_deliveries(&mut self, n: u32) -> &mut Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// A task that runs longer has its worker killed by its agent and fails
    /// with `TaskError::Timeout` (as `brood::PoolBuilder::task_timeout`; it
    /// goes with each task, before an agent's own setting).
    pub fn task_timeout(&mut self, t: Duration) -> &mut Self {
        self.task_timeout = Some(t);
        self
    }

    /// Connects to the server and makes the job's streams and consumer.
    pub fn connect(&self) -> Result<ClusterPool, ClusterError> {
        self.target.check_job()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Pool(format!("cannot start the driver's runtime: {e}")))?;
        let (js, tasks, results) = rt.block_on(async {
            let client = self.target.connect().await?;
            let js = jetstream::new(client);
            let (tasks, results) = self.target.streams(&js).await?;
            self.target
                .agents_consumer(&tasks, self.heartbeat_timeout, self.max_deliveries)
                .await?;
            Ok::<_, ClusterError>((js, tasks, results))
        })?;
        Ok(ClusterPool {
            rt,
            js,
            tasks,
            results,
            target: self.target.clone(),
            max_deliveries: self.max_deliveries,
            task_timeout: self.task_timeout,
        })
    }
}

/// A pool whose workers are the agents of a job on a NATS JetStream server:
/// the local [`brood::Pool`]'s `map`, on many machines.
///
/// ```no_run
/// # brood::init();
/// fn square(x: u64) -> u64 { x * x }
/// // Was: let pool = brood::Pool::new(8)?;
/// let pool = brood_cluster::ClusterPool::connect("nats://queue.internal:4222", "nightly-etl")?;
/// let out = pool.map(square, 1..=3)?;
/// assert_eq!(out, [Ok(1), Ok(4), Ok(9)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClusterPool {
    rt: tokio::runtime::Runtime,
    js: jetstream::Context,
    tasks: stream::Stream,
    results: stream::Stream,
    target: Target,
    max_deliveries: u32,
    task_timeout: Option<Duration>,
}

impl std::fmt::Debug for ClusterPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPool")
            .field("url", &self.target.url)
            .field("job", &self.target.job)
            .finish()
    }
}

impl ClusterPool {
    /// Settings for a pool of job `job` on the server at `url`.
    pub fn builder(url: &str, job: &str) -> ClusterBuilder {
        ClusterBuilder {
            target: Target::new(url, job),
            heartbeat_timeout: Duration::from_secs(10),
            max_deliveries: 5,
            task_timeout: None,
        }
    }

    /// A pool of job `job` on the server at `url`, with default settings.
    pub fn connect(url: &str, job: &str) -> Result<ClusterPool, ClusterError> {
        ClusterPool::builder(url, job).connect()
    }

    /// `f` over every item, results in input order: [`brood::Pool::map`],
    /// run by the job's agents. Each item has its own `Result`, with the
    /// same [`TaskError`]s as on one machine; an item whose agents all died
    /// (`max_deliveries` times) fails with [`TaskError::Failed`]. The map
    /// waits for agents if there are none yet.
    ///
    /// An item runs at least once: when an agent is lost, the items it was
    /// running run again elsewhere; the driver keeps the first outcome of
    /// each. Must not be called from inside an async runtime.
    ///
    /// The outer error: `f` cannot cross (not code of the executable), or
    /// the server could not be used (a `brood::Error::Io` holding a
    /// [`ClusterError`]).
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> brood::Result<Vec<Result<R, TaskError>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let mut out: Vec<Option<Result<R, TaskError>>> = Vec::new();
        let mut tasks = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            out.push(None);
            match encode_task(f, &item) {
                Ok(t) => tasks.push((i, t)),
                // The function cannot cross: nothing can run.
                Err(e @ brood::remote::RemoteError::Crossing(_)) => {
                    return Err(ClusterError::from(e).into());
                }
                Err(e) => {
                    out[i] = Some(Err(TaskError::Failed {
                        reason: e.to_string(),
                    }))
                }
            }
        }
        let outcomes = self.rt.block_on(self.run(tasks))?;
        for (i, bytes) in outcomes {
            out[i] = Some(bytes.map_or_else(Err, |b| decode_result::<R>(&b)));
        }
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(TaskError::Failed {
                        reason: "no outcome".into(),
                    })
                })
            })
            .collect())
    }

    /// Publishes the tasks of one map and collects an outcome for each.
    async fn run(
        &self,
        tasks: Vec<(usize, Vec<u8>)>,
    ) -> Result<Vec<(usize, Result<Vec<u8>, TaskError>)>, ClusterError> {
        let client = self.js.client();
        // A unique token names the map: an inbox's last one.
        let inbox = client.new_inbox();
        let map = inbox.rsplit('.').next().unwrap_or(&inbox).to_string();
        // Agents drop the tasks of a map whose driver stopped beating.
        let _beat = Beat::start(client.clone(), &self.target, &map);
        // Before the first task goes out: the server announces a task given
        // out `max_deliveries` times (core NATS, not kept).
        let mut exhausted = client
            .subscribe(format!(
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{AGENTS}",
                self.target.tasks_stream()
            ))
            .await
            .map_err(|e| ClusterError::server("subscribe to the delivery advisories", e))?;
        let mut from = 1;
        let mut results = self.open_results(&map, from).await?;
        let total = tasks.len();
        let seq_of = self.publish(&map, tasks).await;
        let mut item_of: HashMap<u64, usize> = HashMap::new();
        let mut got: HashMap<usize, Result<Vec<u8>, TaskError>> = HashMap::new();
        for (i, seq) in seq_of {
            match seq {
                Ok(seq) => {
                    item_of.insert(seq, i);
                }
                Err(e) => {
                    got.insert(i, Err(e));
                }
            }
        }
        while got.len() < total {
            tokio::select! {
                msg = tokio::time::timeout(QUIET, results.next()) => {
                    let Ok(Some(Ok(msg))) = msg else {
                        // An error, the end, or a long quiet: the reader
                        // may have lost the server (a restart takes its
                        // consumer). Read again from the first result not
                        // yet seen; a repeat is dropped below.
                        results = self.reopen_results(&map, from).await;
                        continue;
                    };
                    if let Ok(info) = msg.info() {
                        from = info.stream_sequence + 1;
                    }
                    let item = msg.headers.as_ref()
                        .and_then(|h| h.get(ITEM))
                        .and_then(|v| v.as_str().parse::<usize>().ok());
                    // The first outcome of an item counts; a repeat (its
                    // agent was lost after answering) is dropped.
                    if let Some(i) = item.filter(|i| *i < total) {
                        got.entry(i).or_insert_with(|| Ok(msg.payload.to_vec()));
                    }
                }
                Some(adv) = exhausted.next() => {
                    if let Some(seq) = advisory_seq(&adv.payload)
                        && let Some(&i) = item_of.get(&seq)
                    {
                        got.entry(i).or_insert_with(|| Err(TaskError::Failed {
                            reason: format!(
                                "the task was given out {} times and never answered: \
                                 each agent that took it died or lost the server",
                                self.max_deliveries
                            ),
                        }));
                        let _ = self.tasks.delete_message(seq).await;
                    }
                }
            }
        }
        // What is left of this map goes: tasks still queued (none, unless an
        // item failed by its deliveries) and the results read.
        let _ = self
            .tasks
            .purge()
            .filter(self.target.tasks_subject(&map))
            .await;
        let _ = self
            .results
            .purge()
            .filter(self.target.results_subject(&map))
            .await;
        Ok(got.into_iter().collect())
    }

    /// A reader of this map's results from stream sequence `from` on.
    async fn open_results(&self, map: &str, from: u64) -> Result<Results, ClusterError> {
        let deliver_policy = if from <= 1 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            }
        };
        self.results
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: self.target.results_subject(map),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::server("read the job's results", e))?
            .messages()
            .await
            .map_err(|e| ClusterError::server("read the job's results", e))
    }

    /// [`ClusterPool::open_results`] until it succeeds (the server may be
    /// restarting; the client reconnects meanwhile).
    async fn reopen_results(&self, map: &str, from: u64) -> Results {
        loop {
            if let Ok(r) = self.open_results(map, from).await {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Publishes every task, each with its item's index and an id; returns
    /// each item's stream sequence, or why it could not be queued. A publish
    /// that fails for a while (the server restarting) is tried again with
    /// the same id, which the server takes only once, for [`REPUBLISH`].
    async fn publish(
        &self,
        map: &str,
        tasks: Vec<(usize, Vec<u8>)>,
    ) -> Vec<(usize, Result<u64, TaskError>)> {
        let subject = self.target.tasks_subject(map);
        let mut out = Vec::with_capacity(tasks.len());
        // Shared, not copied, by the tries.
        let mut todo: Vec<(usize, bytes::Bytes)> =
            tasks.into_iter().map(|(i, t)| (i, t.into())).collect();
        let give_up = tokio::time::Instant::now() + REPUBLISH;
        loop {
            let mut acks = Vec::with_capacity(todo.len());
            let mut again = Vec::new();
            for (i, task) in todo {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(ITEM, i.to_string().as_str());
                headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    format!("{map}.{i}").as_str(),
                );
                if let Some(t) = self.task_timeout {
                    headers.insert(TIMEOUT, t.as_millis().to_string().as_str());
                }
                match self
                    .js
                    .publish_with_headers(subject.clone(), headers, task.clone())
                    .await
                {
                    Ok(ack) => acks.push((i, task, ack)),
                    Err(e) if lasting(e.kind()) => out.push((i, Err(not_queued(e)))),
                    Err(e) => again.push((i, task, e.to_string())),
                }
            }
            for (i, task, ack) in acks {
                match ack.await {
                    Ok(a) => out.push((i, Ok(a.sequence))),
                    Err(e) if lasting(e.kind()) => out.push((i, Err(not_queued(e)))),
                    Err(e) => again.push((i, task, e.to_string())),
                }
            }
            if again.is_empty() {
                return out;
            }
            if tokio::time::Instant::now() >= give_up {
                out.extend(again.into_iter().map(|(i, _, e)| (i, Err(not_queued(e)))));
                return out;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            todo = again.into_iter().map(|(i, t, _)| (i, t)).collect();
        }
    }
}

/// How long the driver tries again to queue a task the server did not take.
const REPUBLISH: Duration = Duration::from_secs(30);

/// A publish error that trying again does not mend.
fn lasting(kind: async_nats::jetstream::context::PublishErrorKind) -> bool {
    use async_nats::jetstream::context::PublishErrorKind as K;
    matches!(
        kind,
        K::MaxPayloadExceeded | K::WrongLastMessageId | K::WrongLastSequence
    )
}

fn not_queued(e: impl std::fmt::Display) -> TaskError {
    TaskError::Failed {
        reason: format!("the task could not be queued on the server: {e}"),
    }
}

/// The task's stream sequence in a max-deliveries advisory.
fn advisory_seq(payload: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Advisory {
        stream_seq: u64,
    }
    serde_json::from_slice::<Advisory>(payload)
        .ok()
        .map(|a| a.stream_seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advisory_names_the_task() {
        let adv = br#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"x","timestamp":"2026-01-01T00:00:00Z","stream":"S","consumer":"agents","stream_seq":42,"deliveries":5}"#;
        assert_eq!(advisory_seq(adv), Some(42));
        assert_eq!(advisory_seq(b"{}"), None);
        assert_eq!(advisory_seq(b"garbage"), None);
    }
}
