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

use super::server::{KEY_KIDS, Kid, Server};
use super::slots::{GEN_MASK, GONE, REQUEST_MAX, Slot, Slots, State};
use crate::process::child::{self, CODE_SETUP};
use crate::sys::shm::SharedWords;
use crate::sys::{self, closerange, fork::Forked, pidfd, socket};
use crate::wire::{self, ToClient, ToSpare};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

/// The server's side: one entry per slot.
pub(crate) struct Spares {
    pub(crate) slots: Slots,
    /// The server's end of each slot's channel (kept high: see `closerange`).
    channels: Vec<OwnedFd>,
    spares: Vec<Option<Spare>>,
    next_generation: u64,
    /// Spares write a byte here when they take a request.
    pub(crate) poke_r: OwnedFd,
    poke_w: OwnedFd,
    /// The server's own pidfd, which spares watch.
    me: OwnedFd,
    /// No spare is made any more (the client is gone).
    retired: bool,
    /// What `ps` shows for a spare.
    title: String,
    /// A request for [`warm`], encoded: each spare decodes and resolves it
    /// before it waits (see `be_spare`).
    rehearsal: Vec<u8>,
}

/// The function of the rehearsal request (never run).
fn warm(_: ()) {}

struct Spare {
    pid: u32,
    generation: u64,
    pidfd: OwnedFd,
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

