//! `enigma export RUN_DIR`: the trained weights of a run as a safetensors
//! file with PyTorch-style dotted names, and a JSON description beside it
//! (`run::export`). Pure Rust: it reads the checkpoint with the checkpoint
//! store and needs no libtorch. The model's configuration comes from the
//! run's experiment compiled again here, with the run's overrides, so that
//! the runtime layer never sees the driver or the syntax tree.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::output::Output;
use super::{EXIT_OK, EXIT_USAGE};
use crate::diagnostics::{Error, ErrorKind};
use crate::driver::{compile_with, Goal, Options, Override};
use crate::resolve::{Options as ResolveOptions, Stdlib};
use crate::run::checkpoint::Checkpoint;
use crate::run::evaluate::experiment_file;
use crate::run::export::{export, model_config, ExportRequest, Pick};
use crate::source::FsLoader;
use crate::syntax::ast::ItemKind;

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
    let describe =
        |ckpt: &Checkpoint| describe_model(&req.run_dir, req.stdlib.clone(), &overrides, ckpt);
    let request = ExportRequest {
        run_dir: req.run_dir.clone(),
        out: req.out.clone(),
        pick,
    };
    match export(&request, describe) {
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

/// The model a run trained, described for the export's JSON: its
/// experiment compiled again (without opening the data) with the run's
/// `--set` overrides, and the dims as the file writes them. An error says
/// why the experiment did not compile.
fn describe_model(
    run_dir: &Path,
    stdlib: Option<PathBuf>,
    overrides: &[Override],
    ckpt: &Checkpoint,
) -> Result<Value, String> {
    let file = experiment_file(run_dir);
    let options = Options {
        resolve: ResolveOptions {
            stdlib: stdlib.map(Stdlib::Dir).unwrap_or_default(),
        },
        goal: Goal::Check,
        record_types: false,
    };
    let a = compile_with(&FsLoader, &file, &options, overrides)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let Some(x) = &a.experiment else {
        let first = a
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map_or("it has errors".to_string(), |d| d.message.clone());
        return Err(format!("{} does not check: {first}", file.display()));
    };
    let sources = &a.program.sources;
    let root = a.program.root_module();
    let mut dims = Map::new();
    for item in root.ast.iter().flat_map(|f| &f.items) {
        if let ItemKind::Dim(d) = &item.kind {
            let value = d
                .value
                .as_ref()
                .map(|v| sources.get(root.file).slice(v.span).to_string());
            dims.insert(
                d.name.name.clone(),
                json!({"value": value, "per_session": d.per_session.is_some()}),
            );
        }
    }
    let overrides: Vec<&str> = overrides.iter().map(Override::as_str).collect();
    Ok(model_config(x, &file, dims, &overrides, ckpt))
}
