// Replaces the field report's subprocess.Popen snippet, where the child keeps
// running after the parent exits, and what Python offers against it
// (preexec_fn with prctl(PR_SET_PDEATHSIG), or a try/finally that kills):
//
//     p = subprocess.Popen(["sleep", "1"])    # outlives us: nobody waits for it
//     sys.exit(0)
//
// With brood each child says what becomes of it: OnExit::Detach (the default,
// Python's behaviour), or OnParentDeath::Signal so it dies with its parent even
// when the parent is SIGKILLed, and OnExit::Terminate for a normal exit.
//
// Run: cargo run -p brood --example popen_outlives_parent

use std::time::Duration;

use brood::{Command, OnExit, OnParentDeath, Signal};

fn main() -> Result<(), brood::Error> {
    brood::init();
    // Python's default: it lives on after we leave (briefly, in this example).
    let detached = Command::new("sleep").arg("1").spawn()?;
    // Tied to us: ended when we exit, killed if we die.
    let tied = Command::new("sleep")
        .arg("30")
        .on_exit(OnExit::Terminate {
            grace: Duration::from_millis(500),
        })
        .on_parent_death(OnParentDeath::Signal(Signal::KILL))
        .spawn()?;
    println!("detached {} keeps running after we exit", detached.pid());
    println!("tied {} is terminated as we exit", tied.pid());
    brood::exit(0)
}
