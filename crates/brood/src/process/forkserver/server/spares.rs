//! The server's side of its spares (see `zygote`): forking them when idle,
//! taking those that took a request as children, reaping the rest, and what
//! a new spare does until it has its request.

use super::{KEY_KIDS, Server};
use crate::process::child::{self, CODE_SETUP};
use crate::process::forkserver::slots::{GEN_MASK, GONE, REQUEST_MAX, Slot, State};
use crate::process::forkserver::zygote::{Spare, Spares, wait_for_request};
use crate::sys::{self, closerange, fork::Forked, pidfd, socket};
use crate::wire::{self, ToClient, ToSpare};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;

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
        let mut forked = false;
        for k in 0..self.zygote.as_ref().map_or(0, |z| z.spares.len()) {
            if self.zygote.as_ref().is_some_and(|z| z.spares[k].is_none()) {
                // One fork at a time: a child that ended, or a request, that
                // came during the last one is served before the next.
                if forked && self.watcher.as_ref().is_none_or(|w| w.any_ready()) {
                    return;
                }
                self.fork_spare(k);
                forked = true;
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
