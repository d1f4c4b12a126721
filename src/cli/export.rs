//! `enigma export RUN_DIR`: the trained weights of a run as a safetensors
//! file with PyTorch-style dotted names, and a JSON description beside it
//! (`run::export`). Pure Rust: it reads the checkpoint with the checkpoint
//! store and needs no libtorch.

use std::path::PathBuf;

use super::output::Output;
use super::{EXIT_OK, EXIT_USAGE};
use crate::diagnostics::{Error, ErrorKind};
use crate::run::export::{export, ExportRequest, Pick};

/// What the command line asked for.
pub struct Request {
    pub run_dir: PathBuf,
    pub out: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
    pub step: Option<u64>,
    pub stdlib: Option<PathBuf>,
}

pub fn run(output: &Output, req: Request) -> i32 {
    // clap makes `--checkpoint` and `--step` exclusive, so at most one is
    // here.
    let pick = match (req.checkpoint, req.step) {
        (Some(file), _) => Pick::File(file),
        (None, Some(step)) => Pick::Step(step),
        (None, None) => Pick::Newest,
    };
    // The run's `--set` overrides, so that the model described is the
    // one trained.
    let overrides = match super::eval::stored_overrides(&req.run_dir) {
        Ok(o) => o,
        Err(e) => {
            output.error(&Error::new(ErrorKind::Io, e), &Default::default());
            return EXIT_USAGE;
        }
    };
    let request = ExportRequest {
        run_dir: req.run_dir,
        out: req.out,
        pick,
        stdlib: req.stdlib,
        overrides,
    };
    match export(&request) {
        Ok(r) => {
            if let Some(why) = &r.model_error {
                eprintln!(
                    "warning: the description has no model configuration: {why} (the weights \
                     are exported all the same)"
                );
            }
            eprintln!(
                "wrote {}: {} tensors, {} parameters, step {} of {}",
                r.weights.display(),
                r.tensors,
                r.parameters,
                r.step,
                r.checkpoint.display()
            );
            eprintln!("wrote {}", r.description.display());
            EXIT_OK
        }
        Err(e) => {
            output.error(&e, &Default::default());
            EXIT_USAGE
        }
    }
}
