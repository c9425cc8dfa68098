// Replaces the field report's os.fork snippet, where "parent" is printed twice:
//
//     pid = os.fork()
//     if pid == 0:
//         print("forked child")
//     print("parent")          # runs in the child too, unless it sits in `else:`
//
// brood::fork_with runs the closure in the child and ends the child with the
// closure's return value as its exit code: the child can never fall through
// into the parent's code.
//
// Run: cargo run -p brood --example fork_no_fallthrough

fn main() -> Result<(), brood::Error> {
    brood::init();
    let child = brood::fork_with(|| {
        println!("forked child {}", std::process::id());
        7 // the child's exit code
    })?;
    let status = child.wait()?;
    println!(
        "parent {} (child exited with {})",
        std::process::id(),
        status.exitcode()
    );
    Ok(())
}
