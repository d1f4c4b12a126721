//! Helpers over pest pairs: exact spans, children without keyword tokens,
//! identifiers and doc comments, and placeholders for nodes the grammar
//! guarantees.

use pest::iterators::Pair;

use super::Rule;
use crate::base::Span;
use crate::syntax::ast::*;

/// The exact span of a pair. Pest consumes whitespace and comments between
/// the elements of a rule, and when a rule ends with an optional element
/// that did not match, the skipped trivia stays inside the rule's span. The
/// true end is the last token: the end of the last child, or a literal
/// (such as `}`) written after it.
pub(super) fn span(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    let (start, end) = (s.start(), s.end());
    let after_children = match pair.clone().into_inner().last() {
        Some(last) => span(&last).end as usize,
        None => start,
    };
    Span::new(start, last_token_end(pair.get_input(), after_children, end))
}

/// The end of the last non-trivia character in `text[from..to]`, or `from`
/// when that range holds only whitespace and comments.
pub(super) fn last_token_end(text: &str, from: usize, to: usize) -> usize {
    let bytes = text.as_bytes();
    let mut end = from;
    let mut i = from;
    while i < to {
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < to && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = crate::syntax::trivia::block_comment_end(bytes, i)
                    .unwrap_or(to)
                    .min(to);
            }
            _ => {
                i += 1;
                end = i;
            }
        }
    }
    end.min(to)
}

/// The children of a pair, without keyword tokens.
pub(super) fn children(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| !is_keyword(p.as_rule()))
}

pub(super) fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_use
            | Rule::kw_as
            | Rule::kw_dim
            | Rule::kw_let
            | Rule::kw_data
            | Rule::kw_modality
            | Rule::kw_from
            | Rule::kw_tokenizer
            | Rule::kw_fn
            | Rule::kw_module
            | Rule::kw_model
            | Rule::kw_param
            | Rule::kw_predict
            | Rule::kw_return
            | Rule::kw_loss
            | Rule::kw_metric
            | Rule::kw_train
            | Rule::kw_parallel
            | Rule::kw_if
            | Rule::kw_else
            | Rule::kw_per
            | Rule::kw_session
            | Rule::EOI
    )
}

pub(super) fn doc(pair: &Pair<Rule>, marker: &str) -> Doc {
    let text = pair.as_str();
    let text = text.strip_prefix(marker).unwrap_or(text);
    Doc {
        text: text.trim_end().to_string(),
        span: span(pair),
    }
}

pub(super) fn ident(pair: Option<Pair<Rule>>) -> Ident {
    match pair {
        Some(p) => Ident {
            name: p.as_str().to_string(),
            span: span(&p),
        },
        None => missing_ident(),
    }
}

/// Placeholders for nodes the grammar guarantees. They are never reached on
/// grammatical input; they exist so that lowering has no panicking paths.
pub(super) fn missing_ident() -> Ident {
    Ident {
        name: String::new(),
        span: Span::default(),
    }
}

pub(super) fn missing_expr() -> Expr {
    Expr {
        kind: ExprKind::Tuple(Vec::new()),
        span: Span::default(),
    }
}

pub(super) fn missing_type() -> TypeExpr {
    TypeExpr {
        kind: TypeKind::Shape(Shape {
            dims: Vec::new(),
            span: Span::default(),
        }),
        span: Span::default(),
    }
}

/// Decodes the escapes `\"`, `\\`, `\n`, `\t`; any other escaped character
/// stands for itself.
pub(super) fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}
