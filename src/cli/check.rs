//! `enigma check FILE...`: report every problem; with `--stats` or
//! `--emit ir`, also describe the typed model of each file that checks.

use std::path::PathBuf;

use super::output::{count, plural, Output};
use super::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::driver::{compile_with, Options, Override};
use crate::resolve::Stdlib;
use crate::source::FsLoader;

/// What to print besides diagnostics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    pub stats: bool,
    pub emit: Option<super::Emit>,
}

pub fn run(
    out: &Output,
    files: &[PathBuf],
    stdlib: Option<PathBuf>,
    report: Report,
    set: &[Override],
) -> i32 {
    let mut options = Options::check();
    options.resolve.stdlib = stdlib.map(Stdlib::Dir).unwrap_or_default();
    let mut status = EXIT_OK;
    let (mut errors, mut warnings) = (0, 0);
    for path in files {
        let a = match compile_with(&FsLoader, path, &options, set) {
            Ok(a) => a,
            Err(e) => {
                out.fatal(&e.to_string());
                status = EXIT_USAGE;
                continue;
            }
        };
        out.diagnostics(&a.diagnostics, &a.program.sources);
        let (e, w) = count(&a.diagnostics);
        errors += e;
        warnings += w;
        if e > 0 && status == EXIT_OK {
            status = EXIT_DIAGNOSTICS;
        }
        if let Some(g) = a.experiment.as_ref().map(|x| &x.graph) {
            if report.stats {
                if files.len() > 1 {
                    println!("{}:", path.display());
                }
                print!("{}", crate::ir::stats::report(g));
            }
            if report.emit == Some(super::Emit::Ir) {
                match crate::ir::yaml::to_yaml(g) {
                    Ok(text) => print!("{text}"),
                    Err(e) => {
                        out.error(&e, &a.program.sources);
                        status = EXIT_USAGE;
                    }
                }
            }
        }
    }
    let checked = plural(files.len(), "file");
    match (errors, warnings) {
        (0, 0) => out.summary(&format!("checked {checked}: no problems")),
        (0, w) => out.summary(&format!("checked {checked}: {}", plural(w, "warning"))),
        (e, w) => out.summary(&format!(
            "checked {checked}: {}, {}",
            plural(e, "error"),
            plural(w, "warning")
        )),
    }
    status
}
