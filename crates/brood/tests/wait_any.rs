//! `wait_any`: the first of several children to end, of any kind, with one
//! poll and no thread per child — observed on real processes.

mod support;

use brood::{Child, Command, Process, StartMethod};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

fn sleeper(cleanup: &mut Cleanup) -> Child {
    let c = Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap()
        .into_child();
    cleanup.add(c.pid());
    c
}

fn exit_with(code: i32) -> i32 {
    brood::exit_now(code)
}

fn kill(pid: u32) {
    brood::os::PidFd::open(pid)
        .and_then(|fd| fd.send_signal(brood::Signal::KILL))
        .unwrap();
}

#[test]
fn the_first_to_end_is_returned_whatever_its_kind() {
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let mut cleanup = Cleanup::default();
        let a = sleeper(&mut cleanup);
        let b = sleeper(&mut cleanup);
        let h = Process::new(exit_with, 4).start_method(m).start().unwrap();
        cleanup.add(h.pid());
        let p = h.child().clone();
        let (i, status) = brood::wait_any(&[&a, &p, &b], None).unwrap().unwrap();
        assert_eq!((i, status.code()), (1, Some(4)), "{m:?}");
        assert!(a.is_alive() && b.is_alive(), "{m:?}: the others run on");
        // The next one: a fork_with child that ends on a signal.
        let f = brood::fork_with(|| {
            std::thread::sleep(Duration::from_secs(30));
            0
        })
        .unwrap();
        cleanup.add(f.pid());
        kill(f.pid());
        let (i, status) = brood::wait_any(&[&a, &b, &f], None).unwrap().unwrap();
        assert_eq!(
            (i, status.signal()),
            (2, Some(brood::Signal::KILL)),
            "{m:?}"
        );
        for c in [&a, &b] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
    assert!(zombies_of(me()).is_empty());
}

#[test]
fn a_timeout_returns_none_and_leaves_them_running() {
    let mut cleanup = Cleanup::default();
    let a = sleeper(&mut cleanup);
    let t = Instant::now();
    assert_eq!(
        brood::wait_any(&[&a], Some(Duration::from_millis(100))).unwrap(),
        None
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(alive(a.pid()));
    assert_eq!(
        brood::wait_any(&[], None).unwrap(),
        None,
        "nothing to wait for"
    );
    a.kill().unwrap();
    a.wait().unwrap();
}

fn threads() -> usize {
    brood::os::procfs::stat(me()).unwrap().unwrap().num_threads as usize
}

#[test]
fn two_hundred_children_are_waited_for_with_no_thread_each() {
    require_own_process();
    let mut cleanup = Cleanup::default();
    let kids: Vec<Child> = (0..200).map(|_| sleeper(&mut cleanup)).collect();
    let refs: Vec<&Child> = kids.iter().collect();
    let before = threads();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let refs = &refs;
        let waiter = s.spawn(move || {
            tx.send(()).unwrap();
            brood::wait_any(refs, None).unwrap().unwrap()
        });
        rx.recv().unwrap();
        // The waiter is blocked in poll: one thread more than before, not 200.
        assert_eq!(threads(), before + 1);
        kill(kids[137].pid());
        let (i, status) = waiter.join().unwrap();
        assert_eq!((i, status.signal()), (137, Some(brood::Signal::KILL)));
    });
    for k in &kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    assert!(zombies_of(me()).is_empty());
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_twin_awaits_the_first_on_one_thread() {
    let mut cleanup = Cleanup::default();
    let a = sleeper(&mut cleanup);
    let b = sleeper(&mut cleanup);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (i, status) = rt.block_on(async {
        let both = [&a, &b];
        let first = brood::wait_any_async(&both);
        kill(b.pid());
        first.await.unwrap().unwrap()
    });
    assert_eq!((i, status.signal()), (1, Some(brood::Signal::KILL)));
    assert!(a.is_alive());
    a.kill().unwrap();
    a.wait().unwrap();
}
