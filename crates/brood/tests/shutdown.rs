//! Shutdown is one event: a program whose own loop restarts dead workers,
//! under `signals::graceful`, gets SIGTERM. The sweep ends the workers, the
//! loop sees them die and restarts them — and those starts are refused
//! (`Error::ShuttingDown`), so no worker escapes its `OnExit`.

mod support;

use brood::{Command, Error, OnExit, Signal};
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;
use support::*;

/// The program: three `sleep` workers ended at exit (`Terminate`), restarted
/// by a busy loop whenever one has died. Reports each start on `out`, and how
/// the loop ended.
fn restart_loop(mut out: std::io::PipeWriter) -> ! {
    brood::signals::graceful(&[Signal::TERM]).unwrap();
    let start = || {
        Command::new("sleep")
            .arg("60")
            .on_exit(OnExit::Terminate {
                grace: Duration::from_millis(500),
            })
            .spawn()
    };
    let mut workers: Vec<_> = (0..3).map(|_| start().unwrap()).collect();
    for w in &workers {
        writeln!(out, "started {}", w.pid()).unwrap();
    }
    writeln!(out, "ready").unwrap();
    loop {
        for w in workers.iter_mut() {
            if let Ok(Some(_)) = w.poll() {
                match start() {
                    Ok(new) => {
                        let _ = writeln!(out, "started {}", new.pid());
                        *w = new;
                    }
                    Err(Error::ShuttingDown { .. }) => {
                        let _ = writeln!(out, "refused");
                        // The sweep finishes and the process dies of SIGTERM.
                        brood::wait_for_shutdown(None);
                        loop {
                            std::thread::park();
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(out, "error {e}");
                        brood::exit_now(3);
                    }
                }
            }
        }
        std::thread::yield_now();
    }
}

#[test]
fn a_restart_loop_under_graceful_leaves_no_process_behind() {
    require_own_process();
    become_subreaper();
    for trial in 0..5 {
        let (r, w) = std::io::pipe().unwrap();
        // SAFETY: the child runs the restart loop and never returns here.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            drop(r);
            restart_loop(w);
        }
        drop(w);
        let program = pid as u32;
        let mut cleanup = Cleanup::default();
        cleanup.add(program);
        let mut lines = BufReader::new(r).lines();
        let mut started = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line == "ready" {
                break;
            }
            started.push(line.trim_start_matches("started ").parse::<u32>().unwrap());
        }
        for &p in &started {
            cleanup.add(p);
        }
        // SAFETY: signalling the program this test forked.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        // Everything it wrote until it died.
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        for l in &rest {
            if let Some(p) = l.strip_prefix("started ") {
                cleanup.add(p.parse().unwrap());
            }
        }
        assert!(
            wait_exit(program, Duration::from_secs(10)),
            "trial {trial}: the program lives on"
        );
        reap_if_ours(program);
        assert!(
            !rest.iter().any(|l| l.starts_with("error")),
            "trial {trial}: {rest:?}"
        );
        // Every worker it ever started is gone: none was re-parented to us alive.
        let left: Vec<u32> = cleanup.0[1..]
            .iter()
            .copied()
            .filter(|&p| {
                wait_exit(p, Duration::from_secs(2));
                alive(p)
            })
            .collect();
        assert!(
            left.is_empty(),
            "trial {trial}: workers escaped their OnExit: {left:?} ({rest:?})"
        );
    }
}
