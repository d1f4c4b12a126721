//! `enigma eval RUN_DIR`: a run's newest checkpoint scored on any split by
//! the run's own evaluation (`run::eval`), so that a held-out test figure
//! is one command, beside the built-in baselines on the same windows.
//!
//! The experiment is the one the run trained: the file named in
//! `RUN_DIR/experiment.path` (written by `enigma run`), whose relative data
//! paths still resolve, else the copy `RUN_DIR/experiment.enigma`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::backend::Backend;
use super::checkpoint::CheckpointDir;
use super::eval::{eval_batches, score_backend, Scores};
use super::session::{DeviceChoice, Job, Runtime};
use super::train::StepShape;
use crate::dataset::loader::Dataset;
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::Split;
use crate::ir::train::TrainConfig;
use crate::ir::Experiment;
use crate::plan::program::RankProgram;
use crate::plan::report::Planned;

/// The file in a run directory that names the experiment it trained.
pub const EXPERIMENT_PATH: &str = "experiment.path";

/// What the command line asks of an evaluation.
#[derive(Clone, Debug)]
pub struct EvalRequest {
    pub run_dir: PathBuf,
    pub split: Split,
    /// Every window of the split, not only the run's `eval.batches`.
    pub all: bool,
    pub device: Option<DeviceChoice>,
}

/// A checkpoint's figures on a split.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    /// The step of the checkpoint.
    pub step: u64,
    pub split: Split,
    pub scores: Scores,
}

/// The `--set KEY=VALUE` overrides of a run, one per line, in its run
/// directory (absent when it had none).
pub const OVERRIDES: &str = "overrides.txt";

/// The experiment file a run directory was trained from.
pub fn experiment_file(run_dir: &Path) -> PathBuf {
    let named = std::fs::read_to_string(run_dir.join(EXPERIMENT_PATH))
        .ok()
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.is_file());
    named.unwrap_or_else(|| run_dir.join("experiment.enigma"))
}

/// A run's newest checkpoint loaded into a backend, ready to run forward.
pub(super) struct Restored<'x, B> {
    pub backend: B,
    /// The forward-only program of the one rank.
    pub forward: RankProgram,
    pub config: &'x TrainConfig,
    /// The step of the checkpoint.
    pub step: u64,
    /// The windows one forward pass takes.
    pub batch: usize,
}

/// Loads the newest checkpoint of `run_dir` into a one-process backend of
/// `x` on `device` (the experiment's own when `None`); `what` names the
/// command in errors (`enigma eval`).
pub(super) fn restore<'x, R: Runtime>(
    runtime: &R,
    x: &'x Experiment,
    planned: &Planned,
    run_dir: &Path,
    device: Option<DeviceChoice>,
    what: &str,
) -> Result<Restored<'x, R::Backend>, Error> {
    let unsupported = |m: String| Error::new(ErrorKind::Unsupported, m);
    let plan = planned
        .plan
        .as_ref()
        .ok_or_else(|| unsupported("the experiment was not planned".to_string()))?;
    let world = crate::run::launch::World::single();
    if plan.layout.mesh.size() != 1 {
        return Err(unsupported(format!(
            "`{what}` runs in one process, but the experiment's mesh has {} ranks; consolidate the checkpoint (`enigma checkpoint consolidate`) and use a copy of the experiment without its `parallel` block",
            plan.layout.mesh.size()
        )));
    }
    let program = plan
        .rank(0)
        .ok_or_else(|| Error::internal("the plan has no program for rank 0".to_string()))?;
    let config = x.train.as_ref().ok_or_else(|| {
        unsupported("the experiment has no `train` block to evaluate as".to_string())
    })?;
    let latest = CheckpointDir::new(run_dir.join("checkpoints"), config.checkpoint_keep)
        .latest()
        .map_err(|e| Error::new(ErrorKind::Checkpoint, e.to_string()))?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Checkpoint,
                format!("no checkpoint in {}", run_dir.join("checkpoints").display()),
            )
        })?;
    let cuda = match device {
        Some(DeviceChoice::Cuda) => true,
        Some(DeviceChoice::Cpu) => false,
        None => config.cuda,
    };
    let job = Job {
        world: &world,
        run_dir,
        collective_timeout: Duration::from_secs_f64(x.parallel.collective_timeout.max(1.0)),
    };
    let mut backend = runtime.backend(x, plan, program, config, cuda, &job)?;
    backend.import(&latest.checkpoint.tensors)?;
    let shape = StepShape {
        micro_batch: plan.micro_batch.max(1) as usize,
        microbatches: plan.microbatches.max(1),
        pipeline: plan.layout.microbatches.max(1),
        data_part: (0, 1),
    };
    Ok(Restored {
        backend,
        forward: program.forward_only(),
        config,
        step: latest.checkpoint.step,
        batch: shape.global_micro_batch(),
    })
}

/// Scores the newest checkpoint of `req.run_dir` on `req.split`.
pub fn evaluate<R: Runtime>(
    runtime: &R,
    x: &Experiment,
    planned: &Planned,
    dataset: &Dataset,
    req: &EvalRequest,
) -> Result<Evaluated, Error> {
    let Restored {
        mut backend,
        forward,
        config,
        step,
        batch,
    } = restore(runtime, x, planned, &req.run_dir, req.device, "enigma eval")?;
    let batches = if req.all {
        u64::MAX
    } else {
        config.eval_batches
    };
    let taken = eval_batches(dataset, req.split, batch, config.seed, batches);
    if taken.is_empty() {
        return Err(Error::new(
            ErrorKind::Window,
            format!("the {} split has no windows", req.split.name()),
        ));
    }
    let scores = score_backend(
        &mut backend,
        &forward,
        dataset,
        req.split,
        &taken,
        config.seed,
    )?;
    backend.finish();
    Ok(Evaluated {
        step,
        split: req.split,
        scores,
    })
}
