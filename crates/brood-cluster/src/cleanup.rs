//! Taking a call's chunks off the server: those still queued when it is
//! withdrawn, and those an earlier driver of a resumed call left.
//!
//! A purge by subject takes a call's messages in one request. But before
//! nats-server 2.10.11 a filtered purge also moved *every* consumer of the
//! stream past the purged range, whatever its own filter (nats-server
//! #3838, #5075): the agents' consumer then skipped the queued chunks of
//! every other call of the job, and another call's reader skipped its
//! results, and those calls waited for ever. On such a server each chunk is
//! deleted by its sequence instead, which moves no consumer (a call's
//! results are left to age out there: see `ClusterPool::forget`).

use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt;

/// Deletes at once, at most.
const DELETES: usize = 32;

/// Whether a server of this version purges by subject without moving the
/// consumers of other subjects (2.10.11 or later).
pub(crate) fn purge_by_subject(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let v = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    v >= (2, 10, 11)
}

/// Removes a call's messages on `subject` from `stream`: by subject where
/// the server does that safely, else those of `seqs` (the ones the caller
/// knows of; best effort: an error leaves a message, never fails a call).
pub(crate) async fn remove(stream: &Stream, subject: String, seqs: Vec<u64>, by_subject: bool) {
    if by_subject {
        let _ = stream.purge().filter(subject).await;
    } else {
        futures_util::stream::iter(seqs)
            .for_each_concurrent(DELETES, |seq| async move {
                let _ = stream.delete_message(seq).await;
            })
            .await;
    }
}

/// Removes every message on `subject` from `stream`, found one by one
/// where the server cannot purge by subject safely (a resumed call takes
/// away the chunks an earlier driver of it left queued).
pub(crate) async fn remove_all(stream: &Stream, subject: String, by_subject: bool) {
    if by_subject {
        let _ = stream.purge().filter(subject).await;
        return;
    }
    let mut seqs = Vec::new();
    let mut from = 1;
    while let Ok(msg) = stream
        .raw_message_builder()
        .sequence(from)
        .next_by_subject(subject.as_str())
        .send()
        .await
    {
        seqs.push(msg.sequence);
        from = msg.sequence + 1;
    }
    remove(stream, subject, seqs, false).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_before_2_10_11_purge_unsafely() {
        for v in [
            "2.9.10", "2.9.25", "2.10.0", "2.10.10", "v2.10.10", "1.4.1", "", "x",
        ] {
            assert!(!purge_by_subject(v), "{v}");
        }
        for v in [
            "2.10.11",
            "2.10.11-beta.1",
            "2.11.0",
            "2.15.1",
            "v2.12.3",
            "3.0.0",
        ] {
            assert!(purge_by_subject(v), "{v}");
        }
    }
}
