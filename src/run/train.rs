//! The training loop: steps of the plan's program over the loader's
//! batches, evaluation, checkpoints and the run directory.
//!
//! It is generic over [`Backend`], so it holds no tensors: the state that
//! must survive a crash is what [`Backend::export`] gives plus the loader
//! [`Position`] and the step, all in one checkpoint. Randomness is derived
//! from the seed and the step number (token masks, dropout) and the
//! loader's order from the seed and the epoch, so a run resumed from a
//! checkpoint replays exactly what the uninterrupted run would have done.
//!
//! The run directory:
//!
//! ```text
//! <out>/experiment.enigma   the experiment as run
//! <out>/plan.txt            `enigma plan`'s summary of the layout
//! <out>/metrics.jsonl       one record per step, evaluation and event
//! <out>/checkpoints/        step-XXXXXXXX.safetensors, the newest `keep`
//! <out>/loss.svg, val_corr.svg
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::backend::{Backend, MicroBatch, StepKeys, Update};
use super::checkpoint::{Checkpoint, CheckpointDir};
use super::eval::Scores;
use super::eval::{eval_batches, score_backend};
use super::logs::{describe_eval, RunLogs};
use super::metrics::Record;
use super::progress::{Display, Progress};
use crate::base::host::HostTensor;
use crate::base::rng::derive;
use crate::dataset::loader::{Batch, Dataset, Loader, Position};
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::train::TrainConfig;
use crate::plan::program::RankProgram;

/// Tags of the derived random streams.
const MASK: u64 = 0x6d61_736b;
const DROPOUT: u64 = 0x6472_6f70;

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    /// Continue from the newest good checkpoint in `out`.
    pub resume: bool,
    /// Stop after this many steps instead of the experiment's `steps`
    /// (the schedule still spans the experiment's steps).
    pub stop_after: Option<u64>,
    /// How the progress is shown on standard error: a bar, plain lines,
    /// nothing.
    pub display: Display,
    /// Batches the loader keeps ready.
    pub prefetch: usize,
    /// Whether this rank writes the run directory's shared files (metrics,
    /// plots, checkpoints): rank 0 of a job, or the one process.
    pub leader: bool,
    /// This process's rank in the job.
    pub rank: usize,
    /// The number of processes in the job: with more than one, checkpoints
    /// are sharded (`checkpoint::sharded`).
    pub world: usize,
    /// A run directory whose newest checkpoint gives the shared weights to
    /// start from (a few-shot fit of new sessions); not on a resume.
    pub init_from: Option<PathBuf>,
    /// Train only the per-session tables.
    pub freeze_shared: bool,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Optimiser steps completed (counting those before a resume).
    pub steps: u64,
    pub last_loss: Option<f64>,
    /// The last evaluation's mean per-neuron correlation and its chance
    /// level.
    pub corr: Option<f64>,
    pub corr_chance: Option<f64>,
    /// Stopped by SIGINT or SIGTERM after checkpointing.
    pub interrupted: bool,
    pub skipped_steps: u64,
    pub plots: Vec<PathBuf>,
    /// The seconds each of this run's steps took on this rank.
    pub step_s: Vec<f64>,
    /// The resident set's peak during the training steps (evaluations
    /// left out where the mark can be reset), in bytes.
    pub peak_rss: Option<u64>,
}

/// The plan's shape of a step: windows per micro-batch and micro-batches
/// per step.
#[derive(Clone, Copy, Debug)]
pub struct StepShape {
    pub micro_batch: usize,
    /// Micro-batches per rank per step: pipeline micro-batches times
    /// gradient accumulation.
    pub microbatches: usize,
    /// The pipeline micro-batches among them (the `parallel` block's
    /// `microbatches`).
    pub pipeline: usize,
    /// This rank's part of each batch among the data-parallel ranks: its
    /// position and their number (`(0, 1)` in one process).
    pub data_part: (usize, usize),
}

