//! Error recovery: when a file does not parse, keep the top-level items
//! that do.
//!
//! The grammar is a PEG run by pest, which stops at the first error and
//! returns no tree at all, so recovery works around the grammar rather than
//! inside it. A lexical scan ([`chunks`]) cuts the file into one chunk per
//! top-level item: an item starts on a line whose first word is an item
//! keyword, outside comments and strings and at bracket depth 0 (or in the
//! first column, when a broken item left a bracket open), together with the
//! `///` doc comments above it. Each chunk is pre-scanned and parsed
//! on its own, and each one that fails gives its own diagnostic. The failed
//! chunks are then blanked out (every byte but line breaks becomes a space,
//! so no offset or line number moves) and the blanked file is parsed once
//! more as a whole. That last parse lowers the surviving items with spans
//! into the real file, through the same lowering as a clean parse, so there
//! is no second way to build the AST and no span arithmetic to get wrong.
//!
//! Blanking is sound because an item that parses alone parses the same way
//! inside the file: every optional tail an item can have (`{ ... }`, an
//! operator, `(`, `[`, `.`, `|`, `per session`, `;`) starts with something
//! other than an item keyword or a doc comment, which is what the next chunk
//! starts with, so the item cannot run on into its neighbour. Should the
//! blanked parse fail all the same, the file is reported with no items and
//! wholly broken rather than with a wrong tree.
//!
//! Recovery costs a few linear passes over the file and runs only when the
//! whole-file parse has failed.

use std::ops::Range;

use super::ast::{BrokenItem, File, Ident};
use super::parser::{self, Failure};
use super::prescan;
use super::trivia::block_comment_end;
use super::{ITEM_KEYWORDS, RESERVED};
use crate::base::{FileId, Span};
use crate::diagnostics::{self, Code, Diagnostic};

