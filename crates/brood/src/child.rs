//! [`Child`]: what every kind of child is — a pid held through a pidfd, its
//! policies, and the status the reaper keeps for it.

use crate::error::{Error, Result};
use crate::policy::{Policy, Tree};
use crate::reaper::{Registry, Watched};
use crate::signal::Signal;
use crate::status::ExitStatus;
use crate::sys::forklocal::ForkLocal;
use crate::sys::{self, pidfd, pidfd::Reap};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

#[cfg(feature = "tokio")]
mod asynchronous;

/// Who learns the child's exit status.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum WaitSource {
    /// Our own child: we reap it through its pidfd.
    Own,
    /// Another process's child (the fork server's): the status is reported to us
    /// with [`Child::set_reported`]; the pidfd, if we hold one, serves signals
    /// and liveness only. Without one, signals go through the [`Relay`].
    Remote,
}

/// Delivers a signal to a [`WaitSource::Remote`] child through its real
/// parent, which holds its pidfd (a fork server started near our descriptor
/// limit keeps the child's pidfd to itself).
pub(crate) type Relay = Box<dyn Fn(i32) -> std::io::Result<()> + Send + Sync>;

/// How often a wait re-reads the state of a remote child it has no pidfd for
/// (its end is a message from the server, which no descriptor announces).
pub(crate) const NO_PIDFD_TICK: Duration = Duration::from_millis(50);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Exited(ExitStatus),
    ReapedElsewhere,
    /// A fork-server child whose server died before reporting its status.
    ServerDied,
}

/// This process's children (a forked child starts with none: see `ForkLocal`).
static CHILDREN: ForkLocal<Registry<ChildInner>> = ForkLocal::new(Registry::new);

/// Whether this process ever registered a child (a forked child starts with
/// none). Reads, allocates nothing.
pub(crate) fn any_ever() -> bool {
    CHILDREN.existing().is_some()
}

/// The children of this process that have not ended, in start order. Empty in
/// a process that never started one (and then nothing is allocated).
pub(crate) fn live_children() -> Vec<Child> {
    CHILDREN.existing().map_or_else(Vec::new, |r| {
        r.live()
            .into_iter()
            .map(|inner| Child { inner, last: None })
            .collect()
    })
}

pub(crate) struct ChildInner {
    pub(crate) pid: u32,
    /// `None` for a child that was reaped elsewhere before brood could open
    /// one (its state is then `ReapedElsewhere` from the start and never
    /// changes), and for a remote child whose parent keeps it (see [`Relay`]).
    pub(crate) pidfd: Option<OwnedFd>,
    /// How to signal a remote child without a pidfd.
    relay: Option<Relay>,
    pub(crate) seq: u64,
    pub(crate) policy: Policy,
    pub(crate) source: WaitSource,
    state: Mutex<State>,
    changed: Condvar,
    /// Tasks waiting for the state to leave `Running` (async waits that have
    /// no descriptor to watch: a fork-server child's status is a message).
    /// Pushed with `state` held, taken after the state changed, so that no
    /// wake-up is lost.
    wakers: Mutex<Vec<Waker>>,
    /// Set once the child's process group (`Tree::Group`, `Session`,
    /// `Cgroup`) is known to have no member left after its leader ended:
    /// from then on its number may belong to somebody else, and it is never
    /// signalled again.
    group_gone: AtomicBool,
}

/// How long a stop waits, after its SIGKILL, for the group's members to end
/// (to reap the ones re-parented to us): SIGKILL cannot be caught, so only a
/// process stuck in the kernel takes this long.
const AFTER_KILL: Duration = Duration::from_secs(1);

