//! Lifecycle policies: what happens to a child when its parent leaves, normally or
//! abruptly, and how far a signal to it reaches.
//!
//! Each kind of child starts with Python's behaviour for that kind (see
//! [`Policy::for_kind`]), with one exception brood makes for every kind: a child
//! is never left a zombie.

use crate::signal::Signal;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What brood does with a still-running child when the parent ends *normally*:
/// returns from `main`, calls `std::process::exit` or [`crate::exit`].
///
/// [`crate::exit_now`] (Python's `os._exit`) and abrupt deaths skip this; see
/// [`OnParentDeath`] for those.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnExit {
    /// Wait for the child to end (Python's non-daemon `Process`, claim P1).
    Wait,
    /// Send SIGTERM (to the whole tree with [`Tree::Group`]/[`Tree::Session`]),
    /// wait up to `grace`, then SIGKILL (Python's daemon `Process`, claim P2 —
    /// except that Python never escalates, so a child ignoring SIGTERM hangs it).
    Terminate {
        /// How long the child may take to leave after SIGTERM.
        grace: Duration,
    },
    /// Leave it running (Python's `os.fork` and `Popen`, claims F1/F2, S1/S2).
    Detach,
}

impl OnExit {
    /// `Terminate` with the default grace of one second.
    pub const TERMINATE: OnExit = OnExit::Terminate {
        grace: Duration::from_secs(1),
    };
}

/// What happens to the child when the parent dies *abruptly* (SIGKILL, an
/// unhandled SIGTERM, [`crate::exit_now`], abort) — or, for that matter, in any
/// other way.
///
/// `Signal(sig)` is armed inside the child with `PR_SET_PDEATHSIG` before any of
/// the child's own code runs, and the child then checks that the parent recorded
/// before the fork is still its parent: if the parent died during the start-up,
/// the child acts at once. The kernel ties the parent-death signal to the
/// *thread* that created the child, so brood creates these children from a thread
/// that lives as long as the process (the calling thread when it is the main
/// thread, brood's spawner thread otherwise): a worker thread that spawns a child
/// and ends does not kill it.
///
/// **The whole tree.** `PR_SET_PDEATHSIG` reaches the direct child only. With
/// [`Tree::Group`] or [`Tree::Session`], the signal reaches the child's whole
/// group: the child registers its group, before it runs anything, with a small
/// *keeper* process that brood starts once per process (double-forked, in a
/// session of its own), and the keeper signals every registered group when
/// this process dies, however it dies; a fork-server child's group is
/// signalled by the fork server. A process that leaves the group (`setsid`,
/// `setpgid`) escapes it. A parent that is PID 1 of a pid namespace (its
/// death ends the namespace) or a child subreaper (a supervisor, which would
/// adopt the keeper) starts no keeper: there the direct child alone gets the
/// signal.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnParentDeath {
    /// The child keeps running, re-parented (Python's behaviour for every kind,
    /// claims P3, F4, S3, X1).
    Survive,
    /// The kernel sends this signal to the child when the parent dies.
    Signal(Signal),
}

/// How far the child's own descendants are bound to it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tree {
    /// The child stays in the parent's process group; signals reach the child only.
    Own,
    /// The child leads a new process group: `terminate`, `kill` and
    /// `terminate_timeout` signal the whole group, grandchildren included.
    Group,
    /// Like `Group`, in a new session (`setsid`): also detached from the
    /// controlling terminal, so a terminal's hang-up or Ctrl-C does not reach it.
    Session,
    /// Like `Group`, and in a cgroup v2 of its own (made under a directory
    /// brood creates in this process's cgroup): `kill` ends every process
    /// the child ever started, including those that left its group with
    /// `setsid` or a double fork, with one write to `cgroup.kill`. Where
    /// cgroups cannot be used ([`containment`](crate::containment) says why),
    /// the start fails with [`Error::CgroupUnavailable`](crate::Error::CgroupUnavailable);
    /// never a silent downgrade. The parent-death signal reaches every
    /// process of the cgroup too (see [`OnParentDeath`]).
    ///
    /// The cgroup goes once the child is reaped and nothing is left in it.
    /// One that a [`OnParentDeath::Survive`] child still runs in when the
    /// parent ends stays while it runs, and is removed (with brood's
    /// directory) by the next brood process to make its directory in the
    /// same cgroup.
    Cgroup,
}

