//! `enigma eval RUN_DIR [--split test]`: a run's newest checkpoint scored
//! on a split by the run's own evaluation (`run::evaluate`), beside the
//! built-in baselines on the same windows. Like `run`, it executes in the
//! runtime program (`enigma-run`), which holds libtorch.

use std::path::{Path, PathBuf};

use super::output::Output;
use super::run::DeviceArg;
use super::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::dataset::loader::Dataset;
use crate::driver::{compile_with, Artifacts, Goal, Options, Override};
use crate::ir::data::Split;
use crate::ir::Experiment;
use crate::plan::report::Options as PlanOptions;
use crate::plan::report::Planned;
use crate::resolve::{Options as ResolveOptions, Stdlib};
use crate::run::baseline::baselines;
use crate::run::evaluate::{experiment_file, EvalRequest};
use crate::run::session::{DeviceChoice, Trainer};
use crate::source::FsLoader;

/// The split flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    Train,
    Val,
    Test,
}

impl SplitArg {
    /// The split it names.
    pub fn split(self) -> Split {
        match self {
            SplitArg::Train => Split::Train,
            SplitArg::Val => Split::Val,
            SplitArg::Test => Split::Test,
        }
    }
}

pub struct Request {
    pub run_dir: PathBuf,
    pub split: SplitArg,
    pub all: bool,
    pub device: Option<DeviceArg>,
    pub stdlib: Option<PathBuf>,
}

/// The `--set` overrides a run was trained with (`overrides.txt` in its
/// run directory; none when it is absent), to check the same experiment
/// again.
pub fn stored_overrides(run_dir: &Path) -> Result<Vec<Override>, String> {
    let path = run_dir.join(crate::run::evaluate::OVERRIDES);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            l.parse::<Override>()
                .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// A run directory's experiment, checked and planned again for one
/// process with the run's overrides, and its data opened: what `enigma
/// eval` and `enigma predict` start from.
pub(super) struct OpenRun {
    pub a: Artifacts,
    opened: Option<Dataset>,
}

impl OpenRun {
    /// The experiment, its plan and its data (all present once opened).
    pub fn parts(&self) -> Option<(&Experiment, &Planned, &Dataset)> {
        let x = self.a.experiment.as_ref()?;
        let planned = self.a.planned.as_ref()?;
        let dataset = self.a.dataset.as_ref().or(self.opened.as_ref())?;
        Some((x, planned, dataset))
    }
}

/// Opens `run_dir` for `what` (`evaluated`, `predicted`), reporting
/// problems on `out`; the exit status when it cannot.
pub(super) fn open_run(
    out: &Output,
    run_dir: &Path,
    stdlib: Option<PathBuf>,
    what: &str,
) -> Result<OpenRun, i32> {
    let file = experiment_file(run_dir);
    let overrides = stored_overrides(run_dir).map_err(|e| {
        out.fatal(&e);
        EXIT_USAGE
    })?;
    let options = Options {
        resolve: ResolveOptions {
            stdlib: stdlib.map(Stdlib::Dir).unwrap_or_default(),
        },
        goal: Goal::Plan(PlanOptions {
            world: Some(1),
            ..PlanOptions::default()
        }),
        record_types: false,
    };
    let a = compile_with(&FsLoader, &file, &options, &overrides).map_err(|e| {
        out.fatal(&format!(
            "{}: {e} (is {} a run directory?)",
            file.display(),
            run_dir.display()
        ));
        EXIT_USAGE
    })?;
    out.diagnostics(&a.diagnostics, &a.program.sources);
    let (Some(x), None, false) = (&a.experiment, &a.error, a.has_errors()) else {
        if let Some(e) = &a.error {
            out.error(e, &a.program.sources);
        }
        out.summary(&format!("not {what}: the run's experiment has errors"));
        return Err(EXIT_DIAGNOSTICS);
    };
    if a.planned.is_none() {
        out.fatal(&format!(
            "{}: the experiment was not planned",
            file.display()
        ));
        return Err(EXIT_USAGE);
    }
    // Opened once, for the checkpoint and the baselines (the driver has it
    // already when the data gave sizes the plan needed).
    let opened = match (&a.dataset, &x.data) {
        (Some(_), _) => None,
        (None, Ok(spec)) => match Dataset::open(spec) {
            Ok(ds) => Some(ds),
            Err(e) => {
                out.error(&e, &a.program.sources);
                return Err(EXIT_USAGE);
            }
        },
        (None, Err(problems)) => {
            out.diagnostics(problems, &a.program.sources);
            out.summary(&format!("not {what}: the run's data cannot be read"));
            return Err(EXIT_DIAGNOSTICS);
        }
    };
    Ok(OpenRun { a, opened })
}

pub fn run(out: &Output, trainer: &dyn Trainer, req: Request) -> i32 {
    let run = match open_run(out, &req.run_dir, req.stdlib.clone(), "evaluated") {
        Ok(run) => run,
        Err(status) => return status,
    };
    let Some((x, planned, dataset)) = run.parts() else {
        return EXIT_USAGE;
    };
    let split = req.split.split();
    let request = EvalRequest {
        run_dir: req.run_dir.clone(),
        split,
        all: req.all,
        device: req.device.map(DeviceChoice::from),
    };
    let e = match trainer.evaluate(x, planned, dataset, &request) {
        Ok(e) => e,
        Err(e) => {
            out.error(&e, &run.a.program.sources);
            return EXIT_USAGE;
        }
    };
    let fig = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    let s = &e.scores;
    println!(
        "{} at step {}, {} split ({} windows): loss {:.4}, correlation {} (chance {})",
        req.run_dir.display(),
        e.step,
        split.name(),
        s.windows,
        s.loss,
        fig(s.corr),
        fig(s.chance)
    );
    // The baselines on the same windows, when the run's evaluation batches
    // are the ones scored (they score the run's `eval.batches`).
    if !req.all && split != Split::Train {
        let best = baselines(x, dataset);
        if let Ok(r) = best {
            if let Some(b) = r.best() {
                let c = if split == Split::Test {
                    b.test.corr
                } else {
                    b.val.corr
                };
                println!(
                    "best baseline (chosen on validation): {} {} correlation {}",
                    b.name,
                    b.setting,
                    fig(c)
                );
            }
        }
    }
    EXIT_OK
}
