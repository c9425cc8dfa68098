//! How a function crosses a re-execution: as its offset from an anchor inside the
//! executable, checked against the identity of the executable on both sides.
//!
//! A `fn` pointer is the address of machine code in the loaded image. The parent
//! and a re-executed child (or the fork server) run the *same file*, which the
//! loader maps at a different base in each (ASLR) but with the same layout, so
//! `address - anchor` is the same number in both. Three checks make a wrong
//! number an error instead of a jump into garbage:
//!
//! 1. the sender refuses a function that does not lie in an executable mapping of
//!    the program file (a function in a shared library has no fixed offset);
//! 2. the request carries the identity of the sender's executable — device, inode,
//!    size, modification time and the anchor's offset from the load base — and the
//!    receiver compares it with its own;
//! 3. the receiver checks that `anchor + offset` lies in one of its own executable
//!    mappings of that file.
//!
//! The function and its *trampoline* (the per-type code that decodes the
//! argument and calls it) are paired here, in [`fn_ref`], from one generic
//! instantiation: that pairing is what makes the cast of a resolved address back
//! to the function's type sound, so it lives in this one module. Two shapes of
//! function cross ([`Crossing`]): `fn(A) -> R`, and `fn(&S, A) -> R` for a
//! pool worker's state.
//!
//! The image is read once per process image and cached without a lock: a child
//! forked while another thread was reading it must not wait on that thread.
//!
//! The request itself only ever arrives over a private channel (an inherited
//! socketpair whose peer is checked), so it is not attacker-controlled.
//!
//! # References
//! getauxval(3) (`AT_PHDR`, `AT_PHNUM`), elf(5) (`PT_PHDR`, `PT_LOAD`), proc_pid_maps(5).

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicPtr, Ordering};

/// Why a function cannot cross, or a received one cannot be run.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CrossingError {
    /// This process's executable could not be inspected.
    #[error("cannot read {what}: {cause}")]
    Unreadable {
        /// The file read.
        what: &'static str,
        /// The system's words.
        cause: String,
    },
    /// brood itself is not code of the executable file.
    #[error("brood is not linked into the executable itself (is it in a shared library?)")]
    NotInExecutable,
    /// The function lies outside the program's own code.
    #[error(
        "{what} at {addr:#x} is not code of the executable: only functions of the program \
         itself can cross a re-execution (not ones from a shared library)"
    )]
    ForeignFunction {
        /// "the function" or "its trampoline".
        what: &'static str,
        /// Its address in this process.
        addr: usize,
    },
    /// The reference was made by another executable file.
    #[error("the request was made by another executable ({sent}) than this one ({here})")]
    OtherExecutable {
        /// The sender's image, described.
        sent: String,
        /// Ours.
        here: String,
    },
    /// The offsets do not land in this executable's code.
    #[error("function offsets {trampoline:#x}/{func:#x} fall outside the executable's code")]
    OutsideCode {
        /// The trampoline's offset.
        trampoline: i64,
        /// The function's offset.
        func: i64,
    },
}

/// The code behind a [`fn_ref`]: decodes the argument, calls the function,
/// delivers the result (to `out` when the caller passed one), returns the exit
/// code for the child. One implementation per kind of child (a `Process`, a
/// pool task); `F` is the function's type.
pub trait Runner<F> {
    /// Runs `f` on the encoded `arg`.
    fn run(f: F, arg: Cow<'_, [u8]>, out: Option<BorrowedFd<'_>>) -> i32;
}

/// A function pointer type that can cross: its address, and the way back.
pub trait Crossing: Copy + 'static {
    /// The code address.
    fn addr(self) -> usize;
    /// The function of this type at `addr`.
    ///
    /// # Safety
    /// `addr` must be the address of a function of exactly this type in this
    /// process (as [`resolve`] establishes for a [`FnRef`] made from one).
    unsafe fn at(addr: usize) -> Self;
}

impl<A: 'static, R: 'static> Crossing for fn(A) -> R {
    fn addr(self) -> usize {
        self as usize
    }
    unsafe fn at(addr: usize) -> Self {
        // SAFETY: the caller promises a function of this type lives at `addr`;
        // a `fn` pointer is a code address of pointer size on every platform
        // brood supports.
        unsafe { std::mem::transmute::<*const (), fn(A) -> R>(addr as *const ()) }
    }
}

impl<S: 'static, A: 'static, R: 'static> Crossing for fn(&S, A) -> R {
    fn addr(self) -> usize {
        self as usize
    }
    unsafe fn at(addr: usize) -> Self {
        // SAFETY: as for `fn(A) -> R`.
        unsafe { std::mem::transmute::<*const (), fn(&S, A) -> R>(addr as *const ()) }
    }
}

