//! The command's platform calls, one file per kernel mechanism; every `unsafe`
//! block of the CLI lives here.
//!
//! | mechanism | file |
//! | --- | --- |
//! | signal masks and `signalfd` | [`signalfd`] |
//! | the signal state inherited from our parent, read before Rust's runtime changes it | [`inherited`] |
//! | `waitid`/`waitpid`: orphans, stops and continues | [`wait`] |
//! | `kill(2)` to one process, to everyone (`-1`), to ourselves | [`kill`] |
//! | the controlling terminal's foreground group | [`tty`] |
//! | `poll(2)` | [`poll`] |

pub mod inherited;
pub mod kill;
pub mod poll;
pub mod signalfd;
pub mod tty;
pub mod wait;
