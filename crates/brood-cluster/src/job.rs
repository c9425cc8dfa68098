//! A job on a server: its name, its subjects and streams, and the
//! connection both a driver and an agent make to reach it.
//!
//! Job `J` has two streams, file-backed:
//!
//! - `BROOD_J_TASKS`, subjects `brood.J.tasks.<map>`, a *work queue*: a task
//!   is gone once an agent acks it. One durable pull consumer, `agents`,
//!   shared by every agent: explicit acks, an ack wait (the heartbeat
//!   timeout) after which an unacked task goes to another agent, and at most
//!   `max_deliver` deliveries.
//! - `BROOD_J_RESULTS`, subjects `brood.J.results.<map>`: one message per
//!   answered task, with the item's index in a header; the driver reads its
//!   map's subject from the start.
//!
//! - `BROOD_J_INITS`, subjects `brood.J.init.<key>`: the initializers of
//!   the job's `map_with` calls, keyed by a hash of their bytes, the last
//!   of each kept; an agent reads one when a chunk names it.
//!
//! - The object store `BROOD_J_DATA`: the bytes of each `SharedSlice` a
//!   call's items name, by its id in hex, put there once per call before
//!   the first chunk that names it and deleted when the call ends; an agent
//!   fetches each once and keeps it (see `pools`).
//!
//! Both publishers give every message an id (`Nats-Msg-Id`), so that the
//! server drops a repeat inside its duplicate window; the driver keeps the
//! first result of each item in any case.

use crate::error::ClusterError;
use async_nats::jetstream::{self, consumer, stream};
use std::path::PathBuf;
use std::time::Duration;

/// The header that carries the index of a chunk's first item.
pub(crate) const ITEM: &str = "Brood-Item";

/// The header that carries how many items a chunk (or its outcomes) holds.
pub(crate) const COUNT: &str = "Brood-Count";

/// The header that carries a task's timeout, in milliseconds.
pub(crate) const TIMEOUT: &str = "Brood-Timeout-Ms";

/// The header that names the initializer a chunk's workers need (its key
/// in the job's initializer stream).
pub(crate) const INIT: &str = "Brood-Init";

/// The header that carries a task's soft timeout, in milliseconds.
pub(crate) const SOFT_TIMEOUT: &str = "Brood-Soft-Timeout-Ms";

/// The consumer every agent of a job pulls from.
/// How long the server keeps a result at most. A call's results go when
/// it ends (on nats-server 2.10.11 or later; see `cleanup`) or when a
/// resumed call ends; this bounds what is left otherwise: a named call
/// whose driver never came back, or every call on an older server.
pub(crate) const RESULTS_KEPT: Duration = Duration::from_secs(48 * 3600);

pub(crate) const AGENTS: &str = "agents";

/// How a driver or an agent proves who it is to the server.
///
/// ```
/// use brood_cluster::Credentials;
/// let c = Credentials::UserPassword { user: "job".into(), password: "s3cret".into() };
/// assert!(format!("{c:?}").contains("job") && !format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// None (a server without authorization).
    #[default]
    None,
    /// A user name and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
    /// An NKey seed.
    NKey(String),
    /// A `.creds` file (a user JWT and its NKey seed).
    CredsFile(PathBuf),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::UserPassword { user, .. } => write!(f, "UserPassword({user}, ***)"),
            Credentials::Token(_) => f.write_str("Token(***)"),
            Credentials::NKey(_) => f.write_str("NKey(***)"),
            Credentials::CredsFile(p) => write!(f, "CredsFile({})", p.display()),
        }
    }
}

/// Where a job lives and how to reach it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) credentials: Credentials,
    pub(crate) job: String,
    pub(crate) connect_timeout: Duration,
    /// PEM root certificates to trust for TLS, and whether TLS is required.
    pub(crate) tls_roots: Option<PathBuf>,
    pub(crate) require_tls: bool,
}

