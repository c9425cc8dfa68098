//! What `ps -e`, `top` and `pgrep` show (`/proc/<pid>/comm`) for the
//! processes brood makes: the program's base name, then brood's words — never
//! `exe` (a re-executed child runs `/proc/self/exe`) nor the first 15 bytes
//! of the program's directory.

use brood::{Pool, Process, StartMethod};

brood::init_before_main!();

/// This process's command name, as the child reads it.
fn my_comm(_: ()) -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

/// What `comm` should begin with: the test binary's base name (up to the
/// 15 bytes `comm` holds).
fn base_name() -> String {
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_string_lossy().into_owned();
    name.chars().take(15).collect()
}

/// `comm` holds 15 bytes: the base name, or as much of it (and brood's words
/// after it) as fits.
fn assert_named(comm: &str, what: &str) {
    let base = base_name();
    assert!(
        base.starts_with(comm) || comm.starts_with(&base),
        "{what}: comm {comm:?}, program {base:?}"
    );
}

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn children_of_every_start_method_begin_with_the_program_name() {
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let comm = Process::new(my_comm, ())
            .start_method(method)
            .start()
            .unwrap()
            .join()
            .unwrap();
        assert_named(&comm, &format!("{method:?} child"));
    }
}

#[test]
fn the_fork_server_and_pool_workers_begin_with_the_program_name() {
    let spawned = Pool::builder(1)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap();
    assert_named(&comm_of(spawned.worker_pids()[0]), "Spawn worker");
    let served = Pool::builder(1)
        .start_method(StartMethod::ForkServer)
        .build()
        .unwrap();
    let server = brood::fork_server_pid().expect("a fork server");
    assert_named(&comm_of(server), "fork server");
    assert_named(&comm_of(served.worker_pids()[0]), "ForkServer worker");
}
