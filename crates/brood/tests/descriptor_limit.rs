//! The soft descriptor limit, as every kind of start lives with it: from a
//! program whose soft `RLIMIT_NOFILE` is 64 (the hard one higher), each kind
//! starts more children than 64 descriptors hold — brood raises the soft limit
//! on its first `EMFILE` — and every child starts with the program's own soft
//! limit of 64. Then, at a lowered hard limit (the program sets both, and its
//! children then start with that), a start fails alone with
//! `Error::DescriptorLimit`, leaving no child behind, and the children started
//! before still give their results.
//!
//! Each child reports the soft limit it started with (its result, or its exit
//! code). Its handle, kept until the end, holds its descriptors (a pidfd, and
//! for a `Process` its result pipe), so the count only grows.

mod support;

use brood::{Child, Command, Error, Handle, Pool, Popen, Process, StartMethod, Stdio};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use support::*;

brood::init_before_main!();

/// The program's soft limit.
const SOFT: u64 = 64;

/// Children started under it: more than its descriptors could hold.
const MANY: usize = 100;

fn nofile() -> (u64, u64) {
    let l = getrlimit(Resource::Nofile);
    (l.current.unwrap_or(u64::MAX), l.maximum.unwrap_or(u64::MAX))
}

fn set_nofile(soft: u64, hard: u64) {
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: Some(hard),
        },
    )
    .unwrap_or_else(|e| panic!("setrlimit(RLIMIT_NOFILE, {soft}, {hard}): {e}"));
}

/// Lowers the soft limit to [`SOFT`], keeping the hard one (which must leave
/// room for [`MANY`] children).
fn lower_soft_limit() {
    require_own_process();
    let (_, hard) = nofile();
    assert!(
        hard >= 1024,
        "a hard limit of {hard} leaves no room to raise"
    );
    set_nofile(SOFT, hard);
}

/// The soft limit this process started with (what a child reports).
fn my_soft_limit() -> u64 {
    nofile().0
}

fn soft_limit(_: ()) -> u64 {
    my_soft_limit()
}

/// How many descriptors are open here.
fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// The highest descriptor open here.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(2)
}

/// Our own children (the fork server's aside), any state.
fn own_children() -> Vec<u32> {
    let server = brood::fork_server_pid();
    children_of(me())
        .into_iter()
        .filter(|&p| Some(p) != server)
        .collect()
}

/// Starts [`MANY`] children under the soft limit of 64, then more at a hard
/// limit a few descriptors above those in use until one start fails; `report`
/// ends a child and gives the soft limit it started with.
fn starts_past_the_soft_limit<H>(
    what: &str,
    mut start: impl FnMut() -> brood::Result<H>,
    pid: fn(&H) -> u32,
    mut report: impl FnMut(H) -> u64,
) {
    lower_soft_limit();
    let mut held = Vec::new();
    for i in 0..MANY {
        held.push(start().unwrap_or_else(|e| panic!("{what}: start {i} of {MANY}: {e}")));
    }
    let open = open_fds();
    assert!(
        open > SOFT,
        "{what}: {MANY} children and only {open} descriptors open"
    );
    let raised = nofile().0;
    assert!(raised > SOFT, "{what}: the soft limit is still {raised}");

    // The hard limit, a few descriptors above those in use. Three more are
    // held in reserve, and given back to read `/proc` after the refusal.
    let reserve: Vec<std::fs::File> = (0..3)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let limit = highest_fd() + 1 + 4;
    set_nofile(limit, limit);
    let refused = loop {
        match start() {
            Ok(h) => held.push(h),
            Err(e) => break e,
        }
        // Each start holds a descriptor at least (some may take gaps below
        // the highest).
        assert!(
            held.len() < MANY + limit as usize,
            "{what}: {} starts at a hard limit of {limit}, none refused",
            held.len() - MANY
        );
    };
    match refused {
        Error::DescriptorLimit { limit: l, .. } => assert_eq!(l, limit, "{what}"),
        e => panic!("{what}: at the hard limit: {e:?} ({e}), not DescriptorLimit"),
    }
    drop(reserve);
    // The refused start left no child behind, running or a zombie: every
    // child of ours is one a handle holds.
    let pids: Vec<u32> = held.iter().map(pid).collect();
    let strays: Vec<u32> = own_children()
        .into_iter()
        .filter(|p| !pids.contains(p))
        .collect();
    assert!(
        strays.is_empty(),
        "{what}: {strays:?} after the refused start"
    );
    // The first MANY started under the program's soft limit of 64; those
    // after it set (limit, limit) start with that, its soft limit now.
    let n = held.len();
    for (i, h) in held.into_iter().enumerate() {
        let expected = if i < MANY { SOFT } else { limit };
        assert_eq!(
            report(h),
            expected,
            "{what}: child {i} of {n}: its soft limit"
        );
    }
    eprintln!(
        "{what}: {n} children from a soft limit of {SOFT} (raised to {raised}); at a hard \
         limit of {limit}: {refused}"
    );
}