/// The type-erased entry point a [`FnRef`] names: [`trampoline`] instantiated
/// for one `(F, Runner)`.
type Trampoline = fn(func: usize, arg: Cow<'_, [u8]>, out: RawFd) -> i32;

/// Casts `func` back to the `F` it was made from and runs it with `K`.
fn trampoline<F: Crossing, K: Runner<F>>(func: usize, arg: Cow<'_, [u8]>, out: RawFd) -> i32 {
    // SAFETY: `func` is an address that `resolve` accepted for a `FnRef` made by
    // `fn_ref::<F, K>` from an `F` together with this very instantiation of
    // `trampoline` (the only way a `FnRef` is made), in a process running the
    // same executable file; so it is that function here (see the module doc).
    let f = unsafe { F::at(func) };
    // SAFETY: a non-negative `out` is a descriptor the caller of
    // `Resolved::run` borrowed to us for the duration of this call.
    let out = (out >= 0).then(|| unsafe { BorrowedFd::borrow_raw(out) });
    K::run(f, arg, out)
}

/// A fixed point inside the executable. Its address is taken, so it is emitted.
#[inline(never)]
fn anchor() {}

/// The identity of the executable file and of its layout in memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    anchor_offset: u64,
}

/// A function, as it crosses: made by [`fn_ref`], run after [`resolve`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FnRef {
    image: ImageId,
    trampoline: i64,
    func: i64,
}

struct Image {
    id: ImageId,
    anchor: usize,
    /// Executable mappings of the program file: `[start, end)`.
    text: Vec<(usize, usize)>,
}

impl Image {
    fn contains(&self, addr: usize) -> bool {
        self.text.iter().any(|&(s, e)| (s..e).contains(&addr))
    }
}

/// This process's image, read on first success and kept (a forked child has
/// the same one; an exec'd child reads its own). A failure (no descriptor left
/// to read `/proc`, say) is not kept: the next call reads again. No lock is
/// taken, so a child forked while another thread was reading cannot wait on
/// that thread forever.
fn image() -> Result<&'static Image, CrossingError> {
    static IMAGE: AtomicPtr<Image> = AtomicPtr::new(std::ptr::null_mut());
    // SAFETY: IMAGE is only ever null or a leaked `Box<Image>`, never freed.
    if let Some(img) = unsafe { IMAGE.load(Ordering::Acquire).as_ref() } {
        return Ok(img);
    }
    let fresh = Box::into_raw(Box::new(read_image()?));
    match IMAGE.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: just published; never freed.
        Ok(_) => Ok(unsafe { &*fresh }),
        Err(theirs) => {
            // Another thread published first: use its image, drop ours.
            // SAFETY: `fresh` was never published, so this thread owns it.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: `theirs` was published by a successful compare-exchange:
            // a leaked Box, never freed.
            Ok(unsafe { &*theirs })
        }
    }
}

fn unreadable(what: &'static str) -> impl FnOnce(std::io::Error) -> CrossingError {
    move |e| CrossingError::Unreadable {
        what,
        cause: e.to_string(),
    }
}

fn read_image() -> Result<Image, CrossingError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/self/exe").map_err(unreadable("/proc/self/exe"))?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let (base, text) = match layout_from_program_headers() {
        Some((base, text)) => (Some(base), text),
        None => layout_from_maps(dev, ino)?,
    };
    let anchor = anchor as fn() as usize;
    let base = base.ok_or(CrossingError::NotInExecutable)?;
    let image = Image {
        id: ImageId {
            dev,
            ino,
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            anchor_offset: (anchor - base) as u64,
        },
        anchor,
        text,
    };
    if !image.contains(anchor) {
        return Err(CrossingError::NotInExecutable);
    }
    Ok(image)
}

/// `[start, end)` of executable code.
type Range = (usize, usize);

#[cfg(target_pointer_width = "64")]
pub(crate) type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "32")]
pub(crate) type Phdr = libc::Elf32_Phdr;

/// The program's own program headers (`getauxval(AT_PHDR)`) and its load
/// base: no system call. `None` for an executable without a `PT_PHDR`
/// header (some static, non-PIE links), whose base they do not give.
pub(crate) fn program_headers() -> Option<(usize, &'static [Phdr])> {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave us.
    let (at, num) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR),
            libc::getauxval(libc::AT_PHNUM),
        )
    };
    if at == 0 || num == 0 {
        return None;
    }
    // SAFETY: the kernel maps the executable's program headers at AT_PHDR, for
    // the life of the process: AT_PHNUM entries of this target's `Phdr`.
    let phdrs = unsafe { std::slice::from_raw_parts(at as usize as *const Phdr, num as usize) };
    let own = phdrs.iter().find(|p| p.p_type == libc::PT_PHDR)?;
    Some(((at as usize).wrapping_sub(own.p_vaddr as usize), phdrs))
}