impl StepShape {
    /// The evaluation batch: the step's batch divided by gradient
    /// accumulation, which is the batch one process of the same experiment
    /// runs through the model at once. Evaluation uses it on every rank,
    /// so its figures are the one-process figures whatever the layout
    /// (each rank evaluates every window, through the pipeline when there
    /// is one; the forward passes are not split over data-parallel ranks,
    /// which is exact and costs evaluation time on large jobs).
    pub fn global_micro_batch(&self) -> usize {
        self.micro_batch * self.data_part.1.max(1) * self.pipeline.max(1)
    }
}

/// Trains until the experiment's steps are done, `stop_after` is reached,
/// or a signal asks to stop.
pub fn train<B: Backend>(
    backend: &mut B,
    program: &RankProgram,
    shape: StepShape,
    dataset: Arc<Dataset>,
    config: &TrainConfig,
    opts: &RunOptions,
    stop: Arc<AtomicBool>,
) -> Result<Summary, Error> {
    let ckpts = CheckpointDir::new(opts.out.join("checkpoints"), config.checkpoint_keep);
    let mut start = 0u64;
    let mut position = Position::default();
    let latest = if opts.resume {
        ckpts
            .latest()
            .map_err(|e| Error::new(ErrorKind::Checkpoint, e.to_string()))?
    } else {
        None
    };
    if let Some(latest) = &latest {
        if opts.leader {
            for (path, why) in &latest.skipped {
                eprintln!(
                    "warning: skipped damaged checkpoint {}: {why}",
                    path.display()
                );
            }
        }
        // Every rank restores the state (its slices under ZeRO).
        backend.import(&latest.checkpoint.tensors)?;
        backend.import_ints(&latest.checkpoint.ints)?;
        start = latest.checkpoint.step;
        position = read_position(&latest.checkpoint.metadata, &latest.path)?;
    } else if let Some(from) = &opts.init_from {
        start_from(backend, from, config.checkpoint_keep, opts.leader)?;
    } else if opts.freeze_shared {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "--freeze-shared keeps the shared weights that --init-from RUN_DIR loads; without it (or a checkpoint to resume) they would stay at their random start",
        ));
    }
    if opts.freeze_shared {
        backend.freeze_shared()?;
    }
    // Only the leader logs.
    let mut log = if opts.leader {
        Some(RunLogs::open(&opts.out, latest.as_ref().map(|_| start))?)
    } else {
        None
    };
    let end = opts
        .stop_after
        .map_or(config.steps, |s| s.min(config.steps));
    // One loader batch per step: this rank's part of the step's global
    // batch (the batch one process takes), cut into the step's
    // micro-batches below, so that every layout sees the windows one
    // process sees, in its order.
    let mut loader = Loader::start_part(
        dataset.clone(),
        shape.micro_batch * shape.microbatches.max(1),
        shape.data_part,
        config.seed,
        position,
        opts.prefetch.max(1),
    );
    let progress = Progress::new(end, start, opts.display);
    let mut summary = Summary {
        steps: start,
        last_loss: None,
        corr: None,
        corr_chance: None,
        interrupted: false,
        skipped_steps: 0,
        plots: Vec::new(),
        step_s: Vec::new(),
        peak_rss: None,
    };
    let write = |log: &mut Option<RunLogs>, r: Record| match log {
        Some(log) => log.write(r),
        None => Ok(()),
    };
    // What an evaluation runs, cut from the training program once.
    let eval_program = program.forward_only();
    let clock = Instant::now();
    for step in start..end {
        // Errors name the step being taken as the metrics log numbers it:
        // the first step is step 1, and step `done` ends with `done` done.
        let done = step + 1;
        super::failure::set_step(done);
        super::failure::inject(opts.rank, done).map_err(|e| e.at_step(done))?;
        let (pos, batch) = loader.next().map_err(|e| e.at_step(done))?;
        position = pos;
        // Sample `i` of micro-batch `j` is window `first + i` of the step's
        // global batch, which keys its token mask.
        let n = shape.microbatches.max(1);
        let first = |j: usize| shape.data_part.0 * shape.micro_batch * n + j * shape.micro_batch;
        let split = if n > 1 {
            split_batch(&batch, n)
        } else {
            Vec::new()
        };
        let micro: Vec<MicroBatch<'_>> = if n > 1 {
            split
                .iter()
                .enumerate()
                .map(|(j, b)| MicroBatch {
                    session: batch.session,
                    inputs: b,
                    first: first(j),
                })
                .collect()
        } else {
            vec![MicroBatch {
                session: batch.session,
                inputs: &batch.inputs,
                first: first(0),
            }]
        };
        let lr = config.optimizer.lr() * config.schedule.factor(step, config.steps);
        let keys = StepKeys {
            mask: derive(derive(config.seed, MASK), step),
            dropout: derive(derive(config.seed, DROPOUT), step),
        };
        let update = Update {
            lr,
            clip: config.clip,
            on_nonfinite: config.on_nonfinite,
        };
        let timer = Instant::now();
        let out = backend
            .train_step(program, &micro, keys, update)
            .map_err(|e| e.at_step(done))?;
        let step_s = timer.elapsed().as_secs_f64();
        summary.step_s.push(step_s);
        summary.steps = done;
        summary.last_loss = Some(out.loss);
        let rate = (done - start) as f64 / clock.elapsed().as_secs_f64().max(1e-9);
        let mut rec = Record::train(done)
            .with("loss", out.loss)
            .with("lr", lr)
            .with("grad_norm", out.grad_norm)
            .with("steps_per_s", rate)
            .with("windows_per_s", rate * config.batch as f64)
            .with("step_s", step_s);
        if let Some(why) = &out.skipped {
            summary.skipped_steps += 1;
            rec = rec.with("skipped", 1.0);
            write(
                &mut log,
                Record::event(done, &format!("step skipped: {why}")),
            )?;
            if opts.leader {
                progress.println(&format!("step {done}: skipped ({why})"));
            }
        }
        write(&mut log, rec)?;
        progress.update(done, out.loss, lr);
        // Every rank stops after the same step, whichever saw the signal.
        let interrupted = backend
            .any_rank(stop.load(Ordering::SeqCst))
            .map_err(|e| e.at_step(done))?;
        if config.eval_every.is_some_and(|e| done % e == 0)
            || (done == end && config.eval_every.is_some())
        {
            // The resident peak of the training steps is read before an
            // evaluation (whose batch may be larger than a micro-batch)
            // and the mark reset after it (`ranks.rs`).
            note_peak(&mut summary.peak_rss);
            let scores = evaluate(backend, &eval_program, &dataset, config, shape)?;
            super::ranks::reset_peak();
            summary.corr = scores.corr;
            summary.corr_chance = scores.chance;
            let split = config.eval_split.name();
            let mut r = Record::eval(done, split).with("loss", scores.loss);
            if let (Some(c), Some(ch)) = (scores.corr, scores.chance) {
                r = r.with("corr", c).with("corr_chance", ch);
            }
            if opts.leader {
                progress.note(&describe_eval(&r));
            }
            write(&mut log, r)?;
            if let Some(log) = &mut log {
                log.correlations(done, split, &scores.per_neuron)?;
            }
        }
        let due = config.checkpoint_every.is_some_and(|e| done % e == 0);
        if due || done == end || interrupted {
            save(backend, &ckpts, done, position, config, opts)?;
            write(&mut log, Record::event(done, "checkpoint saved"))?;
        }
        if interrupted {
            summary.interrupted = true;
            write(
                &mut log,
                Record::event(done, "stopped by a signal after checkpointing"),
            )?;
            if opts.leader {
                progress.println(&format!("stopped at step {done}; resume with --resume"));
            }
            break;
        }
    }
    note_peak(&mut summary.peak_rss);
    progress.finish();
    loader.stop();
    if let Some(log) = &mut log {
        log.refresh_plots()?;
        summary.plots = log.plots().to_vec();
    }
    Ok(summary)
}

