//! Lowering to per-rank programs, checked by its invariants on the
//! examples under layouts of 1 to 64 ranks: every plan passes
//! `plan::verify` (collectives agree across each group, sends meet
//! receives of the same shape, no deadlock, every parameter owned once per
//! replica), and the programs contain the communication each kind of
//! parallelism needs, and nothing it does not.

use std::path::Path;

use enigma::ir::layout::PipelineSchedule;
use enigma::ir::Graph;
use enigma::plan::lower::{lower, representatives, LowerError};
use enigma::plan::program::*;
use enigma::plan::search::candidate_layout;
use enigma::plan::verify::{verify, VerifyError};
use enigma::plan::Layout;

#[path = "common/checked.rs"]
mod checked;

fn example(name: &str) -> (Graph, Layout) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let x = checked::experiment(&path);
    (x.graph, Layout::of(&x.parallel).unwrap())
}

/// A layout over `dp x pp x tp` (tensor parallelism fastest) mapping
/// batch, layers and the attention and feed-forward dims.
fn layout(dp: usize, pp: usize, tp: usize, zero: u8, microbatches: usize) -> Layout {
    candidate_layout(&Layout::single(), dp, tp, pp, zero, microbatches, false).unwrap()
}

fn collectives(p: &RankProgram) -> impl Iterator<Item = &Collective> {
    p.ops.iter().filter_map(|op| match op {
        Instr::Collective(c) => Some(c),
        _ => None,
    })
}

fn plan_ok(g: &Graph, l: &Layout) -> Plan {
    let plan = lower(g, l, None).unwrap();
    if let Err(e) = verify(&plan) {
        panic!("{e}");
    }
    plan
}

#[test]
fn gpt2_plans_verify_on_1_to_64_ranks() {
    let (g, _) = example("gpt2_small.enigma");
    for (dp, pp, tp, zero, mb) in [
        (1, 1, 1, 0, 1),
        (2, 1, 1, 0, 1),
        (1, 1, 2, 0, 1),
        (1, 2, 1, 0, 4),
        (2, 1, 2, 1, 1),
        (1, 4, 2, 0, 8),
        (2, 2, 2, 2, 4),
        (8, 1, 1, 3, 1),
        (4, 4, 4, 1, 8),
        (8, 2, 4, 3, 4),
    ] {
        let l = layout(dp, pp, tp, zero, mb);
        let plan = plan_ok(&g, &l);
        assert_eq!(plan.ranks.len(), dp * pp * tp);
    }
    // Grouped-query attention (32 query, 4 key/value heads) and SwiGLU.
    let (g, _) = example("llama_style.enigma");
    plan_ok(&g, &layout(2, 2, 4, 1, 4));
    // Enigma-1B's tokenizers and per-session heads around the backbone.
    let (g, _) = example("enigma_1b.enigma");
    plan_ok(&g, &layout(4, 4, 4, 3, 4));
    // Both with sequence parallelism.
    for (name, l) in [
        ("llama_style.enigma", layout(2, 2, 4, 1, 4)),
        ("enigma_1b.enigma", layout(2, 2, 4, 2, 4)),
    ] {
        let (g, _) = example(name);
        let mut l = l;
        l.sequence_parallel = true;
        plan_ok(&g, &l);
    }
}

#[test]
fn the_examples_own_layouts_verify() {
    for name in [
        "gpt2_small.enigma",
        "enigma_1b.enigma",
        "llama_style.enigma",
        "vit_style.enigma",
        "quickstart.enigma",
    ] {
        let (g, l) = example(name);
        let plan = plan_ok(&g, &l);
        assert_eq!(plan.ranks.len(), l.mesh.size(), "{name}");
    }
}

#[test]
fn gpipe_and_1f1b_both_verify_and_differ_in_order() {
    let (g, _) = example("gpt2_small.enigma");
    let mut l = layout(1, 4, 1, 0, 8);
    let one = plan_ok(&g, &l);
    l.schedule = PipelineSchedule::GPipe;
    let gpipe = plan_ok(&g, &l);
    // Stage 0 under 1F1B starts a backward before its last forward; under
    // GPipe every forward comes first.
    let first_backward = |p: &RankProgram| {
        p.ops
            .iter()
            .position(|o| matches!(o, Instr::Backward { .. }))
            .unwrap()
    };
    let last_forward = |p: &RankProgram| {
        p.ops
            .iter()
            .rposition(|o| {
                matches!(
                    o,
                    Instr::Forward {
                        recompute: false,
                        ..
                    }
                )
            })
            .unwrap()
    };
    assert!(first_backward(&one.ranks[0]) < last_forward(&one.ranks[0]));
    assert!(first_backward(&gpipe.ranks[0]) > last_forward(&gpipe.ranks[0]));
}

