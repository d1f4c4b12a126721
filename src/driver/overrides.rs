//! `--set KEY=VALUE`: settings changed from the command line, checked
//! exactly as if they were written in the file.
//!
//! An override is spliced into the root file's text before anything
//! reads it: the value replaces the one written (`train.steps=2000`), or
//! the setting is added to its block (` lr: 1e-4;` just after the `{`, on
//! the same line, so every line keeps its number). The whole pipeline then
//! runs on the spliced text, which is what the run directory keeps as the
//! resolved experiment (`experiment.enigma`). Diagnostics that land inside
//! a spliced piece are moved onto a source of their own, the argument as
//! typed (`--set train.lr=fast`), so the caret points at the command line
//! rather than at text the user never wrote.
//!
//! What a key can name:
//! - `train.K`, `train.checkpoint.K`, `parallel.K`, `parallel.mesh.K`: a
//!   setting of the `train` or `parallel` block or of one of their
//!   sub-blocks (added when absent, with the block itself if need be);
//! - `train.optimizer.lr`, or just `train.lr`: a named argument of the
//!   optimiser call (`adamw(lr: 3e-3)`), since `lr`, `betas`, `eps`,
//!   `weight_decay` and `momentum` are not settings of their own;
//! - `data.NAME.K`: a setting of the `data NAME` item's block;
//! - `dim.NAME`, or just `NAME`: the value of a `dim` written with one.
//!
//! Whether the key is a setting at all, and whether the value fits it, is
//! the checker's business, as for text in the file (E0207, E0208); what the
//! splice cannot place (no such data item, a dim the data sizes, a value
//! that is not one expression) is E0110.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::base::span::{FileId, Span};
use crate::diagnostics::{Code, Diagnostic};
use crate::source::{SourceFile, SourceLoader};
use crate::syntax::ast::{ConfigBlock, EntryKind, Expr, ExprKind, File, ItemKind};

/// The words before an override's key in the source that stands for it.
const FLAG: &str = "--set ";

/// The optimiser arguments `train.K` reaches inside `optimizer: f(...)`.
const OPTIMIZER_ARGS: [&str; 5] = ["lr", "betas", "eps", "weight_decay", "momentum"];

/// One `--set KEY=VALUE`, as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    arg: String,
    eq: usize,
}

impl FromStr for Override {
    type Err = String;

    fn from_str(arg: &str) -> Result<Override, String> {
        let eq = arg
            .find('=')
            .ok_or_else(|| format!("`{arg}` is not KEY=VALUE (for example train.lr=1e-4)"))?;
        let key = &arg[..eq];
        if key.is_empty() || arg[eq + 1..].trim().is_empty() {
            return Err(format!(
                "`{arg}` is not KEY=VALUE (for example train.lr=1e-4)"
            ));
        }
        if !key
            .split('.')
            .all(|k| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_'))
        {
            return Err(format!(
                "`{key}` is not a key: names joined by dots, such as train.checkpoint.every"
            ));
        }
        Ok(Override {
            arg: arg.to_string(),
            eq,
        })
    }
}

impl Override {
    /// `KEY=VALUE` as typed.
    pub fn as_str(&self) -> &str {
        &self.arg
    }

    /// The dotted key.
    pub fn key(&self) -> &str {
        &self.arg[..self.eq]
    }

    /// The value's text.
    pub fn value(&self) -> &str {
        &self.arg[self.eq + 1..]
    }

    /// The source that stands for this argument in diagnostics.
    fn source_text(&self) -> String {
        format!("{FLAG}{}", self.arg)
    }

    /// Where the value starts in [`Override::source_text`].
    fn value_at(&self) -> usize {
        FLAG.len() + self.eq + 1
    }