/// The load base and executable segments of the program, from its own program
/// headers: unlike reading `/proc/self/maps`, no system call, which matters
/// at every re-executed child's start.
fn layout_from_program_headers() -> Option<(usize, Vec<Range>)> {
    let (base, phdrs) = program_headers()?;
    let text = phdrs
        .iter()
        .filter(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0)
        .map(|p| {
            let start = base.wrapping_add(p.p_vaddr as usize);
            (start, start.wrapping_add(p.p_memsz as usize))
        })
        .collect();
    Some((base, text))
}

/// The same from `/proc/self/maps`: the mappings of the file with this device
/// and inode.
fn layout_from_maps(dev: u64, ino: u64) -> Result<(Option<usize>, Vec<Range>), CrossingError> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(unreadable("/proc/self/maps"))?;
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let mut text = Vec::new();
    let mut base = None;
    for line in maps.lines() {
        // start-end perms offset major:minor inode path
        let mut it = line.split_whitespace();
        let (Some(range), Some(perms), Some(off), Some(mdev), Some(mino)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        if mino.parse::<u64>().ok() != Some(ino) {
            continue;
        }
        let Some((ma, mi)) = mdev.split_once(':') else {
            continue;
        };
        if u32::from_str_radix(ma, 16).ok() != Some(major)
            || u32::from_str_radix(mi, 16).ok() != Some(minor)
        {
            continue;
        }
        let Some((s, e)) = range.split_once('-') else {
            continue;
        };
        let (Ok(s), Ok(e), Ok(off)) = (
            usize::from_str_radix(s, 16),
            usize::from_str_radix(e, 16),
            usize::from_str_radix(off, 16),
        ) else {
            continue;
        };
        let b = s.wrapping_sub(off);
        base = Some(base.map_or(b, |old: usize| old.min(b)));
        if perms.as_bytes().get(2) == Some(&b'x') {
            text.push((s, e));
        }
    }
    Ok((base, text))
}

/// Reads this process's image now, so that forked children inherit it.
pub fn warm() {
    let _ = image();
}

/// The crossing form of `f`, to be run with the runner `K` wherever it is
/// resolved.
pub fn fn_ref<F: Crossing, K: Runner<F>>(f: F) -> Result<FnRef, CrossingError> {
    pair(trampoline::<F, K>, f.addr())
}

/// `fn_ref` once the types are erased: `trampoline` must be the instantiation
/// for the type of the function at `func`.
fn pair(trampoline: Trampoline, func: usize) -> Result<FnRef, CrossingError> {
    let img = image()?;
    for (what, addr) in [
        ("the function", func),
        ("its trampoline", trampoline as usize),
    ] {
        if !img.contains(addr) {
            return Err(CrossingError::ForeignFunction { what, addr });
        }
    }
    Ok(FnRef {
        image: img.id,
        trampoline: trampoline as usize as i64 - img.anchor as i64,
        func: func as i64 - img.anchor as i64,
    })
}

/// A received [`FnRef`], checked against this process's image and ready to run.
#[derive(Copy, Clone, Debug)]
pub struct Resolved {
    trampoline: Trampoline,
    func: usize,
}

impl Resolved {
    /// Runs the function on the encoded `arg` through its runner; returns the
    /// runner's exit code.
    pub fn run(&self, arg: Cow<'_, [u8]>, out: Option<BorrowedFd<'_>>) -> i32 {
        use std::os::fd::AsRawFd;
        (self.trampoline)(self.func, arg, out.map_or(-1, |fd| fd.as_raw_fd()))
    }
}

/// Turns a received `FnRef` back into something to run in this process, or
/// says why it cannot.
pub fn resolve(r: &FnRef) -> Result<Resolved, CrossingError> {
    let img = image()?;
    if r.image != img.id {
        return Err(CrossingError::OtherExecutable {
            sent: format!("{:?}", r.image),
            here: format!("{:?}", img.id),
        });
    }
    let at = |off: i64| (img.anchor as i64).wrapping_add(off) as usize;
    let (t, f) = (at(r.trampoline), at(r.func));
    if !img.contains(t) || !img.contains(f) {
        return Err(CrossingError::OutsideCode {
            trampoline: r.trampoline,
            func: r.func,
        });
    }
    // SAFETY: `t` is `anchor + offset` where the offset was computed by
    // `fn_ref` as `trampoline - anchor` for a `Trampoline` in a process running
    // the same file (identity checked above: same device, inode, size, mtime and
    // anchor offset from the load base). The loader maps one file with one layout
    // whatever the base, so `t` is that same function here; it lies in this
    // image's code (checked above). A `fn` pointer is a code address of pointer
    // size on every platform brood supports.
    let trampoline = unsafe { std::mem::transmute::<*const (), Trampoline>(t as *const ()) };
    Ok(Resolved {
        trampoline,
        func: f,
    })
}

