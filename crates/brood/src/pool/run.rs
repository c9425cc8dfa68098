//! The pool's side: starting and accepting workers, ending them, burying one
//! that died, and handing out chunks (the loop itself is in `map.rs`).

use super::board::Board;
use super::conn::Worker;
use super::death::{Cause, Counts, after_death};
use super::items::Run;
use super::line::Line;
use super::progress::Progress;
use super::reruns::Verdict;
use super::shared;
use super::worker;
use super::{Config, TaskError};
use crate::wire::frame::{self, FrameKind};
use crate::wire::{self, Boot, PanicReport};
use crate::{Error, Handle, OnExit, Process, Result};
use rustix::event::{PollFd, PollFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a worker may hold finished results before sending them, in µs:
/// small enough that a crash loses little finished work (which then runs again),
/// large enough that a batch of tiny items costs one write.
const FLUSH_AFTER_US: u64 = 200;

/// How long a new worker may take to connect back (a re-executed worker on a
/// loaded machine can take a while; a dead one is seen at once, by its pidfd).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A worker started and not yet heard from: its slot, its handle, the token
/// it must send back, and our end of its channel.
struct Pending {
    slot: usize,
    handle: Handle<()>,
    token: u64,
    sock: OwnedFd,
}

/// The pool's state, behind its lock.
///
/// Each worker's channel is one end of a `socketpair` made for it and handed
/// down to it alone (see `Process::hand_down`): no name, no listener, nothing
/// another local process could connect to, flood or feed.
pub(crate) struct Inner {
    pub(super) slots: Vec<Option<Worker>>,
    pub(super) closed: bool,
    /// The workers as of the last change, and the pool's pauses: readable
    /// while a map holds the state (see `board.rs`).
    pub(super) board: Arc<Board>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("workers", &self.pids())
            .field("closed", &self.closed)
            .finish()
    }
}

/// An unguessable number, from the kernel (getrandom(2)).
fn random() -> u64 {
    crate::sys::random::u64()
}

impl Inner {
    /// Starts every worker.
    pub(super) fn start(cfg: &Config) -> Result<Inner> {
        let mut inner = Inner {
            slots: (0..cfg.size).map(|_| None).collect(),
            closed: false,
            board: Arc::default(),
        };
        if let Err(e) = inner.fill(cfg) {
            let _ = inner.terminate(cfg);
            return Err(e);
        }
        Ok(inner)
    }

    pub(super) fn pids(&self) -> Vec<u32> {
        self.slots.iter().flatten().map(Worker::pid).collect()
    }

    /// Makes the current workers known without the state (a replacement
    /// started while the pool is paused is paused now).
    pub(super) fn publish(&self) {
        let workers = self.slots.iter().flatten();
        self.board
            .publish(workers.map(|w| w.handle.child().untracked()).collect());
    }

