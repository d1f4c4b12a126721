//! Modalities against the headers of their data files (E0219, W0201),
//! and the dims those headers bind, with files made in memory.

use std::path::Path;

use enigma::diagnostics::Code;
use enigma::ir::stats::Stats;
use enigma::ir::types::size::Size;
use enigma::source::MemoryLoader;

/// A version 1.0 `.npy` header (no data: the loader reads headers only).
fn npy(descr: &str, shape: &[u64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes
}

const MODEL: &str = r#"
use std::nn::{Transformer}
use std::tokenize::{UnitValues}
use std::readout::{PerUnit}
use std::losses::{poisson_nll}

dim T = 2s
dim N per session
dim d = 32

DATA

tokenizer ft = UnitValues(d: d)(fluor)

model cells {
  let h = Transformer(layers: 2, d: d, heads: 4)(ft)
  predict fluor = PerUnit(d: d)(h, fluor)
}

loss poisson_nll(cells.fluor, fluor)

train {
  optimizer: adamw(lr: 1e-3)
  steps: 100
  batch: 8
}
"#;

/// Checks `MODEL` with `data` in place of its data items, the given files
/// beside it; returns the codes found and the graph.
fn check(
    data: &str,
    files: &[(&str, Vec<u8>)],
) -> (Vec<(Code, String)>, Option<enigma::ir::Graph>) {
    let mut loader = MemoryLoader::new();
    loader.insert("exp/main.enigma", MODEL.replace("DATA", data));
    for (name, bytes) in files {
        loader.insert(Path::new("exp").join(name), bytes.clone());
    }
    let a = enigma::driver::compile(
        &loader,
        Path::new("exp/main.enigma"),
        &enigma::driver::Options::check(),
    )
    .unwrap();
    let codes = a
        .diagnostics
        .iter()
        .map(|d| (d.code, d.message.clone()))
        .collect();
    (codes, a.experiment.map(|x| x.graph))
}

#[test]
fn the_file_binds_the_neuron_dim() {
    let data = r#"data fluo = npy("F.npy", axes: [N, T]) { window: T }
modality fluor: series<f32>[T @ 10Hz, N] from fluo"#;
    let (codes, graph) = check(data, &[("F.npy", npy("<f4", &[219, 2000]))]);
    assert!(codes.is_empty(), "{codes:?}");
    let g = graph.unwrap();
    // The readout has one weight vector and bias per neuron of the file.
    let stats = Stats::of(&g);
    assert_eq!(stats.session_params, Size::constant(219 * (32 + 32 + 1)));
    let n = g.inputs[0]
        .ty
        .dims
        .iter()
        .find(|d| d.name == Size::symbol("N"))
        .unwrap();
    assert_eq!(n.size, Some(Size::constant(219)));
}

#[test]
fn axes_in_the_wrong_order_contradict_another_file() {
    let data = r#"data fluo = npy("F.npy", axes: [T, N]) { window: T }
data iscell = npy("iscell.npy", axes: [N, 2])
modality fluor: series<f32>[T @ 10Hz, N] from fluo"#;
    let files = [
        ("F.npy", npy("<f4", &[219, 2000])),
        ("iscell.npy", npy("<f4", &[219, 2])),
    ];
    let (codes, _) = check(data, &files);
    assert_eq!(codes.len(), 1, "{codes:?}");
    assert_eq!(codes[0].0, Code::E0219);
    assert!(codes[0].1.contains("`N` is 2000"), "{}", codes[0].1);
    assert!(codes[0].1.contains("but 219"), "{}", codes[0].1);
}

#[test]
fn a_declared_size_must_match_the_file() {
    let data = r#"data beh = npy("behavior.npy") { window: T }
modality fluor: series<f32>[T @ 30Hz, 4] from beh"#;
    let (codes, _) = check(data, &[("behavior.npy", npy("<f4", &[1800, 5]))]);
    assert_eq!(codes.len(), 1, "{codes:?}");
    assert_eq!(codes[0].0, Code::E0219);
    assert!(codes[0].1.contains("declares 4"), "{}", codes[0].1);
    // And the rank.
    let data = r#"data beh = npy("behavior.npy") { window: T }
modality fluor: series<f32>[T @ 30Hz, 4] from beh"#;
    let (codes, _) = check(data, &[("behavior.npy", npy("<f4", &[1800, 4, 2]))]);
    assert_eq!(codes[0].0, Code::E0219);
    assert!(codes[0].1.contains("3 axes"), "{}", codes[0].1);
}

#[test]
fn integer_modalities_need_integer_files() {
    let data = r#"data fluo = npy("F.npy", axes: [N, T]) { window: T }
modality fluor: series<i64>[T @ 10Hz, N] from fluo"#;
    let (codes, _) = check(data, &[("F.npy", npy("<f4", &[219, 2000]))]);
    assert_eq!(codes[0].0, Code::E0219);
    assert!(codes[0].1.contains("holds `f32`"), "{}", codes[0].1);
}

#[test]
fn a_missing_file_is_a_warning_and_leaves_the_dim_symbolic() {
    let data = r#"data fluo = npy("F.npy", axes: [N, T]) { window: T }
modality fluor: series<f32>[T @ 10Hz, N] from fluo"#;
    let (codes, graph) = check(data, &[]);
    assert_eq!(codes.len(), 1, "{codes:?}");
    assert_eq!(codes[0].0, Code::W0201);
    let stats = Stats::of(&graph.unwrap());
    assert_eq!(stats.session_params.to_string(), "65*N");
}

#[test]
fn a_corrupt_file_is_an_error() {
    let data = r#"data fluo = npy("F.npy", axes: [N, T]) { window: T }
modality fluor: series<f32>[T @ 10Hz, N] from fluo"#;
    let (codes, _) = check(data, &[("F.npy", b"not an npy file at all".to_vec())]);
    assert_eq!(codes[0].0, Code::E0219);
}

#[test]
fn a_selected_dim_is_not_bound_by_the_raw_file() {
    // `select` keeps the cells only, so N is not the file's 219.
    let data = r#"data fluo = npy("F.npy", axes: [N, T]) { window: T }
data iscell = npy("iscell.npy", axes: [N, 2])
modality fluor: series<f32>[T @ 10Hz, N] from fluo | select(N, where: iscell[.., 0] > 0.5)"#;
    let files = [
        ("F.npy", npy("<f4", &[219, 2000])),
        ("iscell.npy", npy("<f4", &[219, 2])),
    ];
    let (codes, graph) = check(data, &files);
    assert!(codes.is_empty(), "{codes:?}");
    assert_eq!(
        Stats::of(&graph.unwrap()).session_params.to_string(),
        "65*N"
    );
}
