//! Parent death reaches the whole tree: the groups of children with
//! [`Tree::Group`]/[`Tree::Session`] and [`OnParentDeath::Signal`] are
//! registered with this process's keeper (`sys::keeper`), which signals each
//! of them when this process dies, however it dies.
//!
//! The child registers its own group, before it runs anything (in the clone
//! child before `execve`, in a forked child before the function), and only
//! then arms its own `PR_SET_PDEATHSIG` and checks that its parent is still
//! there: so whenever the parent dies, either the keeper knows the group or
//! the child sees the death itself before anything of its own ran. brood
//! forgets a group when it reaps its leader (a group id is a pid, and could be
//! reused once the group is empty). A fork-server child needs no keeper: the
//! server outlives its client and signals its groups itself.
//!
//! Cost: one keeper process per brood process that starts such a child (a
//! double fork, ~1 ms once), one 8-byte pipe write per start and per reap.
//! PID 1 of a namespace and a child subreaper start none (see
//! `needs_keeper`).
//! A member that leaves the group (`setsid`, `setpgid`) escapes it; only a
//! cgroup holds such a tree.

use crate::policy::{Policy, Tree};
use crate::sys::forklocal::ForkLocal;
use crate::sys::keeper;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

#[cfg(doc)]
use crate::policy::OnParentDeath;

/// This process's keeper, once started (a forked child starts its own).
static KEEPER: ForkLocal<Mutex<Option<OwnedFd>>> = ForkLocal::new(|| Mutex::new(None));

/// Whether a child with `policy` needs the keeper. Not in a process that
/// manages its tree itself: PID 1 of a namespace (its death ends every
/// process in it) and a child subreaper (a supervisor such as `brood run`,
/// which would adopt the keeper and count it among the descendants it waits
/// for).
fn needs_keeper(policy: &Policy) -> bool {
    policy.tree != Tree::Own
        && policy.death_signal().is_some()
        && crate::sys::getpid() != 1
        && !crate::sys::prctl::is_child_subreaper().unwrap_or(false)
}

/// The keeper's registration descriptor for a child with `policy` (starting
/// the keeper the first time), or `None` when the child needs none.
pub(crate) fn registration(policy: &Policy) -> std::io::Result<Option<RawFd>> {
    if !needs_keeper(policy) {
        return Ok(None);
    }
    let mut keeper = KEEPER.get().lock().unwrap_or_else(|e| e.into_inner());
    if keeper.is_none() {
        // The keeper also signals the cgroups of Tree::Cgroup children.
        let cgroups = crate::cgroups::containment().brood_dir;
        let start = || keeper::start(cgroups.as_deref());
        *keeper = Some(crate::fdlimit::with_room(start)?);
    }
    Ok(keeper.as_ref().map(AsRawFd::as_raw_fd))
}

/// The group led by `pid` ended (its leader was reaped): the keeper forgets it.
pub(crate) fn forget(pid: u32, policy: &Policy) {
    if !needs_keeper(policy) {
        return;
    }
    if let Some(keeper) = KEEPER.existing() {
        let keeper = keeper.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fd) = keeper.as_ref() {
            let _ = keeper::register(fd.as_raw_fd(), &keeper::record(pid, 0));
        }
    }
}