    /// Where the key's last name starts in [`Override::source_text`].
    fn last_key_at(&self) -> usize {
        FLAG.len() + self.key().rfind('.').map_or(0, |i| i + 1)
    }
}

/// A piece of the spliced text that came from an argument: bytes
/// `range` of the spliced file are bytes from `at` on of argument `arg`'s
/// source.
#[derive(Clone, Debug)]
struct Piece {
    range: Range<usize>,
    arg: usize,
    at: usize,
}

/// One edit of the root file's text.
struct Edit {
    /// The bytes replaced (empty for an insertion).
    at: Range<usize>,
    /// The text put there, as parts: plain text, or text from an argument
    /// (with where in its source that text starts).
    parts: Vec<(String, Option<usize>)>,
    arg: usize,
}

/// The root file with every override spliced in, and where each spliced
/// piece came from.
#[derive(Debug)]
pub struct Spliced {
    pub text: String,
    pieces: Vec<Piece>,
    overrides: Vec<Override>,
}

/// Splices `overrides` into `text`, the root file's source, one after
/// another: each is placed in the file as the earlier ones left it, so two
/// settings of a block the file leaves out land in one new block.
/// Overrides that cannot be placed are returned as E0110 diagnostics whose
/// labels' file is `FileId(i)` for argument `i`: placeholders until the
/// arguments' sources have ids of their own ([`Spliced::add_sources`],
/// [`Spliced::relocate_placeholders`]).
pub fn splice(text: &str, overrides: &[Override]) -> (Spliced, Vec<Diagnostic>) {
    let mut current = text.to_string();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut problems = Vec::new();
    let mut placed: Vec<&str> = Vec::new();
    for (i, ov) in overrides.iter().enumerate() {
        let file = FileId(i as u32);
        let fail = |message: String, label: &str| {
            let len = ov.source_text().len();
            Diagnostic::new(Code::E0110, message).primary(
                file,
                Span::new(FLAG.len(), len),
                label.to_string(),
            )
        };
        if let Err(why) = one_value(ov.value()) {
            problems.push(
                Diagnostic::new(
                    Code::E0110,
                    format!("the value of `--set {}` is not one value: {why}", ov.key()),
                )
                .primary(
                    file,
                    Span::new(ov.value_at(), ov.source_text().len()),
                    "expected one expression, as after `key:` in the file",
                ),
            );
            continue;
        }
        if placed.contains(&ov.key()) {
            problems.push(fail(
                format!("`{}` is set twice on the command line", ov.key()),
                "set again here",
            ));
            continue;
        }
        // The file parsed before the first override, and each value is one
        // expression, so this only fails on a value that parses alone but
        // not in its place; the checker of the spliced file reports that.
        let Ok(ast) = crate::syntax::parse(&current, FileId(0)) else {
            problems.push(fail(
                format!("the file does not parse with `{}` set", ov.key()),
                "cannot be set from the command line",
            ));
            continue;
        };
        match place(&current, &ast, ov, i) {
            Ok(edit) => {
                apply(&mut current, &mut pieces, edit);
                placed.push(ov.key());
            }
            Err(why) => problems.push(fail(why, "cannot be set from the command line")),
        }
    }
    (
        Spliced {
            text: current,
            pieces,
            overrides: overrides.to_vec(),
        },
        problems,
    )
}

/// Applies `edit` to `text`, moving the pieces after it and dropping any
/// it replaced.
fn apply(text: &mut String, pieces: &mut Vec<Piece>, edit: Edit) {
    let mut inserted = String::new();
    let mut new = Vec::new();
    for (part, from) in &edit.parts {
        let start = edit.at.start + inserted.len();
        inserted.push_str(part);
        if let Some(at) = from {
            new.push(Piece {
                range: start..edit.at.start + inserted.len(),
                arg: edit.arg,
                at: *at,
            });
        }
    }
    let removed = edit.at.end - edit.at.start;
    pieces.retain(|p| p.range.end <= edit.at.start || p.range.start >= edit.at.end);
    for p in pieces.iter_mut() {
        if p.range.start >= edit.at.end {
            p.range =
                p.range.start + inserted.len() - removed..p.range.end + inserted.len() - removed;
        }
    }
    text.replace_range(edit.at.clone(), &inserted);
    pieces.extend(new);
}

/// Whether `value` parses as exactly one expression.
fn one_value(value: &str) -> Result<(), String> {
    const LEAD: &str = "let __override = ";
    let probe = format!("{LEAD}{value}\n");
    let ast = crate::syntax::parse(&probe, FileId(0)).map_err(|d| {
        d.first()
            .map_or_else(|| "it does not parse".to_string(), |d| d.message.clone())
    })?;
    match ast.items.as_slice() {
        [item] => match &item.kind {
            ItemKind::Let(l) if l.value.span.start as usize == LEAD.len() => Ok(()),
            _ => Err("it reads as more than one item".to_string()),
        },
        _ => Err("it reads as more than one item".to_string()),
    }
}

/// Where override `i` goes in the file.
fn place(text: &str, ast: &File, ov: &Override, i: usize) -> Result<Edit, String> {
    let keys: Vec<&str> = ov.key().split('.').collect();
    let value = |lead: String, tail: &str| -> Vec<(String, Option<usize>)> {
        let mut parts = Vec::new();
        if !lead.is_empty() {
            parts.push((lead, None));
        }
        parts.push((ov.value().to_string(), Some(ov.value_at())));
        if !tail.is_empty() {
            parts.push((tail.to_string(), None));
        }
        parts
    };
    match keys.as_slice() {
        ["dim", name] | [name] => {
            let dim = ast.items.iter().find_map(|item| match &item.kind {
                ItemKind::Dim(d) if d.name.name == *name => Some(d),
                _ => None,
            });
            let Some(dim) = dim else {
                return Err(if keys.len() == 1 {
                    format!("`{name}` is neither a `dim` of this file nor a block key: write train.{name}, parallel.{name}, data.NAME.{name} or dim.NAME")
                } else {
                    format!("this file has no `dim {name}`")
                });
            };
            match (&dim.value, dim.per_session) {
                (_, Some(_)) => Err(format!(
                    "`dim {name}` is bound per session: each session's data gives its size"
                )),
                (None, None) => Err(format!(
                    "`dim {name}` has no value in the file: the data gives its size"
                )),
                (Some(v), None) => Ok(Edit {
                    at: range(v.span),
                    parts: value(String::new(), ""),
                    arg: i,
                }),
            }
        }
        ["train" | "parallel", rest @ ..] => {
            let train = keys[0] == "train";
            let block = ast.items.iter().find_map(|item| match &item.kind {
                ItemKind::Train(b) if train => Some(b),
                ItemKind::Parallel(b) if !train => Some(b),
                _ => None,
            });
            let Some(block) = block else {
                // No block at all: one at the end of the file.
                let (open, close) = nested(rest);
                let lead = format!("\n{} {{ {open}", keys[0]);
                return Ok(Edit {
                    at: text.len()..text.len(),
                    parts: with_key(value(lead, &format!("{close} }}\n")), ov),
                    arg: i,
                });
            };
            let rest: Vec<&str> = match rest {
                [k] if train && OPTIMIZER_ARGS.contains(k) => vec!["optimizer", k],
                _ => rest.to_vec(),
            };
            in_block(text, block, &rest, ov, i, keys[0])
        }
        ["data", name, rest @ ..] if !rest.is_empty() => {
            let data = ast.items.iter().find_map(|item| match &item.kind {
                ItemKind::Data(d) if d.name.name == *name => Some(d),
                _ => None,
            });
            let Some(data) = data else {
                return Err(format!("this file has no `data {name}` item"));
            };
            match &data.config {
                Some(block) => in_block(text, block, rest, ov, i, &format!("data.{name}")),
                None => {
                    let (open, close) = nested(rest);
                    let end = data.source.span.end as usize;
                    Ok(Edit {
                        at: end..end,
                        parts: with_key(value(format!(" {{ {open}"), &format!("{close} }}")), ov),
                        arg: i,
                    })
                }
            }
        }
        _ => Err(format!(
            "`{}` names no setting: keys start with train., parallel., data.NAME. or dim.",
            ov.key()
        )),
    }
}

/// `key: VALUE` in `block` (the block of `path`), replacing the value
/// written or adding the setting.
fn in_block(
    text: &str,
    block: &ConfigBlock,
    keys: &[&str],
    ov: &Override,
    i: usize,
    path: &str,
) -> Result<Edit, String> {
    let Some((first, rest)) = keys.split_first() else {
        return Err(format!(
            "`{path}` is a block: set one of its keys, such as {path}.KEY"
        ));
    };
    let here = format!("{path}.{first}");
    for entry in &block.entries {
        match &entry.kind {
            EntryKind::Setting { key, value } if key.name == *first => {
                return match rest {
                    [] => Ok(Edit {
                        at: range(value.span),
                        parts: vec![(ov.value().to_string(), Some(ov.value_at()))],
                        arg: i,
                    }),
                    [arg] => in_call(value, arg, ov, i, &here),
                    _ => Err(format!("`{here}` is a setting, not a block")),
                };
            }
            EntryKind::Block { key, block } if key.name == *first => {
                return in_block(text, block, rest, ov, i, &here);
            }
            EntryKind::Mapping { keys: names, .. } if names.iter().any(|k| k.name == *first) => {
                return Err(format!(
                    "`{here}` is a mapping (`{first} -> axis`), which is edited in the file"
                ));
            }
            _ => {}
        }
    }
    // Not written: added just inside the block's `{`.
    let start = block.span.start as usize;
    if text.as_bytes().get(start) != Some(&b'{') {
        return Err(format!(
            "the block of `{path}` could not be located in the file"
        ));
    }
    let (open, close) = nested(keys);
    let last = keys.last().copied().unwrap_or_default();
    let parts = vec![
        (format!(" {open}"), None),
        (last.to_string(), Some(ov.last_key_at())),
        (": ".to_string(), None),
        (ov.value().to_string(), Some(ov.value_at())),
        (format!("{close};"), None),
    ];
    Ok(Edit {
        at: start + 1..start + 1,
        parts,
        arg: i,
    })
}

/// A named argument `arg: VALUE` of the call `value` (the optimiser).
fn in_call(value: &Expr, arg: &str, ov: &Override, i: usize, path: &str) -> Result<Edit, String> {
    let ExprKind::Call { args, .. } = &value.kind else {
        return Err(format!(
            "`{path}` is not a call, so it has no argument `{arg}`"
        ));
    };
    if let Some(a) = args
        .iter()
        .find(|a| a.name.as_ref().is_some_and(|n| n.name == arg))
    {
        return Ok(Edit {
            at: range(a.value.span),
            parts: vec![(ov.value().to_string(), Some(ov.value_at()))],
            arg: i,
        });
    }
    // Added before the closing parenthesis.
    let end = (value.span.end as usize).saturating_sub(1);
    let sep = if args.is_empty() { "" } else { ", " };
    Ok(Edit {
        at: end..end,
        parts: vec![
            (sep.to_string(), None),
            (arg.to_string(), Some(ov.last_key_at())),
            (": ".to_string(), None),
            (ov.value().to_string(), Some(ov.value_at())),
        ],
        arg: i,
    })
}

/// `a { b { ` and ` } }` around the last key of `keys`, which comes with
/// the value (`with_key`).
fn nested(keys: &[&str]) -> (String, String) {
    let Some((_, outer)) = keys.split_last() else {
        return (String::new(), String::new());
    };
    let open: String = outer.iter().map(|k| format!("{k} {{ ")).collect();
    let close = " }".repeat(outer.len());
    (open, close)
}

/// `parts` (which end with the value) with the argument's last key and a
/// colon before the value.
fn with_key(parts: Vec<(String, Option<usize>)>, ov: &Override) -> Vec<(String, Option<usize>)> {
    let last = ov.key().rsplit('.').next().unwrap_or_default().to_string();
    let mut out = Vec::new();
    for part in parts {
        if part.1 == Some(ov.value_at()) {
            out.push((last.clone(), Some(ov.last_key_at())));
            out.push((": ".to_string(), None));
        }
        out.push(part);
    }
    out
}

fn range(span: Span) -> Range<usize> {
    span.start as usize..span.end as usize
}

impl Spliced {
    /// The overrides, in order.
    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    /// Adds one source per argument to `sources` (in order, so the first
    /// gets the id [`splice`] was told), named as the command line.
    pub fn add_sources(&self, sources: &mut crate::source::SourceMap) -> Vec<FileId> {
        self.overrides
            .iter()
            .map(|ov| sources.add(SourceFile::new("command line", None, ov.source_text())))
            .collect()
    }

