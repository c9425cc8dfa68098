//! Publishing a call's chunks to the job's work queue, in item order, each
//! with its headers and an id the server de-duplicates by.

use crate::job::{COUNT, INIT, ITEM, SOFT_TIMEOUT, TIMEOUT};
use brood::TaskError;
use bytes::Bytes;
use std::time::Duration;

/// How long the driver tries again to queue a chunk the server did not take.
const REPUBLISH: Duration = Duration::from_secs(30);

/// A chunk out on the server, unanswered.
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

impl Publisher {
    /// Publishes the chunks that come, in their order, without waiting for
    /// one's ack before sending the next; then waits for the acks. A chunk
    /// the server did not take at once is tried again alone (see
    /// [`Publisher::send`]).
    pub(crate) async fn send_all(
        self,
        mut chunks: tokio::sync::mpsc::UnboundedReceiver<Out>,
    ) -> Vec<(Out, Result<u64, TaskError>)> {
        let mut acks = Vec::new();
        let mut out = Vec::new();
        let mut again = Vec::new();
        // Read once: the server's info is copied at each read.
        let limit = self.js.client().server_info().max_payload;
        while let Some(chunk) = chunks.recv().await {
            if chunk.bytes.len() > limit {
                again.push(chunk);
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
                Ok(ack) => acks.push((chunk, ack)),
                Err(_) => again.push(chunk),
            }
        }
        for (chunk, ack) in acks {
            match ack.await {
                Ok(a) => out.push((chunk, Ok(a.sequence))),
                Err(_) => again.push(chunk),
            }
        }
        for chunk in again {
            out.push(self.clone().send(chunk).await);
        }
        out
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
