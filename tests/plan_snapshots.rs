//! Snapshot tests of `enigma plan`: each `tests/plan/<name>.enigma` beside
//! `tests/plan/<name>.out`, which holds exactly what the command reports:
//! the rendered diagnostics (100 columns, no colour), then the summary.
//!
//! The program's first line says how to plan it: `// plan:` followed by
//! the options (`--world N` and `--search` are understood). Estimates are
//! for the default cluster (`plan::cost::Cluster::default()`).
//!
//! Run with `ENIGMA_BLESS=1` to write the expectations from the current
//! output; review the diff before committing it.

use std::path::{Path, PathBuf};

use enigma::diagnostics::render::{human, HumanStyle};
use enigma::plan::report::{summary, Options};
use enigma::resolve;
use enigma::source::FsLoader;
use libtest_mimic::{Arguments, Failed, Trial};

#[path = "common/diff.rs"]
mod diff;
use diff::line_diff;

fn main() {
    let args = Arguments::from_args();
    let mut entries: Vec<PathBuf> = std::fs::read_dir("tests/plan")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    let trials = entries
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "enigma"))
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Trial::test(name, move || run(&p))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// The options on the program's `// plan:` line.
fn options(text: &str) -> Result<Options, Failed> {
    let line = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// plan:"))
        .ok_or("the first line must be `// plan:` and the options")?;
    let mut opts = Options::default();
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        match w {
            "--world" => {
                let n = words.next().and_then(|n| n.parse().ok());
                opts.world = Some(n.ok_or("--world needs a number")?);
            }
            "--search" => opts.search = true,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(opts)
}

/// What `enigma plan` reports for `program`.
fn render(program: &Path) -> Result<String, Failed> {
    let text = std::fs::read_to_string(program).map_err(|e| e.to_string())?;
    let opts = options(&text)?;
    let driver = enigma::driver::Options {
        resolve: resolve::Options::default(),
        goal: enigma::driver::Goal::Plan(opts),
        record_types: false,
    };
    let a = enigma::driver::compile(&FsLoader, program, &driver)
        .map_err(|e| Failed::from(e.to_string()))?;
    let loaded = &a.program;
    let style = HumanStyle {
        color: false,
        width: 100,
    };
    let mut out: String = a
        .diagnostics
        .iter()
        .map(|d| human(d, &loaded.sources, style))
        .collect();
    if let Some(e) = a.error {
        return Err(Failed::from(e));
    }
    let Some(planned) = &a.planned else {
        return Ok(out);
    };
    for d in &planned.diagnostics {
        out.push_str(&human(d, &loaded.sources, style));
    }
    if !planned.diagnostics.iter().any(|d| d.is_error()) {
        out.push_str(&summary(planned));
    }
    Ok(out)
}

fn run(program: &Path) -> Result<(), Failed> {
    let expected_path = program.with_extension("out");
    let actual = render(program)?;
    if std::env::var_os("ENIGMA_BLESS").is_some() {
        std::fs::write(&expected_path, &actual).map_err(|e| Failed::from(e.to_string()))?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if actual == expected {
        return Ok(());
    }
    let diff = line_diff(&expected, &actual);
    Err(Failed::from(format!(
        "the plan differs from {}\n(run with ENIGMA_BLESS=1 to accept)\n{diff}",
        expected_path.display()
    )))
}