    /// Points the labels of [`splice`]'s own diagnostics (argument `i` as
    /// `FileId(i)`) at the arguments' sources.
    pub fn relocate_placeholders(diagnostics: &mut [Diagnostic], args: &[FileId]) {
        for label in diagnostics.iter_mut().flat_map(|d| d.labels.iter_mut()) {
            if let Some(&file) = args.get(label.file.0 as usize) {
                label.file = file;
            }
        }
    }

    /// Moves every label of `root` that falls in a spliced piece onto the
    /// argument it came from (`args[i]` is argument `i`'s source).
    pub fn relocate(&self, diagnostics: &mut [Diagnostic], root: FileId, args: &[FileId]) {
        for label in diagnostics.iter_mut().flat_map(|d| d.labels.iter_mut()) {
            if label.file != root {
                continue;
            }
            let (s, e) = (label.span.start as usize, label.span.end as usize);
            let start = self
                .pieces
                .iter()
                .find(|p| p.range.contains(&s) || (s == e && p.range.end == s));
            let end = self
                .pieces
                .iter()
                .find(|p| p.range.start < e && e <= p.range.end);
            let (Some(a), Some(b)) = (start.or(end), end.or(start)) else {
                continue;
            };
            if a.arg != b.arg {
                continue;
            }
            let Some(&file) = args.get(a.arg) else {
                continue;
            };
            let from = a.at + s.saturating_sub(a.range.start);
            let to = b.at + e.min(b.range.end).saturating_sub(b.range.start);
            label.file = file;
            label.span = Span::new(from, to.max(from));
        }
    }
}

/// A loader that reads the spliced text for the root file and everything
/// else through `inner`.
pub struct SplicedLoader<'a> {
    pub inner: &'a dyn SourceLoader,
    pub root: PathBuf,
    pub text: String,
}

