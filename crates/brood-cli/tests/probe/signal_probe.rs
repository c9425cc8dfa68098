//! `brood-signal-probe`: a test program that reports every signal it gets.
//!
//! Used by the `brood run` tests (and to compare with tini and dumb-init): it
//! prints `ready PID`, then for each batch of signals read together one line
//! `got SIGNAME:SENDER_PID …`, and exits 0 when its stdin reaches end of
//! file. Every catchable signal except SIGCHLD is blocked and read from a
//! signalfd, so none of them stops or kills it.

#[path = "../../src/sys/signalfd.rs"]
#[allow(dead_code)]
mod signalfd;

use std::io::Write;
use std::os::fd::AsFd;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

fn main() {
    let catchable: Vec<i32> = (1..32)
        .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP && s != libc::SIGCHLD)
        .collect();
    let set = signalfd::SigSet::of(catchable);
    signalfd::block(&set).expect("block signals");
    let fd = signalfd::SignalFd::new(&set).expect("signalfd");
    say(&format!("ready {}\n", std::process::id()));
    let stdin = std::io::stdin();
    loop {
        let mut fds = [
            rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN),
            rustix::event::PollFd::from_borrowed_fd(stdin.as_fd(), rustix::event::PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("poll: {e}"),
        }
        let stdin_ready = !fds[1].revents().is_empty();
        // One line per batch: signals pending together are told together,
        // so a test can tell what arrived before a sentinel signal.
        let mut line = String::new();
        while let Some(got) = fd.read().expect("read signalfd") {
            let name = brood::Signal::from_raw(got.signo)
                .map_or_else(|| format!("SIG{}", got.signo), |s| s.name());
            line.push_str(&format!(" {name}:{}", got.pid));
        }
        if !line.is_empty() {
            say(&format!("got{line}\n"));
        }
        if stdin_ready {
            let mut buf = [0u8; 64];
            match rustix::io::read(&stdin, &mut buf) {
                Ok(0) => std::process::exit(0),
                Ok(_) | Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                Err(_) => std::process::exit(0),
            }
        }
    }
}
