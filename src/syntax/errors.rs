//! Turns pest's parse errors into diagnostics that speak the language's
//! terms: "expected an expression, found `}`" rather than rule names.
//!
//! Every grammar rule that can appear in pest's list of expected rules has
//! a phrase in [`phrase`]; several rules can share one (all binary operators
//! read as "an operator"), and phrases are de-duplicated in the message.

use pest::error::{ErrorVariant, InputLocation};

use super::parser::Rule;
use crate::base::FileId;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};

/// What a user would call the thing a rule matches.
pub fn phrase(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::file | Rule::item => "an item (`use`, `dim`, `let`, `data`, `modality`, `tokenizer`, `fn`, `module`, `model`, `loss`, `metric`, `train` or `parallel`)",
        Rule::doc_comment => "a doc comment",
        Rule::inner_doc => "a module doc comment",
        Rule::use_item => "`use`",
        Rule::module_path => "a module path",
        Rule::use_group => "`::{`",
        Rule::use_name => "an imported name",
        Rule::use_alias => "`as`",
        Rule::dim_item => "`dim`",
        Rule::per_session | Rule::kw_per | Rule::kw_session => "`per session`",
        Rule::let_item | Rule::let_stmt => "`let`",
        Rule::data_item => "`data`",
        Rule::modality_item => "`modality`",
        Rule::transform => "a transform `| ...`",
        Rule::tokenizer_item => "`tokenizer`",
        Rule::fn_item => "`fn`",
        Rule::module_item => "`module`",
        Rule::model_item => "`model`",
        Rule::param_list => "a parameter list `(...)`",
        Rule::param_decl => "a parameter",
        Rule::return_type => "`->` and a return type",
        Rule::loss_item => "`loss`",
        Rule::metric_item => "`metric`",
        Rule::item_label => "a label `name =`",
        Rule::train_item => "`train`",
        Rule::parallel_item => "`parallel`",
        Rule::config_block => "a block `{ ... }`",
        Rule::config_entry | Rule::setting | Rule::mapping | Rule::config_sub => {
            "a setting (`key: value`, `dims -> axes` or `key { ... }`)"
        }
        Rule::body => "a body `{ ... }`",
        Rule::stmt => "a statement (`let`, `param`, `predict`, `return` or `if`)",
        Rule::param_stmt => "`param`",
        Rule::predict_stmt => "`predict`",
        Rule::return_stmt => "`return`",
        Rule::if_stmt | Rule::if_expr => "`if`",
        Rule::type_expr | Rule::type_name => "a type",
        Rule::generic_args => "`<`",
        Rule::shape => "a shape `[...]`",
        Rule::shape_dim => "a dimension",
        Rule::rate => "a sampling rate `@ ...`",
        Rule::ellipsis => "`...`",
        Rule::expr | Rule::unary | Rule::postfix | Rule::primary => "an expression",
        Rule::op_or
        | Rule::op_and
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_ge
        | Rule::op_lt
        | Rule::op_gt
        | Rule::op_add
        | Rule::op_sub
        | Rule::op_pow
        | Rule::op_mul
        | Rule::op_div
        | Rule::op_rem => "an operator",
        Rule::op_neg | Rule::op_not => "an expression",
        Rule::call_args => "`(`",
        Rule::arg => "an argument",
        Rule::index_args => "`[`",
        Rule::index_item => "an index",
        Rule::range_to | Rule::range_from => "`..`",
        Rule::arrow_to => "`->`",
        Rule::field => "`.`",
        Rule::paren => "`(`",
        Rule::trailing_comma => "`,`",
        Rule::list => "a list `[...]`",
        Rule::path => "a name",
        Rule::boolean => "`true` or `false`",
        Rule::number | Rule::number_value | Rule::exponent => "a number",
        Rule::unit => "a unit (s, ms, us, min, Hz, kHz, B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
        Rule::string | Rule::string_inner => "a string",
        Rule::ident | Rule::key => "a name",
        Rule::kw_use => "`use`",
        Rule::kw_as => "`as`",
        Rule::kw_dim => "`dim`",
        Rule::kw_let => "`let`",
        Rule::kw_data => "`data`",
        Rule::kw_modality => "`modality`",
        Rule::kw_from => "`from`",
        Rule::kw_tokenizer => "`tokenizer`",
        Rule::kw_fn => "`fn`",
        Rule::kw_module => "`module`",
        Rule::kw_model => "`model`",
        Rule::kw_param => "`param`",
        Rule::kw_predict => "`predict`",
        Rule::kw_return => "`return`",
        Rule::kw_loss => "`loss`",
        Rule::kw_metric => "`metric`",
        Rule::kw_train => "`train`",
        Rule::kw_parallel => "`parallel`",
        Rule::kw_if => "`if`",
        Rule::kw_else => "`else`",
        Rule::kw_true | Rule::kw_false => "`true` or `false`",
        // Silent rules: pest never lists them as expected, but naming them
        // here keeps this match exhaustive, so a new grammar rule cannot
        // reach users without a phrase.
        Rule::WHITESPACE | Rule::COMMENT | Rule::line_comment | Rule::block_comment => {
            "whitespace or a comment"
        }
        Rule::keyword => "a keyword",
        Rule::ident_char => "a letter, digit or `_`",
        Rule::infix_op => "an operator",
        Rule::prefix_op => "an expression",
    }
}

