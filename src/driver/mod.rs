//! The driver: one function from a file (on disk or in memory) to every
//! artifact of the pipeline with its diagnostics.
//!
//! [`compile`] runs parse -> resolve -> check and, as far as the goal asks,
//! binds the sizes only the data gives (opening the dataset, then checking
//! again with them) and plans. Each CLI subcommand and the language server
//! are thin layers over it: they choose a [`Goal`], print or publish what
//! comes back, and (for `run`) hand the experiment and its plan to the
//! runtime. The driver reads source files only through the
//! [`SourceLoader`] it is given; the dataset it opens reads data files
//! itself.

use std::path::Path;

use crate::check::TypeFact;
use crate::dataset::bind::data_sizes;
use crate::dataset::loader::Dataset;
use crate::diagnostics::{Diagnostic, Error, ErrorKind};
use crate::ir::Experiment;
use crate::plan::report::{plan_experiment, Options as PlanOptions, Planned};
use crate::resolve::{Options as ResolveOptions, Program, RootError};
use crate::source::SourceLoader;

pub mod overrides;
pub use overrides::Override;

/// How far to take a file.
#[derive(Clone, Debug)]
pub enum Goal {
    /// Parse, resolve and check: the diagnostics and the experiment.
    Check,
    /// Also bind the sizes only the data gives, and plan.
    Plan(PlanOptions),
}

/// What the driver is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    pub resolve: ResolveOptions,
    pub goal: Goal,
    /// Record the type of every expression and binding the checker
    /// evaluates ([`Artifacts::types`]): the language server's hovers and
    /// inlay hints. The command line leaves it off.
    pub record_types: bool,
}

impl Options {
    /// Check only, with the embedded standard library.
    pub fn check() -> Options {
        Options {
            resolve: ResolveOptions::default(),
            goal: Goal::Check,
            record_types: false,
        }
    }
}

/// Everything the pipeline made of one file.
#[derive(Debug)]
pub struct Artifacts {
    /// The resolved program: its source files (for rendering diagnostics)
    /// and modules.
    pub program: Program,
    /// The diagnostics of parsing, resolving and checking, in reading
    /// order (the planner's are the plan's own).
    pub diagnostics: Vec<Diagnostic>,
    /// The checked experiment, when the file checks without errors (with
    /// the sizes the data gave, when binding ran).
    pub experiment: Option<Experiment>,
    /// The dataset, when binding had to open it to find sizes; a run reads
    /// its data from this one rather than opening it again.
    pub dataset: Option<Dataset>,
    /// The plan, with its own diagnostics.
    pub planned: Option<Planned>,
    /// What each expression and binding was found to be, when
    /// [`Options::record_types`] asked for it.
    pub types: Vec<TypeFact>,
    /// A failure after checking (the data could not give its sizes, the
    /// planner failed its own verification), which stops the pipeline.
    pub error: Option<Error>,
}

impl Artifacts {
    /// Whether any diagnostic, of the checker or the planner, is an error.
    pub fn has_errors(&self) -> bool {
        let plan = self.planned.iter().flat_map(|p| &p.diagnostics);
        self.diagnostics
            .iter()
            .chain(plan)
            .any(Diagnostic::is_error)
    }
}

