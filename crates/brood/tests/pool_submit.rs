//! `Pool::submit`: tasks with their own handles, side by side on the
//! workers, each failing alone; `.await`able; ended by `terminate`.

mod support;

use brood::{Error, Pool, SharedSlice, StartMethod, TaskError};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

/// Meets its partner through a FIFO: the reader's open blocks until the
/// writer's, so both finish only if they run at the same time.
fn meet((fifo, read): (String, bool)) -> u32 {
    use std::io::{Read, Write};
    if read {
        let mut b = [0u8; 1];
        std::fs::File::open(&fifo)
            .unwrap()
            .read_exact(&mut b)
            .unwrap();
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .unwrap()
            .write_all(b"x")
            .unwrap();
    }
    std::process::id()
}

fn die(code: i32) -> u8 {
    brood::exit_now(code)
}

fn square(x: u64) -> u64 {
    x * x
}

fn hang(_: ()) -> u8 {
    park()
}

fn first((d, i): (SharedSlice<u32>, usize)) -> u32 {
    d[i]
}

fn fifo(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("meet");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path.to_string_lossy().into_owned()
}

#[test]
fn submitted_tasks_run_side_by_side_under_every_start_method() {
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(&dir);
        let pool = Pool::builder(2).start_method(method).build().unwrap();
        let reader = pool.submit(meet, (path.clone(), true)).unwrap();
        let writer = pool.submit(meet, (path, false)).unwrap();
        let (a, b) = (
            reader
                .wait_timeout(Duration::from_secs(30))
                .expect("the reader met nobody"),
            writer
                .wait_timeout(Duration::from_secs(30))
                .expect("the writer met nobody"),
        );
        assert_ne!(a.unwrap(), b.unwrap(), "{method:?}: one worker ran both");
        assert!(reader.is_finished());
        // Many at once, more than there are workers, all answered.
        let handles: Vec<_> = (0..50u64)
            .map(|x| pool.submit(square, x).unwrap())
            .collect();
        for (x, h) in handles.iter().enumerate() {
            assert_eq!(h.wait(), Ok((x * x) as u64));
        }
    }
}

/// Before, a map gave its first worker two chunks before the second got one:
/// two slow items on two workers ran one after the other.
#[test]
fn a_map_of_two_items_runs_them_on_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let path = fifo(&dir);
    let pool = Pool::new(2).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let out = pool.map(meet, [(path.clone(), true), (path.clone(), false)]);
            let _ = tx.send(out);
        });
        let out = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("both items went to one worker");
        let pids: Vec<u32> = out.unwrap().into_iter().map(Result::unwrap).collect();
        assert_ne!(pids[0], pids[1]);
    });
}

#[test]
fn a_dying_task_fails_alone_and_the_pool_goes_on() {
    let pool = Pool::new(2).unwrap();
    let dead = pool.submit(die, 7).unwrap();
    let fine = pool.submit(square, 9).unwrap();
    match dead.wait() {
        Err(TaskError::WorkerDied { status, .. }) => {
            assert_eq!(status.and_then(|s| s.code()), Some(7))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fine.wait(), Ok(81));
    assert_eq!(pool.submit(square, 3).unwrap().wait(), Ok(9));
    // A map after submitted tasks runs once they are done.
    assert_eq!(pool.map(square, [2]).unwrap(), [Ok(4)]);
}

#[test]
fn a_handle_is_a_future() {
    let pool = Pool::new(1).unwrap();
    let h = pool.submit(square, 12).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(h), Ok(144));
}

#[test]
fn shared_data_goes_with_a_submitted_task() {
    let pool = Pool::new(1).unwrap();
    let d = SharedSlice::from_fn(1000, |i| i as u32 * 3).unwrap();
    assert_eq!(
        pool.submit(first, (d.clone(), 999)).unwrap().wait(),
        Ok(2997)
    );
}