/// What happens to a running child when its last handle is dropped: the last
/// clone of its [`Child`](crate::Child), or the [`Popen`](crate::Popen),
/// [`Handle`](crate::Handle) or [`Pool`](crate::Pool) that holds it.
///
/// Dropping a *future* (a `wait_async`, `join_async`, `communicate_async`) never
/// ends a child: cancellation is explicit, and this policy is the one place that
/// says what a dropped handle does. The default for every kind is `Detach`, as
/// in Python and `std::process`: the child runs on, its [`OnExit`] still applies
/// when this process exits, and brood still reaps it when it ends. `Kill` is
/// tokio's `kill_on_drop`; `Terminate` asks first. With [`Tree::Group`] or
/// [`Tree::Session`] the signals reach the child's whole process group.
///
/// `Terminate` never blocks the dropping thread (an async task may drop it):
/// the SIGKILL after `grace` comes from one brood thread that keeps the
/// deadlines of every such child, started the first time one is needed. If this
/// process exits normally before a grace has run out, the exit waits for the
/// rest of that grace and then SIGKILLs what is left, so the policy holds.
///
/// For a [`Pool`](crate::Pool), whose drop always ends its workers, `Detach`
/// keeps the pool's own way (SIGTERM, then SIGKILL after the
/// [`OnExit::Terminate`] grace, waiting for them); `Kill` and `Terminate`
/// replace it and do not wait.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnDrop {
    /// Leave the child running (the default for every kind).
    Detach,
    /// SIGKILL (to the whole tree with a group or session).
    Kill,
    /// SIGTERM (to the whole tree with a group or session), then SIGKILL to
    /// what is left once `grace` has passed.
    Terminate {
        /// How long the child may take to leave after SIGTERM.
        grace: Duration,
    },
}

impl OnDrop {
    /// `Terminate` with the default grace of one second.
    pub const TERMINATE: OnDrop = OnDrop::Terminate {
        grace: Duration::from_secs(1),
    };
}

/// The policies of one child.
///
/// ```
/// use brood::{Kind, OnExit, OnParentDeath, Policy, Signal, Tree};
/// let p = Policy::for_kind(Kind::Command);
/// assert_eq!(p.on_exit, OnExit::Detach);
/// assert_eq!(p.on_parent_death, OnParentDeath::Survive);
/// let worker = Policy::for_kind(Kind::PoolWorker);
/// assert_eq!(worker.on_parent_death, OnParentDeath::Signal(Signal::KILL));
/// assert_eq!(Policy::for_kind(Kind::Process { daemon: true }).on_exit, OnExit::TERMINATE);
/// assert_eq!(p.on_drop, brood::OnDrop::Detach);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// When the parent ends normally.
    pub on_exit: OnExit,
    /// When the parent dies in any way.
    pub on_parent_death: OnParentDeath,
    /// Which processes a terminate or kill reaches.
    pub tree: Tree,
    /// When the child's last handle is dropped.
    pub on_drop: OnDrop,
    /// Resource limits and niceness the child sets on itself.
    #[serde(default)]
    pub limits: crate::Limits,
}

/// The kinds of child, each with Python's defaults.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `multiprocessing.Process`.
    Process {
        /// Python's `daemon` flag.
        daemon: bool,
    },
    /// `os.fork`.
    Fork,
    /// `subprocess.Popen`.
    Command,
    /// A worker of a pool.
    PoolWorker,
}

impl Policy {
    /// Python's behaviour for this kind of child.
    pub fn for_kind(kind: Kind) -> Policy {
        let on_exit = match kind {
            Kind::Process { daemon: false } => OnExit::Wait,
            Kind::Process { daemon: true } | Kind::PoolWorker => OnExit::TERMINATE,
            Kind::Fork | Kind::Command => OnExit::Detach,
        };
        let on_parent_death = match kind {
            Kind::PoolWorker => OnParentDeath::Signal(Signal::KILL),
            _ => OnParentDeath::Survive,
        };
        Policy {
            on_exit,
            on_parent_death,
            tree: Tree::Own,
            on_drop: OnDrop::Detach,
            limits: crate::Limits::new(),
        }
    }

    /// The signal to arm with `PR_SET_PDEATHSIG`, if any.
    pub(crate) fn death_signal(&self) -> Option<Signal> {
        match self.on_parent_death {
            OnParentDeath::Survive => None,
            OnParentDeath::Signal(sig) => Some(sig),
        }
    }
}

/// A builder's lifecycle options: its kind's defaults, and what was set on top.
///
/// Kept as overrides rather than a resolved [`Policy`] so that a kind that
/// changes later (`Process::daemon`) still yields its own defaults for what was
/// not set, whatever the order of the calls.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Lifecycle {
    kind: Kind,
    on_exit: Option<OnExit>,
    on_parent_death: Option<OnParentDeath>,
    tree: Option<Tree>,
    on_drop: Option<OnDrop>,
    limits: crate::Limits,
}

impl Lifecycle {
    /// Nothing set yet: `kind`'s defaults.
    pub(crate) fn new(kind: Kind) -> Lifecycle {
        Lifecycle {
            kind,
            on_exit: None,
            on_parent_death: None,
            tree: None,
            on_drop: None,
            limits: crate::Limits::new(),
        }
    }

    /// Changes the kind whose defaults fill in what was not set.
    pub(crate) fn set_kind(&mut self, kind: Kind) {
        self.kind = kind;
    }