/// A [`FnRef`] without the machine's part of its identity (device, inode,
/// mtime): what crosses to another machine, where the build's own identity
/// (`sys::buildid`), checked by the receiver before [`localize`], stands in
/// for it. The anchor's offset from the load base still travels, so that a
/// copy linked differently is refused even when its build id matched.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortableRef {
    anchor_offset: u64,
    trampoline: i64,
    func: i64,
}

impl FnRef {
    /// This reference as it crosses to another machine.
    pub fn portable(&self) -> PortableRef {
        PortableRef {
            anchor_offset: self.image.anchor_offset,
            trampoline: self.trampoline,
            func: self.func,
        }
    }
}

/// A reference from another machine, as a reference of this process's image
/// (to [`resolve`] here or hand to a child). The caller has checked that the
/// sender runs the same build; the layout is checked here.
pub fn localize(p: &PortableRef) -> Result<FnRef, CrossingError> {
    let img = image()?;
    if p.anchor_offset != img.id.anchor_offset {
        return Err(CrossingError::OtherExecutable {
            sent: format!("an image with its anchor at {:#x}", p.anchor_offset),
            here: format!("{:?}", img.id),
        });
    }
    let r = FnRef {
        image: img.id,
        trampoline: p.trampoline,
        func: p.func,
    };
    // Offsets outside the code are refused now, not in a worker.
    resolve(&r)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u64) -> u64 {
        x * 2
    }

    /// A runner that calls the function on the argument's length and adds the
    /// descriptor number: enough to see that the right function ran.
    struct Probe;
    impl Runner<fn(u64) -> u64> for Probe {
        fn run(f: fn(u64) -> u64, arg: Cow<'_, [u8]>, out: Option<BorrowedFd<'_>>) -> i32 {
            use std::os::fd::AsRawFd;
            (f(arg.len() as u64) + out.map_or(0, |fd| fd.as_raw_fd() as u64)) as i32
        }
    }

    #[test]
    fn offsets_round_trip_to_the_same_function() {
        let r = fn_ref::<fn(u64) -> u64, Probe>(double).unwrap();
        let bytes = postcard::to_allocvec(&r).unwrap();
        let back: FnRef = postcard::from_bytes(&bytes).unwrap();
        let resolved = resolve(&back).unwrap();
        assert_eq!(resolved.func, double as fn(u64) -> u64 as usize);
        assert_eq!(resolved.run(Cow::Owned(vec![0; 5]), None), 10);
        let stdin = std::io::stdin();
        assert_eq!(
            resolved.run(
                Cow::Owned(vec![0; 5]),
                Some(std::os::fd::AsFd::as_fd(&stdin))
            ),
            10
        );
    }

    #[test]
    fn program_headers_and_maps_agree() {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata("/proc/self/exe").unwrap();
        let (base, text) = layout_from_program_headers().unwrap();
        let (mbase, mtext) = layout_from_maps(meta.dev(), meta.ino()).unwrap();
        assert_eq!(Some(base), mbase);
        // Mappings are page-rounded; every segment lies inside one.
        for (s, e) in text {
            assert!(
                mtext.iter().any(|&(ms, me)| ms <= s && e <= me),
                "{s:#x}-{e:#x} in {mtext:x?}"
            );
        }
    }

    #[test]
    fn a_foreign_or_wrong_reference_is_refused() {
        let mut r = fn_ref::<fn(u64) -> u64, Probe>(double).unwrap();
        r.image.ino ^= 1;
        let err = resolve(&r).unwrap_err();
        assert!(
            matches!(err, CrossingError::OtherExecutable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("another executable"));
        let mut r = fn_ref::<fn(u64) -> u64, Probe>(double).unwrap();
        r.func = i64::MAX / 2;
        assert!(matches!(
            resolve(&r).unwrap_err(),
            CrossingError::OutsideCode { .. }
        ));
        // libc's `getpid` lives in a shared library: no fixed offset.
        let getpid = libc::getpid as unsafe extern "C" fn() -> libc::pid_t as usize;
        let err = pair(trampoline::<fn(u64) -> u64, Probe>, getpid).unwrap_err();
        assert!(matches!(
            err,
            CrossingError::ForeignFunction {
                what: "the function",
                ..
            }
        ));
    }
}
