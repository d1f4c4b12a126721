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
use std::time::Duration;

use super::backend::Backend;
use super::failure;
use super::launch::World;
use super::progress::Display;
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
    /// Without a terminal, one progress line every this many steps
    /// (default: about twenty a run, at least every 100 steps).
    pub log_every: Option<u64>,
    /// Skip the built-in baselines at the end (`baselines.txt`).
    pub no_baselines: bool,
    /// Start from the shared weights of this run directory's newest
    /// checkpoint (a few-shot fit of new sessions).
    pub init_from: Option<PathBuf>,
    /// Train only the per-session tables.
    pub freeze_shared: bool,
    /// The experiment as checked, command-line overrides spliced in (the
    /// root file's text when there were none): what the run directory
    /// keeps as `experiment.enigma`.
    pub resolved: Option<String>,
    /// The `--set KEY=VALUE` overrides, as typed, which `enigma eval`
    /// applies again (`overrides.txt`).
    pub overrides: Vec<String>,
    /// This process's place in the job.
    pub world: World,
}

impl Default for World {
    fn default() -> World {
        World::single()
    }
}

/// The job a backend joins: who this process is, where the run directory
/// is (heartbeats and failure records go there), and how long a
/// collective may take.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    pub world: &'a World,
    pub run_dir: &'a Path,
    pub collective_timeout: Duration,
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

    /// A backend holding the parameters `program` (this rank's program of
    /// `plan`) holds, initialised from the run's seed, on the CPU or a
    /// CUDA device, joined to the other ranks of `job`.
    fn backend(
        &self,
        x: &Experiment,
        plan: &Plan,
        program: &RankProgram,
        config: &TrainConfig,
        cuda: bool,
        job: &Job<'_>,
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

    /// Scores a run's newest checkpoint of `x` on a split
    /// ([`super::evaluate::evaluate`]).
    fn evaluate(
        &self,
        x: &Experiment,
        planned: &Planned,
        dataset: &Dataset,
        req: &super::evaluate::EvalRequest,
    ) -> Result<super::evaluate::Evaluated, Error>;

    /// Writes the predictions of a run's newest checkpoint of `x` for
    /// every window of a split ([`super::predict::predict`]).
    fn predict(
        &self,
        x: &Experiment,
        planned: &Planned,
        dataset: &Dataset,
        req: &super::predict::PredictRequest,
    ) -> Result<super::predict::Predicted, Error>;
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

    fn evaluate(
        &self,
        x: &Experiment,
        planned: &Planned,
        dataset: &Dataset,
        req: &super::evaluate::EvalRequest,
    ) -> Result<super::evaluate::Evaluated, Error> {
        super::evaluate::evaluate(self, x, planned, dataset, req)
    }

    fn predict(
        &self,
        x: &Experiment,
        planned: &Planned,
        dataset: &Dataset,
        req: &super::predict::PredictRequest,
    ) -> Result<super::predict::Predicted, Error> {
        super::predict::predict(self, x, planned, dataset, req)
    }
}

/// Trains `x` as `planned` lays it out, with `dataset` when the driver
/// opened it already. In a job of several processes every rank calls it;
/// the leader (rank 0) writes the run directory's shared files and
/// prints, and a rank that fails records why (`failure`) and returns its
/// error naming the rank.
pub fn run<R: Runtime>(
    runtime: &R,
    x: &Experiment,
    planned: &Planned,
    dataset: Option<Dataset>,
    req: &Request,
) -> Result<Outcome, Error> {
    let world = &req.world;
    if world.size > 1 {
        failure::set_world(world);
        failure::install_panic_hook();
    }
    let result = run_rank(runtime, x, planned, dataset, req);
    match result {
        Err(e) if world.size > 1 => {
            let e = e.rank(world.rank);
            failure::record(&e.to_string());
            Err(e)
        }
        other => other,
    }
}

