//! [`Pool::submit`]: one task at a time, each with its own [`TaskHandle`]
//! (Python's `apply_async`).
//!
//! Submitted tasks wait in a queue; a thread of the pool's — started by the
//! first submission, gone once the queue is empty and every task answered —
//! runs them as one lazy map whose input is the queue: each item carries its
//! own function, a new submission wakes the map's loop through a pipe, and
//! each result goes to its handle as raw bytes, decoded by whoever waits.
//! Submitted tasks and maps take the pool's workers in turn: a map waits for
//! the tasks submitted before it to finish, and tasks submitted during a map
//! start once it has.

use super::PoolCall;
use super::items::{Own, Plan, Pulled, Run};
use super::map::MapUnordered;
use super::options::CallOptions;
use super::shared::{self, Raw};
use super::{Core, Pool, TaskError, state, worker};
use crate::Result;
use crate::sys::image::FnRef;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Where one submitted task's result lands.
#[derive(Default)]
struct Landing {
    state: Mutex<(Option<Raw>, Vec<Waker>)>,
    done: Condvar,
    /// Its task is withdrawn (the remote seam's chunk): kill its worker.
    withdrawn: std::sync::atomic::AtomicBool,
}

impl Landing {
    fn put(&self, raw: Raw) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 = Some(raw);
        let wakers = std::mem::take(&mut st.1);
        drop(st);
        self.done.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// A submitted task, waiting for a worker.
struct Waiting {
    /// Its function and timeouts.
    own: Own,
    arg: Vec<u8>,
    /// The shared data the argument names.
    named: Vec<shared::Sharing>,
    landing: Arc<Landing>,
}

/// The queue of submitted tasks, and whether a thread is running them.
#[derive(Debug, Default)]
pub(super) struct Queue {
    state: Mutex<QueueState>,
    /// Written on every submission, read by the running map's loop.
    wake: OnceWake,
}

#[derive(Default)]
struct QueueState {
    waiting: VecDeque<Waiting>,
    running: bool,
    /// Set by `terminate`: the thread abandons what it has.
    stop: bool,
    /// Set by `close` (and `terminate`): no more submissions.
    closed: bool,
}

impl std::fmt::Debug for QueueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("waiting", &self.waiting.len())
            .field("running", &self.running)
            .finish()
    }
}

/// The wake pipe, made at the first submission.
#[derive(Debug, Default)]
struct OnceWake(std::sync::OnceLock<Option<(OwnedFd, OwnedFd)>>);

impl OnceWake {
    fn get(&self) -> Option<&(OwnedFd, OwnedFd)> {
        self.0
            .get_or_init(|| crate::sys::pipe::wake_pipe().ok())
            .as_ref()
    }

    fn ring(&self) {
        if let Some((_, w)) = self.get() {
            // A full pipe already says the same.
            let _ = crate::sys::pipe::write_some(w.as_fd(), &[1]);
        }
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes no more submissions; those made run to their end.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        // A thread lingering for the next submission ends now.
        self.wake.ring();
    }

    /// Tells the running thread to abandon its tasks (they fail) and waits
    /// for nothing: the caller then waits for the pool's state.
    pub(super) fn stop(&self) {
        let mut st = self.lock();
        st.stop = true;
        st.closed = true;
        let dropped: Vec<Waiting> = st.waiting.drain(..).collect();
        drop(st);
        for w in dropped {
            w.landing.put(Err(stopped()));
        }
        self.wake.ring();
    }
}

fn stopped() -> TaskError {
    TaskError::Failed {
        reason: "the pool was terminated before the task ran".into(),
    }
}

/// A task given with [`Pool::submit`]: wait for its result, with or without
/// a deadline, or `.await` it (any runtime: it is a plain `Future`).
/// Dropping the handle does not cancel the task.
pub struct TaskHandle<R> {
    landing: Arc<Landing>,
    _r: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<R> TaskHandle<R> {
    /// Whether its result is in.
    pub fn is_finished(&self) -> bool {
        self.landing
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .is_some()
    }
}

impl<R: DeserializeOwned + 'static> TaskHandle<R> {
    /// Waits for the result (Python's `AsyncResult.get()`).
    pub fn wait(&self) -> std::result::Result<R, TaskError> {
        match self.wait_until(None) {
            Some(r) => r,
            None => unreachable!("a wait without deadline returns only with the result"),
        }
    }

