//! The typed IR against published figures: parameter counts of the
//! example models, the closed-form count of the Enigma-1B reference
//! (DESIGN.md), the training FLOPs convention, and the shapes the checker
//! derives through the standard library.

#[path = "common/real.rs"]
mod real_data;

use enigma::ir::stats::Stats;
use enigma::ir::types::size::Size;
use enigma::ir::Graph;
use enigma::source::FsLoader;

#[path = "common/checked.rs"]
mod checked;

fn graph(example: &str) -> Graph {
    checked::example_graph(example)
}

fn known(s: &Size) -> i64 {
    s.as_const()
        .unwrap_or_else(|| panic!("a known size, not {s}"))
}

/// Parameters in the scope at `path` and below.
fn scope_params(g: &Graph, stats: &Stats, path: &str) -> i64 {
    let i = g
        .scopes
        .iter()
        .position(|s| s.path == path)
        .unwrap_or_else(|| panic!("a scope {path}"));
    known(&stats.scope_params[&i])
}

#[test]
fn gpt2_small_has_exactly_its_published_parameter_count() {
    let g = graph("gpt2_small.enigma");
    let stats = Stats::of(&g);
    assert_eq!(known(&stats.total_params(g.sessions)), 124_439_808);
    assert_eq!(scope_params(&g, &stats, "gpt2.wte"), 50_257 * 768);
    assert_eq!(scope_params(&g, &stats, "gpt2.wpe"), 1024 * 768);
    // Twelve blocks of 7,087,872 and the final LayerNorm.
    assert_eq!(
        scope_params(&g, &stats, "gpt2.blocks"),
        12 * 7_087_872 + 2 * 768
    );
}

#[test]
fn enigma_1b_agrees_with_the_closed_form_count() {
    let (d, layers, ffn): (i64, i64, i64) = (2048, 20, 5632);
    // DESIGN.md: attention 4 d^2 (16 heads of 128 = d), SwiGLU 3 d ffn, two
    // RMSNorm gains per block; the stack adds one final norm.
    let per_layer = 4 * d * d + 3 * d * ffn + 2 * d;
    assert_eq!(per_layer, 51_384_320);
    let g = graph("enigma_1b.enigma");
    let stats = Stats::of(&g);
    assert_eq!(
        scope_params(&g, &stats, "enigma.backbone"),
        layers * per_layer + d
    );
    // Tokenizers: the tubelet projection (512 -> d), its 9 x 16 positions
    // and kind vector; the behaviour projection (4 -> d) and kind; the
    // value projection, kind and mask token of the response tokens.
    let tokenizers = (512 * d + 9 * 16 * d + d) + (4 * d + d) + (2 * d + d + d);
    assert_eq!(
        known(&stats.shared_params),
        layers * per_layer + d + tokenizers
    );
    assert_eq!(known(&stats.shared_params), 1_029_052_416);
    // Per session, 512 neurons (bound by the synthetic source): unit
    // embeddings N x d and the per-neuron readout N x (d + 1).
    assert_eq!(known(&stats.session_params), 512 * d + 512 * (d + 1));
    assert_eq!(g.sessions, Some(16));
    assert_eq!(known(&stats.total_params(g.sessions)), 1_062_615_040);
}

#[test]
fn training_flops_follow_six_n_plus_the_attention_term() {
    let g = graph("enigma_1b.enigma");
    let stats = Stats::of(&g);
    let step = stats.step_flops(512).unwrap();
    // 12,572 tokens per window; 6 N (N without the embeddings, which do no
    // products here) plus 12 L d S per token, times 512 windows: 7.95e16.
    let tokens = 4_320.0 + 60.0 + 8_192.0;
    assert_eq!(tokens, 12_572.0);
    let relative = (step - 7.948e16).abs() / 7.948e16;
    assert!(relative < 1e-3, "step FLOPs {step:e}");
}

#[test]
fn llama_and_vit_examples_match_their_reference_models() {
    // TinyLlama-1.1B's configuration (22 layers, d 2,048, 32 heads, 4
    // key/value heads, SwiGLU 5,632, untied head): 1,100,048,384.
    let g = graph("llama_style.enigma");
    assert_eq!(known(&Stats::of(&g).total_params(None)), 1_100_048_384);
    // ViT-B/16 has 86,567,656 with a class token and 197 positions; this
    // one pools the 196 patch tokens instead (no class token, one position
    // fewer) and adds the tokenizer's kind vector: -768 - 768 + 768.
    let g = graph("vit_style.enigma");
    assert_eq!(known(&Stats::of(&g).total_params(None)), 86_567_656 - 768);
}

