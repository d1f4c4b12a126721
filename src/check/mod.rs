//! Check: what can be known about an experiment before it runs.
//!
//! This stage runs on a resolved program (every name known). It evaluates
//! compile-time values (`consts.rs`) with units (`quantity.rs`) and
//! symbolic sizes (`size.rs`), and checks the sizes that dims and modality
//! shapes declare (`dims.rs`): that sizes are positive whole numbers, that
//! a time window at a sampling rate is a whole number of samples (`2s @
//! 30Hz` is 60 frames, `2s @ 8Hz` is 16), and that units are used where
//! they make sense; and it checks the `train` and `parallel` settings
//! against their schema and each other (`settings.rs`). Tensor shapes through models, parameter counts and the
//! typed IR build on these values.

mod consts;
mod dims;
mod elab;
mod layout;
mod settings;
mod sources;
mod units;

use crate::diagnostics::Diagnostic;
use crate::resolve::Program;

/// Checks a resolved program. Returns the diagnostics found; the caller
/// runs this only when resolution reported no errors, so every name is
/// known.
pub fn check(program: &Program, loader: &dyn crate::source::SourceLoader) -> Vec<Diagnostic> {
    check_program(program, loader).0
}

/// Checks a resolved program and, when the model elaborates without
/// errors, returns its typed IR beside the diagnostics.
pub fn check_program(
    program: &Program,
    loader: &dyn crate::source::SourceLoader,
) -> (Vec<Diagnostic>, Option<crate::ir::Graph>) {
    check_program_bound(program, loader, &[])
}

/// [`check_program`] with sizes for data-bound dims that only reading the
/// data can give (`N` behind a `select(N, where: ...)`): `enigma run`
/// opens the dataset, then elaborates again with what it found, so that
/// parameters sized by those dims get numbers the planner can place. A
/// size the sources' headers already bind is kept; the two agree, since
/// both come from the same files.
pub fn check_program_bound(
    program: &Program,
    loader: &dyn crate::source::SourceLoader,
    data: &[(String, i64)],
) -> (Vec<Diagnostic>, Option<crate::ir::Graph>) {
    let mut consts = consts::Consts::new(program);
    dims::check_dims(&mut consts);
    settings::check_settings(&mut consts);
    let mut bound = sources::check_sources(&mut consts, loader);
    for (name, size) in data {
        if !bound.iter().any(|(n, _)| n == name) {
            bound.push((name.clone(), *size));
        }
    }
    // Shapes are elaborated only over values that are themselves sound.
    let graph = if consts.diags.iter().any(Diagnostic::is_error) {
        None
    } else {
        elab::elaborate(&mut consts, &bound)
    };
    if let Some(g) = &graph {
        layout::check_layout(&mut consts, g);
    }
    let mut diags = consts.diags;
    crate::diagnostics::sort(&mut diags);
    (diags, graph)
}

/// The compile-time value of an expression of the root file (a setting's
/// value, say), or `Value::Opaque` when it is not a constant.
pub fn constant(program: &Program, e: &crate::syntax::ast::Expr) -> crate::ir::types::Value {
    consts::Consts::new(program)
        .eval(e)
        .unwrap_or(crate::ir::types::Value::Opaque)
}

/// The whole of `enigma check` for one root file: resolve, then, when
/// resolution found no errors, check. Failing to read the root file is an
/// I/O error for the caller; everything else is in the program's
/// diagnostics, sorted.
pub fn check_file(
    loader: &dyn crate::source::SourceLoader,
    path: &std::path::Path,
    options: &crate::resolve::Options,
) -> Result<Program, crate::resolve::RootError> {
    check_file_ir(loader, path, options).map(|(p, _)| p)
}

/// [`check_file`], also returning the typed IR when the experiment checks
/// without errors.
pub fn check_file_ir(
    loader: &dyn crate::source::SourceLoader,
    path: &std::path::Path,
    options: &crate::resolve::Options,
) -> Result<(Program, Option<crate::ir::Graph>), crate::resolve::RootError> {
    let mut program = crate::resolve::load(loader, path, options)?;
    let mut graph = None;
    if !program.has_errors() {
        let (found, g) = check_program(&program, loader);
        program.diagnostics.extend(found);
        crate::diagnostics::sort(&mut program.diagnostics);
        graph = g.filter(|_| !program.has_errors());
    }
    Ok((program, graph))
}
