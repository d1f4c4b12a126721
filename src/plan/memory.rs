//! Model-state memory per rank: parameters, gradients and optimizer state.
//!
//! The convention is the ZeRO paper's (Rajbhandari et al. 2020) for AdamW:
//!
//! | precision | parameters | gradients | optimizer state |
//! | --- | --- | --- | --- |
//! | bf16 (mixed) | 2 B (bf16 copy) | 2 B | 12 B (fp32 master, m, v) |
//! | f32 | 4 B | 4 B | 8 B (m, v) |
//!
//! 16 bytes per parameter either way. A rank holds the parameters of its
//! pipeline stage and tensor-parallel shard (`shard.rs`); ZeRO stage 1
//! divides the optimizer state by the size of the ZeRO group, stage 2 the
//! gradients too, stage 3 the parameters too. Activations and
//! communication buffers are the cost model's (`cost/`).

use super::layout::Layout;
use super::shard::{shards, Placement};
use crate::ir::Graph;

/// Bytes of model state one rank holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelState {
    /// Parameters the rank holds (elements), before ZeRO sharding.
    pub params: f64,
    pub param_bytes: f64,
    pub grad_bytes: f64,
    pub optimizer_bytes: f64,
}

impl ModelState {
    pub fn total(&self) -> f64 {
        self.param_bytes + self.grad_bytes + self.optimizer_bytes
    }
}

/// The elements of every copy of a placement, `numel` each as placed. A
/// per-session table is placed at session 0's size once per session; when
/// the sessions have their own sizes of one of its dims
/// (`Graph::session_totals`), its copies hold that dim's total over the
/// sessions instead (such tables are never split, so `numel` is whole).
pub fn all_copies(g: &Graph, placement: &Placement, numel: i64) -> f64 {
    let per_session = g
        .params
        .get(placement.param)
        .filter(|p| p.per_session && !g.session_totals.is_empty());
    if let Some(p) = per_session {
        for (dim, &size) in p.ty.dims.iter().zip(&placement.shape) {
            let name = dim.name.to_string();
            if let Some((_, total)) = g.session_totals.iter().find(|(n, _)| *n == name) {
                if size > 0 {
                    return numel as f64 / size as f64 * *total as f64;
                }
            }
        }
    }
    (numel * placement.copies) as f64
}

/// The model state `rank` holds under `layout`.
pub fn model_state(
    g: &Graph,
    layout: &Layout,
    placements: &[Placement],
    rank: usize,
) -> ModelState {
    // A fold from +0: `f64`'s `sum` starts at -0, which a model with no
    // parameters would print as "-0.00 GB".
    let params: f64 = shards(layout, placements, rank)
        .iter()
        .map(|s| all_copies(g, &placements[s.placement], s.numel()))
        .fold(0.0, |a, b| a + b);
    let (p, gr, opt) = if g.float_bytes == 2 {
        (2.0, 2.0, 12.0)
    } else {
        (4.0, 4.0, 8.0)
    };
    let zero = layout.mesh.degree(&layout.zero_axes).unwrap_or(1).max(1) as f64;
    let by = |stage: u8| if layout.zero >= stage { zero } else { 1.0 };
    ModelState {
        params,
        param_bytes: params * p / by(3),
        grad_bytes: params * gr / by(2),
        optimizer_bytes: params * opt / by(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::shard::place;

    fn planned(example: &str) -> (Graph, Layout) {
        let x = crate::testing::example(example);
        (x.graph, Layout::of(&x.parallel).unwrap())
    }

    /// The hand derivation in `docs/planner.md`: Enigma-1B's 1,062,615,040
    /// parameters at 16 bytes each, ZeRO-3 over the 8 GPUs of a node.
    #[test]
    fn enigma_1b_model_state_matches_the_hand_derivation() {
        let (g, l) = planned("enigma_1b.enigma");
        let placements = place(&g, &l).unwrap();
        for rank in [0, 7, 63] {
            let m = model_state(&g, &l, &placements, rank);
            assert_eq!(m.params, 1_062_615_040.0);
            assert_eq!(m.param_bytes, 1_062_615_040.0 * 2.0 / 8.0);
            assert_eq!(m.grad_bytes, 1_062_615_040.0 * 2.0 / 8.0);
            assert_eq!(m.optimizer_bytes, 1_062_615_040.0 * 12.0 / 8.0);
            assert_eq!(m.total(), 2_125_230_080.0);
        }
    }

    /// GPT-2 small with ZeRO-1 over 8 GPUs: parameters and gradients whole,
    /// the optimizer state an eighth.
    #[test]
    fn zero_1_shards_only_the_optimizer_state() {
        let (g, l) = planned("gpt2_small.enigma");
        let placements = place(&g, &l).unwrap();
        let m = model_state(&g, &l, &placements, 3);
        let n = 124_439_808.0;
        assert_eq!((m.param_bytes, m.grad_bytes), (2.0 * n, 2.0 * n));
        assert_eq!(m.optimizer_bytes, 12.0 * n / 8.0);
    }

    #[test]
    fn a_model_without_parameters_holds_plus_zero_bytes() {
        let mut loader = crate::source::MemoryLoader::new();
        loader.insert("main.enigma", "dim d = 4\n");
        let x = crate::testing::checked(&loader, std::path::Path::new("main.enigma"))
            .experiment
            .unwrap();
        let l = Layout::of(&x.parallel).unwrap();
        let placements = place(&x.graph, &l).unwrap();
        let m = model_state(&x.graph, &l, &placements, 0);
        // Not -0, which prints as "-0.00 GB" in the plan.
        assert!(
            m.params == 0.0 && m.params.is_sign_positive(),
            "{}",
            m.params
        );
        assert!(m.param_bytes.is_sign_positive() && m.optimizer_bytes.is_sign_positive());
    }
}
