//! The chunks a call has out: each sent as soon as it is encoded, the
//! server's word on it (its stream sequence, or why it is not queued), and
//! taking them back when the call is withdrawn.

use super::MapRun;
use crate::publish::{Confirmed, Out, Publisher};
use serde::{Serialize, de::DeserializeOwned};

/// A chunk out, and its stream sequence once the server said it.
pub(super) struct Pending {
    pub(super) chunk: Out,
    pub(super) seq: Option<u64>,
}

impl<A: Serialize + 'static, R: DeserializeOwned + 'static> MapRun<'_, A, R> {
    /// Sends a chunk: each goes out as soon as it is encoded, in item
    /// order, and the server's word on it comes to [`MapRun::confirmed`]
    /// while the caller encodes the next or reads outcomes.
    pub(super) fn send(&mut self, chunk: Out) {
        if self.sending.is_none() {
            let _in_runtime = self.pool.rt.enter();
            self.sending = Some(self.publisher().start());
        }
        if let Some(sending) = &self.sending {
            sending.send(chunk.clone());
        }
        self.out.insert(chunk.first, Pending { chunk, seq: None });
    }

    /// Records where a chunk went, or fails its items. A chunk answered
    /// already (its outcomes can come before the server's ack) is done.
    pub(super) fn confirmed(&mut self, c: Confirmed) {
        let Some(pending) = self.out.get_mut(&c.first).filter(|p| {
            p.chunk.count == c.count && p.chunk.attempt == c.attempt && p.seq.is_none()
        }) else {
            return;
        };
        match c.seq {
            Ok(seq) => {
                pending.seq = Some(seq);
                self.first_of.insert(seq, c.first);
            }
            Err(e) => {
                self.out.remove(&c.first);
                for i in c.first..c.first + c.count {
                    self.answer(i, Err(e.clone()));
                }
            }
        }
    }

    /// A chunk is answered (or given up): it is no longer out.
    pub(super) fn done_with(&mut self, first: usize) {
        if let Some(p) = self.out.remove(&first)
            && let Some(seq) = p.seq
        {
            self.first_of.remove(&seq);
        }
    }

    /// Ctrl-C: the call's chunks still queued go, the agents are told to
    /// kill the workers running the others, and the call ends.
    pub(super) async fn withdraw(&mut self) {
        self.interrupted = true;
        self.items = None;
        let queued = self.stop_sending().await;
        self.pool.withdraw(&self.map, queued).await;
        self.out.clear();
    }

    /// Stops the publisher; the sequences of the chunks still out that the
    /// server took (what a withdrawal deletes, see `cleanup`).
    async fn stop_sending(&mut self) -> Vec<u64> {
        if let Some(mut sending) = self.sending.take() {
            sending.stop().await;
            while let Ok(c) = sending.confirmed.try_recv() {
                self.confirmed(c);
            }
            self.sending = Some(sending);
        }
        self.queued()
    }

    /// What publishing this call's chunks needs, owned (for tasks of the
    /// runtime that send them while the caller encodes the next).
    fn publisher(&self) -> Publisher {
        let settings = self.opts.settings();
        Publisher {
            js: self.pool.js.clone(),
            subject: self.pool.target.tasks_subject(&self.map),
            map: self.map.clone(),
            timeout: settings.timeout.or(self.pool.task_timeout),
            soft_timeout: settings.soft_timeout,
            init: self.init.clone(),
            run: self.run.clone(),
        }
    }
}
