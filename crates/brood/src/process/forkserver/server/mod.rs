//! The fork server: single-threaded, so that each `fork` copies a process with
//! no lock held by another thread. It never starts a thread; it waits with one
//! `epoll` set over the client's socket, the client's pidfd and its children's
//! pidfds.

mod spares;

use super::SERVER;
use crate::process::child::{self, CODE_SETUP};
use crate::process::spawn::{ignore_sigpipe, title};
use crate::sys::image;
use crate::sys::proctitle::ArgArea;
use crate::sys::thread::SingleThreaded;
use crate::sys::watch::Watcher;
use crate::sys::{self, fork::Forked, pidfd, pidfd::Reap, socket};
use crate::wire::{self, Request, ToClient, ToServer};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

struct Kid {
    pid: u32,
    /// The request it was started for (0 while it is an unclaimed spare).
    id: u64,
    pidfd: OwnedFd,
    death_signal: i32,
    /// It leads a process group (or session) that its death signal reaches.
    group: bool,
    /// While it is a spare no request has claimed: its serial (what a claim
    /// names, with the pid).
    spare: Option<u64>,
}

/// The server's epoll keys: the client's socket, its pidfd, then each child
/// as `KEY_KIDS + pid`.
const KEY_SOCK: u64 = 0;
const KEY_CLIENT: u64 = 1;
const KEY_KIDS: u64 = 2;

/// At most this many requests are taken per wake-up (see `Server::run`).
const MESSAGES_PER_WAKE: usize = 64;

/// Spares are forked once the server has had nothing to do for this long:
/// never in the way of a start or a reap. A burst of starts forks on
/// request, as with no spares, and finds spares again after a pause.
const REFILL_AFTER: std::time::Duration = std::time::Duration::from_millis(1);

/// What reading the client's socket gave.
enum Message {
    Handled,
    None,
    ClientGone,
}

struct Server {
    /// `None` once the client is gone.
    client: Option<(OwnedFd, OwnedFd)>,
    kids: HashMap<u32, Kid>,
    /// Readiness of the client's socket and pidfd and of every child's pidfd
    /// (`None` only in a new child, which closed it).
    watcher: Option<Watcher>,
    me: u32,
    single: SingleThreaded,
    /// The client program's name and where our command line lives, so that
    /// each child shows as `myapp (brood Process-3)` rather than as the server.
    program: std::ffi::OsString,
    args: Option<ArgArea>,
    /// The client's soft descriptor limit, given back to each child.
    /// Spares wanted, and those forked and not claimed yet.
    spares_wanted: u32,
    idle_spares: u32,
    /// The last spare's serial (its identity in `Claimed`).
    spare_serial: u64,
    /// What `ps` shows for a spare (made once here: formatting in the spare
    /// would allocate, and each page it writes is a fault).
    spare_title: String,
    /// A spare ended unclaimed, or could not be made: make no more until the
    /// client next speaks (a client with no room for the spare's descriptors
    /// would otherwise see a fork per spare the kernel throws away).
    refill_paused: bool,
}

