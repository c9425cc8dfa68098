//! The supervisor's thread: one `poll(2)` over every running child's pidfd
//! and the control pipe, with the nearest waiting restart as its timeout;
//! restarts by strategy, within the intensity, after the back-off.

use super::backoff::Backoff;
use super::intensity::Intensity;
use super::{ChildSpec, Published, Strategy, Supervisor, SupervisorHandle};
use crate::child::NO_PIDFD_TICK;
use crate::{Child, Error, ExitStatus, Result};
use rustix::event::{PollFd, PollFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The handle's end: a pipe to the thread (a byte means stop), the thread,
/// and where it leaves its outcome.
#[derive(Debug)]
pub(super) struct Control {
    stop: OwnedFd,
    thread: JoinHandle<()>,
    outcome: Arc<Mutex<Option<Result<()>>>>,
}

impl Control {
    pub(super) fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    pub(super) fn stop(self) -> Result<()> {
        // The thread may have given up already (then the pipe is closed).
        let _ = crate::sys::pipe::write_all(self.stop.as_fd(), b"s");
        self.wait()
    }

    pub(super) fn wait(self) -> Result<()> {
        let Control {
            stop,
            thread,
            outcome,
        } = self;
        let joined = thread.join();
        drop(stop);
        let outcome = outcome.lock().unwrap_or_else(|e| e.into_inner()).take();
        match (joined, outcome) {
            (Ok(()), Some(outcome)) => outcome,
            _ => Err(Error::io(
                "the supervisor thread",
                std::io::Error::other("it panicked"),
            )),
        }
    }
}

/// A child and, while it runs, its process.
struct Slot {
    spec: ChildSpec,
    child: Option<Child>,
    /// Ended and not to be restarted (a temporary or finished transient child).
    done: bool,
    /// When its start returned: for a child with a readiness sign
    /// (`command_ready`), the moment it was ready. How long it ran from
    /// there decides the back-off, so time spent getting ready never counts
    /// as a stable run.
    started: Instant,
    /// Restarts in a row without a stable run (the back-off's exponent).
    streak: u32,
    /// When a restart that was decided (and counted) is due: it waits for
    /// its back-off.
    pending: Option<Instant>,
}

/// With no child running and no restart waiting, how often the supervisor
/// looks whether this process's shutdown began (no child's end would wake it).
const IDLE_TICK: Duration = Duration::from_millis(100);

struct Sup {
    strategy: Strategy,
    slots: Vec<Slot>,
    intensity: Intensity,
    backoff: Backoff,
    published: Arc<Published>,
}

pub(super) fn start(sup: Supervisor) -> Result<SupervisorHandle> {
    let published = Arc::new(Published::default());
    let mut s = Sup {
        strategy: sup.strategy,
        intensity: Intensity::new(sup.max_restarts, sup.within),
        backoff: sup.backoff,
        slots: sup
            .children
            .into_iter()
            .map(|spec| Slot {
                spec,
                child: None,
                done: false,
                started: Instant::now(),
                streak: 0,
                pending: None,
            })
            .collect(),
        published: Arc::clone(&published),
    };
    for i in 0..s.slots.len() {
        if let Err(e) = s.start_one(i) {
            s.stop_from(0);
            return Err(e);
        }
    }
    s.publish();
    published.supervising.store(true, Ordering::SeqCst);
    let (stop_r, stop_w) = crate::fdlimit::with_room(crate::sys::pipe::pipe)
        .map_err(|e| crate::fdlimit::error("the supervisor's control pipe", e))?;
    let outcome = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&outcome);
    // A thread of brood's own (a fork from another thread does not count it
    // as the program's), which leaves its outcome for `wait`.
    let thread = crate::runtime::spawn_own_thread("brood-supervisor", move || {
        let end = s.run(stop_r);
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(end);
    });
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            // `s` went with the closure, and its children with it: nothing
            // supervises them, so they were not left running (see `Drop`).
            return Err(Error::io("starting the supervisor thread", e));
        }
    };
    Ok(SupervisorHandle {
        published,
        control: Some(Control {
            stop: stop_w,
            thread,
            outcome,
        }),
    })
}

