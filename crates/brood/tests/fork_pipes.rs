//! A `Process` forked (`StartMethod::Fork`) while other children's pipes are
//! open in the parent does not keep the parent's ends of them: a `cat` whose
//! stdin the parent closes sees its end of input at once, not when an
//! unrelated Fork child exits. (From another thread this happens at random;
//! here it is made to happen every time, on one thread.)

mod support;

use brood::{Command, Process, StartMethod, Stdio};
use std::time::Duration;

brood::init_before_main!();

fn park(_: ()) -> u8 {
    support::park()
}

/// Starts a Fork child that parks, then closes the parent's end of `p`'s
/// pipe (`close`): `p` must end within 5 s, seeing its pipe's other end go.
fn ends_once_its_pipe_closes(mut p: brood::Popen, close: fn(&mut brood::Popen), what: &str) {
    let forked = Process::new(park, ())
        .start_method(StartMethod::Fork)
        .start()
        .unwrap();
    let mut clean = support::Cleanup::default();
    clean.add(forked.pid());
    close(&mut p);
    let status = p.wait_timeout(Duration::from_secs(5)).unwrap();
    assert!(status.is_some(), "{what}: the Fork child holds its pipe");
    forked.kill().unwrap();
    assert!(forked.join().is_err());
    clean.0.clear();
}

#[test]
fn a_fork_child_does_not_hold_another_childs_stdin() {
    let cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    ends_once_its_pipe_closes(cat, |p| drop(p.stdin.take()), "cat never saw its input end");
}

#[test]
fn a_fork_child_does_not_hold_another_childs_stdout() {
    // `yes` writes until its stdout's last reader is gone: then EPIPE ends it.
    let yes = Command::new("yes").stdout(Stdio::piped()).spawn().unwrap();
    ends_once_its_pipe_closes(yes, |p| drop(p.stdout.take()), "yes never lost its reader");
}

/// `fork_with` is `os.fork`: its child keeps every descriptor, the
/// parent's pipe ends included (it may use them).
#[test]
fn a_fork_with_child_keeps_the_pipes_it_may_use() {
    use std::io::Read;
    let mut echo = Command::new("echo")
        .arg("hello")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = echo.stdout.take().unwrap();
    let child = brood::fork_with(move || {
        let mut text = String::new();
        match out.read_to_string(&mut text) {
            Ok(_) if text == "hello\n" => 0,
            _ => 1,
        }
    })
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    echo.wait().unwrap();
}
