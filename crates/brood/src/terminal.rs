//! The terminal's foreground, handed to a child: brood takes it back when
//! that child has ended, as a shell does when a foreground job ends — so the
//! program is not left in the background of its own terminal (where reading
//! it would stop it with SIGTTIN).

use crate::sys::forklocal::ForkLocal;
use std::collections::HashSet;
use std::sync::Mutex;

/// Children that hold the foreground we gave them (a forked child starts
/// with none).
static HANDED: ForkLocal<Mutex<HashSet<u32>>> = ForkLocal::new(|| Mutex::new(HashSet::new()));

/// Whether our process group holds the foreground of the terminal on stdin.
pub(crate) fn ours() -> bool {
    let stdin = crate::sys::pipe::borrow_std(0);
    crate::sys::tty::foreground(stdin) == Some(crate::sys::tty::own_group())
}

/// Child `pid` was started with the foreground we held.
pub(crate) fn handed_to(pid: u32) {
    HANDED
        .get()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid);
}

/// Child `pid` ended: if it held the foreground we gave it (its group still
/// does), the terminal comes back to us.
pub(crate) fn child_ended(pid: u32) {
    let Some(handed) = HANDED.existing() else {
        return;
    };
    let was = handed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pid);
    if !was {
        return;
    }
    // Only from the child's group: if the foreground moved on since (the
    // program gave it to a job of its own, or the user to another), leave it.
    // (One read of the foreground, where two could disagree.)
    let stdin = crate::sys::pipe::borrow_std(0);
    if crate::sys::tty::foreground(stdin).is_none_or(|g| g == pid) {
        take_back();
    }
}

/// The terminal's foreground back to our group (a child we started with it
/// failed before it ran, or ended).
pub(crate) fn take_back() {
    let stdin = crate::sys::pipe::borrow_std(0);
    let _ = crate::sys::tty::set_foreground(stdin, crate::sys::tty::own_group());
}
