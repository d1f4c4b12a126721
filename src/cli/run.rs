//! `enigma run FILE`: check, plan for one rank, and train on libtorch.
//!
//! An experiment with errors stops here with `check`'s diagnostics; a
//! layout over more than one rank is refused (the multi-process runtime
//! is the next release). Everything else is `run::train` over the
//! libtorch backend. Offered only in builds with the `torch` feature.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::output::{count, Output};
use super::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::dataset::loader::Dataset;
use crate::dataset::spec::DataSpec;
use crate::plan::report::{plan_program, summary as plan_summary, Options as PlanOptions};
use crate::resolve::{Options, Stdlib};
use crate::run::config::TrainConfig;
use crate::run::torch::{device, TorchBackend};
use crate::run::train::{train, RunOptions, StepShape};
use crate::source::FsLoader;

/// Exit status of a run stopped by SIGINT or SIGTERM after it saved a
/// checkpoint (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

/// The device flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

pub struct Request<'a> {
    pub file: &'a Path,
    pub stdlib: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub resume: bool,
    pub device: Option<DeviceArg>,
    pub steps: Option<u64>,
    pub quiet: bool,
}

pub fn run(out: &Output, req: Request) -> i32 {
    match go(out, &req) {
        Ok(code) => code,
        Err(e) => {
            out.fatal(&format!("{}: {e}", req.file.display()));
            EXIT_USAGE
        }
    }
}

fn go(out: &Output, req: &Request) -> Result<i32, String> {
    let options = Options {
        stdlib: req.stdlib.clone().map(Stdlib::Dir).unwrap_or_default(),
    };
    let (program, graph) =
        crate::check::check_file_ir(&FsLoader, req.file, &options).map_err(|e| e.to_string())?;
    out.diagnostics(&program.diagnostics, &program.sources);
    let (errors, _) = count(&program.diagnostics);
    let Some(g) = graph.filter(|_| errors == 0) else {
        out.summary("not run: the experiment has errors");
        return Ok(EXIT_DIAGNOSTICS);
    };
    // Sizes only the data gives (`N` behind a `select`) are bound before
    // planning; the dataset opened for them is the one the run reads.
    let base = req.file.parent().unwrap_or(Path::new("."));
    let bound = crate::dataset::bind::bind(&program, g, &FsLoader, base)?;
    let g = bound.graph;
    let planned = plan_program(
        &program,
        &g,
        &PlanOptions {
            world: None,
            cluster: Default::default(),
            search: false,
        },
    )
    .map_err(|e| e.to_string())?;
    out.diagnostics(&planned.diagnostics, &program.sources);
    if count(&planned.diagnostics).0 > 0 {
        out.summary("not run: the layout has errors");
        return Ok(EXIT_DIAGNOSTICS);
    }
    let plan = planned
        .plan
        .as_ref()
        .ok_or("the experiment was not planned")?;
    if plan.layout.mesh.size() != 1 {
        return Err(format!(
            "the layout has {} ranks; this release runs one process (`mesh {{ dp: 1 }}`), multi-rank runs come with the multi-process runtime",
            plan.layout.mesh.size()
        ));
    }
    let program_ops = plan.rank(0).ok_or("the plan has no rank 0")?;
    let config = TrainConfig::of(&program).map_err(|e| e.to_string())?;
    let cuda = match req.device {
        Some(DeviceArg::Cuda) => true,
        Some(DeviceArg::Cpu) => false,
        None => config.cuda,
    };
    let dev = device(cuda).map_err(|e| e.to_string())?;
    let stem = req
        .file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("run");
    let dir = req
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(stem));
    prepare_dir(&dir, req.resume)?;
    let source =
        std::fs::read_to_string(req.file).map_err(|e| format!("cannot read it again: {e}"))?;
    write(&dir.join("experiment.enigma"), &source)?;
    write(&dir.join("plan.txt"), &plan_summary(&planned))?;
    let dataset = match bound.dataset {
        Some(d) => Arc::new(d),
        None => {
            let spec = DataSpec::from_program(&program, &g, base).map_err(|e| e.to_string())?;
            Arc::new(Dataset::open(&spec).map_err(|e| e.to_string())?)
        }
    };
    let mut backend = TorchBackend::new(
        &g,
        plan,
        dev,
        config.precision,
        config.optimizer.clone(),
        config.seed,
    )
    .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("cannot handle signals: {e}"))?;
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
            req.file.display(),
            crate::run::backend::Backend::device(&backend),
            backend.parameters(),
            config.steps,
            config.batch,
            dir.display()
        );
    }
    let s = train(
        &mut backend,
        program_ops,
        shape,
        dataset.clone(),
        &config,
        &opts,
        stop,
    )
    .map_err(|e| e.to_string())?;
    if !s.interrupted {
        recovery(
            &mut backend,
            &g,
            program_ops,
            &dataset,
            &config,
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
        EXIT_INTERRUPTED
    } else {
        EXIT_OK
    })
}

/// On synthetic data, holds out each neuron of the evaluation split in
/// turn and compares the model's predictions with the noise-free truth
/// (`run::recovery`); writes `recovery.json` and says the figures.
#[allow(clippy::too_many_arguments)]
fn recovery(
    backend: &mut TorchBackend,
    g: &crate::ir::Graph,
    program: &crate::plan::program::RankProgram,
    dataset: &Dataset,
    config: &TrainConfig,
    shape: StepShape,
    dir: &Path,
    quiet: bool,
) -> Result<(), String> {
    use crate::run::recovery::{measure, Settings};
    let settings = Settings {
        split: config.eval_split(),
        batch: shape.micro_batch,
        batches_per_session: config.eval_batches as usize,
        seed: config.seed,
    };
    let Some(r) = measure(backend, g, &program.forward_only(), dataset, settings)
        .map_err(|e| format!("measuring recovery of the simulation's structure: {e}"))?
    else {
        return Ok(());
    };
    let text = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
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
fn prepare_dir(dir: &Path, resume: bool) -> Result<(), String> {
    let ckpts = dir.join("checkpoints");
    let has = std::fs::read_dir(&ckpts)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if has && !resume {
        return Err(format!(
            "{} already holds checkpoints; pass --resume to continue that run, or --out for a new one",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
