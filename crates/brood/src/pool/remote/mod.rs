//! The seam for pools whose workers run on other machines: a task as bytes,
//! run by a local [`Pool`] wherever the same build runs, its result as bytes.
//!
//! brood's core has no network code. A crate that moves tasks between
//! machines (over a message broker, say) needs three things of it, and this
//! module is all three:
//!
//! 1. **Function identity across machines.** A task's function crosses as
//!    its offset in the executable (as it does to a local worker), named by
//!    the [`BuildId`] of the executable: the linker's build id
//!    (`.note.gnu.build-id`), or the SHA-256 of the file where there is none.
//!    Both are the same for every copy of one build on any machine, and
//!    differ between builds; device, inode and mtime (what a local worker
//!    compares) are not used. A task made by another build is refused,
//!    naming both builds: never a jump into other code. No code travels: a
//!    machine runs only what its own binary holds.
//! 2. **The task codec.** [`encode_task`] (or [`encode_task_with`]) makes the
//!    bytes of one task, [`decode_result`] reads the bytes of its outcome:
//!    the function's value, or the [`TaskError`] that stands for it.
//! 3. **Running received tasks locally.** [`Pool::submit_encoded`] runs a
//!    task's bytes on the pool's workers and answers the outcome's bytes
//!    (an [`EncodedHandle`]). The workers keep every local guarantee: a
//!    segfault, abort, `exit` or timeout fails only that task, with the same
//!    [`TaskError`] as in a local map.
//!
//! ```
//! # brood::init();
//! use brood::remote::{decode_result, encode_task};
//! use brood::{Pool, TaskError};
//! fn square(x: u64) -> u64 { x * x }
//! fn crash(_: u64) -> u64 { std::process::abort() }
//!
//! // The driver: a task as bytes, to send anywhere the same build runs.
//! let task = encode_task(square, &7)?;
//! let doomed = encode_task(crash, &0)?;
//!
//! // The agent (another process, another machine): its own local pool.
//! let pool = Pool::new(2)?;
//! let outcome = pool.submit_encoded(&task)?.wait();
//! let crashed = pool.submit_encoded(&doomed)?.wait();
//!
//! // The driver again, with the bytes the agent sent back.
//! assert_eq!(decode_result::<u64>(&outcome), Ok(49));
//! assert!(matches!(
//!     decode_result::<u64>(&crashed),
//!     Err(TaskError::WorkerDied { signal: Some(s), .. }) if s == brood::Signal::ABORT
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Trust.** A task names code by offset: whoever can hand a process task
//! bytes can make it run any function of its binary (the offsets are checked
//! to lie in its code, not to name a task function). Task bytes must come
//! only from a channel as trusted as the program itself: a broker whose
//! subjects only the job's driver may publish to. A [`SharedSlice`] does not
//! cross machines: a task whose argument or result holds one fails.
//!
//! [`SharedSlice`]: crate::SharedSlice

mod chunk;
mod init;
mod outcomes;
mod shared_data;
mod varint;
mod withdraw;

pub use init::encode_initializer;

pub use chunk::{ChunkEncoder, SubmittedChunk, chunk_len, chunk_shares, split_chunk};
pub use outcomes::{decode_results, failed_outcomes, failures, for_each_result};
pub use shared_data::SharedData;
pub use withdraw::{CtrlC, Withdraw};

use super::calls::PoolCall;
use super::options::CallOptions;
use super::{Pool, TaskError, state, worker};
use crate::sys::buildid;
use crate::sys::image::{self, FnRef, PortableRef};
use crate::{ExitStatus, Signal};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::fmt;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

/// The first bytes of every encoded task and outcome: what they are, and the
/// format's version.
const TASK_MAGIC: [u8; 4] = *b"bdT1";
const OUTCOME_MAGIC: [u8; 4] = *b"bdO1";

/// The identity of one build of the executable, the same on every machine
/// that runs a copy of it: the linker's build id, or the SHA-256 of the file
/// where the executable has none.
///
/// ```
/// let here = brood::remote::BuildId::current()?;
/// // Shown as `build-id <hex>` or `sha256 <hex>`.
/// assert!(here.to_string().starts_with("build-id ") || here.to_string().starts_with("sha256 "));
/// # Ok::<(), brood::remote::RemoteError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BuildId {
    kind: IdKind,
    bytes: Vec<u8>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum IdKind {
    /// `NT_GNU_BUILD_ID`.
    Gnu,
    /// SHA-256 of the file.
    Sha256,
}