impl Drop for Sup {
    /// Whatever ends the supervisor (a stop, giving up, a failed start, a
    /// thread that could not start), no child is left unsupervised.
    fn drop(&mut self) {
        self.stop_from(0);
    }
}

/// Why the loop ended.
enum End {
    Stopped,
    GaveUp(Error),
}

impl Sup {
    fn run(mut self, stop: OwnedFd) -> Result<()> {
        let end = self.supervise(&stop);
        // Said before the children are stopped, which may take their grace.
        self.published.supervising.store(false, Ordering::SeqCst);
        self.stop_from(0);
        self.publish();
        match end {
            End::Stopped => Ok(()),
            End::GaveUp(e) => Err(e),
        }
    }

    fn supervise(&mut self, stop: &OwnedFd) -> End {
        loop {
            if let Err(e) = self.start_due() {
                return e;
            }
            let (stopped, ended) = match self.wait_for_news(stop) {
                Ok(news) => news,
                Err(e) => return End::GaveUp(e),
            };
            if stopped {
                return End::Stopped;
            }
            for i in ended {
                if let Err(e) = self.child_ended(i) {
                    return e;
                }
            }
            if crate::shutdown::shutting_down() {
                // The process is leaving: its sweep ends the children, and
                // nothing starts again.
                return End::Stopped;
            }
        }
    }

    /// Starts, in order, the children whose restart is due; a start that
    /// fails waits its back-off and tries again, counting against the
    /// intensity.
    fn start_due(&mut self) -> std::result::Result<(), End> {
        let now = Instant::now();
        for j in 0..self.slots.len() {
            if self.slots[j].pending.is_none_or(|at| at > now) {
                continue;
            }
            self.slots[j].pending = None;
            self.published.restarts.fetch_add(1, Ordering::Relaxed);
            match self.start_one(j) {
                Ok(()) => {}
                Err(Error::ShuttingDown { .. }) => return Err(End::Stopped),
                Err(e) => {
                    // A failed start (for `command_ready`: it ended, or the
                    // time passed, before it was ready) ran for nothing: its
                    // back-off grows, and it counts against the intensity.
                    let delay = self
                        .backoff
                        .next_delay(&mut self.slots[j].streak, Duration::ZERO);
                    let at = Instant::now() + delay;
                    if !self.intensity.allow(Instant::now()) {
                        let why = match e {
                            Error::ChildStart { source, .. } => source.to_string(),
                            other => other.to_string(),
                        };
                        return Err(self.gave_up(j, format!("its restart failed: {why}")));
                    }
                    self.slots[j].pending = Some(at);
                }
            }
        }
        self.publish();
        Ok(())
    }

