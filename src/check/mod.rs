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
pub mod quantity;
mod settings;
pub mod size;

pub use consts::Value;

use crate::diagnostics::Diagnostic;
use crate::resolve::Program;

/// Checks a resolved program. Returns the diagnostics found; the caller
/// runs this only when resolution reported no errors, so every name is
/// known.
pub fn check(program: &Program) -> Vec<Diagnostic> {
    let mut consts = consts::Consts::new(program);
    dims::check_dims(&mut consts);
    settings::check_settings(&mut consts);
    let mut diags = consts.diags;
    crate::diagnostics::sort(&mut diags);
    diags
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
    let mut program = crate::resolve::load(loader, path, options)?;
    if !program.has_errors() {
        let found = check(&program);
        program.diagnostics.extend(found);
        crate::diagnostics::sort(&mut program.diagnostics);
    }
    Ok(program)
}