/// A child process: a pid held through a pidfd, with its policies and, once it
/// ended, its status.
///
/// `Child` is cheap to clone; all clones speak of the same process, and any number
/// of threads may wait for it and signal it at once. Dropping every handle does not
/// end the child: its [`OnExit`](crate::OnExit) policy still applies at exit, and
/// brood still reaps it when it ends (no zombie).
///
/// Signals go through the child's pidfd, so a signal can never reach another
/// process that happened to get the same pid after the child was reaped.
///
/// ```
/// # brood::init();
/// use brood::{Command, Signal};
/// use std::time::Duration;
///
/// let child = Command::new("sleep").arg("10").spawn()?;
/// assert!(child.is_alive());
/// assert_eq!(child.wait_timeout(Duration::from_millis(10))?, None);
/// child.kill()?;
/// let status = child.wait()?;
/// assert_eq!(status.signal(), Some(Signal::KILL));
/// assert_eq!(status.exitcode(), -9);
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Clone)]
pub struct Child {
    pub(crate) inner: Arc<ChildInner>,
    /// Shared by the handles the user holds (not by the registry, nor by brood's
    /// own bookkeeping): when the last one goes, the child's `OnDrop` applies.
    #[allow(dead_code)] // held for its Drop
    last: Option<Arc<LastHandle>>,
}

/// Applies the child's [`OnDrop`](crate::OnDrop) when the last user handle of
/// it is dropped.
/// The hook is given by whoever registers the child (`exit::adopt` passes
/// `ondrop::apply`), so that this layer does not reach up into the policies'
/// machinery.
struct LastHandle(Arc<ChildInner>, fn(Child));

impl Drop for LastHandle {
    fn drop(&mut self) {
        (self.1)(Child {
            inner: Arc::clone(&self.0),
            last: None,
        });
    }
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.inner.pid)
            .field("state", &*self.inner.lock())
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl ChildInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the state up to date (reaping an own child that has ended) and
    /// returns it. The lock is held across `waitid` so exactly one caller reaps.
    pub(crate) fn refresh(&self) -> Result<State> {
        let mut st = self.lock();
        if *st != State::Running || self.source == WaitSource::Remote {
            return Ok(*st);
        }
        let Some(fd) = &self.pidfd else {
            return Ok(*st);
        };
        let new = match pidfd::try_reap(fd.as_fd()) {
            Ok(Reap::Running) => return Ok(State::Running),
            Ok(Reap::Exited(raw)) => {
                ExitStatus::from_wait_status(raw).map_or(State::Running, State::Exited)
            }
            Ok(Reap::Gone) => State::ReapedElsewhere,
            Err(e) => return Err(Error::os("waitid", self.pid, e)),
        };
        self.settle();
        *st = new;
        drop(st);
        self.announce();
        Ok(new)
    }

    /// What ends with the child — the keeper's record, its cgroup, the
    /// terminal's foreground — done with the state lock held and before the
    /// end is recorded, so that whoever sees the child ended (a waiter, while
    /// the reaper thread reaped it) sees all of that done too. Takes only
    /// leaf locks (the keeper's, the cgroups', the terminal's).
    fn settle(&self) {
        if self.policy.tree != Tree::Own && !sys::pgrp::group_exists(self.pid) {
            self.group_gone.store(true, Ordering::Relaxed);
        }
        crate::deathwatch::forget(self.pid, &self.policy);
        if self.policy.tree == Tree::Cgroup {
            crate::cgroups::forget(self.pid);
        }
        crate::terminal::child_ended(self.pid);
    }

    /// Wakes whoever waits for the recorded end and drops the child from the
    /// registry.
    fn announce(&self) {
        self.changed.notify_all();
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        wakers.into_iter().for_each(Waker::wake);
        CHILDREN.get().forget(self);
    }

    /// The state if the child has ended; otherwise `waker` is woken once it
    /// has (an own child is seen ended once it is reaped, by the reaper
    /// thread or a waiter). Registered under the state lock, so that a change
    /// between the check and the registration cannot be missed.
    #[cfg(feature = "tokio")]
    pub(crate) fn ended_or_register(&self, waker: &Waker) -> Option<State> {
        let st = self.lock();
        if *st != State::Running {
            return Some(*st);
        }
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        None
    }
}

