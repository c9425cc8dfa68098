//! The interpreter a program names, read from the file the way the kernel
//! reads it: the program of a `#!` line (up to a space, a tab, a newline or a
//! NUL — a DOS line ending leaves its `\r` in the name), or a binary's
//! dynamic loader (its ELF `PT_INTERP`). For [`SpawnError::InterpreterNotFound`](crate::SpawnError::InterpreterNotFound).

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How much of a script the kernel reads for its `#!` line (`BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;

/// The interpreter `path` names, if it can be read.
pub(super) fn interpreter_of(path: &Path) -> Option<PathBuf> {
    let mut head = [0u8; SHEBANG_MAX];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .ok()?;
    let head = &head[..n];
    match head.strip_prefix(b"#!") {
        Some(line) => shebang_program(line),
        None => elf_interp(path),
    }
}

/// The program of a `#!` line (what follows `#!`), as `binfmt_script` takes it.
fn shebang_program(line: &[u8]) -> Option<PathBuf> {
    let start = line.iter().position(|&b| b != b' ' && b != b'\t')?;
    let rest = &line[start..];
    let end = rest
        .iter()
        .position(|&b| matches!(b, b' ' | b'\t' | b'\n' | 0))
        .unwrap_or(rest.len());
    (end > 0).then(|| PathBuf::from(OsStr::from_bytes(&rest[..end])))
}

/// The `PT_INTERP` of an ELF file (32 or 64 bits, either byte order).
fn elf_interp(path: &Path) -> Option<PathBuf> {
    let data = std::fs::read(path).ok()?;
    let ident = data.get(..16)?;
    if &ident[..4] != b"\x7fELF" {
        return None;
    }
    let wide = ident[4] == 2;
    let big = ident[5] == 2;
    let num = |at: usize, len: usize| -> Option<u64> {
        let bytes = data.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let b = if big { bytes[i] } else { bytes[len - 1 - i] };
            v = v << 8 | u64::from(b);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?)
    } else {
        (num(0x1c, 4)?, num(0x2a, 2)?, num(0x2c, 2)?)
    };
    const PT_INTERP: u64 = 3;
    for i in 0..phnum {
        let ph = usize::try_from(phoff + i * phentsize).ok()?;
        if num(ph, 4)? != PT_INTERP {
            continue;
        }
        let (offset, size) = if wide {
            (num(ph + 8, 8)?, num(ph + 32, 8)?)
        } else {
            (num(ph + 4, 4)?, num(ph + 16, 4)?)
        };
        let start = usize::try_from(offset).ok()?;
        let bytes = data.get(start..start + usize::try_from(size).ok()?)?;
        let name = bytes.split(|&b| b == 0).next()?;
        return Some(PathBuf::from(OsStr::from_bytes(name)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shebang_program_is_taken_as_the_kernel_takes_it() {
        let p = |line: &[u8]| shebang_program(line).map(|p| p.into_os_string().into_vec());
        use std::os::unix::ffi::OsStringExt;
        assert_eq!(p(b"/bin/sh\n"), Some(b"/bin/sh".to_vec()));
        assert_eq!(
            p(b" /usr/bin/env python3 -u\n"),
            Some(b"/usr/bin/env".to_vec())
        );
        assert_eq!(p(b"/bin/sh\r\n"), Some(b"/bin/sh\r".to_vec()));
        assert_eq!(p(b"/bin/sh"), Some(b"/bin/sh".to_vec()));
        assert_eq!(p(b"   \n"), None);
    }

    #[test]
    fn a_binary_names_its_dynamic_loader() {
        // The test binary itself is dynamically linked (or has no PT_INTERP
        // when static): whatever it names exists.
        let me = std::env::current_exe().unwrap();
        if let Some(loader) = elf_interp(&me) {
            assert!(loader.is_absolute() && loader.exists(), "{loader:?}");
        }
        assert_eq!(elf_interp(Path::new("/nonexistent")), None);
    }
}
