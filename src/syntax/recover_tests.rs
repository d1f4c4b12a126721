//! Tests of error recovery: which items survive a syntax error, where the
//! errors are reported, and what is known about the items that broke.

use super::ast::{File, ItemKind};
use super::recover::{chunks, RECOVERIES};
use super::{parse, parse_recovering, parser};
use crate::base::{FileId, Span};
use crate::diagnostics::{Code, Diagnostic};

const FILE: FileId = FileId(0);

fn slice(text: &str, span: Span) -> &str {
    &text[span.range()]
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: u32) -> usize {
    text[..offset as usize].matches('\n').count() + 1
}

fn primary(d: &Diagnostic) -> Span {
    d.primary_label()
        .expect("every syntax error has a label")
        .span
}

fn keywords(ast: &File) -> Vec<&'static str> {
    ast.items.iter().map(|i| i.kind.keyword()).collect()
}

/// Every item's span starts with its keyword, and every broken item's span
/// starts with the keyword recorded for it.
fn assert_spans_start_with_keywords(text: &str, ast: &File) {
    for item in &ast.items {
        let at = slice(text, item.span);
        assert!(
            at.starts_with(item.kind.keyword()),
            "item span {:?} reads {at:?}",
            item.span
        );
    }
    for b in &ast.broken {
        if let Some(k) = b.keyword {
            assert!(slice(text, b.span).starts_with(k), "{b:?}");
        }
    }
}

const SECOND_OF_FOUR: &str = "\
//! Four items, the second broken.

/// The width.
dim d = 64

/// A broken block.
module Mlp(d: dim)(x: [..., d]) -> [..., d] {
  param w: [d, d] = normal(std: 0.02)
  return gelu(matmul(x, w) +)
}

/// The model.
model brain {
  predict out = Mlp(d: d)(x)
}

train { steps: 10 }
";

#[test]
fn an_error_in_the_second_of_four_items_keeps_the_other_three() {
    let text = SECOND_OF_FOUR;
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["dim", "model", "train"]);
    assert_spans_start_with_keywords(text, &ast);
    assert_eq!(slice(text, ast.items[0].span), "dim d = 64");
    assert!(slice(text, ast.items[1].span).starts_with("model brain {"));
    assert!(slice(text, ast.items[1].span).ends_with('}'));
    assert_eq!(slice(text, ast.items[2].span), "train { steps: 10 }");
    // Spans inside items are offsets into the whole file too.
    let ItemKind::Model(model) = &ast.items[1].kind else {
        panic!("the second surviving item is the model");
    };
    assert_eq!(slice(text, model.name.span), "brain");

    // The module docs and each surviving item's docs are where they were.
    assert_eq!(ast.docs.len(), 1);
    assert_eq!(ast.docs[0].text.trim(), "Four items, the second broken.");
    assert_eq!(ast.items[0].docs[0].text.trim(), "The width.");
    assert_eq!(ast.items[1].docs[0].text.trim(), "The model.");
    assert!(ast.items[2].docs.is_empty());

    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].code, Code::E0001);
    let at = primary(&diags[0]);
    assert_eq!(line_of(text, at.start), 9);
    assert_eq!(slice(text, at), ")");

    assert_eq!(ast.broken.len(), 1);
    let broken = &ast.broken[0];
    assert_eq!(broken.keyword, Some("module"));
    assert_eq!(broken.name.as_ref().map(|n| n.name.as_str()), Some("Mlp"));
    let b = slice(text, broken.span);
    assert!(b.starts_with("module Mlp(") && b.ends_with('}'), "{b:?}");
}

#[test]
fn the_first_error_reads_as_a_whole_file_parse_reads_it() {
    for text in [
        SECOND_OF_FOUR,
        UNCLOSED_IN_THE_MIDDLE,
        "dim d = 64\nreturn d\n",
    ] {
        let whole = match parser::parse_file(text, FILE) {
            Err(failure) => failure.diag,
            Ok(_) => panic!("{text:?} should not parse"),
        };
        let (_, diags) = parse_recovering(text, FILE);
        assert_eq!(diags.first(), Some(&whole), "{text}");
    }
}

#[test]
fn parse_reports_every_broken_item() {
    let text = "dim a = 1\ndim b = (2 +)\ndim c = 3\nlet e = [1, 2\nlet f = 4\n";
    let Err(diags) = parse(text, FILE) else {
        panic!("two items are broken");
    };
    let (ast, recovered) = parse_recovering(text, FILE);
    assert_eq!(diags, recovered);
    assert_eq!(diags.len(), 2, "{diags:#?}");
    assert_eq!(line_of(text, primary(&diags[0]).start), 2);
    // The unclosed `[` is noticed at the next item, at the start of line 5.
    assert_eq!(line_of(text, primary(&diags[1]).start), 5);
    assert_eq!(slice(text, primary(&diags[1])), "let");
    assert!(
        diags[1].message.contains("found `let`"),
        "{}",
        diags[1].message
    );

    let names: Vec<_> = ast
        .items
        .iter()
        .filter_map(|i| i.kind.defined_name())
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(names, ["a", "c", "f"]);
    let broken: Vec<_> = ast
        .broken
        .iter()
        .map(|b| (b.keyword, b.name.as_ref().map(|n| n.name.as_str())))
        .collect();
    assert_eq!(broken, [(Some("dim"), Some("b")), (Some("let"), Some("e"))]);
    assert_spans_start_with_keywords(text, &ast);
}