#[test]
fn terminate_fails_what_is_outstanding_and_ends_every_worker() {
    let pool = Pool::new(2).unwrap();
    let hung: Vec<_> = (0..3).map(|_| pool.submit(hang, ()).unwrap()).collect();
    // Both workers are busy (the third task waits).
    let deadline = Instant::now() + Duration::from_secs(30);
    let pids = pool.worker_pids();
    let mut cleanup = Cleanup::default();
    for &p in &pids {
        cleanup.add(p);
    }
    while !pids.iter().all(|&p| stat(p).is_some_and(|(s, _)| s == 'S')) {
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    let t = Instant::now();
    pool.terminate().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    for h in &hung {
        assert!(h.wait().is_err());
    }
    for p in pids {
        assert!(!exists(p), "worker {p} outlived terminate");
    }
    assert!(matches!(pool.submit(square, 1), Err(Error::PoolClosed)));
}

/// Fails once `marker` exists: workers started after that cannot start.
fn ready_unless(marker: String) {
    assert!(!std::path::Path::new(&marker).exists(), "no more workers");
}

fn one(_: ()) -> u8 {
    1
}

/// A submission whose workers cannot be started fails, rather than waits
/// forever: the task taken from the queue used to be left without a result.
#[test]
fn a_task_no_worker_can_run_fails_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("stop").to_string_lossy().into_owned();
    let pool = Pool::builder(1)
        .initializer(ready_unless, marker.clone())
        .build()
        .unwrap();
    std::fs::write(&marker, b"").unwrap();
    for p in pool.worker_pids() {
        // SAFETY: killing the pool's own worker, by its pid.
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
        assert!(wait_exit(p, Duration::from_secs(10)));
    }
    let h = pool.submit_with(|_: &(), x: ()| one(x), ()).unwrap();
    let got = h.wait_timeout(Duration::from_secs(20));
    assert!(
        matches!(got, Some(Err(TaskError::Failed { .. }))),
        "{got:?}"
    );
}

/// The submitted tasks' map starts with no item at hand (its source is the
/// queue): a pool whose only worker died must still replace it for the next
/// task, under every start method (it once failed that task with "no pool
/// worker could be started").
#[test]
fn a_task_submitted_after_the_only_worker_died_runs() {
    for method in [
        StartMethod::ForkServer,
        StartMethod::Spawn,
        StartMethod::Fork,
    ] {
        let pool = Pool::builder(1).start_method(method).build().unwrap();
        let dead = pool.worker_pids();
        let r = pool.submit(die, 3).unwrap().wait();
        assert!(
            matches!(r, Err(TaskError::WorkerDied { pid, .. }) if [pid] == dead[..]),
            "{r:?}"
        );
        assert_eq!(pool.submit(square, 3).unwrap().wait(), Ok(9), "{method:?}");
        assert_ne!(pool.worker_pids(), dead);
        pool.terminate().unwrap();
    }
}

/// The thread ids of this process's threads named `brood-pool-submit` (the
/// kernel keeps 15 bytes of a name).
fn submit_threads() -> Vec<u32> {
    let mut ids: Vec<u32> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "brood-pool-subm")
        })
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn tasks_submitted_one_at_a_time_share_one_thread_which_ends_with_the_pool() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.submit(square, 3).unwrap().wait().unwrap(), 9);
    let first = submit_threads();
    assert_eq!(first.len(), 1, "one thread runs submitted tasks");
    // Each task waited for before the next: the queue empties between them,
    // and the same thread takes the next (no thread started per task).
    for x in 0..20u64 {
        assert_eq!(pool.submit(square, x).unwrap().wait().unwrap(), x * x);
        assert_eq!(submit_threads(), first, "task {x} ran on the same thread");
    }
    // A map of the pool's own runs while the thread waits for work: it
    // holds no lease meanwhile.
    assert_eq!(pool.map(square, 0..4u64).unwrap().len(), 4);
    // Closing the pool ends the waiting thread at once, not after its wait.
    let t = Instant::now();
    pool.close().unwrap();
    while !submit_threads().is_empty() {
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "the thread outlived close()"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn the_submit_thread_ends_on_its_own_when_no_task_comes() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.submit(square, 2).unwrap().wait().unwrap(), 4);
    assert_eq!(submit_threads().len(), 1);
    let t = Instant::now();
    while !submit_threads().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the idle thread never ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A later task starts a thread again.
    assert_eq!(pool.submit(square, 5).unwrap().wait().unwrap(), 25);
    pool.terminate().unwrap();
}

/// In a process of its own (fresh: brood warns once per process): submits
/// a task, forks at once while the thread of submitted tasks waits for the
/// next, and says whether that thread was there and what brood wrote on
/// stderr meanwhile.
fn fork_after_a_submission(_: ()) -> (bool, String) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two ints; dup2 puts the write end on stderr.
    unsafe {
        assert_eq!(
            libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK),
            0
        );
        libc::dup2(fds[1], 2);
    }
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.submit(square, 3).unwrap().wait().unwrap(), 9);
    let lingering = submit_threads().len() == 1;
    let child = brood::fork_with(|| 0).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    pool.terminate().unwrap();
    // SAFETY: the read end is ours, closed once here.
    let mut r = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut said = Vec::new();
    let _ = r.read_to_end(&mut said);
    (lingering, String::from_utf8_lossy(&said).into_owned())
}

#[test]
fn a_fork_right_after_a_submission_is_not_warned_about_the_submit_thread() {
    let mut p = brood::Process::new(fork_after_a_submission, ());
    p.start_method(StartMethod::Spawn);
    let (lingering, said) = p.start().unwrap().join().unwrap();
    assert!(lingering, "the thread of submitted tasks was gone already");
    assert!(!said.contains("other thread"), "warned: {said}");
}