impl Watched for ChildInner {
    fn seq(&self) -> u64 {
        self.seq
    }

    fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        match self.source {
            WaitSource::Own => self.pidfd.as_ref().map(|fd| fd.as_fd()),
            WaitSource::Remote => None,
        }
    }

    fn on_ready(&self) -> std::io::Result<()> {
        self.refresh().map(drop).map_err(std::io::Error::other)
    }
}

/// Makes sure this process's reaper runs before a child is created, where
/// no thread can start because the process called `unshare(CLONE_NEWPID)`:
/// the start fails with no child made (and ended) for nothing. That child
/// would be the new namespace's PID 1, whose end closes the namespace to
/// every later child. Any other cause is left to the start itself, whose
/// errors name it (a process limit, say) and which ends a child it cannot
/// register.
pub(crate) fn ready_to_reap() -> Result<()> {
    let registry = CHILDREN.get();
    // Asked once, not at every start: a running reaper needs no thread.
    if registry.is_running() || !crate::sys::ns::children_in_another_pid_namespace() {
        return Ok(());
    }
    registry
        .ensure_running()
        .map_err(|e| Error::io(e.step(), e.into_io()))
}

impl Child {
    /// Registers a child that was just created, so that it is reaped. `pidfd`
    /// must refer to `pid`; `on_last_drop` runs when its last user handle is
    /// dropped. The kinds call [`crate::exit::adopt`], which also makes sure
    /// the exit hook will apply the child's `OnExit`.
    pub(crate) fn register(
        pid: u32,
        pidfd: Option<OwnedFd>,
        relay: Option<Relay>,
        policy: Policy,
        source: WaitSource,
        on_last_drop: fn(Child),
    ) -> Result<Child> {
        let registry = CHILDREN.get();
        let inner = Arc::new(ChildInner {
            pid,
            pidfd,
            relay,
            seq: registry.next_seq(),
            policy,
            source,
            state: Mutex::new(State::Running),
            changed: Condvar::new(),
            wakers: Mutex::new(Vec::new()),
            group_gone: AtomicBool::new(false),
        });
        registry
            .adopt(Arc::clone(&inner))
            .map_err(|e| Error::os(e.step(), pid, e.into_io()))?;
        Ok(Child::tracked(inner, Some(on_last_drop)))
    }

    /// A child that was reaped by someone else before brood could take hold of it.
    pub(crate) fn gone(pid: u32, policy: Policy) -> Child {
        Child::tracked(
            Arc::new(ChildInner {
                pid,
                pidfd: None,
                relay: None,
                seq: CHILDREN.get().next_seq(),
                policy,
                source: WaitSource::Own,
                state: Mutex::new(State::ReapedElsewhere),
                changed: Condvar::new(),
                wakers: Mutex::new(Vec::new()),
                group_gone: AtomicBool::new(true),
            }),
            None,
        )
    }

    /// The first user handle of a new child; `on_last_drop` runs when the
    /// last user handle goes.
    fn tracked(inner: Arc<ChildInner>, on_last_drop: Option<fn(Child)>) -> Child {
        Child {
            last: on_last_drop.map(|hook| Arc::new(LastHandle(Arc::clone(&inner), hook))),
            inner,
        }
    }

    /// A handle for brood's own bookkeeping (the fork-server client's table of
    /// children whose status it will report): it does not count as a handle
    /// of the user's, so the child's `OnDrop` applies when the user's go.
    pub(crate) fn untracked(&self) -> Child {
        Child {
            inner: Arc::clone(&self.inner),
            last: None,
        }
    }

    /// Records the status of a [`WaitSource::Remote`] child, as its real parent
    /// reported it. `None` means the reporter lost it (reaped elsewhere).
    pub(crate) fn set_reported(&self, status: Option<ExitStatus>) {
        let mut st = self.inner.lock();
        if *st == State::Running {
            self.inner.settle();
            *st = status.map_or(State::ReapedElsewhere, State::Exited);
            drop(st);
            self.inner.announce();
        }
    }

