//! Check: what can be known about an experiment before it runs, and the
//! typed [`Experiment`] that every later stage reads.
//!
//! This stage runs on a resolved program (every name known). It evaluates
//! compile-time values (`consts.rs`, with units spelt as in `units.rs`),
//! and checks the sizes that dims and modality shapes declare (`dims.rs`):
//! that sizes are positive whole numbers, that a time window at a sampling
//! rate is a whole number of samples (`2s @ 30Hz` is 60 frames, `2s @ 8Hz`
//! is 16), and that units are used where they make sense. It checks the
//! `train` and `parallel` settings against their schema and each other
//! (`settings.rs`), data-file headers against the modalities
//! (`sources.rs`), and elaborates the model on tensor types into the
//! graph (`elab/`), checking the layout against it (`layout.rs`). Last, it
//! evaluates the `train` block (`train.rs`), the `parallel` block
//! (`parallel.rs`) and the data side (`data/`) into the experiment.

mod consts;
mod data;
mod dims;
mod elab;
mod layout;
mod parallel;
mod provided;
pub mod schema;
mod settings;
mod sources;
mod train;
mod units;
mod windows;

use std::path::Path;

use crate::base::{FileId, Span};
use crate::diagnostics::Diagnostic;
use crate::ir::types::Value;
use crate::ir::Experiment;
use crate::resolve::{ModuleKey, Program};
use crate::source::SourceLoader;

/// Checks a resolved program and, when it checks without errors, returns
/// its [`Experiment`] beside the diagnostics. The caller (the driver) runs
/// this only when resolution reported no errors, so every name is known.
///
/// `sized` gives sizes for data-bound dims that only reading the data can
/// give (`N` behind a `select(N, where: ...)`): the driver opens the
/// dataset and checks again with what it found, so that parameters sized
/// by those dims get numbers the planner can place. A size the sources'
/// headers already bind is kept; the two agree, since both come from the
/// same files.
pub fn check_program(
    program: &Program,
    loader: &dyn SourceLoader,
    sized: &[(String, i64)],
) -> (Vec<Diagnostic>, Option<Experiment>) {
    let (diags, experiment, _) = check_program_with(program, loader, sized, false);
    (diags, experiment)
}

/// What an expression or binding was found to be, for the editor: a
/// tensor's type with its named dims, sizes and rates, a dim or a
/// compile-time value. A module applied several times (a `repeat`, two
/// call sites) gives one fact per application.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeFact {
    pub file: FileId,
    pub span: Span,
    pub kind: FactKind,
    pub text: String,
}

/// Whether a [`TypeFact`] is about an expression or a name being bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactKind {
    Expr,
    /// A `let`, `param` or `predict` name: what inlay hints show.
    Binding,
}

/// [`check_program`], also returning the type facts when `record_types`.
pub fn check_program_with(
    program: &Program,
    loader: &dyn SourceLoader,
    sized: &[(String, i64)],
    record_types: bool,
) -> (Vec<Diagnostic>, Option<Experiment>, Vec<TypeFact>) {
    let mut consts = consts::Consts::new(program);
    if record_types {
        consts.facts = Some(Vec::new());
    }
    dims::check_dims(&mut consts);
    settings::check_settings(&mut consts);
    let (mut bound, file_sessions) = sources::check_sources(&mut consts, loader);
    for (name, size) in sized {
        if !bound.iter().any(|(n, _)| n == name) {
            bound.push((name.clone(), *size));
        }
    }
    // Shapes are elaborated only over values that are themselves sound.
    let graph = if consts.diags.iter().any(Diagnostic::is_error) {
        None
    } else {
        elab::elaborate(&mut consts, &bound).map(|mut g| {
            // A simulated source says how many sessions it has; files are
            // counted as their patterns expand.
            if g.sessions.is_none() {
                g.sessions = file_sessions;
            }
            g
        })
    };
    let parallel = parallel::parallel_spec(&mut consts);
    if let Some(g) = &graph {
        layout::check_layout(&mut consts, g, &parallel);
    }
    let train = train::train_config(&mut consts);
    let errors = consts.diags.iter().any(Diagnostic::is_error);
    let experiment = match graph {
        Some(graph) if !errors => {
            let root = program.root_module();
            let path = match &root.key {
                ModuleKey::File(p) => p.clone(),
                ModuleKey::Std(name) => name.into(),
            };
            let base = path.parent().unwrap_or(Path::new("."));
            let spec = data::data_spec(program, &graph, base);
            Some(Experiment {
                file: root.file,
                path,
                graph,
                train,
                parallel,
                data: spec,
                sized_from_data: sized.to_vec(),
                session_graphs: Vec::new(),
                session_sizes: Vec::new(),
            })
        }
        _ => None,
    };
    let mut diags = consts.diags;
    crate::diagnostics::sort(&mut diags);
    (diags, experiment, consts.facts.unwrap_or_default())
}

/// The compile-time value of an expression of the root file (a setting's
/// value, say), or `Value::Opaque` when it is not a constant.
fn constant(program: &Program, e: &crate::syntax::ast::Expr) -> Value {
    consts::Consts::new(program)
        .eval(e)
        .unwrap_or(Value::Opaque)
}
