//! `--set` overrides on the quickstart: each kind of key changes what the
//! checker sees, the spliced file keeps every line where it was, and each
//! mistake is a diagnostic on the argument as typed.

use std::path::Path;

use super::{compile_with, Options, Override};
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::train::Optimizer;
use crate::source::MemoryLoader;

const QUICKSTART: &str = include_str!("../../examples/quickstart.enigma");

fn with(sets: &[&str]) -> super::Artifacts {
    with_text(QUICKSTART, sets)
}

fn with_text(text: &str, sets: &[&str]) -> super::Artifacts {
    let mut loader = MemoryLoader::new();
    loader.insert("x.enigma", text);
    let overrides: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    compile_with(
        &loader,
        Path::new("x.enigma"),
        &Options::check(),
        &overrides,
    )
    .unwrap()
}

fn resolved(a: &super::Artifacts) -> &str {
    &a.program.sources.get(a.program.root_module().file).text
}

fn errors(a: &super::Artifacts) -> Vec<&Diagnostic> {
    a.diagnostics.iter().filter(|d| d.is_error()).collect()
}

/// The one error, and the text its primary label marks in the source it
/// names (which must be the command line).
fn one_error(a: &super::Artifacts) -> (Code, String) {
    let e = errors(a);
    assert_eq!(e.len(), 1, "{:#?}", a.diagnostics);
    let label = e[0].primary_label().unwrap();
    let file = a.program.sources.get(label.file);
    assert_eq!(file.name, "command line", "{:#?}", e[0]);
    let marked = file.text[label.span.start as usize..label.span.end as usize].to_string();
    (e[0].code, marked)
}

#[test]
fn written_values_are_replaced_and_missing_settings_added_on_their_line() {
    let a = with(&[
        "train.steps=200",
        "train.seed=11",
        "train.lr=1e-4",
        "train.optimizer.eps=1e-6",
        "parallel.zero=1",
        "d=32",
    ]);
    assert!(errors(&a).is_empty(), "{:#?}", a.diagnostics);
    let x = a.experiment.as_ref().unwrap();
    let t = x.train.as_ref().unwrap();
    assert_eq!(t.steps, 200);
    assert_eq!(t.seed, 11);
    let Optimizer::AdamW {
        lr,
        eps,
        weight_decay,
        ..
    } = t.optimizer
    else {
        panic!("{:?}", t.optimizer);
    };
    assert_eq!((lr, eps, weight_decay), (1e-4, 1e-6, 0.05));
    assert_eq!(x.parallel.zero, 1);
    // `dim d = 32` reaches every parameter sized by it.
    assert!(x.graph.params.iter().any(|p| p
        .ty
        .dims
        .iter()
        .any(|d| d.size_or_name().as_const() == Some(32))));
    assert!(!x.graph.params.iter().any(|p| p
        .ty
        .dims
        .iter()
        .any(|d| d.size_or_name().as_const() == Some(64))));
    let text = resolved(&a);
    assert_eq!(text.lines().count(), QUICKSTART.lines().count());
    assert!(
        text.contains("steps: 200\n") && text.contains("dim d = 32\n"),
        "{text}"
    );
    assert!(
        text.contains("adamw(lr: 1e-4, betas: (0.9, 0.95), weight_decay: 0.05, eps: 1e-6)"),
        "{text}"
    );
    assert!(text.contains("train { seed: 11;"), "{text}");
}

#[test]
fn missing_blocks_are_added_with_the_setting() {
    let text = QUICKSTART.replace("  checkpoint { every: 200, keep: 2 }\n", "");
    let a = with_text(&text, &["train.checkpoint.keep=5", "data.v1.stride=2s"]);
    assert!(errors(&a).is_empty(), "{:#?}", a.diagnostics);
    let t = a.experiment.as_ref().unwrap().train.as_ref().unwrap();
    assert_eq!(t.checkpoint_keep, 5);
    let out = resolved(&a);
    assert!(out.contains("train { checkpoint { keep: 5 };"), "{out}");
    assert!(out.contains("stride: 2s\n"), "{out}");
    // A file without a parallel block gets one at its end.
    let bare = text.replace("parallel {\n  mesh { dp: 1 }\n  batch -> dp\n}\n", "");
    assert_ne!(bare, text);
    let a = with_text(&bare, &["parallel.zero=1", "parallel.mesh.dp=1"]);
    assert!(errors(&a).is_empty(), "{:#?}", a.diagnostics);
    assert_eq!(a.experiment.as_ref().unwrap().parallel.zero, 1);
    assert!(
        resolved(&a).ends_with("parallel { mesh { dp: 1 }; zero: 1 }\n"),
        "{}",
        resolved(&a)
    );
}

#[test]
fn the_checker_judges_keys_and_values_at_the_argument() {
    assert_eq!(
        one_error(&with(&["train.lrr=1"])),
        (Code::E0207, "lrr".to_string())
    );
    assert_eq!(
        one_error(&with(&["train.checkpoint.every=0"])),
        (Code::E0208, "0".to_string())
    );
    assert_eq!(one_error(&with(&["train.steps=fast"])).1, "fast");
}

#[test]
fn what_cannot_be_placed_is_e0110_on_the_argument() {
    for (set, marked) in [
        ("data.v2.window=3s", "data.v2.window=3s"),
        ("N=12", "N=12"),
        ("train.checkpoint=5", "train.checkpoint=5"),
        ("parallel.batch=2", "parallel.batch=2"),
        ("model.layers=2", "model.layers=2"),
        ("train.eval.every=1 }", "1 }"),
    ] {
        assert_eq!(
            one_error(&with(&[set])),
            (Code::E0110, marked.to_string()),
            "{set}"
        );
    }
    // The same key twice: the second is the error.
    let a = with(&["train.steps=500", "train.steps=600"]);
    assert_eq!(one_error(&a).0, Code::E0110);
    assert!(a.experiment.is_none());
}

#[test]
fn arguments_that_are_not_key_value_are_refused_before_checking() {
    for bad in [
        "train.steps",
        "=3",
        "train..steps=3",
        "train.steps=",
        "train.st eps=3",
    ] {
        assert!(bad.parse::<Override>().is_err(), "{bad}");
    }
    let ok: Override = "train.lr=1e-4".parse().unwrap();
    assert_eq!((ok.key(), ok.value()), ("train.lr", "1e-4"));
}

/// Data files are still read through the real loader: an NWB header is
/// probed from disk (W0201 would say it could not be).
#[cfg(feature = "nwb")]
#[test]
fn overrides_keep_reading_data_headers_from_disk() {
    let path = crate::testing::example_path("nwb_spikes.enigma");
    let overrides: Vec<Override> = vec!["train.steps=1000".parse().unwrap()];
    let a = compile_with(
        &crate::source::FsLoader,
        &path,
        &Options::check(),
        &overrides,
    )
    .unwrap();
    assert!(a.diagnostics.is_empty(), "{:#?}", a.diagnostics);
    assert_eq!(a.experiment.unwrap().train.unwrap().steps, 1000);
}
