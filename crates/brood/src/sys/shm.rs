//! Shared memory between two processes: a sealed `memfd` mapped by both.
//!
//! [`SharedCounters`] is a page of atomic counters that one process writes and
//! another reads (a pool worker's progress). The creator seals the file against
//! growing and shrinking, and the other side refuses a file that is not sealed
//! against shrinking: an unsealed one could be cut short under its mapping and
//! fault on access.
//!
//! [`SharedWords`] is the same mechanism for a page of `AtomicU64`s that several
//! processes read and write (the fork server's spare slots): made once by one
//! process, inherited by its forked children as a mapping, handed to another
//! process as a descriptor.
//!
//! # References
//! memfd_create(2), fcntl(2) (`F_ADD_SEALS`, `F_GET_SEALS`), mmap(2).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

/// The counters of one shared page.
pub type Counters = [AtomicU64; 2];
const SIZE: usize = std::mem::size_of::<Counters>();

/// Two `AtomicU64`s in memory shared with another process.
pub struct SharedCounters {
    ptr: NonNull<Counters>,
}

// SAFETY: the mapping is only accessed through atomics, and lives until Drop.
unsafe impl Send for SharedCounters {}
// SAFETY: as above.
unsafe impl Sync for SharedCounters {}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl SharedCounters {
    /// A fresh sealed page of zeroed counters, and its descriptor for the other
    /// process.
    pub fn create() -> io::Result<(SharedCounters, OwnedFd)> {
        // SAFETY: the name is a valid C string; the flags are valid.
        let fd = check(unsafe {
            libc::memfd_create(
                c"brood-shared".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        })?;
        // SAFETY: memfd_create just returned this descriptor, which nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain system calls on our own descriptor.
        unsafe {
            check(libc::ftruncate(fd.as_raw_fd(), SIZE as libc::off_t))?;
            check(libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
            ))?;
        }
        let page = SharedCounters::map(fd.as_raw_fd())?;
        Ok((page, fd))
    }

    /// The page behind another process's descriptor, which must be sealed
    /// against shrinking and large enough.
    pub fn open(fd: BorrowedFd<'_>) -> io::Result<SharedCounters> {
        // SAFETY: F_GET_SEALS on a descriptor we hold.
        let seals = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
        if seals & libc::F_SEAL_SHRINK == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the shared page is not sealed against shrinking",
            ));
        }
        // SAFETY: fstat into a zeroed struct we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        if (st.st_size as usize) < SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the shared page is too small",
            ));
        }
        SharedCounters::map(fd.as_raw_fd())
    }

    fn map(fd: libc::c_int) -> io::Result<SharedCounters> {
        // SAFETY: a new shared mapping of SIZE bytes of a file at least that long
        // (sealed against shrinking); the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<Counters>()).ok_or_else(io::Error::last_os_error)?;
        Ok(SharedCounters { ptr })
    }

    /// The counters.
    pub fn get(&self) -> &Counters {
        // SAFETY: the mapping is page-aligned, SIZE bytes long, zero-filled at
        // creation (a valid `[AtomicU64; 2]`), and mapped until Drop.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for SharedCounters {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `map`; no reference to
        // it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), SIZE) };
    }
}

/// One page of `AtomicU64`s shared between processes (see the module doc).
pub struct SharedWords {
    ptr: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: the mapping is only accessed through atomics, and lives until Drop.
unsafe impl Send for SharedWords {}
// SAFETY: as above.
unsafe impl Sync for SharedWords {}

/// The bytes of a [`SharedWords`] mapping: one page.
const PAGE: usize = 4096;

impl SharedWords {
    /// The most words a [`SharedWords`] page holds.
    pub const MAX: usize = PAGE / std::mem::size_of::<AtomicU64>();

    /// A fresh sealed page of zeroed words, and its descriptor for another
    /// process.
    pub fn create() -> io::Result<(SharedWords, OwnedFd)> {
        // SAFETY: the name is a valid C string; the flags are valid.
        let fd = check(unsafe {
            libc::memfd_create(
                c"brood-words".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        })?;
        // SAFETY: memfd_create just returned this descriptor, which nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain system calls on our own descriptor.
        unsafe {
            check(libc::ftruncate(fd.as_raw_fd(), PAGE as libc::off_t))?;
            check(libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
            ))?;
        }
        let page = SharedWords::map(fd.as_raw_fd())?;
        Ok((page, fd))
    }

    /// The page behind another process's descriptor, which must be sealed
    /// against shrinking and a page long.
    pub fn open(fd: BorrowedFd<'_>) -> io::Result<SharedWords> {
        // SAFETY: F_GET_SEALS on a descriptor we hold.
        let seals = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
        if seals & libc::F_SEAL_SHRINK == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the shared page is not sealed against shrinking",
            ));
        }
        // SAFETY: fstat into a zeroed struct we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        if (st.st_size as usize) < PAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the shared page is too small",
            ));
        }
        SharedWords::map(fd.as_raw_fd())
    }

    fn map(fd: libc::c_int) -> io::Result<SharedWords> {
        // SAFETY: a new shared mapping of one page of a file at least that
        // long (sealed against shrinking); the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(io::Error::last_os_error)?;
        Ok(SharedWords {
            ptr,
            len: SharedWords::MAX,
        })
    }

    /// The words.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned, `len` words long, zero-filled at
        // creation (valid `AtomicU64`s), and mapped until Drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `map`; no reference to
        // it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), PAGE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::sync::atomic::Ordering;

    #[test]
    fn both_mappings_see_the_same_counters_and_an_unsealed_file_is_refused() {
        let (mine, fd) = SharedCounters::create().unwrap();
        let theirs = SharedCounters::open(fd.as_fd()).unwrap();
        mine.get()[1].store(42, Ordering::Release);
        assert_eq!(theirs.get()[1].load(Ordering::Acquire), 42);
        assert_eq!(theirs.get()[0].load(Ordering::Acquire), 0);
        let plain = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(SharedCounters::open(plain.as_fd()).is_err());
    }

    #[test]
    fn a_page_of_words_is_shared_with_a_second_mapping_and_a_forked_child() {
        let (mine, fd) = SharedWords::create().unwrap();
        let theirs = SharedWords::open(fd.as_fd()).unwrap();
        assert_eq!(mine.words().len(), SharedWords::MAX);
        mine.words()[SharedWords::MAX - 1].store(7, Ordering::Release);
        assert_eq!(
            theirs.words()[SharedWords::MAX - 1].load(Ordering::Acquire),
            7
        );
        // A forked child writes through the mapping it inherited.
        // SAFETY: the child only stores to an atomic and _exits.
        match unsafe { crate::sys::fork::fork() }.unwrap() {
            crate::sys::fork::Forked::Child => {
                mine.words()[3].store(99, Ordering::SeqCst);
                crate::sys::fork::exit_now(0)
            }
            crate::sys::fork::Forked::Parent(pid) => {
                let pid = rustix::process::Pid::from_raw(pid as i32);
                rustix::process::waitpid(pid, rustix::process::WaitOptions::empty()).unwrap();
            }
        }
        assert_eq!(theirs.words()[3].load(Ordering::SeqCst), 99);
        let plain = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(SharedWords::open(plain.as_fd()).is_err());
    }
}
