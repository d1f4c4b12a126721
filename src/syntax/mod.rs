//! Syntax: from bytes to a spanned AST.
//!
//! [`parse`] runs the whole front of the pipeline for one file: UTF-8 and
//! size checks, the pre-scan for unterminated literals and deep nesting, the
//! pest grammar (`grammar/enigma.pest`) and the lowering into [`ast`]. It
//! never panics and never recurses without bound: every failure is a
//! diagnostic with a code.
//!
//! [`parse_recovering`] is the same parse for tools that want as much of a
//! broken file as can be read (the language server, a resolver that should
//! not report names defined in a broken item as unknown): when the file does
//! not parse as a whole, each top-level item is parsed on its own (see
//! `recover.rs`), and the result has every item that parsed, every syntax
//! error, and the items that did not parse in [`ast::File::broken`].
pub mod ast;
mod errors;
mod parser;
mod prescan;
mod recover;
pub mod trivia;

pub use errors::phrase as rule_phrase;
pub use parser::MAX_EXPR_DEPTH;
pub use prescan::{MAX_NESTING, MAX_SOURCE_BYTES};

use crate::base::FileId;

/// The keywords that start a top-level item, as the grammar's `item` rule
/// lists them.
pub const ITEM_KEYWORDS: [&str; 13] = [
    "use",
    "dim",
    "let",
    "data",
    "modality",
    "tokenizer",
    "fn",
    "module",
    "model",
    "loss",
    "metric",
    "train",
    "parallel",
];

/// Every reserved word: none of them can be a name (the grammar's
/// `keyword`). The editor colours them and refuses them as new names.
pub const RESERVED: [&str; 25] = [
    "use",
    "as",
    "dim",
    "let",
    "data",
    "modality",
    "from",
    "tokenizer",
    "fn",
    "module",
    "model",
    "param",
    "predict",
    "return",
    "loss",
    "metric",
    "train",
    "parallel",
    "if",
    "else",
    "true",
    "false",
    "and",
    "or",
    "not",
];
use crate::diagnostics::Diagnostic;

/// Checks that `bytes` are acceptable source text and returns them as `str`.
pub fn decode(bytes: &[u8], file: FileId) -> Result<&str, Diagnostic> {
    prescan::decode(bytes, file)
}

/// Parses one file's text into its AST, or returns every syntax error found.
///
/// The errors are those of [`parse_recovering`]: one for each top-level item
/// that does not parse, not only the first.
pub fn parse(text: &str, file: FileId) -> Result<ast::File, Vec<Diagnostic>> {
    let (ast, diags) = parse_recovering(text, file);
    if diags.is_empty() {
        Ok(ast)
    } else {
        Err(diags)
    }
}

/// Parses one file's text into as much of its AST as can be read, with
/// every syntax error found.
///
/// A file that parses gives its AST and, normally, no diagnostics (lowering
/// may still find a number out of range or an expression too deep; such a
/// node is replaced by an empty tuple and reported). Otherwise the file is
/// parsed item by item: the AST holds the items that parsed, with spans into
/// the whole `text`, [`ast::File::broken`] lists the ones that did not, and
/// there is one diagnostic for each of those, the first worded exactly as a
/// whole-file parse words it. A pre-scan problem (an unterminated string or
/// comment, brackets nested too deep) breaks only the item it is in.
///
/// A file over [`MAX_SOURCE_BYTES`] is not read at all: it gives no items
/// and one `broken` entry covering the whole text, as does the (never
/// observed) case of recovery failing to reproduce a consistent tree.
///
/// The item-by-item pass runs only after the whole-file parse has failed,
/// so a file that parses costs exactly what it did before recovery existed.
pub fn parse_recovering(text: &str, file: FileId) -> (ast::File, Vec<Diagnostic>) {
    if text.len() > MAX_SOURCE_BYTES {
        let too_large = prescan::decode(text.as_bytes(), file)
            .err()
            .unwrap_or_else(|| {
                Diagnostic::new(crate::diagnostics::Code::E0003, "source file is too large")
            });
        return recover::unreadable(text, file, vec![too_large], None);
    }
    let failure = if prescan::scan(text, file).is_empty() {
        match parser::parse_file(text, file) {
            Ok((ast, mut diags)) => {
                if ast.items.is_empty() {
                    // Nothing to check is almost always a mistake: the
                    // wrong path, a truncated write, a file of comments
                    // only.
                    diags.push(no_items(text, file));
                }
                return (ast, diags);
            }
            Err(failure) => Some(failure),
        }
    } else {
        // The pre-scan's findings are not kept: recovery pre-scans each
        // item again, which finds the same problems in the items that have
        // them and lets the other items be parsed.
        None
    };
    recover::recover(text, file, failure)
}

fn no_items(text: &str, file: FileId) -> Diagnostic {
    Diagnostic::new(crate::diagnostics::Code::E0008, "source file has no items")
        .primary(
            file,
            crate::base::Span::new(0, text.len().min(1)),
            "no items in this file",
        )
        .help("an `.enigma` file holds at least one item: `use`, `dim`, `model`, ...")
}

#[cfg(test)]
mod recover_tests;