/// `init` in the re-executed process: become the server, serve, exit.
/// The classic signals the server ignores (bit `sig - 1`), as its children
/// find them after the fork: each child moves from these to its client's
/// set at `start()` (the request's `ignored`).
static SERVER_IGNORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn main(client: u32) -> ! {
    // The server was launched from whatever thread started the first child,
    // with that thread's mask (posix_spawn and exec keep it): none of it is
    // the server's, nor its children's (they start with nothing blocked).
    sys::sigmask::unblock_all();
    // Nor are the dispositions the program had then: children get their
    // client's at each start; real-time signals start at their default.
    sys::sigaction::default_realtime();
    ignore_sigpipe();
    // Ctrl-C at a terminal reaches the client's whole process group, the
    // server with it; the server is the client's and goes when the client
    // does (CPython's fork server ignores SIGINT too). Its children get the
    // client's disposition back (in `run_child`).
    sys::sigaction::ignore(libc::SIGINT);
    // A client that ignores SIGCHLD passed that on through exec; the kernel would
    // then reap our children before we could report their statuses.
    sys::sigaction::default(libc::SIGCHLD);
    SERVER_IGNORES.store(
        sys::sigaction::ignored_classic(),
        std::sync::atomic::Ordering::Relaxed,
    );
    // One pidfd per child in flight: do not live by the client's soft limit
    // (`init` raised it already; each child gets the client's back just
    // before its function runs: `Request::nofile`).
    let _ = sys::rlimit::raise_nofile();
    let fail = |msg: String| -> ! {
        eprintln!("brood: fork server for pid {client}: {msg}");
        sys::fork::exit_now(CODE_SETUP)
    };
    let sock = sys::pipe::dup_high(sys::pipe::borrow_std(0))
        .unwrap_or_else(|e| fail(format!("dup(stdin): {e}")));
    if let Err(e) = sys::pipe::null_onto(0) {
        fail(format!("stdin to /dev/null: {e}"))
    }
    // Re-executed and still before main: one thread, and the server never
    // starts another, so every fork below is safe.
    let single = SingleThreaded::check().unwrap_or_else(|e| fail(format!("{e}")));
    // Leave the client's children (see the module doc of `forkserver`): the
    // intermediate exits, the grandchild serves.
    match single.fork() {
        Ok(Forked::Child) => {}
        Ok(Forked::Parent(_)) => sys::fork::exit_now(0),
        Err(e) => fail(format!("fork: {e}")),
    }
    let mut server = Server::new(sock, client, single).unwrap_or_else(|msg| fail(msg));
    server.run();
    sys::fork::exit_now(0)
}

/// The client's program name: our `argv[0]` is `myapp (brood fork server)`.
fn client_program() -> std::ffi::OsString {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    let suffix = format!(" (brood {SERVER})");
    match arg0.to_str().and_then(|a| a.strip_suffix(&suffix)) {
        Some(program) => program.into(),
        None => arg0,
    }
}