    /// Waits at most `timeout`; `None` if the result is not in by then (the
    /// task goes on: wait again, or give it a per-call timeout).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<std::result::Result<R, TaskError>> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Option<std::result::Result<R, TaskError>> {
        self.wait_raw_until(deadline, decode)
    }
}

impl<R> TaskHandle<R> {
    /// The result, as `finish` makes it of the raw one, once in (or `None`
    /// past `deadline`).
    fn wait_raw_until<T>(
        &self,
        deadline: Option<Instant>,
        finish: impl FnOnce(&Raw) -> T,
    ) -> Option<T> {
        let mut st = self.landing.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(raw) = &st.0 {
                return Some(finish(raw));
            }
            st = match deadline {
                None => self
                    .landing
                    .done
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.landing
                        .done
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

impl<R: DeserializeOwned + 'static> Future for TaskHandle<R> {
    type Output = std::result::Result<R, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_raw(cx, decode)
    }
}

impl<R> TaskHandle<R> {
    /// Polls for the result, as `finish` makes it of the raw one.
    fn poll_raw<T>(&self, cx: &mut Context<'_>, finish: impl FnOnce(&Raw) -> T) -> Poll<T> {
        let mut st = self.landing.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(raw) = &st.0 {
            return Poll::Ready(finish(raw));
        }
        if !st.1.iter().any(|w| w.will_wake(cx.waker())) {
            st.1.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The result's bytes as the worker encoded them (the remote seam, which
    /// sends them on undecoded), waiting for them.
    pub(super) fn wait_encoded(&self) -> std::result::Result<Vec<u8>, TaskError> {
        match self.wait_raw_until(None, encoded) {
            Some(r) => r,
            None => unreachable!("a wait without deadline returns only with the result"),
        }
    }

    /// [`TaskHandle::wait_encoded`] for at most `timeout`.
    pub(super) fn wait_encoded_timeout(
        &self,
        timeout: Duration,
    ) -> Option<std::result::Result<Vec<u8>, TaskError>> {
        self.wait_raw_until(Some(Instant::now() + timeout), encoded)
    }

    /// [`TaskHandle::wait_encoded`], polled.
    pub(super) fn poll_encoded(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<Vec<u8>, TaskError>> {
        self.poll_raw(cx, encoded)
    }
}

/// A result's bytes, undecoded.
fn encoded(raw: &Raw) -> std::result::Result<Vec<u8>, TaskError> {
    raw.as_ref()
        .map(|(bytes, _)| bytes.to_vec())
        .map_err(Clone::clone)
}

fn decode<R: DeserializeOwned + 'static>(raw: &Raw) -> std::result::Result<R, TaskError> {
    let (bytes, inbox) = raw.as_ref().map_err(Clone::clone)?;
    shared::decode_result(bytes, &mut inbox.clone())
}

impl Pool {
    /// Withdraws a submitted task: the worker running it is killed (it ends
    /// as past a timeout of zero); one not started yet is killed as it
    /// starts.
    pub(super) fn withdraw_submitted<R>(&self, handle: &TaskHandle<R>) {
        handle
            .landing
            .withdrawn
            .store(true, std::sync::atomic::Ordering::Release);
        self.core.submitted.wake.ring();
    }

    /// Runs `f(arg)` on a worker and returns at once with a handle to its
    /// result (Python's `apply_async`; for `starmap`-style calls, `A` is a
    /// tuple). Tasks submitted together run side by side on the workers; a
    /// worker's death, a panic or a timeout fails that task alone.
    ///
    /// Submitted tasks and maps take the workers in turn: a `map` waits for
    /// the tasks submitted before it, and tasks submitted during a map start
    /// once it ends.
    ///
    /// ```
    /// # brood::init();
    /// fn slow_square(x: u64) -> u64 { x * x }
    /// let pool = brood::Pool::new(2)?;
    /// let a = pool.submit(slow_square, 3)?;
    /// let b = pool.submit(slow_square, 4)?;
    /// assert_eq!(a.wait()? + b.wait()?, 25);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<TaskHandle<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).submit(f, arg)
    }

    /// [`Pool::submit`] with the worker's state (see [`Pool::map_with`]).
    pub fn submit_with<S, A, R>(&self, f: fn(&S, A) -> R, arg: A) -> Result<TaskHandle<R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).submit_with(f, arg)
    }
}

