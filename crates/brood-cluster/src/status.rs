//! A job seen from outside, for `brood job`: its queue from the server's
//! stream and consumer info, its agents from their records
//! (`crate::presence`), its live maps from their drivers' beats
//! (`crate::alive`). Reading it changes nothing on the server.

use crate::error::ClusterError;
use crate::job::{AGENTS, Credentials, Target};
use crate::presence::{AgentRecord, subject};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::{self, ErrorCode, stream};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An agent or a driver unheard of for this long is left out: both say
/// they are there every second.
const HEARD: Duration = Duration::from_secs(3);

/// How long the server may take to answer once connected (a server that
/// went away meanwhile would leave a request waiting for its reconnection).
const ANSWER: Duration = Duration::from_secs(5);

/// `work`, or an error saying what the server did not answer in time.
async fn within<T>(
    what: &'static str,
    work: impl Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    tokio::time::timeout(ANSWER, work)
        .await
        .unwrap_or_else(|_| {
            Err(ClusterError::server(
                what,
                format!("the server did not answer within {ANSWER:?}"),
            ))
        })
}

/// A job on a server, now: its queue, its agents and its live maps.
///
/// The queue counts chunks (the server's messages: a call's items travel
/// some 24 chunks to a call); `done` and `failed` count items, adding up
/// the counters of the agents heard since each started: an agent gone takes
/// its share with it.
///
/// ```no_run
/// use brood_cluster::{Credentials, JobStatus};
/// let s = JobStatus::read("nats://127.0.0.1:4222", Credentials::None, "etl",
///                         JobStatus::LISTEN)?;
/// println!("{} chunks pending, {} items done by {} agents", s.pending, s.done, s.agents.len());
/// # Ok::<(), brood_cluster::ClusterError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobStatus {
    /// The job's name.
    pub job: String,
    /// Chunks of tasks queued and not yet given to an agent.
    pub pending: u64,
    /// Chunks given to an agent and not yet acked.
    pub running: u64,
    /// Of those, the ones given out more than once (their agent was lost).
    pub redelivered: u64,
    /// Chunks' outcomes stored, until their call ends.
    pub results: u64,
    /// Items answered by the agents heard.
    pub done: u64,
    /// Of those, the ones answered with a `TaskError`.
    pub failed: u64,
    /// The maps whose driver is beating.
    pub drivers: Vec<String>,
    /// The agents heard, by host and pid.
    pub agents: Vec<AgentRecord>,
}

impl JobStatus {
    /// How long [`JobStatus::read`] should listen to hear every agent: they
    /// publish every second.
    pub const LISTEN: Duration = Duration::from_millis(2500);

    /// Connects to the server at `url`, listens to job `job`'s agents and
    /// drivers for `listen`, and reads its queue.
    ///
    /// Errors: no server or a refusal ([`ClusterError::Connect`]), no such
    /// job on it ([`ClusterError::NoSuchJob`]), a bad job name.
    pub fn read(
        url: &str,
        credentials: Credentials,
        job: &str,
        listen: Duration,
    ) -> Result<JobStatus, ClusterError> {
        let watch = JobWatch::open(url, credentials, job)?;
        watch
            .rt
            .block_on(async { tokio::time::sleep(listen).await });
        watch.status()
    }
}

/// What has been heard of a job's agents and drivers, and when.
#[derive(Default)]
struct Heard {
    agents: HashMap<String, (AgentRecord, Instant)>,
    drivers: HashMap<String, Instant>,
}

/// A job watched: listens to its agents and drivers from
/// [`JobWatch::open`] on; [`JobWatch::status`] tells how it is now, as
/// often as wanted.
///
/// ```no_run
/// use brood_cluster::{Credentials, JobWatch};
/// let watch = JobWatch::open("nats://127.0.0.1:4222", Credentials::None, "etl")?;
/// loop {
///     std::thread::sleep(std::time::Duration::from_secs(1));
///     println!("{} pending", watch.status()?.pending);
/// }
/// # Ok::<(), brood_cluster::ClusterError>(())
/// ```
pub struct JobWatch {
    rt: tokio::runtime::Runtime,
    target: Target,
    tasks: stream::Stream,
    results: stream::Stream,
    heard: Arc<Mutex<Heard>>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for JobWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobWatch")
            .field("url", &self.target.url)
            .field("job", &self.target.job)
            .finish()
    }
}