/// The exit code of a child that reports its soft limit through it.
fn code(c: Child) -> u64 {
    let status = c.wait().unwrap();
    status.code().unwrap_or_else(|| panic!("{status}")) as u64
}

/// A command that exits with the soft limit it started with.
fn reporting_command() -> brood::Result<Child> {
    Command::new("sh")
        .args(["-c", "exit $(ulimit -n)"])
        .spawn()
        .map(|p| p.child().clone())
}

#[test]
fn command_past_the_soft_limit() {
    starts_past_the_soft_limit("Command", reporting_command, Child::pid, code);
}

/// The pipe of a piped stream is one of brood's allocations too.
#[test]
fn piped_command_past_the_soft_limit() {
    starts_past_the_soft_limit(
        "Command with its stdout piped",
        || {
            Command::new("sh")
                .args(["-c", "ulimit -n"])
                .stdout(Stdio::piped())
                .spawn()
        },
        Popen::pid,
        |mut p: Popen| {
            let (out, _) = p.communicate(None, None).unwrap();
            let text = String::from_utf8_lossy(&out);
            text.trim().parse().unwrap_or_else(|_| panic!("{text:?}"))
        },
    );
}

#[test]
fn fork_with_past_the_soft_limit() {
    starts_past_the_soft_limit(
        "fork_with",
        || brood::fork_with(|| my_soft_limit() as i32),
        Child::pid,
        code,
    );
}

#[test]
fn raw_fork_past_the_soft_limit() {
    starts_past_the_soft_limit(
        "fork",
        // SAFETY: the child only reads its limit and leaves through `_exit`.
        || match unsafe { brood::fork() }? {
            brood::Fork::Child => brood::exit_now(my_soft_limit() as i32),
            brood::Fork::Parent(c) => Ok(c),
        },
        Child::pid,
        code,
    );
}

fn process_past_the_soft_limit(method: StartMethod) {
    starts_past_the_soft_limit(
        &format!("Process {method:?}"),
        || Process::new(soft_limit, ()).start_method(method).start(),
        Handle::pid,
        |h: Handle<u64>| h.join().unwrap(),
    );
}

#[test]
fn process_fork_past_the_soft_limit() {
    process_past_the_soft_limit(StartMethod::Fork);
}

#[test]
fn process_spawn_past_the_soft_limit() {
    process_past_the_soft_limit(StartMethod::Spawn);
}

#[test]
fn process_forkserver_past_the_soft_limit() {
    process_past_the_soft_limit(StartMethod::ForkServer);
}

/// Threads starting at once: the one that meets `EMFILE` first raises the
/// limit, and the others' starts that met it too go on.
#[test]
fn commands_from_threads_past_the_soft_limit() {
    lower_soft_limit();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        reporting_command().unwrap_or_else(|e| panic!("thread {t}, start {i}: {e}"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let children: Vec<Child> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(children.len(), 200);
    for c in children {
        assert_eq!(code(c), SOFT);
    }
}

fn pool_past_the_soft_limit(method: StartMethod) {
    lower_soft_limit();
    // Each worker holds descriptors here (its pidfd, its socket): 40 of them
    // do not fit in 64.
    let pool = Pool::builder(40)
        .start_method(method)
        .build()
        .unwrap_or_else(|e| panic!("Pool {method:?} of 40: {e}"));
    let limits: Vec<u64> = pool
        .map(soft_limit, vec![(); 200])
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(limits.iter().all(|&l| l == SOFT), "{limits:?}");
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 40);
    pool.close().unwrap();
    assert!(pids.iter().all(|&p| !alive(p)));
}

#[test]
fn pool_fork_past_the_soft_limit() {
    pool_past_the_soft_limit(StartMethod::Fork);
}

#[test]
fn pool_spawn_past_the_soft_limit() {
    pool_past_the_soft_limit(StartMethod::Spawn);
}

#[test]
fn pool_forkserver_past_the_soft_limit() {
    pool_past_the_soft_limit(StartMethod::ForkServer);
}
