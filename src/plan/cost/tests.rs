//! Tests of the cost model: the formulas on hand numbers, hand-built
//! programs whose timelines and memory are known, and lowered examples.

use super::*;
use crate::ir::types::size::Size;
use crate::ir::types::tensor::{DType, Dim, Tensor};
use crate::ir::{Init, Node, Param, Scope};
use crate::plan::Layout;

const LINK: Link = Link {
    bandwidth: 100e9,
    latency: 1e-6,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
}

#[test]
fn ring_and_tree_formulas_on_hand_numbers() {
    use CollectiveKind::*;
    // Ring all-reduce of 1 GB over 8 ranks: 2 x 7/8 x 10 ms + 14 hops.
    assert!(close(
        collective_time(AllReduce, 1e9, 8, LINK),
        0.0175 + 14e-6
    ));
    // A 1 kB all-reduce over 64 ranks is latency-bound: the tree's
    // 2 log2(64) = 12 hops beat the ring's 126.
    assert!(close(
        collective_time(AllReduce, 1e3, 64, LINK),
        12e-6 + 2e3 / 100e9
    ));
    assert!(close(collective_time(AllGather, 4e9, 4, LINK), 0.03 + 3e-6));
    assert!(close(
        collective_time(ReduceScatter, 4e9, 4, LINK),
        0.03 + 3e-6
    ));
    assert_eq!(collective_time(AllReduce, 1e9, 1, LINK), 0.0);
    assert!(close(p2p_time(1e9, LINK), 0.01 + 1e-6));
    assert!(close(wire_bytes(AllReduce, 8e9, 8), 14e9));
}

#[test]
fn groups_inside_a_node_use_nvlink_and_across_nodes_the_network() {
    let c = Cluster::default();
    assert_eq!(c.link(&(0..8).collect::<Vec<_>>()), c.nvlink);
    assert_eq!(c.link(&[8, 15]), c.nvlink);
    assert_eq!(c.link(&[0, 8]), c.network);
    assert_eq!(c.link(&(0..64).step_by(8).collect::<Vec<_>>()), c.network);
    let bytes = 1e9;
    assert!(
        collective_time(CollectiveKind::AllReduce, bytes, 8, c.link(&[0, 8]))
            > collective_time(CollectiveKind::AllReduce, bytes, 8, c.link(&[0, 7]))
    );
}

/// A model of one linear node on one parameter, [batch, 1000] bf16.
fn tiny() -> Graph {
    let ty = |dims| Tensor::new(DType::Float, dims);
    Graph {
        batch: 1,
        float_bytes: 2,
        scopes: vec![Scope {
            path: "m".into(),
            module: "model".into(),
            parent: None,
            repeat: 1,
            hyper: Vec::new(),
            carry: None,
        }],
        params: vec![Param {
            path: "m.w".into(),
            scope: 0,
            ty: ty(vec![Dim::anon(1000, None)]),
            init: Init::Zeros,
            per_session: false,
        }],
        nodes: vec![Node {
            op: crate::ir::Op::Linear,
            scope: 0,
            inputs: vec![ValueRef::Param(0)],
            out: ty(vec![
                Dim::named("batch", Size::constant(1), None),
                Dim::anon(1000, None),
            ]),
            flops: Size::constant(0),
        }],
        ..Graph::default()
    }
}

/// FLOPs that take `s` seconds on the default cluster.
fn secs(s: f64) -> f64 {
    let c = Cluster::default();
    s * c.peak_flops * c.efficiency
}

fn fwd(micro: usize, seconds: f64, saved: bool, recompute: bool) -> Instr {
    Instr::Forward {
        node: 0,
        copy: 0,
        micro,
        shape: vec![1, 1000],
        dtype: DType::Float,
        flops: secs(seconds),
        saved,
        recompute,
        narrow: Vec::new(),
        gather: Vec::new(),
        partial_grad: Vec::new(),
    }
}

fn bwd(micro: usize, seconds: f64) -> Instr {
    Instr::Backward {
        node: 0,
        copy: 0,
        micro,
        flops: secs(seconds),
    }
}

fn plan(groups: Vec<Group>, programs: Vec<(usize, usize, Vec<Instr>)>) -> Plan {
    Plan {
        layout: Layout::single(),
        micro_batch: 1,
        microbatches: 1,
        float_bytes: 2,
        placements: Vec::new(),
        groups,
        ranks: programs
            .into_iter()
            .map(|(rank, stage, ops)| RankProgram {
                rank,
                coords: Vec::new(),
                stage,
                params: Vec::new(),
                ops,
            })
            .collect(),
    }
}

