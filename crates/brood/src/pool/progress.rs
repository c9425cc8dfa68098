//! A small page shared by the pool and one worker, where the worker counts the
//! items it has started and finished.
//!
//! Why: results travel in batches (one write per batch of small items, not per
//! item: that is most of the cost of a map of tiny functions), so when a worker
//! dies the results it had not yet sent say nothing about which item killed it.
//! These two counters do, and cost two memory stores per item. The worker makes
//! the page (a sealed `memfd`, so that it cannot shrink under the pool's
//! mapping) and hands its descriptor to the pool with its connection token.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// The shared counters: `[started, finished]`, each a running total over the
/// worker's life.
type Counters = [AtomicU64; 2];
const SIZE: usize = std::mem::size_of::<Counters>();

pub(super) struct Progress {
    ptr: NonNull<Counters>,
}

// SAFETY: the mapping is only accessed through atomics, and lives until Drop.
unsafe impl Send for Progress {}
// SAFETY: as above.
unsafe impl Sync for Progress {}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Progress {
    /// In the worker: a fresh sealed page, and its descriptor for the pool.
    pub(super) fn create() -> io::Result<(Progress, OwnedFd)> {
        // SAFETY: the name is a valid C string; the flags are valid.
        let fd = check(unsafe {
            libc::memfd_create(
                c"brood-pool-progress".as_ptr(),
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
        let progress = Progress::map(fd.as_raw_fd())?;
        Ok((progress, fd))
    }

    /// In the pool: the page behind a worker's descriptor, which must be sealed
    /// against shrinking (an unsealed one could be cut short under our mapping
    /// and fault on access).
    pub(super) fn open(fd: BorrowedFd<'_>) -> io::Result<Progress> {
        // SAFETY: F_GET_SEALS on a descriptor we hold.
        let seals = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
        if seals & libc::F_SEAL_SHRINK == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the worker's progress page is not sealed",
            ));
        }
        // SAFETY: fstat into a zeroed struct we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        if (st.st_size as usize) < SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the worker's progress page is too small",
            ));
        }
        Progress::map(fd.as_raw_fd())
    }

    fn map(fd: libc::c_int) -> io::Result<Progress> {
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
        Ok(Progress { ptr })
    }

    fn counters(&self) -> &Counters {
        // SAFETY: the mapping is page-aligned, SIZE bytes long, zero-filled at
        // creation (a valid `[AtomicU64; 2]`), and mapped until Drop.
        unsafe { self.ptr.as_ref() }
    }

    /// Items started and items finished, as the worker last wrote them.
    pub(super) fn read(&self) -> (u64, u64) {
        let c = self.counters();
        // `finished` first: a reader then never sees finished > started.
        let finished = c[1].load(Ordering::Acquire);
        (c[0].load(Ordering::Acquire), finished)
    }

    pub(super) fn started(&self, n: u64) {
        self.counters()[0].store(n, Ordering::Release);
    }

    pub(super) fn finished(&self, n: u64) {
        self.counters()[1].store(n, Ordering::Release);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `map`; no reference to
        // it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), SIZE) };
    }
}
