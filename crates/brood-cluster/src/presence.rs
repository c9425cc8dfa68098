//! An agent says who it is and what it does: every [`PERIOD`] it publishes
//! an [`AgentRecord`] (JSON, core NATS: not kept) on
//! `brood.<job>.agents.<agent id>`, so that `brood job` can show a job's
//! agents and find the one stuck on a task. Nothing depends on these
//! records: an agent whose records are lost works on.

use crate::job::{COUNT, ITEM, Target};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often an agent publishes its record.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// What one agent of a job says of itself, every second.
///
/// ```
/// let r: brood_cluster::AgentRecord = serde_json::from_str(r#"{
///     "id": "box-7-1f2e3d", "host": "box", "pid": 7, "build": "build-id 00ff",
///     "workers": 2, "running": 1, "answered": 40, "failed": 1,
///     "started_at": 1800000000,
///     "longest": { "map": "Xk3", "item": 12, "items": 24, "seconds": 93.5 } }"#)?;
/// assert_eq!(r.longest.unwrap().item, 12);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentRecord {
    /// The agent's id: host, pid and a random suffix.
    pub id: String,
    /// The machine's host name.
    pub host: String,
    /// The agent's process id on its machine.
    pub pid: u32,
    /// The build of its executable (`brood::remote::BuildId`, as shown).
    pub build: String,
    /// Its local pool's workers.
    pub workers: usize,
    /// Items running now (those of the chunks in its hands).
    pub running: u64,
    /// Items answered since it started (with a value or a `TaskError`).
    pub answered: u64,
    /// Of those, the ones answered with a `TaskError`.
    pub failed: u64,
    /// When it started, in seconds since the Unix epoch.
    pub started_at: u64,
    /// The chunk it has been running the longest, if any.
    pub longest: Option<LongestTask>,
}

/// The chunk of tasks an agent has been running the longest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LongestTask {
    /// Its map (the token in the job's task subject).
    pub map: String,
    /// The index of its first item in the map.
    pub item: u64,
    /// How many items it holds.
    pub items: u64,
    /// How long it has been running, in seconds.
    pub seconds: f64,
}

/// An agent's counters and running chunks, published while it lives.
pub(crate) struct Presence {
    state: Arc<State>,
    publisher: tokio::task::JoinHandle<()>,
}

struct State {
    record: AgentRecord,
    answered: AtomicU64,
    failed: AtomicU64,
    next: AtomicU64,
    /// Running chunks by a number of their own.
    running: Mutex<HashMap<u64, Chunk>>,
}

/// A chunk that runs: its map, first item, items, since when.
struct Chunk {
    map: String,
    item: u64,
    items: u64,
    since: Instant,
}

impl Presence {
    /// Starts publishing this agent's record for `target`'s job.
    pub(crate) fn start(client: &async_nats::Client, target: &Target, workers: usize) -> Presence {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        let pid = std::process::id();
        // A random suffix, so that a pid reused on a host names another agent.
        let suffix = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            & 0xff_ffff;
        let id = token(&format!("{host}-{pid}-{suffix:06x}"));
        let state = Arc::new(State {
            record: AgentRecord {
                id: id.clone(),
                host,
                pid,
                build: brood::remote::BuildId::current()
                    .map_or_else(|e| format!("unknown ({e})"), |b| b.to_string()),
                workers,
                running: 0,
                answered: 0,
                failed: 0,
                started_at: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                longest: None,
            },
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            next: AtomicU64::new(0),
            running: Mutex::default(),
        });
        let subject = subject(target, &id);
        let client = client.clone();
        let mine = Arc::clone(&state);
        let publisher = tokio::spawn(async move {
            let mut every = tokio::time::interval(PERIOD);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Ok(json) = serde_json::to_vec(&mine.now()) {
                    // A record lost while the server is away is only a late one.
                    let _ = client.publish(subject.clone(), json.into()).await;
                }
            }
        });
        Presence { state, publisher }
    }

    /// The chunk of `msg` starts running; it counts as running until the
    /// returned guard is dropped.
    pub(crate) fn running(&self, target: &Target, msg: &async_nats::Message) -> Running {
        let header = |name: &str| {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .and_then(|v| v.as_str().parse().ok())
        };
        let chunk = Chunk {
            map: target
                .map_of(msg.subject.as_str())
                .unwrap_or("?")
                .to_string(),
            item: header(ITEM).unwrap_or(u64::MAX),
            items: header(COUNT).unwrap_or(1),
            since: Instant::now(),
        };
        let items = chunk.items;
        let key = self.state.next.fetch_add(1, Ordering::Relaxed);
        self.state.lock().insert(key, chunk);
        Running {
            state: Arc::clone(&self.state),
            key,
            items,
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.publisher.abort();
    }
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Chunk>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record as of now.
    fn now(&self) -> AgentRecord {
        let running = self.lock();
        let longest = running
            .values()
            .min_by_key(|c| c.since)
            .map(|c| LongestTask {
                map: c.map.clone(),
                item: c.item,
                items: c.items,
                seconds: c.since.elapsed().as_secs_f64(),
            });
        AgentRecord {
            running: running.values().map(|c| c.items).sum(),
            answered: self.answered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            longest,
            ..self.record.clone()
        }
    }
}