#[test]
fn shapes_flow_through_the_standard_library() {
    let g = graph("quickstart.enigma");
    // The response readout predicts [batch, T, N]: 16 steps at 8 Hz over
    // 2 s, 32 neurons (bound by the synthetic source).
    let out = &g.outputs[0];
    assert_eq!(out.name, "response");
    let dims: Vec<String> = out
        .ty
        .dims
        .iter()
        .map(|d| format!("{}={}", d.name, d.size_or_name()))
        .collect();
    assert_eq!(dims, ["batch=1", "T=16", "N=32"]);
    assert_eq!(out.ty.dims[1].rate, Some(8.0));
    // The joined sequence: 15 x 3 x 4 video tubelets, 60 behaviour steps
    // and 16 x 32 response tokens.
    let concat = g
        .nodes
        .iter()
        .find(|n| matches!(n.op, enigma::ir::Op::Concat { .. }))
        .unwrap();
    let seq = concat
        .out
        .dims
        .iter()
        .find(|d| d.name == Size::symbol("seq"))
        .unwrap();
    assert_eq!(seq.size, Some(Size::constant(15 * 3 * 4 + 60 + 16 * 32)));
    // Every loss is a scalar.
    assert!(g
        .objectives
        .iter()
        .filter(|o| o.kind == enigma::ir::ObjectiveKind::Loss)
        .all(|o| o.ty.dims.is_empty()));
}

#[test]
fn the_ir_is_yaml_other_tools_can_read() {
    let g = graph("gpt2_small.enigma");
    let text = enigma::ir::yaml::to_yaml(&g).unwrap();
    assert!(text.starts_with("format: 1\n"), "{}", &text[..80]);
    assert!(text.contains("shared_params: 124439808"));
    assert!(text.contains("op: attention"));
    // Parsing it back gives the same number of nodes and parameters.
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(doc["nodes"].as_array().unwrap().len(), g.nodes.len());
    assert_eq!(doc["params"].as_array().unwrap().len(), g.params.len());
}

/// The NWB file of the real recordings has 3 units: they bind `N`. The
/// example names the file relative to the repository; a copy of it points
/// at wherever this machine keeps the recordings.
#[cfg(feature = "nwb")]
#[test]
fn nwb_units_bind_the_unit_dim() {
    let (path, _) = real_data::real_example("nwb_spikes", "nwb-example");
    let x = checked::experiment(&path);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    let stats = Stats::of(&x.graph);
    // Unit embeddings (d = 32) and the per-unit readout (d + 1) per unit.
    assert_eq!(known(&stats.session_params), 3 * (32 + 33));
}

/// suite2p's classifier marks 20 of the 219 ROIs as cells: only reading
/// `iscell.npy` says so, and binding that count before planning gives the
/// example's documented 26,836 parameters.
#[test]
fn suite2p_cells_are_counted_from_the_classifier() {
    let (path, _) = real_data::real_example("suite2p_calcium", "suite2p-example");
    let x = checked::experiment(&path);
    assert!(!x.graph.unsized_params().is_empty());
    let plan = enigma::driver::Options {
        resolve: Default::default(),
        goal: enigma::driver::Goal::Plan(Default::default()),
        record_types: false,
    };
    let bound = enigma::driver::compile(&FsLoader, &path, &plan);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    let bound = bound.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bound.error, None);
    let x = bound
        .experiment
        .unwrap_or_else(|| panic!("{:?}", bound.diagnostics));
    assert_eq!(x.sized_from_data, [("N".to_string(), 20)]);
    let stats = Stats::of(&x.graph);
    assert_eq!(known(&stats.total_params(x.graph.sessions)), 26_836);
}

#[test]
fn a_loss_weight_scales_its_term_in_the_graph() {
    use enigma::ir::{Elementwise, Op, Operand, ValueRef};
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.enigma"
    ))
    .unwrap();
    let block = "{ masked_only: true }";
    assert!(text.contains(block), "the quickstart's loss block changed");
    let weighted =
        |w: &str| text.replacen(block, &format!("{{ masked_only: true, weight: {w} }}"), 1);
    let dir = std::env::temp_dir().join(format!("enigma-loss-weight-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("weighted.enigma");
    std::fs::write(&path, weighted("1 / 4")).unwrap();
    let g = checked::experiment(&path).graph;
    let loss = g
        .objectives
        .iter()
        .find(|o| o.kind == enigma::ir::ObjectiveKind::Loss)
        .unwrap();
    let ValueRef::Node(n) = loss.value else {
        panic!("the loss is a node")
    };
    match &g.nodes[n].op {
        Op::Elementwise {
            f: Elementwise::Mul,
            operands,
        } => assert!(operands.contains(&Operand::Number(0.25)), "{operands:?}"),
        other => panic!("the weighted loss is {other:?}, not a product"),
    }
    // A weight of zero or below is not a weight.
    std::fs::write(&path, weighted("0")).unwrap();
    let a = checked::checked(&path);
    assert!(a
        .diagnostics
        .iter()
        .any(|d| d.code == enigma::diagnostics::Code::E0208));
    let _ = std::fs::remove_dir_all(&dir);
}