impl SplicedLoader<'_> {
    fn is_root(&self, path: &Path) -> bool {
        self.inner.canonical(path) == self.root
    }
}

impl SourceLoader for SplicedLoader<'_> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if self.is_root(path) {
            return Ok(self.text.clone().into_bytes());
        }
        self.inner.read(path)
    }

    fn is_file(&self, path: &Path) -> bool {
        self.inner.is_file(path)
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        self.inner.canonical(path)
    }

    fn read_prefix(&self, path: &Path, max: usize) -> io::Result<Vec<u8>> {
        if self.is_root(path) {
            let mut bytes = self.text.clone().into_bytes();
            bytes.truncate(max);
            return Ok(bytes);
        }
        self.inner.read_prefix(path, max)
    }

    fn len(&self, path: &Path) -> Option<u64> {
        if self.is_root(path) {
            return Some(self.text.len() as u64);
        }
        self.inner.len(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        self.inner.list_dir(dir)
    }

    // Data files are read as the wrapped loader reads them (an NWB header
    // through libhdf5 on disk), never as text.
    fn probe(
        &self,
        path: &Path,
        format: crate::source::probe::DataFormat,
    ) -> Result<crate::source::probe::DataHeader, crate::source::probe::ProbeError> {
        self.inner.probe(path, format)
    }
}
