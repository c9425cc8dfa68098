//! Per-job permissions: a `nats-server` whose user `a` may use only job
//! `ja`'s subjects and user `b` only job `jb`'s (the template of the docs).
//! Each job maps through its own agents; `a` can neither read job `jb`'s
//! tasks or results nor put work into its queue.

mod support;

use async_nats::jetstream;
use brood::CallOptions;
use brood_cluster::{ClusterPool, Credentials, JobStatus};
use std::sync::mpsc;
use std::time::Duration;
use support::*;

brood::init_before_main!();

/// The agent, when this binary is started with `BROOD_AGENT` set; a no-op
/// in the normal run.
#[test]
fn agent_role() {
    brood_cluster::agent_from_env();
}

fn square(x: u64) -> u64 {
    x * x
}

/// A worker's state: the base its items are added to.
fn base(b: u64) -> u64 {
    b
}

fn shifted(base: &u64, x: u64) -> u64 {
    base + x
}

/// The permissions of the user of job `job` (its driver and its agents):
/// the job's subjects, the JetStream API calls a driver and an agent make
/// on the job's two streams and nothing else, and the job's inboxes. (The
/// template of the docs.)
fn job_user(user: &str, password: &str, job: &str) -> String {
    let (t, r, i, d) = (
        format!("BROOD_{job}_TASKS"),
        format!("BROOD_{job}_RESULTS"),
        format!("BROOD_{job}_INITS"),
        format!("BROOD_{job}_DATA"),
    );
    format!(
        r#"{{ user: "{user}", password: "{password}", permissions: {{
    publish: {{ allow: [
      "brood.{job}.>",
      "$JS.API.STREAM.INFO.{t}", "$JS.API.STREAM.CREATE.{t}", "$JS.API.STREAM.PURGE.{t}",
      "$JS.API.STREAM.MSG.DELETE.{t}", "$JS.API.STREAM.MSG.GET.{t}",
      "$JS.API.STREAM.INFO.{r}", "$JS.API.STREAM.CREATE.{r}", "$JS.API.STREAM.PURGE.{r}",
      "$JS.API.STREAM.MSG.GET.{r}",
      "$JS.API.STREAM.INFO.{i}", "$JS.API.STREAM.CREATE.{i}", "$JS.API.STREAM.MSG.GET.{i}",
      "$JS.API.CONSUMER.CREATE.{t}.agents.>", "$JS.API.CONSUMER.INFO.{t}.agents",
      "$JS.API.CONSUMER.MSG.NEXT.{t}.agents", "$JS.ACK.{t}.agents.>",
      "$JS.API.CONSUMER.CREATE.{r}", "$JS.API.CONSUMER.MSG.NEXT.{r}.*",
      "$JS.API.STREAM.INFO.OBJ_{d}", "$JS.API.STREAM.CREATE.OBJ_{d}",
      "$JS.API.STREAM.PURGE.OBJ_{d}", "$JS.API.STREAM.MSG.GET.OBJ_{d}",
      "$JS.API.DIRECT.GET.OBJ_{d}.>", "$JS.API.CONSUMER.CREATE.OBJ_{d}",
      "$JS.API.CONSUMER.CREATE.OBJ_{d}.>", "$JS.API.CONSUMER.MSG.NEXT.OBJ_{d}.*",
      "$JS.FC.OBJ_{d}.>", "$O.{d}.>"
    ] }}
    subscribe: {{ allow: [
      "brood.{job}.alive.*", "brood.{job}.agents.*", "_INBOX_{job}.>",
      "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{t}.agents"
    ] }}
  }} }}"#
    )
}

/// A server with users `a` (job `ja`) and `b` (job `jb`).
fn server(dir: &std::path::Path) -> Option<Server> {
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [\n  {},\n  {}\n] }}\n",
            job_user("a", "pa", "ja"),
            job_user("b", "pb", "jb")
        ),
    )
    .unwrap();
    Server::start_with(&["-c", conf.to_str().unwrap()])
}

fn login(user: &str) -> Credentials {
    Credentials::UserPassword {
        user: user.into(),
        password: format!("p{user}"),
    }
}

/// A plain client of `user`, with its job's inbox prefix, whose server
/// errors (permission violations) arrive on the receiver.
fn client(
    rt: &tokio::runtime::Runtime,
    url: &str,
    user: &str,
) -> (async_nats::Client, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let opts = async_nats::ConnectOptions::with_user_and_password(user.into(), format!("p{user}"))
        .custom_inbox_prefix(format!("_INBOX_j{user}"))
        .event_callback(move |e| {
            if let async_nats::Event::ServerError(e) = e {
                let _ = tx.lock().unwrap().send(e.to_string().to_lowercase());
            }
            async {}
        });
    (rt.block_on(opts.connect(url)).unwrap(), rx)
}

/// Waits for the server's word that `what` was refused.
fn refused(errors: &mpsc::Receiver<String>, what: &str) {
    let want = format!("permissions violation for {what}").to_lowercase();
    loop {
        let e = errors
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the server never refused {what}"));
        eprintln!("server error: {e}");
        if e.contains(&want) {
            return;
        }
    }
}

