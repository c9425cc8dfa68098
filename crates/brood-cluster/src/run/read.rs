//! The reading side of a call: its outcomes as they come, the server's
//! word on chunks given out too often, a call resumed, and a call that
//! waits for agents.

use super::{CTRL_C_POLL, MAX_RESUMED, MapRun, QUIET};
use crate::error::ClusterError;
use crate::job::{AGENTS, chunk_range};
use crate::publish::{Confirmed, Out, Sending};
use async_nats::jetstream::consumer;
use brood::TaskError;
use brood::remote::{CtrlC, for_each_result, split_chunk};
use futures_util::StreamExt;
use serde::{Serialize, de::DeserializeOwned};

impl<A: Serialize + 'static, R: DeserializeOwned + 'static> MapRun<'_, A, R> {
    /// A named call that an earlier driver began: its chunks still queued
    /// go (those of its items not answered are sent again), and the
    /// outcomes it left are read, so that answered items are not run again.
    pub(super) fn catch_up(&mut self) -> Result<(), ClusterError> {
        let pool = self.pool;
        let subject = pool.target.results_subject(&self.map);
        let last = pool.rt.block_on(async {
            crate::cleanup::remove_all(
                &pool.tasks,
                pool.target.tasks_subject(&self.map),
                pool.purge_by_subject,
            )
            .await;
            pool.results
                .get_last_raw_message_by_subject(&subject)
                .await
                .map_or(0, |m| m.sequence)
        });
        if last == 0 {
            return Ok(());
        }
        self.results = Some(pool.rt.block_on(pool.open_results(&self.map, 1))?);
        while self.from <= last {
            pool.rt.block_on(self.wait())?;
        }
        Ok(())
    }

    /// Waits for one thing: results, an advisory, Ctrl-C, or a quiet spell.
    pub(super) async fn wait(&mut self) -> Result<(), ClusterError> {
        let quiet = tokio::time::sleep(QUIET);
        tokio::pin!(quiet);
        if self.results.is_none() {
            let opened = match self.opening.take() {
                Some(opening) => opening.await.ok().and_then(Result::ok),
                None => None,
            };
            self.results = Some(match opened {
                Some(results) => results,
                None => self.pool.reopen_results(&self.map, self.from).await,
            });
        }
        let mut tick = tokio::time::interval(CTRL_C_POLL);
        loop {
            let Some(results) = self.results.as_mut() else {
                return Ok(());
            };
            tokio::select! {
                msg = results.next() => {
                    let Some(Ok(msg)) = msg else {
                        self.results = None;
                        return Ok(());
                    };
                    if let Ok(info) = msg.info() {
                        self.from = info.stream_sequence + 1;
                    }
                    self.received(&msg);
                    for chunk in std::mem::take(&mut self.resend) {
                        self.send(chunk);
                    }
                    if std::mem::take(&mut self.waiting) {
                        eprintln!(
                            "brood-cluster: job {}: agents are taking its chunks",
                            self.pool.target.job
                        );
                    }
                    return Ok(());
                }
                Some(c) = confirmations(&mut self.sending) => {
                    self.confirmed(c);
                    if !self.ready.is_empty() {
                        return Ok(());
                    }
                }
                Some(adv) = self.advisories.next() => {
                    self.exhausted(&adv.payload).await;
                    return Ok(());
                }
                _ = &mut quiet => {
                    // An error, the end, or a long quiet: the reader may
                    // have lost the server (a restart takes its consumer).
                    // Read again from the first result not yet seen; a
                    // repeat is dropped.
                    self.results = None;
                    self.look_for_agents().await;
                    return Ok(());
                }
                _ = tick.tick() => {
                    if self.ctrl_c.as_ref().is_some_and(CtrlC::fired) {
                        self.withdraw().await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// After a quiet spell: says so on stderr (once, unless the pool is
    /// quiet) when chunks wait and no agent takes any — none is running one
    /// or asking for one. (The first result after it says agents came.)
    async fn look_for_agents(&mut self) {
        if self.pool.quiet || self.out.is_empty() {
            return;
        }
        let Ok(mut consumer) = self
            .pool
            .tasks
            .get_consumer::<consumer::pull::Config>(AGENTS)
            .await
        else {
            return;
        };
        let Ok(info) = consumer.info().await else {
            return;
        };
        let idle = info.num_pending > 0 && info.num_ack_pending == 0 && info.num_waiting == 0;
        let job = &self.pool.target.job;
        if idle && !self.waiting {
            eprintln!(
                "brood-cluster: job {job}: waiting for agents: {} chunks queued and no agent \
                 takes them (start one: BROOD_AGENT={} BROOD_AGENT_JOB={job} <this program>)",
                info.num_pending, self.pool.target.url
            );
        } else if !idle && self.waiting {
            eprintln!("brood-cluster: job {job}: agents are taking its chunks");
        }
        self.waiting = idle;
    }

    /// A result message: a chunk's outcomes.
    fn received(&mut self, msg: &async_nats::jetstream::Message) {
        let Some((first, count)) = chunk_range(msg.headers.as_ref()) else {
            return;
        };
        let known = if self.named {
            MAX_RESUMED
        } else {
            self.answered.len()
        };
        if first.checked_add(count).is_none_or(|end| end > known) {
            return;
        }
        let sent = self
            .out
            .get(&first)
            .filter(|p| p.chunk.count == count)
            .map(|p| p.chunk.bytes.clone());
        let mut parts = None;
        // Each outcome straight to its slot: a list of a chunk's outcomes
        // was made, moved and dropped for nothing.
        let decoded = for_each_result::<R>(&msg.payload, count, |k, outcome| {
            let i = first + k;
            if matches!(outcome, Err(TaskError::WorkerDied { .. }))
                && let Some(sent) = &sent
                && let Some(attempt) = self.retry(i)
            {
                // Run again, alone, on whatever agent takes it.
                let parts = parts.get_or_insert_with(|| split_chunk(sent).unwrap_or_default());
                if let Some(bytes) = parts.get(k) {
                    self.resend.push(Out {
                        first: i,
                        count: 1,
                        bytes: bytes.clone().into(),
                        attempt,
                    });
                    return;
                }
            }
            self.answer(i, outcome);
        });
        if let Err(e) = decoded {
            let e = TaskError::Failed {
                reason: e.to_string(),
            };
            for i in first..first + count {
                self.answer(i, Err(e.clone()));
            }
        }
        if sent.is_some() {
            self.done_with(first);
        }
    }

    /// Whether item `i`, whose worker died, may run again (the call asked
    /// for retries and it has some left): the number of this retry.
    fn retry(&mut self, i: usize) -> Option<u32> {
        let tries = self.tries.entry(i).or_insert(0);
        (*tries < self.retries).then(|| {
            *tries += 1;
            *tries
        })
    }

    /// A chunk was given out `max_deliveries` times and never answered. One
    /// of several items is split into one-item chunks, so that the item
    /// that kills its agents fails alone; one item fails.
    async fn exhausted(&mut self, payload: &[u8]) {
        let Some(seq) = advisory_seq(payload) else {
            return;
        };
        let Some(first) = self.first_of.get(&seq).copied() else {
            return;
        };
        let Some(chunk) = self.out.remove(&first).map(|p| p.chunk) else {
            return;
        };
        self.first_of.remove(&seq);
        let _ = self.pool.tasks.delete_message(seq).await;
        if chunk.count > 1
            && let Ok(parts) = split_chunk(&chunk.bytes)
        {
            for (k, bytes) in parts.into_iter().enumerate() {
                self.send(Out {
                    first: chunk.first + k,
                    count: 1,
                    bytes: bytes.into(),
                    attempt: 0,
                });
            }
            return;
        }
        let e = TaskError::Failed {
            reason: format!(
                "the task was given out {} times and never answered: each agent that \
                 took it died or lost the server",
                self.pool.max_deliveries
            ),
        };
        for i in chunk.first..chunk.first + chunk.count {
            self.answer(i, Err(e.clone()));
        }
    }
}

/// The next word of the server on a chunk sent, when the call has sent
/// any (else never).
async fn confirmations(sending: &mut Option<Sending>) -> Option<Confirmed> {
    match sending {
        Some(s) => s.confirmed.recv().await,
        None => std::future::pending().await,
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
