//! `Popen::communicate_async` and the async pipe ends on real pipes: 64 MiB
//! each way without deadlock, the timeout that keeps the partial output and
//! the child, and a cancelled call that loses nothing.
#![cfg(feature = "tokio")]

mod support;

use brood::{Command, Error, Stdio, Tree};
use std::time::Duration;
use support::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// 64 MiB of bytes that are not all alike, so that a reordering shows.
fn data() -> Vec<u8> {
    (0..64u32 << 20).map(|i| (i ^ (i >> 11)) as u8).collect()
}

#[test]
fn sixty_four_mib_in_and_out_and_on_stderr() {
    let input = data();
    let mut p = Command::new("sh")
        .args(["-c", "tee /dev/stderr"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = rt()
        .block_on(p.communicate_async(Some(&input), Some(Duration::from_secs(120))))
        .unwrap();
    assert!(out == input, "stdout differs ({} bytes)", out.len());
    assert!(err == input, "stderr differs ({} bytes)", err.len());
    assert_eq!(p.returncode(), Some(0));
}

#[test]
fn a_timeout_keeps_the_output_and_the_child_and_a_later_call_goes_on() {
    let rt = rt();
    let mut p = Command::new("sh")
        .args([
            "-c",
            "echo early; read line; echo \"got $line\"; exec sleep 30",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .tree(Tree::Group)
        .spawn()
        .unwrap();
    let mut cleanup = Cleanup::default();
    cleanup.add(p.pid());
    // `read` gets the input at the end of stdin (closed after it); then the
    // child sleeps, so it is still running at the timeout.
    let first =
        rt.block_on(p.communicate_async(Some(b"partial"), Some(Duration::from_millis(300))));
    match first {
        Err(Error::Timeout { stdout, pid, .. }) => {
            assert_eq!(stdout, b"early\ngot partial\n");
            assert_eq!(pid, p.pid());
        }
        other => panic!("{other:?}"),
    }
    assert!(alive(p.pid()), "a timeout leaves the child running");
    // A second call goes on from there, and times out again.
    let second = rt.block_on(p.communicate_async(None, Some(Duration::from_millis(300))));
    match second {
        Err(Error::Timeout { stdout, .. }) => assert_eq!(stdout, b"early\ngot partial\n"),
        other => panic!("{other:?}"),
    }
    p.kill().unwrap();
    let (out, _) = rt.block_on(p.communicate_async(None, None)).unwrap();
    assert_eq!(
        out, b"early\ngot partial\n",
        "the final result holds all output"
    );
    assert_eq!(p.returncode(), Some(-9));
    cleanup.0.clear();
}

#[test]
fn a_cancelled_call_loses_no_input_and_no_output() {
    // `cat` echoes as it reads, and blocks on a full stdout pipe while nobody
    // reads: the first call is cut off mid-stream by dropping its future.
    let input = data();
    let mut p = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rt = rt();
    let cut = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(50),
            p.communicate_async(Some(&input), None),
        )
        .await
    });
    assert!(cut.is_err(), "the call should still be running after 50 ms");
    assert!(
        alive(p.pid()),
        "dropping the future leaves the child running"
    );
    // The blocking call continues where the async one stopped.
    let (out, _) = p.communicate(None, Some(Duration::from_secs(120))).unwrap();
    assert!(
        out == input,
        "output differs: {} of {} bytes",
        out.len(),
        input.len()
    );
}

#[test]
fn async_pipe_ends_are_tokio_pipes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = rt();
    let mut p = Command::new("sh")
        .args(["-c", "tr a-z A-Z; echo bye >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Outside a runtime: a typed error, not a panic, and the pipe stays.
    assert!(p.take_stdout_async().is_err());
    let (out, err) = rt.block_on(async {
        let mut stdin = p.take_stdin_async().unwrap().unwrap();
        let mut stdout = p.take_stdout_async().unwrap().unwrap();
        let mut stderr = p.take_stderr_async().unwrap().unwrap();
        assert!(p.take_stdin_async().unwrap().is_none());
        let big = vec![b'a'; 4 << 20];
        let writer = async move {
            stdin.write_all(&big).await.unwrap();
        };
        let reader = async {
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).await.unwrap();
            let mut err = Vec::new();
            stderr.read_to_end(&mut err).await.unwrap();
            (out, err)
        };
        let ((), got) = tokio::join!(writer, reader);
        got
    });
    assert_eq!(out.len(), 4 << 20);
    assert!(out.iter().all(|&b| b == b'A'));
    assert_eq!(err, b"bye\n");
    assert!(p.wait().unwrap().success());
}