impl BuildId {
    /// This executable's build identity (read once, then kept).
    pub fn current() -> Result<BuildId, RemoteError> {
        static CURRENT: OnceLock<BuildId> = OnceLock::new();
        if let Some(id) = CURRENT.get() {
            return Ok(id.clone());
        }
        let id = match buildid::gnu_build_id() {
            Some(bytes) => BuildId {
                kind: IdKind::Gnu,
                bytes,
            },
            None => BuildId {
                kind: IdKind::Sha256,
                bytes: buildid::exe_sha256()
                    .map_err(|e| RemoteError::Unreadable(e.to_string()))?
                    .to_vec(),
            },
        };
        Ok(CURRENT.get_or_init(|| id).clone())
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            IdKind::Gnu => "build-id ",
            IdKind::Sha256 => "sha256 ",
        })?;
        self.bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildId({self})")
    }
}

/// Why a task cannot be encoded, or received bytes cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The executable's identity could not be read.
    #[error("cannot read the executable to name its build: {0}")]
    Unreadable(String),
    /// The function cannot cross (see [`crate::Error::Crossing`]).
    #[error("{0}")]
    Crossing(String),
    /// The argument could not be encoded.
    #[error("cannot encode the argument: {0}")]
    Encode(String),
    /// The bytes are not an encoded task (or outcome) of this format.
    #[error("not a brood {what}: {cause}")]
    Malformed {
        /// "task" or "outcome".
        what: &'static str,
        /// What was wrong.
        cause: String,
    },
    /// The task was made by another build of the program.
    #[error(
        "the task was made by {sent}, but this process runs {here}: run the same build on every machine"
    )]
    OtherBuild {
        /// The build that made the task.
        sent: BuildId,
        /// This process's build.
        here: BuildId,
    },
}

/// A task as it crosses.
#[derive(Serialize, Deserialize)]
struct Envelope {
    build: BuildId,
    func: PortableRef,
    arg: Vec<u8>,
}

/// The bytes of one task: `f` applied to `arg`, to run with
/// [`Pool::submit_encoded`] in any process of the same build.
pub fn encode_task<A, R>(f: fn(A) -> R, arg: &A) -> Result<Vec<u8>, RemoteError>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    envelope(worker::fn_ref(f), arg)
}

/// [`encode_task`] for a function of the worker's state (see
/// [`Pool::map_with`]): the receiving pool's initializer makes the state.
pub fn encode_task_with<S, A, R>(f: fn(&S, A) -> R, arg: &A) -> Result<Vec<u8>, RemoteError>
where
    S: 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    envelope(state::task_ref(f), arg)
}

fn envelope<A: Serialize + 'static>(
    func: Result<FnRef, image::CrossingError>,
    arg: &A,
) -> Result<Vec<u8>, RemoteError> {
    let func = func.map_err(|e| RemoteError::Crossing(e.to_string()))?;
    let mut encoded = Vec::new();
    crate::wire::frame::encode_value(&mut encoded, arg)
        .map_err(|e| RemoteError::Encode(crate::wire::frame::encode_error(&e)))?;
    let env = Envelope {
        build: BuildId::current()?,
        func: func.portable(),
        arg: encoded,
    };
    let mut out = TASK_MAGIC.to_vec();
    postcard::to_io(&env, &mut out).map_err(|e| RemoteError::Encode(e.to_string()))?;
    Ok(out)
}

/// The build that made an encoded task.
///
/// ```
/// use brood::remote::{BuildId, encode_task, task_build};
/// fn inc(x: u32) -> u32 { x + 1 }
/// let task = encode_task(inc, &1)?;
/// assert_eq!(task_build(&task)?, BuildId::current()?);
/// # Ok::<(), brood::remote::RemoteError>(())
/// ```
pub fn task_build(task: &[u8]) -> Result<BuildId, RemoteError> {
    Ok(open(task)?.build)
}

fn open(task: &[u8]) -> Result<Envelope, RemoteError> {
    let malformed = |cause: String| RemoteError::Malformed {
        what: "task",
        cause,
    };
    let body = task
        .strip_prefix(&TASK_MAGIC)
        .ok_or_else(|| malformed("it does not start with the task magic".into()))?;
    postcard::from_bytes(body).map_err(|e| malformed(e.to_string()))
}

/// The function and argument of a task made by this very build, or why not.
fn receive(task: &[u8]) -> Result<(FnRef, Vec<u8>), RemoteError> {
    let env = open(task)?;
    Ok((receive_func(env.build, &env.func)?, env.arg))
}

