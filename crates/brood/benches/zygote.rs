//! `cargo bench -p brood --bench zygote`: what the fork server's spares buy.
//!
//! 1. start+join back to back: ForkServer with spares and without, brood
//!    Fork, raw fork+_exit+waitpid (the spares are used up at once here: a
//!    burst forks on request);
//! 2. occasional starts (a pause before each, untimed): raw fork, brood
//!    ForkServer with a spare ready, brood Fork; and how long `start()`
//!    alone takes;
//! 3. the same with 1 GiB touched in the caller, against 2., and CPython's
//!    `os.fork` with and without 1 GiB;
//! 4. the ceiling: a zygote in raw syscalls (a server forks spares ahead, the
//!    client writes a request to one, reads its result, waits until the
//!    server reaped it), back to back, against raw fork — what any spare
//!    design can reach on this machine.
//!
//! Each figure is a median; every section runs in each of five rounds, so
//! that what a ratio compares was measured side by side. `BROOD_BENCH_N`
//! (default 400) sets the iterations per case (a quarter of it with 1 GiB).

mod common;

use brood::{Process, StartMethod};
use common::{context, median, raw_fork, show_ratio as ratio};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

brood::init_before_main!();

fn small(x: u64) -> u64 {
    x + 1
}

fn brood_once(m: StartMethod) {
    let h = Process::new(small, 41).start_method(m).start().unwrap();
    assert_eq!(h.join().unwrap(), 42);
}

/// Time of `start()` alone, then of the whole start+join, in µs.
fn brood_timed(m: StartMethod) -> (f64, f64) {
    let t = Instant::now();
    let h = Process::new(small, 41).start_method(m).start().unwrap();
    let started = t.elapsed();
    assert_eq!(h.join().unwrap(), 42);
    (started.as_secs_f64() * 1e6, t.elapsed().as_secs_f64() * 1e6)
}

fn us(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e6
}

fn report(title: &str, names: &[&str], samples: &[Vec<f64>]) -> Vec<f64> {
    println!("\n## {title}");
    let medians: Vec<f64> = samples.iter().map(|s| median(s.clone())).collect();
    for (name, m) in names.iter().zip(&medians) {
        println!("  {name:<44} median {m:>9.1} µs");
    }
    medians
}