impl PoolCall<'_> {
    /// [`Pool::submit`] with this call's options (its timeouts; a progress
    /// callback is not used).
    pub fn submit<A, R>(self, f: fn(A) -> R, arg: A) -> Result<TaskHandle<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let func = worker::fn_ref(f).map_err(crate::Error::Crossing)?;
        self.enqueue(func, &arg)
    }

    /// A task whose function is resolved here and whose argument is encoded
    /// already (the remote seam's `submit_encoded`).
    pub(super) fn enqueue_encoded(
        self,
        func: FnRef,
        arg: Vec<u8>,
        named: Vec<shared::Sharing>,
    ) -> Result<TaskHandle<()>> {
        let landing = Arc::new(Landing::default());
        self.push(func, arg, named, &landing)?;
        Ok(TaskHandle {
            landing,
            _r: PhantomData,
        })
    }

    /// [`Pool::submit_with`] with this call's options.
    pub fn submit_with<S, A, R>(self, f: fn(&S, A) -> R, arg: A) -> Result<TaskHandle<R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let func = state::task_ref(f).map_err(crate::Error::Crossing)?;
        self.enqueue(func, &arg)
    }

    fn enqueue<A: Serialize, R>(&self, func: FnRef, arg: &A) -> Result<TaskHandle<R>> {
        let landing = Arc::new(Landing::default());
        let handle = TaskHandle {
            landing: Arc::clone(&landing),
            _r: PhantomData,
        };
        // Encoded now, as a crossing: the shared data it names goes with it.
        let (encoded, named) = shared::crossing(|| postcard::to_allocvec(arg));
        let arg = match encoded {
            Ok(bytes) => bytes,
            Err(e) => {
                landing.put(Err(TaskError::Failed {
                    reason: format!(
                        "cannot encode the argument: {}",
                        crate::wire::frame::encode_error(&e)
                    ),
                }));
                return Ok(handle);
            }
        };
        self.push(func, arg, named, &landing)?;
        Ok(handle)
    }

    /// Queues an encoded task, and starts the thread that runs the queue.
    fn push(
        &self,
        func: FnRef,
        arg: Vec<u8>,
        named: Vec<shared::Sharing>,
        landing: &Arc<Landing>,
    ) -> Result<()> {
        let landing = Arc::clone(landing);
        let q = &self.pool().core.submitted;
        let mut st = q.lock();
        if st.closed {
            return Err(crate::Error::PoolClosed);
        }
        let (timeout, soft_timeout) = self.timeouts();
        st.waiting.push_back(Waiting {
            own: Own {
                func: Some(func),
                timeout,
                soft_timeout,
            },
            arg,
            named,
            landing,
        });
        let start = !st.running;
        st.running = true;
        drop(st);
        if start {
            let core = Arc::clone(&self.pool().core);
            // brood's own while it runs: a `Fork` start right after a
            // submission (the thread waits a while for the next) is not
            // warned about a thread of the program's.
            let spawned =
                crate::runtime::spawn_own_passing_thread("brood-pool-submit", move || drive(&core));
            if let Err(e) = spawned {
                let mut st = q.lock();
                st.running = false;
                for w in st.waiting.drain(..) {
                    w.landing.put(Err(TaskError::Failed {
                        reason: format!("cannot start the thread that runs submitted tasks: {e}"),
                    }));
                }
            }
        } else {
            q.wake.ring();
        }
        Ok(())
    }
}

/// How long the thread of submitted tasks waits for another once its queue
/// is empty, before it ends. Starting a thread costs more than a small task
/// (tens of microseconds of kernel work), and tasks that come one at a time
/// (an agent's one-item chunks, a server's requests) would start one each.
const LINGER: Duration = Duration::from_millis(200);

/// The thread of submitted tasks: a lazy map over the queue until it is
/// empty and every task answered, again for each submission that comes
/// within [`LINGER`]; it ends then, or when the pool is closed or
/// terminated. Between maps it holds no lease: a `map` of the pool's own
/// runs meanwhile.
fn drive(core: &Core) {
    while run_queue(core) && linger(core) {}
}