#[cfg(test)]
thread_local! {
    /// How many times this thread has run [`recover`], so that tests can
    /// check that a file that parses never pays for recovery.
    pub(super) static RECOVERIES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Parses `text` item by item after the whole-file parse has failed.
///
/// `whole` is that failure, when the grammar ran at all (it does not run
/// when the pre-scan found problems); its diagnostic replaces the one of the
/// first broken chunk when both describe the same place, so the first error
/// reads exactly as it did before recovery existed.
pub(super) fn recover(text: &str, file: FileId, whole: Option<Failure>) -> (File, Vec<Diagnostic>) {
    #[cfg(test)]
    RECOVERIES.with(|n| n.set(n.get() + 1));
    let mut whole = whole;
    let mut diags = Vec::new();
    let mut broken: Vec<Range<usize>> = Vec::new();
    for range in chunks(text) {
        // The pre-scan guards the grammar (against nesting deep enough to
        // exhaust the stack) as well as explaining unterminated literals, so
        // a chunk it rejects is never given to pest.
        let mut problems = prescan::scan_range(text, range.clone(), file);
        if problems.is_empty() {
            problems.extend(parser::check_chunk(text, range.clone(), file));
        }
        if problems.is_empty() {
            continue;
        }
        // The whole-file parse stopped in the first broken chunk, or at the
        // start of the next (a missing `}` is noticed at the next item); a
        // stop further on means it read past the chunk's end (into blocks
        // the chunk left open), and the chunk's own error is the better one.
        if let Some(first) = whole.take_if(|w| range.start <= w.pos && w.pos <= range.end) {
            problems = vec![first.diag];
        }
        whole = None;
        diags.extend(problems);
        broken.push(range);
    }
    if broken.is_empty() {
        // Every chunk parsed alone although the file did not: the cut was
        // wrong somewhere. Nothing can be trusted, so nothing is kept.
        return unreadable(text, file, diags, whole);
    }
    let Some(blanked) = blank(text, &broken) else {
        return unreadable(text, file, diags, whole);
    };
    match parser::parse_file(&blanked, file) {
        Ok((mut ast, lowering)) => {
            ast.broken = broken.into_iter().map(|r| broken_item(text, r)).collect();
            diags.extend(lowering);
            diagnostics::sort(&mut diags);
            (ast, diags)
        }
        Err(_) => unreadable(text, file, diags, whole),
    }
}

/// A file none of which could be read: no items, the whole text marked
/// broken, and at least one diagnostic (those given, else `whole`'s, else a
/// plain syntax error), so that no caller can take it for a valid file.
pub(super) fn unreadable(
    text: &str,
    file: FileId,
    mut diags: Vec<Diagnostic>,
    whole: Option<Failure>,
) -> (File, Vec<Diagnostic>) {
    if diags.is_empty() {
        diags.push(match whole {
            Some(w) => w.diag,
            None => Diagnostic::new(Code::E0001, "this file could not be parsed").primary(
                file,
                Span::new(0, text.len().min(1)),
                "in this file",
            ),
        });
    }
    let all = Span::new(0, text.len());
    let ast = File {
        docs: Vec::new(),
        items: Vec::new(),
        span: all,
        broken: vec![BrokenItem {
            span: all,
            keyword: None,
            name: None,
        }],
    };
    (ast, diags)
}

/// Cuts `text` into consecutive byte ranges, one per top-level item, plus
/// one for whatever comes before the first item (module docs, comments,
/// stray text) when there is anything. The ranges cover the text exactly
/// and each starts at the start of a line.
pub(super) fn chunks(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    for start in item_starts(text) {
        if start > from {
            out.push(from..start);
        }
        from = start;
    }
    if text.len() > from {
        out.push(from..text.len());
    }
    out
}

/// What a line starts with, for cutting a file into items.
enum Line {
    /// Nothing, or only a comment: it neither starts nor ends a run of doc
    /// comments, as the grammar skips it between the docs and their item.
    Trivia,
    /// A `///` doc comment, which belongs to the item below it.
    Doc,
    /// An item keyword; the `usize` is where the word after it begins.
    Item(&'static str, usize),
    /// Anything else.
    Other,
}

/// The offsets of the lines that start a top-level item (at their doc
/// comments, when they have any), in order.
///
/// An item starts on a line whose first word is an item keyword at bracket
/// depth 0. A bracket left open by a broken item would otherwise hide every
/// item after it, so a keyword in the first column also starts an item at
/// any depth when a name or `{` follows it, as in `model brain {`. The
/// exception is `let` right inside `{`, which is a statement in a body.
/// Nothing else that may begin a line inside brackets looks like that: keys
/// in blocks are followed by `:` or `{`, and `train {` as a nested block in
/// the first column is the one shape this misreads, at worst turning one
/// broken item into two.
fn item_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    // The brackets open at this point, innermost last. Unbalanced closing
    // brackets are ignored, as the pre-scan ignores them.
    let mut open: Vec<u8> = Vec::new();
    // Where the run of `///` lines just above the current line begins.
    let mut docs: Option<usize> = None;
    let mut at_line_start = true;
    let mut i = 0;
    while i < bytes.len() {
        if at_line_start {
            at_line_start = false;
            let first = skip_blanks(bytes, i);
            match line_kind(bytes, first) {
                Line::Trivia => {}
                Line::Doc => {
                    docs.get_or_insert(i);
                }
                Line::Item(keyword, after) => {
                    let opens_item = bytes
                        .get(skip_blanks(bytes, after))
                        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'{');
                    let statement = keyword == "let" && open.last() == Some(&b'{');
                    let column_zero = first == i && opens_item && !statement;
                    if open.is_empty() || column_zero {
                        starts.push(docs.unwrap_or(i));
                        open.clear();
                    }
                    docs = None;
                }
                Line::Other => docs = None,
            }
            i = first;
            continue;
        }
        match bytes[i] {
            b'\n' => {
                at_line_start = true;
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => i = line_end(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(bytes, i).unwrap_or(bytes.len())
            }
            b'"' => i = string_end(bytes, i),
            b @ (b'(' | b'[' | b'{') => {
                open.push(b);
                i += 1;
            }
            b')' | b']' | b'}' => {
                open.pop();
                i += 1;
            }
            _ => i += 1,
        }
    }
    starts
}

fn line_kind(bytes: &[u8], at: usize) -> Line {
    let rest = bytes.get(at..).unwrap_or_default();
    match rest.first() {
        None | Some(b'\n') | Some(b'\r') => return Line::Trivia,
        _ => {}
    }
    if rest.starts_with(b"///") && !rest.starts_with(b"////") {
        return Line::Doc;
    }
    if rest.starts_with(b"//") || rest.starts_with(b"/*") {
        return Line::Trivia;
    }
    let end = word_end(bytes, at);
    let word = bytes.get(at..end).unwrap_or_default();
    match ITEM_KEYWORDS.iter().find(|k| k.as_bytes() == word) {
        Some(keyword) => Line::Item(keyword, end),
        None => Line::Other,
    }
}

/// Past the spaces and tabs at `i`.
fn skip_blanks(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// The line break that ends the line holding `i` (or the end of the text).
fn line_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i] != b'\n' {
        i += 1;
    }
    i
}

