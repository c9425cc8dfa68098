// Replaces the field report's multiprocessing.Process snippets at exit:
//
//     p = Process(target=work, args=(0.3,)); p.start()             # daemon=False
//     d = Process(target=work, args=(30,)); d.daemon = True; d.start()
//     # main logic done: Python waits for p, terminates d, then exits
//
// brood keeps those two rules as each child's OnExit policy (daemon=false:
// wait; daemon=true: SIGTERM, then SIGKILL after a grace) and applies them
// when main returns, when brood::exit is called, or with
// brood::signals::graceful, on SIGTERM too.
//
// Run: cargo run -p brood --example process_at_exit

use std::time::{Duration, Instant};

use brood::Process;

fn work(secs: f64) -> u32 {
    std::thread::sleep(Duration::from_secs_f64(secs));
    std::process::id()
}

fn main() -> Result<(), brood::Error> {
    brood::init(); // first: Spawn and ForkServer children start here
    let started = Instant::now();
    let waited = Process::new(work, 0.3).start()?;
    let ended = Process::new(work, 30.0).daemon(true).start()?;
    println!("non-daemon child {} (waited for at exit)", waited.pid());
    println!("daemon child {} (terminated at exit)", ended.pid());
    println!(
        "main done after {:.2} s; leaving",
        started.elapsed().as_secs_f64()
    );
    // Returning from main runs brood's exit hook: it waits ~0.3 s for the
    // first child and ends the second at once.
    Ok(())
}
