//! Tests of the IDE queries on in-memory programs: each states a program
//! and what a query at a marked place must answer.

use std::path::Path;

use super::complete::{complete, signature_help, ItemKind};
use super::hover::hover;
use super::navigate::{definition, references, rename, symbols};
use super::tokens::{inlay_hints, semantic_tokens, TokenKind};
use super::*;
use crate::source::MemoryLoader;

/// A small experiment in the quick start's shape: a user module with a
/// doc comment, a model that applies it and the standard library's
/// transformer, a loss, and training settings.
const PROGRAM: &str = r#"use std::nn::{Transformer}
use std::tokenize::{Scalars}
use std::losses::{poisson_nll}

/// The context window.
dim T = 2s
/// The model width.
dim d = 32

data v1 = synthetic.mouse_v1(sessions: 1, neurons: 8, seed: 1) {
  window: T
}

modality behavior: series<f32>[T @ 30Hz, 4] from v1.behavior
modality response: series<f32>[T @ 30Hz, 8] from v1.response | resample(30Hz)

tokenizer bt = Scalars(d: d)(behavior)

/// Projects tokens to eight rates.
module Head(width: dim)(x: [..., S, width]) -> [..., S, 8] {
  param w: [width, 8] = normal(std: 0.02)
  let rates = exp(matmul(x, w))
  return rates
}

model brain {
  let h = Transformer(layers: 1, d: d, heads: 2)(bt)
  predict response = Head(width: d)(reshape[seq -> T](h))
}

loss poisson_nll(brain.response, response)

train {
  optimizer: adamw(lr: 1e-3)
  steps: 10
  batch: 4
  precision: f32
}
"#;

fn analyse(text: &str) -> Analysis {
    let mut loader = MemoryLoader::new();
    loader.insert("/w/main.enigma", text);
    match Analysis::new(&loader, Path::new("/w/main.enigma"), Default::default()) {
        Ok(a) => a,
        Err(e) => panic!("the test program could not be read: {e}"),
    }
}

/// The byte offset of the `n`-th (0-based) occurrence of `needle`, plus
/// `skip` bytes.
fn at(text: &str, needle: &str, n: usize, skip: usize) -> usize {
    match text.match_indices(needle).nth(n) {
        Some((i, _)) => i + skip,
        None => panic!("`{needle}` occurs fewer than {} times", n + 1),
    }
}

#[test]
fn the_program_checks_cleanly() {
    let a = analyse(PROGRAM);
    let errors: Vec<_> = a
        .artifacts
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!a.artifacts.types.is_empty());
}

#[test]
fn hover_shows_a_bindings_type_with_named_dims() {
    let a = analyse(PROGRAM);
    let h = hover(&a, a.root(), at(PROGRAM, "let h", 0, 4));
    let Some(h) = h else {
        panic!("no hover on `h`")
    };
    // `h` is the transformer's output: [batch, seq, d=32]; the dims are named.
    assert!(h.markdown.contains("d=32"), "{}", h.markdown);
    assert_eq!(&PROGRAM[h.span.range()], "h");
}

#[test]
fn hover_on_a_module_use_shows_its_signature_and_doc() {
    let a = analyse(PROGRAM);
    let Some(h) = hover(&a, a.root(), at(PROGRAM, "Head(width: d)", 0, 1)) else {
        panic!("no hover on `Head`")
    };
    assert!(
        h.markdown
            .contains("module Head(width: dim)(x: [..., S, width]) -> [..., S, 8]"),
        "{}",
        h.markdown
    );
    assert!(h.markdown.contains("Projects tokens to eight rates."));
}

#[test]
fn hover_on_a_settings_key_shows_its_schema() {
    let a = analyse(PROGRAM);
    let Some(h) = hover(&a, a.root(), at(PROGRAM, "precision:", 0, 2)) else {
        panic!("no hover on `precision`")
    };
    assert!(h.markdown.contains("bf16"), "{}", h.markdown);
    assert!(h.markdown.contains("train.precision"), "{}", h.markdown);
}

#[test]
fn hover_on_a_diagnostic_explains_its_code() {
    let text = PROGRAM.replace("exp(matmul(x, w))", "exp(matmul(xx, w))");
    let a = analyse(&text);
    let Some(h) = hover(&a, a.root(), at(&text, "xx", 0, 1)) else {
        panic!("no hover on the unknown name")
    };
    assert!(h.markdown.contains("E0105"), "{}", h.markdown);
    assert!(h.markdown.contains("unknown name"), "{}", h.markdown);
}