fn total(data: brood::SharedSlice<u64>) -> u64 {
    data.iter().sum()
}

/// Reads the probe result of job `jb` through JetStream (the stream's
/// info, then an ordered consumer of the probe's subject), as `client`.
fn read_probe(
    rt: &tokio::runtime::Runtime,
    client: &async_nats::Client,
) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(client.clone());
    rt.block_on(async {
        let stream = js
            .get_stream("BROOD_jb_RESULTS")
            .await
            .map_err(|e| e.to_string())?;
        let mut msgs = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: "brood.jb.results.probe".into(),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(10), msgs.next()).await {
            Ok(Some(Ok(m))) => Ok(m.payload.to_vec()),
            other => Err(format!("{other:?}")),
        }
    })
}

#[test]
fn each_job_s_user_uses_its_job_only() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = server(dir.path()) else {
        return;
    };
    let url = server.url.clone();
    // Made before the agents, so dropped after them.
    let scene = Scene::of(server);
    let _agent_a = AgentProc::start(
        &url,
        "ja",
        1,
        &[("BROOD_AGENT_USER", "a"), ("BROOD_AGENT_PASSWORD", "pa")],
    );
    let _agent_b = AgentProc::start(
        &url,
        "jb",
        1,
        &[("BROOD_AGENT_USER", "b"), ("BROOD_AGENT_PASSWORD", "pb")],
    );
    // Each job maps through its own agent, as its own user.
    for (user, job) in [("a", "ja"), ("b", "jb")] {
        let pool = ClusterPool::builder(&url, job)
            .credentials(login(user))
            .initializer(base, 1000)
            .connect()
            .unwrap();
        let out = pool.map(square, 0..50u64).unwrap();
        assert_eq!(out, (0..50).map(|i| Ok(i * i)).collect::<Vec<_>>(), "{job}");
        // With an initializer: its bytes go through the job's own stream.
        let out = pool.map_with(shifted, 0..50u64).unwrap();
        assert_eq!(
            out,
            (0..50).map(|i| Ok(1000 + i)).collect::<Vec<_>>(),
            "{job}"
        );
        // A named call (which first reads what an earlier driver of it
        // left), and what `brood job` shows, read as the job's user.
        let out = pool
            .with(CallOptions::new())
            .named("nightly")
            .map(square, 0..20u64)
            .unwrap();
        assert_eq!(out, (0..20).map(|i| Ok(i * i)).collect::<Vec<_>>(), "{job}");
        // Shared data, through the job's own object store.
        let data = brood::SharedSlice::from_fn(300_000, |i| i as u64).unwrap();
        let out = pool.map(total, [data]).unwrap();
        assert_eq!(out, [Ok(299_999 * 300_000 / 2)], "{job}");
        let status = JobStatus::read(&url, login(user), job, JobStatus::LISTEN).unwrap();
        assert_eq!(status.agents.len(), 1, "{status:?}");
    }
    // Under its own user, each job's driver, agents and watcher were
    // refused nothing (a call the template lacks may fail quietly: a
    // timeout taken for an empty answer).
    assert_eq!(scene.server.logged("Violation"), Vec::<String>::new());
    // `a` cannot be a driver of job `jb`: the streams are not its own.
    let err = ClusterPool::builder(&url, "jb")
        .credentials(login("a"))
        .connect()
        .unwrap_err();
    eprintln!("user a as a driver of job jb: {err}");

    // Its own thread runs the clients' event callbacks between the calls.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // JetStream contexts are made inside it.
    let _rt = rt.enter();
    // `b` leaves a result of its job on the server, and reads it back.
    let (b, _) = client(&rt, &url, "b");
    let js = jetstream::new(b.clone());
    rt.block_on(async {
        js.publish("brood.jb.results.probe", "secret of jb".into())
            .await
            .unwrap()
            .await
            .unwrap()
    });
    assert_eq!(read_probe(&rt, &b).unwrap(), b"secret of jb");
    // The same read as `a` is refused at its first step.
    let (a, errors) = client(&rt, &url, "a");
    let err = read_probe(&rt, &a).unwrap_err();
    eprintln!("user a reading job jb's results: {err}");
    refused(
        &errors,
        "publish to \"$JS.API.STREAM.INFO.BROOD_jb_RESULTS\"",
    );
    // Nor can `a` listen to job `jb`'s subjects, to the inboxes where its
    // tasks and results are delivered, or put a task into its queue.
    for subject in ["brood.jb.>", "_INBOX_jb.>", "_INBOX.>", "$JS.ACK.>"] {
        let _sub = rt.block_on(a.subscribe(subject)).unwrap();
        rt.block_on(a.flush()).unwrap();
        refused(&errors, &format!("subscription to \"{subject}\""));
    }
    rt.block_on(async {
        a.publish("brood.jb.tasks.injected", "run this".into())
            .await
            .unwrap();
        a.flush().await.unwrap();
    });
    refused(&errors, "publish to \"brood.jb.tasks.injected\"");
}
