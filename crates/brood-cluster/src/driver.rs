//! The driver: [`ClusterPool`], the job's connection and settings, and the
//! server-side steps its calls share (reading results, withdrawing and
//! forgetting a call). The calls themselves are in `call` and `run`.

use crate::alive;
use crate::call::ClusterCall;
use crate::cleanup;
use crate::error::ClusterError;
use crate::job::{Credentials, Target};
use crate::presence::Census;
use async_nats::jetstream::{self, consumer, stream};
use brood::CallOptions;
use brood::remote::{RemoteError, encode_initializer};
use serde::{Serialize, de::DeserializeOwned};
use std::path::PathBuf;
use std::time::Duration;

/// A map's reader of its results.
pub(crate) type Results = consumer::pull::Ordered;

/// Settings of a [`ClusterPool`], from [`ClusterPool::builder`].
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    target: Target,
    heartbeat_timeout: Duration,
    max_deliveries: u32,
    task_timeout: Option<Duration>,
    init: Option<Result<Vec<u8>, RemoteError>>,
    quiet: bool,
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

    /// `f(arg)` makes the state of every worker of every agent, for
    /// [`ClusterPool::map_with`] and the other `_with` calls, as
    /// [`brood::PoolBuilder::initializer`] does on one machine. It is
    /// kept on the server; each agent makes a pool with it when a chunk
    /// needs it (and keeps the last one).
    pub fn initializer<I, S>(&mut self, f: fn(I) -> S, arg: I) -> &mut Self
    where
        I: Serialize + DeserializeOwned + 'static,
        S: 'static,
    {
        self.init = Some(encode_initializer(f, &arg));
        self
    }

    /// Says nothing on stderr. By default a call that has waited 3 s with
    /// its chunks queued and no agent taking any says so there (naming the
    /// job, and how to start an agent), and again when agents come.
    pub fn quiet(&mut self, quiet: bool) -> &mut Self {
        self.quiet = quiet;
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
        let init = self.init.clone().transpose()?;
        let (js, tasks, results, init_key, census) = rt.block_on(async {
            let client = self.target.connect().await?;
            let census = Census::start(&client, &self.target).await;
            let js = jetstream::new(client);
            let (tasks, results) = self.target.streams(&js).await?;
            self.target
                .agents_consumer(&tasks, self.heartbeat_timeout, self.max_deliveries)
                .await?;
            let init_key = match init {
                Some(bytes) => Some(self.target.keep_initializer(&js, bytes).await?),
                None => None,
            };
            Ok::<_, ClusterError>((js, tasks, results, init_key, census))
        })?;
        let purge_by_subject = cleanup::purge_by_subject(&js.client().server_info().version);
        Ok(ClusterPool {
            rt: std::sync::Arc::new(rt),
            js,
            tasks,
            results,
            target: self.target.clone(),
            max_deliveries: self.max_deliveries,
            task_timeout: self.task_timeout,
            init_key,
            quiet: self.quiet,
            census: std::sync::Arc::new(census),
            purge_by_subject,
            cleanup: std::sync::Arc::default(),
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
    pub(crate) rt: std::sync::Arc<tokio::runtime::Runtime>,
    pub(crate) js: jetstream::Context,
    pub(crate) tasks: stream::Stream,
    pub(crate) results: stream::Stream,
    pub(crate) target: Target,
    pub(crate) max_deliveries: u32,
    pub(crate) task_timeout: Option<Duration>,
    /// The key of the initializer kept on the server, if there is one.
    pub(crate) init_key: Option<String>,
    /// Nothing on stderr (see `ClusterBuilder::quiet`).
    pub(crate) quiet: bool,
    /// The job's agents' workers, for the default chunk size.
    pub(crate) census: std::sync::Arc<Census>,
    /// Whether the server purges by subject safely (see `cleanup`).
    pub(crate) purge_by_subject: bool,
    /// Purges of ended calls still under way (see `forget_soon`).
    pub(crate) cleanup: std::sync::Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
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
            init: None,
            quiet: false,
        }
    }

    /// A pool of job `job` on the server at `url`, with default settings.
    pub fn connect(url: &str, job: &str) -> Result<ClusterPool, ClusterError> {
        ClusterPool::builder(url, job).connect()
    }

    /// One call with these options (a timeout, a soft timeout, a chunk size,
    /// a progress callback), as [`brood::Pool::with`].
    pub fn with(&self, opts: CallOptions) -> ClusterCall<'_> {
        ClusterCall::new(self, opts)
    }

    /// Another handle on the same connection and runtime (for a call on
    /// another thread).
    pub(crate) fn share(&self) -> ClusterPool {
        ClusterPool {
            rt: std::sync::Arc::clone(&self.rt),
            js: self.js.clone(),
            tasks: self.tasks.clone(),
            results: self.results.clone(),
            target: self.target.clone(),
            max_deliveries: self.max_deliveries,
            task_timeout: self.task_timeout,
            init_key: self.init_key.clone(),
            quiet: self.quiet,
            census: std::sync::Arc::clone(&self.census),
            purge_by_subject: self.purge_by_subject,
            cleanup: std::sync::Arc::clone(&self.cleanup),
        }
    }

    /// A reader of this map's results from stream sequence `from` on.
    pub(crate) async fn open_results(&self, map: &str, from: u64) -> Result<Results, ClusterError> {
        open_results(self.results.clone(), self.target.results_subject(map), from).await
    }

    /// [`ClusterPool::open_results`] from the first result, begun now on
    /// the runtime: the server makes the reader while the caller encodes
    /// the call's first chunks.
    pub(crate) fn open_results_soon(
        &self,
        map: &str,
    ) -> tokio::task::JoinHandle<Result<Results, ClusterError>> {
        self.rt.spawn(open_results(
            self.results.clone(),
            self.target.results_subject(map),
            1,
        ))
    }

    /// [`ClusterPool::open_results`] until it succeeds (the server may be
    /// restarting; the client reconnects meanwhile).
    pub(crate) async fn reopen_results(&self, map: &str, from: u64) -> Results {
        loop {
            if let Ok(r) = self.open_results(map, from).await {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Withdraws a call: its chunks still queued go (`queued`: the
    /// sequences of those it knows, see `cleanup`), and the agents running
    /// the others are told to kill their workers and to drop any of its
    /// chunks they take (see `alive`).
    pub(crate) async fn withdraw(&self, map: &str, queued: Vec<u64>) {
        let subject = self.target.tasks_subject(map);
        cleanup::remove(&self.tasks, subject, queued, self.purge_by_subject).await;
        alive::withdraw(self.js.client(), &self.target, map).await;
    }

    /// What is left of a call on the server goes: its results, and its
    /// chunks still queued (none, unless it ended early: then it was
    /// withdrawn). On a server before 2.10.11 nothing is purged (see
    /// `cleanup`): the results age out (`RESULTS_KEPT`), and deleting them
    /// one by one cost more than the calls (a delete request a result).
    pub(crate) async fn forget(&self, map: &str) {
        self.forgetting(map).await;
    }

    /// [`ClusterPool::forget`] while the caller goes on: the next call
    /// need not wait for the server's two purges. The pool waits for them
    /// when it is dropped. Only for a call whose name no later call takes
    /// (a purge by name could meet a later call's results).
    pub(crate) fn forget_soon(&self, map: &str) {
        if !self.purge_by_subject {
            return;
        }
        let mut pending = self.cleanup.lock().unwrap_or_else(|e| e.into_inner());
        while pending.try_join_next().is_some() {}
        pending.spawn_on(self.forgetting(map), self.rt.handle());
    }

    fn forgetting(&self, map: &str) -> impl Future<Output = ()> + Send + 'static {
        let (tasks, results) = (self.tasks.clone(), self.results.clone());
        let (tasks_subject, results_subject) = (
            self.target.tasks_subject(map),
            self.target.results_subject(map),
        );
        let by_subject = self.purge_by_subject;
        async move {
            if by_subject {
                let _ = tasks.purge().filter(tasks_subject).await;
                let _ = results.purge().filter(results_subject).await;
            }
        }
    }
}

impl Drop for ClusterPool {
    fn drop(&mut self) {
        // The purges of calls that ended (see `forget_soon`), so that
        // nothing of them is left on the server; bounded, should it be away.
        let mut pending =
            std::mem::take(&mut *self.cleanup.lock().unwrap_or_else(|e| e.into_inner()));
        if !pending.is_empty() {
            // The timer is made inside: it needs the runtime.
            self.rt.block_on(async move {
                let all = async { while pending.join_next().await.is_some() {} };
                let _ = tokio::time::timeout(Duration::from_secs(2), all).await;
            });
        }
    }
}

/// A reader of the results on `subject` from stream sequence `from` on.
async fn open_results(
    results: stream::Stream,
    subject: String,
    from: u64,
) -> Result<Results, ClusterError> {
    let deliver_policy = if from <= 1 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: from,
        }
    };
    results
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::server("read the job's results", e))?
        .messages()
        .await
        .map_err(|e| ClusterError::server("read the job's results", e))
}
