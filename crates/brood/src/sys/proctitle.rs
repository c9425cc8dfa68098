//! The name `ps`, `top` and `pgrep` show for a process brood made: its command
//! name (`comm`, 15 bytes, `PR_SET_NAME`) and its command line (the bytes
//! between `arg_start` and `arg_end` of its memory, which `/proc/<pid>/cmdline`
//! reads).
//!
//! A fork-server child is a fork of the server, so without this it would show
//! the server's name. Its command line is rewritten in place, as
//! `setproctitle(3)` does: the title is written over the argument area and the
//! rest of the area is filled with NUL bytes (a title longer than the area is
//! cut). `std::env::args()` in that process then reads the title too.
//!
//! # References
//! prctl(2) (`PR_SET_NAME`), proc_pid_stat(5) (fields 48–49, `arg_start`,
//! `arg_end`), proc_pid_cmdline(5).

use std::io;

/// Where this process's command line lives in its memory.
#[derive(Copy, Clone, Debug)]
pub struct ArgArea {
    start: usize,
    end: usize,
}

impl ArgArea {
    /// Reads `arg_start` and `arg_end` from `/proc/self/stat` (read once, before
    /// forking: the children inherit the same layout).
    pub fn locate() -> io::Result<ArgArea> {
        let stat = super::procfs::stat_self().map_err(io::Error::other)?;
        let (start, end) = stat.arg_area.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "/proc/self/stat shows no argument area",
            )
        })?;
        Ok(ArgArea {
            start: start as usize,
            end: end as usize,
        })
    }

    /// Shows `title` as this process's command line and as its command name
    /// (see [`set_comm`]).
    pub fn set_title(&self, title: &str) {
        set_comm(title);
        let len = self.end - self.start;
        let text = &title.as_bytes()[..title.len().min(len - 1)];
        // SAFETY: [start, end) is this process's own argument area, as the
        // kernel reports it: memory the loader placed on our stack, readable and
        // writable, that nothing in the process frees. The copy is one thread
        // writing plain bytes; at worst a concurrent reader of the arguments sees
        // the new title.
        unsafe {
            let area = self.start as *mut u8;
            std::ptr::copy_nonoverlapping(text.as_ptr(), area, text.len());
            std::ptr::write_bytes(area.add(text.len()), 0, len - text.len());
        }
    }
}

/// Sets this process's command name (`comm`, what `ps -e`, `top` and `pgrep`
/// show) for `title` (`/usr/local/bin/myapp (brood worker 3)`): its first 15
/// bytes from the program's base name on (`myapp (brood wo`), as the kernel
/// names an executed program after its file. Without it a re-executed child
/// is `exe` (it runs `/proc/self/exe`) and a forked one has its parent's
/// name.
pub fn set_comm(title: &str) {
    let title = title.as_bytes();
    let from = comm_start(title);
    // On the stack: this runs in freshly forked children, where every heap
    // page written is a copy-on-write fault.
    let mut comm = [0u8; 16];
    for (slot, &b) in comm.iter_mut().zip(title[from..].iter().take(15)) {
        *slot = b;
    }
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // from a buffer we own.
    unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// Where the program's base name begins in `title`: after the last `/` of
/// the part before ` (` (the program; what follows is brood's words).
fn comm_start(title: &[u8]) -> usize {
    let program_end = title
        .windows(2)
        .position(|w| w == b" (")
        .unwrap_or(title.len());
    title[..program_end]
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_name_begins_with_the_base_name() {
        fn comm(t: &str) -> &str {
            &t[super::comm_start(t.as_bytes())..]
        }
        assert_eq!(
            comm("/usr/local/bin/myapp (brood worker 3)"),
            "myapp (brood worker 3)"
        );
        assert_eq!(
            comm("myapp (brood fork server)"),
            "myapp (brood fork server)"
        );
        assert_eq!(comm("./target/debug/app"), "app");
        assert_eq!(comm("app (brood a/b)"), "app (brood a/b)");
    }

    use super::super::fork::{self, Forked};
    use super::super::{pidfd, pipe};
    use std::os::fd::AsFd;

    #[test]
    fn ps_sees_the_title_of_a_forked_child() {
        let area = super::ArgArea::locate().unwrap();
        let (ready_r, ready_w) = pipe::pipe().unwrap();
        let (done_r, done_w) = pipe::pipe().unwrap();
        // SAFETY: the child only rewrites its own title, reports and waits.
        match unsafe { fork::fork() }.unwrap() {
            Forked::Child => {
                drop((ready_r, done_w));
                area.set_title("brood-test (a title)");
                let _ = pipe::write_all(ready_w.as_fd(), b"x");
                // Wait until the parent has read /proc (it closes its end).
                let _ = pipe::read(done_r.as_fd(), &mut [0u8; 1]);
                fork::exit_now(0)
            }
            Forked::Parent(pid) => {
                drop((ready_w, done_r));
                let mut buf = [0u8; 1];
                let n = pipe::read(ready_r.as_fd(), &mut buf).unwrap();
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
                drop(done_w);
                let fd = pidfd::open(pid).unwrap();
                pidfd::wait_exited(fd.as_fd(), None).unwrap();
                let status = pidfd::try_reap(fd.as_fd()).unwrap();
                assert_eq!((n, status), (1, pidfd::Reap::Exited(0)));
                let shown = String::from_utf8_lossy(&cmdline);
                assert_eq!(shown.trim_end_matches('\0'), "brood-test (a title)");
                assert_eq!(comm.trim_end(), "brood-test (a t");
            }
        }
    }
}
