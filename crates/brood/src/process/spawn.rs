//! [`StartMethod::Spawn`](super::StartMethod::Spawn): re-execute this program;
//! [`init`](super::init) in the child reads the request and runs the function.
//!
//! The child's stdin is one end of a private `SOCK_SEQPACKET` socketpair (no
//! filesystem name); the marker `__BROOD_CHILD=spawn:<parent pid>` tells `init`
//! so. Over it comes one message, the request (the function's offsets, the
//! policies), with two descriptors attached: the read end of the argument pipe
//! and the write end of the result pipe. `init` then points stdin at
//! `/dev/null`, as Python's spawn does.
//!
//! **Parent-death signal.** The child is created with brood's own
//! [`Command`](crate::Command): `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`, so
//! its cost does not grow with our memory and its pidfd comes from the kernel
//! with it. Between clone and exec the new process makes its group or session
//! and arms `PR_SET_PDEATHSIG`, then compares its parent pid with ours: if we
//! died at any point before the arming, it has already been re-parented, sees
//! another parent pid and sends itself the signal; if we die after, the kernel
//! sends it — and the setting survives `execve` (for a binary that is not
//! set-uid or file-capable). No window is left, and none of the program's code
//! runs before. The kernel ties the signal to the creating *thread*, so such a
//! child is created from a thread that lives as long as the process
//! (`crate::spawner`).

use super::child::{self, CODE_SETUP, fn_ref, send_arg};
use crate::policy::Policy;
use crate::runtime::ENV;
use crate::sys::{self, socket};
use crate::wire::{self, Request};
use crate::{Child, Error, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::os::fd::{AsFd, OwnedFd};

/// The path that re-executes this very file, even if it was moved or replaced.
pub(crate) const SELF_EXE: &str = "/proc/self/exe";

/// This program's `argv[0]`, which names brood's processes in `ps`.
pub(crate) fn argv0() -> std::ffi::OsString {
    std::env::args_os()
        .next()
        .unwrap_or_else(|| SELF_EXE.into())
}

/// This program's real path, for errors (`/proc/self/exe` names nothing to a
/// user).
pub(crate) fn this_program() -> String {
    std::fs::read_link(SELF_EXE).map_or_else(
        |_| argv0().to_string_lossy().into_owned(),
        |p| p.display().to_string(),
    )
}

/// How `ps` shows a process brood made for this program: `myapp (brood what)`.
pub(crate) fn title(program: &std::ffi::OsStr, what: &str) -> std::ffi::OsString {
    let mut t = program.to_os_string();
    t.push(format!(" (brood {what})"));
    t
}

pub(super) fn start<A, R>(
    f: fn(A) -> R,
    arg: &crate::wire::frame::Encoded<'_>,
    policy: Policy,
    name: &str,
    handed_down: Option<OwnedFd>,
) -> Result<(Child, OwnedFd)>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let req = Request::new(fn_ref(f)?, &policy, name);
    let msg = wire::encode(&req)
        .map_err(|e| Error::io("encoding the request", std::io::Error::other(e)))?;
    let pipes = || -> std::io::Result<_> {
        let (ours, theirs) = socket::seqpacket_pair()?;
        let (arg_r, arg_w) = sys::pipe::pipe()?;
        let (res_r, res_w) = sys::pipe::pipe()?;
        for end in [ours.as_fd(), arg_w.as_fd(), res_r.as_fd()] {
            sys::fork::child_end(end);
        }
        Ok((ours, theirs, arg_r, arg_w, res_r, res_w))
    };
    let (ours, theirs, arg_r, arg_w, res_r, res_w) = crate::fdlimit::with_room(pipes)
        .map_err(|e| crate::fdlimit::error("creating pipes for a child", e))?;

    // brood's own Command: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD), so the
    // cost does not grow with our memory and the pidfd comes with the child;
    // the group or session and the parent-death signal are set up before exec.
    let mut cmd = crate::Command::new(SELF_EXE);
    // `ps` shows it as `myapp (brood <name>)`, not as /proc/self/exe.
    cmd.arg0(title(&argv0(), name))
        .env(ENV, format!("spawn:{}", sys::getpid()))
        .stdin(crate::Stdio::from(theirs))
        .set_policy(policy);
    let child = cmd
        .spawn()
        .map_err(|e| match e {
            Error::Spawn { cause, .. } => Error::Spawn {
                program: this_program(),
                cause,
            },
            e => e,
        })?
        .into_child();
    drop(cmd); // closes our copy of the child's end of the socket
    let pid = child.pid();

    let mut fds = vec![arg_r.as_fd(), res_w.as_fd()];
    fds.extend(handed_down.as_ref().map(|fd| fd.as_fd()));
    match socket::send_with_fds(ours.as_fd(), &msg, &fds) {
        Ok(()) => {}
        // Died before reading: `join` will say how.
        Err(e)
            if e.raw_os_error() == Some(libc::EPIPE)
                || e.raw_os_error() == Some(libc::ECONNRESET) => {}
        Err(e) => {
            let _ = child.kill();
            return Err(Error::io(
                format!("sending the request to process {pid}"),
                e,
            ));
        }
    }
    drop(fds);
    drop((arg_r, res_w, handed_down));
    if !acknowledged(&ours, &child) {
        // It ended without taking the request. Killed by a signal: `join`
        // says so. Exited: it ran the program's own `main` — `brood::init()`
        // did not run first.
        let status = child.wait()?;
        if status.signal().is_none() {
            return Err(Error::NotInitialised { pid, marker: ENV });
        }
    }
    drop(ours);
    send_arg(arg_w, arg, &format!("process {pid}"))?;
    Ok((child, res_r))
}

