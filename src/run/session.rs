//! One run of a checked, planned experiment: the run directory, signals,
//! the training loop, and the recovery report.
//!
//! The CLI's `run` subcommand hands over the experiment, its plan and the
//! dataset the driver may have opened; a [`Runtime`] supplies the backend
//! (libtorch in `enigma-run`). What this module decides is everything
//! around the loop that does not depend on the backend: which directory,
//! what it holds besides metrics (the experiment as run, the plan's
//! summary, `recovery.json`), SIGINT and SIGTERM (finish the step,
//! checkpoint, stop), and the lines a person sees before and after.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::backend::Backend;
use super::train::{train, RunOptions, StepShape};
use crate::dataset::loader::Dataset;
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::train::TrainConfig;
use crate::ir::Experiment;
use crate::plan::program::{Plan, RankProgram};
use crate::plan::report::{summary as plan_summary, Planned};

/// Where to train, when the command line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda,
}

/// What the command line asks of a run.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The run directory (default: `runs/<file stem>`).
    pub out: Option<PathBuf>,
    /// Continue from the newest good checkpoint in the run directory.
    pub resume: bool,
    /// Overrides the experiment's `device`.
    pub device: Option<DeviceChoice>,
    /// Stop after this many steps.
    pub steps: Option<u64>,
    /// No progress bar and no summary lines.
    pub quiet: bool,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step asked for was trained.
    Finished,
    /// SIGINT or SIGTERM stopped it after a checkpoint.
    Interrupted,
}

/// What supplies the tensors: a backend for one rank's program.
pub trait Runtime {
    type Backend: Backend;

    /// A backend holding the parameters `plan` places on its rank,
    /// initialised from the run's seed, on the CPU or a CUDA device.
    fn backend(
        &self,
        x: &Experiment,
        plan: &Plan,
        config: &TrainConfig,
        cuda: bool,
    ) -> Result<Self::Backend, Error>;
}

/// A [`Runtime`] behind a trait object: what the CLI holds.
pub trait Trainer {
    /// Trains `x` as `planned` lays it out ([`run`]).
    fn train(
        &self,
        x: &Experiment,
        planned: &Planned,
        dataset: Option<Dataset>,
        req: &Request,
    ) -> Result<Outcome, Error>;
}

impl<R: Runtime> Trainer for R {
    fn train(
        &self,
        x: &Experiment,
        planned: &Planned,
        dataset: Option<Dataset>,
        req: &Request,
    ) -> Result<Outcome, Error> {
        run(self, x, planned, dataset, req)
    }
}

/// Trains `x` as `planned` lays it out, with `dataset` when the driver
/// opened it already.
pub fn run<R: Runtime>(
    runtime: &R,
    x: &Experiment,
    planned: &Planned,
    dataset: Option<Dataset>,
    req: &Request,
) -> Result<Outcome, Error> {
    let unsupported = |m: String| Error::new(ErrorKind::Unsupported, m);
    let plan = planned
        .plan
        .as_ref()
        .ok_or_else(|| unsupported("the experiment was not planned".to_string()))?;
    if plan.layout.mesh.size() != 1 {
        return Err(unsupported(format!(
            "the layout has {} ranks; this release runs one process (`mesh {{ dp: 1 }}`), multi-rank runs come with the multi-process runtime",
            plan.layout.mesh.size()
        )));
    }
    let program = plan
        .rank(0)
        .ok_or_else(|| unsupported("the plan has no rank 0".to_string()))?;
    let config = x.train.as_ref().ok_or_else(|| {
        unsupported("train setting `train`: the experiment has no `train` block".to_string())
    })?;
    let spec = x.data.as_ref().map_err(|problems| {
        let first = problems
            .first()
            .map_or(String::new(), |d| d.message.clone());
        Error::spec(first)
    })?;
    let cuda = match req.device {
        Some(DeviceChoice::Cuda) => true,
        Some(DeviceChoice::Cpu) => false,
        None => config.cuda,
    };
    let mut backend = runtime.backend(x, plan, config, cuda)?;
    let stem = x.path.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
    let dir = req
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(stem));
    prepare_dir(&dir, req.resume)?;
    let source = std::fs::read_to_string(&x.path).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("{}: cannot read it again: {e}", x.path.display()),
        )
    })?;
    write(&dir.join("experiment.enigma"), &source)?;
    write(&dir.join("plan.txt"), &plan_summary(planned))?;
    let dataset = match dataset {
        Some(d) => Arc::new(d),
        None => Arc::new(Dataset::open(spec)?),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot handle signals: {e}")))?;
    }
    use std::io::IsTerminal;
    let opts = RunOptions {
        out: dir.clone(),
        resume: req.resume,
        stop_after: req.steps,
        progress: !req.quiet && std::io::stderr().is_terminal(),
        prefetch: 4,
    };
    let shape = StepShape {
        micro_batch: plan.micro_batch.max(1) as usize,
        microbatches: plan.microbatches.max(1),
    };
    if !req.quiet {
        eprintln!(
            "training {} on {}: {} parameters, {} steps of {} windows; run directory {}",
            x.path.display(),
            backend.device(),
            backend.parameters(),
            config.steps,
            config.batch,
            dir.display()
        );
    }
    let s = train(
        &mut backend,
        program,
        shape,
        dataset.clone(),
        config,
        &opts,
        stop,
    )?;
    if !s.interrupted {
        recovery(
            &mut backend,
            x,
            program,
            &dataset,
            config,
            shape,
            &dir,
            req.quiet,
        )?;
    }
    if !req.quiet {
        let corr = match (s.corr, s.corr_chance) {
            (Some(c), Some(ch)) => format!(", validation correlation {c:.3} (chance {ch:.3})"),
            _ => String::new(),
        };
        eprintln!(
            "{} at step {}: loss {}{corr}; metrics in {}",
            if s.interrupted { "stopped" } else { "done" },
            s.steps,
            s.last_loss.map_or("-".to_string(), |l| format!("{l:.4}")),
            dir.join("metrics.jsonl").display()
        );
    }
    Ok(if s.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Finished
    })
}

