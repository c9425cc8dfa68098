// Replaces a shell pipeline built from Popen objects:
//
//     seq = Popen(["seq", "1", "100000"], stdout=PIPE)
//     gz = Popen(["gzip", "-c"], stdin=seq.stdout, stdout=PIPE)
//     wc = Popen(["wc", "-c"], stdin=gz.stdout, stdout=PIPE)
//     seq.stdout.close(); gz.stdout.close()   # or gzip never sees EOF
//     print(wc.communicate()[0])
//
// With brood a child's stdout pipe moves into the next child's stdin: the
// parent keeps no copy of the pipe, so EOF travels down the line by itself,
// and each stage is waited for and reported.
//
// Run: cargo run -p brood --example pipeline

use brood::{Command, Stdio};

fn main() -> Result<(), brood::Error> {
    brood::init();
    let mut seq = Command::new("seq")
        .args(["1", "100000"])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut gzip = Command::new("gzip")
        .arg("-c")
        .stdin(seq.stdout.take().expect("seq's stdout is piped"))
        .stdout(Stdio::piped())
        .spawn()?;
    let mut wc = Command::new("wc")
        .arg("-c")
        .stdin(gzip.stdout.take().expect("gzip's stdout is piped"))
        .stdout(Stdio::piped())
        .spawn()?;
    let (out, _) = wc.communicate(None, None)?;
    for (name, p) in [("seq", &seq), ("gzip", &gzip)] {
        let st = p.wait()?;
        assert!(st.success(), "{name} failed: {st}");
    }
    let bytes = String::from_utf8_lossy(&out).trim().to_string();
    println!("seq 1 100000 | gzip -c | wc -c = {bytes}");
    Ok(())
}