/// Raises `peak` to the resident set's high-water mark now.
fn note_peak(peak: &mut Option<u64>) {
    if let Some(now) = super::ranks::status_bytes("VmHWM") {
        *peak = Some(peak.map_or(now, |p| p.max(now)));
    }
}

/// `batch`'s inputs cut along their first (batch) dim into `n` equal
/// micro-batches, in order.
fn split_batch(batch: &Batch, n: usize) -> Vec<Vec<HostTensor>> {
    (0..n)
        .map(|j| {
            batch
                .inputs
                .iter()
                .map(|t| {
                    let rows = t.shape.first().copied().unwrap_or(0);
                    let per = rows / n.max(1);
                    let row = t.numel() / rows.max(1);
                    let mut shape = t.shape.clone();
                    if let Some(first) = shape.first_mut() {
                        *first = per;
                    }
                    HostTensor {
                        shape,
                        data: t.data[j * per * row..(j + 1) * per * row].to_vec(),
                    }
                })
                .collect()
        })
        .collect()
}

/// The evaluation `enigma run` reports: the loss and correlation of the
/// backend's predictions over the evaluated windows (`super::eval`).
fn evaluate<B: Backend>(
    backend: &mut B,
    program: &RankProgram,
    dataset: &Dataset,
    config: &TrainConfig,
    shape: StepShape,
) -> Result<Scores, Error> {
    let split = config.eval_split;
    let taken = eval_batches(
        dataset,
        split,
        shape.global_micro_batch(),
        config.seed,
        config.eval_batches,
    );
    score_backend(backend, program, dataset, split, &taken, config.seed)
}

