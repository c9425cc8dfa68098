//! Shared memory between two processes: a sealed `memfd` mapped by both.
//!
//! [`Region`] is data that one process writes once, seals, and others map
//! read-only (a pool's shared input and output).
//!
//! [`SharedCounters`] is a page of atomic counters that one process writes and
//! another reads (a pool worker's progress). The creator seals the file against
//! growing and shrinking, and the other side refuses a file that is not sealed
//! against shrinking: an unsealed one could be cut short under its mapping and
//! fault on access.
//!
//! # References
//! memfd_create(2), fcntl(2) (`F_ADD_SEALS`, `F_GET_SEALS`), mmap(2).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

/// The counters of one shared page.
pub type Counters = [AtomicU64; 8];
const SIZE: usize = std::mem::size_of::<Counters>();

/// Eight `AtomicU64`s in memory shared with another process.
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

/// A new `memfd` of `len` zero bytes that may be sealed.
fn memfd(name: &std::ffi::CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: the name is a valid C string; the flags are valid.
    let fd = check(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: memfd_create just returned this descriptor, which nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: ftruncate on our own descriptor.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
    Ok(fd)
}

/// Writes all of `data` to `fd` from offset `start` on.
fn write_at(fd: BorrowedFd<'_>, data: &[u8], start: usize) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        let rest = &data[done..];
        let at = libc::off_t::try_from(start + done)
            .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: writing `rest` (valid for its length) to a file we hold.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len(), at) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        done += n as usize;
    }
    Ok(())
}

/// `F_ADD_SEALS` on our own `memfd`.
fn seal(fd: BorrowedFd<'_>, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: an fcntl with an integer argument on a descriptor we hold.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }).map(drop)
}

/// Refuses another process's descriptor unless it carries the seals
/// `needed` and holds at least `len` bytes (`what` names it in the error).
fn check_received(
    fd: BorrowedFd<'_>,
    needed: libc::c_int,
    len: usize,
    what: &str,
) -> io::Result<()> {
    // SAFETY: F_GET_SEALS on a descriptor we hold.
    let seals = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidData, why));
    if seals & needed != needed {
        return refuse(format!("{what} is not sealed as it must be"));
    }
    // SAFETY: fstat into a zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    if (st.st_size as u64) < len as u64 {
        return refuse(format!("{what} is shorter than {len} bytes"));
    }
    Ok(())
}

impl SharedCounters {
    /// A fresh sealed page of zeroed counters, and its descriptor for the other
    /// process.
    pub fn create() -> io::Result<(SharedCounters, OwnedFd)> {
        let fd = memfd(c"brood-shared", SIZE)?;
        seal(
            fd.as_fd(),
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        )?;
        let page = SharedCounters::map(fd.as_raw_fd())?;
        Ok((page, fd))
    }

    /// The page behind another process's descriptor, which must be sealed
    /// against shrinking and large enough.
    pub fn open(fd: BorrowedFd<'_>) -> io::Result<SharedCounters> {
        check_received(fd, libc::F_SEAL_SHRINK, SIZE, "the shared page")?;
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
        // creation (a valid `[AtomicU64; 3]`), and mapped until Drop.
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

/// A read-only mapping of a sealed `memfd`: bytes that another process may
/// map too, and that nobody can change, grow or shrink any more.
///
/// Made with [`RegionWriter`] (filled in place, then sealed), or opened from
/// a descriptor another process sent, which must carry the seals: a file that
/// could still be written would let the sender change data under a reader
/// that assumes it fixed, and one that could shrink would fault on access.
pub struct Region {
    /// `None` for an empty region (mmap(2) refuses a length of 0).
    ptr: Option<NonNull<u8>>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is read-only and sealed against writes, so shared
// references to its bytes from any thread are sound; it lives until Drop.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

/// The seals a [`Region`] needs: no writes, no size change, no unsealing.
const REGION_SEALS: libc::c_int =
    libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A `memfd` of a fixed size, mapped writable for its creator to fill, then
/// [sealed](RegionWriter::seal) into a [`Region`].
pub struct RegionWriter {
    ptr: Option<NonNull<u8>>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the writable mapping is reachable only through `&mut self`.
unsafe impl Send for RegionWriter {}

fn map(
    fd: &OwnedFd,
    len: usize,
    prot: libc::c_int,
    flags: libc::c_int,
) -> io::Result<Option<NonNull<u8>>> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: a new shared mapping of `len` bytes of a file at least that
    // long (created so, or checked by `Region::open`); the kernel picks the
    // address.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED | flags,
            fd.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(NonNull::new(ptr.cast::<u8>()))
}

fn unmap(ptr: Option<NonNull<u8>>, len: usize) {
    if let Some(p) = ptr {
        // SAFETY: unmapping exactly a mapping made by `map` with this length;
        // no reference into it outlives its owner, which is being dropped or
        // replaced.
        unsafe { libc::munmap(p.as_ptr().cast(), len) };
    }
}

impl RegionWriter {
    /// A zero-filled region of `len` bytes, writable until sealed.
    pub fn new(len: usize) -> io::Result<RegionWriter> {
        let fd = memfd(c"brood-shared-data", len)?;
        let ptr = map(&fd, len, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        Ok(RegionWriter { ptr, len, fd })
    }

    /// The bytes, to fill.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        match self.ptr {
            // SAFETY: `len` bytes mapped writable and zero-filled at creation,
            // only reachable through this `&mut self`.
            Some(p) => unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), self.len) },
            None => &mut [],
        }
    }

    /// Ends the writing: the writable mapping goes (F_SEAL_WRITE refuses to
    /// seal while one exists), the seals are set, and the bytes are mapped
    /// again read-only.
    pub fn seal(self) -> io::Result<Region> {
        let this = std::mem::ManuallyDrop::new(self);
        unmap(this.ptr, this.len);
        // SAFETY: moving the descriptor out of a value that is never dropped.
        let fd = unsafe { std::ptr::read(&this.fd) };
        seal(fd.as_fd(), REGION_SEALS)?;
        let ptr = map(&fd, this.len, libc::PROT_READ, 0)?;
        Ok(Region {
            ptr,
            len: this.len,
            fd,
        })
    }
}