/// Waits up to [`LINGER`] for a submission: true if one came. Otherwise the
/// queue is marked not running (the next submission starts a thread) and
/// false.
fn linger(core: &Core) -> bool {
    let q = &core.submitted;
    let deadline = Instant::now() + LINGER;
    loop {
        let left = {
            let mut st = q.lock();
            if st.stop || st.closed && st.waiting.is_empty() {
                st.running = false;
                return false;
            }
            if !st.waiting.is_empty() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.running = false;
                return false;
            }
            left
        };
        let Some((r, _)) = q.wake.get() else {
            q.lock().running = false;
            return false;
        };
        if crate::sys::pidfd::wait_readable(r.as_fd(), Some(left)).unwrap_or(false) {
            crate::sys::pipe::drain(r.as_fd());
        }
    }
}

/// One lazy map over the queue, until it is empty and every task answered:
/// true then (the queue still marked running, for [`linger`]); false if the
/// pool was terminated or the map could not go on (the queue marked not
/// running, what it held failed).
fn run_queue(core: &Core) -> bool {
    let q = &core.submitted;
    // Which landing each item of the map goes to, by index.
    let landings: Mutex<HashMap<usize, Arc<Landing>>> = Mutex::default();
    let mut next = 0usize;
    // The map's source is the queue; `End` (and the thread's end) only when
    // it is empty with nothing outstanding, decided under the queue's lock,
    // so that a submission cannot slip in between.
    let source = Box::new(|arena: &mut Vec<u8>, idle: bool| {
        let mut st = q.lock();
        match st.waiting.pop_front() {
            Some(w) => {
                drop(st);
                arena.extend_from_slice(&w.arg);
                landings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(next, w.landing);
                next += 1;
                Pulled::Item(Ok(()), Some(w.own), w.named)
            }
            None if st.stop => {
                st.running = false;
                Pulled::End
            }
            // Still running: the thread lingers for the next submission.
            None if idle => Pulled::End,
            None => Pulled::Wait,
        }
    });
    let land = |idx: usize, raw: Raw| {
        let landing = landings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&idx);
        if let Some(l) = landing {
            l.put(raw);
        }
    };
    // Every item names its own function; the map's is the first one's.
    let Some(func) = q.lock().waiting.front().and_then(|w| w.own.func) else {
        q.lock().running = false;
        return false;
    };
    // One task per frame, the queue pulled whole (it is in memory already);
    // each task's own timeouts come with it.
    let mut plan = Plan::of(&core.cfg, &CallOptions::new(), func, 1);
    plan.deepen = false;
    // What is taken from the queue and what still waits there fails with
    // `why`, and the thread ends.
    let fail_the_rest = |why: TaskError| {
        let taken: Vec<Arc<Landing>> = landings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, l)| l)
            .collect();
        let mut st = q.lock();
        let waiting: Vec<Waiting> = st.waiting.drain(..).collect();
        st.running = false;
        drop(st);
        for l in taken
            .into_iter()
            .chain(waiting.into_iter().map(|w| w.landing))
        {
            l.put(Err(why.clone()));
        }
    };
    let run = Run::lazy(plan, source);
    let mut map: MapUnordered<'_, ()> = match MapUnordered::new(core.inner.lease(), &core.cfg, run)
    {
        Ok(map) => map,
        Err(e) => {
            // The pool is closed, or no worker starts (after the map took
            // its first tasks from the queue).
            fail_the_rest(TaskError::Failed {
                reason: format!("the task could not start: {e}"),
            });
            return false;
        }
    };
    if let Some((r, _)) = q.wake.get() {
        map.wake_on(r.as_fd());
    }
    loop {
        while let Some((idx, raw)) = map.pop_raw() {
            land(idx, raw);
        }
        if map.finished() {
            return true;
        }
        let withdrawn: Vec<usize> = landings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, l)| l.withdrawn.swap(false, std::sync::atomic::Ordering::AcqRel))
            .map(|(&idx, _)| idx)
            .collect();
        for idx in withdrawn {
            map.expire(idx);
        }
        if q.lock().stop || map.interrupted() {
            break;
        }
        map.turn();
    }
    // Terminated (or Ctrl-C): the map's drop kills the workers still running
    // tasks; what is outstanding or waiting fails.
    let why = if map.interrupted() {
        TaskError::Interrupted
    } else {
        stopped()
    };
    drop(map);
    fail_the_rest(why);
    false
}