fn run_rank<R: Runtime>(
    runtime: &R,
    x: &Experiment,
    planned: &Planned,
    dataset: Option<Dataset>,
    req: &Request,
) -> Result<Outcome, Error> {
    let unsupported = |m: String| Error::new(ErrorKind::Unsupported, m);
    let world = &req.world;
    let plan = planned
        .plan
        .as_ref()
        .ok_or_else(|| unsupported("the experiment was not planned".to_string()))?;
    if plan.layout.mesh.size() != world.size {
        // The driver plans for the world it is given, so this is E0301
        // caught late: say it the same way.
        return Err(Error::new(
            ErrorKind::Launch,
            format!(
                "the mesh has {} ranks but the job runs {} processes",
                plan.layout.mesh.size(),
                world.size
            ),
        ));
    }
    let program = plan.rank(world.rank).ok_or_else(|| {
        Error::internal(format!("the plan has no program for rank {}", world.rank))
    })?;
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
    let stem = x.path.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
    let dir = req
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(stem));
    prepare_dir(&dir, req.resume)?;
    failure::set_run_dir(&dir);
    let leader = world.is_leader();
    let quiet = req.quiet || !leader;
    let job = Job {
        world,
        run_dir: &dir,
        collective_timeout: Duration::from_secs_f64(x.parallel.collective_timeout.max(1.0)),
    };
    let mut backend = runtime.backend(x, plan, program, config, cuda, &job)?;
    if leader {
        let source = match &req.resolved {
            Some(text) => text.clone(),
            None => std::fs::read_to_string(&x.path).map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("{}: cannot read it again: {e}", x.path.display()),
                )
            })?,
        };
        write(&dir.join("experiment.enigma"), &source)?;
        // The overrides go beside it, so that `enigma eval` and `enigma
        // predict`, which read the data through the original file's paths,
        // check the same experiment; a run without any leaves no file.
        let overrides = dir.join(super::evaluate::OVERRIDES);
        if req.overrides.is_empty() {
            if overrides.exists() {
                std::fs::remove_file(&overrides).map_err(|e| {
                    Error::new(ErrorKind::Io, format!("{}: {e}", overrides.display()))
                })?;
            }
        } else {
            write(&overrides, &format!("{}\n", req.overrides.join("\n")))?;
        }
        // Where the experiment is, so that `enigma eval` reads its data
        // through the paths it names relative to itself.
        let at = std::fs::canonicalize(&x.path).unwrap_or_else(|_| x.path.clone());
        write(
            &dir.join(super::evaluate::EXPERIMENT_PATH),
            &format!("{}\n", at.display()),
        )?;
        write(&dir.join("plan.txt"), &plan_summary(planned))?;
    }
    let dataset = match dataset {
        Some(d) => Arc::new(d),
        None => Arc::new(Dataset::open(spec)?),
    };
    let stop = Arc::new(AtomicBool::new(false));
    // SIGUSR1 is what `mpirun` forwards to its processes (it ends them on
    // SIGINT and SIGTERM), so it asks for the same: checkpoint and stop.
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGUSR1,
    ] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot handle signals: {e}")))?;
    }
    use std::io::IsTerminal;
    let opts = RunOptions {
        out: dir.clone(),
        resume: req.resume,
        stop_after: req.steps,
        display: Display::choose(
            quiet,
            std::io::stderr().is_terminal(),
            req.log_every,
            req.steps.map_or(config.steps, |s| s.min(config.steps)),
        ),
        prefetch: 4,
        leader,
        rank: world.rank,
        world: world.size,
        init_from: req.init_from.clone(),
        freeze_shared: req.freeze_shared,
    };
    let shape = StepShape {
        micro_batch: plan.micro_batch.max(1) as usize,
        microbatches: plan.microbatches.max(1),
        pipeline: plan.layout.microbatches.max(1),
        data_part: data_part(plan, world.rank),
    };
    if !quiet {
        let procs = if world.size > 1 {
            format!(
                " ({} processes, {} over {})",
                world.size,
                crate::plan::report::describe_layout(&plan.layout),
                world.launcher.as_str()
            )
        } else {
            String::new()
        };
        eprintln!(
            "training {} on {}{procs}: {} parameters, {} steps of {} windows; run directory {}",
            x.path.display(),
            backend.device(),
            backend.parameters(),
            config.steps,
            config.batch,
            dir.display()
        );
    }
    // What training adds to the process is measured from here (the weights
    // placed, the data opened): `ranks/rank-N.json`.
    let peak_since_start = super::ranks::reset_peak();
    let rss_start = super::ranks::status_bytes("VmRSS");
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
            quiet,
            leader,
        )?;
    }
    let measured = super::ranks::Measured {
        device: backend.device(),
        step_s: s.step_s.clone(),
        rss_start,
        peak_rss: s.peak_rss,
        peak_since_start,
    };
    let memory = crate::plan::cost::memory(&x.graph, plan, program);
    let estimate = planned.estimate.as_ref().map(|e| e.step_s);
    super::ranks::write(&dir, plan, program, &measured, Some(memory), estimate)?;
    backend.barrier()?;
    backend.finish();
    // The baselines, scored as the evaluation scored the model, beside it
    // (`baselines.txt`); the run stands whether or not they apply. After
    // the job's last collective: fitting them on a large dataset must not
    // keep the other ranks waiting past the collective timeout.
    let best = if leader && !s.interrupted && !req.no_baselines {
        baselines(x, &dataset, &dir)?
    } else {
        None
    };
    if !quiet {
        let split = match config.eval_split {
            crate::ir::data::Split::Val => "validation",
            other => other.name(),
        };
        let corr = match (s.corr, s.corr_chance) {
            (Some(c), Some(ch)) => format!(", {split} correlation {c:.3} (chance {ch:.3})"),
            _ => String::new(),
        };
        let corr = match best {
            Some((name, c)) => format!("{corr}; best baseline {name} {c:.3}"),
            None => corr,
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

/// This rank's part of each batch: its position in its data-parallel
/// group and the group's size (`(0, 1)` without one).
fn data_part(plan: &Plan, rank: usize) -> (usize, usize) {
    use crate::plan::program::GroupKind;
    plan.groups
        .iter()
        .find(|g| g.kind == GroupKind::Data && g.ranks.contains(&rank))
        .and_then(|g| Some((g.ranks.iter().position(|&r| r == rank)?, g.ranks.len())))
        .unwrap_or((0, 1))
}

/// Writes `baselines.txt` (`run::baseline`) and returns the best
/// baseline's correlation on the evaluation split, when any applies.
fn baselines(
    x: &Experiment,
    dataset: &Dataset,
    dir: &Path,
) -> Result<Option<(String, f64)>, Error> {
    let text;
    let best = match super::baseline::baselines(x, dataset) {
        Ok(r) => {
            text = super::baseline::render(&r);
            let test = x
                .train
                .as_ref()
                .is_some_and(|c| c.eval_split == crate::ir::data::Split::Test);
            r.best().and_then(|b| {
                let c = if test { b.test.corr } else { b.val.corr }?;
                Some((
                    format!("{} {}", b.name, b.setting).trim_end().to_string(),
                    c,
                ))
            })
        }
        Err(e) => {
            text = format!("baselines: not applicable: {}\n", e.message);
            None
        }
    };
    write(&dir.join("baselines.txt"), &text)?;
    Ok(best)
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
    leader: bool,
) -> Result<(), Error> {
    use super::recovery::{measure, Settings};
    let settings = Settings {
        split: config.eval_split,
        batch: shape.global_micro_batch(),
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
    if !leader {
        return Ok(());
    }
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
