//! The build identity of the running executable: the linker's build id, read
//! from the program's own notes in memory, or else a SHA-256 of the file.
//!
//! Unlike the device, inode and mtime that [`image`](super::image) compares
//! between a parent and its re-executed child, both are the same on every
//! machine that runs a copy of the same build, and differ between builds. GNU
//! ld, gold and lld write a `.note.gnu.build-id` when asked (`--build-id`);
//! the C compilers of Debian, Fedora and Ubuntu ask by default, and rustc
//! links through them, so a cargo build here has one (`readelf -n`). It sits
//! in a `PT_NOTE` segment, which the loader maps with the program headers:
//! reading it costs no system call.
//!
//! # References
//! elf(5) (`PT_NOTE`, note layout), getauxval(3) (`AT_PHDR`, `AT_PHNUM`), ld(1) (`--build-id`).

use sha2::{Digest, Sha256};
use std::io::Read;

/// `NT_GNU_BUILD_ID`, in a note whose owner is `"GNU"`.
const NT_GNU_BUILD_ID: u32 = 3;

/// The executable's GNU build id, if its notes carry one.
pub fn gnu_build_id() -> Option<Vec<u8>> {
    // Without PT_PHDR the load base is unknown (some static, non-PIE links):
    // the file's hash serves then.
    let (base, phdrs) = crate::sys::image::program_headers()?;
    phdrs
        .iter()
        .filter(|p| p.p_type == libc::PT_NOTE)
        .find_map(|p| {
            // SAFETY: a PT_NOTE segment lies inside a PT_LOAD one (elf(5)),
            // which the loader mapped readable at `base + p_vaddr` for the
            // life of the process; `p_filesz` bytes of it are the notes.
            let notes = unsafe {
                std::slice::from_raw_parts(
                    base.wrapping_add(p.p_vaddr as usize) as *const u8,
                    p.p_filesz as usize,
                )
            };
            find_build_id(notes)
        })
}

/// The build id in one segment of notes: `namesz`, `descsz`, `type` (native
/// 32-bit words), the name and the descriptor, each padded to 4 bytes.
fn find_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8], i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
    };
    let pad = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (
            word(notes, 0)? as usize,
            word(notes, 4)? as usize,
            word(notes, 8)?,
        );
        let name_end = 12 + pad(namesz);
        let desc_end = name_end.checked_add(pad(descsz))?;
        let name = notes.get(12..12 + namesz)?;
        let desc = notes.get(name_end..name_end + descsz)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.to_vec());
        }
        notes = notes.get(desc_end..)?;
    }
    None
}

/// SHA-256 of the executable file (`/proc/self/exe`: the file this process
/// runs, even if its path was replaced since).
pub fn exe_sha256() -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open("/proc/self/exe")?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// What `readelf -n` says of this test binary, where readelf exists.
    #[test]
    fn the_build_id_is_the_one_readelf_reads() {
        let Some(id) = gnu_build_id() else {
            eprintln!("this test binary has no build id: nothing to compare");
            return;
        };
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let Ok(out) = std::process::Command::new("readelf")
            .arg("-n")
            .arg(&exe)
            .output()
        else {
            eprintln!("readelf is not installed: skipped");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Build ID: {}", hex(&id))),
            "{} not in\n{text}",
            hex(&id)
        );
    }

    #[test]
    fn the_hash_is_sha256sum_s() {
        let ours = hex(&exe_sha256().unwrap());
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let Ok(out) = std::process::Command::new("sha256sum").arg(&exe).output() else {
            eprintln!("sha256sum is not installed: skipped");
            return;
        };
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&ours));
    }

    #[test]
    fn malformed_notes_are_no_build_id() {
        assert_eq!(find_build_id(&[]), None);
        assert_eq!(find_build_id(&[0xff; 11]), None);
        // A name size past the end.
        let mut n = Vec::new();
        for w in [1000u32, 4, NT_GNU_BUILD_ID] {
            n.extend_from_slice(&w.to_ne_bytes());
        }
        assert_eq!(find_build_id(&n), None);
        // A well-formed one after another note.
        let mut n = Vec::new();
        for w in [4u32, 4, 1] {
            n.extend_from_slice(&w.to_ne_bytes());
        }
        n.extend_from_slice(b"GNU\0abcd");
        for w in [4u32, 3, NT_GNU_BUILD_ID] {
            n.extend_from_slice(&w.to_ne_bytes());
        }
        n.extend_from_slice(b"GNU\0xyz\0");
        assert_eq!(find_build_id(&n).as_deref(), Some(&b"xyz"[..]));
    }
}
