// Replaces the field report's comparison of sys.exit() and os._exit():
//
//     sys.exit(0)    # like the main logic finishing: exit handlers run,
//                    # daemon children are terminated, others waited for
//     os._exit(0)    # leaves at once: no handler runs, children untouched
//
// brood::exit(code) applies every live child's OnExit policy, then exits;
// brood::exit_now(code) leaves at once and touches no child.
//
// Run: cargo run -p brood --example exit_vs_exit_now -- exit      (or: exit_now)

use std::time::Duration;

use brood::Process;

fn nap(secs: f64) {
    std::thread::sleep(Duration::from_secs_f64(secs));
}

fn main() -> Result<(), brood::Error> {
    brood::init();
    let how = std::env::args().nth(1).unwrap_or_else(|| "exit".into());
    let daemon = Process::new(nap, 2.0).daemon(true).start()?;
    println!("daemon child {}", daemon.pid());
    match how.as_str() {
        "exit_now" => {
            println!("exit_now: the child is left running");
            brood::exit_now(0)
        }
        _ => {
            println!("exit: the child is terminated first");
            brood::exit(0)
        }
    }
}