impl Target {
    pub(crate) fn new(url: &str, job: &str) -> Target {
        Target {
            url: url.to_string(),
            credentials: Credentials::None,
            job: job.to_string(),
            connect_timeout: Duration::from_secs(5),
            tls_roots: None,
            require_tls: false,
        }
    }

    /// The job's name checked: letters, digits, `-` and `_` (it becomes a
    /// subject token and part of stream names).
    pub(crate) fn check_job(&self) -> Result<(), ClusterError> {
        check_name(&self.job).map_err(|()| ClusterError::BadJobName(self.job.clone()))
    }

    pub(crate) fn tasks_stream(&self) -> String {
        format!("BROOD_{}_TASKS", self.job)
    }

    pub(crate) fn tasks_subject(&self, map: &str) -> String {
        format!("brood.{}.tasks.{map}", self.job)
    }

    pub(crate) fn results_subject(&self, map: &str) -> String {
        format!("brood.{}.results.{map}", self.job)
    }

    /// Where an initializer is kept, by its key.
    pub(crate) fn init_subject(&self, key: &str) -> String {
        format!("brood.{}.init.{key}", self.job)
    }

    /// Where the driver of `map` says it is there.
    pub(crate) fn alive_subject(&self, map: &str) -> String {
        format!("brood.{}.alive.{map}", self.job)
    }

