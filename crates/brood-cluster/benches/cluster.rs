//! The cluster pool against its floors and the local pool, side by side in
//! one run (`cargo bench -p brood-cluster`; needs `nats-server`). Each
//! figure is the median of several rounds, the peers measured in the same
//! rounds, alternating:
//!
//! 1. per-item cost with chunks of 1, one agent (2 workers) on loopback,
//!    against a raw NATS request/reply round trip (the floor), a JetStream
//!    publish with its ack, and the local pool's `imap` with chunks of 1;
//! 2. `x + 1` over 100,000 items, default chunks, one agent with 2 workers,
//!    against the local pool's `map` with 2 workers, and against the
//!    JetStream floor of that call: its very chunks and outcomes (the same
//!    bytes, the same messages) carried through two file-backed streams
//!    as the cluster carries them — published with acks, pulled a chunk a
//!    slot by a second connection, outcomes published with acks, chunks
//!    acked, outcomes read — with nothing run;
//! 3. a CPU-bound job (400 items of ~2 ms of CPU each) through one agent,
//!    against the local pool;
//! 4. the CPU-bound job with 1, 2 and 3 agents of one worker each.
//!
//! Agents are this binary started again with `BROOD_AGENT` set.

#[path = "../tests/support/mod.rs"]
mod support;

use brood::{CallOptions, Pool};
use brood_cluster::ClusterPool;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use support::{AgentProc, Server};

brood::init_before_main!();

const ROUNDS: usize = 5;

/// How long each side of the `x + 1` call runs before it is timed.
const WARM: Duration = Duration::from_secs(2);

/// `x + 1` calls of each side in a round (a few milliseconds each: more of
/// them for a steadier median on a noisy machine).
const TINY_CALLS: usize = 5;

fn inc(x: u64) -> u64 {
    x + 1
}

/// About 2 ms of CPU: a busy hash chain.
fn burn(seed: u64) -> u64 {
    let mut h = seed;
    for _ in 0..1_500_000 {
        h = h
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        h ^= h >> 29;
    }
    h
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let t = Instant::now();
    std::hint::black_box(f());
    t.elapsed()
}

/// Median of `n` sequential request/reply round trips on core NATS.
fn raw_round_trip(url: &str, n: usize) -> Duration {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let mut sub = client.subscribe("bench.echo").await.unwrap();
        let responder = client.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(reply) = m.reply {
                    let _ = responder.publish(reply, m.payload).await;
                }
            }
        });
        client.flush().await.unwrap();
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            client
                .request("bench.echo", i.to_string().into())
                .await
                .unwrap();
            times.push(t.elapsed());
        }
        median(times)
    })
}

/// Median of `n` sequential JetStream publishes, each with its ack.
fn jetstream_publish(url: &str, n: usize) -> Duration {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let _ = js
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "BENCH".into(),
                subjects: vec!["bench.js".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            js.publish("bench.js", i.to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
            times.push(t.elapsed());
        }
        median(times)
    })
}

/// The chunks of `x + 1` over `0..n` as the cluster cuts them for one agent
/// of 2 workers (two a worker), and their outcomes as an agent sends them.
fn inc_chunks(n: u64, local: &Pool) -> (Vec<bytes::Bytes>, Vec<bytes::Bytes>) {
    let per = n.div_ceil(4);
    let mut chunks = Vec::new();
    let mut outcomes = Vec::new();
    let mut start = 0;
    while start < n {
        let mut c = brood::remote::ChunkEncoder::new(inc).unwrap();
        for x in start..(start + per).min(n) {
            c.push(&x).unwrap();
        }
        let bytes = c.finish();
        let out = local
            .with(CallOptions::new())
            .map_encoded(&bytes, None)
            .unwrap();
        chunks.push(bytes.into());
        outcomes.push(out.into());
        start += per;
    }
    (chunks, outcomes)
}

