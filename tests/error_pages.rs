//! The pages of `docs/errors/`: what `enigma explain CODE` prints.
//!
//! Each page explains one diagnostic code with an example of the mistake
//! and a `## Fix` section with the program corrected. A page whose example
//! no longer gives its code, or whose fix no longer checks, teaches
//! something false, and nothing else would notice: the pages are prose to
//! the compiler. So this test reads every page as `enigma explain` prints
//! it ([`Code::page`]) and checks, one trial per code:
//!
//! - the title line is `# CODE: ...`, and the page has an `## Example` (or
//!   `## Examples`) section with at least one fenced block and a `## Fix`
//!   section;
//! - every ```` ```enigma ```` block under `## Example(s)`, checked as
//!   `enigma check` checks a file, gives at least one diagnostic with the
//!   page's code;
//! - every ```` ```enigma ```` block under `## Fix` checks without errors,
//!   and without the page's own warning on a warning's page.
//!
//! A block is one program, in a file of its own. Blocks introduced by a
//! line that starts with a file's name and ends with a colon
//! (`` `blocks.enigma`: ``, `` `blocks.enigma`, next to it: ``) are files of
//! one program instead, whose root is `main.enigma`; the files of a fix are
//! laid over those of the example, so a fix shows only the files it
//! changes.
//!
//! Most codes are diagnostics of `enigma check`. A few come from the same
//! compilation but are reported by another command: the data side of the
//! checked experiment, which `enigma run` refuses before it reads a file
//! ([`FROM_THE_DATA_SIDE`]), and the planner's, which `enigma plan`
//! reports ([`FROM_THE_PLANNER`]); their examples must check without
//! errors and give the code there. The codes that no program on a page can show (the
//! runtime's, the language server's, internal errors) are listed in
//! [`NOT_FROM_A_PROGRAM`] with the reason: their examples must still be
//! shown, and any ```` ```enigma ```` block on them must check without
//! errors, since the page says the mistake shows only later. The few pages
//! whose example cannot be shown whole are in [`EXAMPLE_IN_PART`]; their
//! fixes are still checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use enigma::diagnostics::render::{human, HumanStyle};
use enigma::diagnostics::{Code, Diagnostic};
use enigma::driver::Goal;
use enigma::plan::cost::Cluster;
use enigma::plan::report::Options as PlanOptions;
use enigma::source::MemoryLoader;
use libtest_mimic::{Arguments, Failed, Trial};

/// Codes found in the checked experiment's data side
/// (`Experiment::data`): what `enigma run` reports, before it reads any
/// file, about data `enigma check` accepts.
const FROM_THE_DATA_SIDE: &[&str] = &["E0221"];

/// Codes the planner gives, as `enigma plan` does, with the world size
/// given to it (`--world N`) where the page's example names one.
const FROM_THE_PLANNER: &[(&str, Option<usize>)] = &[
    ("E0301", Some(32)),
    ("E0302", None),
    ("E0303", None),
    ("W0301", None),
    ("W0302", None),
];

/// Codes that no program on a page can show, with the reason.
const NOT_FROM_A_PROGRAM: &[(&str, &str)] = &[
    (
        "E0110",
        "given for a `--set KEY=VALUE` argument of `enigma check`, `plan` or `run`, \
         not for a program (`src/driver/overrides_tests.rs` shows each case)",
    ),
    ("E0401", "given when `enigma run` reads the data files"),
    ("E0402", "given when `enigma run` reads the data files"),
    ("E0403", "given when `enigma run` reads the data files"),
    ("E0404", "given when `enigma run` reads the data files"),
    (
        "E0405",
        "given when `enigma run` fits the transforms on the data; the example's synthetic \
         sessions take over a minute to simulate in a test build",
    ),
    (
        "E0406",
        "given when `enigma run` cuts the recordings into windows",
    ),
    ("E0407", "given by the runtime's data-loading thread"),
    (
        "E0501",
        "the runtime's: the experiment is valid but this build cannot run it",
    ),
    (
        "E0502",
        "the runtime's: a libtorch operation failed during training",
    ),
    ("E0503", "the runtime's: a training step's loss or gradient"),
    ("E0504", "the runtime's: no CUDA device"),
    ("E0505", "the runtime's: checkpoint files on disk"),
    (
        "E0506",
        "the runtime's: a checkpoint written by another experiment",
    ),
    ("E0507", "the runtime's: the run directory on disk"),
    (
        "E0508",
        "the runtime's: collectives between the ranks of a job",
    ),
    (
        "E0509",
        "the runtime's: the launcher's environment variables",
    ),
    ("E0510", "`enigma lsp`'s: the editor's connection"),
    (
        "E0900",
        "an internal error, a bug in enigma: no correct program shows it",
    ),
];