    /// The policy the child will get.
    pub(crate) fn policy(&self) -> Policy {
        let defaults = Policy::for_kind(self.kind);
        Policy {
            on_exit: self.on_exit.unwrap_or(defaults.on_exit),
            on_parent_death: self.on_parent_death.unwrap_or(defaults.on_parent_death),
            tree: self.tree.unwrap_or(defaults.tree),
            on_drop: self.on_drop.unwrap_or(defaults.on_drop),
            limits: self.limits,
        }
    }

    pub(crate) fn set_on_exit(&mut self, on_exit: OnExit) {
        self.on_exit = Some(on_exit);
    }

    pub(crate) fn set_on_parent_death(&mut self, on_parent_death: OnParentDeath) {
        self.on_parent_death = Some(on_parent_death);
    }

    pub(crate) fn set_tree(&mut self, tree: Tree) {
        self.tree = Some(tree);
    }

    /// Whether the tree was chosen (not left to the kind's default).
    pub(crate) fn tree_is_set(&self) -> bool {
        self.tree.is_some()
    }

    pub(crate) fn set_on_drop(&mut self, on_drop: OnDrop) {
        self.on_drop = Some(on_drop);
    }

    pub(crate) fn set_limits(&mut self, limits: crate::Limits) {
        self.limits = limits;
    }

    /// Sets every option at once.
    pub(crate) fn set_policy(&mut self, policy: Policy) {
        let Policy {
            on_exit,
            on_parent_death,
            tree,
            on_drop,
            limits,
        } = policy;
        self.set_on_exit(on_exit);
        self.set_on_parent_death(on_parent_death);
        self.set_tree(tree);
        self.set_on_drop(on_drop);
        self.set_limits(limits);
    }
}

/// The lifecycle methods every builder shares (`Command`, `ForkBuilder`,
/// `Process`, `PoolBuilder`): one definition, expanded as inherent methods (so
/// users need no trait import) over the builder's `lifecycle: Lifecycle` field.
/// A new lifecycle option is a field of [`Policy`] and [`Lifecycle`] and one
/// method here.
///
/// Each method takes the builder's own examples as doc attributes:
/// `lifecycle_methods! { on_exit { /// … } on_parent_death { } tree { }
/// on_drop { } set_policy { } policy { } }`.
macro_rules! lifecycle_methods {
    (
        on_exit { $(#[$on_exit:meta])* }
        on_parent_death { $(#[$on_parent_death:meta])* }
        tree { $(#[$tree:meta])* }
        on_drop { $(#[$on_drop:meta])* }
        set_policy { $(#[$set_policy:meta])* }
        $(policy { $(#[$policy:meta])* })?
    ) => {
        /// What happens to the child when this process ends normally: returns
        /// from `main`, calls `std::process::exit` or [`exit`](crate::exit)
        /// (see [`OnExit`](crate::OnExit); the default is the kind's, as in
        /// Python).
        ///
        $(#[$on_exit])*
        pub fn on_exit(&mut self, on_exit: $crate::OnExit) -> &mut Self {
            self.lifecycle.set_on_exit(on_exit);
            self
        }

        /// What happens to the child when this process dies in any way,
        /// SIGKILL included (see [`OnParentDeath`](crate::OnParentDeath)).
        ///
        $(#[$on_parent_death])*
        pub fn on_parent_death(&mut self, on_parent_death: $crate::OnParentDeath) -> &mut Self {
            self.lifecycle.set_on_parent_death(on_parent_death);
            self
        }

        /// Whether the child leads its own process group or session, so that
        /// `terminate`/`kill` reach its own children too (see
        /// [`Tree`](crate::Tree); default [`Tree::Own`](crate::Tree::Own)).
        ///
        $(#[$tree])*
        pub fn tree(&mut self, tree: $crate::Tree) -> &mut Self {
            self.lifecycle.set_tree(tree);
            self
        }

        /// What happens to the child when its last handle is dropped (see
        /// [`OnDrop`](crate::OnDrop); default
        /// [`OnDrop::Detach`](crate::OnDrop::Detach), as in Python). Dropping a
        /// future never ends a child; this policy does.
        ///
        $(#[$on_drop])*
        pub fn on_drop(&mut self, on_drop: $crate::OnDrop) -> &mut Self {
            self.lifecycle.set_on_drop(on_drop);
            self
        }

        /// Resource limits and niceness the child sets on itself before it
        /// runs anything (see [`Limits`](crate::Limits); default: none
        /// changed).
        pub fn limits(&mut self, limits: $crate::Limits) -> &mut Self {
            self.lifecycle.set_limits(limits);
            self
        }

        /// Every lifecycle option at once.
        ///
        $(#[$set_policy])*
        pub fn set_policy(&mut self, policy: $crate::Policy) -> &mut Self {
            self.lifecycle.set_policy(policy);
            self
        }

        $(
            /// The lifecycle options the child will get: the kind's defaults with
            /// what was set on top.
            ///
            $(#[$policy])*
            pub fn policy(&self) -> $crate::Policy {
                self.lifecycle.policy()
            }
        )?
    };
}
pub(crate) use lifecycle_methods;