    /// One `poll(2)`: whether a stop was asked for, and which children ended
    /// (a readable pidfd; or, for a child without one, its recorded state).
    fn wait_for_news(&self, stop: &OwnedFd) -> Result<(bool, Vec<usize>)> {
        let mut fds = vec![PollFd::new(stop, PollFlags::IN)];
        let mut whose = Vec::new();
        let mut blind = Vec::new();
        let mut tick = None;
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(child) = &slot.child else { continue };
            match child.pidfd() {
                Some(fd) => {
                    fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                    whose.push(i);
                }
                None => {
                    blind.push(i);
                    tick = Some(NO_PIDFD_TICK);
                }
            }
        }
        let now = Instant::now();
        let next = self.slots.iter().filter_map(|s| s.pending).min();
        if whose.is_empty() && blind.is_empty() && next.is_none() {
            tick = Some(IDLE_TICK);
        }
        let wait = [tick, next.map(|at| at.saturating_duration_since(now))]
            .into_iter()
            .flatten()
            .min();
        let ts = wait.map(|t| rustix::event::Timespec {
            tv_sec: t.as_secs() as _,
            tv_nsec: t.subsec_nanos() as _,
        });
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("the supervisor's poll", std::io::Error::from(e))),
        }
        let stopped = !fds[0].revents().is_empty();
        let mut ended: Vec<usize> = fds[1..]
            .iter()
            .zip(&whose)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(_, &i)| i)
            .collect();
        drop(fds);
        ended.extend(
            blind
                .into_iter()
                .filter(|&i| self.slots[i].child.as_ref().is_some_and(|c| !c.is_alive())),
        );
        ended.sort_unstable();
        Ok((stopped, ended))
    }

    /// Child `i` ended: restart it (and others, by strategy) if its policy
    /// says so, within the intensity, once its back-off has passed.
    fn child_ended(&mut self, i: usize) -> std::result::Result<(), End> {
        let Some(child) = self.slots[i].child.take() else {
            return Ok(());
        };
        let status = child.wait().ok();
        let ran = self.slots[i].started.elapsed();
        self.publish();
        let restart = status.is_none_or(|s| self.slots[i].spec.restart.restarts_after(s));
        if !restart {
            self.slots[i].done = true;
            return Ok(());
        }
        if crate::shutdown::shutting_down() {
            // The process is leaving: nothing starts again.
            return Err(End::Stopped);
        }
        let first = match self.strategy {
            Strategy::OneForOne => i,
            Strategy::OneForAll => 0,
            Strategy::RestForOne => i,
        };
        let last = match self.strategy {
            Strategy::OneForOne => i,
            _ => self.slots.len() - 1,
        };
        // The others that restart with it are stopped first, last first.
        for j in (first..=last).rev() {
            if j != i {
                // A pool is not restarted (it replaces its own workers).
                self.stop_one(j, false);
            }
        }
        let delay = self.backoff.next_delay(&mut self.slots[i].streak, ran);
        let at = Instant::now() + delay;
        for j in first..=last {
            if self.slots[j].done && j != i {
                continue;
            }
            self.schedule(j, i, status, at)?;
        }
        self.publish();
        Ok(())
    }

    /// Child `j` starts again at `at` (as part of the restart caused by child
    /// `cause`), counted against the intensity now.
    fn schedule(
        &mut self,
        j: usize,
        cause: usize,
        status: Option<ExitStatus>,
        at: Instant,
    ) -> std::result::Result<(), End> {
        if !self.intensity.allow(Instant::now()) {
            let last = status.map_or("its status was lost".into(), |s| s.to_string());
            return Err(self.gave_up(cause, last));
        }
        self.slots[j].pending = Some(at);
        Ok(())
    }

    /// Restarting child `i`, which ended as `last` says, was one too many.
    fn gave_up(&self, i: usize, last: String) -> End {
        End::GaveUp(Error::RestartIntensity {
            child: self.slots[i].spec.id.clone(),
            max: self.intensity.max(),
            within: self.intensity.within(),
            last,
        })
    }

    fn start_one(&mut self, i: usize) -> Result<()> {
        let slot = &mut self.slots[i];
        if slot.spec.pool.is_some() {
            // Already running, and it supervises its own workers.
            return Ok(());
        }
        let shutdown = slot.spec.shutdown;
        match (slot.spec.start)(shutdown) {
            Ok(child) => {
                slot.child = Some(child);
                slot.done = false;
                slot.started = Instant::now();
                Ok(())
            }
            Err(e) => Err(Error::ChildStart {
                child: slot.spec.id.clone(),
                source: Box::new(e),
            }),
        }
    }

    /// Stops child `i` as its spec says, and waits for it; a pool only when
    /// the supervisor stops `for_good` (it never restarts).
    fn stop_one(&mut self, i: usize, for_good: bool) {
        let slot = &mut self.slots[i];
        if let Some(child) = slot.child.take() {
            let _ = child.terminate_timeout(slot.spec.shutdown.grace());
        }
        if for_good && let Some(pool) = slot.spec.pool.take() {
            let _ = pool.terminate();
        }
    }

    /// Stops every child, last first.
    fn stop_from(&mut self, first: usize) {
        for i in (first..self.slots.len()).rev() {
            self.stop_one(i, true);
        }
    }

    fn publish(&self) {
        let pids = self
            .slots
            .iter()
            .map(|s| (s.spec.id.clone(), s.child.as_ref().map(Child::pid)))
            .collect();
        *self
            .published
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = pids;
    }
}
