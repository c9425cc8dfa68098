//! [`OnDrop`]: what a child's last dropped handle does to it.
//!
//! `Kill` is one signal, sent at once. `Terminate` sends SIGTERM at once and
//! must send SIGKILL after the grace without blocking the thread that dropped
//! the handle (an async task, a destructor on a hot path), so the deadline goes
//! to one brood thread that keeps every pending one (`brood-ondrop`, started
//! the first time a `Terminate` needs it). A normal exit of this process
//! finishes the pending ones first ([`finish_pending`], from `apply_on_exit`),
//! so a grace is never cut short into "left running".

use crate::child::Child;
use crate::policy::OnDrop;
use crate::runtime::spawn_own_thread;
use crate::sys::forklocal::ForkLocal;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Children sent SIGTERM by their `OnDrop`, by the time they get SIGKILL.
struct Pending {
    queue: Mutex<Queue>,
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    /// `(deadline, start sequence)` → the child.
    due: BTreeMap<(Instant, u64), Child>,
    running: bool,
}

/// This process's pending escalations (a forked child starts with none: its
/// parent's thread did not come along).
static PENDING: ForkLocal<Pending> = ForkLocal::new(|| Pending {
    queue: Mutex::new(Queue::default()),
    changed: Condvar::new(),
});

/// Applies `child`'s `OnDrop` (its last user handle was just dropped). Errors
/// are ignored: the child may have ended or been reaped elsewhere meanwhile.
pub(crate) fn apply(child: Child) {
    match child.policy().on_drop {
        OnDrop::Detach => {}
        OnDrop::Kill => {
            let _ = child.kill();
        }
        OnDrop::Terminate { grace } => {
            // A child that ended alone has nothing left to end, unless its
            // group may hold stragglers.
            let alone = child.policy().tree == crate::Tree::Own;
            if (alone && !child.is_alive()) || child.terminate().is_err() {
                return;
            }
            if grace.is_zero() {
                let _ = child.kill();
            } else {
                schedule(child, Instant::now() + grace);
            }
        }
    }
}

fn schedule(child: Child, at: Instant) {
    let pending = PENDING.get();
    let mut q = pending.queue.lock().unwrap_or_else(|e| e.into_inner());
    if !q.running {
        match spawn_own_thread("brood-ondrop", move || run(pending)) {
            Ok(_) => q.running = true,
            Err(_) => {
                // No thread for the deadline: the policy must still hold, so
                // the grace is given up rather than the SIGKILL.
                drop(q);
                let _ = child.kill();
                return;
            }
        }
    }
    q.due.insert((at, child.inner.seq), child);
    pending.changed.notify_one();
}

/// The `brood-ondrop` thread: SIGKILL each child (its tree) when its grace ends.
fn run(pending: &'static Pending) {
    let mut q = pending.queue.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let Some((&(at, seq), _)) = q.due.first_key_value() else {
            q = pending.changed.wait(q).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let now = Instant::now();
        if at > now {
            q = pending
                .changed
                .wait_timeout(q, at - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        if let Some(child) = q.due.remove(&(at, seq)) {
            drop(q);
            let _ = child.kill();
            q = pending.queue.lock().unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// At a normal exit: wait for each pending child until its grace ends, then
/// SIGKILL what is left (as the `brood-ondrop` thread would have).
pub(crate) fn finish_pending() {
    let Some(pending) = PENDING.existing() else {
        return;
    };
    let due = std::mem::take(&mut pending.queue.lock().unwrap_or_else(|e| e.into_inner()).due);
    for ((at, _), child) in due {
        let _ = child.finish_by(at);
    }
}
