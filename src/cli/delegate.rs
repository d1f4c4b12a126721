//! `enigma run` in the front-end program: hand the command line to the
//! runtime program.
//!
//! Loading libtorch (and, for multi-process runs, MPI and NCCL) costs
//! hundreds of milliseconds and hundreds of megabytes at every start, which
//! `check`, `fmt`, `explain` and an editor's language server must not pay.
//! So `enigma` links none of it, and `enigma run ...` replaces itself with
//! `enigma-run ...` (the same arguments, the same environment, the same
//! process id, so launchers such as `mpirun` and `srun` see one process),
//! which parses the same command line and trains.
//!
//! The runtime is found as `ENIGMA_RUNTIME` when set, else as `enigma-run`
//! beside this program (where `cargo build` and `cargo install` put it).

use std::ffi::OsString;
use std::path::PathBuf;

use super::{UsageError, EXIT_USAGE};

/// The environment variable that names the runtime program.
pub const RUNTIME_VAR: &str = "ENIGMA_RUNTIME";

/// The runtime program's file name.
pub const RUNTIME_NAME: &str = "enigma-run";

/// Where the runtime program is expected.
pub(super) fn runtime() -> Result<PathBuf, UsageError> {
    if let Some(p) = std::env::var_os(RUNTIME_VAR) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| {
        UsageError(format!(
            "cannot locate this program to find `{RUNTIME_NAME}` beside it: {e}"
        ))
    })?;
    let dir = exe
        .parent()
        .ok_or_else(|| UsageError(format!("`{}` has no directory", exe.display())))?;
    Ok(dir.join(RUNTIME_NAME))
}

/// Replaces this process with the runtime program on the same arguments;
/// returns only when that fails, with the exit status to use.
pub fn delegate(args: &[OsString]) -> i32 {
    let path = match runtime() {
        Ok(p) => p,
        Err(UsageError(e)) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if !path.is_file() {
        eprintln!(
            "error: `enigma run` and `enigma eval` need the runtime program `{}`, which is not there; build it with `cargo build --release` (the workspace builds both programs), or point {RUNTIME_VAR} at it",
            path.display()
        );
        return EXIT_USAGE;
    }
    let rest = args.get(1..).unwrap_or(&[]);
    exec(&path, rest)
}

#[cfg(unix)]
fn exec(path: &std::path::Path, args: &[OsString]) -> i32 {
    use std::os::unix::process::CommandExt;
    // `exec` returns only on failure.
    let e = std::process::Command::new(path).args(args).exec();
    eprintln!("error: cannot start `{}`: {e}", path.display());
    EXIT_USAGE
}

#[cfg(not(unix))]
fn exec(path: &std::path::Path, args: &[OsString]) -> i32 {
    match std::process::Command::new(path).args(args).status() {
        Ok(s) => s.code().unwrap_or(EXIT_USAGE),
        Err(e) => {
            eprintln!("error: cannot start `{}`: {e}", path.display());
            EXIT_USAGE
        }
    }
}
