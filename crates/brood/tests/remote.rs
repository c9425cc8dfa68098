//! The remote seam (`brood::remote`): a task encoded in one process runs in
//! another process of the same build — here a copy of this test binary at
//! another path, so another inode and mtime, as on another machine — on that
//! process's own pool, where a task that kills its worker fails alone.

mod support;

use brood::remote::{BuildId, decode_result, encode_task};
use brood::{CallOptions, ExitStatus, Pool, Signal, TaskError};
use std::path::Path;
use std::time::Duration;
use support::*;

brood::init_before_main!();

/// Where the agent role reads its tasks and writes its outcomes.
const IN: &str = "BROOD_REMOTE_TEST_IN";
const OUT: &str = "BROOD_REMOTE_TEST_OUT";

fn square(x: u64) -> u64 {
    x * x
}

fn abort(_: u64) -> u64 {
    std::process::abort()
}

fn exit3(_: u64) -> u64 {
    brood::exit_now(3)
}

fn kill_self(_: u64) -> u64 {
    // SAFETY: kill(2) on our own pid has no memory effects.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    0
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Length-prefixed records, in and out of the agent.
fn write_records(path: &Path, records: &[Vec<u8>]) {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
    std::fs::write(path, out).unwrap();
}

fn read_records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    out
}

/// The agent: when the test binary is started with `IN`/`OUT` set, it runs
/// every task of `IN` on a pool of its own (each with a 2 s timeout) and
/// writes its build and the outcomes, in order, to `OUT`. Otherwise a no-op.
#[test]
fn agent_role() {
    let (Some(input), Some(output)) = (std::env::var_os(IN), std::env::var_os(OUT)) else {
        return;
    };
    let tasks = read_records(Path::new(&input));
    let pool = Pool::new(2).unwrap();
    let opts = CallOptions::new().timeout(Duration::from_secs(2));
    let handles: Vec<_> = tasks
        .iter()
        .map(|t| pool.with(opts.clone()).submit_encoded(t).unwrap())
        .collect();
    let mut records = vec![BuildId::current().unwrap().to_string().into_bytes()];
    records.extend(handles.iter().map(|h| h.wait()));
    pool.terminate().unwrap();
    write_records(Path::new(&output), &records);
}

#[test]
fn a_task_runs_in_a_copy_of_the_binary_and_a_crash_fails_only_its_item() {
    let dir = tempfile::tempdir().unwrap();
    // The same build at another path: another inode, another mtime.
    let copy = dir.path().join("agent");
    std::fs::copy("/proc/self/exe", &copy).unwrap();
    let tasks = vec![
        encode_task(square, &7).unwrap(),
        encode_task(abort, &0).unwrap(),
        encode_task(square, &8).unwrap(),
        encode_task(exit3, &0).unwrap(),
        encode_task(kill_self, &0).unwrap(),
        encode_task(nap, &60_000).unwrap(),
        b"not a task".to_vec(),
        encode_task(square, &9).unwrap(),
    ];
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    write_records(&input, &tasks);
    let status = std::process::Command::new(&copy)
        .args(["--exact", "agent_role", "--test-threads", "1"])
        .env(IN, &input)
        .env(OUT, &output)
        .status()
        .unwrap();
    assert!(status.success(), "the agent failed: {status}");
    let out = read_records(&output);
    assert_eq!(out.len(), tasks.len() + 1);
    // The copy names the same build as this binary.
    assert_eq!(
        String::from_utf8_lossy(&out[0]),
        BuildId::current().unwrap().to_string()
    );
    let out = &out[1..];
    assert_eq!(decode_result::<u64>(&out[0]), Ok(49));
    assert!(
        matches!(decode_result::<u64>(&out[1]),
            Err(TaskError::WorkerDied { signal: Some(s), .. }) if s == Signal::ABORT),
        "{:?}",
        decode_result::<u64>(&out[1])
    );
    assert_eq!(decode_result::<u64>(&out[2]), Ok(64));
    assert!(
        matches!(
            decode_result::<u64>(&out[3]),
            Err(TaskError::WorkerDied {
                signal: None,
                status: Some(ExitStatus::Exited(3)),
                ..
            })
        ),
        "{:?}",
        decode_result::<u64>(&out[3])
    );
    assert!(
        matches!(decode_result::<u64>(&out[4]),
            Err(TaskError::WorkerDied { signal: Some(s), .. }) if s == Signal::KILL),
        "{:?}",
        decode_result::<u64>(&out[4])
    );
    assert!(
        matches!(decode_result::<u64>(&out[5]), Err(TaskError::Timeout { timeout, .. }) if timeout == Duration::from_secs(2)),
        "{:?}",
        decode_result::<u64>(&out[5])
    );
    assert!(
        matches!(decode_result::<u64>(&out[6]), Err(TaskError::Failed { reason }) if reason.contains("not a brood task")),
        "{:?}",
        decode_result::<u64>(&out[6])
    );
    assert_eq!(decode_result::<u64>(&out[7]), Ok(81));
    // The agent and every worker it made are gone: none is left our child.
    assert!(zombies_of(me()).is_empty());
}