fn transfer(send: bool, peer: usize) -> Instr {
    Instr::P2p(vec![Transfer {
        send,
        peer,
        value: Value {
            value: ValueRef::Node(0),
            copy: 0,
            micro: 0,
        },
        grad: false,
        shape: vec![1, 1000],
        dtype: DType::Float,
    }])
}

#[test]
fn gradient_reductions_overlap_compute_until_the_step() {
    let data = Group {
        kind: GroupKind::Data,
        axes: vec!["dp".into()],
        ranks: (0..8).collect(),
    };
    // Ring all-reduce of 1.6 GB over 8 GPUs on NVLink: 2 x 7/8 x 1.6e9 /
    // 450e9 = 6.2 ms, hidden behind 10 ms of backward or not at all.
    let reduce = Instr::Collective(Collective {
        kind: CollectiveKind::AllReduce,
        group: 0,
        dtype: DType::Float,
        elems: 800_000_000,
        dim: None,
        purpose: Purpose::Gradients(vec![0]),
    });
    let t = collective_time(
        CollectiveKind::AllReduce,
        1.6e9,
        8,
        Cluster::default().nvlink,
    );
    let hidden = vec![bwd(0, 0.001), reduce.clone(), bwd(0, 0.010), Instr::Step];
    let exposed = vec![bwd(0, 0.011), reduce, Instr::Step];
    let g = tiny();
    let e = estimate(
        &g,
        &plan(vec![data.clone()], vec![(0, 0, hidden)]),
        &Cluster::default(),
    );
    assert!(close(e.step_s, 0.011));
    assert_eq!(e.stages[0].comm_exposed_s, 0.0);
    assert!(close(e.stages[0].comm_bytes[&GroupKind::Data], 2.8e9));
    let e = estimate(
        &g,
        &plan(vec![data], vec![(0, 0, exposed)]),
        &Cluster::default(),
    );
    assert!(close(e.stages[0].comm_exposed_s, t));
    assert!(close(e.step_s, 0.011 + t));
}

#[test]
fn a_receive_waits_for_its_send_and_the_wait_is_a_bubble() {
    let g = tiny();
    let p = plan(
        Vec::new(),
        vec![
            (0, 0, vec![fwd(0, 0.002, true, false), transfer(true, 1)]),
            (1, 1, vec![transfer(false, 0), fwd(0, 0.003, true, false)]),
        ],
    );
    let e = estimate(&g, &p, &Cluster::default());
    let hop = p2p_time(2000.0, Cluster::default().nvlink);
    assert!(close(e.step_s, 0.005 + hop), "{}", e.step_s);
    let last = &e.stages[1];
    assert!(close(last.bubble_s, 0.002));
    // Every stage's time adds up to the step.
    for s in &e.stages {
        assert!(close(s.compute_s + s.comm_exposed_s + s.bubble_s, e.step_s));
    }
    assert!(e.notes.is_empty());
    // Without the sender the receive can never complete: the estimate
    // still ends, and says so.
    let p = plan(
        Vec::new(),
        vec![(1, 1, vec![transfer(false, 0)]), (0, 0, vec![])],
    );
    assert_eq!(estimate(&g, &p, &Cluster::default()).notes.len(), 1);
}

#[test]
fn activations_live_as_the_program_says() {
    let g = tiny();
    let out = 2000.0;
    // Two micro-batches in flight, saved: both outputs live at once,
    // plus the backward's two gradients.
    let ops = vec![
        fwd(0, 0.0, true, false),
        fwd(1, 0.0, true, false),
        bwd(0, 0.0),
        bwd(1, 0.0),
    ];
    let m = memory(
        &g,
        &plan(Vec::new(), Vec::new()),
        &plan(Vec::new(), vec![(0, 0, ops)]).ranks[0],
    );
    assert_eq!(m.activations, 4.0 * out);
    // Unsaved outputs (a checkpointed block) are transient, and their
    // recomputation lives until its backward.
    let ops = vec![
        fwd(0, 0.0, false, false),
        fwd(1, 0.0, false, false),
        fwd(0, 0.0, true, true),
        bwd(0, 0.0),
        fwd(1, 0.0, true, true),
        bwd(1, 0.0),
    ];
    let p = plan(Vec::new(), vec![(0, 0, ops)]);
    let m = memory(&g, &p, &p.ranks[0]);
    assert_eq!(m.activations, 3.0 * out);
    assert_eq!(m.total, m.activations);
}

