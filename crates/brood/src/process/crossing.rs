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
//! The request itself only ever arrives over a private channel (an inherited
//! socketpair whose peer is checked), so it is not attacker-controlled.

use serde::{Deserialize, Serialize};
use std::os::fd::RawFd;
use std::sync::OnceLock;

/// What runs a function in the child: decodes the argument, calls the function
/// whose address is given, sends the result to the descriptor, returns the exit
/// code. One instance per `(A, R)`: see `super::child::trampoline`.
pub(crate) type Trampoline = fn(func: usize, arg: Vec<u8>, out: RawFd) -> i32;

/// A fixed point inside the executable. Its address is taken, so it is emitted.
#[inline(never)]
fn anchor() {}

/// The identity of the executable file and of its layout in memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    anchor_offset: u64,
}

/// A function, as it crosses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FnRef {
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

/// This process's image, read once (a forked child has the same one; an
/// exec'd child reads its own).
fn image() -> Result<&'static Image, String> {
    static IMAGE: OnceLock<Result<Image, String>> = OnceLock::new();
    IMAGE.get_or_init(read_image).as_ref().map_err(Clone::clone)
}

/// Reads the image now if no thread did yet (for `fork`, before forking).
pub(crate) fn ready() {
    let _ = image();
}

fn read_image() -> Result<Image, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/self/exe")
        .map_err(|e| format!("cannot stat /proc/self/exe: {e}"))?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let (base, text) = match layout_from_program_headers() {
        Some((base, text)) => (Some(base), text),
        None => layout_from_maps(dev, ino)?,
    };
    let anchor = anchor as fn() as usize;
    let base = base.ok_or("the executable is not among this process's mappings")?;
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
        return Err(
            "brood is not linked into the executable itself (is it in a shared library?)".into(),
        );
    }
    Ok(image)
}

/// `[start, end)` of executable code.
type Range = (usize, usize);

#[cfg(target_pointer_width = "64")]
type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "32")]
type Phdr = libc::Elf32_Phdr;

/// The load base and executable segments of the program, from its own program
/// headers (`getauxval(AT_PHDR)`): no system call, unlike reading
/// `/proc/self/maps`, which matters at every re-executed child's start. `None`
/// for an executable without a `PT_PHDR` header (some static, non-PIE links).
fn layout_from_program_headers() -> Option<(usize, Vec<Range>)> {
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
    let base = (at as usize).wrapping_sub(own.p_vaddr as usize);
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
fn layout_from_maps(dev: u64, ino: u64) -> Result<(Option<usize>, Vec<Range>), String> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
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
pub(crate) fn warm() {
    let _ = image();
}

/// The crossing form of `func`, to be run by `trampoline`.
pub(crate) fn fn_ref(trampoline: Trampoline, func: usize) -> Result<FnRef, String> {
    let img = image()?;
    for (what, addr) in [
        ("the function", func),
        ("its trampoline", trampoline as usize),
    ] {
        if !img.contains(addr) {
            return Err(format!(
                "{what} at {addr:#x} is not code of the executable: only functions of the program \
                 itself can cross a re-execution (not ones from a shared library)"
            ));
        }
    }
    Ok(FnRef {
        image: img.id,
        trampoline: trampoline as usize as i64 - img.anchor as i64,
        func: func as i64 - img.anchor as i64,
    })
}

/// Turns a received `FnRef` back into a trampoline and a function address in
/// this process, or says why it cannot.
pub(crate) fn resolve(r: &FnRef) -> Result<(Trampoline, usize), String> {
    let img = image()?;
    if r.image != img.id {
        return Err(format!(
            "the request was made by another executable ({:?}) than this one ({:?})",
            r.image, img.id
        ));
    }
    let at = |off: i64| (img.anchor as i64).wrapping_add(off) as usize;
    let (t, f) = (at(r.trampoline), at(r.func));
    if !img.contains(t) || !img.contains(f) {
        return Err(format!(
            "function offsets {:#x}/{:#x} fall outside the executable's code",
            r.trampoline, r.func
        ));
    }
    // SAFETY: `t` is `anchor + offset` where the offset was computed by
    // `fn_ref` as `trampoline - anchor` for a `Trampoline` in a process running
    // the same file (identity checked above: same device, inode, size, mtime and
    // anchor offset from the load base). The loader maps one file with one layout
    // whatever the base, so `t` is that same function here; it lies in this
    // image's code (checked above). A `fn` pointer is a code address of pointer
    // size on every platform brood supports.
    let tramp = unsafe { std::mem::transmute::<*const (), Trampoline>(t as *const ()) };
    Ok((tramp, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u64) -> u64 {
        x * 2
    }

    fn tramp_for_test(func: usize, arg: Vec<u8>, out: RawFd) -> i32 {
        // SAFETY: the test passes `double`'s address, of type fn(u64) -> u64.
        let f = unsafe { std::mem::transmute::<*const (), fn(u64) -> u64>(func as *const ()) };
        (f(arg.len() as u64) + out as u64) as i32
    }

    #[test]
    fn offsets_round_trip_to_the_same_function() {
        let r = fn_ref(tramp_for_test, double as fn(u64) -> u64 as usize).unwrap();
        let bytes = postcard::to_allocvec(&r).unwrap();
        let back: FnRef = postcard::from_bytes(&bytes).unwrap();
        let (t, f) = resolve(&back).unwrap();
        assert_eq!(f, double as fn(u64) -> u64 as usize);
        assert_eq!(t(f, vec![0; 5], 1), 11);
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
        let mut r = fn_ref(tramp_for_test, double as fn(u64) -> u64 as usize).unwrap();
        r.image.ino ^= 1;
        assert!(resolve(&r).unwrap_err().contains("another executable"));
        let mut r = fn_ref(tramp_for_test, double as fn(u64) -> u64 as usize).unwrap();
        r.func = i64::MAX / 2;
        assert!(resolve(&r).unwrap_err().contains("outside"));
        // libc's `getpid` lives in a shared library: no fixed offset.
        assert!(fn_ref(
            tramp_for_test,
            libc::getpid as unsafe extern "C" fn() -> libc::pid_t as usize
        )
        .is_err());
    }
}
