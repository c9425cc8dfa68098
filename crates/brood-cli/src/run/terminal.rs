//! The terminal's foreground while the command runs: handed to the command in
//! the child before it starts (`brood::Command::foreground`), taken back when
//! the command stops or ends, given again when it is resumed.

use crate::sys::tty;

/// Whether `brood run` started in the foreground of a terminal on stdin.
#[derive(Copy, Clone, Debug)]
pub struct Terminal {
    /// Our process group, when it held the foreground at start.
    ours: Option<u32>,
}

impl Terminal {
    /// Looks at fd 0 now.
    pub fn detect() -> Terminal {
        let me = tty::own_group();
        Terminal {
            ours: (tty::foreground() == Some(me)).then_some(me),
        }
    }

    /// Should the command take the foreground as it starts?
    pub fn hand_over(&self) -> bool {
        self.ours.is_some()
    }

    /// The command (group `pgid`) stopped or ended: take the foreground back if
    /// it still has it, so that what follows (our own stop, our parent shell)
    /// finds the terminal where it left it.
    pub fn take_back(&self, pgid: u32) {
        if let Some(ours) = self.ours
            && tty::foreground() == Some(pgid)
        {
            let _ = tty::set_foreground(ours);
        }
    }

    /// We were resumed: if our group was put back in the foreground, pass it on
    /// to the command's group `pgid`. True when it was passed on.
    pub fn give_again(&self, pgid: u32) -> bool {
        match self.ours {
            Some(ours) if tty::foreground() == Some(ours) => tty::set_foreground(pgid).is_ok(),
            _ => false,
        }
    }
}