/// On synthetic data, holds out each neuron of the evaluation split in
/// turn and compares the model's predictions with the noise-free truth
/// (`run::recovery`); writes `recovery.json` and says the figures.
#[allow(clippy::too_many_arguments)]
fn recovery<B: Backend>(
    backend: &mut B,
    x: &Experiment,
    program: &RankProgram,
    dataset: &Dataset,
    config: &TrainConfig,
    shape: StepShape,
    dir: &Path,
    quiet: bool,
) -> Result<(), Error> {
    use super::recovery::{measure, Settings};
    let settings = Settings {
        split: config.eval_split,
        batch: shape.micro_batch,
        batches_per_session: config.eval_batches as usize,
        seed: config.seed,
    };
    let Some(r) = measure(
        backend,
        &x.graph,
        &program.forward_only(),
        dataset,
        settings,
    )
    .map_err(|e| {
        Error::new(
            e.kind,
            format!("measuring recovery of the simulation's structure: {e}"),
        )
    })?
    else {
        return Ok(());
    };
    let text = serde_json::to_string_pretty(&r)
        .map_err(|e| Error::new(ErrorKind::Io, format!("recovery.json: {e}")))?;
    write(&dir.join("recovery.json"), &format!("{text}\n"))?;
    if !quiet {
        eprintln!(
            "held-out neurons ({} over {} sessions): correlation with the noise-free truth {:.3} (with the data {:.3}, noise ceiling {:.3}; beyond the population's shared activity {:.3}); {:.0}% identified among their session's neurons (chance {:.0}%){}; in {}",
            r.neurons,
            r.sessions,
            r.corr_truth,
            r.corr_data,
            r.ceiling,
            r.corr_specific,
            100.0 * r.identified,
            100.0 * r.chance,
            match (r.running_gain, r.running_gain_truth) {
                (Some(g), Some(t)) => format!(
                    "; running gains recovered at {g:.3} (the noise-free truth: {t:.3})"
                ),
                _ => String::new(),
            },
            dir.join("recovery.json").display()
        );
    }
    Ok(())
}

/// A fresh run needs a directory without checkpoints, so that no earlier
/// run's work is overwritten; `--resume` needs the opposite.
fn prepare_dir(dir: &Path, resume: bool) -> Result<(), Error> {
    let ckpts = dir.join("checkpoints");
    let has = std::fs::read_dir(&ckpts)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if has && !resume {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "{} already holds checkpoints; pass --resume to continue that run, or --out for a new one",
                dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot create {}: {e}", dir.display()),
        )
    })
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot write {}: {e}", path.display()),
        )
    })
}
