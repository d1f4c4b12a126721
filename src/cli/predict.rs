//! `enigma predict RUN_DIR --out preds.npy [--split test]`: the model's
//! predictions for every window of a split, with the recorded values, the
//! mask of held-out entries and each window's start time
//! (`run::predict`). Like `eval`, it executes in the runtime program
//! (`enigma-run`), which holds libtorch.

use std::path::PathBuf;

use super::eval::{open_run, SplitArg};
use super::output::Output;
use super::run::DeviceArg;
use super::{EXIT_OK, EXIT_USAGE};
use crate::run::predict::PredictRequest;
use crate::run::session::{DeviceChoice, Trainer};

pub struct Request {
    pub run_dir: PathBuf,
    pub split: SplitArg,
    pub out: PathBuf,
    pub device: Option<DeviceArg>,
    pub stdlib: Option<PathBuf>,
}

pub fn run(out: &Output, trainer: &dyn Trainer, req: Request) -> i32 {
    let run = match open_run(out, &req.run_dir, req.stdlib.clone(), "predicted") {
        Ok(run) => run,
        Err(status) => return status,
    };
    let Some((x, planned, dataset)) = run.parts() else {
        return EXIT_USAGE;
    };
    let request = PredictRequest {
        run_dir: req.run_dir.clone(),
        split: req.split.split(),
        out: req.out.clone(),
        device: req.device.map(DeviceChoice::from),
    };
    match trainer.predict(x, planned, dataset, &request) {
        Ok(p) => {
            out.summary(&format!(
                "{} windows of the {} split predicted at step {}: {}",
                p.windows,
                request.split.name(),
                p.step,
                p.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            EXIT_OK
        }
        Err(e) => {
            out.error(&e, &run.a.program.sources);
            EXIT_USAGE
        }
    }
}
