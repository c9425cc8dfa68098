//! The wire: every byte brood sends between its processes, in one place.
//!
//! Two shapes of transport, one set of typed messages (serde, encoded with
//! `postcard`, a maintained compact format):
//!
//! - **Byte streams** (pipes, a pool's sockets) carry [`frame`]s: a 16-byte
//!   header (magic, [`FrameKind`], payload length) and the payload. A
//!   `Process`'s argument and result, a pool's task batches and result frames.
//! - **Datagrams** (the fork server's and the Spawn child's `SOCK_SEQPACKET`
//!   sockets, which keep message boundaries and carry descriptors) carry one
//!   message each: [`ToServer`], [`ToClient`], [`Request`].
//!
//! Nothing read is trusted: a wrong magic, an unknown kind, a short or
//! undecodable payload is an error of that one message, never a panic.

pub(crate) mod frame;
pub(crate) mod numbers;

pub(crate) use frame::{DecodeError, FrameKind};

use crate::policy::Policy;
use crate::sys::image::FnRef;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// What a child must run: the function, its policies, its name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) func: FnRef,
    /// The policies the child arms itself (its `on_exit` belongs to the parent).
    pub(crate) policy: Policy,
    /// Python's `Process.name`.
    pub(crate) name: String,
    /// The classic signals (bit `sig - 1`) the client ignored at `start()`:
    /// a fork-server child ignores exactly those (a Fork or Spawn child
    /// inherits them from the caller itself).
    pub(crate) ignored: u64,
    /// The soft descriptor limit the program would give this child at its
    /// start (a fork-server child sets it just before its function runs; a
    /// Spawn child gets it through exec; `None` there).
    pub(crate) nofile: Option<u64>,
}

impl Request {
    pub(crate) fn new(func: FnRef, policy: &Policy, name: &str) -> Request {
        Request {
            func,
            policy: *policy,
            name: name.to_string(),
            ignored: 0,
            nofile: None,
        }
    }
}

/// Client → fork server.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToServer {
    /// The first message, with the client's pidfd attached: how many spares
    /// to keep forked ahead.
    Hello { spares: u32 },
    /// Fork a child for `req`; the argument pipe's read end and the result
    /// pipe's write end are attached, and maybe a third descriptor that the
    /// child's function takes (a pool worker's channel).
    /// With `pidfd`, the child's pidfd comes with the answer; without, the
    /// server keeps it (the client is near its descriptor limit) and
    /// signals the child for the client ([`ToServer::Signal`]).
    Start {
        id: u64,
        req: Box<Request>,
        pidfd: bool,
    },
    /// Send `sig` to the child started for request `id` (the pid alone could
    /// have been reused by a later child), if it has not been reaped. Also
    /// how the client kills a child it could not take hold of.
    Signal { pid: u32, id: u64, sig: i32 },
    /// The client took spare `pid` for request `id` with these policies (sent
    /// before the request goes to the spare itself, so that the server always
    /// knows a claimed spare's parent-death policy before the spare runs).
    /// `serial` is the spare's (see [`ToClient::Spare`]): a pid alone could
    /// name a later child.
    Claimed {
        pid: u32,
        serial: u64,
        id: u64,
        policy: Policy,
    },
    /// Keep this many spares from now on.
    Spares { count: u32 },
}

/// Fork server → client.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToClient {
    /// The server is up (answers `Hello`).
    Ready { pid: u32 },
    /// The child for request `id` runs; its pidfd is attached.
    Started { id: u64, pid: u32 },
    /// Request `id` could not be started: what failed, and the kernel's errno.
    Failed {
        id: u64,
        error: String,
        errno: Option<i32>,
    },
    /// A child ended: its classic wait status.
    Exited { pid: u32, status: i32 },
    /// A spare is forked and waits for a request: its pidfd and the client's
    /// end of its own channel are attached. The client sends it a
    /// [`ToServer::Start`] (after telling the server, [`ToServer::Claimed`]).
    Spare { pid: u32, serial: u64 },
}

/// What a pool worker starts with (its channel is handed down beside it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Boot {
    /// Sent back first, so that the pool knows the channel reached the
    /// worker it started for that slot.
    pub(crate) token: u64,
    /// Send the batch of results once it is this old (0: after every item).
    pub(crate) flush_after_us: u64,
    /// The worker's initializer and its encoded argument, run once before
    /// the hello; its value is the state `fn(&S, A) -> R` tasks see.
    pub(crate) init: Option<(FnRef, Vec<u8>)>,
}

/// The head of a pool's [`FrameKind::Task`] frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskHead {
    pub(crate) func: FnRef,
    pub(crate) count: u32,
    /// Each result goes out as soon as it is done: the items have a timeout
    /// (or a soft one), which the pool counts from the previous result.
    pub(crate) prompt: bool,
}

/// A panic, as it crosses ([`FrameKind::Panic`]): its message and where it
/// happened (`file:line:column`), when the panic hook saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PanicReport {
    pub(crate) message: String,
    pub(crate) location: Option<String>,
}

impl PanicReport {
    /// Reads a report; one that does not decode still says so, in its message.
    pub(crate) fn decode(payload: &[u8]) -> PanicReport {
        postcard::from_bytes(payload).unwrap_or_else(|e| PanicReport {
            message: format!("(the panic report did not decode: {e})"),
            location: None,
        })
    }
}

/// The reason carried by a [`FrameKind::Failed`] frame.
pub(crate) fn decode_reason(payload: &[u8]) -> String {
    postcard::from_bytes::<String>(payload)
        .unwrap_or_else(|e| format!("(the reason did not decode: {e})"))
}

/// One datagram message, encoded.
pub(crate) fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(msg)
}

/// One datagram message, decoded.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    postcard::from_bytes(bytes).map_err(|cause| DecodeError::Postcard {
        type_name: std::any::type_name::<T>(),
        cause,
    })
}