fn example(name: &str) -> (Graph, Layout) {
    let x = crate::testing::example(name);
    (x.graph, Layout::of(&x.parallel).unwrap())
}

/// `dp x pp x tp` with tensor parallelism fastest.
fn layout(dp: usize, pp: usize, tp: usize, zero: u8, microbatches: usize) -> Layout {
    let mut l = Layout::single();
    let axes = [("dp", dp), ("pp", pp), ("tp", tp)];
    l.mesh = crate::plan::Mesh::new(
        axes.iter()
            .map(|(n, s)| crate::plan::Axis {
                name: n.to_string(),
                size: *s,
            })
            .collect(),
    )
    .unwrap();
    let one = |a: &str| vec![a.to_string()];
    (l.data, l.tensor, l.pipeline) = (one("dp"), one("tp"), one("pp"));
    (l.zero, l.zero_axes, l.microbatches) = (zero, one("dp"), microbatches);
    l.mapped.insert("batch".into(), one("dp"));
    l.mapped.insert("layers".into(), one("pp"));
    for d in ["heads", "kv_heads", "ffn"] {
        l.mapped.insert(d.into(), one("tp"));
    }
    l
}

fn run(g: &Graph, l: &Layout) -> Estimate {
    let reps = crate::plan::lower::representatives(l);
    let plan = crate::plan::lower::lower(g, l, Some(&reps)).unwrap();
    let e = estimate(g, &plan, &Cluster::default());
    assert!(e.notes.is_empty(), "{:?}", e.notes);
    e
}

#[test]
fn enigma_1b_as_written() {
    let (g, l) = example("enigma_1b.enigma");
    let e = run(&g, &l);
    assert_eq!((e.tokens_per_sample, e.global_batch), (12_572, 512));
    let s = &e.stages[0];
    // The model state of `docs/planner.md`'s hand derivation.
    let m = s.memory;
    assert_eq!(m.params + m.grads + m.optimizer, 2_125_230_080.0);
    // `docs/cost-model.md`'s worked example, in bf16 but for the f32
    // windows. Saved: the 21 block boundaries, the final norm's output, the
    // tokenizers' outputs, the windows, the readout and loss. Live at the
    // peak, the backward of the last block's SwiGLU product: the block's
    // recomputed outputs (21 boundaries' worth) and two gradients of the
    // product. Buffers: two gathers and two buckets of one block's weights.
    let boundary = 8.0 * 12_572.0 * 2_048.0 * 2.0;
    // The token mask of the masked-modelling loss is one byte per (window,
    // step, neuron).
    let mask = 65_536.0;
    let saved = 22.0 * boundary + 1_806_172_160.0 + 71_048_704.0 + 1_980_424.0 + mask;
    let peak = saved + 21.0 * boundary + 2.0 * 2.75 * boundary;
    assert_eq!((m.activations, peak), (21_859_292_680.0, 21_859_292_680.0));
    assert_eq!(m.buffers, 4.0 * 51_384_320.0 * 2.0);
    assert_eq!(m.total, 24_395_597_320.0);
    assert!(e.fits && m.total < l.device_memory);
    assert!((e.step_s - 3.3508).abs() < 1e-4, "{}", e.step_s);
    assert!((s.recompute_s - 0.8369).abs() < 1e-4, "{}", s.recompute_s);
    // Recomputation adds a third to the model FLOPs, so MFU stays under
    // three quarters of the achievable fraction; ZeRO-3 moves weights
    // within the node and gradient shards across nodes.
    assert!(e.mfu > 0.3 && e.mfu < 0.75 * 0.5, "{}", e.mfu);
    assert!(s.recompute_s > 0.2 * s.compute_s);
    assert!(s.comm_bytes[&GroupKind::Zero] > s.comm_bytes[&GroupKind::Replica]);
    assert!(close(s.compute_s + s.comm_exposed_s + s.bubble_s, e.step_s));
    assert!(e.tokens_per_s > 0.0 && e.notes.is_empty());
}