    pub(super) fn live(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Starts a worker in every empty slot: all of them first, then waits for
    /// their hellos, so that start-up costs overlap.
    pub(super) fn fill(&mut self, cfg: &Config) -> Result<()> {
        let empty: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].is_none())
            .collect();
        let mut pending = Vec::new();
        let mut failure = None;
        for slot in empty {
            let token = random();
            let (ours, theirs) = match crate::fdlimit::with_room(crate::sys::socket::stream_pair) {
                Ok(pair) => {
                    crate::sys::fork::child_end(pair.0.as_fd());
                    pair
                }
                Err(e) => {
                    failure = Some(crate::fdlimit::error("creating a pool worker's channel", e));
                    break;
                }
            };
            let boot = Boot {
                token,
                // With a task timeout, each result goes out at once, so that
                // the pool knows when the next item started.
                flush_after_us: if cfg.timeout.is_some() {
                    0
                } else {
                    FLUSH_AFTER_US
                },
                init: cfg.init.clone(),
            };
            let mut p = Process::new(worker::worker_main, boot);
            p.name(&format!("worker {slot}"))
                .set_policy(cfg.policy)
                .hand_down(theirs);
            if let Some(m) = cfg.method {
                p.start_method(m);
            }
            match p.start() {
                Ok(handle) => pending.push(Pending {
                    slot,
                    handle,
                    token,
                    sock: ours,
                }),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let greeted = self.greet(pending);
        match failure {
            Some(e) => Err(e),
            None => greeted,
        }
    }

    /// Waits for the hello of each worker just started. A worker that dies, or
    /// says nothing in time, is killed and reported.
    fn greet(&mut self, mut pending: Vec<Pending>) -> Result<()> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let mut failure: Option<Error> = None;
        while !pending.is_empty() && failure.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            // Two entries per worker: its channel, then its pidfd (if any).
            let mut fds = Vec::with_capacity(2 * pending.len());
            let mut whose = Vec::with_capacity(2 * pending.len());
            for (i, p) in pending.iter().enumerate() {
                fds.push(PollFd::new(&p.sock, PollFlags::IN));
                whose.push((i, false));
                if let Some(fd) = p.handle.child().pidfd() {
                    fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                    whose.push((i, true));
                }
            }
            match rustix::event::poll(&mut fds, Some(&timespec(left))) {
                Ok(0) => {
                    failure = Some(Error::WorkerDidNotConnect {
                        pid: pending.first().map_or(0, |p| p.handle.pid()),
                        how: format!("did not connect within {CONNECT_TIMEOUT:?}"),
                        init_hint: false,
                    });
                    break;
                }
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("poll", io::Error::from(e))),
            }
            let fired: Vec<(usize, bool)> = fds
                .iter()
                .zip(&whose)
                .filter(|(f, _)| !f.revents().is_empty())
                .map(|(_, &w)| w)
                .collect();
            drop(fds);
            // Hellos first: a worker may say hello and die at once after.
            let mut greeted = Vec::new();
            let mut died = None;
            for &(i, pidfd) in &fired {
                if !pidfd {
                    match hello(&pending[i]) {
                        Some(Hello::Ready(progress)) => greeted.push((i, progress)),
                        Some(Hello::InitFailed(message)) => {
                            failure = Some(Error::PoolInitializer {
                                pid: pending[i].handle.pid(),
                                message,
                            });
                        }
                        Some(Hello::NoRoom) => {
                            crate::fdlimit::make_room();
                            failure = Some(crate::fdlimit::error(
                                "receiving a pool worker's progress page",
                                io::Error::from_raw_os_error(libc::EMFILE),
                            ));
                        }
                        None => died = died.or(Some(i)),
                    }
                } else if !fired.contains(&(i, false)) {
                    died = died.or(Some(i));
                }
            }
            if let Some(i) = died.filter(|_| failure.is_none()) {
                let h = &pending[i].handle;
                let how = match h.child().wait_timeout(Duration::from_secs(5)) {
                    Ok(Some(s)) => s.to_string(),
                    _ => "closed its channel without a hello".to_string(),
                };
                failure = Some(Error::WorkerDidNotConnect {
                    pid: h.pid(),
                    how,
                    init_hint: h.start_method() != crate::StartMethod::Fork,
                });
            }
            // Highest index first, so that swap_remove keeps the others'.
            greeted.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
            for (i, progress) in greeted {
                let p = pending.swap_remove(i);
                let sock = UnixStream::from(p.sock);
                sock.set_nonblocking(true)
                    .map_err(|e| Error::io("pool socket", e))?;
                self.slots[p.slot] = Some(Worker::new(p.handle, sock, progress));
            }
        }
        for p in pending {
            let _ = p.handle.kill();
            let _ = p.handle.child().wait_timeout(Duration::from_secs(5));
        }
        self.publish();
        failure.map_or(Ok(()), Err)
    }

    /// Python's `close()` + `join()`: workers finish what they hold, then quit.
    pub(super) fn close(&mut self, cfg: &Config) -> Result<()> {
        self.closed = true;
        for w in self.slots.iter_mut().flatten() {
            if !w.quitting {
                w.push_quit();
            }
            let _ = w.sock.set_nonblocking(false);
            w.flush();
        }
        let limit = Instant::now() + cfg.timeout.unwrap_or(Duration::ZERO) + Duration::from_secs(5);
        let workers: Vec<Worker> = self.slots.iter_mut().filter_map(Option::take).collect();
        self.publish();
        for w in workers {
            let child = w.handle.child();
            let ended = child.wait_until(Some(limit)).map(|s| s.is_some());
            if !ended_or_lost(ended)? {
                w.handle.kill()?;
                ended_or_lost(child.wait().map(|_| true))?;
            }
        }
        Ok(())
    }

    /// SIGTERM to every worker, SIGKILL after the grace, and wait.
    pub(super) fn terminate(&mut self, cfg: &Config) -> Result<()> {
        self.closed = true;
        let grace = match cfg.policy.on_exit {
            OnExit::Terminate { grace } => grace,
            _ => Duration::from_secs(1),
        };
        let deadline = Instant::now() + grace;
        let workers: Vec<Worker> = self.slots.iter_mut().filter_map(Option::take).collect();
        self.publish();
        for w in &workers {
            let _ = w.handle.terminate();
        }
        let mut first_err = None;
        for w in &workers {
            if let Err(e) = ended_or_lost(w.handle.child().finish_by(deadline).map(|_| true)) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Ends a worker that died, timed out or broke the protocol: collects the
    /// results it sent, charges the running item, puts the rest back in line.
    pub(super) fn bury(&mut self, slot: usize, run: &mut Run<'_>, cause: Cause) {
        let Some(mut w) = self.slots[slot].take() else {
            return;
        };
        self.publish();
        if cause != Cause::Timeout {
            w.read_some();
            if !parse(&mut w, run) {
                let _ = w.handle.kill();
            }
        }
        // Up to its last send: what it used after is lost with it.
        self.board.add_usage(w.take_usage());
        let child = w.handle.child();
        if cause != Cause::Exited {
            let _ = child.kill();
        }
        // Exited: the pidfd said so (a fork-server worker's status follows a
        // moment later). Otherwise it was just SIGKILLed.
        let status = match child.wait_timeout(Duration::from_secs(5)) {
            Ok(Some(s)) => Some(s),
            Ok(None) => {
                let _ = child.kill();
                child.wait().ok()
            }
            Err(_) => None,
        };
        let pid = w.pid();
        // The worker's counters say what the results cannot: items it finished
        // whose results died with it (they run again), and whether it died
        // while running one (that one fails).
        let (started, finished) = w.progress.read();
        let (lost, running) = after_death(
            Counts {
                started,
                finished,
                received: w.received,
                inflight: w.inflight.len(),
            },
            cause,
        );
        let now = Instant::now();
        let mut again = Line::new();
        for idx in w.inflight.split_front(lost).iter() {
            // Bounded, and within the item's timeout from its first start.
            let verdict = run.reruns.lost(idx, w.since);
            let late = run
                .deadline_of(idx, w.since, &self.board, now)
                .is_some_and(|at| now >= at);
            let err = match verdict {
                Verdict::TooMany { runs } => TaskError::ResultLost { runs, pid, status },
                Verdict::Again if late => TaskError::Timeout {
                    pid,
                    timeout: run.timeout_of(idx).unwrap_or_default(),
                },
                Verdict::Again => {
                    again.push_back(idx);
                    continue;
                }
            };
            run.finish(idx, Err(err));
        }
        let culprit = if running {
            w.inflight.pop_front()
        } else {
            None
        };
        if let Some(idx) = culprit {
            let err = match cause {
                Cause::Timeout => TaskError::Timeout {
                    pid,
                    timeout: run.timeout_of(idx).unwrap_or_default(),
                },
                Cause::Exited => TaskError::WorkerDied {
                    pid,
                    signal: status.and_then(|s| s.signal()),
                    status,
                },
                Cause::Broken => TaskError::Failed {
                    reason: format!("worker {pid} sent a malformed result frame; it was killed"),
                },
            };
            run.finish(idx, Err(err));
        }
        // Never started, or to run again: back to the front of the line, in order.
        again.append(std::mem::take(&mut w.inflight));
        run.pending.prepend(again);
    }
}

/// What a new worker said first.
enum Hello {
    /// Its token, with its progress page: it is ready.
    Ready(Progress),
    /// Its token, then why its initializer failed.
    InitFailed(String),
    /// Its token, with a page this process had no descriptor left to take.
    NoRoom,
}

/// A new worker's hello on its channel: the token it was given, with its
/// progress page attached (or, without it, why its initializer failed).
/// `None` if the channel closed or said anything else.
fn hello(p: &Pending) -> Option<Hello> {
    let mut token = [0u8; 8];
    let (n, fds) = match crate::sys::socket::recv_with_all_fds(p.sock.as_fd(), &mut token) {
        Ok(got) => got,
        // Without the page, the hello would read as an initializer's
        // failure, whose message never comes.
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return Some(Hello::NoRoom),
        Err(_) => return None,
    };
    // The worker sends its 8 bytes in one message; a stream may still split
    // them, and the rest follows at once (a worker gone mid-hello is EOF).
    let mut got = n;
    while got < token.len() {
        match crate::sys::pipe::read(p.sock.as_fd(), &mut token[got..]).ok()? {
            0 => return None,
            k => got += k,
        }
    }
    if u64::from_le_bytes(token) != p.token {
        return None;
    }
    let Some(page) = fds.first() else {
        return match frame::read_frame(p.sock.as_fd()).ok()? {
            (FrameKind::Failed, why) => Some(Hello::InitFailed(wire::decode_reason(&why))),
            _ => None,
        };
    };
    Progress::open(page.as_fd()).ok().map(Hello::Ready)
}

pub(super) fn timespec(d: Duration) -> rustix::event::Timespec {
    rustix::event::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// Takes the results of a `Values` frame, one per item in flight (those
/// past them answer items handed away, and are thrown away); false if it is
/// malformed or holds more results than items were sent.
fn take_values(
    inflight: &mut Line,
    received: &mut u64,
    discard: &mut usize,
    run: &mut Run<'_>,
    payload: &[u8],
) -> bool {
    let Some(count) = count_items(payload) else {
        return false;
    };
    let keep = count.min(inflight.len());
    if count - keep > *discard {
        return false;
    }
    *discard -= count - keep;
    *received += (count - keep) as u64;
    take_kept(inflight, received, run, payload, keep, keep == count);
    true
}

/// Takes the first `count` results of a `Values` frame's `payload` (which
/// holds `all` of them, or more) for the items in flight.
fn take_kept(
    inflight: &mut Line,
    received: &mut u64,
    run: &mut Run<'_>,
    payload: &[u8],
    count: usize,
    all: bool,
) {
    // One entry per run of consecutive items in flight (one, unless items
    // of a dead worker were handed out again in between).
    let mut rest = payload;
    let mut left = count;
    while let Some(items) = inflight.take_run(left) {
        left -= items.len();
        let len = if left == 0 && all {
            rest.len()
        } else {
            let mut tail = rest;
            for _ in 0..items.len() {
                tail = frame::split_item(tail).map_or(&[][..], |(_, t)| t);
            }
            rest.len() - tail.len()
        };
        let (these, after) = rest.split_at(len);
        run.finish_run(items.start, items.len(), these);
        rest = after;
    }
    *received += count as u64;
}

/// How many whole `[u32 len][bytes]` items `buf` holds; `None` if it does
/// not end on an item's end.
fn count_items(mut buf: &[u8]) -> Option<usize> {
    let mut n = 0;
    while !buf.is_empty() {
        buf = frame::split_item(buf)?.1;
        n += 1;
    }
    Some(n)
}

/// Parses the whole result frames in `inbuf`; false on a malformed one.
pub(super) fn parse(w: &mut Worker, run: &mut Run<'_>) -> bool {
    let received_before = w.received;
    let mut pos = 0;
    let mut ok = true;
    loop {
        let (kind, payload, used) = match frame::split_frame(&w.inbuf[pos..]) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => {
                ok = false;
                break;
            }
        };
        if kind == FrameKind::Share {
            // Shared data the results after it name. A descriptor that did
            // not arrive (our descriptor limit) fails those results only.
            shared::receive_share(payload, &mut w.fds, &mut run.inbox);
            pos += used;
            continue;
        }
        if kind == FrameKind::Values {
            if !take_values(
                &mut w.inflight,
                &mut w.received,
                &mut w.discard,
                run,
                payload,
            ) {
                ok = false;
                break;
            }
            pos += used;
            continue;
        }
        // A result in a memfd: its descriptor is taken whoever the result
        // is for, so that those of later frames stay in step.
        let mapped =
            (kind == FrameKind::Mapped).then(|| shared::receive_mapped(payload, &mut w.fds));
        let Some(idx) = w.inflight.pop_front() else {
            if w.discard > 0 && kind != FrameKind::Task && kind != FrameKind::Quit {
                // The answer to an item handed away: thrown away.
                w.discard -= 1;
                w.received += 1;
                pos += used;
                continue;
            }
            ok = false;
            break;
        };
        if let Some(Ok(region)) = mapped {
            run.finish_mapped(idx, region);
            w.received += 1;
            pos += used;
            continue;
        }
        let outcome = match kind {
            FrameKind::Value => Ok(payload),
            FrameKind::Mapped => Err(TaskError::Failed {
                reason: mapped.and_then(|m| m.err()).unwrap_or_default(),
            }),
            FrameKind::Panic => {
                let PanicReport { message, location } = PanicReport::decode(payload);
                Err(TaskError::Panicked { message, location })
            }
            FrameKind::Failed => Err(TaskError::Failed {
                reason: wire::decode_reason(payload),
            }),
            FrameKind::Task | FrameKind::Quit | FrameKind::Share | FrameKind::Values => {
                w.inflight.push_front(idx);
                ok = false;
                break;
            }
        };
        run.finish(idx, outcome);
        w.received += 1;
        pos += used;
    }
    if pos > 0 {
        let now = Instant::now();
        let came = w.received - received_before;
        if came > 0 {
            let per = u64::try_from(now.duration_since(w.since).as_nanos() / u128::from(came))
                .unwrap_or(u64::MAX);
            w.item_ns = if w.item_ns == 0 {
                per
            } else {
                w.item_ns / 4 * 3 + per / 4
            };
        }
        w.since = now;
        w.inbuf.drain(..pos);
        // Results came: a worker over its memory finishes what it holds and
        // retires (read once per batch of results, not per turn).
        if let Some(max) = run.plan.max_memory
            && !w.quitting
            && crate::sys::procfs::rss_bytes(w.pid()).is_some_and(|rss| rss > max)
        {
            w.push_quit();
            w.flush();
        }
    }
    ok
}

/// Whether a worker ended: a worker reaped elsewhere (`SIGCHLD` ignored: the
/// kernel reaps every child) has ended too, its status lost, which a pool
/// that is closing does not need.
fn ended_or_lost(waited: Result<bool>) -> Result<bool> {
    match waited {
        Err(Error::ReapedElsewhere { .. }) => Ok(true),
        other => other,
    }
}