#[test]
fn an_unclosed_brace_in_the_last_item_breaks_only_that_item() {
    // The pre-scan bounds nesting but does not require brackets to close;
    // the grammar reports the end of the file.
    let text = "dim d = 4\n\nmodel m {\n  predict y = d\n";
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["dim"]);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(
        diags[0].message.ends_with("found end of file"),
        "{}",
        diags[0].message
    );
    assert_eq!(ast.broken.len(), 1);
    assert_eq!(
        ast.broken[0].name.as_ref().map(|n| n.name.as_str()),
        Some("m")
    );
    assert_eq!(
        slice(text, ast.broken[0].span),
        "model m {\n  predict y = d"
    );
}

const UNCLOSED_IN_THE_MIDDLE: &str = "\
dim d = 64

module Mlp(d: dim)(x: [..., d]) -> [..., d] {
  param w: [d, d] = normal(std: 0.02)
  return gelu(matmul(x, w))

model brain {
  predict out = Mlp(d: d)(x)
}
";

#[test]
fn an_unclosed_brace_does_not_swallow_the_items_after_it() {
    // `model` in the first column starts an item even though the module's
    // `{` is still open.
    let text = UNCLOSED_IN_THE_MIDDLE;
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["dim", "model"]);
    assert_eq!(diags.len(), 1);
    assert_eq!(slice(text, primary(&diags[0])), "model");
    assert_eq!(ast.broken[0].keyword, Some("module"));
}

#[test]
fn a_let_statement_in_the_first_column_stays_in_its_body() {
    // `let` is also a statement, so inside brackets it never starts an item.
    let text = "model m {\nlet x = 1\n  predict y = x +\n}\n\ndim d = 1\n";
    assert_eq!(chunks(text).len(), 2);
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["dim"]);
    assert_eq!(diags.len(), 1);
    assert_eq!(
        ast.broken[0].name.as_ref().map(|n| n.name.as_str()),
        Some("m")
    );
}

#[test]
fn keywords_in_comments_and_strings_do_not_start_items() {
    let text = "dim a = 1 /*\nmodel fake {\n*/\nlet s = \"x\\\nmodel also_fake {\"\n\
                // model not_this {\ndim b = (1 +)\n";
    assert_eq!(chunks(text).len(), 3, "{:?}", chunks(text));
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["dim", "let"]);
    assert_eq!(diags.len(), 1);
    assert_eq!(
        ast.broken[0].name.as_ref().map(|n| n.name.as_str()),
        Some("b")
    );
}

#[test]
fn doc_comments_go_with_the_item_below_them() {
    // The docs of a broken item are blanked with it; the docs of the item
    // after it stay attached to that item, blank lines and comments
    // between them notwithstanding.
    let text = "/// Broken.\ndim a = \n\n/// Kept.\n\n// An ordinary comment.\n/// Also kept.\ndim b = 2\n";
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(diags.len(), 1);
    assert_eq!(keywords(&ast), ["dim"]);
    let docs: Vec<_> = ast.items[0].docs.iter().map(|d| d.text.trim()).collect();
    assert_eq!(docs, ["Kept.", "Also kept."]);
    assert_eq!(slice(text, ast.broken[0].span), "dim a =");
}

#[test]
fn a_stray_doc_comment_breaks_the_item_it_follows() {
    let text = "dim a = 1\n/// Documents nothing.\n}\ndim b = 2\n";
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["dim"]);
    assert_eq!(slice(text, ast.items[0].span), "dim b = 2");
    assert_eq!(diags.len(), 1);
}

#[test]
fn a_file_that_parses_never_runs_recovery() {
    let before = RECOVERIES.with(|n| n.get());
    let (ast, diags) = parse_recovering("dim d = 1\nmodel m { predict y = d }\n", FILE);
    assert!(diags.is_empty() && ast.broken.is_empty());
    // Lowering errors and an empty file are not syntax errors either.
    let (_, diags) = parse_recovering("let n = 99999999999999999999\n", FILE);
    assert_eq!(diags[0].code, Code::E0007);
    let (_, diags) = parse_recovering("// nothing\n", FILE);
    assert_eq!(diags[0].code, Code::E0008);
    assert_eq!(RECOVERIES.with(|n| n.get()), before);

    let _ = parse_recovering("dim d = \n", FILE);
    assert_eq!(RECOVERIES.with(|n| n.get()), before + 1);
}

