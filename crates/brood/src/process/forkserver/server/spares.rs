//! The server's side of spares: children forked ahead while it is idle,
//! counted, and made a request's child when the client claims one. What a
//! spare itself does until then is `forkserver::spare`.

use super::{Kid, Server, send_ref};
use crate::sys::{self, fork::Forked, socket};
use crate::wire::ToClient;
use std::os::fd::AsFd;

impl Server {
    /// The client took spare `pid` for request `id`: from now on it is that
    /// request's child, with its policies.
    pub(super) fn claimed(&mut self, pid: u32, serial: u64, id: u64, policy: &crate::Policy) {
        let Some(kid) = self.kids.get_mut(&pid).filter(|k| k.spare == Some(serial)) else {
            return; // it ended first; the client learns that from its Exited
        };
        kid.spare = None;
        kid.id = id;
        kid.death_signal = policy.death_signal().map_or(0, |s| s.as_raw());
        kid.group = policy.tree != crate::policy::Tree::Own;
        self.idle_spares -= 1;
        if matches!(
            policy.tree,
            crate::policy::Tree::Group | crate::policy::Tree::Cgroup
        ) {
            // Both sides set the group, as for a child forked on request.
            let _ = sys::pgrp::setpgid(pid, pid);
        }
    }

    pub(super) fn short_of_spares(&self) -> bool {
        self.client.is_some() && !self.refill_paused && self.idle_spares < self.spares_wanted
    }

    /// Forks spares until as many as wanted wait.
    pub(super) fn refill(&mut self) {
        while self.short_of_spares() {
            if self.fork_spare().is_err() {
                // No descriptor or no process left: starts are forked on
                // request until the client next speaks.
                self.refill_paused = true;
            }
        }
    }

    /// One spare: forked now, unspecialised, waiting on a channel of its own
    /// for the request the client will hand it (see `spare`).
    fn fork_spare(&mut self) -> std::io::Result<()> {
        let (for_client, chan) = socket::seqpacket_pair()?;
        match self.single.fork()? {
            Forked::Child => {
                drop(for_client);
                self.become_child();
                self.set_title(Some(&self.spare_title), "spare");
                let (req, fds) = super::super::spare::wait_for_request(chan);
                self.run_child(&req, fds, None)
            }
            Forked::Parent(pid) => {
                drop(chan);
                let fd = match self.watch(pid) {
                    Ok(fd) => fd,
                    Err(e) => {
                        let _ = sys::reap::kill_and_reap_own(pid);
                        return Err(e);
                    }
                };
                // A client that cannot take both descriptors drops the spare;
                // its channel closes and it exits unclaimed.
                self.spare_serial += 1;
                let serial = self.spare_serial;
                let _ = send_ref(
                    &self.client,
                    &ToClient::Spare { pid, serial },
                    &[fd.as_fd(), for_client.as_fd()],
                );
                self.kids.insert(
                    pid,
                    Kid {
                        pid,
                        id: 0,
                        pidfd: fd,
                        death_signal: 0,
                        group: false,
                        spare: Some(serial),
                    },
                );
                self.idle_spares += 1;
                Ok(())
            }
        }
    }
}