/// Past the string literal whose opening quote is at `i`. Like the grammar
/// and the pre-scan, a backslash escapes any byte, a line break included;
/// an unterminated string ends at the end of its line.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    loop {
        match bytes.get(i) {
            None => return bytes.len(),
            Some(b'\n') => return i,
            Some(b'"') => return i + 1,
            Some(b'\\') => i = (i + 2).min(bytes.len()),
            Some(_) => i += 1,
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The end of the run of letters, digits and `_` starting at `i`.
fn word_end(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).copied().is_some_and(is_word_byte) {
        i += 1;
    }
    i
}

/// Past the whitespace and comments (doc comments included) at `i`, but not
/// past `end`.
fn skip_trivia(bytes: &[u8], mut i: usize, end: usize) -> usize {
    while i < end {
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => i = line_end(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(bytes, i).unwrap_or(end)
            }
            _ => break,
        }
    }
    i.min(end)
}

/// The end of the last token in `bytes[from..end]`, or `from` if there is
/// none: a chunk without the comments and blank lines that trail it.
fn last_token_end(bytes: &[u8], from: usize, end: usize) -> usize {
    let mut last = from;
    let mut i = from;
    while i < end {
        let next = skip_trivia(bytes, i, end);
        if next >= end {
            break;
        }
        i = if bytes[next] == b'"' {
            string_end(bytes, next).min(end)
        } else {
            next + 1
        };
        last = i;
    }
    last
}

/// The name spelled at `at`, if a name (not a reserved word) starts there
/// and ends before `end`.
fn ident_at(text: &str, at: usize, end: usize) -> Option<Ident> {
    let bytes = text.as_bytes();
    let first = *bytes.get(at)?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let stop = word_end(bytes, at);
    if stop > end {
        return None;
    }
    let name = text.get(at..stop)?;
    if RESERVED.contains(&name) {
        return None;
    }
    Some(Ident {
        name: name.to_string(),
        span: Span::new(at, stop),
    })
}

/// What can be read of a chunk that did not parse: its extent, its
/// keyword and the name it would define (see [`BrokenItem`]).
pub(super) fn broken_item(text: &str, range: Range<usize>) -> BrokenItem {
    let bytes = text.as_bytes();
    let end = range.end.min(bytes.len());
    let start = skip_trivia(bytes, range.start, end);
    let span = Span::new(start, last_token_end(bytes, start, end).max(start));
    let word_stop = word_end(bytes, start);
    let keyword = text
        .get(start..word_stop)
        .and_then(|w| ITEM_KEYWORDS.iter().find(|k| **k == w).copied());
    let after = skip_trivia(bytes, word_stop, end);
    let name = match keyword {
        None | Some("train") | Some("parallel") => None,
        Some("use") => use_name(text, after, end),
        Some("loss") | Some("metric") => ident_at(text, after, end).filter(|label| {
            // `loss recon = ...` is labelled; `loss nll(...)` is not, and
            // neither is `loss a == b`.
            let eq = skip_trivia(bytes, label.span.end as usize, end);
            bytes.get(eq) == Some(&b'=') && bytes.get(eq + 1) != Some(&b'=')
        }),
        Some(_) => ident_at(text, after, end),
    };
    BrokenItem {
        span,
        keyword,
        name,
    }
}

/// The name a `use` binds, read from its path starting at `at`: the alias
/// after `as`, else the last segment; `None` for a group `::{...}`, whose
/// names a broken item cannot be trusted to list, and for a path cut off
/// after `::`.
fn use_name(text: &str, mut at: usize, end: usize) -> Option<Ident> {
    let bytes = text.as_bytes();
    loop {
        let segment = ident_at(text, at, end)?;
        at = skip_trivia(bytes, segment.span.end as usize, end);
        let rest = bytes.get(at..end).unwrap_or_default();
        if rest.starts_with(b"::") {
            at = skip_trivia(bytes, at + 2, end);
            continue;
        }
        if rest.starts_with(b"as") && !rest.get(2).copied().is_some_and(is_word_byte) {
            return ident_at(text, skip_trivia(bytes, at + 2, end), end);
        }
        return Some(segment);
    }
}

/// `text` with the bytes of `ranges` replaced by spaces, line breaks kept,
/// so that everything else stays at the same offset and line. The ranges
/// start and end at line starts, so no character is cut in two; `None`
/// should that ever not hold.
fn blank(text: &str, ranges: &[Range<usize>]) -> Option<String> {
    let mut bytes = text.as_bytes().to_vec();
    for r in ranges {
        for b in bytes.get_mut(r.clone())? {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    String::from_utf8(bytes).ok()
}