#[test]
fn a_dead_worker_named_by_the_outcome_is_gone_and_the_pool_goes_on() {
    let pool = Pool::new(1).unwrap();
    let before = pool.worker_pids();
    let out = pool
        .submit_encoded(&encode_task(abort, &0).unwrap())
        .unwrap()
        .wait();
    let Err(TaskError::WorkerDied { pid, signal, .. }) = decode_result::<u64>(&out) else {
        panic!("{:?}", decode_result::<u64>(&out));
    };
    assert_eq!(signal, Some(Signal::ABORT));
    assert_eq!(before, [pid]);
    assert!(!exists(pid), "worker {pid} still exists");
    let out = pool
        .submit_encoded(&encode_task(square, &3).unwrap())
        .unwrap()
        .wait();
    assert_eq!(decode_result::<u64>(&out), Ok(9));
    assert_ne!(pool.worker_pids(), before);
    pool.terminate().unwrap();
}

/// A one-item chunk awaited with `submit_chunk`: its value, or the
/// `TaskError` of a crash (the pool goes on); a chunk of two items is refused.
#[test]
fn a_one_item_chunk_is_awaited_and_a_crash_fails_only_it() {
    use brood::remote::{ChunkEncoder, decode_results};
    let pool = Pool::new(1).unwrap();
    let mut cleanup = Cleanup::default();
    for w in pool.worker_pids() {
        cleanup.add(w);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let one = |f: fn(u64) -> u64, x: u64| {
        let mut c = ChunkEncoder::new(f).unwrap();
        c.push(&x).unwrap();
        c.finish()
    };
    let run = |bytes: Vec<u8>| {
        let running = pool
            .with(CallOptions::new())
            .submit_chunk(&bytes, None, &[])
            .unwrap();
        decode_results::<u64>(&rt.block_on(running), 1).unwrap()
    };
    assert_eq!(run(one(square, 12)), [Ok(144)]);
    let died = pool.worker_pids();
    assert!(matches!(
        &run(one(abort, 0))[..],
        [Err(TaskError::WorkerDied { signal: Some(s), .. })] if *s == Signal::ABORT
    ));
    for w in &died {
        assert!(!alive(*w), "worker {w} outlived its abort");
    }
    assert_eq!(run(one(square, 3)), [Ok(9)]);
    let mut two = ChunkEncoder::new(square).unwrap();
    two.push(&1).unwrap();
    two.push(&2).unwrap();
    let refused = pool
        .with(CallOptions::new())
        .submit_chunk(&two.finish(), None, &[]);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("2 items where one was expected")),
        "{refused:?}"
    );
    for w in pool.worker_pids() {
        cleanup.add(w);
    }
}