/// Pages whose example cannot be shown whole, with the reason; their
/// fixes are checked.
const EXAMPLE_IN_PART: &[(&str, &str)] = &[
    ("E0003", "a file over 4 MiB does not fit on a page"),
    (
        "E0004",
        "96 nested calls (65 levels of brackets) do not fit on a page, so the example leaves \
         most of them out",
    ),
];

/// Data files the programs of a page read, as `.npy` headers: the page,
/// the path (relative to the program), the dtype and the shape. `enigma
/// check` reads only headers, so no data follows them.
const DATA_FILES: &[(&str, &str, &str, &[usize])] = &[
    ("E0219", "F.npy", "<f4", &[219, 2000]),
    ("E0219", "iscell.npy", "<f4", &[219, 2]),
    ("W0201", "../data/m12/F.npy", "<f4", &[219, 2000]),
];

/// Pages whose example blocks are saved as Latin-1 rather than UTF-8: the
/// page shows the text, the mistake is in its bytes.
const LATIN1_EXAMPLES: &[&str] = &["E0002"];

/// The directory every program is checked in.
const DIR: &str = "/docs/errors/example";

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test("every page is a code", every_page_is_a_code),
        Trial::test("the lists name codes, once each", lists_name_codes),
    ];
    for &code in Code::ALL {
        trials.push(Trial::test(code.as_str(), move || check_page(code)));
    }
    libtest_mimic::run(&args, trials).exit();
}

/// No page in `docs/errors/` is left without its code (which would make
/// `enigma explain` unable to print it).
fn every_page_is_a_code() -> Result<(), Failed> {
    let dir = Path::new("docs/errors");
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let known = path.extension().is_some_and(|e| e == "md")
            && stem.as_deref().and_then(Code::parse).is_some();
        if !known {
            return Err(format!("{} is not the page of a diagnostic code", path.display()).into());
        }
    }
    Ok(())
}

/// A code misspelt in one of the lists above would leave its page tested
/// as something it is not; a code in two lists would be ambiguous.
fn lists_name_codes() -> Result<(), Failed> {
    let planner = FROM_THE_PLANNER.iter().map(|(c, _)| *c);
    let not_from = NOT_FROM_A_PROGRAM.iter().map(|(c, _)| *c);
    let where_from: Vec<&str> = FROM_THE_DATA_SIDE
        .iter()
        .copied()
        .chain(planner)
        .chain(not_from)
        .collect();
    let in_part = EXAMPLE_IN_PART.iter().map(|(c, _)| *c);
    let data = DATA_FILES.iter().map(|f| f.0);
    let named = where_from
        .iter()
        .copied()
        .chain(in_part)
        .chain(data)
        .chain(LATIN1_EXAMPLES.iter().copied());
    for code in named {
        if Code::parse(code).map(Code::as_str) != Some(code) {
            return Err(format!("`{code}` is not a diagnostic code").into());
        }
    }
    for (i, code) in where_from.iter().enumerate() {
        if where_from[..i].contains(code) {
            return Err(format!("{code} is listed twice").into());
        }
    }
    Ok(())
}

/// A fenced block of a page.
struct Block {
    /// The `##` section it is in.
    section: String,
    /// The fence's language: `enigma`, `text`, `sh`, ...
    lang: String,
    /// The file it is, when the line before it starts with a file's name
    /// and ends with a colon.
    file: Option<String>,
    text: String,
    /// The line of the page where the block starts (1-based).
    line: usize,
}

/// The page's fenced blocks, in order.
fn blocks(page: &str) -> Result<Vec<Block>, Failed> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut previous = "";
    let mut lines = page.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_string();
        }
        if let Some(lang) = line.strip_prefix("```") {
            let mut text = String::new();
            let mut closed = false;
            for (_, inner) in lines.by_ref() {
                if inner.trim_end() == "```" {
                    closed = true;
                    break;
                }
                text.push_str(inner);
                text.push('\n');
            }
            if !closed {
                return Err(format!("the block at line {} is never closed", i + 1).into());
            }
            let file = previous
                .trim()
                .strip_prefix('`')
                .filter(|_| previous.trim_end().ends_with(':'))
                .and_then(|s| s.split_once('`'))
                .map(|(name, _)| name)
                .filter(|name| name.ends_with(".enigma"))
                .map(str::to_string);
            out.push(Block {
                section: section.clone(),
                lang: lang.trim().to_string(),
                file,
                text,
                line: i + 1,
            });
            previous = "";
            continue;
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    Ok(out)
}

