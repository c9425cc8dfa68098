//! Changing this process's environment, which is only sound while no other
//! thread can read it (`setenv(3)`/`unsetenv(3)` are not thread-safe, hence
//! `std::env::remove_var` is `unsafe` since Rust 2024).
//!
//! # References
//! unsetenv(3), proc_pid_stat(5) (`num_threads`).

/// Removes `name` from the environment if this process has a single thread
/// (then nothing can read the environment meanwhile); returns whether it did.
/// brood calls it from `init`, which runs first in `main` or before it.
pub fn remove_if_single_threaded(name: &str) -> bool {
    if super::fork::thread_count().ok() != Some(1) {
        return false;
    }
    // SAFETY: this process has one thread (checked just above, and the caller
    // is that thread), so no other thread reads or writes the environment.
    unsafe { std::env::remove_var(name) };
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_threaded_process_keeps_its_environment() {
        // With a second thread running, nothing is removed.
        let held = std::thread::spawn(std::thread::park);
        assert!(!super::remove_if_single_threaded("PATH"));
        assert!(std::env::var_os("PATH").is_some());
        held.thread().unpark();
        held.join().unwrap();
    }
}
