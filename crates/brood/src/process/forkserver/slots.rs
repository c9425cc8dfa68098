//! The spares' shared page (see `zygote`): one state word per slot —
//! `Empty`, `Ready`, `Claimed` or `Taken`, with a generation and a pid —
//! beside the request id and policy bits a spare publishes, and the word that
//! says the client is gone. Written by the client (claims), the server
//! (forking, retiring, taking) and each spare (ready, taken), only ever with
//! sequentially consistent atomics: the claim's safety argument (see
//! `zygote`) is an ordering between a compare-and-swap and a reap.

use crate::sys::pidfd;
use crate::sys::shm::SharedWords;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// The most spares a server keeps (the page has room for 170).
pub(crate) const MAX_SPARES: usize = 64;
/// How many spares a server keeps unless `BROOD_FORKSERVER_SPARES` says.
pub(crate) const DEFAULT_SPARES: usize = 2;
/// The variable that sets it (0 turns spares off), read once per server.
pub(crate) const SPARES_ENV: &str = "BROOD_FORKSERVER_SPARES";

/// How many spares a new server should keep.
pub(crate) fn wanted() -> u32 {
    std::env::var(SPARES_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_SPARES)
        .min(MAX_SPARES) as u32
}

/// The largest request a spare takes (a longer one, for a very long name, is
/// forked instead: see `client::ask_spare`).
pub(crate) const REQUEST_MAX: usize = 2048;

/// Word 0 of the page: set once the server saw its client go.
pub(crate) const GONE: usize = 0;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Empty,
    Ready,
    Claimed,
    Taken,
}

/// One slot's state word, unpacked: bits 0–31 the pid, 32–33 the state,
/// 34–63 the generation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) state: State,
    pub(crate) generation: u64,
    pub(crate) pid: u32,
}

impl Slot {
    pub(crate) fn pack(self) -> u64 {
        let st = match self.state {
            State::Empty => 0,
            State::Ready => 1,
            State::Claimed => 2,
            State::Taken => 3,
        };
        u64::from(self.pid) | (st << 32) | ((self.generation & GEN_MASK) << 34)
    }

    pub(crate) fn unpack(word: u64) -> Slot {
        let state = match (word >> 32) & 3 {
            0 => State::Empty,
            1 => State::Ready,
            2 => State::Claimed,
            _ => State::Taken,
        };
        Slot {
            state,
            generation: word >> 34,
            pid: word as u32,
        }
    }

    pub(crate) fn with(self, state: State) -> Slot {
        Slot { state, ..self }
    }

    pub(crate) fn with_pid(self, pid: u32) -> Slot {
        Slot { pid, ..self }
    }

    /// A slot whose spare of `generation` is being forked.
    pub(crate) fn forking(generation: u64) -> Slot {
        Slot {
            state: State::Empty,
            generation,
            pid: 0,
        }
    }
}

pub(crate) const GEN_MASK: u64 = (1 << 30) - 1;

/// The shared page, seen as slots.
pub(crate) struct Slots {
    page: SharedWords,
    count: usize,
}

impl Slots {
    pub(crate) fn new(page: SharedWords, count: usize) -> Slots {
        Slots {
            page,
            count: count.min(MAX_SPARES),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn word(&self, i: usize) -> &AtomicU64 {
        &self.page.words()[i]
    }

    fn state_word(&self, k: usize) -> &AtomicU64 {
        self.word(1 + 3 * k)
    }

    pub(crate) fn load(&self, k: usize) -> Slot {
        Slot::unpack(self.state_word(k).load(Ordering::SeqCst))
    }

    pub(crate) fn swap(&self, k: usize, from: Slot, to: Slot) -> bool {
        self.state_word(k)
            .compare_exchange(from.pack(), to.pack(), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    pub(crate) fn store(&self, k: usize, slot: Slot) {
        self.state_word(k).store(slot.pack(), Ordering::SeqCst);
    }

    /// The client's claim of a ready spare: its slot, generation, pid and a
    /// pidfd for it (opened before the claim; see the module doc).
    pub(crate) fn claim(&self) -> Option<(usize, u64, u32, OwnedFd)> {
        (0..self.count).find_map(|k| {
            let slot = self.load(k);
            if slot.state != State::Ready {
                return None;
            }
            let fd = pidfd::open(slot.pid).ok()?;
            self.swap(k, slot, slot.with(State::Claimed)).then_some((
                k,
                slot.generation,
                slot.pid,
                fd,
            ))
        })
    }

    /// Gives back a claim whose request was never sent.
    pub(crate) fn unclaim(&self, k: usize, generation: u64, pid: u32) {
        let claimed = Slot {
            state: State::Claimed,
            generation,
            pid,
        };
        let _ = self.swap(k, claimed, claimed.with(State::Ready));
    }

    /// Whether the server saw its client go.
    pub(crate) fn gone(&self) -> bool {
        self.word(GONE).load(Ordering::SeqCst) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    #[test]
    fn a_slot_word_packs_and_unpacks() {
        for state in [State::Empty, State::Ready, State::Claimed, State::Taken] {
            let slot = Slot {
                state,
                generation: GEN_MASK,
                pid: u32::MAX,
            };
            assert_eq!(Slot::unpack(slot.pack()), slot);
        }
    }

    #[test]
    fn a_claim_needs_a_ready_slot_and_a_live_pid_and_succeeds_once() {
        let (page, _fd) = SharedWords::create().unwrap();
        let slots = Slots::new(page, 2);
        assert!(slots.claim().is_none(), "empty slots");
        let me = sys::getpid();
        let ready = Slot {
            state: State::Ready,
            generation: 5,
            pid: me,
        };
        slots.store(1, ready);
        let (k, generation, pid, _fd) = slots.claim().unwrap();
        assert_eq!((k, generation, pid), (1, 5, me));
        assert!(slots.claim().is_none(), "claimed once");
        slots.unclaim(1, 5, me);
        assert_eq!(slots.load(1), ready);
    }
}
