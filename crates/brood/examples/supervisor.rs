// Replaces a Python service that supervises workers and stops on SIGTERM:
//
//     workers = [Process(target=serve, args=(i,)) for i in range(3)]
//     for w in workers: w.start()
//     signal.signal(signal.SIGTERM, lambda *a: stopping.set())
//     while not stopping.is_set():
//         for i, w in enumerate(workers):
//             if not w.is_alive():                      # restart a dead worker
//                 workers[i] = Process(target=serve, args=(i,)); workers[i].start()
//         time.sleep(0.1)
//     for w in workers: w.terminate(); w.join()
//
// With brood the workers are killed with the supervisor even if it is
// SIGKILLed (OnParentDeath), terminated with a grace when it exits
// (OnExit::Terminate), and a restart never confuses a dead worker with a
// reused pid (the handles hold pidfds).
//
// Run: cargo run -p brood --example supervisor [-- SECONDS]
// It stops by itself after SECONDS (default 2), or at once on SIGTERM/SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use brood::{Handle, OnExit, OnParentDeath, Process, Signal};

/// A worker: serves until it is told to stop (here: sleeps in small steps).
fn serve(id: u32) {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let _ = id;
    }
}

fn start(id: u32) -> Result<Handle<()>, brood::Error> {
    Process::new(serve, id)
        .name(&format!("worker-{id}"))
        .on_exit(OnExit::Terminate {
            grace: Duration::from_millis(500),
        })
        .on_parent_death(OnParentDeath::Signal(Signal::KILL))
        .start()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    brood::init();
    let run_for = std::env::args()
        .nth(1)
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    let stopping = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stopping))?;
    }
    let mut workers: Vec<Handle<()>> = (0..3).map(start).collect::<Result<_, _>>()?;
    let pids: Vec<String> = workers.iter().map(|w| w.pid().to_string()).collect();
    println!("ready workers={}", pids.join(","));
    let deadline = Instant::now() + Duration::from_secs_f64(run_for);
    while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
        for (i, w) in workers.iter_mut().enumerate() {
            if !w.is_alive() {
                let code = w.exitcode().map(|c| c.to_string()).unwrap_or("?".into());
                let fresh = start(i as u32)?;
                println!(
                    "worker {i} ({}) died with {code}; restarted as {}",
                    w.pid(),
                    fresh.pid()
                );
                *w = fresh;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("stopping: terminating {} workers", workers.len());
    for w in &workers {
        let st = w.terminate_timeout(Duration::from_millis(500))?;
        println!("worker {} ended: {st}", w.pid());
    }
    Ok(())
}
