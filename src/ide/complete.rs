//! Completion and signature help.
//!
//! The place being typed is usually not valid syntax yet (`train { st`),
//! so the context is read lexically from the text before the cursor: the
//! stack of open brackets, each `{` labelled with what opened it (`train`,
//! `checkpoint`), and whether the cursor is after a number (a unit comes
//! next), after `key:` in a settings block (a value comes next), inside a
//! call's parentheses (named arguments come next) or anywhere else (names
//! in scope). What is offered comes from the analysis: settings keys and
//! values from the checker's schema ([`crate::check::schema`]), names from
//! the file scope, the enclosing item's parameters and bindings, and the
//! builtins.

use super::{Analysis, Def, DefKind, Target};
use crate::base::{FileId, Span};
use crate::check::schema::{self, Kind, Setting};
use crate::resolve::builtins;
use crate::syntax::ast::Unit;
use crate::syntax::trivia::block_comment_end;
use crate::syntax::ITEM_KEYWORDS;

/// What a completion inserts, for the editor's icon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Keyword,
    /// A settings key.
    Property,
    /// A settings value or symbol.
    EnumMember,
    Unit,
    Function,
    Module,
    Variable,
    Dim,
    /// A named argument of a call.
    Argument,
}

/// One completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub label: String,
    pub kind: ItemKind,
    /// A short description: a type, a kind, a signature.
    pub detail: String,
    /// Documentation in Markdown, possibly empty.
    pub docs: String,
    /// What to insert, when it differs from the label (`steps: `).
    pub insert: Option<String>,
    /// The text the completion replaces: the partial word being typed.
    pub replace: Span,
}

/// The completions at `offset` of `file`.
pub fn complete(a: &Analysis, file: FileId, offset: usize) -> Vec<Completion> {
    let text = a.text(file);
    let offset = offset.min(text.len());
    let ctx = Context::read(text, offset);
    let replace = Span::new(ctx.word_start, offset);
    let item = |label: &str, kind, detail: String, docs: &str, insert: Option<String>| Completion {
        label: label.to_string(),
        kind,
        detail,
        docs: docs.to_string(),
        insert,
        replace,
    };
    if let Some(number_end) = ctx.after_number {
        let typed = &text[number_end..offset];
        let replace = Span::new(number_end, offset);
        return Unit::ALL
            .iter()
            .map(|u| u.as_str())
            .filter(|u| u.starts_with(typed))
            .map(|u| Completion {
                replace,
                ..item(u, ItemKind::Unit, unit_detail(u).to_string(), "", None)
            })
            .collect();
    }
    if let Some(path) = &ctx.settings {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        let fields = fields_of(&names);
        if let Some(key) = &ctx.value_of {
            let mut full = names.clone();
            full.push(key);
            return match schema::lookup(&full) {
                Some(setting) => values(setting)
                    .into_iter()
                    .map(|(label, insert)| {
                        item(
                            label,
                            ItemKind::EnumMember,
                            setting.kind.describe(),
                            "",
                            insert,
                        )
                    })
                    .collect(),
                None => names_in_scope(a, file, offset, replace),
            };
        }
        if !fields.is_empty() {
            return fields
                .iter()
                .filter(|f| !ctx.keys_here.iter().any(|k| k == f.key))
                .map(|f| {
                    let insert = match f.kind {
                        Kind::Block(_) | Kind::Mesh => format!("{} {{ }}", f.key),
                        _ => format!("{}: ", f.key),
                    };
                    let required = if f.required { " (required)" } else { "" };
                    item(
                        f.key,
                        ItemKind::Property,
                        format!("{}{required}", f.kind.describe()),
                        f.doc,
                        Some(insert),
                    )
                })
                .collect();
        }
    }
    let mut out = Vec::new();
    if let Some(callee) = &ctx.call {
        // Arguments already given are not offered again.
        let given = |c: &Completion| ctx.keys_here.iter().any(|k| c.label == format!("{k}:"));
        out.extend(
            arguments(a, file, callee, replace)
                .into_iter()
                .filter(|c| !given(c)),
        );
    }
    if ctx.depth == 0 {
        out.extend(
            ITEM_KEYWORDS
                .iter()
                .map(|k| item(k, ItemKind::Keyword, "item".to_string(), "", None)),
        );
    } else if ctx.in_body {
        out.extend(
            ["let", "param", "predict", "return", "if", "else"]
                .iter()
                .map(|k| item(k, ItemKind::Keyword, "statement".to_string(), "", None)),
        );
    }
    if ctx.depth > 0 || ctx.call.is_some() {
        out.extend(names_in_scope(a, file, offset, replace));
    }
    out
}

