//! `enigma check FILE...`: parse and resolve, report every problem.

use std::path::PathBuf;

use super::output::{count, plural, Output};
use super::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::resolve::{Options, Stdlib};
use crate::source::FsLoader;

pub fn run(out: &Output, files: &[PathBuf], stdlib: Option<PathBuf>) -> i32 {
    let options = Options {
        stdlib: stdlib.map(Stdlib::Dir).unwrap_or_default(),
    };
    let mut status = EXIT_OK;
    let (mut errors, mut warnings) = (0, 0);
    for path in files {
        let program = match crate::check::check_file(&FsLoader, path, &options) {
            Ok(p) => p,
            Err(e) => {
                out.fatal(&e.to_string());
                status = EXIT_USAGE;
                continue;
            }
        };
        out.diagnostics(&program.diagnostics, &program.sources);
        let (e, w) = count(&program.diagnostics);
        errors += e;
        warnings += w;
        if e > 0 && status == EXIT_OK {
            status = EXIT_DIAGNOSTICS;
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