/// One program of a page: its files, by name, and the one to check.
struct Program {
    /// How a failure names it: the block's line, or its files.
    what: String,
    files: BTreeMap<String, String>,
    root: String,
}

/// The programs of one section's `enigma` blocks: each unnamed block on its
/// own, the named ones together, laid over `base` (the example's files,
/// for a fix).
fn programs(blocks: &[&Block], base: &BTreeMap<String, String>) -> Result<Vec<Program>, Failed> {
    let mut out = Vec::new();
    let mut named = base.clone();
    let mut shown = Vec::new();
    for b in blocks.iter().filter(|b| b.lang == "enigma") {
        match &b.file {
            Some(name) => {
                named.insert(name.clone(), b.text.clone());
                shown.push(format!("`{name}` (line {})", b.line));
            }
            None => out.push(Program {
                what: format!("the block at line {}", b.line),
                files: BTreeMap::from([("main.enigma".to_string(), b.text.clone())]),
                root: "main.enigma".to_string(),
            }),
        }
    }
    if !shown.is_empty() {
        if !named.contains_key("main.enigma") {
            return Err(format!(
                "the files {} have no `main.enigma` to check",
                shown.join(", ")
            )
            .into());
        }
        let over = if base.is_empty() {
            ""
        } else {
            "the example's files with "
        };
        out.push(Program {
            what: format!("the program of {over}{}", shown.join(", ")),
            files: named,
            root: "main.enigma".to_string(),
        });
    }
    Ok(out)
}

/// The named files of a section's blocks, for the fix to be laid over.
fn named_files(blocks: &[&Block]) -> BTreeMap<String, String> {
    blocks
        .iter()
        .filter(|b| b.lang == "enigma")
        .filter_map(|b| Some((b.file.clone()?, b.text.clone())))
        .collect()
}

/// Bytes in Latin-1, for the pages in [`LATIN1_EXAMPLES`].
fn latin1(text: &str) -> Result<Vec<u8>, String> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("`{c}` is not Latin-1")))
        .collect()
}

/// The header of a `.npy` file of that dtype and shape, as `np.save`
/// writes it.
fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    while (11 + header.len()) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out
}

/// Where a page's code comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// `enigma check`'s diagnostics.
    Check,
    /// The checked experiment's data side ([`FROM_THE_DATA_SIDE`]).
    DataSide,
    /// The planner, with this world size ([`FROM_THE_PLANNER`]).
    Planner(Option<usize>),
    /// No program ([`NOT_FROM_A_PROGRAM`]).
    NotFromAProgram,
}

fn source(code: Code) -> Source {
    let code = code.as_str();
    if FROM_THE_DATA_SIDE.contains(&code) {
        return Source::DataSide;
    }
    if let Some((_, world)) = FROM_THE_PLANNER.iter().find(|(c, _)| *c == code) {
        return Source::Planner(*world);
    }
    if NOT_FROM_A_PROGRAM.iter().any(|(c, _)| *c == code) {
        return Source::NotFromAProgram;
    }
    Source::Check
}

/// What one program came to.
struct Outcome {
    /// `enigma check`'s diagnostics.
    check: Vec<Diagnostic>,
    /// Why the runtime cannot read the data, when the program checks, on
    /// the data side's page.
    data: Vec<Diagnostic>,
    /// The planner's diagnostics, when the page's code is the planner's.
    plan: Vec<Diagnostic>,
    /// A failure after checking: the data could not give its sizes, or
    /// the planner failed its own verification.
    error: Option<String>,
    /// All of it, as the commands print it.
    shown: String,
}

impl Outcome {
    fn all(&self) -> impl Iterator<Item = &Diagnostic> {
        self.check.iter().chain(&self.data).chain(&self.plan)
    }

    /// The diagnostics as the commands print them, or that there are none.
    fn shown(&self) -> String {
        if self.shown.is_empty() {
            "it gives no diagnostic".to_string()
        } else {
            format!("it gives:\n{}", self.shown)
        }
    }
}

