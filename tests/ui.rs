//! UI tests: each `.enigma` program in `tests/ui/` beside its expected
//! rendered diagnostics.
//!
//! A test is either `tests/ui/<name>.enigma`, expected output in
//! `tests/ui/<name>.stderr`, or a directory `tests/ui/<name>/` holding
//! `main.enigma` and the modules it imports, expected output in
//! `tests/ui/<name>/main.stderr`. A missing `.stderr` means the program must
//! check cleanly. The expectation is exactly what `enigma check` prints:
//! source excerpts with labels, help and notes, without colour, 100 columns.
//!
//! Run with `ENIGMA_BLESS=1` to write the expectations from the current
//! output; review the diff before committing it.

use std::path::{Path, PathBuf};

use enigma::diagnostics::render::{human, HumanStyle};
use enigma::source::FsLoader;
use libtest_mimic::{Arguments, Failed, Trial};

#[path = "common/diff.rs"]
mod diff;
use diff::line_diff;

fn main() {
    let args = Arguments::from_args();
    let root = Path::new("tests/ui");
    let mut trials = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        let (program, expected) = if path.is_dir() {
            (path.join("main.enigma"), path.join("main.stderr"))
        } else if path.extension().is_some_and(|e| e == "enigma") {
            (path.clone(), path.with_extension("stderr"))
        } else {
            continue;
        };
        if !program.is_file() {
            continue;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        trials.push(Trial::test(name, move || run(&program, &expected)));
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Renders what `enigma check` reports for `program`.
fn render(program: &Path) -> Result<String, Failed> {
    let loaded = enigma::driver::compile(&FsLoader, program, &enigma::driver::Options::check())
        .map_err(|e| Failed::from(e.to_string()))?;
    let style = HumanStyle {
        color: false,
        width: 100,
    };
    Ok(loaded
        .diagnostics
        .iter()
        .map(|d| human(d, &loaded.program.sources, style))
        .collect())
}

fn run(program: &Path, expected_path: &Path) -> Result<(), Failed> {
    let actual = render(program)?;
    if std::env::var_os("ENIGMA_BLESS").is_some() {
        if actual.is_empty() {
            let _ = std::fs::remove_file(expected_path);
        } else {
            std::fs::write(expected_path, &actual).map_err(|e| Failed::from(e.to_string()))?;
        }
        return Ok(());
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_default();
    if actual == expected {
        return Ok(());
    }
    Err(Failed::from(format!(
        "diagnostics differ from {}\n(run with ENIGMA_BLESS=1 to accept)\n{}",
        expected_path.display(),
        line_diff(&expected, &actual)
    )))
}