/// A chunk that runs, for its agent's record.
pub(crate) struct Running {
    state: Arc<State>,
    key: u64,
    items: u64,
}

impl Running {
    /// The chunk is answered with `outcomes` (`PoolCall::map_encoded`'s).
    pub(crate) fn answered(self, outcomes: &[u8]) {
        let items = self.items;
        self.state.answered.fetch_add(items, Ordering::Relaxed);
        let failed = failed(outcomes, items);
        self.state.failed.fetch_add(failed, Ordering::Relaxed);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.state.lock().remove(&self.key);
    }
}

/// How many of a chunk's `items` outcomes are `TaskError`s (all of them if
/// the outcomes do not decode). `()` decodes from any value's bytes, so
/// only an error is an error here.
fn failed(outcomes: &[u8], items: u64) -> u64 {
    brood::remote::failures(outcomes).map_or(items, |n| n as u64)
}

/// Where agent `id` of `target`'s job publishes its record (`*`: all of
/// them).
/// What a driver knows of a job's agents from their records: how many
/// workers they have in all, for the size of a call's chunks. Records come
/// every [`PERIOD`]; an agent unheard for three of them is not counted.
pub(crate) struct Census {
    seen: Arc<Mutex<HashMap<String, (usize, Instant)>>>,
    listener: tokio::task::JoinHandle<()>,
}

impl Census {
    /// Starts listening to the job's agent records (on the runtime).
    pub(crate) async fn start(client: &async_nats::Client, target: &Target) -> Census {
        let seen: Arc<Mutex<HashMap<String, (usize, Instant)>>> = Arc::default();
        let mine = Arc::clone(&seen);
        let records = client.subscribe(subject(target, "*")).await.ok();
        let listener = tokio::spawn(async move {
            let Some(mut records) = records else {
                return;
            };
            use futures_util::StreamExt;
            while let Some(msg) = records.next().await {
                if let Ok(r) = serde_json::from_slice::<AgentRecord>(&msg.payload) {
                    mine.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(r.id, (r.workers, Instant::now()));
                }
            }
        });
        Census { seen, listener }
    }

    /// The workers of the agents heard lately (0: none heard).
    pub(crate) fn workers(&self) -> usize {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, (_, at)| at.elapsed() < PERIOD * 3);
        seen.values().map(|(w, _)| w).sum()
    }
}

impl Drop for Census {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

pub(crate) fn subject(target: &Target, id: &str) -> String {
    format!("brood.{}.agents.{id}", target.job)
}

/// `s` as one subject token: every byte but letters, digits, `-` and `_`
/// becomes `_` (a host name may hold dots).
fn token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use brood::TaskError;
    use brood::remote::failed_outcomes;

    #[test]
    fn error_outcomes_count_as_failed() {
        let why = TaskError::Failed { reason: "x".into() };
        assert_eq!(failed(&failed_outcomes(3, &why), 3), 3);
        assert_eq!(failed(b"garbage", 2), 2);
    }

    #[test]
    fn ids_are_subject_tokens() {
        assert_eq!(token("box.example.com-7-0a"), "box_example_com-7-0a");
        assert_eq!(token("a b*>"), "a_b__");
    }
}