/// How long a re-executed child may take to reach `brood::init()` and take
/// its request (a loaded machine can be slow to exec; a child that died is
/// seen at once, through its pidfd).
const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits for the child's acknowledgement of the request (a byte that `init`
/// sends once it read it); false if the child ended, or closed the channel,
/// first. A child still silent after [`ACK_TIMEOUT`] is running something
/// else — the program's `main` — and is killed.
fn acknowledged(sock: &OwnedFd, child: &Child) -> bool {
    let Some(pidfd) = child.pidfd() else {
        return false;
    };
    match sys::pidfd::wait_any(&[sock.as_fd(), pidfd], Some(ACK_TIMEOUT)) {
        Ok(Some(0)) => {
            let mut ack = [0u8; 1];
            matches!(socket::recv_with_fds(sock.as_fd(), &mut ack), Ok((1, _)))
        }
        Ok(Some(_)) => false,
        _ => {
            let _ = child.kill();
            false
        }
    }
}

/// `init` in a spawned child: read the request, arm, run, exit.
pub(super) fn child_main(parent: u32) -> ! {
    let code = match serve_one(parent) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("brood: spawned child {}: {msg}", sys::getpid());
            CODE_SETUP
        }
    };
    // A fresh image: libc's exit is right here (our own children's OnExit runs
    // from brood's atexit hook, C stdio is flushed).
    std::process::exit(code)
}

fn serve_one(parent: u32) -> std::result::Result<i32, String> {
    ignore_sigpipe();
    let sock =
        sys::pipe::dup_high(sys::pipe::borrow_std(0)).map_err(|e| format!("dup(stdin): {e}"))?;
    sys::pipe::null_onto(0).map_err(|e| format!("stdin to /dev/null: {e}"))?;
    let mut buf = vec![0u8; 64 << 10];
    let (n, fds) = socket::recv_with_fds(sock.as_fd(), &mut buf)
        .map_err(|e| format!("reading the request: {e}"))?;
    // Tell the parent that init ran and took the request (it waits for this
    // to tell a missing `brood::init()` from a slow start).
    let _ = socket::send_with_fds(sock.as_fd(), b"k", &[]);
    drop(sock);
    let req: Request = wire::decode(&buf[..n]).map_err(|e| {
        if n == 0 {
            "the parent closed the channel before sending a request".to_string()
        } else {
            format!("the request does not decode: {e}")
        }
    })?;
    // The cgroup, group or session and the parent-death signal were set up
    // before exec (see the module doc); `parent` is what that check compared
    // with.
    let fds = child::request_fds(fds, false)?;
    let _ = parent;
    Ok(child::run_request(&req, fds.arg, fds.out, fds.handed_down))
}

/// Writing to a pipe whose reader left must be an error (EPIPE), not a death:
/// as in any Rust `main`, which this child has not reached.
pub(crate) fn ignore_sigpipe() {
    sys::sigaction::ignore(libc::SIGPIPE);
}