/// [`compile`] with command-line overrides (`--set KEY=VALUE`) spliced
/// into the root file first ([`overrides`]): the pipeline sees them as
/// text of the file, and diagnostics about them point at the arguments.
/// The root file's text in `program.sources` is then the resolved
/// experiment, overrides included. A root file that cannot be read or
/// parsed is compiled as it is: its own errors come first.
pub fn compile_with(
    loader: &dyn SourceLoader,
    path: &Path,
    options: &Options,
    overrides: &[Override],
) -> Result<Artifacts, RootError> {
    if overrides.is_empty() {
        return compile(loader, path, options);
    }
    let text = match loader.read(path).map(String::from_utf8) {
        Ok(Ok(text)) => text,
        _ => return compile(loader, path, options),
    };
    if crate::syntax::parse(&text, crate::base::span::FileId(0)).is_err() {
        return compile(loader, path, options);
    }
    let (spliced, mut problems) = overrides::splice(&text, overrides);
    let spliced_loader = overrides::SplicedLoader {
        inner: loader,
        root: loader.canonical(path),
        text: spliced.text.clone(),
    };
    // When an override cannot be placed, the rest is only checked: a plan
    // of an experiment the user did not ask for is no use.
    let check_only = Options {
        goal: Goal::Check,
        ..options.clone()
    };
    let options = if problems.is_empty() {
        options
    } else {
        &check_only
    };
    let mut a = compile(&spliced_loader, path, options)?;
    let args = spliced.add_sources(&mut a.program.sources);
    let root = a.program.root_module().file;
    spliced.relocate(&mut a.diagnostics, root, &args);
    if let Some(p) = &mut a.planned {
        spliced.relocate(&mut p.diagnostics, root, &args);
    }
    overrides::Spliced::relocate_placeholders(&mut problems, &args);
    if !problems.is_empty() {
        a.diagnostics.extend(problems);
        crate::diagnostics::sort(&mut a.diagnostics);
        a.experiment = None;
        a.planned = None;
        a.dataset = None;
    }
    Ok(a)
}

/// Runs the pipeline on the file at `path`, read through `loader`, as far
/// as `options.goal` asks and no further than the first stage with errors.
/// Failing to read the root file at all is the one `Err`.
pub fn compile(
    loader: &dyn SourceLoader,
    path: &Path,
    options: &Options,
) -> Result<Artifacts, RootError> {
    let program = crate::resolve::load(loader, path, &options.resolve)?;
    let mut diagnostics = program.diagnostics.clone();
    let mut experiment = None;
    let mut types = Vec::new();
    if !program.has_errors() {
        let (found, x, facts) =
            crate::check::check_program_with(&program, loader, &[], options.record_types);
        diagnostics.extend(found);
        experiment = x;
        types = facts;
    }
    crate::diagnostics::sort(&mut diagnostics);
    let mut artifacts = Artifacts {
        program,
        experiment: experiment.filter(|_| !diagnostics.iter().any(Diagnostic::is_error)),
        diagnostics,
        dataset: None,
        planned: None,
        types,
        error: None,
    };
    let Goal::Plan(plan_options) = &options.goal else {
        return Ok(artifacts);
    };
    if artifacts.experiment.is_none() {
        return Ok(artifacts);
    }
    if let Err(e) = bind(&mut artifacts, loader) {
        artifacts.error = Some(e);
        return Ok(artifacts);
    }
    let Some(x) = &artifacts.experiment else {
        return Ok(artifacts);
    };
    match plan_experiment(x, plan_options) {
        Ok(planned) => artifacts.planned = Some(planned),
        Err(e) => artifacts.error = Some(e),
    }
    Ok(artifacts)
}