impl JobWatch {
    /// Connects and starts listening; fails as [`JobStatus::read`] does.
    pub fn open(url: &str, credentials: Credentials, job: &str) -> Result<JobWatch, ClusterError> {
        let mut target = Target::new(url, job);
        target.credentials = credentials;
        target.check_job()?;
        // One thread: the listeners run while the caller waits.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Pool(format!("cannot start a runtime: {e}")))?;
        let heard: Arc<Mutex<Heard>> = Arc::default();
        let (tasks, results, listeners) = rt.block_on(async {
            let client = target.connect().await?;
            within("read the job", async {
                let js = jetstream::new(client.clone());
                let tasks = job_stream(&js, &target, target.tasks_stream()).await?;
                let results = job_stream(&js, &target, format!("BROOD_{job}_RESULTS")).await?;
                let listeners = vec![
                    listen(&client, subject(&target, "*"), &heard, |h, at, m| {
                        if let Ok(r) = serde_json::from_slice::<AgentRecord>(&m.payload) {
                            h.agents.insert(r.id.clone(), (r, at));
                        }
                    })
                    .await?,
                    listen(&client, target.alive_subject("*"), &heard, |h, at, m| {
                        if let Some(map) = m.subject.as_str().rsplit('.').next() {
                            h.drivers.insert(map.to_string(), at);
                        }
                    })
                    .await?,
                ];
                // The subscriptions are on the server before the listening time
                // starts.
                client
                    .flush()
                    .await
                    .map_err(|e| ClusterError::server("listen to the job", e))?;
                Ok((tasks, results, listeners))
            })
            .await
        })?;
        Ok(JobWatch {
            rt,
            target,
            tasks,
            results,
            heard,
            listeners,
        })
    }

    /// The job now: its queue read from the server, the agents and drivers
    /// heard in the last 3 seconds.
    pub fn status(&self) -> Result<JobStatus, ClusterError> {
        let (tasks, results, consumer) = self.rt.block_on(within("read the job", async {
            let tasks = self.tasks.get_info().await;
            let results = self.results.get_info().await;
            let consumer = self.tasks.consumer_info(AGENTS).await;
            Ok((tasks, results, consumer))
        }))?;
        let tasks = tasks.map_err(|e| self.gone_or(e, "read the job's task stream"))?;
        let results = results.map_err(|e| self.gone_or(e, "read the job's result stream"))?;
        let (pending, running, redelivered) = match consumer {
            Ok(c) => (
                c.num_pending,
                c.num_ack_pending as u64,
                c.num_redelivered as u64,
            ),
            Err(e) => match e.kind() {
                // No driver has made the agents' consumer yet: all waits.
                ConsumerInfoErrorKind::NotFound => (tasks.state.messages, 0, 0),
                ConsumerInfoErrorKind::StreamNotFound => return Err(no_such_job(&self.target)),
                _ => return Err(ClusterError::server("read the agents' consumer", e)),
            },
        };
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard.agents.retain(|_, (_, at)| at.elapsed() < HEARD);
        heard.drivers.retain(|_, at| at.elapsed() < HEARD);
        let mut agents: Vec<AgentRecord> = heard.agents.values().map(|(r, _)| r.clone()).collect();
        agents.sort_by(|a, b| (&a.host, a.pid, &a.id).cmp(&(&b.host, b.pid, &b.id)));
        let mut drivers: Vec<String> = heard.drivers.keys().cloned().collect();
        drivers.sort();
        Ok(JobStatus {
            job: self.target.job.clone(),
            pending,
            running,
            redelivered,
            results: results.state.messages,
            done: agents.iter().map(|a| a.answered).sum(),
            failed: agents.iter().map(|a| a.failed).sum(),
            drivers,
            agents,
        })
    }

    /// [`ClusterError::NoSuchJob`] if the server says the stream is
    /// missing (deleted since), else its words.
    fn gone_or(&self, e: stream::InfoError, what: &'static str) -> ClusterError {
        let code = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<jetstream::Error>())
            .map(jetstream::Error::error_code);
        if code == Some(ErrorCode::STREAM_NOT_FOUND) {
            no_such_job(&self.target)
        } else {
            ClusterError::server(what, e)
        }
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        for l in &self.listeners {
            l.abort();
        }
    }
}

fn no_such_job(target: &Target) -> ClusterError {
    ClusterError::NoSuchJob {
        job: target.job.clone(),
        url: target.url.clone(),
    }
}

/// One of the job's streams; [`ClusterError::NoSuchJob`] if it is missing.
async fn job_stream(
    js: &jetstream::Context,
    target: &Target,
    name: String,
) -> Result<stream::Stream, ClusterError> {
    use jetstream::context::GetStreamErrorKind;
    js.get_stream(name).await.map_err(|e| match e.kind() {
        GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND => {
            no_such_job(target)
        }
        _ => ClusterError::server("read the job's streams", e),
    })
}

/// Subscribes to `subject` and notes each message in `heard` with `note`.
async fn listen(
    client: &async_nats::Client,
    subject: String,
    heard: &Arc<Mutex<Heard>>,
    note: fn(&mut Heard, Instant, &async_nats::Message),
) -> Result<tokio::task::JoinHandle<()>, ClusterError> {
    let mut sub = client
        .subscribe(subject)
        .await
        .map_err(|e| ClusterError::server("listen to the job", e))?;
    let heard = Arc::clone(heard);
    Ok(tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let mut h = heard.lock().unwrap_or_else(|e| e.into_inner());
            note(&mut h, Instant::now(), &m);
        }
    }))
}