    fn slot_of(&self, pid: u32) -> Option<usize> {
        self.spares
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.pid == pid))
    }

    /// Whether a spare is still to be reaped (the server waits for them all).
    pub(crate) fn any(&self) -> bool {
        self.spares.iter().any(Option::is_some)
    }

    fn ready(&self) -> usize {
        (0..self.spares.len())
            .filter(|&k| self.slots.load(k).state == State::Ready)
            .count()
    }

    fn needs_refill(&self) -> bool {
        !self.retired && self.spares.iter().any(Option::is_none)
    }

    /// Slot `k`'s spare took a request: it is a child now (`None` if it did not).
    fn take(&mut self, k: usize) -> Option<Kid> {
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

impl Server {
    /// Spares took requests: they become children.
    pub(crate) fn poked(&mut self) {
        let Some(z) = &mut self.zygote else { return };
        let mut buf = [0u8; 64];
        while matches!(sys::pipe::read(z.poke_r.as_fd(), &mut buf), Ok(1..)) {}
        for k in 0..z.spares.len() {
            if let Some(kid) = z.take(k) {
                self.kids.insert(kid.pid, kid);
            }
        }
    }

    /// `pid` ended. If it was a spare, reaps it and says so (`true`); a spare
    /// that had taken its request is made a child first (`false`: the caller
    /// reaps and reports it as one).
    pub(crate) fn reap_spare(&mut self, pid: u32) -> bool {
        let Some(z) = &mut self.zygote else {
            return false;
        };
        let Some(k) = z.slot_of(pid) else {
            return false;
        };
        let Some(spare) = &z.spares[k] else {
            return true;
        };
        if !pidfd::has_exited(&spare.pidfd).unwrap_or(true) {
            return true;
        }
        // Dead, so its slot no longer changes but by a client's claim: if it
        // took its request first, it ends as the child it became.
        if let Some(kid) = z.take(k) {
            self.kids.insert(pid, kid);
            return false;
        }
        let Some(spare) = &z.spares[k] else {
            return true;
        };
        // Not claimable any more *before* the reap (see the module doc).
        let slot = z.slots.load(k);
        let claimed = slot.state == State::Claimed
            || (slot.state == State::Ready && !z.slots.swap(k, slot, slot.with(State::Empty)));
        let claimed = claimed && slot.generation == spare.generation & GEN_MASK;
        let status = match pidfd::try_reap(spare.pidfd.as_fd()) {
            Ok(pidfd::Reap::Exited(status)) => status,
            _ => -1,
        };
        if let Some(w) = &self.watcher {
            let _ = w.remove(&spare.pidfd);
        }
        z.spares[k] = None;
        if claimed {
            z.slots.store(k, z.slots.load(k).with(State::Empty));
        }
        // A request sent to the dead spare is dropped here (its pipes close,
        // so the client's join sees the end), never left for the next one.
        let mut buf = [0u8; REQUEST_MAX];
        loop {
            match socket::try_recv_with_fds(z.channels[k].as_fd(), &mut buf) {
                Ok(Some((1.., _))) => {}
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {}
                _ => break,
            }
        }
        if claimed {
            // The client holds it as its child: its real status, as for any.
            self.reply(&ToClient::Exited { pid, status });
        }
        true
    }

    /// The client is gone: spares that took a request are children (the
    /// caller signals them per their policy); unclaimed ones are killed, and
    /// reaped as they end. A claimed one takes its queued request, or exits
    /// by itself (it watches the client's pidfd).
    pub(crate) fn spares_client_gone(&mut self) {
        let Some(z) = &mut self.zygote else { return };
        z.retired = true;
        // Before looking at the slots: a spare that publishes `Taken` after
        // this look sees the mark and applies its own death signal.
        z.slots.word(GONE).store(1, Ordering::SeqCst);
        for k in 0..z.spares.len() {
            if let Some(kid) = z.take(k) {
                self.kids.insert(kid.pid, kid);
                continue;
            }
            let slot = z.slots.load(k);
            // Ready, or not yet: nobody can claim it from now on.
            if let Some(spare) = &z.spares[k]
                && (slot.state == State::Ready || slot == Slot::forking(spare.generation))
                && z.slots
                    .swap(k, slot, slot.with(State::Empty).with_pid(spare.pid))
            {
                let _ = pidfd::send_signal(spare.pidfd.as_fd(), libc::SIGKILL);
            }
        }
    }

    /// Whether the server still waits for spares to end.
    pub(crate) fn has_spares(&self) -> bool {
        self.zygote.as_ref().is_some_and(Spares::any)
    }

    /// Forks a spare for every empty slot. Called when nothing else is ready,
    /// so that no start or report waits behind these forks; and not while a
    /// child runs unless no spare is left ready.
    pub(crate) fn refill(&mut self) {
        if !self.zygote.as_ref().is_some_and(Spares::needs_refill) || self.client.is_none() {
            return;
        }
        // While a child runs, its exit (and the report the client waits
        // for) would queue behind the fork: wait, unless no spare is left.
        let ready = self.zygote.as_ref().map_or(0, Spares::ready);
        if !self.kids.is_empty() && ready > 0 {
            return;
        }
        for k in 0..self.zygote.as_ref().map_or(0, |z| z.spares.len()) {
            if self.zygote.as_ref().is_some_and(|z| z.spares[k].is_none()) {
                self.fork_spare(k);
            }
        }
    }

    fn fork_spare(&mut self, k: usize) {
        let Some(z) = &mut self.zygote else { return };
        let generation = z.next_generation & GEN_MASK;
        z.next_generation += 1;
        // The spare itself makes the slot `Ready` once it waits (a claim
        // before then would wait for its start-up): until then the slot names
        // its generation and no pid.
        z.slots.store(k, Slot::forking(generation));
        match self.single.fork() {
            Ok(Forked::Child) => self.be_spare(k, generation),
            Ok(Forked::Parent(pid)) => {
                let watched = pidfd::open(pid).map(closerange::move_high).and_then(|fd| {
                    if let Some(w) = &self.watcher {
                        w.add(&fd, KEY_KIDS + u64::from(pid))?;
                    }
                    Ok(fd)
                });
                match watched {
                    Ok(pidfd) => {
                        z.spares[k] = Some(Spare {
                            pid,
                            generation,
                            pidfd,
                        });
                    }
                    // Unwatched, it could not be reaped: end it now, first
                    // making its slot unclaimable (it may have made itself
                    // ready already).
                    Err(_) => {
                        let gone = Slot::forking(generation).with_pid(pid);
                        let ready = Slot {
                            state: State::Ready,
                            generation,
                            pid,
                        };
                        let claimed = !z.slots.swap(k, Slot::forking(generation), gone)
                            && !z.slots.swap(k, ready, gone);
                        drop(sys::reap::kill_and_reap_own(pid));
                        if claimed {
                            // A client claimed it in between: it holds it as a
                            // child, killed by this SIGKILL (a wait status of 9).
                            self.reply(&ToClient::Exited {
                                pid,
                                status: libc::SIGKILL,
                            });
                        }
                    }
                }
            }
            Err(_) => {} // tried again at the next refill
        }
    }

    /// In a new spare: keep the four descriptors a spare needs, drop the rest
    /// of the server's, wait for a request, specialise.
    fn be_spare(&mut self, k: usize, generation: u64) -> ! {
        let low = |fd: BorrowedFd<'_>| {
            rustix::io::fcntl_dupfd_cloexec(fd, 3)
                .unwrap_or_else(|_| sys::fork::exit_now(CODE_SETUP))
        };
        let (Some(z), Some((_, client))) = (self.zygote.take(), &self.client) else {
            sys::fork::exit_now(CODE_SETUP)
        };
        let channel = low(z.channels[k].as_fd());
        let poke = low(z.poke_w.as_fd());
        let server = low(z.me.as_fd());
        let client = low(client.as_fd());
        let Spares {
            slots,
            channels,
            spares,
            poke_r,
            poke_w,
            me,
            title,
            rehearsal,
            ..
        } = z;
        // The slots stay mapped (inherited); every other descriptor goes.
        self.close_in_child(
            channels
                .into_iter()
                .chain(spares.into_iter().flatten().map(|s| s.pidfd))
                .chain([poke_r, poke_w, me]),
        );
        if let Some(soft) = self.client_nofile {
            let _ = sys::rlimit::restore_nofile(soft);
        }
        if let Some(area) = &self.args {
            area.set_title(&title);
        }
        // A rehearsal, while nobody waits: the first touch of a code page (or
        // of the shared page, whose mapping fork does not copy) is a fault,
        // so decode and resolve a request now rather than with the real one.
        if let Ok(msg) = wire::decode::<ToSpare>(&rehearsal) {
            let _ = crate::sys::image::resolve(&msg.req.func);
        }
        drop(rehearsal);
        let ready = Slot {
            state: State::Ready,
            generation,
            pid: sys::getpid(),
        };
        if !slots.swap(k, Slot::forking(generation), ready) {
            // The server gave the slot up meanwhile (its client went).
            sys::fork::exit_now(0)
        }
        let Some((msg, fds)) = wait_for_request(&channel, &server, &client, generation) else {
            sys::fork::exit_now(0)
        };
        drop(channel);
        let me = sys::getpid();
        let taken = Slot {
            state: State::Claimed,
            generation,
            pid: me,
        };
        let death_signal = msg.req.policy.death_signal().map_or(0, |s| s.as_raw());
        let group = msg.req.policy.tree != crate::policy::Tree::Own;
        slots.word(2 + 3 * k).store(msg.id, Ordering::SeqCst);
        slots.word(3 + 3 * k).store(
            death_signal as u64 | (u64::from(group) << 8),
            Ordering::SeqCst,
        );
        if !slots.swap(k, taken, taken.with(State::Taken)) {
            // Not claimed for us: the client's bookkeeping and ours disagree;
            // run nothing rather than run it twice.
            sys::fork::exit_now(CODE_SETUP);
        }
        let gone = slots.gone();
        let _ = sys::pipe::write_all(poke.as_fd(), b"t");
        drop((poke, server, client, slots));
        let fds = match child::request_fds(fds, false) {
            Ok(fds) => fds,
            Err(_) => sys::fork::exit_now(CODE_SETUP),
        };
        if gone && death_signal != 0 {
            // The client died while we were being handed the request, after
            // the server signalled its children: what it would have sent.
            sys::signal::raise_in_self(death_signal);
        }
        self.specialise(&msg.req, fds, Some(&msg.title), None)
    }
}

/// A spare's wait: the request meant for it (`generation`), or `None` once
/// the server or the client is gone with nothing queued for it. A request for
/// an earlier spare of the slot is dropped (its pipes close).
fn wait_for_request(
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
