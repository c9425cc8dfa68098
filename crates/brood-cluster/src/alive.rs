//! Whether a map's driver is still there. While it maps, a driver publishes
//! to `brood.J.alive.<map>` every [`BEAT`] (core NATS: not kept); an agent
//! that has heard nothing of a map for [`GONE`] takes its driver for dead
//! (SIGKILLed, or cut from the server) and drops that map's tasks unrun, so
//! no agent burns CPU for a driver that will never read the results; the
//! chunks of that map it is running are withdrawn (their workers killed).
//!
//! A driver that ends a call early (Ctrl-C) publishes [`WITHDRAWN`] there
//! too: the agents withdraw that map's chunks at once.

use crate::error::ClusterError;
use crate::job::Target;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a driver says it is there.
pub(crate) const BEAT: Duration = Duration::from_secs(1);

/// How long a driver may be silent before its tasks are dropped.
pub(crate) const GONE: Duration = Duration::from_secs(5);

/// What a driver publishes on its alive subject when it withdraws a call.
const WITHDRAWN: &[u8] = b"withdrawn";

/// Tells the agents that the call `map` is withdrawn (a few times: core
/// NATS keeps nothing for an agent that was reconnecting).
pub(crate) async fn withdraw(client: async_nats::Client, target: &Target, map: &str) {
    let subject = target.alive_subject(map);
    for _ in 0..3 {
        let _ = client
            .publish(subject.clone(), bytes::Bytes::from_static(WITHDRAWN))
            .await;
    }
    let _ = client.flush().await;
}

/// A driver's beat for one map; it stops when this is dropped.
pub(crate) struct Beat(tokio::task::JoinHandle<()>);

impl Beat {
    pub(crate) fn start(client: async_nats::Client, target: &Target, map: &str) -> Beat {
        let subject = target.alive_subject(map);
        Beat(tokio::spawn(async move {
            loop {
                // A beat lost while the server is away is only a late one.
                let _ = client.publish(subject.clone(), bytes::Bytes::new()).await;
                tokio::time::sleep(BEAT).await;
            }
        }))
    }
}

impl Drop for Beat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What an agent heard of the drivers of its job: when each map's driver
/// last beat, and which maps were withdrawn.
pub(crate) struct Drivers {
    heard: Arc<Mutex<Heard>>,
}

#[derive(Default)]
struct Heard {
    beats: HashMap<String, Instant>,
    withdrawn: HashMap<String, Instant>,
    /// When this agent first met a chunk of a map it had heard no beat of:
    /// the beat and the chunk take different paths, so the chunk may come
    /// first. Only after [`GONE`] of silence from then is the driver gone
    /// (the agent's own clock: no skew between machines counts).
    unheard: HashMap<String, Instant>,
}

impl Drivers {
    /// Starts listening to the job's drivers.
    pub(crate) async fn listen(
        client: &async_nats::Client,
        target: &Target,
    ) -> Result<Drivers, ClusterError> {
        let mut sub = client
            .subscribe(target.alive_subject("*"))
            .await
            .map_err(|e| ClusterError::server("listen to the job's drivers", e))?;
        let heard: Arc<Mutex<Heard>> = Arc::default();
        let mine = Arc::clone(&heard);
        let prefix = target.alive_subject("");
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(map) = m.subject.as_str().strip_prefix(&prefix) {
                    let mut heard = mine.lock().unwrap_or_else(|e| e.into_inner());
                    // Maps long over are forgotten.
                    heard.beats.retain(|_, at| at.elapsed() < GONE * 60);
                    heard.withdrawn.retain(|_, at| at.elapsed() < GONE * 60);
                    heard.unheard.retain(|_, at| at.elapsed() < GONE * 60);
                    if &m.payload[..] == WITHDRAWN {
                        heard.withdrawn.insert(map.to_string(), Instant::now());
                    } else {
                        heard.beats.insert(map.to_string(), Instant::now());
                    }
                }
            }
        });
        Ok(Drivers { heard })
    }

    /// Whether the driver of `map` withdrew it, or has been silent for
    /// [`GONE`] (counted, for a map never heard, from the first time this
    /// is asked about it).
    pub(crate) fn gone(&self, map: &str) -> bool {
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        if heard.withdrawn.contains_key(map) {
            return true;
        }
        match heard.beats.get(map) {
            Some(at) => at.elapsed() >= GONE,
            None => {
                heard
                    .unheard
                    .entry(map.to_string())
                    .or_insert_with(Instant::now)
                    .elapsed()
                    >= GONE
            }
        }
    }
}
