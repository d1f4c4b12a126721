//! `enigma baseline FILE`: check the experiment, open its data, and print
//! the built-in baselines scored as `enigma run` evaluates the model
//! (`run::baseline`). Pure Rust: it needs no libtorch.

use std::path::{Path, PathBuf};

use super::output::Output;
use super::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::dataset::loader::Dataset;
use crate::driver::{compile, Goal, Options};
use crate::resolve::{Options as ResolveOptions, Stdlib};
use crate::run::baseline::{baselines, render};
use crate::source::FsLoader;

pub fn run(out: &Output, file: &Path, stdlib: Option<PathBuf>) -> i32 {
    let options = Options {
        resolve: ResolveOptions {
            stdlib: stdlib.map(Stdlib::Dir).unwrap_or_default(),
        },
        goal: Goal::Check,
        record_types: false,
    };
    let a = match compile(&FsLoader, file, &options) {
        Ok(a) => a,
        Err(e) => {
            out.fatal(&format!("{}: {e}", file.display()));
            return EXIT_USAGE;
        }
    };
    out.diagnostics(&a.diagnostics, &a.program.sources);
    let Some(x) = &a.experiment else {
        out.summary("no baselines: the experiment has errors");
        return EXIT_DIAGNOSTICS;
    };
    let spec = match &x.data {
        Ok(spec) => spec,
        Err(problems) => {
            out.diagnostics(problems, &a.program.sources);
            out.summary("no baselines: the experiment's data cannot be read");
            return EXIT_DIAGNOSTICS;
        }
    };
    let report = Dataset::open(spec).and_then(|ds| baselines(x, &ds));
    match report {
        Ok(r) => {
            print!("{}", render(&r));
            EXIT_OK
        }
        Err(e) => {
            out.error(&e, &a.program.sources);
            EXIT_USAGE
        }
    }
}
