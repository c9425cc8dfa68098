//! Why a cluster pool or an agent cannot go on.

use std::path::PathBuf;

/// Why a [`ClusterPool`](crate::ClusterPool) or an [`Agent`](crate::Agent)
/// cannot start or go on. (One item's failure is a `brood::TaskError`
/// instead.) A driver's `map` returns it inside a `brood::Error::Io`, so
/// that its signature is the local pool's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The job name is not letters, digits, `-` and `_` (at most 64).
    #[error("job name {0:?} must be 1 to 64 letters, digits, '-' or '_'")]
    BadJobName(String),
    /// A call's name (see `ClusterCall::named`) is not letters, digits, `-`
    /// and `_` (at most 64).
    #[error("call name {0:?} must be 1 to 64 letters, digits, '-' or '_'")]
    BadCallName(String),
    /// No server answered at the URL, or it refused us (credentials).
    #[error("cannot connect to the NATS server at {url}: {cause}")]
    Connect {
        /// The server's URL.
        url: String,
        /// The client's words.
        cause: String,
    },
    /// A credentials file could not be read.
    #[error("cannot read the NATS credentials file {}: {cause}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: String,
    },
    /// The server refused or failed a JetStream request.
    #[error("cannot {what}: {cause}")]
    Server {
        /// What was being done.
        what: &'static str,
        /// The server's or client's words.
        cause: String,
    },
    /// The server has no such job: none of its drivers or agents ever ran
    /// there (the job's task stream is missing).
    #[error("no job {job:?} on the NATS server at {url}: no driver or agent of it has been there")]
    NoSuchJob {
        /// The job's name.
        job: String,
        /// The server's URL.
        url: String,
    },
    /// The function or an argument cannot cross (see `brood::remote`).
    #[error("{0}")]
    Remote(#[from] brood::remote::RemoteError),
    /// The agent's local pool could not be started or used.
    #[error("the agent's pool: {0}")]
    Pool(String),
    /// The environment asked for an agent, wrongly.
    #[error("{0}")]
    Environment(String),
}

impl ClusterError {
    pub(crate) fn server(what: &'static str, cause: impl std::fmt::Display) -> ClusterError {
        ClusterError::Server {
            what,
            cause: cause.to_string(),
        }
    }
}

impl From<ClusterError> for brood::Error {
    fn from(e: ClusterError) -> brood::Error {
        brood::Error::Io {
            what: "brood-cluster".to_string(),
            source: std::io::Error::other(e),
        }
    }
}