/// Compiles a program as `enigma check` does (and plans it, as `enigma
/// plan` does, on a planner's page), in a directory that holds its files
/// and the page's data files.
fn compile(code: Code, program: &Program, latin1_text: bool) -> Result<Outcome, Failed> {
    let dir = Path::new(DIR);
    let mut loader = MemoryLoader::new();
    for (name, text) in &program.files {
        let bytes = if latin1_text {
            latin1(text).map_err(|e| format!("{}: {e}", program.what))?
        } else {
            text.clone().into_bytes()
        };
        loader.insert(dir.join(name), bytes);
    }
    for (_, path, descr, shape) in DATA_FILES.iter().filter(|f| f.0 == code.as_str()) {
        loader.insert(dir.join(path), npy_header(descr, shape));
    }
    let mut options = enigma::driver::Options::check();
    if let Source::Planner(world) = source(code) {
        options.goal = Goal::Plan(PlanOptions {
            world,
            cluster: Cluster::default(),
            search: false,
        });
    }
    let root: PathBuf = dir.join(&program.root);
    let a = enigma::driver::compile(&loader, &root, &options)
        .map_err(|e| format!("{}: cannot be checked: {e}", program.what))?;
    // Only the data side's page asks for data the runtime can read: other
    // pages' programs may be models studied without data (a language
    // model's token file, say).
    let data = match a.experiment.as_ref().map(|x| &x.data) {
        Some(Err(problems)) if matches!(source(code), Source::DataSide) => problems.clone(),
        _ => Vec::new(),
    };
    let plan = a.planned.map(|p| p.diagnostics).unwrap_or_default();
    let style = HumanStyle {
        color: false,
        width: 100,
    };
    let mut shown: String = a
        .diagnostics
        .iter()
        .chain(&data)
        .chain(&plan)
        .map(|d| human(d, &a.program.sources, style))
        .collect();
    let error = a.error.map(|e| e.to_string());
    if let Some(e) = &error {
        shown.push_str(&format!("error after checking: {e}\n"));
    }
    Ok(Outcome {
        check: a.diagnostics,
        data,
        plan,
        error,
        shown,
    })
}

fn check_page(code: Code) -> Result<(), Failed> {
    let page = code.page();
    let title = format!("# {code}: ");
    if !page.starts_with(&title) {
        return Err(format!("the page's first line must start with `{title}`").into());
    }
    let blocks = blocks(page)?;
    let sections: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(str::trim)
        .collect();
    let in_examples = |b: &&Block| b.section == "Example" || b.section == "Examples";
    let examples: Vec<&Block> = blocks.iter().filter(in_examples).collect();
    let fixes: Vec<&Block> = blocks.iter().filter(|b| b.section == "Fix").collect();
    if examples.is_empty() {
        return Err("the page shows no example: no fenced block under `## Example(s)`".into());
    }
    if !sections.contains(&"Fix") {
        return Err("the page has no `## Fix` section".into());
    }
    let source = source(code);
    let in_part = EXAMPLE_IN_PART.iter().any(|(c, _)| *c == code.as_str());
    let has_enigma = |bs: &[&Block]| bs.iter().any(|b| b.lang == "enigma");
    if !matches!(source, Source::NotFromAProgram) {
        if !in_part && !has_enigma(&examples) {
            return Err("no ```enigma block under `## Example(s)` to check".into());
        }
        if !has_enigma(&fixes) {
            return Err("no ```enigma block under `## Fix` with the corrected program".into());
        }
    }

    // Each example gives the code, where the page says it does.
    if !in_part {
        let latin1_text = LATIN1_EXAMPLES.contains(&code.as_str());
        for p in &programs(&examples, &BTreeMap::new())? {
            let o = compile(code, p, latin1_text)?;
            let gives = |ds: &[Diagnostic]| ds.iter().any(|d| d.code == code);
            if let Source::Check = source {
                if !gives(&o.check) {
                    return Err(format!("{}: does not give {code}; {}", p.what, o.shown()).into());
                }
                continue;
            }
            if o.check.iter().any(Diagnostic::is_error) {
                return Err(format!(
                    "{}: {code} comes after checking, so the example must check without \
                     errors; {}",
                    p.what,
                    o.shown()
                )
                .into());
            }
            let (found, place) = match source {
                Source::DataSide => (gives(&o.data), "in the experiment's data side"),
                Source::Planner(_) => (gives(&o.plan), "when it is planned"),
                _ => (true, ""),
            };
            if !found {
                return Err(
                    format!("{}: does not give {code} {place}; {}", p.what, o.shown()).into(),
                );
            }
        }
    }

    // Each fix is clean: no error anywhere, nor the page's own warning.
    for p in &programs(&fixes, &named_files(&examples))? {
        let o = compile(code, p, false)?;
        if o.error.is_some() || o.all().any(|d| d.is_error() || d.code == code) {
            return Err(format!("{} under `## Fix` should be clean; {}", p.what, o.shown()).into());
        }
    }
    Ok(())
}
