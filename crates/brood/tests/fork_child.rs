//! What a forked child may and may not touch between `fork` and its exit:
//! Rust's buffered stdout, std's locks held by threads that do not exist in the
//! child, the allocator on an error path, and signal numbers up to 64. Each
//! scenario runs in a forked "parent" of its own (so that its threads, handlers
//! and seccomp filter stay out of the test process), which reports by exit code.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// Counts allocations made in any process other than `OWNER` once armed, in
/// a page shared across fork (so the scenario's parent sees its child's count).
struct CountingAlloc;

static OWNER: AtomicU32 = AtomicU32::new(0);
static SHARED: AtomicPtr<AtomicUsize> = AtomicPtr::new(std::ptr::null_mut());

// SAFETY: forwards to the system allocator; the counting touches only atomics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let owner = OWNER.load(Ordering::Relaxed);
        // SAFETY: getpid has no preconditions.
        if owner != 0 && owner != unsafe { libc::getpid() } as u32 {
            let counter = SHARED.load(Ordering::Relaxed);
            // SAFETY: SHARED points to a page mapped for the process's life.
            if let Some(c) = unsafe { counter.as_ref() } {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `scenario` in a forked process of its own and returns its exit code.
fn in_own_process(scenario: fn() -> i32) -> i32 {
    let p = brood::fork_with(scenario).unwrap();
    let status = p.wait_timeout(Duration::from_secs(30)).unwrap();
    if status.is_none() {
        p.kill().unwrap();
        p.wait().unwrap();
        panic!("the scenario's process hung");
    }
    status.unwrap().exitcode()
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: two fresh descriptors.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A pipe whose buffer is full: a blocking write to it waits for a reader.
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = pipe();
    // SAFETY: fcntl on our own descriptor.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let chunk = [b'x'; 4096];
    // SAFETY: writing a valid buffer to our own pipe until it is full.
    while unsafe { libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) } > 0 {}
    // SAFETY: as above.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, 0) };
    (r, w)
}

fn dup_onto(fd: &OwnedFd, target: i32) {
    // SAFETY: dup2 of an open descriptor onto a standard one.
    assert!(unsafe { libc::dup2(fd.as_raw_fd(), target) } >= 0);
}

/// Text written to Rust's stdout without a newline before `fork_with` (so it
/// sits in stdout's buffer) appears once, not once more from the child's copy
/// of the buffer. stdout is a pipe, as under a pipeline or a supervisor.
#[test]
fn text_buffered_before_fork_appears_once() {
    let (r, w) = pipe();
    let writer = w.as_raw_fd();
    let p = brood::fork_with(move || {
        // SAFETY: `writer` is open in this forked copy.
        let w = unsafe { OwnedFd::from_raw_fd(writer) };
        dup_onto(&w, 1);
        drop(w);
        let mut out = std::io::stdout();
        out.write_all(b"before-fork ").unwrap();
        let child = brood::fork_with(|| 0).unwrap();
        child.wait().unwrap();
        out.write_all(b"after\n").unwrap();
        out.flush().unwrap();
        0
    })
    .unwrap();
    drop(w);
    let mut text = String::new();
    std::fs::File::from(r).read_to_string(&mut text).unwrap();
    assert_eq!(p.wait().unwrap().code(), Some(0));
    assert_eq!(text, "before-fork after\n");
}

/// Another thread holds Rust's stdout lock forever; a `fork_with` child (which
/// inherits the lock as held by a thread it does not have) still exits, and
/// `fork_with` itself returns.
#[test]
fn child_exits_while_another_thread_holds_stdout() {
    fn scenario() -> i32 {
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _held = std::io::stdout().lock();
            locked_tx.send(()).unwrap();
            loop {
                std::thread::park();
            }
        });
        locked_rx.recv().unwrap();
        let child = brood::fork_with(|| 0).unwrap();
        let code = match child.wait_timeout(Duration::from_secs(5)).unwrap() {
            Some(s) if s.code() == Some(0) => 0,
            Some(_) => 2,
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                1
            }
        };
        // Not by returning: this process's own stdout is locked for good.
        brood::exit_now(code)
    }
    assert_eq!(in_own_process(scenario), 0, "the forked child hung");
}

