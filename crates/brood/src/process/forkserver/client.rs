//! The client's side of the fork server: launch it, ask it for children, and a
//! thread (`brood-forkserver`) that receives its answers and the children's
//! statuses.

use super::SERVER;
use crate::policy::Policy;
use crate::process::child::{fn_ref, send_arg};
use crate::process::spawn::{SELF_EXE, argv0, this_program, title};
use crate::runtime::ENV;
use crate::runtime::spawn_own_thread;
use crate::sys::forklocal::ForkLocal;
use crate::sys::{self, pidfd, socket};
use crate::wire::{self, Request, ToClient, ToServer};
use crate::{Child, Error, ExitStatus, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// How long a new server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to this process's fork server.
pub(crate) struct Conn {
    sock: OwnedFd,
    server_pid: u32,
    /// The server's `/proc/<pid>/stat`, open for the connection's life: a
    /// spare is claimed only while it shows the server alive and not dying.
    /// Closed (and its `ParentOnly` slot cleared) once the server is dead.
    server_stat: Mutex<Option<std::fs::File>>,
    dead: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Requests not answered yet: the child's policies, whether its pidfd
    /// comes with the answer, and where the answer goes.
    pending: HashMap<u64, (Policy, bool, mpsc::SyncSender<Result<Child>>)>,
    /// The request each child was started for (a signal names both).
    ids: HashMap<u32, u64>,
    kids: HashMap<u32, Child>,
    /// Spares the server forked ahead, oldest first.
    spares: VecDeque<Spare>,
}

/// A child the server forked ahead of any request (see `spare`): it runs the
/// first request sent on `chan`.
struct Spare {
    pid: u32,
    serial: u64,
    pidfd: OwnedFd,
    chan: OwnedFd,
}

/// How many spares this process holds ready for its next
/// [`StartMethod::ForkServer`](crate::StartMethod::ForkServer) starts: forked
/// by its fork server, waiting, their descriptors here (0 while no server
/// runs). A start takes the oldest; the server forks replacements once it
/// has been idle for a millisecond.
///
/// ```
/// # brood::init();
/// use brood::{Process, StartMethod};
/// fn one(_: ()) -> u8 { 1 }
/// Process::new(one, ()).start_method(StartMethod::ForkServer).start()?.join().unwrap();
/// assert!(brood::fork_server_spares_ready() <= 2);
/// # Ok::<(), brood::Error>(())
/// ```
pub fn fork_server_spares_ready() -> usize {
    current().map_or(0, |c| c.state().spares.len())
}

/// How many spares a fork server keeps (see [`set_fork_server_spares`]).
static SPARES: AtomicU32 = AtomicU32::new(2);

/// Sets how many children this process's fork server keeps forked ahead of
/// any request (2 unless set; 0 turns them off), for the server running now
/// and any started later. Spares held beyond the new count are let go at
/// once (they exit, and their descriptors here close).
///
/// A [`StartMethod::ForkServer`](crate::StartMethod::ForkServer) start then
/// hands the request to a child that already exists — a message, not a
/// fork. The server forks replacements once it has had nothing to do for
/// 1 ms, never in the way of a start or a reap: a burst of starts uses the
/// spares up and is forked on request. Each spare is a process (it counts
/// towards `RLIMIT_NPROC` and any pids limit) and holds two of the caller's
/// descriptors (its pidfd and its channel).
///
/// ```
/// # brood::init();
/// use brood::{Process, StartMethod};
/// use std::time::{Duration, Instant};
/// fn one(_: ()) -> u8 { 1 }
/// brood::set_fork_server_spares(1);
/// let start = || Process::new(one, ()).start_method(StartMethod::ForkServer).start();
/// assert_eq!(start()?.join().unwrap(), 1);
/// // Idle for a millisecond, the server forks the spare; the next start
/// // takes it.
/// let t = Instant::now();
/// while brood::fork_server_spares_ready() < 1 {
///     assert!(t.elapsed() < Duration::from_secs(10), "no spare");
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// assert_eq!(start()?.join().unwrap(), 1);
/// # Ok::<(), brood::Error>(())
/// ```
pub fn set_fork_server_spares(count: u32) {
    SPARES.store(count, Ordering::Relaxed);
    if let Some(conn) = current() {
        conn.state().spares.truncate(count as usize);
        if let Ok(msg) = wire::encode(&ToServer::Spares { count }) {
            let _ = socket::send_with_fds(conn.sock.as_fd(), &msg, &[]);
        }
    }
}

impl Conn {
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    pub(crate) fn server_pid(&self) -> u32 {
        self.server_pid
    }

    /// Whether the server is dying or gone, as far as this process can know:
    /// a `kill(server, SIGKILL)` that returned shows here at once, while the
    /// server has not yet run (nor closed its socket). A spare claimed from
    /// a dying server would run with nobody to report it, and the next
    /// start must go to a new server. Marks the connection dead if so.
    fn server_dying(&self) -> bool {
        use std::os::unix::fs::FileExt;
        let dying = {
            let stat = self.server_stat.lock().unwrap_or_else(|e| e.into_inner());
            let Some(stat) = stat.as_ref() else {
                return self.is_dead();
            };
            let mut buf = [0u8; 1024];
            match stat.read_at(&mut buf, 0) {
                Ok(n) => sys::procfs::shows_dying(&buf[..n]),
                // ESRCH: reaped.
                Err(_) => true,
            }
        };
        if dying {
            self.mark_dead();
        }
        dying
    }

    /// The server is dead (or dying): no start goes to it any more.
    fn mark_dead(&self) {
        self.dead.store(true, Ordering::Release);
        let stat = self
            .server_stat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(f) = stat {
            sys::fork::parent_only_forget(sys::fork::ParentOnly::ServerStat, f.as_raw_fd());
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the server to send `sig` to the child of request `id`.
    fn signal(&self, pid: u32, id: u64, sig: i32) -> std::io::Result<()> {
        if self.is_dead() {
            return Err(std::io::Error::other("the fork server died"));
        }
        let msg =
            wire::encode(&ToServer::Signal { pid, id, sig }).map_err(std::io::Error::other)?;
        socket::send_with_fds(self.sock.as_fd(), &msg, &[])
    }
}

/// Whether a new child's pidfd may take a descriptor here: not when the
/// newest descriptor is past three quarters of the soft limit and the limit
/// cannot be raised. Such a child's server keeps its pidfd and signals it for
/// us (one descriptor per child here instead of two: twice as many in flight).
fn room_for_pidfd(newest: &OwnedFd) -> bool {
    let fits = || {
        (newest.as_raw_fd() as u64).saturating_mul(4) < sys::rlimit::nofile().0.saturating_mul(3)
    };
    fits() || (crate::fdlimit::make_room() && fits())
}

/// This process's connection to its fork server. A forked child must not use
/// (or wait on a lock of) its parent's: it starts a server of its own.
struct Connection {
    /// The live connection, if any: only ever locked for a moment, so that
    /// [`current`] (and `fork_server_pid`) never waits behind a launch.
    live: Mutex<Option<Arc<Conn>>>,
    /// Held while a server is being launched (its handshake may take a while
    /// on a loaded machine): one launch at a time.
    launching: Mutex<()>,
}

static CONN: ForkLocal<Connection> = ForkLocal::new(|| Connection {
    live: Mutex::new(None),
    launching: Mutex::new(()),
});

/// The live connection, at once (`None` while the first one is launched).
pub(crate) fn current() -> Option<Arc<Conn>> {
    let live = CONN.get().live.lock().unwrap_or_else(|e| e.into_inner());
    live.as_ref().filter(|c| !c.is_dead()).cloned()
}

fn connection() -> Result<Arc<Conn>> {
    if let Some(c) = current() {
        return Ok(c);
    }
    let _launching = CONN
        .get()
        .launching
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // Another thread may have launched one while we waited.
    if let Some(c) = current() {
        return Ok(c);
    }
    let c = launch()?;
    *CONN.get().live.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&c));
    Ok(c)
}

fn launch() -> Result<Arc<Conn>> {
    let err =
        |what: &str, e: std::io::Error| Error::io(format!("starting the fork server: {what}"), e);
    let room = |step: &'static str, e| crate::fdlimit::limit_or(step, e, |e| err(step, e));
    let (ours, theirs) =
        crate::fdlimit::with_room(socket::seqpacket_pair).map_err(|e| room("socketpair", e))?;
    let me = crate::fdlimit::with_room(|| pidfd::open(sys::getpid()))
        .map_err(|e| room("pidfd_open(self)", e))?;
    let mut cmd = Command::new(SELF_EXE);
    cmd.arg0(title(&argv0(), SERVER))
        .env(ENV, format!("server:{}", sys::getpid()))
        .stdin(Stdio::from(theirs));
    let mut intermediate = cmd.spawn().map_err(|e| match e.raw_os_error() {
        Some(libc::EAGAIN) => Error::ProcessLimit {
            step: "starting the fork server",
        },
        _ => Error::Spawn {
            program: this_program(),
            cause: crate::SpawnError::Exec(e),
        },
    })?;
    drop(cmd);
    let hello = wire::encode(&ToServer::Hello {
        spares: SPARES.load(Ordering::Relaxed),
    })
    .map_err(|e| err("encoding", std::io::Error::other(e)))?;
    let ready = socket::send_with_fds(ours.as_fd(), &hello, &[me.as_fd()]).and_then(|()| {
        if !sys::pidfd::wait_exited(ours.as_fd(), Some(READY_TIMEOUT))? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer",
            ));
        }
        let mut buf = [0u8; 64];
        let (n, _) = socket::recv_with_fds(ours.as_fd(), &mut buf)?;
        match wire::decode::<ToClient>(&buf[..n]) {
            Ok(ToClient::Ready { pid }) => Ok(pid),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "it exited without answering (is brood::init() the first line of main, or \
                     brood::init_before_main!() in this test file?)",
            )),
        }
    });
    // The intermediate exits as soon as it forked the server. If the handshake
    // failed it may be running the program's own main instead: stop it.
    if ready.is_err() {
        let _ = intermediate.kill();
    }
    let _ = intermediate.wait();
    let server_pid = ready.map_err(|e| match e.kind() {
        // It ended, or hung up, without answering: it ran the program's own
        // `main` instead of serving. A `main` that ends at once may be gone
        // before the hello is sent: the send then fails with EPIPE.
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => Error::NotInitialised {
            pid: intermediate.id(),
            marker: ENV,
        },
        _ => err("handshake", e),
    })?;
    let server_stat = std::fs::File::open(format!("/proc/{server_pid}/stat")).ok();
    if let Some(f) = &server_stat {
        // Forked children (and the fork server's own) must not hold it.
        sys::fork::parent_only(sys::fork::ParentOnly::ServerStat, Some(f.as_raw_fd()));
    }
    let conn = Arc::new(Conn {
        sock: ours,
        server_pid,
        server_stat: Mutex::new(server_stat),
        dead: AtomicBool::new(false),
        state: Mutex::new(State::default()),
    });
    let listener = Arc::clone(&conn);
    spawn_own_thread("brood-forkserver", move || listen(listener)).map_err(|e| err("thread", e))?;
    Ok(conn)
}

