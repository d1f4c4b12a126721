//! Checked experiments for the integration tests, through the driver as
//! `enigma check` runs it.

#![allow(dead_code)]

use std::path::Path;

use enigma::driver::{compile, Artifacts, Options};
use enigma::ir::{Experiment, Graph};
use enigma::source::{FsLoader, SourceLoader};

/// What the driver makes of `path`, checked only.
pub fn checked_with(loader: &dyn SourceLoader, path: &Path) -> Artifacts {
    compile(loader, path, &Options::check()).unwrap_or_else(|e| panic!("{e}"))
}

/// What the driver makes of the file at `path`, checked only.
pub fn checked(path: &Path) -> Artifacts {
    checked_with(&FsLoader, path)
}

/// The experiment of the file at `path`, which must check without errors.
pub fn experiment(path: &Path) -> Experiment {
    let a = checked(path);
    let problems: Vec<String> = a
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| enigma::diagnostics::render::plain(d, &a.program.sources))
        .collect();
    a.experiment.unwrap_or_else(|| {
        panic!(
            "{} does not check:\n{}",
            path.display(),
            problems.join("\n")
        )
    })
}

/// The model graph of `examples/<name>`.
pub fn example_graph(name: &str) -> Graph {
    experiment(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
    )
    .graph
}
