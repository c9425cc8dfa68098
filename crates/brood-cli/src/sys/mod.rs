//! The command's platform calls, one file per kernel mechanism; every `unsafe`
//! block of the CLI lives here, each with its `SAFETY` comment.
//!
//! | mechanism | file |
//! | --- | --- |
//! | signal masks and `signalfd` | [`signalfd`] |
//! | the signal state inherited from our parent, read before Rust's runtime changes it | [`inherited`] |
//! | `waitid`/`waitpid`: orphans, stops and continues | [`wait`] |
//! | `kill(2)` to everyone (`-1`), to a group, to ourselves | [`kill`] |
//! | `kill(2)` to one process, signal dispositions | [`signal`] |
//! | the controlling terminal's foreground group | [`tty`] |
//! | `poll(2)` | [`poll`] |
//! | `write(2)` to a raw descriptor | [`fd`] |
//! | `sd_notify`: a datagram to `$NOTIFY_SOCKET` | [`notify`] |

pub mod fd;
pub mod inherited;
pub mod kill;
pub mod notify;
pub mod poll;
pub mod signal;
pub mod signalfd;
pub mod tty;
pub mod wait;