/// A set-up step that fails in the forked child (here `setsid`, refused by a
/// seccomp filter) is reported on stderr and ends the child with 127 without
/// allocating: after a fork in a threaded parent the allocator may be locked.
#[test]
fn failed_setup_in_the_child_does_not_allocate() {
    fn scenario() -> i32 {
        // SAFETY: a fresh shared anonymous page, never unmapped.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        SHARED.store(page.cast(), Ordering::Relaxed);
        refuse_setsid();
        let (r, w) = pipe();
        dup_onto(&w, 2);
        drop(w);
        OWNER.store(std::process::id(), Ordering::Relaxed);
        let child = brood::ForkBuilder::new()
            .tree(brood::Tree::Session)
            .fork_with(|| 0)
            .unwrap();
        let status = child.wait().unwrap();
        OWNER.store(0, Ordering::Relaxed);
        // Close our stderr (the pipe's last writer) to read to the end.
        // SAFETY: closing our own fd 2; nothing here writes to it after.
        unsafe { libc::close(2) };
        let mut text = String::new();
        std::fs::File::from(r).read_to_string(&mut text).unwrap();
        // SAFETY: the page is mapped.
        let allocations = unsafe { &*SHARED.load(Ordering::Relaxed) }.load(Ordering::Relaxed);
        let ok = status.code() == Some(127)
            && text.contains("setsid failed in the child")
            && text.contains("os error 1")
            && allocations == 0;
        if ok {
            0
        } else {
            // Say why on the test's own stdout (fd 1 is still the test's).
            println!("status {status}, allocations {allocations}, stderr {text:?}");
            1
        }
    }
    assert_eq!(in_own_process(scenario), 0);
}

/// A seccomp filter on this process (inherited by its children) that makes
/// `setsid` fail with EPERM.
fn refuse_setsid() {
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let filter = [
        // A = seccomp_data.nr
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_setsid as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl calls with valid arguments; the program outlives the call
    // (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog
            ),
            0
        );
    }
}

/// Bit `n` of a `Sig…:` mask line of `/proc/self/status` (signal `n + 1`).
fn signal_bit(line: &str, sig: i32) -> bool {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .unwrap()
        .trim();
    let mask = u64::from_str_radix(hex, 16).unwrap();
    mask & (1u64 << (sig - 1)) != 0
}

/// `graceful` takes over signal 64 (SIGRTMAX) without overflowing its bit set,
/// and a forked child gets that signal's default action back.
#[test]
fn graceful_handles_signal_64_and_forked_children_reset_it() {
    fn scenario() -> i32 {
        let sig = brood::Signal::from_raw(64).unwrap();
        if brood::signals::graceful(&[sig]).is_err() {
            return 3;
        }
        if !signal_bit("SigCgt:", 64) {
            return 4;
        }
        let child = brood::fork_with(|| i32::from(signal_bit("SigCgt:", 64))).unwrap();
        child.wait().unwrap().code().unwrap_or(5)
    }
    assert_eq!(in_own_process(scenario), 0);
}

/// stdout is a pipe that is full and that nobody reads, and a partial line
/// waits in Rust's buffer: a fork (here `fork_with`, from a single-threaded
/// process, where brood flushes inline) still returns, and the child's copy
/// of the buffer is not written by the child. Reports 0 when the fork
/// returned and the child ended.
#[test]
fn a_fork_never_blocks_on_a_full_stdout() {
    let code = in_own_process(|| {
        // Nobody will read `r`, which stays open.
        let (r, w) = full_pipe();
        dup_onto(&w, 1);
        drop(w);
        print!("a partial line");
        let child = match brood::fork_with(|| 0) {
            Ok(child) => child,
            Err(_) => return 2,
        };
        let code = match child.wait() {
            Ok(status) if status.code() == Some(0) => 0,
            _ => 3,
        };
        drop(r);
        // Leave without flushing what stays buffered (the pipe is full).
        brood::exit_now(code)
    });
    assert_eq!(code, 0);
}

/// A threaded parent whose stdout is a pipe full for now (a slow reader),
/// with a partial line in Rust's buffer: brood's flush before the fork must
/// not leave stdout's lock held in the child. Once the pipe drains, the
/// child's `println!` goes through and it exits. Reports 0 when it did, 1
/// when it hung.
#[test]
fn a_child_of_a_threaded_parent_prints_once_a_full_stdout_drains() {
    let code = in_own_process(|| {
        // Another thread, which never prints: the parent is not alone.
        std::thread::spawn(|| {
            loop {
                std::thread::park();
            }
        });
        let (r, w) = full_pipe();
        dup_onto(&w, 1);
        drop(w);
        print!("a partial line");
        let child = match brood::fork_with(|| {
            println!("the child");
            0
        }) {
            Ok(child) => child,
            Err(_) => brood::exit_now(2),
        };
        // The reader comes: the pipe drains, and keeps draining.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::fs::File::from(r), &mut std::io::sink());
        });
        let code = match child.wait_timeout(Duration::from_secs(5)) {
            Ok(Some(status)) if status.code() == Some(0) => 0,
            Ok(Some(_)) | Err(_) => 3,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                1
            }
        };
        brood::exit_now(code)
    });
    assert_eq!(code, 0, "the child hung on stdout's lock");
}
