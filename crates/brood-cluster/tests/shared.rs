//! A `SharedSlice` in a cluster call's items: its bytes go to the server's
//! object store once for the call, each agent fetches them once and its
//! workers map them as on one machine; the store is empty after the call.

mod support;

use brood::{CallOptions, SharedSlice};
use brood_cluster::ClusterPool;
use std::ops::Range;
use support::*;

brood::init_before_main!();

/// The agent, when this binary is started with `BROOD_AGENT` set.
#[test]
fn agent_role() {
    brood_cluster::agent_from_env();
}

fn sum((data, part): (SharedSlice<u64>, Range<usize>)) -> u64 {
    data[part].iter().sum()
}

/// Objects in the job's data store.
fn stored(url: &str, job: &str) -> usize {
    use futures_util::StreamExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let store = js
            .get_object_store(format!("BROOD_{job}_DATA"))
            .await
            .unwrap();
        let mut list = store.list().await.unwrap();
        let mut n = 0;
        while let Some(Ok(_)) = list.next().await {
            n += 1;
        }
        n
    })
}

#[test]
fn a_shared_slice_larger_than_a_message_reaches_every_agent_s_workers() {
    let Some(scene) = Scene::new() else { return };
    let _a = AgentProc::start(scene.url(), "shared", 2, &[]);
    let _b = AgentProc::start(scene.url(), "shared", 2, &[]);
    let pool = ClusterPool::connect(scene.url(), "shared").unwrap();
    // 16 MB: sixteen times the server's payload limit.
    let n = 2_000_000;
    let data = SharedSlice::from_fn(n, |i| i as u64).unwrap();
    let parts: Vec<_> = (0..40)
        .map(|k| (data.clone(), k * n / 40..(k + 1) * n / 40))
        .collect();
    let out = pool
        .with(CallOptions::new().chunk_size(2))
        .map(sum, parts.clone())
        .unwrap();
    let total: u64 = out.iter().map(|r| *r.as_ref().unwrap()).sum();
    assert_eq!(total, (n as u64 - 1) * n as u64 / 2);
    for (k, r) in out.iter().enumerate() {
        let (_, part) = &parts[k];
        assert_eq!(r, &Ok(part.clone().map(|i| i as u64).sum()), "part {k}");
    }
    // The call put it there once and took it away at its end.
    assert_eq!(stored(scene.url(), "shared"), 0);
    // A second call with the same data works the same.
    let again = pool.map(sum, [(data.clone(), 0..10)]).unwrap();
    assert_eq!(again, [Ok(45)]);
    assert_eq!(stored(scene.url(), "shared"), 0);
}
