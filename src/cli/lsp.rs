//! `enigma lsp`: the language server on stdin and stdout.

use super::{EXIT_OK, EXIT_USAGE};

pub fn run() -> i32 {
    match crate::lsp::run_stdio() {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}