#[test]
fn prescan_problems_break_only_their_item() {
    let text = "dim a = 1\ndata v = npy(\"F.npy)\ndim b = 2\n";
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["dim", "dim"]);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, Code::E0005);
    assert_eq!(
        ast.broken[0].name.as_ref().map(|n| n.name.as_str()),
        Some("v")
    );

    // An unterminated comment runs to the end of the file, and so does the
    // item it is in.
    let text = "dim a = 1\ndim b = 2 /* open\ndim c = 3\n";
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["dim"]);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, Code::E0006);
    assert_eq!(ast.broken.len(), 1);
    assert_eq!(
        ast.broken[0].name.as_ref().map(|n| n.name.as_str()),
        Some("b")
    );
}

#[test]
fn lowering_errors_in_surviving_items_are_kept_in_order() {
    let text = "dim a = (1 +)\nlet n = 99999999999999999999\n";
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["let"]);
    let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::E0001, Code::E0007]);
}

#[test]
fn nothing_parses() {
    let text = "model {\n";
    let (ast, diags) = parse_recovering(text, FILE);
    assert!(ast.items.is_empty());
    assert_eq!(ast.span, Span::new(0, text.len()));
    assert_eq!(diags.len(), 1, "a broken file has items, so no E0008");
    assert_eq!(ast.broken.len(), 1);
    assert_eq!(ast.broken[0].keyword, Some("model"));
    assert_eq!(ast.broken[0].name, None);
}

#[test]
fn text_before_the_first_item_is_a_chunk_of_its_own() {
    let text = "#!/usr/bin/env enigma\ndim a = 1\n";
    let (ast, diags) = parse_recovering(text, FILE);
    assert_eq!(keywords(&ast), ["dim"]);
    assert_eq!(diags.len(), 1);
    assert!(diags[0].help.as_deref().is_some_and(|h| h.contains("//")));
    assert_eq!(ast.broken[0].keyword, None);
    assert_eq!(slice(text, ast.broken[0].span), "#!/usr/bin/env enigma");
}

#[test]
fn names_of_broken_items() {
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        ("module Foo(\n", Some("module"), Some("Foo")),
        ("dim d\n = = 1\n", Some("dim"), Some("d")),
        ("fn /* c */ f(x: [ ) {}\n", Some("fn"), Some("f")),
        (
            "modality video: video<f32>[ from x\n",
            Some("modality"),
            Some("video"),
        ),
        (
            "use std::nn::Linear as Lin extra\n",
            Some("use"),
            Some("Lin"),
        ),
        ("use std::nn::Linear extra\n", Some("use"), Some("Linear")),
        ("use std::nn::{Linear,\n", Some("use"), None),
        ("use std::nn::\n", Some("use"), None),
        ("loss recon = nll(\n", Some("loss"), Some("recon")),
        ("metric f(x) +\n", Some("metric"), None),
        ("train { steps: }\n", Some("train"), None),
        ("let model = 1\n", Some("let"), None),
    ];
    for (text, keyword, name) in cases {
        let (ast, diags) = parse_recovering(text, FILE);
        assert!(!diags.is_empty(), "{text:?} should not parse");
        assert_eq!(ast.broken.len(), 1, "{text:?}");
        let b = &ast.broken[0];
        assert_eq!(b.keyword, *keyword, "{text:?}");
        assert_eq!(b.name.as_ref().map(|n| n.name.as_str()), *name, "{text:?}");
        if let Some(n) = &b.name {
            assert_eq!(slice(text, n.span), n.name);
        }
    }
}

#[test]
fn recovery_is_linear_in_the_number_of_items() {
    // One early error in a file of many items: each item is parsed once on
    // its own and once more in the blanked file, not once per item before
    // it.
    let mut text = String::from("dim broken = \n");
    for i in 0..5000 {
        text.push_str(&format!("/// Item {i}.\ndim d{i} = {i} * 2 + 1\n"));
    }
    let (ast, diags) = parse_recovering(&text, FILE);
    assert_eq!(diags.len(), 1);
    assert_eq!(ast.items.len(), 5000);
    let last = &ast.items[4999];
    assert_eq!(slice(&text, last.span), "dim d4999 = 4999 * 2 + 1");
    assert_eq!(last.docs[0].text.trim(), "Item 4999.");
}

#[test]
fn the_serialised_ast_of_a_clean_file_is_unchanged() {
    // `broken` is left out when empty, so tools reading the AST as JSON see
    // no new field unless recovery happened.
    let (ast, _) = parse_recovering("dim d = 1\n", FILE);
    let json = serde_json::to_value(&ast).expect("the AST serialises");
    assert!(json.get("broken").is_none());
    let (ast, _) = parse_recovering("dim d = 1\ndim e = \n", FILE);
    let json = serde_json::to_value(&ast).expect("the AST serialises");
    assert_eq!(json["broken"][0]["keyword"], "dim");
}