/// Asks the server for a child running `f(arg)`.
pub(crate) fn start<A, R>(
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
    let mut req = Request::new(fn_ref(f)?, &policy, name);
    // The server was started once, with whatever the program ignored then:
    // each child gets what the program ignores at its own start.
    req.ignored =
        sys::fork::ignored_signals().unwrap_or_else(|_| sys::sigaction::ignored_classic());
    // And the descriptor limit the program has now (it may have changed it
    // since the server started).
    req.nofile = Some(crate::fdlimit::for_children());
    // One retry: a server that died since the last start is replaced; and
    // one for a child whose pidfd the kernel dropped for want of a slot here
    // (the listener raised the soft limit meanwhile; the child was killed).
    let mut attempt = 0;
    loop {
        attempt += 1;
        let conn = connection()?;
        match ask(&conn, &req, policy, arg, handed_down.as_ref()) {
            Ok(started) => return Ok(started),
            Err(e) if conn.is_dead() && attempt < 2 => drop(e),
            Err(Error::DescriptorLimit { .. }) if attempt < 2 && crate::fdlimit::make_room() => {}
            Err(e) => return Err(e),
        }
    }
}

fn ask(
    conn: &Arc<Conn>,
    req: &Request,
    policy: Policy,
    arg: &crate::wire::frame::Encoded<'_>,
    handed_down: Option<&OwnedFd>,
) -> Result<(Child, OwnedFd)> {
    let io = |what: &str, e: std::io::Error| {
        Error::io(format!("fork server (pid {}): {what}", conn.server_pid), e)
    };
    let pipe = || {
        crate::fdlimit::with_room(sys::pipe::pipe)
            .map_err(|e| crate::fdlimit::error("the pipes of a fork-server child", e))
    };
    let (arg_r, arg_w) = pipe()?;
    let (res_r, res_w) = pipe()?;
    sys::fork::child_end(arg_w.as_fd());
    sys::fork::child_end(res_r.as_fd());
    // A pool worker (the one kind given a channel) always brings its pidfd:
    // the pool watches its death with it.
    let pidfd = handed_down.is_some() || room_for_pidfd(&res_r);
    let id = {
        let mut st = conn.state();
        st.next_id += 1;
        st.next_id
    };
    let msg = wire::encode(&ToServer::Start {
        id,
        req: Box::new(req.clone()),
        pidfd,
    })
    .map_err(|e| io("encoding the request", std::io::Error::other(e)))?;
    // Tree::Cgroup: the child's cgroup, made here; the child joins it.
    let cgroup = crate::cgroups::prepare(&policy)?;
    let mut fds = vec![arg_r.as_fd(), res_w.as_fd()];
    fds.extend(handed_down.map(|fd| fd.as_fd()));
    fds.extend(cgroup.as_ref().map(|c| c.procs.as_fd()));
    let (tx, rx) = mpsc::sync_channel(1);
    match claim_spare(conn, id, policy, &msg, &fds) {
        // Started already: the answer is here.
        Ok(Some(child)) => {
            let _ = tx.send(Ok(child));
        }
        // The server is dying (see `Conn::server_dying`): the start is
        // retried with a new one.
        Ok(None) if conn.is_dead() => {
            crate::cgroups::started(None, cgroup);
            return Err(io(
                "claiming a spare",
                std::io::Error::other("the fork server is dying"),
            ));
        }
        Ok(None) => {
            conn.state().pending.insert(id, (policy, pidfd, tx));
            if let Err(e) = socket::send_with_fds(conn.sock.as_fd(), &msg, &fds) {
                conn.state().pending.remove(&id);
                if matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET)) {
                    conn.dead.store(true, Ordering::Release);
                }
                crate::cgroups::started(None, cgroup);
                return Err(io("sending a request", e));
            }
        }
        Err(e) => {
            let _ = tx.send(Err(e));
        }
    }
    drop(fds);
    drop((arg_r, res_w));
    // Send the argument now, while the server forks: the child finds it waiting
    // instead of waiting for our round trip. This cannot block forever: if the
    // server fails or dies before forking, the last read end closes and the
    // write fails with EPIPE (which `send_arg` leaves to the answer below).
    send_arg(
        arg_w,
        arg,
        &format!("a child of the fork server (pid {})", conn.server_pid),
    )?;
    let answer = rx.recv();
    let pid = match &answer {
        Ok(Ok(child)) => Some(child.pid()),
        _ => None,
    };
    crate::cgroups::started(pid, cgroup);
    match answer {
        Ok(Ok(child)) => Ok((child, res_r)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io(
            "waiting for the child's pid",
            std::io::Error::other("the fork server died"),
        )),
    }
}

