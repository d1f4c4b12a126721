//! How a rank of a many-process job fails: loudly, quickly, and on the
//! record.
//!
//! When one rank of a job stops, the others wait for it in their next
//! collective, and MPI has no timeout: a job whose rank panicked and then
//! tried to shut MPI down cleanly hangs until the cluster's wall-clock
//! limit (measured: ../shared/distributed.md, B8). The rules here:
//!
//! - a failing rank says who it is (rank, host, step) and why, on stderr
//!   and in `<run>/failures/rank-<N>.txt`, then exits with a non-zero
//!   status *without* finalizing MPI, which makes `mpirun` (and `srun
//!   --kill-on-bad-exit=1`) end every other rank within about a second;
//! - a panic does the same through [`install_panic_hook`];
//! - a rank that stops answering is found by the communicator's watchdog
//!   (`enigma-torch`'s `comm/watchdog.rs`), which records through
//!   [`record`] and exits the same way.
//!
//! The process-wide facts a panic hook needs (who we are, where the run
//! directory is, which step is under way) are kept in statics set once by
//! the session.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::launch::World;

/// The exit status of a rank that failed (and of the job `mpirun` ends
/// because of it).
pub const EXIT_RANK_FAILED: i32 = 3;

/// The exit status after a panic, Rust's own.
pub const EXIT_PANIC: i32 = 101;

static WORLD: OnceLock<World> = OnceLock::new();
static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();
/// The step under way, counted from 1; 0 before the first.
static STEP: AtomicU64 = AtomicU64::new(0);

/// Remembers who this process is, for messages from anywhere.
pub fn set_world(world: &World) {
    let _ = WORLD.set(world.clone());
}

/// Remembers the run directory, where failures are recorded.
pub fn set_run_dir(dir: &Path) {
    let _ = RUN_DIR.set(dir.to_path_buf());
}

/// The training loop says which step it is taking.
pub fn set_step(step: u64) {
    STEP.store(step, Ordering::Relaxed);
}

/// The step under way, if training has started.
pub fn step() -> Option<u64> {
    match STEP.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// The world this process is in, once known.
pub fn world() -> Option<&'static World> {
    WORLD.get()
}

/// Who and when, for the start of a failure line: `rank 1 on node7, step
/// 12`.
pub fn whereabouts() -> String {
    let who = match WORLD.get() {
        Some(w) => format!("rank {} on {}", w.rank, w.host),
        None => format!("rank ? on {}", super::launch::hostname()),
    };
    match step() {
        Some(s) => format!("{who}, step {s}"),
        None => format!("{who}, before training"),
    }
}

/// Appends `cause` to this rank's failure record in the run directory
/// (when one is known) and returns the record's path. Best effort: the
/// failure is being reported on stderr as well, and a second failure while
/// writing must not hide the first.
pub fn record(cause: &str) -> Option<PathBuf> {
    let dir = RUN_DIR.get()?.join("failures");
    let rank = WORLD.get().map_or(0, |w| w.rank);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("rank-{rank}.txt"));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    writeln!(f, "{}: {cause}", whereabouts()).ok()?;
    f.sync_all().ok()?;
    Some(path)
}

/// The fault-injection variable: `KIND@RANK:STEP` makes rank `RANK` fail
/// at the start of step `STEP`, so that the tests (and anyone checking a
/// cluster's set-up) can see how a job fails. `KIND` is `panic`, `error`
/// (a returned error), `kill` (SIGKILL to itself, as the kernel's OOM
/// killer would) or `hang` (sleeps forever, as a rank stuck in I/O would).
pub const FAULT_VAR: &str = "ENIGMA_FAULT";

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Panic,
    Error,
    Kill,
    Hang,
}

/// Parses [`FAULT_VAR`]'s value.
pub fn parse_fault(text: &str) -> Option<(Fault, usize, u64)> {
    let (kind, at) = text.split_once('@')?;
    let (rank, step) = at.split_once(':')?;
    let kind = match kind {
        "panic" => Fault::Panic,
        "error" => Fault::Error,
        "kill" => Fault::Kill,
        "hang" => Fault::Hang,
        _ => return None,
    };
    Some((kind, rank.parse().ok()?, step.parse().ok()?))
}

/// Injects the fault [`FAULT_VAR`] asks for, if it is for this rank and
/// `step`.
pub fn inject(rank: usize, step: u64) -> Result<(), crate::diagnostics::Error> {
    let Some((kind, r, s)) = std::env::var(FAULT_VAR).ok().and_then(|v| parse_fault(&v)) else {
        return Ok(());
    };
    if (r, s) != (rank, step) {
        return Ok(());
    }
    match kind {
        Fault::Panic => panic!("{FAULT_VAR} asked rank {rank} to panic at step {step}"),
        Fault::Error => Err(crate::diagnostics::Error::internal(format!(
            "{FAULT_VAR} asked rank {rank} to fail at step {step}"
        ))),
        Fault::Kill => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &std::process::id().to_string()])
                .status();
            // `kill` delivers the signal before it returns.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        Fault::Hang => loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        },
    }
}

/// Makes a panic on any thread end this process at once with the rank,
/// host, step and message on stderr and in the run directory, instead of
/// unwinding into MPI's shutdown (which waits for the other ranks).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let cause = format!("panicked: {info}");
        eprintln!("error: {}: {cause}", whereabouts());
        if let Some(p) = record(&cause) {
            eprintln!("  recorded in {}", p.display());
        }
        std::process::exit(EXIT_PANIC);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_name_kind_rank_and_step() {
        assert_eq!(parse_fault("panic@1:3"), Some((Fault::Panic, 1, 3)));
        assert_eq!(parse_fault("hang@0:12"), Some((Fault::Hang, 0, 12)));
        assert_eq!(parse_fault("kill@2:1"), Some((Fault::Kill, 2, 1)));
        assert_eq!(parse_fault("explode@1:3"), None);
        assert_eq!(parse_fault("panic@1"), None);
        assert_eq!(parse_fault("panic@x:3"), None);
    }
}
