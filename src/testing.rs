//! Fixtures for the unit tests of every stage (compiled only for tests).
//!
//! Unit tests of the planner, the dataset and the runtime need real
//! experiments; they get them here, through the driver, so that library
//! code below the checker never imports it (the layering rule of
//! `docs/ARCHITECTURE.md` holds for everything but these fixtures).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::diagnostics::Diagnostic;
use crate::driver::{compile, Artifacts, Options};
use crate::ir::data::DataSpec;
use crate::ir::Experiment;
use crate::source::{FsLoader, MemoryLoader, SourceLoader};

/// The path of `examples/<name>`.
pub fn example_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Checks `path` through `loader`; panics with the diagnostics when it has
/// errors.
pub fn checked(loader: &dyn SourceLoader, path: &Path) -> Artifacts {
    let a = compile(loader, path, &Options::check()).unwrap_or_else(|e| panic!("{e}"));
    if a.experiment.is_none() {
        let text: Vec<String> = a
            .diagnostics
            .iter()
            .map(|d| crate::diagnostics::render::plain(d, &a.program.sources))
            .collect();
        panic!("{} does not check:\n{}", path.display(), text.join("\n"));
    }
    a
}

/// The experiment of the file at `path` on disk.
pub fn experiment_at(path: &Path) -> Experiment {
    checked(&FsLoader, path).experiment.unwrap()
}

/// The experiment of `examples/<name>`.
pub fn example(name: &str) -> Experiment {
    experiment_at(&example_path(name))
}

/// The data specification of `text` checked in memory as `main.enigma`,
/// or every problem found on the way (check errors or E0221s).
pub fn data_spec_of(text: &str) -> Result<DataSpec, Vec<Diagnostic>> {
    let mut loader = MemoryLoader::new();
    loader.insert("main.enigma", text.to_string());
    let a = compile(&loader, Path::new("main.enigma"), &Options::check()).unwrap();
    match a.experiment {
        Some(x) => x.data,
        None => Err(a.diagnostics),
    }
}

/// The data specification of `text` written to `dir/main.enigma`.
pub fn data_spec(dir: &Path, text: &str) -> DataSpec {
    let path = dir.join("main.enigma");
    std::fs::write(&path, text).unwrap();
    experiment_at(&path)
        .data
        .unwrap_or_else(|e| panic!("{e:?}"))
}
