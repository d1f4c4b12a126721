//! Semantic tokens and inlay hints.
//!
//! Semantic tokens colour what a grammar cannot know: whether a name is a
//! dim, a module, a parameter or a builtin. A small lexer finds the
//! tokens (it never fails: unknown bytes are skipped), and each identifier
//! is classified by what the resolver found it to be, or by the index when
//! it is a definition or a settings key. Inlay hints show the type the
//! checker found for each `let` and `predict` without a written type.

use super::index::contains;
use super::{Analysis, DefKind, Target};
use crate::base::{FileId, Span};
use crate::check::FactKind;
use crate::resolve::builtins;
use crate::syntax::trivia::block_comment_end;
use crate::syntax::RESERVED;

/// What a token is, for colouring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Keyword,
    Type,
    TypeParameter,
    Parameter,
    Variable,
    Property,
    Function,
    Class,
    Namespace,
    Number,
    String,
    Comment,
    Operator,
}

impl TokenKind {
    /// Every kind, in the order of the server's legend.
    pub const ALL: [TokenKind; 13] = [
        TokenKind::Keyword,
        TokenKind::Type,
        TokenKind::TypeParameter,
        TokenKind::Parameter,
        TokenKind::Variable,
        TokenKind::Property,
        TokenKind::Function,
        TokenKind::Class,
        TokenKind::Namespace,
        TokenKind::Number,
        TokenKind::String,
        TokenKind::Comment,
        TokenKind::Operator,
    ];

    /// The standard LSP name of the kind.
    pub fn lsp_name(self) -> &'static str {
        match self {
            TokenKind::Keyword => "keyword",
            TokenKind::Type => "type",
            TokenKind::TypeParameter => "typeParameter",
            TokenKind::Parameter => "parameter",
            TokenKind::Variable => "variable",
            TokenKind::Property => "property",
            TokenKind::Function => "function",
            TokenKind::Class => "class",
            TokenKind::Namespace => "namespace",
            TokenKind::Number => "number",
            TokenKind::String => "string",
            TokenKind::Comment => "comment",
            TokenKind::Operator => "operator",
        }
    }
}

/// One coloured token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemToken {
    pub span: Span,
    pub kind: TokenKind,
    /// The token is where the name is defined.
    pub declaration: bool,
    /// The token is a builtin.
    pub library: bool,
    /// The token is a doc comment.
    pub documentation: bool,
}

/// A lexical token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lexeme {
    Ident,
    Number,
    Str,
    Comment { doc: bool },
    Operator,
}

/// Splits `text` into tokens. Punctuation that needs no colour (brackets,
/// commas) is dropped.
fn lex(text: &str) -> Vec<(Span, Lexeme)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let start = i;
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if text[i..].starts_with("//") {
            let doc = (text[i..].starts_with("///") && !text[i..].starts_with("////"))
                || text[i..].starts_with("//!");
            i = text[i..].find('\n').map_or(b.len(), |n| i + n);
            out.push((Span::new(start, i), Lexeme::Comment { doc }));
            continue;
        }
        if b[i..].starts_with(b"/*") {
            // Block comments nest, as in the grammar; an unclosed one runs
            // to the end of the file.
            i = block_comment_end(b, i).unwrap_or(b.len());
            out.push((Span::new(start, i), Lexeme::Comment { doc: false }));
            continue;
        }
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            out.push((Span::new(start, i), Lexeme::Str));
            continue;
        }
        if c.is_ascii_digit() {
            while i < b.len() && (word(b[i]) || b[i] == b'.') {
                // An exponent's sign belongs to the number: `3e-4`.
                let exp = (b[i] == b'e' || b[i] == b'E')
                    && i + 1 < b.len()
                    && (b[i + 1] == b'-' || b[i + 1] == b'+');
                i += if exp { 2 } else { 1 };
            }
            out.push((Span::new(start, i), Lexeme::Number));
            continue;
        }
        if word(c) {
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            out.push((Span::new(start, i), Lexeme::Ident));
            continue;
        }
        // Multi-byte characters only appear in comments and strings;
        // anything else is skipped whole.
        let len = text[i..].chars().next().map_or(1, char::len_utf8);
        if b"+-*/%<>=!|@^".contains(&c) {
            out.push((Span::new(start, start + 1), Lexeme::Operator));
        }
        i += len;
    }
    out
}