/// The function a task or chunk of `build` names, if that is this build.
fn receive_func(build: BuildId, func: &PortableRef) -> Result<FnRef, RemoteError> {
    let here = BuildId::current()?;
    if build != here {
        return Err(RemoteError::OtherBuild { sent: build, here });
    }
    image::localize(func).map_err(|e| RemoteError::Crossing(e.to_string()))
}

/// A [`TaskError`] as it crosses.
#[derive(Serialize, Deserialize)]
enum WireError {
    Panicked {
        message: String,
        location: Option<String>,
    },
    WorkerDied {
        pid: u32,
        signal: Option<i32>,
        status: Option<i32>,
    },
    Timeout {
        pid: u32,
        timeout: Duration,
    },
    Interrupted,
    Failed {
        reason: String,
    },
}

impl From<&TaskError> for WireError {
    fn from(e: &TaskError) -> WireError {
        // A variant added later crosses as its message.
        #[allow(unreachable_patterns)]
        match e {
            TaskError::Panicked { message, location } => WireError::Panicked {
                message: message.clone(),
                location: location.clone(),
            },
            TaskError::WorkerDied {
                pid,
                signal,
                status,
            } => WireError::WorkerDied {
                pid: *pid,
                signal: signal.map(Signal::as_raw),
                status: status.map(|s| s.to_wait_status()),
            },
            TaskError::Timeout { pid, timeout } => WireError::Timeout {
                pid: *pid,
                timeout: *timeout,
            },
            TaskError::Interrupted => WireError::Interrupted,
            TaskError::Failed { reason } => WireError::Failed {
                reason: reason.clone(),
            },
            other => WireError::Failed {
                reason: other.to_string(),
            },
        }
    }
}

impl From<WireError> for TaskError {
    fn from(e: WireError) -> TaskError {
        match e {
            WireError::Panicked { message, location } => TaskError::Panicked { message, location },
            WireError::WorkerDied {
                pid,
                signal,
                status,
            } => TaskError::WorkerDied {
                pid,
                signal: signal.and_then(Signal::from_raw),
                status: status.and_then(ExitStatus::from_wait_status),
            },
            WireError::Timeout { pid, timeout } => TaskError::Timeout { pid, timeout },
            WireError::Interrupted => TaskError::Interrupted,
            WireError::Failed { reason } => TaskError::Failed { reason },
        }
    }
}

/// The bytes of a task's outcome: its encoded value, or why it has none
/// (what an agent sends back when it answers a task itself, say because its
/// pool could not start).
///
/// ```
/// use brood::TaskError;
/// use brood::remote::{decode_result, encode_outcome};
/// let why = TaskError::Failed { reason: "no worker could start".into() };
/// let bytes = encode_outcome(&Err(why.clone()));
/// assert_eq!(decode_result::<u32>(&bytes), Err(why));
/// ```
pub fn encode_outcome(outcome: &Result<Vec<u8>, TaskError>) -> Vec<u8> {
    let wire: Result<&[u8], WireError> = match outcome {
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(WireError::from(e)),
    };
    let mut out = OUTCOME_MAGIC.to_vec();
    // Writing to a Vec fails only for a value serde cannot encode, and
    // strings, numbers and bytes always can.
    let _ = postcard::to_io(&wire, &mut out);
    out
}

/// The value of a task from the bytes of its outcome; an outcome that does
/// not decode (or not as an `R`) is a [`TaskError::Failed`] saying so.
pub fn decode_result<R: DeserializeOwned + 'static>(outcome: &[u8]) -> Result<R, TaskError> {
    let failed = |reason: String| TaskError::Failed { reason };
    let body = outcome
        .strip_prefix(&OUTCOME_MAGIC)
        .ok_or_else(|| failed("the outcome does not start with the outcome magic".into()))?;
    let wire: Result<Vec<u8>, WireError> = postcard::from_bytes(body)
        .map_err(|e| failed(format!("the outcome did not decode: {e}")))?;
    let bytes = wire.map_err(TaskError::from)?;
    crate::wire::frame::decode_value::<R>(&bytes).map_err(|e| {
        failed(format!(
            "cannot decode the result as a {}: {e}",
            std::any::type_name::<R>()
        ))
    })
}

/// A task given with [`Pool::submit_encoded`]: its outcome's bytes (for
/// [`decode_result`]) once it is done, by [`EncodedHandle::wait`] or
/// `.await`. Dropping it does not cancel the task.
#[derive(Debug)]
pub struct EncodedHandle(Handle);

#[derive(Debug)]
enum Handle {
    Running(super::TaskHandle<()>),
    /// Refused before it ran (other build, malformed bytes).
    Answered(Vec<u8>),
}

