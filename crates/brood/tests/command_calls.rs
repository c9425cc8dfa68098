//! The calls a `subprocess` user expects of `Command`: a failure that says
//! what the program wrote, the policy `run` really uses, a cloneable template.

mod support;

use brood::{Command, Error, SpawnError, Stdio, Tree};
use std::io::Read;
use std::time::Duration;

/// `Error::Failed` shows the tail of the captured stderr (the last 5 lines),
/// as Python's `CalledProcessError` carries it.
#[test]
fn failed_message_ends_with_the_stderr_tail() {
    let script = "for i in 1 2 3 4 5 6 7 8; do echo \"line $i\" >&2; done; exit 3";
    let err = Command::new("sh").args(["-c", script]).run().unwrap_err();
    let text = err.to_string();
    let Error::Failed { pid, stderr, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(stderr.len(), 8 * 7);
    assert_eq!(
        text,
        format!(
            "\"sh\" (pid {pid}) exited with 3; its stderr ends: \"…line 4\\nline 5\\nline 6\\nline 7\\nline 8\""
        )
    );
    // Nothing written: nothing added.
    let err = Command::new("sh").args(["-c", "exit 4"]).run().unwrap_err();
    assert!(err.to_string().ends_with("exited with 4"), "{err}");
    // One long line: its last 500 bytes.
    let err = Command::new("sh")
        .args(["-c", "head -c 2000 /dev/zero | tr '\\0' x >&2; exit 5"])
        .run()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.ends_with(&format!("\"…{}\"", "x".repeat(500))),
        "{text}"
    );
}

/// The child's process group and its pid, as it reads them from /proc.
fn group_and_pid(cmd: &mut Command) -> (String, String) {
    let out = cmd
        .args(["-c", "cut -d' ' -f5 /proc/$$/stat; echo $$"])
        .run()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(String::from);
    (lines.next().unwrap(), lines.next().unwrap())
}

/// `policy()` says what `run` will do: with a timeout, a group of its own.
#[test]
fn policy_reports_the_group_a_timeout_makes() {
    let mut cmd = Command::new("sh");
    cmd.timeout(Duration::from_secs(60));
    assert_eq!(cmd.policy().tree, Tree::Group);
    let (pgrp, pid) = group_and_pid(&mut cmd);
    assert_eq!(pgrp, pid, "run with a timeout: the program leads its group");

    let mut cmd = Command::new("sh");
    cmd.timeout(Duration::from_secs(60)).tree(Tree::Own);
    assert_eq!(cmd.policy().tree, Tree::Own);
    let (pgrp, pid) = group_and_pid(&mut cmd);
    assert_ne!(pgrp, pid, "an explicit Tree::Own is kept");

    let mut cmd = Command::new("sh");
    cmd.timeout(Duration::from_secs(60)).process_group(0);
    assert_eq!(cmd.policy().tree, Tree::Own);
    assert_eq!(Command::new("sh").policy().tree, Tree::Own);
}

/// A clone is the same command, changed on its own.
#[test]
fn a_cloned_command_is_a_template() {
    let mut base = Command::new("sh");
    base.arg("-c").env("WHO", "clone");
    let mut one = base.clone();
    one.arg("echo one $WHO");
    let mut two = base.clone();
    two.arg("echo two $WHO").env("WHO", "changed");
    assert_eq!(one.run().unwrap().stdout, b"one clone\n");
    assert_eq!(two.run().unwrap().stdout, b"two changed\n");
    assert_eq!(base.get_args().count(), 1);
    // Piped streams: a new pipe at each start.
    let mut piped = Command::new("echo");
    piped.arg("again").stdout(Stdio::piped());
    for mut cmd in [piped.clone(), piped.clone(), piped] {
        let mut p = cmd.spawn().unwrap();
        let mut text = String::new();
        p.stdout.take().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "again\n");
        p.wait().unwrap();
    }
}

/// A descriptor given to a command is shared by its clones, and stays open
/// until the last of them is gone.
#[test]
fn a_clone_shares_the_descriptor_it_was_given() {
    let path = std::env::temp_dir().join(format!("brood-clone-{}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo $N"]).stdout(file);
    let mut copy = cmd.clone();
    cmd.env("N", "1").run().unwrap();
    drop(cmd);
    copy.env("N", "2").run().unwrap();
    drop(copy);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n");
    std::fs::remove_file(&path).unwrap();
}

/// `pre_exec` closures cross into the clone: its child runs them too.
#[test]
fn a_clone_runs_the_pre_exec_closures() {
    let mut cmd = Command::new("true");
    // SAFETY: the closure only builds an error value.
    unsafe { cmd.pre_exec(|| Err(std::io::Error::from_raw_os_error(42))) };
    for mut c in [cmd.clone(), cmd] {
        match c.spawn() {
            Err(Error::Spawn {
                cause: SpawnError::Setup { step, source },
                ..
            }) => {
                assert_eq!(step, "pre_exec");
                assert_eq!(source.raw_os_error(), Some(42));
            }
            other => panic!("{other:?}"),
        }
    }
}
