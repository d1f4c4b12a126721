//! Checks made on raw source before the grammar runs.
//!
//! The grammar is a recursive-descent parser, so some inputs are better
//! caught by a linear scan: text that is not UTF-8, files too large to be
//! an experiment, brackets nested deep enough to exhaust the stack, and
//! unterminated strings or block comments (for which a grammar error would
//! point at the end of the file rather than at the opening quote).

use crate::base::FileId;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};

/// The largest source file accepted. Experiments are a few kilobytes; the
/// cap keeps a stray multi-megabyte file from costing seconds and memory in
/// the editor. Generated programs of 10,000 lines are about 400 KB.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// The deepest bracket nesting accepted (`(`, `[` and `{` together).
pub const MAX_NESTING: usize = 64;

/// Decodes `bytes` as UTF-8 within the size limit.
pub fn decode(bytes: &[u8], file: FileId) -> Result<&str, Diagnostic> {
    if bytes.len() > MAX_SOURCE_BYTES {
        return Err(Diagnostic::new(
            Code::E0003,
            format!(
                "source file is {} bytes; the limit is {} bytes ({} MiB)",
                bytes.len(),
                MAX_SOURCE_BYTES,
                MAX_SOURCE_BYTES / (1024 * 1024)
            ),
        )
        .primary(file, Span::point(0), "this file")
        .help("split the experiment into modules and import them with `use`"));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let len = e.error_len().unwrap_or(bytes.len() - at).max(1);
        Diagnostic::new(
            Code::E0002,
            format!("source file is not valid UTF-8 (invalid byte at offset {at})"),
        )
        .primary(
            file,
            Span::new(at, at),
            format!("{len} invalid byte(s) here"),
        )
        .help("`.enigma` files are UTF-8 text; was a binary file passed by mistake?")
    })
}

/// Scans text for unterminated literals and comments and for excessive
/// nesting. Returns every problem found; scanning stops at the first nesting
/// error because what follows it is not trustworthy.
pub fn scan(text: &str, file: FileId) -> Vec<Diagnostic> {
    scan_range(text, 0..text.len(), file)
}

/// Scans `text[range]` as [`scan`] scans a whole file, with nesting counted
/// from zero at `range.start`. Error recovery scans each top-level item on
/// its own this way, so that an unterminated string in one item does not
/// hide the others; spans stay offsets into the whole `text`.
pub fn scan_range(text: &str, range: std::ops::Range<usize>, file: FileId) -> Vec<Diagnostic> {
    // Nothing is read past the end of the range: a literal left open in
    // one item is reported there, not continued into the next.
    let bytes = text.as_bytes();
    let bytes = bytes.get(..range.end).unwrap_or(bytes);
    let mut diags = Vec::new();
    let mut depth = 0usize;
    let mut i = range.start;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                match super::trivia::block_comment_end(bytes, i) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    None => {
                        diags.push(
                        Diagnostic::new(Code::E0006, "unterminated block comment")
                            .primary(file, Span::new(i, i + 2), "comment opened here")
                            .help("close it with `*/`; block comments nest, so each `/*` needs its own `*/`"),
                    );
                        return diags;
                    }
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n') => {
                            let end = if bytes.get(i.wrapping_sub(1)) == Some(&b'\r') {
                                i - 1
                            } else {
                                i
                            };
                            diags.push(
                                Diagnostic::new(Code::E0005, "unterminated string literal")
                                    .primary(
                                        file,
                                        Span::new(start, end.max(start + 1)),
                                        "this string has no closing quote",
                                    )
                                    .help("strings end on the line they start; add a closing `\"`"),
                            );
                            break;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                    }
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    diags.push(
                        Diagnostic::new(
                            Code::E0004,
                            format!("brackets are nested more than {MAX_NESTING} levels deep"),
                        )
                        .primary(
                            file,
                            Span::new(i, i + 1),
                            format!("level {depth} opens here"),
                        )
                        .help("name intermediate results with `let` to flatten the expression"),
                    );
                    return diags;
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    diags
}
