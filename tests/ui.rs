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
//!
//! A one-mistake program can also say, in comment lines of its own, where
//! the mistake must be reported and how it is fixed:
//!
//! - `// expect: E0220 at 31`: some diagnostic with that code has its
//!   primary label on line 31 of the program; `// expect: E0215 at 37 on
//!   heads: 5` also requires the label's text to lie within the first
//!   `heads: 5` of that line (the argument the user must change, not the
//!   whole call);
//! - `// fix: heads: 6 => heads: 8`: replacing the first occurrence of the
//!   left text (outside these comment lines) with the right gives a program
//!   that checks without errors. The test applies the fix and checks it.

use std::path::{Path, PathBuf};

use enigma::diagnostics::render::{human, HumanStyle};
use enigma::source::{FsLoader, MemoryLoader};
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

/// The `// expect:` and `// fix:` lines of a program.
struct Directives {
    expect: Vec<Expect>,
    fix: Option<(String, String)>,
}

/// One `// expect:` line.
struct Expect {
    code: String,
    line: usize,
    /// Text of the line the primary label must lie within.
    on: Option<String>,
}

fn directives(text: &str) -> Result<Directives, Failed> {
    let mut d = Directives {
        expect: Vec::new(),
        fix: None,
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("// expect:") {
            let parsed = rest.split_once(" at ").and_then(|(code, at)| {
                let (at, on) = match at.split_once(" on ") {
                    Some((at, on)) => (at, Some(on.trim().to_string())),
                    None => (at, None),
                };
                Some(Expect {
                    code: code.trim().to_string(),
                    line: at.trim().parse().ok()?,
                    on,
                })
            });
            let Some(e) = parsed else {
                return Err(format!(
                    "cannot read `{line}`: write `// expect: CODE at LINE` or `// expect: CODE at LINE on TEXT`"
                )
                .into());
            };
            d.expect.push(e);
        } else if let Some(rest) = line.strip_prefix("// fix:") {
            let Some((old, new)) = rest.split_once("=>") else {
                return Err(format!("cannot read `{line}`: write `// fix: OLD => NEW`").into());
            };
            d.fix = Some((old.trim().to_string(), new.trim().to_string()));
        }
    }
    Ok(d)
}

/// Checks the `// expect:` lines against the diagnostics, and that the
/// `// fix:` makes the program check without errors.
fn check_directives(program: &Path) -> Result<(), Failed> {
    // Programs that are not text (the E0002 cases) carry no directives.
    let Ok(text) = std::fs::read_to_string(program) else {
        return Ok(());
    };
    let d = directives(&text)?;
    if d.expect.is_empty() && d.fix.is_none() {
        return Ok(());
    }
    let options = enigma::driver::Options::check();
    let a = enigma::driver::compile(&FsLoader, program, &options)
        .map_err(|e| Failed::from(e.to_string()))?;
    let root = a.program.root_module().file;
    let file = a.program.sources.get(root);
    for Expect { code, line, on } in &d.expect {
        // Where `on` lies in the program, when given.
        let within = match on {
            None => None,
            Some(on) => {
                let start: usize = text
                    .split_inclusive('\n')
                    .take(line - 1)
                    .map(str::len)
                    .sum();
                let source_line = text.lines().nth(line - 1).unwrap_or_default();
                let Some(i) = source_line.find(on.as_str()) else {
                    return Err(format!("line {line} does not contain `{on}`").into());
                };
                Some(start + i..start + i + on.len())
            }
        };
        let found = a.diagnostics.iter().any(|diag| {
            diag.code.as_str() == code
                && diag.primary_label().is_some_and(|l| {
                    l.file == root
                        && file.line_col(l.span.start as usize).0 == *line
                        && within.as_ref().is_none_or(|r| {
                            r.start <= l.span.start as usize && l.span.end as usize <= r.end
                        })
                })
        });
        if !found {
            let got: Vec<String> = a
                .diagnostics
                .iter()
                .map(|diag| {
                    let at = diag
                        .primary_label()
                        .map_or(0, |l| file.line_col(l.span.start as usize).0);
                    format!("{} at {at}", diag.code)
                })
                .collect();
            let on = on
                .as_ref()
                .map(|o| format!(" on `{o}`"))
                .unwrap_or_default();
            return Err(
                format!("expected {code} at line {line}{on}; got {}", got.join(", ")).into(),
            );
        }
    }
    if let Some((old, new)) = d.fix {
        // The first occurrence outside the directive lines.
        let mut offset = 0;
        let mut at = None;
        for line in text.split_inclusive('\n') {
            let directive = line.trim_start().starts_with("// fix:")
                || line.trim_start().starts_with("// expect:");
            if !directive {
                if let Some(i) = line.find(&old) {
                    at = Some(offset + i);
                    break;
                }
            }
            offset += line.len();
        }
        let Some(at) = at else {
            return Err(format!("the fix's text `{old}` is not in the program").into());
        };
        let fixed = format!("{}{new}{}", &text[..at], &text[at + old.len()..]);
        let mut loader = MemoryLoader::new();
        loader.insert(program, fixed);
        let a = enigma::driver::compile(&loader, program, &options)
            .map_err(|e| Failed::from(e.to_string()))?;
        let errors: Vec<String> = a
            .diagnostics
            .iter()
            .filter(|diag| diag.is_error())
            .map(|diag| format!("{}: {}", diag.code, diag.message))
            .collect();
        if !errors.is_empty() {
            return Err(format!(
                "with the fix applied it still has errors: {}",
                errors.join("; ")
            )
            .into());
        }
    }
    Ok(())
}

fn run(program: &Path, expected_path: &Path) -> Result<(), Failed> {
    check_directives(program)?;
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