impl Server {
    fn new(sock: OwnedFd, client: u32, single: SingleThreaded) -> Result<Server, String> {
        let cred = socket::peer_cred(sock.as_fd()).map_err(|e| format!("SO_PEERCRED: {e}"))?;
        if cred.pid != client || cred.uid != socket::getuid() {
            return Err(format!(
                "refusing a peer that is pid {} uid {} (expected pid {client} uid {})",
                cred.pid,
                cred.uid,
                socket::getuid()
            ));
        }
        let mut buf = [0u8; 64];
        let (n, fds) =
            socket::recv_with_fds(sock.as_fd(), &mut buf).map_err(|e| format!("hello: {e}"))?;
        let (Ok(ToServer::Hello { spares }), Some(client_fd)) =
            (wire::decode(&buf[..n]), fds.into_iter().next())
        else {
            return Err("the client's first message is not a hello with its pidfd".into());
        };
        // Children resolve their function against this image: read it once here
        // rather than in every child.
        image::warm();
        sys::closerange::warm();
        // Every child catches its function's panic with this hook: install it
        // once here, not in each child.
        child::install_hook();
        child::warm_catch();
        // Each child flushes Rust's stdout and stderr as it leaves; making them
        // here spares every child the allocation (and its copy-on-write faults).
        let _ = (std::io::stdout(), std::io::stderr());
        let me = sys::getpid();
        let watcher = Watcher::new()
            .and_then(|w| {
                w.add(&sock, KEY_SOCK)?;
                w.add(&client_fd, KEY_CLIENT)?;
                Ok(w)
            })
            .map_err(|e| format!("epoll: {e}"))?;
        send(&sock, &ToClient::Ready { pid: me }, &[]).map_err(|e| format!("ready: {e}"))?;
        let program = client_program();
        let spare_title = title(&program, "spare").to_string_lossy().into_owned();
        Ok(Server {
            client: Some((sock, client_fd)),
            kids: HashMap::new(),
            watcher: Some(watcher),
            me,
            single,
            program,
            args: ArgArea::locate().ok(),
            spares_wanted: spares,
            idle_spares: 0,
            spare_serial: 0,
            spare_title,
            refill_paused: false,
        })
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; 64 << 10];
        let mut ready = Vec::new();
        loop {
            if self.client.is_none() && self.kids.is_empty() {
                return;
            }
            // One epoll set over the client's socket, its pidfd and every
            // child's pidfd: a wake-up costs the same with ten thousand
            // children in flight as with one (`poll(2)` cost a pass over all).
            let Some(watcher) = &self.watcher else { return };
            let timeout = self.short_of_spares().then_some(REFILL_AFTER);
            if watcher.wait_at_most(&mut ready, timeout).is_err() {
                return; // only for programming errors; do not spin
            }
            if ready.is_empty() {
                self.refill();
            }
            for &key in &ready {
                match key {
                    KEY_SOCK => {
                        // A burst of requests is taken together, a bounded
                        // number per wake-up, so that reaping keeps up.
                        for _ in 0..MESSAGES_PER_WAKE {
                            match self.handle_message(&mut buf) {
                                Message::Handled => {}
                                Message::None => break,
                                Message::ClientGone => {
                                    self.client_gone();
                                    break;
                                }
                            }
                        }
                    }
                    KEY_CLIENT => self.client_gone(),
                    pid => self.reap((pid - KEY_KIDS) as u32),
                }
            }
        }
    }

    /// One message from the client, if one is there.
    fn handle_message(&mut self, buf: &mut [u8]) -> Message {
        let Some((sock, _)) = &self.client else {
            return Message::ClientGone;
        };
        let (n, fds) = match socket::try_recv_with_fds(sock.as_fd(), buf) {
            Ok(None) => return Message::None,
            Ok(Some((0, _))) | Err(_) => return Message::ClientGone,
            Ok(Some(x)) => x,
        };
        self.refill_paused = false;
        match wire::decode::<ToServer>(&buf[..n]) {
            Ok(ToServer::Start { id, req, pidfd }) => {
                let cgroup = req.policy.tree == crate::policy::Tree::Cgroup;
                match child::request_fds(fds, cgroup) {
                    Ok(fds) => self.start(id, *req, fds, pidfd),
                    Err(error) => self.reply(&ToClient::Failed {
                        id,
                        error,
                        errno: None,
                    }),
                }
            }
            // A corrupt or unexpected message from our own client is a bug on its
            // side: ignore it rather than die and take every child's status along.
            Ok(ToServer::Signal { pid, id, sig }) => {
                if let Some(kid) = self
                    .kids
                    .get(&pid)
                    .filter(|k| k.spare.is_none() && k.id == id)
                {
                    let _ = pidfd::send_signal(kid.pidfd.as_fd(), sig);
                }
            }
            Ok(ToServer::Claimed {
                pid,
                serial,
                id,
                policy,
            }) => self.claimed(pid, serial, id, &policy),
            Ok(ToServer::Spares { count }) => self.spares_wanted = count,
            Ok(ToServer::Hello { .. }) | Err(_) => {}
        }
        Message::Handled
    }

    /// A new child's pidfd, kept high (so that the next child drops them all
    /// at once) and watched.
    fn watch(&self, pid: u32) -> std::io::Result<OwnedFd> {
        pidfd::open(pid)
            .map(sys::closerange::move_high)
            .and_then(|fd| {
                if let Some(w) = &self.watcher {
                    w.add(&fd, KEY_KIDS + u64::from(pid))?;
                }
                Ok(fd)
            })
    }

    /// Forks the child for request `id`: its argument pipe, result pipe and
    /// handed-down descriptor in `fds`; with `send_pidfd` its pidfd goes to
    /// the client with the answer.
    fn start(&mut self, id: u64, req: Request, fds: child::RequestFds, send_pidfd: bool) {
        let child::RequestFds {
            arg,
            out,
            handed_down,
            cgroup,
        } = fds;
        // Made here, not in the child: formatting there allocates, and every
        // page it writes is a copy-on-write fault.
        let shown = self.args.as_ref().map(|_| {
            title(&self.program, &req.name)
                .to_string_lossy()
                .into_owned()
        });
        // The child never returns from this branch (it ends with
        // `leave_forked_child`).
        match self.single.fork() {
            Ok(Forked::Child) => {
                self.become_child();
                let fds = child::RequestFds {
                    arg,
                    out,
                    handed_down,
                    cgroup,
                };
                self.run_child(&req, fds, shown.as_deref())
            }
            Ok(Forked::Parent(pid)) => {
                drop((arg, out, handed_down, cgroup));
                if matches!(
                    req.policy.tree,
                    crate::policy::Tree::Group | crate::policy::Tree::Cgroup
                ) {
                    // Both sides set the group (see crate::fork::fork_raw).
                    let _ = sys::pgrp::setpgid(pid, pid);
                }
                match self.watch(pid) {
                    Ok(fd) => {
                        let pidfd = [fd.as_fd()];
                        let sent = send_ref(
                            &self.client,
                            &ToClient::Started { id, pid },
                            if send_pidfd { &pidfd } else { &[] },
                        );
                        if sent.is_err() {
                            // The client is gone; its death is noticed by epoll.
                        }
                        let death_signal = req.policy.death_signal().map_or(0, |s| s.as_raw());
                        self.kids.insert(
                            pid,
                            Kid {
                                pid,
                                id,
                                pidfd: fd,
                                death_signal,
                                group: req.policy.tree != crate::policy::Tree::Own,
                                spare: None,
                            },
                        );
                    }
                    Err(e) => {
                        // No descriptor or no room in the epoll set: do not leave
                        // the child unwatched.
                        let _ = sys::reap::kill_and_reap_own(pid);
                        self.reply(&ToClient::Failed {
                            id,
                            error: format!("watching child {pid}: {e}"),
                            errno: e.raw_os_error(),
                        });
                    }
                }
            }
            Err(e) => self.reply(&ToClient::Failed {
                id,
                error: format!("fork: {e}"),
                errno: e.raw_os_error(),
            }),
        }
    }

    /// In a new child (on request, or a spare): drop what is the server's.
    /// The server's raised descriptor limit stands for brood's set-up; the
    /// request says which one the function gets (see `run_child`).
    fn become_child(&mut self) {
        self.close_in_child();
    }

    /// In a new child, once its request is known: take its name, arm its
    /// policies, run it, leave. `shown` is its title, when it was made
    /// before the fork.
    fn run_child(&self, req: &Request, fds: child::RequestFds, shown: Option<&str>) -> ! {
        self.set_title(shown, &req.name);
        // The signal state of a child started on the client's thread at
        // this moment: what the client ignores, nothing blocked.
        let server_ignores = SERVER_IGNORES.load(std::sync::atomic::Ordering::Relaxed);
        sys::sigaction::set_ignored_classic(server_ignores, req.ignored);
        sys::sigmask::unblock_all();
        // The client's descriptor limit, set just before the function runs
        // (a policy's own limit, applied below, replaces it).
        if let Some(soft) = req.nofile {
            crate::fdlimit::hold(soft);
        }
        // The server itself signals its groups when the client dies.
        let joins = crate::fork::Joins {
            cgroup: fds.cgroup.as_ref().map(AsRawFd::as_raw_fd),
            keeper: None,
        };
        if let Err((step, e)) = crate::fork::arm_child(&req.policy, self.me, joins) {
            child::send_failure(fds.out.as_fd(), &format!("{step}: {e}"));
            sys::fork::exit_now(CODE_SETUP);
        }
        let code = child::run_request(req, fds.arg, fds.out, fds.handed_down);
        crate::exit::leave_forked_child(code)
    }

    /// Shows this process as `myapp (brood <name>)`; `shown` is that text when
    /// it was made already.
    fn set_title(&self, shown: Option<&str>, name: &str) {
        let Some(area) = &self.args else { return };
        match shown {
            Some(shown) => area.set_title(shown),
            None => area.set_title(&title(&self.program, name).to_string_lossy()),
        }
    }

    /// In a new child: close the server's descriptors, so that the client sees
    /// the server's death as the socket's end even while children live.
    fn close_in_child(&mut self) {
        if let Some((sock, client)) = self.client.take() {
            drop((sock, client));
        }
        drop(self.watcher.take());
        // One pidfd per sibling, thousands at scale: those the server kept
        // high go with one call. Taken whole, so that the map's memory is
        // only read (each page written here would be copied).
        let kids = std::mem::take(&mut self.kids);
        sys::closerange::close_inherited(kids.into_values().map(|kid| kid.pidfd));
    }

    fn reap(&mut self, pid: u32) {
        let Some(kid) = self.kids.get(&pid) else {
            return;
        };
        let status = match pidfd::try_reap(kid.pidfd.as_fd()) {
            Ok(Reap::Running) => return,
            Ok(Reap::Exited(status)) => status,
            // Cannot happen (nobody else waits in this process); report a loss.
            Ok(Reap::Gone) | Err(_) => -1,
        };
        let Some(kid) = self.kids.remove(&pid) else {
            return;
        };
        if let Some(w) = &self.watcher {
            let _ = w.remove(&kid.pidfd);
        }
        if kid.spare.is_some() {
            self.idle_spares -= 1;
            self.refill_paused = true;
        }
        self.reply(&ToClient::Exited {
            pid: kid.pid,
            status,
        });
    }

    /// The client died or closed the channel: apply each child's OnParentDeath.
    fn client_gone(&mut self) {
        // Both the socket's end and the pidfd may say so in one wake-up.
        if self.client.is_none() {
            return;
        }
        // A spare the client claimed is named in a `Claimed` sent before the
        // request went to the spare: read what is still queued, so that every
        // claimed spare is known as the child it became.
        let mut buf = vec![0u8; 64 << 10];
        while let Some((sock, _)) = &self.client {
            let n = match socket::try_recv_with_fds(sock.as_fd(), &mut buf) {
                Ok(Some((n, _))) if n > 0 => n,
                _ => break,
            };
            if let Ok(ToServer::Claimed {
                pid,
                serial,
                id,
                policy,
            }) = wire::decode(&buf[..n])
            {
                self.claimed(pid, serial, id, &policy);
            }
        }
        let Some((sock, client)) = self.client.take() else {
            return;
        };
        if let Some(w) = &self.watcher {
            let _ = w.remove(&sock);
            let _ = w.remove(&client);
        }
        for kid in self.kids.values() {
            if kid.spare.is_some() {
                // Nobody can claim it now.
                let _ = pidfd::send_signal(kid.pidfd.as_fd(), libc::SIGKILL);
            } else if kid.death_signal != 0 {
                // Its whole group, as a keeper would (its own PDEATHSIG is tied
                // to us, who live on).
                if kid.group {
                    let _ = sys::pgrp::kill_group(kid.pid, kid.death_signal);
                }
                let _ = pidfd::send_signal(kid.pidfd.as_fd(), kid.death_signal);
            }
        }
    }

    fn reply(&self, msg: &ToClient) {
        let _ = send_ref(&self.client, msg, &[]);
    }
}

fn send_ref(
    client: &Option<(OwnedFd, OwnedFd)>,
    msg: &ToClient,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> std::io::Result<()> {
    match client {
        Some((sock, _)) => send(sock, msg, fds),
        None => Ok(()),
    }
}

fn send(
    sock: &OwnedFd,
    msg: &ToClient,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> std::io::Result<()> {
    let bytes = wire::encode(msg).map_err(std::io::Error::other)?;
    socket::send_with_fds(sock.as_fd(), &bytes, fds)
}
