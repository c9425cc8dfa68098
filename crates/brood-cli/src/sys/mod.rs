//! The command's platform calls, one file per kernel mechanism; every
//! `unsafe` block of the lab lives here, each with its `SAFETY` comment.

pub mod fd; // write(2) to a descriptor
pub mod prctl; // PR_SET_CHILD_SUBREAPER
pub mod signal; // kill(2), dispositions
pub mod wait; // waitpid(2)
