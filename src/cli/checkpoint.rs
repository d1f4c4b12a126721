//! `enigma checkpoint consolidate RUN_DIR`: a run's checkpoint as one
//! safetensors file of whole tensors.
//!
//! A job of several processes checkpoints as one shard per rank and a
//! manifest (`run::checkpoint::sharded`); this assembles the newest (or
//! `--step N`) into the one-file format one process writes, for tools that
//! read safetensors (`safetensors.torch.load_file`) and for archiving. A
//! one-process checkpoint is copied through the same path, verified. The
//! file is written atomically, as checkpoints are, in the current format:
//! consolidating a `checkpoint-1` file upgrades it (its step count becomes
//! the I64 scalar `optim.t`).

use std::path::{Path, PathBuf};

use super::output::Output;
use super::{EXIT_OK, EXIT_USAGE};
use crate::diagnostics::{Error, ErrorKind};
use crate::run::checkpoint::{load, CheckpointDir};

/// Writes the checkpoint of `step` (default: the newest that loads) of
/// `run_dir` to `out` (default `RUN_DIR/consolidated`) as
/// `step-XXXXXXXX.safetensors`.
pub fn consolidate(
    output: &Output,
    run_dir: &Path,
    out: Option<PathBuf>,
    step: Option<u64>,
) -> i32 {
    let ckpts = CheckpointDir::new(run_dir.join("checkpoints"), usize::MAX);
    let fail = |m: String| {
        output.error(&Error::new(ErrorKind::Checkpoint, m), &Default::default());
        EXIT_USAGE
    };
    let checkpoint = match step {
        Some(s) => {
            let listed = match ckpts.list() {
                Ok(l) => l,
                Err(e) => return fail(e.to_string()),
            };
            let Some((_, path)) = listed.into_iter().find(|(k, _)| *k == s) else {
                return fail(format!(
                    "{} has no checkpoint of step {s}",
                    ckpts.dir().display()
                ));
            };
            match load(&path) {
                Ok(c) => c,
                Err(e) => return fail(e.to_string()),
            }
        }
        None => match ckpts.latest() {
            Ok(Some(latest)) => latest.checkpoint,
            Ok(None) => return fail(format!("{} holds no checkpoint", ckpts.dir().display())),
            Err(e) => return fail(e.to_string()),
        },
    };
    let out = out.unwrap_or_else(|| run_dir.join("consolidated"));
    match CheckpointDir::new(&out, usize::MAX).save(&checkpoint) {
        Ok(path) => {
            eprintln!(
                "wrote {}: step {}, {} tensors, whole",
                path.display(),
                checkpoint.step,
                checkpoint.tensors.len() + checkpoint.ints.len()
            );
            EXIT_OK
        }
        Err(e) => fail(e.to_string()),
    }
}