#[test]
fn checkpointing_and_zero_3_shrink_enigma_1b_memory() {
    let (g, _) = example("enigma_1b.enigma");
    let mut l = layout(64, 1, 1, 3, 1);
    l.checkpoint_activations = true;
    let with = run(&g, &l);
    l.checkpoint_activations = false;
    let without = run(&g, &l);
    let (a, b) = (with.stages[0].memory, without.stages[0].memory);
    assert!(a.activations < b.activations / 2.0);
    assert!(!without.fits && with.fits);
    assert!(with.stages[0].recompute_s > 0.0 && without.stages[0].recompute_s == 0.0);
    let state = |m: MemoryCost| m.params + m.grads + m.optimizer;
    let zero0 = run(&g, &layout(64, 1, 1, 0, 1)).stages[0].memory;
    assert!(state(b) * 10.0 < state(zero0));
}

#[test]
fn more_micro_batches_shrink_the_1f1b_bubble() {
    let (g, _) = example("gpt2_small.enigma");
    // The bubble of the busiest stage (the last: it runs the head over
    // the 50,257-word vocabulary), and the step.
    let bubble = |m: usize| {
        let e = run(&g, &layout(1, 4, 1, 0, m));
        assert_eq!(e.stages.len(), 4);
        for s in &e.stages {
            assert!(close(s.compute_s + s.comm_exposed_s + s.bubble_s, e.step_s));
            assert!(s.p2p_bytes > 0.0);
        }
        let busiest = e
            .stages
            .iter()
            .max_by(|a, b| a.compute_s.total_cmp(&b.compute_s));
        (busiest.map_or(0.0, |s| s.bubble_s), e.step_s)
    };
    let (few, many) = (bubble(4), bubble(32));
    assert!(many.0 * 4.0 < few.0 && many.1 < few.1, "{few:?} {many:?}");
}

#[test]
fn tensor_parallel_collectives_are_exposed_on_nvlink() {
    let (g, _) = example("gpt2_small.enigma");
    let e = run(&g, &layout(1, 1, 8, 0, 4));
    let s = &e.stages[0];
    assert!(s.comm_bytes[&GroupKind::Tensor] > 0.0 && s.comm_exposed_s > 0.0);
    assert_eq!(tokens_per_sample(&g), 1024);
}

/// Enigma-1B's 20 layers on 4 stages are nearly balanced, so 1F1B idles
/// each stage for the classic (p - 1) micro-batches' forward and backward.
#[test]
fn a_balanced_1f1b_pipeline_idles_p_minus_1_micro_batches() {
    let (g, _) = example("enigma_1b.enigma");
    let e = run(&g, &layout(16, 4, 1, 0, 32));
    for s in &e.stages {
        let per_micro_batch = s.compute_s / 32.0;
        let ratio = s.bubble_s / (3.0 * per_micro_batch);
        assert!((0.9..1.1).contains(&ratio), "stage {}: {ratio}", s.stage);
    }
}

/// A ZeRO-3 gather is prefetched during the previous layer's compute on a
/// stream of its own, so it does not queue behind a gradient reduction.
#[test]
fn parameter_gathers_prefetch_past_gradient_reductions() {
    let node = Group {
        kind: GroupKind::Zero,
        axes: vec!["gpu".into()],
        ranks: (0..8).collect(),
    };
    let collective = |elems, purpose| {
        Instr::Collective(Collective {
            kind: CollectiveKind::AllReduce,
            group: 0,
            dtype: DType::BF16,
            elems,
            dim: None,
            purpose,
        })
    };
    let gather = || {
        Instr::Collective(Collective {
            kind: CollectiveKind::AllGather,
            group: 0,
            dtype: DType::BF16,
            elems: 100_000_000,
            dim: None,
            purpose: Purpose::GatherParams(Vec::new()),
        })
    };
    let ops = vec![
        gather(),
        fwd(0, 0.010, true, false),
        collective(6_000_000_000, Purpose::Gradients(Vec::new())),
        gather(),
        fwd(0, 0.010, true, false),
        Instr::Step,
    ];
    let c = Cluster::default();
    let g_s = collective_time(CollectiveKind::AllGather, 2e8, 8, c.nvlink);
    let r_s = collective_time(CollectiveKind::AllReduce, 12e9, 8, c.nvlink);
    let e = estimate(&tiny(), &plan(vec![node], vec![(0, 0, ops)]), &c);
    // Only the first gather and the reduction's tail past the second
    // layer are exposed.
    let exposed = g_s + (r_s - 0.010);
    assert!(
        close(e.stages[0].comm_exposed_s, exposed),
        "{:?}",
        e.stages[0]
    );
    assert!(close(e.step_s, 0.020 + exposed));
}