fn unit_detail(u: &str) -> &'static str {
    match u {
        "us" | "ms" | "s" | "min" => "duration",
        "Hz" | "kHz" => "rate",
        _ => "size in bytes",
    }
}

/// The settings of the block at `path` (`["train", "checkpoint"]`).
fn fields_of(path: &[&str]) -> &'static [Setting] {
    match path {
        [] => &[],
        [block] => schema::block(block).unwrap_or(&[]),
        _ => schema::lookup(path).map_or(&[], |s| s.kind.fields()),
    }
}

/// The values a setting may take, with what to insert for calls.
fn values(setting: &Setting) -> Vec<(&'static str, Option<String>)> {
    match setting.kind {
        Kind::Bool => vec![("true", None), ("false", None)],
        Kind::Call(names) => names.iter().map(|n| (*n, Some(format!("{n}(")))).collect(),
        _ => setting.kind.values().iter().map(|v| (*v, None)).collect(),
    }
}

/// Named arguments of the callee, when it is a `fn`, `module` or `model`.
fn arguments(
    a: &Analysis,
    file: FileId,
    callee: &(Span, String),
    replace: Span,
) -> Vec<Completion> {
    let Some(def) = callee_def(a, file, callee.0) else {
        return Vec::new();
    };
    def.params
        .iter()
        .map(|p| Completion {
            label: format!("{}:", p.name),
            kind: ItemKind::Argument,
            detail: p.text.clone(),
            docs: p.docs.clone(),
            insert: Some(format!("{}: ", p.name)),
            replace,
        })
        .collect()
}

/// The definition of the callee whose name is at `span`.
fn callee_def(a: &Analysis, file: FileId, span: Span) -> Option<&Def> {
    match a.target_at(file, span.start as usize)? {
        (_, Target::Def(site)) => a.def(site),
        _ => None,
    }
}

/// Every name visible at `offset`: the file scope, the enclosing item's
/// parameters and earlier bindings, and the builtins.
fn names_in_scope(a: &Analysis, file: FileId, offset: usize, replace: Span) -> Vec<Completion> {
    let program = a.program();
    let mut out = Vec::new();
    let mut push = |label: &str, kind, detail: String, docs: String| {
        if !out.iter().any(|c: &Completion| c.label == label) {
            out.push(Completion {
                label: label.to_string(),
                kind,
                detail,
                docs,
                insert: None,
                replace,
            });
        }
    };
    if let (Some(ix), Some(m)) = (a.index(file), program.module_of(file)) {
        let module = program.module(m);
        let item = module.ast.as_ref().and_then(|ast| {
            ast.items
                .iter()
                .position(|i| (i.span.start as usize) <= offset && offset <= i.span.end as usize)
        });
        for d in &ix.defs {
            if !d.kind.is_item() && Some(d.item) == item && (d.span.start as usize) < offset {
                push(
                    &d.name,
                    kind_of(d.kind),
                    d.signature.clone(),
                    d.docs.clone(),
                );
            }
        }
        for name in module.scope.keys() {
            let def = program
                .scope_definition(m, name)
                .and_then(|site| a.def(site));
            match def {
                Some(d) => push(name, kind_of(d.kind), d.signature.clone(), d.docs.clone()),
                None => push(name, ItemKind::Module, "module".to_string(), String::new()),
            }
        }
    }
    for name in builtins::all_values() {
        let detail = builtins::lookup(name).map_or("builtin", |k| k.describe());
        push(name, ItemKind::Function, detail.to_string(), String::new());
    }
    out
}

fn kind_of(k: DefKind) -> ItemKind {
    match k {
        DefKind::Fn => ItemKind::Function,
        DefKind::Module | DefKind::Model => ItemKind::Module,
        DefKind::Dim | DefKind::GenericDim => ItemKind::Dim,
        _ => ItemKind::Variable,
    }
}

/// Signature help: the callee's signature and which parameter the cursor
/// is on.
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureHelp {
    pub label: String,
    pub docs: String,
    /// Each parameter's text, as it appears in `label`.
    pub params: Vec<(String, String)>,
    pub active: Option<usize>,
}

