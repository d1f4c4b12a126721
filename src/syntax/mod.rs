//! Syntax: from bytes to a spanned AST.
//!
//! [`parse`] runs the whole front of the pipeline for one file: UTF-8 and
//! size checks, the pre-scan for unterminated literals and deep nesting, the
//! pest grammar (`grammar/enigma.pest`) and the lowering into [`ast`]. It
//! never panics and never recurses without bound: every failure is a
//! diagnostic with a code.

pub mod ast;
mod errors;
mod parser;
mod prescan;
pub mod trivia;

pub use errors::phrase as rule_phrase;
pub use parser::MAX_EXPR_DEPTH;
pub use prescan::{MAX_NESTING, MAX_SOURCE_BYTES};

use crate::base::FileId;
use crate::diagnostics::Diagnostic;

/// Checks that `bytes` are acceptable source text and returns them as `str`.
pub fn decode(bytes: &[u8], file: FileId) -> Result<&str, Diagnostic> {
    prescan::decode(bytes, file)
}

/// Parses one file's text into its AST, or returns every syntax error found.
pub fn parse(text: &str, file: FileId) -> Result<ast::File, Vec<Diagnostic>> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(vec![prescan::decode(text.as_bytes(), file)
            .err()
            .unwrap_or_else(|| {
                Diagnostic::new(crate::diagnostics::Code::E0003, "source file is too large")
            })]);
    }
    let problems = prescan::scan(text, file);
    if !problems.is_empty() {
        return Err(problems);
    }
    parser::parse_file(text, file)
}
