//! `enigma fmt`: the canonical layout of `.enigma` files.
//!
//! The formatter prints the AST in one canonical form (two-space indents,
//! one item or statement per line, lists broken one element per line only
//! when they do not fit in 100 columns) and weaves back every comment found
//! in the source. Three properties are tested over every example and stdlib
//! file: formatting is idempotent, it keeps every comment, and parsing the
//! output gives the same AST as parsing the input (up to spans).
//!
//! Where the layout follows the source: blank lines between items and
//! statements are kept (at most one), and a settings block written on one
//! line stays on one line when it fits.

mod comments;
pub mod flat;
mod printer;

use crate::base::FileId;
use crate::diagnostics::Diagnostic;
use crate::syntax;

pub use comments::{collect as collect_comments, Comment};

/// The line width the printer aims for.
pub const WIDTH: usize = 100;

/// Formats source text. Text that does not parse is returned as its
/// diagnostics: the formatter never guesses at broken input.
pub fn format(text: &str, file: FileId) -> Result<String, Vec<Diagnostic>> {
    let ast = syntax::parse(text, file)?;
    Ok(printer::print(&ast, text))
}
