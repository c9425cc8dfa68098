// Replaces a data-analysis job with multiprocessing.Pool:
//
//     def stats(chunk): ...                       # per-chunk count, mean, min, max
//     with Pool(2) as pool:
//         results = pool.map(stats, chunks)       # one bad chunk raises and the
//                                                 # whole map fails; a worker that
//                                                 # dies or hangs makes it hang
//
// With brood each item gets its own result: a panicking task fails only its
// chunk (TaskError::Panicked), a task past the timeout has its worker killed
// and replaced (TaskError::Timeout), and the other chunks' statistics arrive.
//
// Run: cargo run -p brood --example pool_stats

use std::time::Duration;

use brood::{Pool, TaskError};

/// Per-chunk statistics: (count, mean, min, max).
fn stats(chunk: (u32, Vec<f64>)) -> (usize, f64, f64, f64) {
    let (id, xs) = chunk;
    if id == 3 {
        panic!("chunk {id} holds a value the parser cannot read");
    }
    if id == 5 {
        std::thread::sleep(Duration::from_secs(30)); // a stuck task
    }
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (n, mean, min, max)
}

fn main() -> Result<(), brood::Error> {
    // A task's panic comes back in TaskError::Panicked, with where it
    // happened; the worker prints nothing (BROOD_PRINT_PANICS=1 to see it).
    brood::init();
    // Eight chunks of a deterministic series.
    let chunks: Vec<(u32, Vec<f64>)> = (0..8)
        .map(|c| {
            let xs = (0..1000)
                .map(|i| ((c * 1000 + i) % 97) as f64 / 3.0)
                .collect();
            (c, xs)
        })
        .collect();
    let pool = Pool::builder(2)
        .task_timeout(Duration::from_millis(500))
        .build()?;
    let results = pool.map(stats, chunks)?;
    println!("chunk  count    mean     min     max");
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok((n, mean, min, max)) => {
                println!("{i:>5} {n:>6} {mean:>7.2} {min:>7.2} {max:>7.2}")
            }
            Err(TaskError::Panicked { message, location }) => {
                let at = location.as_deref().unwrap_or("?");
                println!("{i:>5} failed at {at}: {message}")
            }
            Err(TaskError::Timeout { timeout, .. }) => {
                println!("{i:>5} timed out after {timeout:?}; its worker was replaced")
            }
            Err(e) => println!("{i:>5} failed: {e}"),
        }
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!("{ok} of {} chunks done", results.len());
    Ok(())
}