/// Hands request `id` (`msg` with `fds`, as it would go to the server) to
/// the oldest live spare: `None` when there is none.
///
/// Under the state lock, so that the listener cannot take the spare's end
/// for an unknown child's between the claim and the record of it.
fn claim_spare(
    conn: &Arc<Conn>,
    id: u64,
    policy: Policy,
    msg: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<Option<Child>> {
    if msg.len() > super::spare::REQUEST_MAX {
        return Ok(None);
    }
    let mut st = conn.state();
    if !st.spares.is_empty() && conn.server_dying() {
        // The request to the server fails too, and the start is retried
        // with a new one.
        return Ok(None);
    }
    while let Some(Spare {
        pid,
        serial,
        pidfd,
        chan,
    }) = st.spares.pop_front()
    {
        // The server first, so that it knows the child's policies before the
        // child can run (see `spare`).
        let claimed = wire::encode(&ToServer::Claimed {
            pid,
            serial,
            id,
            policy,
        })
        .map_err(|e| Error::io("encoding a claim", std::io::Error::other(e)))?;
        if socket::send_with_fds(conn.sock.as_fd(), &claimed, &[]).is_err() {
            // The server is gone: the request to it fails the same way.
            return Ok(None);
        }
        if socket::send_with_fds(chan.as_fd(), msg, fds).is_err() {
            continue; // it died unclaimed (its end is reported and ignored)
        }
        return match crate::exit::adopt_remote(pid, Some(pidfd), relay(conn, pid, id), policy) {
            Ok(child) => {
                st.kids.insert(pid, child.untracked());
                st.ids.insert(pid, id);
                Ok(Some(child))
            }
            Err(e) => {
                // Nobody would supervise it: have the server end it.
                let _ = conn.signal(pid, id, libc::SIGKILL);
                Err(e)
            }
        };
    }
    Ok(None)
}

/// How a child's handle asks the server to signal it.
fn relay(conn: &Arc<Conn>, pid: u32, id: u64) -> crate::child::Relay {
    let weak = Arc::downgrade(conn);
    Box::new(move |sig| match weak.upgrade() {
        Some(conn) => conn.signal(pid, id, sig),
        None => Err(std::io::Error::other("the fork server connection is gone")),
    })
}

/// The client thread: route the server's answers, record statuses; when the
/// server dies, fail what is pending and keep watching its orphans so that
/// their joins end (with `ServerDied`) instead of hanging.
/// The error for a request the server could not start.
fn refusal(server: u32, error: String, errno: Option<i32>) -> Error {
    match errno {
        Some(libc::EAGAIN) => Error::ProcessLimit {
            step: "the fork server's fork",
        },
        _ => Error::io(
            format!("the fork server (pid {server}) could not start the child"),
            std::io::Error::other(error),
        ),
    }
}

fn listen(conn: Arc<Conn>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, fds) = match socket::recv_with_fds(conn.sock.as_fd(), &mut buf) {
            Ok((0, _)) | Err(_) => break,
            Ok(x) => x,
        };
        let Ok(msg) = wire::decode::<ToClient>(&buf[..n]) else {
            continue;
        };
        let mut st = conn.state();
        match msg {
            ToClient::Started { id, pid } => {
                let Some((policy, want_pidfd, reply)) = st.pending.remove(&id) else {
                    continue;
                };
                let relay = relay(&conn, pid, id);
                let adopted = match (fds.into_iter().next(), want_pidfd) {
                    (Some(fd), _) => crate::exit::adopt_remote(pid, Some(fd), relay, policy),
                    (None, false) => crate::exit::adopt_remote(pid, None, relay, policy),
                    // The kernel drops descriptors we have no room for:
                    // the start tries again once the limit is raised.
                    (None, true) => Err(crate::fdlimit::error(
                        "receiving a fork-server child's pidfd",
                        std::io::Error::from_raw_os_error(libc::EMFILE),
                    )),
                };
                match adopted {
                    Ok(child) => {
                        st.kids.insert(pid, child.untracked());
                        st.ids.insert(pid, id);
                        let _ = reply.send(Ok(child));
                    }
                    Err(e) => {
                        // Nobody would supervise it: have the server end it.
                        let _ = conn.signal(pid, id, libc::SIGKILL);
                        let _ = reply.send(Err(e));
                    }
                }
            }
            ToClient::Failed { id, error, errno } => {
                if let Some((_, _, reply)) = st.pending.remove(&id) {
                    let _ = reply.send(Err(refusal(conn.server_pid, error, errno)));
                }
            }
            ToClient::Spare { pid, serial } => {
                let mut fds = fds.into_iter();
                // Both descriptors, and room left for the children's own.
                if let (Some(pidfd), Some(chan), None) = (fds.next(), fds.next(), fds.next())
                    && room_for_pidfd(&chan)
                    && st.spares.len() < SPARES.load(Ordering::Relaxed) as usize
                {
                    st.spares.push_back(Spare {
                        pid,
                        serial,
                        pidfd,
                        chan,
                    });
                }
                // Otherwise its channel closes here, and it exits unclaimed.
            }
            ToClient::Exited { pid, status } => {
                st.spares.retain(|s| s.pid != pid);
                st.ids.remove(&pid);
                if let Some(child) = st.kids.remove(&pid) {
                    child.set_reported(ExitStatus::from_wait_status(status));
                }
            }
            ToClient::Ready { .. } => {}
        }
    }
    conn.mark_dead();
    let orphans: Vec<Child> = {
        let mut st = conn.state();
        st.pending.clear(); // their senders drop: the waiting starts fail
        st.spares.clear(); // their channels close: they exit
        st.kids.drain().map(|(_, c)| c).collect()
    };
    watch_orphans(orphans);
}

/// The server is gone: nobody will report these children's statuses. Wait for
/// each to end (its pidfd still says when) and mark its status lost. One
/// whose pidfd the server kept cannot be watched without a pid-reuse risk:
/// its status is lost at once (its join still reads what it sends).
fn watch_orphans(mut orphans: Vec<Child>) {
    orphans.retain(|c| {
        let watchable = c.pidfd().is_some();
        if !watchable {
            c.set_server_died();
        }
        watchable
    });
    while !orphans.is_empty() {
        // Those left here hold a pidfd (see above).
        let pidfds: Vec<_> = orphans.iter().filter_map(|c| c.pidfd()).collect();
        let mut fds: Vec<_> = pidfds
            .iter()
            .map(|fd| rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN))
            .collect();
        if matches!(rustix::event::poll(&mut fds, None), Err(e) if e != rustix::io::Errno::INTR) {
            return;
        }
        let done: Vec<bool> = fds.iter().map(|p| !p.revents().is_empty()).collect();
        drop(fds);
        drop(pidfds);
        let mut i = 0;
        orphans.retain(|c| {
            let keep = !done[i];
            i += 1;
            if !keep {
                c.set_server_died();
            }
            keep
        });
    }
}