#[test]
fn definition_goes_to_locals_items_and_the_stdlib() {
    let a = analyse(PROGRAM);
    let root = a.root();
    let ret = at(PROGRAM, "return rates", 0, 8);
    assert_eq!(
        definition(&a, root, ret),
        Some((
            root,
            Span::new(
                at(PROGRAM, "let rates", 0, 4),
                at(PROGRAM, "let rates", 0, 9)
            )
        ))
    );
    let Some((file, span)) = definition(&a, root, at(PROGRAM, "Transformer(layers", 0, 3)) else {
        panic!("no definition for `Transformer`")
    };
    assert_ne!(file, root);
    assert!(a.is_stdlib(file));
    assert_eq!(&a.text(file)[span.range()], "Transformer");
    // The import's own name leads there too.
    assert_eq!(
        definition(&a, root, at(PROGRAM, "{Transformer}", 0, 2)),
        Some((file, span))
    );
}

#[test]
fn a_named_argument_leads_to_the_callees_parameter() {
    let a = analyse(PROGRAM);
    let root = a.root();
    let arg = at(PROGRAM, "Head(width: d)", 0, 5);
    let param = at(PROGRAM, "module Head(width", 0, 12);
    assert_eq!(
        definition(&a, root, arg),
        Some((root, Span::new(param, param + "width".len())))
    );
    let Some(h) = hover(&a, root, arg) else {
        panic!("no hover on the argument name")
    };
    assert!(h.markdown.contains("width: dim"), "{}", h.markdown);
    // Into the standard library: `heads:` of `Transformer`.
    let Some((file, span)) = definition(&a, root, at(PROGRAM, "heads: 2", 0, 1)) else {
        panic!("no definition for `heads:`")
    };
    assert!(a.is_stdlib(file));
    assert_eq!(&a.text(file)[span.range()], "heads");
    // Renaming the parameter renames the argument that gives it.
    let Ok(places) = rename(&a, root, param, "w2") else {
        panic!("the rename was refused")
    };
    // The parameter, its two uses in the signature and body, the argument.
    assert_eq!(places.len(), 4, "{places:?}");
    assert!(places.iter().all(|(_, s)| &PROGRAM[s.range()] == "width"));
    assert!(places.iter().any(|(_, s)| s.start as usize == arg));
}

#[test]
fn references_and_rename_cover_every_use_of_a_dim() {
    let a = analyse(PROGRAM);
    let root = a.root();
    let decl = at(PROGRAM, "dim d", 0, 4);
    let refs = references(&a, root, decl, true);
    // `dim d`, `Scalars(d: d)`, `Transformer(..., d: d, ...)`, `Head(width: d)`.
    assert_eq!(refs.len(), 4, "{refs:?}");
    assert!(refs
        .iter()
        .all(|(f, s)| *f == root && &PROGRAM[s.range()] == "d"));
    let Ok(edits) = rename(&a, root, decl, "width_model") else {
        panic!("the rename was refused")
    };
    assert_eq!(edits.len(), 4);
    assert!(rename(&a, root, decl, "let").is_err());
    assert!(rename(&a, root, at(PROGRAM, "Transformer(layers", 0, 1), "T2").is_err());
}

#[test]
fn completion_offers_settings_keys_and_values_from_the_schema() {
    let a = analyse(PROGRAM);
    let root = a.root();
    // At the start of a line inside `train { ... }`: the keys not yet given.
    let line = at(PROGRAM, "  precision: f32", 0, 2);
    let keys: Vec<String> = complete(&a, root, line)
        .into_iter()
        .filter(|c| c.kind == ItemKind::Property)
        .map(|c| c.label)
        .collect();
    assert!(keys.contains(&"clip".to_string()), "{keys:?}");
    assert!(keys.contains(&"checkpoint".to_string()));
    assert!(
        !keys.contains(&"steps".to_string()),
        "`steps` is already given"
    );
    // After `precision: `: the allowed values.
    let value = at(PROGRAM, "precision: f32", 0, "precision: ".len());
    let values: Vec<String> = complete(&a, root, value)
        .into_iter()
        .map(|c| c.label)
        .collect();
    assert_eq!(values, ["f32", "bf16", "f16"]);
}

#[test]
fn completion_offers_units_after_a_number_and_arguments_in_a_call() {
    let text = PROGRAM.replace("dim T = 2s", "dim T = 2m");
    let a = analyse(&text);
    let units: Vec<String> = complete(&a, a.root(), at(&text, "2m", 0, 2))
        .into_iter()
        .map(|c| c.label)
        .collect();
    assert_eq!(units, ["ms", "min"].map(String::from));
    let a = analyse(PROGRAM);
    let inside = at(PROGRAM, "Head(width: d)", 0, 5);
    let args: Vec<String> = complete(&a, a.root(), inside)
        .into_iter()
        .filter(|c| c.kind == ItemKind::Argument)
        .map(|c| c.label)
        .collect();
    assert_eq!(args, ["width:"]);
    // In `Transformer(layers: 1, d: d, |`: the arguments not yet given.
    let after = at(PROGRAM, "heads: 2)", 0, 0);
    let args: Vec<String> = complete(&a, a.root(), after)
        .into_iter()
        .filter(|c| c.kind == ItemKind::Argument)
        .map(|c| c.label)
        .collect();
    assert!(args.contains(&"heads:".to_string()), "{args:?}");
    assert!(!args.contains(&"layers:".to_string()) && !args.contains(&"d:".to_string()));
}