/// Megatron's pattern: per layer and micro-batch, two all-reduces of the
/// activations forward (after attention's and the MLP's row-parallel
/// projections) and two of their gradients backward, each `[batch, span,
/// d]` on the tensor group.
#[test]
fn tensor_parallel_layers_all_reduce_twice_each_way() {
    let (g, _) = example("gpt2_small.enigma");
    let l = layout(1, 1, 4, 0, 1);
    let plan = plan_ok(&g, &l);
    let p = &plan.ranks[0];
    let tensor_group = |c: &Collective| plan.groups[c.group].kind == GroupKind::Tensor;
    let forward = collectives(p)
        .filter(|c| tensor_group(c) && matches!(c.purpose, Purpose::Forward(_)))
        .collect::<Vec<_>>();
    let backward = collectives(p)
        .filter(|c| tensor_group(c) && matches!(c.purpose, Purpose::Backward(_)))
        .count();
    let layers = 12;
    assert_eq!(forward.len(), 2 * layers, "forward: {forward:?}");
    assert!(forward.iter().all(|c| c.kind == CollectiveKind::AllReduce));
    let micro = plan.micro_batch;
    assert!(forward.iter().all(|c| c.elems == micro * 1024 * 768));
    // Each layer's two column-parallel inputs (attention's and the MLP's).
    assert_eq!(backward, 2 * layers);
    // The local attention output holds 12 / 4 heads.
    let attention = p
        .ops
        .iter()
        .find_map(|o| match o {
            Instr::Forward { node, shape, .. }
                if matches!(g.nodes[*node].op, enigma::ir::Op::Attention { .. }) =>
            {
                Some(shape.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(attention, [micro, 1024, 3, 64]);
}

#[test]
fn data_parallel_gradients_are_bucketed_in_reverse_layer_order() {
    let (g, _) = example("gpt2_small.enigma");
    let mut l = layout(8, 1, 1, 0, 1);
    l.bucket = 25e6;
    let plan = plan_ok(&g, &l);
    let p = &plan.ranks[0];
    let buckets: Vec<&Collective> = collectives(p)
        .filter(|c| matches!(c.purpose, Purpose::Gradients(_)))
        .collect();
    assert!(buckets.iter().all(|c| c.kind == CollectiveKind::AllReduce));
    // Every parameter's gradient reduced exactly once.
    let total: i64 = buckets.iter().map(|c| c.elems).sum();
    assert_eq!(total, 124_439_808);
    // At most 25 MB of bf16 gradients per bucket, except a single tensor
    // larger than that (the 50,257 x 768 embedding, 77 MB).
    assert!(buckets.iter().all(|c| c.elems * 2 <= 25_000_000
        || match &c.purpose {
            Purpose::Gradients(ps) => ps.len() == 1,
            _ => false,
        }));
    // Reverse layer order: the first bucket holds the last layer.
    let layer_of = |c: &Collective| match &c.purpose {
        Purpose::Gradients(ps) => ps.iter().filter_map(|&k| plan.placements[k].layer).max(),
        _ => None,
    };
    let layers: Vec<usize> = buckets.iter().filter_map(|c| layer_of(c)).collect();
    assert!(layers.windows(2).all(|w| w[0] >= w[1]), "{layers:?}");
    assert_eq!(layers.first(), Some(&11));
    // Buckets interleave with the backward pass (they overlap it).
    let first_bucket = p
        .ops
        .iter()
        .position(
            |o| matches!(o, Instr::Collective(c) if matches!(c.purpose, Purpose::Gradients(_))),
        )
        .unwrap();
    let last_backward = p
        .ops
        .iter()
        .rposition(|o| matches!(o, Instr::Backward { .. }))
        .unwrap();
    assert!(first_bucket < last_backward);
}

#[test]
fn zero_stages_emit_their_collectives() {
    let (g, _) = example("gpt2_small.enigma");
    let kinds = |zero: u8| {
        let plan = plan_ok(&g, &layout(4, 1, 1, zero, 2));
        let p = plan.ranks[1].clone();
        let count = |f: &dyn Fn(&Collective) -> bool| collectives(&p).filter(|c| f(c)).count();
        (
            count(&|c| matches!(c.purpose, Purpose::GatherParams(_))),
            count(&|c| c.kind == CollectiveKind::ReduceScatter),
            count(&|c| matches!(c.purpose, Purpose::UpdatedParams(_))),
            p.params.iter().all(|lp| lp.zero_slice.is_some()),
        )
    };
    let (gathers, scatters, updates, sliced) = kinds(0);
    assert_eq!((gathers, scatters, updates, sliced), (0, 0, 0, false));
    let (gathers, scatters, updates, sliced) = kinds(1);
    assert!(gathers == 0 && scatters == 0 && updates > 0 && sliced);
    let (gathers, scatters, updates, _) = kinds(2);
    assert!(gathers == 0 && scatters > 0 && updates > 0);
    // ZeRO-3 gathers each layer before its forward and before its
    // backward, in each of the 2 micro-batches, and never after the step.
    let (gathers, scatters, updates, _) = kinds(3);
    assert!(gathers >= 2 * 2 * 12, "{gathers}");
    assert!(scatters > 0 && updates == 0);
}

#[test]
fn pipeline_stages_exchange_activations_and_gradients() {
    let (g, _) = example("gpt2_small.enigma");
    let plan = plan_ok(&g, &layout(1, 4, 1, 0, 4));
    let transfers = |p: &RankProgram| -> Vec<Transfer> {
        p.ops
            .iter()
            .filter_map(|o| match o {
                Instr::P2p(ts) => Some(ts.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let first = transfers(&plan.ranks[0]);
    // Stage 0 sends the residual stream of each of 4 micro-batches to
    // stage 1 and receives its gradient back.
    let sent: Vec<&Transfer> = first.iter().filter(|t| t.send && !t.grad).collect();
    assert_eq!(sent.len(), 4);
    assert!(sent
        .iter()
        .all(|t| t.peer == 1 && t.shape == [plan.micro_batch, 1024, 768]));
    assert_eq!(first.iter().filter(|t| !t.send && t.grad).count(), 4);
    // The tied embedding is summed across the first and last stage.
    let tied: Vec<&Group> = plan
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Tied)
        .collect();
    assert_eq!(tied.len(), 1);
    assert_eq!(tied[0].ranks, [0, 3]);
    // Representatives: one rank per stage.
    assert_eq!(representatives(&plan.layout), [0, 1, 2, 3]);
}

#[test]
fn checkpointing_recomputes_each_layer_once_per_micro_batch() {
    let (g, _) = example("gpt2_small.enigma");
    let mut l = layout(1, 1, 1, 0, 2);
    let plain = plan_ok(&g, &l);
    l.checkpoint_activations = true;
    let ckpt = plan_ok(&g, &l);
    let forwards = |p: &Plan, recompute: bool| {
        p.ranks[0]
            .ops
            .iter()
            .filter(|o| matches!(o, Instr::Forward { recompute: r, .. } if *r == recompute))
            .count()
    };
    assert_eq!(forwards(&plain, true), 0);
    let body = g.nodes.len(); // an upper bound on nodes per layer
    let recomputed = forwards(&ckpt, true);
    assert!(recomputed > 0 && recomputed < 2 * 12 * body);
    // Only the layers' outputs stay saved from the first forward.
    let saved_layer_outputs = ckpt.ranks[0]
        .ops
        .iter()
        .filter(|o| {
            matches!(
                o,
                Instr::Forward {
                    recompute: false,
                    saved: false,
                    ..
                }
            )
        })
        .count();
    assert!(saved_layer_outputs > 0);
}

#[test]
fn broken_plans_are_caught() {
    let (g, _) = example("gpt2_small.enigma");
    let l = layout(2, 2, 1, 0, 2);
    // A collective with a different size on one rank.
    let mut plan = lower(&g, &l, None).unwrap();
    let op = plan.ranks[3].ops.iter_mut().find_map(|o| match o {
        Instr::Collective(c) => Some(c),
        _ => None,
    });
    op.unwrap().elems += 1;
    assert!(matches!(verify(&plan), Err(VerifyError::Mismatch { .. })));
    // Two batched transfers swapped on one rank: a deadlock.
    let mut plan = lower(&g, &l, None).unwrap();
    let p2p: Vec<usize> = plan.ranks[1]
        .ops
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Instr::P2p(_)))
        .map(|(i, _)| i)
        .collect();
    plan.ranks[1].ops.swap(p2p[0], p2p[p2p.len() - 1]);
    assert!(
        matches!(verify(&plan), Err(VerifyError::Deadlock { .. })),
        "{:?}",
        verify(&plan)
    );
    // A receive whose shape disagrees with the send.
    let mut plan = lower(&g, &l, None).unwrap();
    for o in plan.ranks[1].ops.iter_mut() {
        if let Instr::P2p(ts) = o {
            for t in ts.iter_mut().filter(|t| !t.send) {
                t.shape[0] += 1;
            }
        }
    }
    assert!(matches!(verify(&plan), Err(VerifyError::Shape { .. })));
    // A plan of representatives only is not verifiable.
    let plan = lower(&g, &l, Some(&[0])).unwrap();
    assert_eq!(verify(&plan), Err(VerifyError::Partial));
}

#[test]
fn unsupported_settings_are_refused() {
    let (g, _) = example("gpt2_small.enigma");
    let mut l = layout(1, 2, 1, 0, 2);
    l.schedule = PipelineSchedule::Interleaved;
    assert!(matches!(
        lower(&g, &l, None),
        Err(LowerError::Unsupported(_))
    ));
    // 512 sequences do not split into 3 replicas.
    let l = layout(3, 1, 1, 0, 1);
    assert!(matches!(lower(&g, &l, None), Err(LowerError::Batch { .. })));
}

/// Sequence parallelism (Korthikanti et al. 2022): per layer and
/// micro-batch, the two all-reduces become reduce-scatters along the
/// sequence and the inputs of the column-parallel projections are
/// all-gathered once each (attention's three share one); backward mirrors
/// them. The norms run on sequence shards, so their gains' gradients are
/// summed over the tensor group before the step.
#[test]
fn sequence_parallel_layers_scatter_and_gather_along_the_sequence() {
    let (g, _) = example("gpt2_small.enigma");
    let mut l = layout(2, 2, 4, 1, 4);
    l.sequence_parallel = true;
    let plan = plan_ok(&g, &l);
    let p = &plan.ranks[0];
    let tensor = |c: &Collective| plan.groups[c.group].kind == GroupKind::Tensor;
    let count = |kind: CollectiveKind, forward: bool| {
        collectives(p)
            .filter(|c| tensor(c) && c.kind == kind)
            .filter(|c| matches!(c.purpose, Purpose::Forward(_)) == forward)
            .filter(|c| !matches!(c.purpose, Purpose::Gradients(_)))
            .count()
    };
    // Stage 0 holds 6 layers; 4 micro-batches.
    let runs = 6 * 4;
    assert_eq!(count(CollectiveKind::AllReduce, true), 0);
    assert_eq!(count(CollectiveKind::ReduceScatter, true), 2 * runs);
    assert_eq!(count(CollectiveKind::AllGather, true), 2 * runs);
    // Backward: the scattered outputs' gradients gathered, the gathered
    // inputs' gradients scattered, and, per micro-batch, the gradients of
    // the first layer's two narrowings of the whole embedding output (its
    // first norm and its residual) gathered back to the whole.
    assert_eq!(count(CollectiveKind::ReduceScatter, false), 2 * runs);
    assert_eq!(count(CollectiveKind::AllGather, false), 2 * runs + 2 * 4);
    // Activations between the blocks hold a quarter of the sequence.
    let micro = plan.micro_batch;
    let sends: Vec<&Transfer> = p
        .ops
        .iter()
        .filter_map(|o| match o {
            Instr::P2p(ts) => Some(ts),
            _ => None,
        })
        .flatten()
        .filter(|t| t.send && !t.grad)
        .collect();
    assert!(!sends.is_empty());
    assert!(sends.iter().all(|t| t.shape == [micro, 256, 768]));
    // The first layer narrows the whole embedding output.
    assert!(p
        .ops
        .iter()
        .any(|o| matches!(o, Instr::Forward { copy: 0, narrow, .. } if !narrow.is_empty())));
    // Norm gains and biases: gradients summed over the tensor group.
    let norms = collectives(p)
        .filter(|c| tensor(c) && matches!(c.purpose, Purpose::Gradients(_)))
        .count();
    assert!(norms >= 6 * 4, "{norms}");
}