/// The semantic tokens of a file, in order.
pub fn semantic_tokens(a: &Analysis, file: FileId) -> Vec<SemToken> {
    let text = a.text(file);
    let ix = a.index(file);
    let mut out = Vec::new();
    for (span, lexeme) in lex(text) {
        let tok = |kind| SemToken {
            span,
            kind,
            declaration: false,
            library: false,
            documentation: false,
        };
        let t = match lexeme {
            Lexeme::Number => tok(TokenKind::Number),
            Lexeme::Str => tok(TokenKind::String),
            Lexeme::Operator => tok(TokenKind::Operator),
            Lexeme::Comment { doc } => SemToken {
                documentation: doc,
                ..tok(TokenKind::Comment)
            },
            Lexeme::Ident => {
                let word = &text[span.range()];
                if let Some(def) = ix.and_then(|ix| ix.def_at(span)) {
                    SemToken {
                        declaration: true,
                        ..tok(def_kind(def.kind))
                    }
                } else if ix.is_some_and(|ix| ix.keys.iter().any(|k| k.span == span)) {
                    tok(TokenKind::Property)
                } else if a
                    .ref_at(file, span.start as usize)
                    .is_some_and(|r| r.span == span)
                {
                    match a.target_at(file, span.start as usize) {
                        Some((_, Target::Builtin(name))) => SemToken {
                            library: true,
                            ..tok(builtin_kind(&name))
                        },
                        Some((_, Target::Def(site))) => match a.def(site) {
                            Some(def) => tok(def_kind(def.kind)),
                            None => tok(TokenKind::Namespace),
                        },
                        None => continue,
                    }
                } else if RESERVED.contains(&word) {
                    tok(TokenKind::Keyword)
                } else {
                    continue;
                }
            }
        };
        out.push(t);
    }
    out
}

fn def_kind(k: DefKind) -> TokenKind {
    match k {
        DefKind::Dim | DefKind::GenericDim => TokenKind::TypeParameter,
        DefKind::Fn => TokenKind::Function,
        DefKind::Module | DefKind::Model => TokenKind::Class,
        DefKind::Param => TokenKind::Parameter,
        DefKind::Predict => TokenKind::Property,
        DefKind::Let
        | DefKind::Data
        | DefKind::Modality
        | DefKind::Tokenizer
        | DefKind::Loss
        | DefKind::Metric
        | DefKind::Local
        | DefKind::Weight => TokenKind::Variable,
    }
}

fn builtin_kind(name: &str) -> TokenKind {
    if builtins::is_type_name(name) {
        return TokenKind::Type;
    }
    match builtins::lookup(name) {
        Some(builtins::BuiltinKind::Dtype) => TokenKind::Type,
        Some(builtins::BuiltinKind::LogicalDim) => TokenKind::TypeParameter,
        Some(builtins::BuiltinKind::Symbol) => TokenKind::Variable,
        _ => TokenKind::Function,
    }
}

/// An inlay hint: text to show after a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlayHint {
    pub offset: usize,
    pub label: String,
}

/// The type of each `let` and `predict` binding written without a type,
/// shown after its name. A binding with several types (a module applied
/// at different sizes) shows the first and says there are more.
pub fn inlay_hints(a: &Analysis, file: FileId, range: Span) -> Vec<InlayHint> {
    let Some(ix) = a.index(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for def in &ix.defs {
        let typed = def.signature.starts_with(&format!("let {}:", def.name));
        if !matches!(def.kind, DefKind::Local | DefKind::Predict) || typed {
            continue;
        }
        if !contains(range, def.span.start as usize) {
            continue;
        }
        let mut types: Vec<&str> = Vec::new();
        for f in &a.artifacts.types {
            let here = f.file == file && f.span == def.span && f.kind == FactKind::Binding;
            if here && !types.contains(&f.text.as_str()) {
                types.push(&f.text);
            }
        }
        let Some(first) = types.first() else { continue };
        let more = if types.len() > 1 { " …" } else { "" };
        out.push(InlayHint {
            offset: def.span.end as usize,
            label: format!(": {first}{more}"),
        });
    }
    out
}
