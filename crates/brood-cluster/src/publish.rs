//! Publishing a call's chunks to the job's work queue, in item order, each
//! with its headers and an id the server de-duplicates by.

use crate::job::{COUNT, INIT, ITEM, SOFT_TIMEOUT, TIMEOUT};
use brood::TaskError;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the driver tries again to queue a chunk the server did not take.
const REPUBLISH: Duration = Duration::from_secs(30);

/// A chunk out on the server, unanswered.
#[derive(Clone)]
pub(crate) struct Out {
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) bytes: Bytes,
    /// 0, or which retry of its item this is (see `ClusterCall::retries`):
    /// part of its id, so that the server takes it again.
    pub(crate) attempt: u32,
}

/// Publishes a call's chunks.
#[derive(Clone)]
pub(crate) struct Publisher {
    pub(crate) js: async_nats::jetstream::Context,
    pub(crate) subject: String,
    pub(crate) map: String,
    pub(crate) timeout: Option<Duration>,
    pub(crate) soft_timeout: Option<Duration>,
    pub(crate) init: Option<String>,
    /// This driver's token: a resumed call's chunks are sent again under
    /// new ids (the server would drop a repeat of an id inside its
    /// duplicate window as already stored, though it was purged).
    pub(crate) run: String,
}

/// What the server said of a chunk sent: its stream sequence, or why it
/// is not queued.
pub(crate) struct Confirmed {
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) attempt: u32,
    pub(crate) seq: Result<u64, TaskError>,
}

/// A call's publisher at work (see [`Publisher::start`]).
pub(crate) struct Sending {
    chunks: Option<mpsc::UnboundedSender<Out>>,
    /// The server's word on each chunk, in the order it comes.
    pub(crate) confirmed: mpsc::UnboundedReceiver<Confirmed>,
    /// Until it is stopped.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sending {
    /// Sends a chunk, after those sent before it.
    pub(crate) fn send(&self, chunk: Out) {
        if let Some(tx) = &self.chunks {
            let _ = tx.send(chunk);
        }
    }

    /// Stops sending: a chunk not yet handed to the client never goes.
    /// Returns once the publisher has stopped, so that a purge after it
    /// comes after every chunk it sent (one connection keeps the order).
    pub(crate) async fn stop(&mut self) {
        self.chunks = None;
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Publisher {
    /// Starts publishing the chunks given to the [`Sending`], in their
    /// order, without waiting for one's ack before sending the next, so
    /// that a driver reading results never waits on a publish. A chunk the
    /// server did not take at once is tried again on its own (see
    /// [`Publisher::send`]) while the others go on. Needs the runtime's
    /// context.
    pub(crate) fn start(self) -> Sending {
        let (chunks, rx) = mpsc::unbounded_channel();
        let (confirm, confirmed) = mpsc::unbounded_channel();
        let task = tokio::spawn(self.run(rx, confirm));
        Sending {
            chunks: Some(chunks),
            confirmed,
            task: Some(task),
        }
    }

    async fn run(
        self,
        mut chunks: mpsc::UnboundedReceiver<Out>,
        confirm: mpsc::UnboundedSender<Confirmed>,
    ) {
        let said = |chunk: &Out, seq: Result<u64, TaskError>| {
            let _ = confirm.send(Confirmed {
                first: chunk.first,
                count: chunk.count,
                attempt: chunk.attempt,
                seq,
            });
        };
        let mut acks = FuturesUnordered::new();
        let mut again = FuturesUnordered::new();
        // Read once: the server's info is copied at each read.
        let limit = self.js.client().server_info().max_payload;
        let mut open = true;
        loop {
            tokio::select! {
                chunk = chunks.recv(), if open => {
                    let Some(chunk) = chunk else {
                        open = false;
                        continue;
                    };
                    if chunk.bytes.len() > limit {
                        again.push(self.clone().send(chunk));
                        continue;
                    }
                    match self
                        .js
                        .publish_with_headers(
                            self.subject.clone(),
                            self.headers(&chunk),
                            chunk.bytes.clone(),
                        )
                        .await
                    {
                        Ok(ack) => acks.push(async move { (chunk, ack.await) }),
                        Err(_) => again.push(self.clone().send(chunk)),
                    }
                }
                Some((chunk, ack)) = acks.next() => match ack {
                    Ok(a) => said(&chunk, Ok(a.sequence)),
                    Err(_) => again.push(self.clone().send(chunk)),
                },
                Some((chunk, seq)) = again.next() => said(&chunk, seq),
                else => break,
            }
        }
    }

    /// A chunk's headers: its first item, its count, its timeouts, its
    /// initializer, and an id.
    fn headers(&self, chunk: &Out) -> async_nats::HeaderMap {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(ITEM, chunk.first.to_string().as_str());
        headers.insert(COUNT, chunk.count.to_string().as_str());
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!(
                "{}.{}.{}.{}.{}",
                self.map, self.run, chunk.first, chunk.count, chunk.attempt
            )
            .as_str(),
        );
        if let Some(t) = self.timeout {
            headers.insert(TIMEOUT, t.as_millis().to_string().as_str());
        }
        if let Some(t) = self.soft_timeout {
            headers.insert(SOFT_TIMEOUT, t.as_millis().to_string().as_str());
        }
        if let Some(key) = &self.init {
            headers.insert(INIT, key.as_str());
        }
        headers
    }

    /// Publishes a chunk with its first item, its count, its timeouts and
    /// an id; returns its stream sequence, or why it could not be queued.
    /// A publish that fails for a while (the server restarting) is tried
    /// again with the same id, which the server takes only once, for
    /// [`REPUBLISH`].
    pub(crate) async fn send(self, chunk: Out) -> (Out, Result<u64, TaskError>) {
        let limit = self.js.client().server_info().max_payload;
        if chunk.bytes.len() > limit {
            return refuse_oversized(chunk, limit);
        }
        let headers = self.headers(&chunk);
        let give_up = tokio::time::Instant::now() + REPUBLISH;
        loop {
            let why = match self
                .js
                .publish_with_headers(self.subject.clone(), headers.clone(), chunk.bytes.clone())
                .await
            {
                Ok(ack) => match ack.await {
                    Ok(a) => return (chunk, Ok(a.sequence)),
                    Err(e) if lasting(e.kind()) => return (chunk, Err(not_queued(e))),
                    Err(e) => e.to_string(),
                },
                Err(e) if lasting(e.kind()) => return (chunk, Err(not_queued(e))),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= give_up {
                return (chunk, Err(not_queued(why)));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A chunk over the server's payload limit (one item: see `top_up`) fails,
/// naming the limit.
fn refuse_oversized(chunk: Out, limit: usize) -> (Out, Result<u64, TaskError>) {
    let reason = format!(
        "the argument is {} bytes encoded, over the server's payload limit of {limit} bytes \
         (nats-server's max_payload): send a path or a key instead, or raise the limit",
        chunk.bytes.len()
    );
    (chunk, Err(TaskError::Failed { reason }))
}

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