/// Sizes only the data gives (`N` behind a `select`, a per-session `N`
/// that differs between files): when a parameter's or an input's size is
/// still symbolic, opens the dataset, takes the sizes every session agrees
/// on, and checks the program again with them. When sessions differ in a
/// `per session` dim, it checks the program once per distinct set of
/// sizes: session 0's graph is the experiment's, and every session's is in
/// `session_graphs`. Each experiment that comes back differs from the first
/// only in those sizes.
fn bind(a: &mut Artifacts, loader: &dyn SourceLoader) -> Result<(), Error> {
    let Some(x) = &a.experiment else {
        return Ok(());
    };
    let mut symbolic = x.graph.unsized_params();
    symbolic.extend(unsized_inputs(&x.graph));
    let Some((param, size)) = symbolic.first().cloned() else {
        return Ok(());
    };
    let spec = match &x.data {
        Ok(spec) => spec,
        Err(problems) => {
            let first = problems
                .first()
                .map_or(String::new(), |d| d.message.clone());
            return Err(Error::spec(format!(
                "the size of `{param}` is `{size}`, which only the data gives, and the runtime cannot read the data: {first}"
            )));
        }
    };
    // The error keeps its places (file, modality, session); the sentence
    // says why the data was being read.
    let why = |e: Error| {
        Error {
        message: format!(
            "the size of `{param}` is `{size}`, which only the data gives, and opening the data failed: {}",
            e.message
        ),
        ..e
    }
    };
    let dataset = Dataset::open(spec).map_err(why)?;
    let sizes = data_sizes(spec, &dataset).map_err(why)?;
    let sessions = dataset.sessions().len();
    // One check per distinct set of sizes: sessions with the same cell
    // count share one checked experiment and one graph.
    let mut checked: Vec<(Sizes, Experiment, std::sync::Arc<crate::ir::Graph>)> = Vec::new();
    let mut of_session = Vec::new();
    let count = if sizes.per_session.is_empty() {
        1
    } else {
        sessions
    };
    for s in 0..count {
        let own = sizes.of_session(s);
        let k = match checked.iter().position(|(k, _, _)| *k == own) {
            Some(k) => k,
            None => {
                let x = check_with_sizes(a, loader, &own, s, count)?;
                let g = std::sync::Arc::new(x.graph.clone());
                checked.push((own, x, g));
                checked.len() - 1
            }
        };
        of_session.push(k);
    }
    let Some(&first) = of_session.first() else {
        return Err(Error::spec("the data holds no session"));
    };
    let mut rebound = checked[first].1.clone();
    if count > 1 {
        rebound.session_graphs = of_session.iter().map(|&k| checked[k].2.clone()).collect();
        rebound.session_sizes = sizes.per_session.clone();
        let mut totals: Vec<(String, i64)> = Vec::new();
        for (name, size) in sizes.per_session.iter().flatten() {
            match totals.iter_mut().find(|(n, _)| n == name) {
                Some((_, t)) => *t += size,
                None => totals.push((name.clone(), *size)),
            }
        }
        rebound.graph.session_totals = totals;
        rebound.sized_from_data = sizes.agreed.clone();
    }
    a.experiment = Some(rebound);
    a.dataset = Some(dataset);
    Ok(())
}

/// Sizes by dim name, in name order.
type Sizes = Vec<(String, i64)>;

/// Inputs with a dim the checker could not size, as `(input, size)`.
fn unsized_inputs(g: &crate::ir::Graph) -> Vec<(String, String)> {
    g.inputs
        .iter()
        .filter_map(|i| {
            i.ty.dims
                .iter()
                .filter(|d| d.name.to_string() != "batch")
                .map(|d| d.size_or_name())
                .find(|s| s.as_const().is_none())
                .map(|s| (i.name.clone(), s.to_string()))
        })
        .collect()
}

/// The program checked again with `sizes` (those of session `s` of
/// `count`, when sessions differ); an error when it does not check or a
/// parameter is still unsized.
fn check_with_sizes(
    a: &Artifacts,
    loader: &dyn SourceLoader,
    sizes: &[(String, i64)],
    s: usize,
    count: usize,
) -> Result<Experiment, Error> {
    let (diags, rebound) = crate::check::check_program(&a.program, loader, sizes);
    let shown: Vec<String> = sizes.iter().map(|(n, v)| format!("{n} = {v}")).collect();
    let whose = if count > 1 {
        format!("session {s}'s sizes")
    } else {
        "the sizes its data gives".to_string()
    };
    let Some(rebound) = rebound.filter(|_| !diags.iter().any(Diagnostic::is_error)) else {
        let first = diags
            .iter()
            .find(|d| d.is_error())
            .map_or("no experiment came back".to_string(), |d| d.message.clone());
        return Err(Error::new(
            ErrorKind::DataShape,
            format!(
                "the experiment does not check with {whose} ({}): {first}",
                shown.join(", ")
            ),
        ));
    };
    if let Some((param, size)) = rebound.graph.unsized_params().first() {
        return Err(Error::spec(format!(
            "the size of `{param}` is `{size}` even with {whose} ({}); no data item binds it",
            shown.join(", ")
        )));
    }
    Ok(rebound)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod overrides_tests;