impl Drop for RegionWriter {
    fn drop(&mut self) {
        unmap(self.ptr, self.len);
    }
}

impl Region {
    /// A sealed region holding a copy of `parts`, one after the other,
    /// written with `pwrite(2)` (one copy by the kernel, no page fault per
    /// page of a writable mapping) and mapped read-only.
    pub fn copy_of(parts: &[&[u8]]) -> io::Result<Region> {
        let len = parts.iter().map(|p| p.len()).sum();
        let fd = memfd(c"brood-result", len)?;
        let mut at = 0;
        for part in parts {
            write_at(fd.as_fd(), part, at)?;
            at += part.len();
        }
        seal(fd.as_fd(), REGION_SEALS)?;
        let ptr = map(&fd, len, libc::PROT_READ, 0)?;
        Ok(Region { ptr, len, fd })
    }

    /// The region behind a descriptor another process sent: it must be sealed
    /// against writing and shrinking and hold at least `len` bytes. Mapped
    /// with `MAP_POPULATE`, so that reading it costs no page fault per page.
    pub fn open(fd: OwnedFd, len: usize) -> io::Result<Region> {
        let needed = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK;
        check_received(fd.as_fd(), needed, len, "shared data")?;
        let ptr = map(&fd, len, libc::PROT_READ, libc::MAP_POPULATE)?;
        Ok(Region { ptr, len, fd })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self.ptr {
            // SAFETY: `len` bytes mapped read-only from a file sealed against
            // writing and shrinking: they stay valid and unchanged until Drop.
            Some(p) => unsafe { std::slice::from_raw_parts(p.as_ptr(), self.len) },
            None => &[],
        }
    }

    /// The descriptor, to send to another process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        unmap(self.ptr, self.len);
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
    fn a_sealed_region_reads_back_and_refuses_every_change() {
        let mut w = RegionWriter::new(3 * 4096 + 5).unwrap();
        w.bytes_mut()[4096] = 7;
        let r = w.seal().unwrap();
        assert_eq!(r.bytes().len(), 3 * 4096 + 5);
        assert_eq!((r.bytes()[4096], r.bytes()[0]), (7, 0));
        let fd = r.fd().try_clone_to_owned().unwrap();
        // SAFETY: plain calls on our own descriptor, expected to fail.
        unsafe {
            assert!(libc::ftruncate(fd.as_raw_fd(), 1) < 0, "shrunk");
            assert!(
                libc::write(fd.as_raw_fd(), [1u8].as_ptr().cast(), 1) < 0,
                "written"
            );
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            );
            assert_eq!(p, libc::MAP_FAILED, "mapped writable");
        }
        let again = Region::open(fd, 3 * 4096 + 5).unwrap();
        assert_eq!(again.bytes()[4096], 7);
        let short = r.fd().try_clone_to_owned().unwrap();
        assert!(Region::open(short, 4 * 4096).is_err());
        // An unsealed file is refused.
        let plain = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(Region::open(plain.into(), 1).is_err());
        assert!(
            RegionWriter::new(0)
                .unwrap()
                .seal()
                .unwrap()
                .bytes()
                .is_empty()
        );
    }
}