#[test]
fn signature_help_marks_the_argument_being_typed() {
    let a = analyse(PROGRAM);
    let Some(h) = signature_help(&a, a.root(), at(PROGRAM, "heads: 2)", 0, 7)) else {
        panic!("no signature help in the Transformer call")
    };
    assert!(h
        .label
        .starts_with("Transformer(layers: int, d: dim, heads: dim"));
    assert_eq!(h.active, Some(2));
}

#[test]
fn symbols_list_items_with_their_parameters() {
    let a = analyse(PROGRAM);
    let syms = symbols(&a, a.root());
    let names: Vec<&str> = syms.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["T", "d", "v1", "behavior", "response", "bt", "Head", "brain", "train"]
    );
    let head = &syms[6];
    let children: Vec<&str> = head.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(children, ["width", "x", "S", "w", "rates"]);
}

#[test]
fn semantic_tokens_tell_dims_from_modules_and_builtins() {
    let a = analyse(PROGRAM);
    let toks = semantic_tokens(&a, a.root());
    let kind_at = |offset: usize| {
        toks.iter()
            .find(|t| t.span.start as usize == offset)
            .map(|t| (t.kind, t.declaration, t.library))
    };
    assert_eq!(
        kind_at(at(PROGRAM, "dim d", 0, 4)),
        Some((TokenKind::TypeParameter, true, false))
    );
    assert_eq!(
        kind_at(at(PROGRAM, "Head(width: d)", 0, 0)),
        Some((TokenKind::Class, false, false))
    );
    assert_eq!(
        kind_at(at(PROGRAM, "matmul", 0, 0)),
        Some((TokenKind::Function, false, true))
    );
    assert_eq!(
        kind_at(at(PROGRAM, "/// The model", 0, 0)).map(|k| k.0),
        Some(TokenKind::Comment)
    );
}

#[test]
fn inlay_hints_show_untyped_bindings() {
    let a = analyse(PROGRAM);
    let all = Span::new(0, PROGRAM.len());
    let hints = inlay_hints(&a, a.root(), all);
    let rates = at(PROGRAM, "let rates", 0, 9);
    let Some(h) = hints.iter().find(|h| h.offset == rates) else {
        panic!("no hint after `rates`: {hints:?}")
    };
    assert!(
        h.label.starts_with(": f32[") || h.label.starts_with(": ["),
        "{}",
        h.label
    );
    assert!(h.label.contains('8'), "{}", h.label);
}

#[test]
fn quick_fixes_apply_did_you_mean() {
    let text = PROGRAM.replace("exp(matmul(x, w))", "exp(matmull(x, w))");
    let a = analyse(&text);
    let fixes = fixes::quick_fixes(&a, a.root(), Span::new(0, text.len()));
    let Some(f) = fixes.first() else {
        panic!("no quick fix")
    };
    assert_eq!(f.replacement, "matmul");
    assert_eq!(&text[f.span.range()], "matmull");
}

#[test]
fn word_at_finds_the_name_under_the_cursor() {
    assert_eq!(word_at("a foo_1 b", 4), Some((Span::new(2, 7), "foo_1")));
    assert_eq!(word_at("a  b", 2), None);
}

/// Every query at every position of a file full of mistakes and non-ASCII
/// text answers without panicking: the editor asks at arbitrary places,
/// and half-typed text is the normal case.
#[test]
fn every_query_survives_every_position_of_broken_text() {
    let text = format!(
        "{PROGRAM}\n/* é 𝛼 /* nested */ ü */ \"ü\\é\" module Bad(d: dim)(x: [..., d]) -> {{\n  return x +\n}}\ntrain {{ st\nlet q = Head(width: 3"
    );
    let a = analyse(&text);
    let root = a.root();
    assert!(a.artifacts.diagnostics.iter().any(|d| d.is_error()));
    let mut offset = 0;
    while offset <= text.len() {
        if text.is_char_boundary(offset) {
            let _ = hover(&a, root, offset);
            let _ = complete(&a, root, offset);
            let _ = signature_help(&a, root, offset);
            let _ = definition(&a, root, offset);
            let _ = references(&a, root, offset, true);
            let _ = rename(&a, root, offset, "renamed");
        }
        offset += 1;
    }
    let _ = semantic_tokens(&a, root);
    let _ = inlay_hints(&a, root, Span::new(0, text.len()));
    let _ = symbols(&a, root);
    let _ = fixes::quick_fixes(&a, root, Span::new(0, text.len()));
}
