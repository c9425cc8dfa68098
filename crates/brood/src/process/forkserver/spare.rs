//! A spare: a child the fork server forks before any request needs it, so
//! that a start is a message rather than a fork (Android's zygote keeps such
//! a pool). It is the server's child like any other (the server reaps it and
//! reports its status), unspecialised until a request comes: it waits on a
//! `SOCK_SEQPACKET` channel of its own whose other end the client holds.
//!
//! The client claims a spare by telling the server first
//! ([`ToServer::Claimed`], with the request's policies) and then sending the
//! request on the spare's channel, with the same descriptors a request to the
//! server carries. So the server knows every claimed spare's parent-death
//! policy before the spare can run anything, even when the client dies
//! between the two messages (the server reads what is queued before it acts
//! on the client's death, and kills the spares nobody claimed).
//!
//! An unclaimed spare ignores SIGINT (as the server does: Ctrl-C at a terminal
//! reaches the client's whole group, and a spare belongs to no job yet); it
//! takes the client's disposition when claimed. It exits on its own once the
//! client's end of its channel is closed.

use crate::policy::Tree;
use crate::process::child::{self, CODE_SETUP};
use crate::sys::{fork::exit_now, socket};
use crate::wire::{self, Request, ToServer};
use std::os::fd::{AsFd, OwnedFd};

/// The largest request a spare takes (larger ones, with a name of kilobytes,
/// are forked on request): its buffer is on the stack, whose pages a new
/// spare has already, rather than a heap allocation whose every page would
/// be a fault.
pub(crate) const REQUEST_MAX: usize = 8 << 10;

/// In a new spare: waits for the one request it will run and returns it
/// with its descriptors (the server's code then runs it as a child forked on
/// request). Exits if none will come.
pub(super) fn wait_for_request(chan: OwnedFd) -> (Request, child::RequestFds) {
    let mut buf = [0u8; REQUEST_MAX];
    let (n, fds) = match socket::recv_with_fds(chan.as_fd(), &mut buf) {
        Ok((n, fds)) if n > 0 => (n, fds),
        // The client closed its end (it ended, or had no room for it):
        // nothing will come.
        _ => exit_now(0),
    };
    drop(chan);
    let Ok(ToServer::Start { req, .. }) = wire::decode::<ToServer>(&buf[..n]) else {
        exit_now(CODE_SETUP)
    };
    match child::request_fds(fds, req.policy.tree == Tree::Cgroup) {
        Ok(fds) => (*req, fds),
        // Cannot happen with our own client: it sends what it names.
        Err(_) => exit_now(CODE_SETUP),
    }
}