/// Describes the text at `pos` as a user sees it: a word, a number, a
/// symbol or the end of the file, with the span it covers.
fn found(text: &str, pos: usize) -> (String, Span) {
    let rest = text.get(pos..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        // A zero-width label at the very end is not drawn; mark the last
        // character instead so the reader sees where the file stops.
        let last = text[..pos]
            .chars()
            .next_back()
            .map(char::len_utf8)
            .unwrap_or(0);
        return ("end of file".to_string(), Span::new(pos - last, pos));
    };
    let len = if first.is_alphanumeric() || first == '_' {
        rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len())
    } else if first == '"' {
        rest[1..].find('"').map(|i| i + 2).unwrap_or(rest.len())
    } else {
        const TWO: [&str; 9] = ["->", "::", "..", "==", "!=", "<=", ">=", "**", "//"];
        if TWO.iter().any(|t| rest.starts_with(t)) {
            2
        } else {
            first.len_utf8()
        }
    };
    let len = len.min(40);
    let len = (0..=len)
        .rev()
        .find(|l| rest.is_char_boundary(*l))
        .unwrap_or(0);
    let token = &rest[..len];
    let shown = match first {
        '\n' | '\r' => "a line break".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        _ => format!("`{token}`"),
    };
    (shown, Span::new(pos, pos + len.max(1)))
}

/// Where pest stopped, as an offset into the text it was given.
pub fn position(err: &pest::error::Error<Rule>) -> usize {
    match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
}

/// Converts a pest error into a diagnostic at the exact position.
///
/// `text` is the whole file; pest ran over the part of it that starts at
/// byte `base` (0 for a whole-file parse, the start of an item when items are
/// parsed one by one), so pest's positions are relative to `base`. What the
/// message says was found is read from the whole file: at the end of an item
/// that is the next item, not "end of file".
pub fn from_pest(
    err: &pest::error::Error<Rule>,
    text: &str,
    base: usize,
    file: FileId,
) -> Diagnostic {
    let local = position(err);
    let pos = base + local;
    let (found, at) = found(text, pos);
    let expected = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut phrases: Vec<&str> = Vec::new();
            for r in positives {
                let p = phrase(*r);
                if !phrases.contains(&p) {
                    phrases.push(p);
                }
            }
            phrases
        }
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let expected = with_tokens(expected, err, local);
    let message = match expected.as_slice() {
        [] => format!("unexpected {found}"),
        [one] => format!("expected {one}, found {found}"),
        many => {
            let (last, init) = many.split_last().unwrap_or((&many[0], &[]));
            format!("expected {} or {last}, found {found}", init.join(", "))
        }
    };
    let mut diag = Diagnostic::new(Code::E0001, message).primary(file, at, "unexpected here");
    if let Some(help) = hint(text, pos) {
        diag = diag.help(help);
    }
    diag
}

const STRUCTURAL: [&str; 7] = ["}", ")", "]", "{", ":", "=", "->"];

/// Adds the punctuation pest expected at `pos` (`}`, `)`, `:` ...) in front
/// of the rule phrases: rules alone never name a closing bracket. `pos` is
/// relative to the text pest ran over, as pest's own positions are.
fn with_tokens(
    phrases: Vec<&'static str>,
    err: &pest::error::Error<Rule>,
    pos: usize,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(attempts) = err.parse_attempts() {
        if attempts.max_position == pos {
            for t in attempts.expected_tokens() {
                // pest does not export its token type; its display is the
                // literal text for literal tokens.
                let token = t.to_string();
                // Only structural tokens: operators and the tokens that
                // start an expression are already named by the phrases
                // ("an operator", "an expression"), and listing them buries
                // the bracket that is actually missing.
                let punctuation = STRUCTURAL.contains(&token.as_str())
                    && !(token == "{" && phrases.iter().any(|p| p.contains("{ ... }")));
                let shown = format!("`{token}`");
                if punctuation && !out.contains(&shown) && !phrases.contains(&shown.as_str()) {
                    out.push(shown);
                }
            }
        }
    }
    out.sort_by_key(|t| (t.len(), t.clone()));
    out.extend(phrases.into_iter().map(str::to_string));
    out
}

/// Hints for mistakes people coming from other languages make.
fn hint(text: &str, pos: usize) -> Option<&'static str> {
    let rest = text.get(pos..).unwrap_or("");
    if rest.starts_with("///") {
        Some("doc comments (`///`) document the item, parameter or setting that follows them; use `//` for other comments")
    } else if rest.starts_with('=') && !rest.starts_with("==") {
        Some("settings in `{ ... }` blocks and named arguments use `key: value`; `=` is for `dim`, `let`, `data` and `tokenizer`")
    } else if rest.starts_with('\'') {
        Some("strings use double quotes: \"...\"")
    } else if rest.starts_with('#') {
        Some("comments start with `//`")
    } else {
        None
    }
}