/// Saves a checkpoint of `step`. One process writes one file; in a job
/// every rank writes its shard, the ranks meet, and the leader publishes
/// the manifest (`checkpoint::sharded`).
fn save<B: Backend>(
    backend: &mut B,
    ckpts: &CheckpointDir,
    step: u64,
    position: Position,
    config: &TrainConfig,
    opts: &RunOptions,
) -> Result<(), Error> {
    let mut metadata = BTreeMap::new();
    metadata.insert("loader.epoch".to_string(), position.epoch.to_string());
    metadata.insert("loader.index".to_string(), position.index.to_string());
    metadata.insert("seed".to_string(), config.seed.to_string());
    metadata.insert(
        "rng".to_string(),
        "derived from the seed and the step (masks, dropout) and the epoch (order)".to_string(),
    );
    let failed = |e: super::checkpoint::CheckpointError| {
        Error::new(
            ErrorKind::Checkpoint,
            format!("{e} (the previous checkpoint is intact)"),
        )
        .at_step(step)
    };
    if opts.world > 1 {
        let parts = backend.export_parts()?;
        let ints = backend.export_ints()?;
        super::checkpoint::sharded::write_shard_state(ckpts.dir(), step, opts.rank, &parts, &ints)
            .map_err(failed)?;
        // Every shard is on disk before the manifest names them.
        backend.barrier()?;
        if opts.leader {
            ckpts
                .publish_sharded(step, opts.world, &metadata)
                .map_err(failed)?;
        }
        return Ok(());
    }
    let ckpt = Checkpoint {
        step,
        tensors: backend.export()?,
        ints: backend.export_ints()?,
        metadata,
    };
    ckpts.save(&ckpt).map(|_| ()).map_err(failed)
}

/// Loads the shared weights of the newest good checkpoint in run directory
/// `from` into `backend` (`--init-from`).
fn start_from<B: Backend>(
    backend: &mut B,
    from: &Path,
    keep: usize,
    leader: bool,
) -> Result<(), Error> {
    let dir = from.join("checkpoints");
    let latest = CheckpointDir::new(dir.clone(), keep)
        .latest()
        .map_err(|e| Error::new(ErrorKind::Checkpoint, e.to_string()))?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Checkpoint,
                format!(
                    "--init-from {}: the run directory has no checkpoint in {}",
                    from.display(),
                    dir.display()
                ),
            )
        })?;
    let loaded = backend
        .load_shared(&latest.checkpoint.tensors)
        .map_err(|e| Error {
            message: format!("--init-from {}: {}", from.display(), e.message),
            ..e
        })?;
    if leader {
        eprintln!(
            "started from {} (step {}): {loaded} shared tensors",
            latest.path.display(),
            latest.checkpoint.step
        );
    }
    Ok(())
}

fn read_position(meta: &BTreeMap<String, String>, path: &Path) -> Result<Position, Error> {
    let get = |k: &str| {
        meta.get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Checkpoint,
                    format!("the checkpoint's metadata has no `{k}` to resume the data from"),
                )
                .file(path)
            })
    };
    Ok(Position {
        epoch: get("loader.epoch")?,
        index: get("loader.index")?,
    })
}
