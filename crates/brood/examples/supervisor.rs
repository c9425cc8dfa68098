// A supervised service: three workers under a brood `Supervisor`, restarted
// when they die (after a back-off), stopped cleanly on SIGTERM or SIGINT.
// It replaces a Python service that supervises workers by hand:
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
// With brood the supervisor thread waits on every worker's pidfd (a death is
// seen at once, never confused with a reused pid), restarts with exponential
// back-off and gives up past its intensity; the workers die with this process
// even if it is SIGKILLed, and `stop` ends them in reverse order, SIGTERM
// first, SIGKILL after their grace.
//
// Run: cargo run -p brood --example supervisor [-- SECONDS]
// It stops by itself after SECONDS (default 2), or at once on SIGTERM/SIGINT.

use std::time::{Duration, Instant};

use brood::{ChildSpec, Shutdown, Strategy, Supervisor};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// A worker: serves until it is told to stop (here: sleeps in small steps).
fn serve(id: u32) {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let _ = id;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    brood::init();
    let run_for = std::env::args()
        .nth(1)
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    // Taken before any worker starts: from now on SIGTERM and SIGINT wait
    // for us to read them.
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let mut supervisor = Supervisor::new(Strategy::OneForOne).intensity(5, Duration::from_secs(10));
    for i in 0..3 {
        let spec = ChildSpec::process(format!("worker-{i}"), serve, i)
            .shutdown(Shutdown::Grace(Duration::from_millis(500)));
        supervisor = supervisor.child(spec);
    }
    let running = supervisor.start()?;
    let mut known = running.children();
    let pids: Vec<String> = known
        .iter()
        .filter_map(|(_, p)| p.map(|p| p.to_string()))
        .collect();
    println!("ready workers={}", pids.join(","));

    let deadline = Instant::now() + Duration::from_secs_f64(run_for);
    let why = loop {
        if let Some(sig) = signals.pending().next() {
            break format!("got signal {sig}");
        }
        if Instant::now() >= deadline {
            break "time is up".to_string();
        }
        if !running.is_running() {
            break "the supervisor gave up".to_string();
        }
        // Report restarts (the supervisor does them on its own thread).
        for ((id, seen), (_, now)) in known.iter_mut().zip(running.children()) {
            if let Some(now) = now.filter(|p| Some(*p) != *seen) {
                if let Some(old) = seen {
                    println!("{id} ({old}) died; restarted as {now}");
                }
                *seen = Some(now);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("stopping ({why}) after {} restart(s)", running.restarts());
    running.stop()?;
    println!("stopped: every worker ended and reaped");
    Ok(())
}
