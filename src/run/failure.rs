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
