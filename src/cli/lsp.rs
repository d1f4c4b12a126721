//! `enigma lsp`: the language server on stdin and stdout.

use super::output::Output;
use super::{EXIT_OK, EXIT_USAGE};
use crate::source::SourceMap;

pub fn run(out: &Output) -> i32 {
    match crate::lsp::run_stdio() {
        Ok(()) => EXIT_OK,
        Err(e) => {
            out.error(&e, &SourceMap::new());
            EXIT_USAGE
        }
    }
}
