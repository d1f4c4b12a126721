//! `enigma eval RUN_DIR [--split test]`: a run's newest checkpoint scored
//! on a split by the run's own evaluation (`run::evaluate`), beside the
//! built-in baselines on the same windows. Like `run`, it executes in the
//! runtime program (`enigma-run`), which holds libtorch.

use std::path::PathBuf;

use super::output::Output;
use super::run::DeviceArg;
use super::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::dataset::loader::Dataset;
use crate::driver::{compile, Goal, Options};
use crate::ir::data::Split;
use crate::plan::report::Options as PlanOptions;
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

pub struct Request {
    pub run_dir: PathBuf,
    pub split: SplitArg,
    pub all: bool,
    pub device: Option<DeviceArg>,
    pub stdlib: Option<PathBuf>,
}

pub fn run(out: &Output, trainer: &dyn Trainer, req: Request) -> i32 {
    let file = experiment_file(&req.run_dir);
    let options = Options {
        resolve: ResolveOptions {
            stdlib: req.stdlib.clone().map(Stdlib::Dir).unwrap_or_default(),
        },
        goal: Goal::Plan(PlanOptions {
            world: Some(1),
            ..PlanOptions::default()
        }),
        record_types: false,
    };
    let a = match compile(&FsLoader, &file, &options) {
        Ok(a) => a,
        Err(e) => {
            out.fatal(&format!(
                "{}: {e} (is {} a run directory?)",
                file.display(),
                req.run_dir.display()
            ));
            return EXIT_USAGE;
        }
    };
    out.diagnostics(&a.diagnostics, &a.program.sources);
    let (Some(x), None, false) = (&a.experiment, &a.error, a.has_errors()) else {
        if let Some(e) = &a.error {
            out.error(e, &a.program.sources);
        }
        out.summary("not evaluated: the run's experiment has errors");
        return EXIT_DIAGNOSTICS;
    };
    let Some(planned) = &a.planned else {
        out.fatal(&format!(
            "{}: the experiment was not planned",
            file.display()
        ));
        return EXIT_USAGE;
    };
    let split = match req.split {
        SplitArg::Train => Split::Train,
        SplitArg::Val => Split::Val,
        SplitArg::Test => Split::Test,
    };
    let request = EvalRequest {
        run_dir: req.run_dir.clone(),
        split,
        all: req.all,
        device: req.device.map(DeviceChoice::from),
    };
    // Opened once, for the checkpoint and the baselines (the driver has it
    // already when the data gave sizes the plan needed).
    let opened = match (&a.dataset, &x.data) {
        (Some(_), _) => None,
        (None, Ok(spec)) => match Dataset::open(spec) {
            Ok(ds) => Some(ds),
            Err(e) => {
                out.error(&e, &a.program.sources);
                return EXIT_USAGE;
            }
        },
        (None, Err(problems)) => {
            out.diagnostics(problems, &a.program.sources);
            out.summary("not evaluated: the run's data cannot be read");
            return EXIT_DIAGNOSTICS;
        }
    };
    let Some(dataset) = a.dataset.as_ref().or(opened.as_ref()) else {
        return EXIT_USAGE;
    };
    let e = match trainer.evaluate(x, planned, dataset, &request) {
        Ok(e) => e,
        Err(e) => {
            out.error(&e, &a.program.sources);
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
