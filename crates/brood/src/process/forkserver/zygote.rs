//! Spares: children the fork server forked ahead of time, so that a start is a
//! message to a process that already exists rather than a fork (Android's
//! zygote keeps such a pool).
//!
//! **Slots.** The server keeps up to [`MAX_SPARES`] spares, one per slot. Each
//! slot has a `SOCK_SEQPACKET` channel made at the handshake (the client holds
//! one end, the server and the slot's current spare the other) and three
//! words in a page of shared memory (a sealed memfd, mapped by the client, the
//! server and — inherited — every spare):
//!
//! - the *state*: `Empty`, `Ready`, `Claimed` or `Taken`, with the spare's pid
//!   and its generation (one per spare the server ever forked);
//! - the request id and the policy bits (death signal, group) that the spare
//!   publishes when it takes a request.
//!
//! **A start.** The client claims a `Ready` slot (it opens the spare's pidfd,
//! then compare-and-swaps `Ready → Claimed`), registers the child at once and
//! sends the request ([`ToSpare`](crate::wire::ToSpare)) with its pipes on the
//! slot's channel, straight to the spare: no reply is awaited, so the
//! client's one wake-up per child is the server's report of its end. The
//! spare takes the request, publishes `Taken` and pokes the server (a byte
//! on a pipe), then specialises exactly as a freshly forked child does (see
//! `Server::start`). Only then does the server fork a replacement, when
//! nothing else is ready (off the path of any start and report).
//!
//! **Why the pidfd is opened before the claim.** The server marks a `Ready`
//! slot `Empty` *before* it reaps a spare that died. A client whose claim
//! succeeded therefore opened its pidfd before that reap, while the pid could
//! not have been reused: the pidfd names the spare.
//!
//! **Lifetimes.** A spare waits on its channel, the server's pidfd and the
//! client's pidfd. It takes a request that is queued (it was started, as far
//! as the client knows, when `start` returned), and otherwise exits as soon as
//! the server or the client is gone; the server also SIGKILLs the unclaimed
//! ones when the client goes, and reaps every spare (no zombie). A spare never
//! counts as a child of the user's until a claim made it one.

use super::slots::{GEN_MASK, REQUEST_MAX, Slots, State};
use crate::process::child;
use crate::sys::shm::SharedWords;
use crate::sys::{self, closerange, pidfd, socket};
use crate::wire::{self, ToSpare};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

/// A child of the server: forked for a request, or a spare that took one.
pub(crate) struct Kid {
    pub(crate) pid: u32,
    /// The request it was started for.
    pub(crate) id: u64,
    pub(crate) pidfd: OwnedFd,
    pub(crate) death_signal: i32,
    /// It leads a process group (or session) that its death signal reaches.
    pub(crate) group: bool,
}

/// The server's side: one entry per slot.
pub(crate) struct Spares {
    pub(crate) slots: Slots,
    /// The server's end of each slot's channel (kept high: see `closerange`).
    pub(crate) channels: Vec<OwnedFd>,
    pub(crate) spares: Vec<Option<Spare>>,
    pub(crate) next_generation: u64,
    /// Spares write a byte here when they take a request.
    pub(crate) poke_r: OwnedFd,
    pub(crate) poke_w: OwnedFd,
    /// The server's own pidfd, which spares watch.
    pub(crate) me: OwnedFd,
    /// No spare is made any more (the client is gone).
    pub(crate) retired: bool,
    /// What `ps` shows for a spare.
    pub(crate) title: String,
    /// A request for [`warm`], encoded: each spare decodes and resolves it
    /// before it waits (see `be_spare`).
    pub(crate) rehearsal: Vec<u8>,
}

/// The function of the rehearsal request (never run).
fn warm(_: ()) {}

pub(crate) struct Spare {
    pub(crate) pid: u32,
    pub(crate) generation: u64,
    pub(crate) pidfd: OwnedFd,
}

/// What the handshake hands to the client: the page and its end of each
/// slot's channel.
pub(crate) struct ForClient {
    pub(crate) page: OwnedFd,
    pub(crate) channels: Vec<OwnedFd>,
}