impl EncodedHandle {
    /// Waits for the outcome's bytes.
    pub fn wait(&self) -> Vec<u8> {
        match &self.0 {
            Handle::Running(h) => encode_outcome(&h.wait_encoded()),
            Handle::Answered(bytes) => bytes.clone(),
        }
    }

    /// Whether the outcome is in.
    pub fn is_finished(&self) -> bool {
        match &self.0 {
            Handle::Running(h) => h.is_finished(),
            Handle::Answered(_) => true,
        }
    }
}

impl Future for EncodedHandle {
    type Output = Vec<u8>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<u8>> {
        match &self.0 {
            Handle::Running(h) => h.poll_encoded(cx).map(|r| encode_outcome(&r)),
            Handle::Answered(bytes) => Poll::Ready(bytes.clone()),
        }
    }
}

impl Pool {
    /// Runs an encoded task (from [`encode_task`], in this or another process
    /// of the same build) on a worker, like [`Pool::submit`]. A task of
    /// another build or bytes that are no task are answered at once with a
    /// [`TaskError::Failed`] saying why (naming both builds), never run.
    /// The outer error: the pool is closed.
    pub fn submit_encoded(&self, task: &[u8]) -> crate::Result<EncodedHandle> {
        self.with(CallOptions::new()).submit_encoded(task)
    }
}

impl PoolCall<'_> {
    /// [`Pool::submit_encoded`] with this call's options (its timeouts).
    ///
    /// ```
    /// # brood::init();
    /// use brood::remote::{decode_result, encode_task};
    /// use brood::{CallOptions, Pool, TaskError};
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// let pool = Pool::new(1)?;
    /// let opts = CallOptions::new().timeout(Duration::from_millis(100));
    /// let out = pool.with(opts).submit_encoded(&encode_task(nap, &60_000)?)?.wait();
    /// assert!(matches!(decode_result::<u64>(&out), Err(TaskError::Timeout { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_encoded(self, task: &[u8]) -> crate::Result<EncodedHandle> {
        match receive(task) {
            Ok((func, arg)) => Ok(EncodedHandle(Handle::Running(self.enqueue_encoded(
                func,
                arg,
                Vec::new(),
            )?))),
            Err(e) => Ok(EncodedHandle(Handle::Answered(encode_outcome(&Err(
                TaskError::Failed {
                    reason: e.to_string(),
                },
            ))))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(x: u32) -> u32 {
        x + 1
    }

    #[test]
    fn every_task_error_crosses_unchanged() {
        let errors = [
            TaskError::Panicked {
                message: "boom".into(),
                location: Some("a.rs:1:2".into()),
            },
            TaskError::WorkerDied {
                pid: 42,
                signal: Some(Signal::SEGV),
                status: ExitStatus::from_wait_status(Signal::SEGV.as_raw()),
            },
            TaskError::WorkerDied {
                pid: 43,
                signal: None,
                status: Some(ExitStatus::Exited(3)),
            },
            TaskError::Timeout {
                pid: 7,
                timeout: Duration::from_millis(1500),
            },
            TaskError::Interrupted,
            TaskError::Failed {
                reason: "why".into(),
            },
        ];
        for e in errors {
            assert_eq!(
                decode_result::<u8>(&encode_outcome(&Err(e.clone()))),
                Err(e)
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"bdT1", b"bdT1\xff\xff\xff", b"xxxxxxxxxxxx"] {
            assert!(matches!(
                receive(bytes),
                Err(RemoteError::Malformed { what: "task", .. })
            ));
            assert!(matches!(
                decode_result::<u32>(bytes),
                Err(TaskError::Failed { .. })
            ));
        }
        // A value of another type.
        let out = encode_outcome(&Ok(vec![0xff]));
        assert!(matches!(
            decode_result::<bool>(&out),
            Err(TaskError::Failed { reason }) if reason.contains("bool")
        ));
    }

    #[test]
    fn another_build_is_refused_naming_both() {
        let task = encode_task(inc, &1).unwrap();
        let mut env = open(&task).unwrap();
        env.build.bytes[0] ^= 0xff;
        let sent = env.build.clone();
        let mut forged = TASK_MAGIC.to_vec();
        postcard::to_io(&env, &mut forged).unwrap();
        let err = receive(&forged).unwrap_err();
        let here = BuildId::current().unwrap();
        assert_eq!(
            err,
            RemoteError::OtherBuild {
                sent: sent.clone(),
                here: here.clone()
            }
        );
        let text = err.to_string();
        assert!(
            text.contains(&sent.to_string()) && text.contains(&here.to_string()),
            "{text}"
        );
    }
}