/// The signature of the innermost call around `offset`.
pub fn signature_help(a: &Analysis, file: FileId, offset: usize) -> Option<SignatureHelp> {
    let text = a.text(file);
    let ctx = Context::read(text, offset.min(text.len()));
    let (span, _) = ctx.call?;
    let def = callee_def(a, file, span)?;
    let list: Vec<String> = def.params.iter().map(|p| p.text.clone()).collect();
    let label = format!("{}({})", def.name, list.join(", "));
    let active = match &ctx.arg_name {
        Some(name) => def.params.iter().position(|p| &p.name == name),
        None => Some(ctx.arg_index).filter(|i| *i < def.params.len()),
    };
    Some(SignatureHelp {
        label,
        docs: def.docs.clone(),
        params: def
            .params
            .iter()
            .map(|p| (p.text.clone(), p.docs.clone()))
            .collect(),
        active,
    })
}

/// What the text before the cursor says about the place being typed.
#[derive(Debug, Default)]
struct Context {
    /// Where the word being typed starts.
    word_start: usize,
    /// The end of a number right before the word (a unit is being typed).
    after_number: Option<usize>,
    /// Open brackets before the cursor.
    depth: usize,
    /// The path of the settings block the cursor is in.
    settings: Option<Vec<String>>,
    /// The key whose value is being typed (`precision: b`).
    value_of: Option<String>,
    /// Keys already given in the innermost settings block.
    keys_here: Vec<String>,
    /// The innermost open call: its callee's span and name.
    call: Option<(Span, String)>,
    /// Which argument of that call the cursor is in, and its name.
    arg_index: usize,
    arg_name: Option<String>,
    /// The cursor is in a `fn`, `module` or `model` body.
    in_body: bool,
}

/// One open bracket.
struct Open {
    bracket: u8,
    /// For `{`: the word that opened it (`train`, `checkpoint`, `module`).
    label: Option<String>,
    /// For `(`: the callee before it.
    callee: Option<(Span, String)>,
    /// Tokens since the last separator at this depth.
    entry: Vec<(Span, Tok)>,
    /// Keys seen at this depth (settings blocks).
    keys: Vec<String>,
    /// Commas seen at this depth (call arguments).
    commas: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Number,
    Colon,
    Other,
}