    /// Records that the process that would have reported this
    /// [`WaitSource::Remote`] child's status (the fork server) died first.
    pub(crate) fn set_server_died(&self) {
        let mut st = self.inner.lock();
        if *st == State::Running {
            self.inner.settle();
            *st = State::ServerDied;
            drop(st);
            self.inner.announce();
        }
    }

    /// Whether another process (the fork server) reports this child's status.
    pub(crate) fn is_remote(&self) -> bool {
        self.inner.source == WaitSource::Remote
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The child's pidfd, for callers that want to poll it themselves (it becomes
    /// readable when the child exits). `None` for a child that was reaped
    /// elsewhere before brood could open one, and for a fork-server child
    /// started while this process's descriptors were near their hard limit
    /// (its server keeps the pidfd; waits, signals and [`Child::wait_async`]
    /// work as for any other).
    ///
    /// This is the runtime-agnostic way to await a child: any reactor can
    /// watch a pidfd, and once it is readable [`Child::wait`] returns at once
    /// (brood's reaper may already have reaped it; both paths give the same
    /// status). With tokio, the `tokio` feature's [`Child::wait_async`] does
    /// this for you. On smol's reactor (`async-io`), with no brood feature:
    ///
    /// ```
    /// # brood::init();
    /// let child = brood::Command::new("sh").args(["-c", "exit 4"]).spawn()?.into_child();
    /// // A copy: a reactor may take ownership of what it watches (and sets
    /// // O_NONBLOCK, which brood's own waits do not mind).
    /// let pidfd = child.pidfd().unwrap().try_clone_to_owned().unwrap();
    /// let status = async_io::block_on(async {
    ///     let watched = async_io::Async::new(pidfd).unwrap();
    ///     watched.readable().await.unwrap(); // the child has ended
    ///     child.wait() // does not block now
    /// })?;
    /// assert_eq!(status.code(), Some(4));
    /// # Ok::<(), brood::Error>(())
    /// ```
    #[cfg_attr(
        not(feature = "tokio"),
        doc = "[`Child::wait_async`]: crate#async-feature-tokio"
    )]
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// The policies this child was started with.
    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// The child's status if it has ended, without blocking (Python's `poll()`).
    ///
    /// `Err(Error::ReapedElsewhere)` when someone else reaped it: brood never
    /// answers "still running" for a child that is gone.
    pub fn poll(&self) -> Result<Option<ExitStatus>> {
        answer(self.inner.pid, self.inner.refresh()?)
    }

    /// Waits until the child ends and returns its status.
    pub fn wait(&self) -> Result<ExitStatus> {
        match self.wait_until(None)? {
            Some(status) => Ok(status),
            None => unreachable!("a wait without deadline returns only when the child ended"),
        }
    }

    /// Waits at most `timeout`; `Ok(None)` if the child is still running then.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    /// Waits until `deadline` (or forever with `None`).
    pub fn wait_until(&self, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
        let inner = &*self.inner;
        loop {
            if let Some(status) = answer(inner.pid, inner.refresh()?)? {
                return Ok(Some(status));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(None);
            }
            match inner.source {
                WaitSource::Own => {
                    let Some(fd) = &inner.pidfd else {
                        return answer(inner.pid, inner.refresh()?);
                    };
                    let exited = pidfd::wait_exited(fd.as_fd(), left)
                        .map_err(|e| Error::os("poll(pidfd)", inner.pid, e))?;
                    if !exited {
                        return answer(inner.pid, inner.refresh()?);
                    }
                }
                WaitSource::Remote => {
                    let st = inner.lock();
                    if *st == State::Running {
                        let left = left.unwrap_or(Duration::from_secs(3600));
                        drop(inner.changed.wait_timeout(st, left));
                    }
                }
            }
        }
    }

    /// True while the child has not ended. A child reaped elsewhere is not alive.
    pub fn is_alive(&self) -> bool {
        matches!(self.inner.refresh(), Ok(State::Running))
    }

    /// Sends `sig` to the child alone (Python's `send_signal`). Does nothing if the
    /// child has already ended and was reaped by brood.
    pub fn send_signal(&self, sig: Signal) -> Result<()> {
        self.signal(sig, false)
    }

    /// Sends `sig` to the child's whole tree: its process group with
    /// [`Tree::Group`] or [`Tree::Session`], the child alone with [`Tree::Own`].
    /// With a group, members still left after the leader ended are signalled
    /// too — until the group is known to be empty: then its number may be
    /// given to another process's group, and it is never signalled again.
    /// brood learns that when it reaps the leader into an empty group, when a
    /// signal finds nobody, when a stop saw the last member end, and when a
    /// process holds the leader's pid again (the kernel reuses a group's number
    /// only once the group is empty). The one case it cannot see: between the
    /// group's end and this call, the pid counter wraps around entirely and a
    /// process takes the number, makes a group of it and ends, leaving members.
    pub fn signal_tree(&self, sig: Signal) -> Result<()> {
        self.signal(sig, self.inner.policy.tree != Tree::Own)
    }

    /// SIGTERM to the child's tree (see [`Child::signal_tree`]).
    pub fn terminate(&self) -> Result<()> {
        self.signal_tree(Signal::TERM)
    }

    /// SIGKILL to the child's tree (see [`Child::signal_tree`]).
    pub fn kill(&self) -> Result<()> {
        self.signal_tree(Signal::KILL)
    }

    /// SIGTERM to the tree, then SIGKILL once `grace` has passed if the child (or,
    /// with a group, any member of it) is still there; returns the child's status.
    /// It returns as soon as the last member has ended: members that ended as
    /// zombies do not count, and those re-parented to this process (a
    /// subreaper, or PID 1) are reaped.
    ///
    /// Unlike Python's `terminate()` + `join()`, this cannot hang on a child that
    /// ignores SIGTERM.
    pub fn terminate_timeout(&self, grace: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + grace;
        self.terminate()?;
        self.finish_by(deadline)
    }

    /// After a SIGTERM: wait until `deadline`, then SIGKILL what is left.
    pub(crate) fn finish_by(&self, deadline: Instant) -> Result<ExitStatus> {
        let status = match self.wait_until(Some(deadline))? {
            Some(status) => status,
            None => {
                self.kill()?;
                self.wait()?
            }
        };
        if self.inner.policy.tree == Tree::Cgroup {
            // The same for everything in its cgroup, wherever it went.
            let pid = self.inner.pid;
            while crate::cgroups::populated(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = crate::cgroups::signal(pid, libc::SIGKILL);
            crate::cgroups::forget(pid);
        } else if self.inner.policy.tree != Tree::Own {
            // The leader is gone; give the rest of its group what is left of
            // the grace, then kill the stragglers.
            self.finish_group(deadline);
        }
        Ok(status)
    }

    /// Waits until no member of the ended leader's group lives (zombies do
    /// not count: as a subreaper they are ours and reaped here), up to
    /// `deadline`; then SIGKILLs what is left. Returns as soon as the last
    /// member has ended, not at the deadline.
    fn finish_group(&self, deadline: Instant) {
        let inner = &*self.inner;
        if inner.group_gone.load(Ordering::Relaxed) {
            return;
        }
        let brood_child = |pid: u32| live_children().iter().any(|c| c.pid() == pid);
        if !crate::group::wait_gone(inner.pid, deadline, &brood_child) {
            let _ = self.kill();
            crate::group::wait_gone(inner.pid, Instant::now() + AFTER_KILL, &brood_child);
        }
        // Nobody alive is left in it (or nobody we could end): nothing more
        // to signal there, ever.
        inner.group_gone.store(true, Ordering::Relaxed);
    }

    /// Signals the group of a leader that has ended (and that brood saw end),
    /// unless the group is known gone — or is found gone now, by a process
    /// holding the leader's pid or by `kill` answering `ESRCH`. The one case
    /// left: after the group emptied, a full wrap-around of the pid counter
    /// before this call gave the number to a process that made a group of it
    /// and then itself ended, its group living on.
    fn signal_ended_group(&self, sig: Signal) {
        let inner = &*self.inner;
        if inner.group_gone.load(Ordering::Relaxed) {
            return;
        }
        if crate::group::leader_pid_reused(inner.pid) {
            inner.group_gone.store(true, Ordering::Relaxed);
            return;
        }
        if let Err(e) = sys::pgrp::kill_group(inner.pid, sig.as_raw())
            && e.raw_os_error() == Some(libc::ESRCH)
        {
            inner.group_gone.store(true, Ordering::Relaxed);
        }
    }

    fn signal(&self, sig: Signal, tree: bool) -> Result<()> {
        let inner = &*self.inner;
        // Holding the lock keeps the reaper from reaping while we signal: the
        // child's pid, and so its group id, cannot be reused meanwhile.
        let st = inner.lock();
        if tree
            && inner.policy.tree == Tree::Cgroup
            && *st != State::ReapedElsewhere
            && let Some(sent) = crate::cgroups::signal(inner.pid, sig.as_raw())
        {
            // Every process of its cgroup, the child itself included (it
            // joined before running anything), wherever they went.
            return sent.map_err(|e| Error::os("signalling the child's cgroup", inner.pid, e));
        }
        match *st {
            State::ReapedElsewhere => return Err(Error::ReapedElsewhere { pid: inner.pid }),
            // The process may well run on (a `Survive` child outlives its
            // server): its pidfd still reaches exactly it, and says whether
            // it (and so its group's number) is still there.
            State::ServerDied => {
                let ended = inner.pidfd.as_ref().map(|fd| pidfd::has_exited(fd.as_fd()));
                match ended {
                    Some(Ok(true)) => {
                        if tree {
                            self.signal_ended_group(sig);
                        }
                        return Ok(());
                    }
                    Some(_) => {}
                    // Without a pidfd nothing tells whether the number is
                    // still its group's: no group signal.
                    None => return Err(Error::ServerDied { pid: inner.pid }),
                }
            }
            State::Exited(_) => {
                if tree {
                    // Stragglers of the group may remain.
                    self.signal_ended_group(sig);
                }
                return Ok(());
            }
            State::Running => {}
        }
        if tree {
            match sys::pgrp::kill_group(inner.pid, sig.as_raw()) {
                Ok(()) => return Ok(()),
                // The child has not made its group or session yet (it is still
                // starting): it has no descendants yet, signal it alone.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(Error::os("kill(-pgid)", inner.pid, e)),
            }
        }
        let Some(fd) = &inner.pidfd else {
            return match (&inner.relay, *st) {
                // The server signals it through its own pidfd; once the
                // server is gone, nothing can reach it without a pid-reuse
                // risk.
                (Some(relay), State::Running) => relay(sig.as_raw())
                    .map_err(|e| Error::os("signal via the fork server", inner.pid, e)),
                (Some(_), _) => Err(Error::ServerDied { pid: inner.pid }),
                (None, _) => Err(Error::ReapedElsewhere { pid: inner.pid }),
            };
        };
        match pidfd::send_signal(fd.as_fd(), sig.as_raw()) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                // Reaped, but not by us (we hold the lock): find out for sure.
                drop(st);
                answer(inner.pid, inner.refresh()?).map(|_| ())
            }
            Err(e) => Err(Error::os("pidfd_send_signal", inner.pid, e)),
        }
    }
}

fn answer(pid: u32, st: State) -> Result<Option<ExitStatus>> {
    match st {
        State::Running => Ok(None),
        State::Exited(status) => Ok(Some(status)),
        State::ReapedElsewhere => Err(Error::ReapedElsewhere { pid }),
        State::ServerDied => Err(Error::ServerDied { pid }),
    }
}
