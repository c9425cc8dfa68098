//! `Pool::map_async` and `MapUnordered` as a `Send` stream on tokio: results,
//! a worker's death and a task timeout seen on the reactor, and two maps on
//! one thread that wait for each other without blocking it.
#![cfg(feature = "tokio")]

mod support;

use brood::{Pool, StartMethod, TaskError};
use futures_core::Stream;
use std::pin::Pin;
use std::time::Duration;

brood::init_before_main!();

fn inc(x: u64) -> u64 {
    x + 1
}

fn die_on_three(x: u64) -> u64 {
    if x == 3 {
        brood::exit_now(4);
    }
    x
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

#[test]
fn map_async_gives_results_in_order_on_every_start_method() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let pool = Pool::builder(2).start_method(method).build().unwrap();
        let out = rt.block_on(pool.map_async(inc, 0..1000)).unwrap();
        let out: Vec<u64> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(out, (1..=1000).collect::<Vec<_>>(), "{method:?}");
    }
}

#[test]
fn the_stream_sees_a_death_and_a_timeout_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = Pool::builder(2)
        .start_method(StartMethod::Fork)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let pool = std::sync::Arc::new(pool);
    // The stream moves into a spawned task: it is Send.
    let got = rt
        .block_on(rt.spawn({
            let pool = pool.clone();
            async move {
                let mut map = pool.map_unordered_async(die_on_three, 0..6).await.unwrap();
                let mut got = Vec::new();
                while let Some(item) = next(&mut map).await {
                    got.push(item);
                }
                drop(map);
                let mut slow = pool.map_unordered_async(nap, [10, 5000]).await.unwrap();
                while let Some(item) = next(&mut slow).await {
                    got.push(item);
                }
                got
            }
        }))
        .unwrap();
    let died: Vec<_> = got[..6]
        .iter()
        .filter(|(_, r)| matches!(r, Err(TaskError::WorkerDied { .. })))
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(died, [3], "{got:?}");
    assert!(
        got[6..]
            .iter()
            .any(|(i, r)| *i == 0 && r.as_ref().ok() == Some(&10)),
        "{got:?}"
    );
    assert!(
        got[6..]
            .iter()
            .any(|(i, r)| *i == 1 && matches!(r, Err(TaskError::Timeout { .. }))),
        "{got:?}"
    );
}

#[test]
fn two_maps_on_one_thread_take_turns_without_blocking_it() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = Pool::builder(2)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap();
    let (a, b) = rt.block_on(async {
        tokio::join!(pool.map_async(nap, [100, 100]), pool.map_async(inc, 0..10))
    });
    assert_eq!(
        a.unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        [100, 100]
    );
    assert_eq!(b.unwrap().len(), 10);
}