/// Waits (bounded) until this process holds `n` spares.
fn spares_ready(n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_millis(200);
    while brood::fork_server_spares_ready() < n {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

const PY_FORK: &str = r#"
import os, sys, time
n, big = int(sys.argv[1]), int(sys.argv[2])
ballast = bytearray(big)
for i in range(0, big, 4096):
    ballast[i] = 1
ts = []
for _ in range(n):
    time.sleep(0.002)
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    ts.append(time.perf_counter() - t)
ts.sort()
print(ts[len(ts) // 2])
"#;

/// CPython's os.fork+_exit+waitpid with `big` bytes touched, in µs.
fn python_fork(n: usize, big: usize) -> Option<f64> {
    let out = std::process::Command::new("python3")
        .args(["-c", PY_FORK, &n.to_string(), &big.to_string()])
        .output()
        .ok()?;
    let s: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(s * 1e6)
}

fn main() {
    let n: usize = std::env::var("BROOD_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let rounds = 5;
    println!(
        "zygote bench: {n} iterations per case in {rounds} rounds; {}",
        context()
    );
    // First, while this process has no thread but main: the ceiling's
    // server is a plain fork of it.
    let (z, f) = ceiling::run(n.max(1000));
    brood_once(StartMethod::Fork);
    brood_once(StartMethod::ForkServer);

    // Every section runs in each round, so that its figures and the ones it
    // is compared with are taken side by side.
    let pause = Duration::from_millis(2);
    let per_round = n / rounds;
    let big_per_round = (per_round / 4).max(5);
    let burst_names = [
        "raw fork",
        "brood ForkServer (spares 2)",
        "brood ForkServer, no spares",
        "brood Fork",
    ];
    let calm_names = [
        "raw fork",
        "brood ForkServer, a spare ready",
        "brood Fork",
        "brood ForkServer, no spares",
    ];
    let big_names = [
        "raw fork, 1 GiB",
        "brood ForkServer, 1 GiB, a spare ready",
        "brood Fork, 1 GiB",
    ];
    let mut burst = vec![Vec::new(); 4];
    let mut calm = vec![Vec::new(); 4];
    let mut big = vec![Vec::new(); 3];
    let mut start_alone = Vec::new();
    let mut missed = 0;
    for _ in 0..rounds {
        // 1. Back to back, a batch per case.
        for (i, spares) in [(0, None), (1, Some(2)), (2, Some(0)), (3, None)] {
            if let Some(count) = spares {
                brood::set_fork_server_spares(count);
            }
            for _ in 0..per_round {
                burst[i].push(match i {
                    0 => us(raw_fork),
                    3 => us(|| brood_once(StartMethod::Fork)),
                    _ => us(|| brood_once(StartMethod::ForkServer)),
                });
            }
        }
        brood::set_fork_server_spares(2);
        // 2. and 3. Occasional starts, with a small caller, then 1 GiB.
        for (samples, iters, ballast) in [
            (&mut calm, per_round, 0),
            (&mut big, big_per_round, 1 << 30),
        ] {
            let mut heap = vec![0u8; ballast];
            for page in heap.chunks_mut(4096) {
                page[0] = 1;
            }
            for _ in 0..iters {
                // The ForkServer start first: with 1 GiB, right after a
                // 30 ms fork and its exit the machine is still busy with
                // that memory, which is not the start's doing.
                std::thread::sleep(pause);
                if !spares_ready(1) {
                    missed += 1;
                }
                let (started, whole) = brood_timed(StartMethod::ForkServer);
                if ballast == 0 {
                    start_alone.push(started);
                }
                samples[1].push(whole);
                std::thread::sleep(pause);
                samples[0].push(us(raw_fork));
                std::thread::sleep(pause);
                samples[2].push(us(|| brood_once(StartMethod::Fork)));
            }
            std::hint::black_box(&heap);
        }
        // The same occasional start, forked on request: a block of its own,
        // so that turning spares off and on does not churn the others.
        brood::set_fork_server_spares(0);
        for _ in 0..per_round {
            std::thread::sleep(pause);
            calm[3].push(us(|| brood_once(StartMethod::ForkServer)));
        }
        brood::set_fork_server_spares(2);
    }

    let m = report(
        "start+join back to back (a burst: spares are used up at once)",
        &burst_names,
        &burst,
    );
    ratio("ForkServer (spares 2) / raw fork", m[1] / m[0], None);
    ratio(
        "ForkServer (spares 2) / ForkServer, no spares",
        m[1] / m[2],
        None,
    );

    let small = report(
        "occasional start+join (2 ms pause before each, untimed)",
        &calm_names,
        &calm,
    );
    let started = median(start_alone);
    println!(
        "  brood ForkServer start() alone, a spare ready  median {started:>9.1} µs ({missed} starts found no spare)"
    );
    ratio(
        "ForkServer start+join / raw fork (issue 12 target)",
        small[1] / small[0],
        Some(0.6),
    );
    ratio(
        "ForkServer start() alone / raw fork",
        started / small[0],
        None,
    );
    ratio(
        "ForkServer with a spare ready / with no spares",
        small[1] / small[3],
        None,
    );
    ratio(
        "ForkServer, no spares / raw fork",
        small[3] / small[0],
        None,
    );

    let m = report(
        "occasional start+join with 1 GiB touched in the caller",
        &big_names,
        &big,
    );
    ratio(
        "ForkServer: 1 GiB caller / small caller (target ≤ 1.1×)",
        m[1] / small[1],
        Some(1.1),
    );
    ratio(
        "raw fork: 1 GiB caller / small caller",
        m[0] / small[0],
        None,
    );
    ratio(
        "brood Fork: 1 GiB caller / small caller",
        m[2] / small[2],
        None,
    );
    match (
        python_fork(big_per_round * rounds, 0),
        python_fork(big_per_round * rounds, 1 << 30),
    ) {
        (Some(a), Some(b)) => {
            println!("  CPython os.fork small {a:.1} µs, 1 GiB {b:.1} µs");
            ratio("CPython os.fork: 1 GiB / small", b / a, None);
        }
        _ => println!("  (python3 not found: no CPython figures)"),
    }

    println!("\n## the ceiling: a zygote in raw syscalls, back to back");
    println!("  raw zygote (spare ahead, request, result, reaped) median {z:>9.1} µs");
    println!("  raw fork                                          median {f:>9.1} µs");
    ratio("raw zygote / raw fork", z / f, None);
}

/// The least a spare design does per start, in raw syscalls: a server that
/// keeps two spares forked ahead, and a client that writes 8 bytes to one,
/// reads 8 back and waits until the server reaped it.
mod ceiling {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        (r, w)
    }

    fn send(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(fds));
        let iov = [std::io::IoSlice::new(data)];
        rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL).unwrap();
    }

    fn recv(sock: BorrowedFd<'_>) -> Vec<OwnedFd> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; 8];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC).unwrap();
        let mut fds = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(got) = m {
                fds.extend(got);
            }
        }
        fds
    }

    fn write8(fd: BorrowedFd<'_>, x: u64) {
        rustix::io::write(fd, &x.to_le_bytes()).unwrap();
    }

    fn read8(fd: BorrowedFd<'_>) -> Option<u64> {
        let mut b = [0u8; 8];
        (rustix::io::read(fd, &mut b).ok()? == 8).then(|| u64::from_le_bytes(b))
    }

    fn serve(sock: OwnedFd) -> ! {
        let watcher =
            rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC).unwrap();
        let mut kids: Vec<(i32, OwnedFd)> = Vec::new();
        loop {
            while kids.len() < 2 {
                let (req_r, req_w) = pipe();
                let (res_r, res_w) = pipe();
                // SAFETY: this server is single-threaded (a fresh fork of
                // the bench's main thread); the child calls only read,
                // write and _exit.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // Only its own ends: EOF comes once the client's copy
                    // of the request pipe closes.
                    drop((req_w, res_r, sock, kids));
                    if let Some(x) = read8(req_r.as_fd()) {
                        write8(res_w.as_fd(), x + 1);
                    }
                    // SAFETY: leaving the spare.
                    unsafe { libc::_exit(0) };
                }
                drop((req_r, res_w));
                let pidfd = rustix::process::pidfd_open(
                    rustix::process::Pid::from_raw(pid).unwrap(),
                    rustix::process::PidfdFlags::empty(),
                )
                .unwrap();
                rustix::event::epoll::add(
                    &watcher,
                    &pidfd,
                    rustix::event::epoll::EventData::new_u64(pid as u64),
                    rustix::event::epoll::EventFlags::IN,
                )
                .unwrap();
                send(
                    sock.as_fd(),
                    &[0],
                    &[pidfd.as_fd(), req_w.as_fd(), res_r.as_fd()],
                );
                kids.push((pid, pidfd));
            }
            let mut events = Vec::with_capacity(8);
            if rustix::event::epoll::wait(
                &watcher,
                rustix::buffer::spare_capacity(&mut events),
                None,
            )
            .is_err()
            {
                continue;
            }
            for e in &events {
                let pid = e.data.u64() as i32;
                if let Some(i) = kids.iter().position(|k| k.0 == pid) {
                    let (_, fd) = kids.swap_remove(i);
                    let _ = rustix::event::epoll::delete(&watcher, &fd);
                    let _ = rustix::process::waitid(
                        rustix::process::WaitId::PidFd(fd.as_fd()),
                        rustix::process::WaitIdOptions::EXITED,
                    );
                }
            }
        }
    }

    /// (raw zygote, raw fork) medians in µs.
    pub fn run(n: usize) -> (f64, f64) {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        // SAFETY: called before brood starts any thread: the server is a
        // fork of a single-threaded process, and runs only `serve`.
        let server = unsafe { libc::fork() };
        if server == 0 {
            drop(ours);
            serve(theirs)
        }
        drop(theirs);
        let mut zygote = Vec::with_capacity(n);
        let mut fork = Vec::with_capacity(n);
        for i in 0..n + 100 {
            let t = Instant::now();
            let mut fds = recv(ours.as_fd()).into_iter();
            let (pidfd, req, res) = (
                fds.next().unwrap(),
                fds.next().unwrap(),
                fds.next().unwrap(),
            );
            write8(req.as_fd(), 41);
            assert_eq!(read8(res.as_fd()), Some(42));
            // Reaped by the server: the pidfd's process is gone.
            // SAFETY: pidfd_send_signal with signal 0 on our own pidfd only
            // asks whether the process is still there.
            while unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), 0, 0, 0) }
                == 0
            {
                std::hint::spin_loop();
            }
            let z = t.elapsed().as_secs_f64() * 1e6;
            let f = us(raw_fork);
            if i >= 100 {
                zygote.push(z);
                fork.push(f);
            }
        }
        // SAFETY: killing and reaping the server forked above.
        unsafe {
            libc::kill(server, libc::SIGKILL);
            libc::waitpid(server, std::ptr::null_mut(), 0);
        }
        // The server's last spares see their request pipes close with this
        // socket (the messages that carry them are dropped) and exit.
        drop(ours);
        (median(zygote), median(fork))
    }
}