    /// The map a task subject belongs to.
    pub(crate) fn map_of<'s>(&self, task_subject: &'s str) -> Option<&'s str> {
        task_subject
            .strip_prefix(&format!("brood.{}.tasks.", self.job))
            .filter(|m| !m.is_empty() && !m.contains('.'))
    }

    /// Connects, within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<async_nats::Client, ClusterError> {
        self.check_job()?;
        let mut opts = async_nats::ConnectOptions::new()
            .connection_timeout(self.connect_timeout)
            .name(format!("brood job {}", self.job))
            // Replies (JetStream's answers, the tasks and results pulled)
            // come to the job's own inboxes, `_INBOX_<job>.…`, not the
            // shared `_INBOX.…`: a server can then let each job's user read
            // its own replies only (see the permissions in the docs).
            .custom_inbox_prefix(format!("_INBOX_{}", self.job));
        opts = match &self.credentials {
            Credentials::None => opts,
            Credentials::UserPassword { user, password } => {
                opts.user_and_password(user.clone(), password.clone())
            }
            Credentials::Token(t) => opts.token(t.clone()),
            Credentials::NKey(seed) => opts.nkey(seed.clone()),
            Credentials::CredsFile(path) => {
                opts.credentials_file(path)
                    .await
                    .map_err(|e| ClusterError::Credentials {
                        path: path.clone(),
                        cause: e.to_string(),
                    })?
            }
        };
        if let Some(roots) = &self.tls_roots {
            opts = opts.add_root_certificates(roots.clone());
        }
        if self.require_tls {
            opts = opts.require_tls(true);
        }
        let connect = async_nats::connect_with_options(self.url.as_str(), opts);
        // The client's own timeout covers one attempt's TCP connect; the
        // whole handshake gets the same bound here.
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(ClusterError::Connect {
                url: self.url.clone(),
                cause: e.to_string(),
            }),
            Err(_) => Err(ClusterError::Connect {
                url: self.url.clone(),
                cause: format!("no answer within {:?}", self.connect_timeout),
            }),
        }
    }

    /// The job's two streams, made if missing.
    pub(crate) async fn streams(
        &self,
        js: &jetstream::Context,
    ) -> Result<(stream::Stream, stream::Stream), ClusterError> {
        let make = |kind: &'static str, retention, max_age, what: &'static str| async move {
            js.get_or_create_stream(stream::Config {
                name: format!("BROOD_{}_{}", self.job, kind.to_uppercase()),
                subjects: vec![format!("brood.{}.{kind}.*", self.job)],
                retention,
                max_age,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::server(what, e))
        };
        let tasks = make(
            "tasks",
            stream::RetentionPolicy::WorkQueue,
            Duration::ZERO,
            "create the job's task stream",
        )
        .await?;
        let results = make(
            "results",
            stream::RetentionPolicy::Limits,
            RESULTS_KEPT,
            "create the job's result stream",
        )
        .await?;
        Ok((tasks, results))
    }

    /// The job's initializers (the last one of each key kept), made if
    /// missing.
    pub(crate) async fn inits(
        &self,
        js: &jetstream::Context,
    ) -> Result<stream::Stream, ClusterError> {
        js.get_or_create_stream(stream::Config {
            name: format!("BROOD_{}_INITS", self.job),
            subjects: vec![format!("brood.{}.init.*", self.job)],
            storage: stream::StorageType::File,
            max_messages_per_subject: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::server("create the job's initializer stream", e))
    }

    /// The job's shared data (each `SharedSlice` a call's items name, by
    /// id), made if missing.
    pub(crate) async fn data_store(
        &self,
        js: &jetstream::Context,
    ) -> Result<async_nats::jetstream::object_store::ObjectStore, ClusterError> {
        let bucket = format!("BROOD_{}_DATA", self.job);
        if let Ok(store) = js.get_object_store(&bucket).await {
            return Ok(store);
        }
        js.create_object_store(async_nats::jetstream::object_store::Config {
            bucket,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::server("create the job's shared data store", e))
    }

    /// Keeps an initializer's bytes on the server; its key.
    pub(crate) async fn keep_initializer(
        &self,
        js: &jetstream::Context,
        bytes: Vec<u8>,
    ) -> Result<String, ClusterError> {
        self.inits(js).await?;
        let key = init_key(&bytes);
        js.publish(self.init_subject(&key), bytes.into())
            .await
            .map_err(|e| ClusterError::server("keep the initializer", e))?
            .await
            .map_err(|e| ClusterError::server("keep the initializer", e))?;
        Ok(key)
    }

    /// The agents' consumer, made or updated with these settings.
    pub(crate) async fn agents_consumer(
        &self,
        tasks: &stream::Stream,
        ack_wait: Duration,
        max_deliver: u32,
    ) -> Result<(), ClusterError> {
        tasks
            .create_consumer(consumer::pull::Config {
                durable_name: Some(AGENTS.to_string()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_deliver: i64::from(max_deliver),
                filter_subject: format!("brood.{}.tasks.*", self.job),
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::server("create the agents' consumer", e))?;
        Ok(())
    }
}

/// The first item and the count a chunk's (or its outcomes') headers give.
pub(crate) fn chunk_range(headers: Option<&async_nats::HeaderMap>) -> Option<(usize, usize)> {
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .and_then(|v| v.as_str().parse::<usize>().ok())
    };
    Some((header(ITEM)?, header(COUNT)?))
}

/// A job's or a call's name: 1 to 64 letters, digits, `-` and `_` (it
/// becomes a subject token and part of stream names).
pub(crate) fn check_name(name: &str) -> Result<(), ()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(()) }
}

/// The name of shared data `id` in the job's data store.
pub(crate) fn data_name(id: u64) -> String {
    format!("{id:016x}")
}

/// The key of an initializer's bytes: FNV-1a, 64 bits, in hex (agents keep
/// one pool per key; a collision would need two initializers of one job).
pub(crate) fn init_key(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_subjects() {
        let t = Target::new("nats://127.0.0.1:1", "etl-7");
        assert!(t.check_job().is_ok());
        assert_eq!(t.tasks_stream(), "BROOD_etl-7_TASKS");
        assert_eq!(t.map_of("brood.etl-7.tasks.abc"), Some("abc"));
        assert_eq!(t.map_of("brood.etl-7.results.abc"), None);
        assert_eq!(t.map_of("brood.etl-7.tasks."), None);
        for bad in ["", "a.b", "a b", "*", ">", &"x".repeat(65)] {
            assert!(Target::new("nats://x", bad).check_job().is_err(), "{bad}");
        }
    }
}
