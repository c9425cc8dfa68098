//! Everything the exec child needs, prepared in the parent: C strings for `argv`
//! and `envp`, the candidate paths of the program (PATH resolved here, since the
//! child may not allocate), and the checks that turn bad input into typed errors
//! before any process is made (NUL bytes, an over-long argument list).

use super::Command;
use crate::SpawnError;
use crate::sys::clone::{self, CStrArray};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The search path when the child's environment has no `PATH` (glibc's and
/// Python's `os.defpath`).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The kernel's limit for one argument or environment string, NUL included
/// (`MAX_ARG_STRLEN`, 32 pages).
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// The kernel caps the whole argument area at 3/4 of an 8 MiB stack whatever the
/// stack limit (`_STK_LIM / 4 * 3` in fs/exec.c).
const KERNEL_CAP: usize = 6 * 1024 * 1024;

/// A command turned into C: owns every string the child reads.
pub(crate) struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// Paths to try with `execve`, in order.
    candidates: Vec<CString>,
    pub(crate) cwd: Option<CString>,
    /// Where the program was looked for, for a `NotFound` message.
    pub(crate) searched: String,
    /// Bytes of arguments and environment as the kernel counts them.
    pub(crate) bytes: usize,
    /// The kernel's limit for `bytes`.
    pub(crate) limit: usize,
}

impl Prepared {
    /// `argv`, for `execve`.
    pub(crate) fn argv(&self) -> CStrArray<'_> {
        CStrArray::new(self.argv.iter().map(CString::as_c_str))
    }

    /// `envp`, for `execve`.
    pub(crate) fn envp(&self) -> CStrArray<'_> {
        CStrArray::new(self.envp.iter().map(CString::as_c_str))
    }

    /// The first path to try that exists: what `execve` found, when it failed.
    pub(crate) fn existing_candidate(&self) -> Option<std::path::PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        self.candidates
            .iter()
            .map(|c| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(c.as_bytes())))
            .find(|p| p.symlink_metadata().is_ok())
    }

    /// Paths to try with `execve`, in order.
    pub(crate) fn candidates(&self) -> CStrArray<'_> {
        CStrArray::new(self.candidates.iter().map(CString::as_c_str))
    }
}

fn cstring(bytes: &[u8], what: impl FnOnce() -> String) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| SpawnError::NulByte { what: what() })
}

/// Builds the C side of `cmd`, or says what is wrong with it.
pub(crate) fn prepare(cmd: &Command) -> Result<Prepared, SpawnError> {
    let program = cmd.program.as_bytes();
    let program_c = cstring(program, || "the program name".into())?;

    let mut argv = Vec::with_capacity(cmd.args.len() + 1);
    argv.push(match &cmd.arg0 {
        Some(arg0) => cstring(arg0.as_bytes(), || "arg0".into())?,
        None => program_c.clone(),
    });
    for (i, arg) in cmd.args.iter().enumerate() {
        argv.push(cstring(arg.as_bytes(), || format!("argument {}", i + 1))?);
    }

    let env = child_env(cmd);
    let mut envp = Vec::with_capacity(env.as_ref().map_or(0, |e| e.len()));
    let path_var: Option<OsString> = match &env {
        // Environment untouched: the child inherits ours, and so does the search.
        None => {
            for (key, value) in std::env::vars_os() {
                envp.push(env_entry(&key, &value)?);
            }
            std::env::var_os("PATH")
        }
        Some(env) => {
            for (key, value) in env {
                if key.is_empty() || key.as_bytes().contains(&b'=') {
                    return Err(SpawnError::InvalidEnvKey {
                        key: key.to_string_lossy().into_owned(),
                    });
                }
                envp.push(env_entry(key, value)?);
            }
            // Python's `os.get_exec_path(env)`: the child's PATH decides.
            env.get(OsStr::new("PATH")).cloned()
        }
    };

    let cwd = match &cmd.cwd {
        Some(dir) => Some(cstring(dir.as_os_str().as_bytes(), || {
            format!("working directory {:?}", dir)
        })?),
        None => None,
    };

    let (candidates, searched) = if program.is_empty() {
        (Vec::new(), "an empty program name".to_string())
    } else if program.contains(&b'/') {
        // A path (relative ones from the child's working directory, like Python).
        (vec![program_c], cmd.program.to_string_lossy().into_owned())
    } else {
        let path = path_var.unwrap_or_else(|| DEFAULT_PATH.into());
        let mut list = Vec::new();
        for dir in path.as_bytes().split(|&b| b == b':') {
            // An empty entry means the current directory, as in execvp.
            let mut full = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            full.push(b'/');
            full.extend_from_slice(program);
            // PATH came from an environment entry or a C string: no NUL inside.
            if let Ok(c) = CString::new(full) {
                list.push(c);
            }
        }
        (list, format!("PATH={}", path.to_string_lossy()))
    };

    let (bytes, limit) = check_size(&argv, &envp)?;

    Ok(Prepared {
        argv,
        envp,
        candidates,
        cwd,
        searched,
        bytes,
        limit,
    })
}

fn env_entry(key: &OsStr, value: &OsStr) -> Result<CString, SpawnError> {
    let mut entry = Vec::with_capacity(key.len() + value.len() + 1);
    entry.extend_from_slice(key.as_bytes());
    entry.push(b'=');
    entry.extend_from_slice(value.as_bytes());
    CString::new(entry).map_err(|_| SpawnError::NulByte {
        what: format!("environment variable {:?}", key.to_string_lossy()),
    })
}

/// The child's environment when it differs from ours (`None`: inherit ours).
fn child_env(cmd: &Command) -> Option<BTreeMap<OsString, OsString>> {
    if !cmd.env_clear && cmd.env.is_empty() {
        return None;
    }
    let mut env: BTreeMap<OsString, OsString> = if cmd.env_clear {
        BTreeMap::new()
    } else {
        std::env::vars_os().collect()
    };
    for (key, value) in &cmd.env {
        match value {
            Some(v) => env.insert(key.clone(), v.clone()),
            None => env.remove(key),
        };
    }
    Some(env)
}

/// `E2BIG`, checked before any process is made: each string against
/// `MAX_ARG_STRLEN`, and the total (strings with their NULs, plus one pointer per
/// entry) against the kernel's limit: a quarter of the stack limit
/// (`sysconf(_SC_ARG_MAX)`), at most 6 MiB.
fn check_size(argv: &[CString], envp: &[CString]) -> Result<(usize, usize), SpawnError> {
    let mut bytes = 0usize;
    for (i, s) in argv.iter().chain(envp).enumerate() {
        let len = s.as_bytes_with_nul().len();
        if len > MAX_ARG_STRLEN {
            let what = match i {
                0 => "the program name".to_string(),
                i if i < argv.len() => format!("argument {i}"),
                _ => {
                    let entry = s.to_string_lossy();
                    let key = entry.split('=').next().unwrap_or_default();
                    format!("environment variable {key:?}")
                }
            };
            return Err(SpawnError::EntryTooLong {
                what,
                bytes: len,
                limit: MAX_ARG_STRLEN,
            });
        }
        bytes += len + std::mem::size_of::<*const c_char>();
    }
    let limit = arg_max();
    if bytes > limit {
        return Err(SpawnError::TooLong { bytes, limit });
    }
    Ok((bytes, limit))
}

/// The kernel's limit on arguments plus environment.
pub(crate) fn arg_max() -> usize {
    clone::arg_max().min(KERNEL_CAP)
}

/// The program as error messages show it.
pub(crate) fn display_program(program: &OsStr) -> String {
    Path::new(program).to_string_lossy().into_owned()
}