/// The JetStream floor of a call (see 2. above): `chunks` through a
/// work-queue stream to a second connection with two pulling slots, which
/// publishes `outcomes` (by index) to a results stream and acks each chunk;
/// the first connection reads the outcomes. Median of `rounds`.
fn jetstream_floor(
    url: &str,
    chunks: &[bytes::Bytes],
    outcomes: &[bytes::Bytes],
    rounds: usize,
) -> Duration {
    use async_nats::jetstream::{self, consumer, stream};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let driver = jetstream::new(async_nats::connect(url).await.unwrap());
        let agent = jetstream::new(async_nats::connect(url).await.unwrap());
        let tasks = driver
            .get_or_create_stream(stream::Config {
                name: "FLOOR_TASKS".into(),
                subjects: vec!["floor.tasks.>".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap();
        let results = driver
            .get_or_create_stream(stream::Config {
                name: "FLOOR_RESULTS".into(),
                subjects: vec!["floor.results.>".into()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap();
        let workers: consumer::PullConsumer = tasks
            .get_or_create_consumer(
                "agents",
                consumer::pull::Config {
                    durable_name: Some("agents".into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let outcomes: std::sync::Arc<Vec<bytes::Bytes>> = std::sync::Arc::new(outcomes.to_vec());
        let mut times = Vec::new();
        for round in 0..rounds {
            let t = Instant::now();
            // The agent: two slots, each pulling one chunk at a time.
            let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(chunks.len()));
            let mut slots = Vec::new();
            for _ in 0..2 {
                let (workers, agent, outcomes, left) = (
                    workers.clone(),
                    agent.clone(),
                    std::sync::Arc::clone(&outcomes),
                    std::sync::Arc::clone(&left),
                );
                slots.push(tokio::spawn(async move {
                    while left.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                        let mut batch = workers
                            .batch()
                            .max_messages(1)
                            .expires(Duration::from_millis(200))
                            .messages()
                            .await
                            .unwrap();
                        let Some(Ok(msg)) = batch.next().await else {
                            continue;
                        };
                        left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        let k: usize = msg.subject.rsplit('.').next().unwrap().parse().unwrap();
                        agent
                            .publish(format!("floor.results.{round}"), outcomes[k].clone())
                            .await
                            .unwrap()
                            .await
                            .unwrap();
                        msg.ack().await.unwrap();
                    }
                }));
            }
            // The driver: every chunk published, then every outcome read.
            let mut acks = Vec::new();
            for (k, c) in chunks.iter().enumerate() {
                acks.push(
                    driver
                        .publish(format!("floor.tasks.{k}"), c.clone())
                        .await
                        .unwrap(),
                );
            }
            for a in acks {
                a.await.unwrap();
            }
            let mut read = results
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: format!("floor.results.{round}"),
                    ..Default::default()
                })
                .await
                .unwrap()
                .messages()
                .await
                .unwrap();
            for _ in 0..chunks.len() {
                read.next().await.unwrap().unwrap();
            }
            times.push(t.elapsed());
            for s in slots {
                s.await.unwrap();
            }
            results.purge().await.unwrap();
        }
        median(times)
    })
}

fn per_item(d: Duration, n: usize) -> Duration {
    d / n as u32
}

fn main() {
    brood_cluster::agent_from_env();
    let Some(server) = Server::start() else {
        eprintln!("cluster bench: nats-server is not installed; nothing measured");
        return;
    };
    let url = server.url.clone();
    // Its version matters: 2.9's file store costs the server about twice
    // the CPU of a current one for the same messages (see the floor in 2.).
    println!(
        "nats-server {} (BROOD_NATS_SERVER picks another)",
        server.version()
    );
    let local = Pool::new(2).unwrap();

    // 1. Per-item cost, chunks of 1.
    let one = {
        let _agent = AgentProc::start(&url, "bench-one", 2, &[]);
        let pool = ClusterPool::connect(&url, "bench-one").unwrap();
        let n = 1000;
        let opts = || CallOptions::new().chunk_size(1);
        // Warm: the agent is up and has its pool.
        pool.with(opts()).map(inc, 0..10u64).unwrap();
        let (mut cluster, mut imap, mut raw, mut js) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            cluster.push(per_item(
                time(|| pool.with(opts()).map(inc, 0..n as u64).unwrap()),
                n,
            ));
            imap.push(per_item(
                time(|| local.with(opts()).imap(inc, 0..n as u64).unwrap().count()),
                n,
            ));
            raw.push(raw_round_trip(&url, 200));
            js.push(jetstream_publish(&url, 200));
        }
        (median(cluster), median(imap), median(raw), median(js))
    };
    println!("1. per item, chunks of 1, one agent (2 workers):");
    println!(
        "   cluster map {:?}/item; raw NATS request/reply {:?} ({:.1}x); JetStream publish+ack {:?} ({:.1}x); local imap chunk 1 {:?} ({:.1}x)",
        one.0,
        one.2,
        one.0.as_secs_f64() / one.2.as_secs_f64(),
        one.3,
        one.0.as_secs_f64() / one.3.as_secs_f64(),
        one.1,
        one.0.as_secs_f64() / one.1.as_secs_f64(),
    );

    // 2. x + 1 over 100,000 items; 3. the CPU-bound job.
    let (tiny, cpu) = {
        let _agent = AgentProc::start(&url, "bench-two", 2, &[]);
        let pool = ClusterPool::connect(&url, "bench-two").unwrap();
        pool.map(inc, 0..10u64).unwrap();
        // The agent's records tell the driver its workers (every second).
        std::thread::sleep(Duration::from_millis(1500));
        let (chunks, outcomes) = inc_chunks(100_000, &local);
        // Warm, as criterion does: the first calls on a fresh job are slower
        // (the server's stores and heap grow into their work: on 2.9, calls
        // take ~14 ms for the first 20 and ~10.5 ms from the hundredth on).
        let warm = Instant::now();
        while warm.elapsed() < WARM {
            pool.map(inc, 0..100_000u64).unwrap();
        }
        let warm = Instant::now();
        while warm.elapsed() < WARM {
            local.map(inc, 0..100_000u64).unwrap();
        }
        // Each measure in its own rounds: a call right after a CPU job, or
        // while the server still writes out the floor's streams, measured
        // those instead of itself. The two sides alternate in each round.
        let (mut c, mut l, mut f, mut cc, mut cl) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            // Each side's calls one after another, as a program makes them
            // (what one call leaves behind, such as the server's deletes,
            // is paid by the next of the same side), the sides in turn.
            for _ in 0..TINY_CALLS {
                c.push(time(|| pool.map(inc, 0..100_000u64).unwrap()));
            }
            for _ in 0..TINY_CALLS {
                l.push(time(|| local.map(inc, 0..100_000u64).unwrap()));
            }
        }
        for _ in 0..ROUNDS {
            f.push(jetstream_floor(&url, &chunks, &outcomes, 3));
        }
        for _ in 0..ROUNDS {
            cc.push(time(|| pool.map(burn, 0..400u64).unwrap()));
            cl.push(time(|| local.map(burn, 0..400u64).unwrap()));
        }
        (
            (median(c), median(l), median(f), chunks.len()),
            (median(cc), median(cl)),
        )
    };
    println!(
        "2. x + 1 over 100,000 items: cluster {:?}, local pool {:?}: {:.2}x; the JetStream floor of its {} chunks {:?} ({:.2}x the local pool; the cluster {:.2}x the floor)",
        tiny.0,
        tiny.1,
        tiny.0.as_secs_f64() / tiny.1.as_secs_f64(),
        tiny.3,
        tiny.2,
        tiny.2.as_secs_f64() / tiny.1.as_secs_f64(),
        tiny.0.as_secs_f64() / tiny.2.as_secs_f64(),
    );
    println!(
        "3. CPU job (400 x ~2 ms): cluster {:?}, local pool {:?}: {:.2}x",
        cpu.0,
        cpu.1,
        cpu.0.as_secs_f64() / cpu.1.as_secs_f64()
    );

    // 4. Agents of one worker each, 1 to 3.
    let mut agents = Vec::new();
    let pool = ClusterPool::connect(&url, "bench-scale").unwrap();
    for k in 1..=3 {
        agents.push(AgentProc::start(&url, "bench-scale", 1, &[]));
        pool.with(CallOptions::new().chunk_size(1))
            .map(inc, 0..(4 * k as u64))
            .unwrap();
        let times: Vec<Duration> = (0..ROUNDS)
            .map(|_| time(|| pool.map(burn, 0..400u64).unwrap()))
            .collect();
        let t = median(times);
        println!(
            "4. CPU job with {k} agent(s) of 1 worker: {t:?} ({:.0} items/s)",
            400.0 / t.as_secs_f64()
        );
    }
    drop(agents);
    let _ = local.terminate();
}
