//! Namespaces: which pid namespace this process's children go to.
//!
//! # References
//! namespaces(7) (`/proc/<pid>/ns/pid`, `pid_for_children`),
//! pid_namespaces(7), unshare(2) (`CLONE_NEWPID`), clone(2) (`EINVAL` for
//! `CLONE_THREAD` once `pid_for_children` differs).

/// Whether this process's children go to another pid namespace than its own
/// (from Linux 4.12, which added `pid_for_children`; false before):
/// it called `unshare(CLONE_NEWPID)`. The kernel then lets it start no
/// thread. False when `/proc` cannot tell.
pub fn children_in_another_pid_namespace() -> bool {
    match (
        std::fs::read_link("/proc/self/ns/pid"),
        std::fs::read_link("/proc/self/ns/pid_for_children"),
    ) {
        (Ok(own), Ok(children)) => own != children,
        // Between the unshare and the first child the new namespace has no
        // process, and its link cannot be read: with no unshare it is ours.
        (Ok(_), Err(e)) => e.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn children_go_to_our_own_namespace_until_we_unshare() {
        assert!(!super::children_in_another_pid_namespace());
        let ended = super::super::fork::ending_of(|| {
            // SAFETY: unshare(2) in a single-threaded forked copy.
            if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
                return 10; // not allowed here: nothing to check
            }
            if super::children_in_another_pid_namespace() {
                0
            } else {
                1
            }
        });
        assert!(
            matches!(
                ended,
                super::super::pidfd::Reap::Exited(0) | super::super::pidfd::Reap::Exited(10)
            ),
            "{ended:?}"
        );
    }
}