impl Context {
    fn read(text: &str, offset: usize) -> Context {
        let before = &text[..offset];
        let bytes = before.as_bytes();
        let mut ctx = Context::default();
        let mut start = offset;
        while start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            start -= 1;
        }
        ctx.word_start = start;
        // `30H|`: digits first, then letters: a unit after a number.
        let digits = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.' || **b == b'_')
            .count();
        if digits > 0 {
            ctx.after_number = Some(start + digits);
            return ctx;
        }
        let mut stack: Vec<Open> = Vec::new();
        let mut item_keyword: Option<String> = None;
        // The word just before, outside every bracket: the callee of a
        // top-level call (`tokenizer vt = Tubelets(`).
        let mut top_word: Option<(Span, String)> = None;
        for (span, tok) in scan(&before[..start]) {
            if stack.is_empty() {
                top_word = match &tok {
                    ScanTok::Word(w) => Some((span, w.clone())),
                    ScanTok::Open(_) => top_word.take(),
                    _ => None,
                };
            }
            match tok {
                ScanTok::Open(b) => {
                    let label = match stack.is_empty() {
                        true => item_keyword.clone(),
                        false => stack.last().and_then(|o| match o.entry.last() {
                            Some((_, Tok::Word(w))) => Some(w.clone()),
                            _ => None,
                        }),
                    };
                    let callee = match stack.last() {
                        None => top_word.take(),
                        Some(o) => match o.entry.last() {
                            Some((s, Tok::Word(w))) => Some((*s, w.clone())),
                            _ => None,
                        },
                    };
                    stack.push(Open {
                        bracket: b,
                        label,
                        callee,
                        entry: Vec::new(),
                        keys: Vec::new(),
                        commas: 0,
                    });
                }
                ScanTok::Close => {
                    stack.pop();
                    if let Some(o) = stack.last_mut() {
                        o.entry.push((span, Tok::Other));
                    }
                }
                ScanTok::Separator(b) => {
                    if let Some(o) = stack.last_mut() {
                        if let [(_, Tok::Word(k)), (_, Tok::Colon), ..] = o.entry.as_slice() {
                            o.keys.push(k.clone());
                        }
                        o.entry.clear();
                        if b == b',' {
                            o.commas += 1;
                        }
                    }
                }
                ScanTok::Word(w) => {
                    if stack.is_empty() && ITEM_KEYWORDS.contains(&w.as_str()) {
                        item_keyword = Some(w.clone());
                    }
                    if let Some(o) = stack.last_mut() {
                        // A new line after a complete `key: value` starts
                        // a new entry, since separators are optional.
                        o.entry.push((span, Tok::Word(w)));
                    }
                }
                ScanTok::Colon => {
                    if let Some(o) = stack.last_mut() {
                        o.entry.push((span, Tok::Colon));
                    }
                }
                ScanTok::Number | ScanTok::Other => {
                    if let Some(o) = stack.last_mut() {
                        let t = if tok == ScanTok::Number {
                            Tok::Number
                        } else {
                            Tok::Other
                        };
                        o.entry.push((span, t));
                    }
                }
                ScanTok::Newline => {
                    if let Some(o) = stack.last_mut() {
                        let complete = matches!(
                            o.entry.as_slice(),
                            [(_, Tok::Word(_)), (_, Tok::Colon), _, ..]
                        );
                        if complete && o.bracket == b'{' {
                            if let Some((_, Tok::Word(k))) = o.entry.first() {
                                o.keys.push(k.clone());
                            }
                            o.entry.clear();
                        }
                    }
                }
            }
        }
        ctx.depth = stack.len();
        ctx.in_body = stack.iter().any(|o| {
            o.bracket == b'{' && matches!(o.label.as_deref(), Some("fn" | "module" | "model"))
        });
        // The settings path: every `{` from the outermost, when the
        // outermost was opened by a settings item.
        if let Some(first) = stack.first() {
            let settings_item =
                matches!(first.label.as_deref(), Some("train" | "parallel" | "data"));
            if settings_item && stack.iter().all(|o| o.bracket == b'{') {
                ctx.settings = Some(stack.iter().filter_map(|o| o.label.clone()).collect());
            }
        }
        if let Some(top) = stack.last() {
            if let [(_, Tok::Word(k)), (_, Tok::Colon), ..] = top.entry.as_slice() {
                ctx.value_of = Some(k.clone());
                ctx.arg_name = Some(k.clone());
            }
            ctx.keys_here = top.keys.clone();
            if top.bracket == b'(' {
                ctx.call = top.callee.clone();
                ctx.arg_index = top.commas;
            }
        }
        ctx
    }
}

/// A token of the context scan.
#[derive(Clone, Debug, PartialEq)]
enum ScanTok {
    Open(u8),
    Close,
    Separator(u8),
    Word(String),
    Colon,
    Number,
    Other,
    Newline,
}

/// Tokens of `text` for the context scan: brackets, separators, words,
/// colons and newlines; comments and strings are skipped.
fn scan(text: &str) -> Vec<(Span, ScanTok)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if text[i..].starts_with("//") {
            i = text[i..].find('\n').map_or(b.len(), |n| i + n);
            continue;
        }
        if b[i..].starts_with(b"/*") {
            i = block_comment_end(b, i).unwrap_or(b.len());
            continue;
        }
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            out.push((Span::new(start, i), ScanTok::Other));
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            if c.is_ascii_digit() {
                out.push((Span::new(start, i), ScanTok::Number));
                continue;
            }
            // `synthetic.mouse_v1` is one word for the context, standing
            // for its last part (a field, or the function called).
            let last = text[start..i].rfind('.').map_or(start, |d| start + d + 1);
            out.push((Span::new(last, i), ScanTok::Word(text[last..i].to_string())));
            continue;
        }
        let tok = match c {
            b'{' | b'(' | b'[' => ScanTok::Open(c),
            b'}' | b')' | b']' => ScanTok::Close,
            b',' | b';' => ScanTok::Separator(c),
            b':' if b.get(i + 1) == Some(&b':') => {
                i += 2;
                out.push((Span::new(start, i), ScanTok::Other));
                continue;
            }
            b':' => ScanTok::Colon,
            b'\n' => ScanTok::Newline,
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ => ScanTok::Other,
        };
        i += text[i..].chars().next().map_or(1, char::len_utf8);
        out.push((Span::new(start, i), tok));
    }
    out
}