impl Spares {
    /// The page, the channels and the poke pipe for `count` spares (made before
    /// any spare, so that every descriptor the server keeps is high).
    pub(crate) fn new(count: usize, title: String) -> std::io::Result<(Spares, ForClient)> {
        let high = closerange::move_high;
        let (page, page_fd) = SharedWords::create()?;
        let mut channels = Vec::with_capacity(count);
        let mut theirs = Vec::with_capacity(count);
        for _ in 0..count {
            let (client, spare) = socket::seqpacket_pair()?;
            theirs.push(client);
            channels.push(high(spare));
        }
        let (poke_r, poke_w) = sys::pipe::pipe()?;
        sys::pipe::set_nonblocking(poke_r.as_fd(), true)?;
        let me = high(pidfd::open(sys::getpid())?);
        let rehearsal = child::fn_ref(warm)
            .ok()
            .map(|func| ToSpare {
                generation: 0,
                id: 0,
                req: crate::wire::Request::new(
                    func,
                    &crate::Policy::for_kind(crate::Kind::Process { daemon: false }),
                    "spare",
                ),
                title: title.clone(),
            })
            .and_then(|msg| wire::encode(&msg).ok())
            .unwrap_or_default();
        Ok((
            Spares {
                slots: Slots::new(page, count),
                channels,
                spares: (0..count).map(|_| None).collect(),
                next_generation: 1,
                poke_r: high(poke_r),
                poke_w: high(poke_w),
                me,
                retired: false,
                title,
                rehearsal,
            },
            ForClient {
                page: page_fd,
                channels: theirs,
            },
        ))
    }

    pub(crate) fn slot_of(&self, pid: u32) -> Option<usize> {
        self.spares
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.pid == pid))
    }

    /// Whether a spare is still to be reaped (the server waits for them all).
    pub(crate) fn any(&self) -> bool {
        self.spares.iter().any(Option::is_some)
    }

    pub(crate) fn ready(&self) -> usize {
        (0..self.spares.len())
            .filter(|&k| self.slots.load(k).state == State::Ready)
            .count()
    }

    pub(crate) fn needs_refill(&self) -> bool {
        !self.retired && self.spares.iter().any(Option::is_none)
    }

    /// Slot `k`'s spare took a request: it is a child now (`None` if it did not).
    pub(crate) fn take(&mut self, k: usize) -> Option<Kid> {
        let slot = self.slots.load(k);
        let spare = self.spares[k].as_ref()?;
        if slot.state != State::Taken || slot.generation != spare.generation & GEN_MASK {
            return None;
        }
        let id = self.slots.word(2 + 3 * k).load(Ordering::SeqCst);
        let info = self.slots.word(3 + 3 * k).load(Ordering::SeqCst);
        let spare = self.spares[k].take()?;
        self.slots.store(k, slot.with(State::Empty));
        let group = info & 0x100 != 0;
        if group {
            // As for a forked child: both sides set the group.
            let _ = sys::pgrp::setpgid(spare.pid, spare.pid);
        }
        Some(Kid {
            pid: spare.pid,
            id,
            pidfd: spare.pidfd,
            death_signal: (info & 0xff) as i32,
            group,
        })
    }

    /// The descriptors a new child must not keep (all of them high).
    pub(crate) fn into_inherited(self) -> impl Iterator<Item = OwnedFd> {
        let Spares {
            channels,
            spares,
            poke_r,
            poke_w,
            me,
            slots,
            ..
        } = self;
        drop(slots); // unmapped: a child has no business with the slots
        channels
            .into_iter()
            .chain(spares.into_iter().flatten().map(|s| s.pidfd))
            .chain([poke_r, poke_w, me])
    }
}

/// A spare's wait: the request meant for it (`generation`), or `None` once
/// the server or the client is gone with nothing queued for it. A request for
/// an earlier spare of the slot is dropped (its pipes close).
pub(crate) fn wait_for_request(
    channel: &OwnedFd,
    server: &OwnedFd,
    client: &OwnedFd,
    generation: u64,
) -> Option<(ToSpare, Vec<OwnedFd>)> {
    // On the stack: a heap buffer would grow the heap in every spare (each
    // page it writes is a fault, and one more to tear down at its exit).
    let mut buf = [0u8; REQUEST_MAX];
    loop {
        let mut fds = [channel, server, client].map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        match sys::pipe::poll(&mut fds, -1) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
        // A request queued before either died is still taken: its start
        // returned, so it has begun as far as the client knows.
        loop {
            match socket::try_recv_with_fds(channel.as_fd(), &mut buf) {
                Ok(Some((0, _))) | Err(_) => return None,
                Ok(Some((n, got))) => match wire::decode::<ToSpare>(&buf[..n]) {
                    Ok(msg) if msg.generation == generation => return Some((msg, got)),
                    _ => drop(got),
                },
                Ok(None) => break,
            }
        }
        if fds[1].revents != 0 || fds[2].revents != 0 {
            return None;
        }
    }
}
