//! Where every parameter lives: pipeline stage and tensor-parallel split.
//!
//! A parameter is *placed* once per copy the model has of it: once per
//! layer of the `repeat` that pipeline stages split (layer `l` of `L` goes
//! to stage `l * S / L`), once otherwise (on the first stage if the model
//! uses it before its repeated layers, else on the last). Within a stage,
//! tensor parallelism splits dims of a parameter evenly over the tensor
//! axes:
//!
//! - a dim named by a logical dim the layout maps (`vocab -> tp` splits the
//!   rows of an embedding table and of an output head);
//! - the output dim of a `Linear` with `split: "column"` and of its bias,
//!   the input dim of one with `split: "row"` (Megatron's pairs; the
//!   standard library marks attention and feed-forward projections).
//!
//! Everything else is replicated over the tensor axes. Data-parallel
//! replicas hold the same shards (ZeRO's further sharding over the data
//! axes is the lowering's business). The tests check that the shards of
//! every replica tile every parameter exactly once.

use std::fmt;

use super::layout::Layout;
use crate::ir::Graph;

/// One copy of a parameter and how it is laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub param: usize,
    /// The layer of the pipelined `repeat` this copy belongs to.
    pub layer: Option<usize>,
    pub stage: usize,
    /// Per dim of the parameter: the mesh axes it is split over.
    pub split: Vec<Vec<String>>,
    /// The size of each dim.
    pub shape: Vec<i64>,
    /// Further copies inside this one (a nested `repeat`, or one per session
    /// for a per-session table), all placed alike.
    pub copies: i64,
}

/// The part of a placement one rank holds: a half-open range per dim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub placement: usize,
    pub ranges: Vec<(i64, i64)>,
    /// Whether this rank owns the shard among the tensor-parallel ranks
    /// that hold the same part (the first of them): a parameter replicated
    /// over the tensor axes is held by each but owned by one, which is the
    /// one that counts it.
    pub owner: bool,
}

impl Shard {
    pub fn numel(&self) -> i64 {
        self.ranges.iter().map(|(a, b)| b - a).product()
    }
}

/// Why parameters cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// A parameter's size depends on data not bound at compile time.
    Symbolic { param: String, size: String },
    /// A split dim does not divide by its degree (E0220 reports these in
    /// `enigma check`; a planner called directly still refuses them).
    Indivisible {
        param: String,
        dim: usize,
        size: i64,
        degree: usize,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Symbolic { param, size } => write!(
                f,
                "the size of `{param}` is `{size}`, known only once the data binds it"
            ),
            PlanError::Indivisible {
                param,
                dim,
                size,
                degree,
            } => {
                write!(
                    f,
                    "dim {dim} of `{param}` ({size}) does not split into {degree} equal shards"
                )
            }
        }
    }
}

impl std::error::Error for PlanError {}

/// Places every parameter of `g` under `layout`.
pub fn place(g: &Graph, layout: &Layout) -> Result<Vec<Placement>, PlanError> {
    let stages = layout.stages();
    // The outermost `repeat` body is what pipeline stages split.
    let pipelined = g.scopes.iter().position(|s| s.repeat > 1);
    let first_pipelined_node =
        pipelined.and_then(|p| g.nodes.iter().position(|n| g.within(n.scope, p)));
    let mut out = Vec::new();
    for (i, p) in g.params.iter().enumerate() {
        let shape =
            p.ty.dims
                .iter()
                .map(|d| {
                    let s = d.size_or_name();
                    s.as_const().ok_or_else(|| PlanError::Symbolic {
                        param: p.path.clone(),
                        size: s.to_string(),
                    })
                })
                .collect::<Result<Vec<i64>, _>>()?;
        let split = splits(g, layout, i);
        for (dim, axes) in split.iter().enumerate() {
            let degree = layout.mesh.degree(axes).unwrap_or(1);
            if degree > 1 && shape[dim] % degree as i64 != 0 {
                return Err(PlanError::Indivisible {
                    param: p.path.clone(),
                    dim,
                    size: shape[dim],
                    degree,
                });
            }
        }
        // A per-session table exists once per session, on every rank that
        // holds the layer.
        let sessions = if p.per_session {
            g.sessions.unwrap_or(1).max(1)
        } else {
            1
        };
        let total = g.multiplicity(p.scope).saturating_mul(sessions);
        match pipelined.filter(|&r| g.within(p.scope, r)) {
            Some(r) => {
                let layers = g.scopes[r].repeat.max(1);
                let copies = (total / layers).max(1);
                for l in 0..layers {
                    let stage = (l as usize * stages) / layers as usize;
                    out.push(Placement {
                        param: i,
                        layer: Some(l as usize),
                        stage,
                        split: split.clone(),
                        shape: shape.clone(),
                        copies,
                    });
                }
            }
            None => {
                let first_use = g
                    .nodes
                    .iter()
                    .position(|n| n.inputs.contains(&crate::ir::ValueRef::Param(i)));
                let stage = match (first_use, first_pipelined_node) {
                    (Some(u), Some(f)) if u > f => stages - 1,
                    _ => 0,
                };
                out.push(Placement {
                    param: i,
                    layer: None,
                    stage,
                    split,
                    shape,
                    copies: total.max(1),
                });
            }
        }
    }
    Ok(out)
}

/// What tensor parallelism splits of parameter `i` under `layout`: the
/// rule the checker also enforces (`crate::ir::split`).
fn splits(g: &Graph, layout: &Layout, i: usize) -> Vec<Vec<String>> {
    crate::ir::split::param_splits(g, i, &layout.mapped, &layout.tensor, layout.tensor_degree())
}

/// The dim of each parameter that tensor parallelism splits, if any (all
/// copies of a parameter split alike, so its first placement says).
pub fn split_dims(params: usize, placements: &[Placement]) -> Vec<Option<usize>> {
    let mut out: Vec<Option<Option<usize>>> = vec![None; params];
    for pl in placements {
        if let Some(x @ None) = out.get_mut(pl.param) {
            *x = Some(pl.split.iter().position(|a| !a.is_empty()));
        }
    }
    out.into_iter().map(Option::flatten).collect()
}

/// The shards `rank` holds.
pub fn shards(layout: &Layout, placements: &[Placement], rank: usize) -> Vec<Shard> {
    let mesh = &layout.mesh;
    let coords = mesh.coords(rank);
    let index_on = |axes: &[String]| -> usize {
        // The rank's position within its group over `axes`, row-major.
        let mut idx = 0;
        for (i, a) in mesh.axes().iter().enumerate() {
            if axes.contains(&a.name) {
                idx = idx * a.size + coords[i];
            }
        }
        idx
    };
    let stage = index_on(&layout.pipeline);
    placements
        .iter()
        .enumerate()
        .filter(|(_, p)| p.stage == stage)
        .map(|(k, p)| {
            let ranges = p
                .shape
                .iter()
                .zip(&p.split)
                .map(|(&n, axes)| {
                    let degree = mesh.degree(axes).unwrap_or(1).max(1) as i64;
                    let part = n / degree;
                    let at = index_on(axes) as i64;
                    (at * part, (at + 1) * part)
                })
                .collect();
            // Tensor axes no dim is split over replicate the shard.
            let replicated: Vec<String> = layout
                .tensor
                .iter()
                .filter(|a| !p.split.iter().any(|s| s.contains(a)))
                .cloned()
                .collect();
            Shard {
                placement: k,
                ranges,
                owner: index_on(&replicated) == 0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::mesh::{Axis, Mesh};

    fn graph(example: &str) -> Graph {
        crate::testing::example(example).graph
    }

    /// A layout over `axes` (slowest first) with data, tensor and pipeline
    /// parallelism on the named axes.
    fn layout(axes: &[(&str, usize)], data: &str, tensor: &str, pipeline: &str) -> Layout {
        let mut l = Layout::single();
        l.mesh = Mesh::new(
            axes.iter()
                .map(|(n, s)| Axis {
                    name: n.to_string(),
                    size: *s,
                })
                .collect(),
        )
        .unwrap();
        let on = |a: &str| {
            if a.is_empty() {
                Vec::new()
            } else {
                vec![a.to_string()]
            }
        };
        l.data = on(data);
        l.tensor = on(tensor);
        l.pipeline = on(pipeline);
        if !tensor.is_empty() {
            // Not `vocab`: GPT-2's 50,257 rows do not split evenly (real
            // implementations pad them to 50,304).
            for d in ["heads", "kv_heads", "ffn"] {
                l.mapped.insert(d.to_string(), on(tensor));
            }
        }
        if !pipeline.is_empty() {
            l.mapped.insert("layers".to_string(), on(pipeline));
        }
        l
    }

    /// The shards every replica owns tile every placement exactly once.
    fn tiles_exactly(g: &Graph, l: &Layout) {
        let placements = place(g, l).unwrap();
        let replicas = l
            .mesh
            .groups(
                &l.tensor
                    .iter()
                    .chain(&l.pipeline)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(replicas.len(), l.data_degree().max(1));
        for replica in replicas {
            let mut held: Vec<Vec<Vec<(i64, i64)>>> = vec![Vec::new(); placements.len()];
            for &rank in &replica {
                for s in shards(l, &placements, rank).into_iter().filter(|s| s.owner) {
                    held[s.placement].push(s.ranges);
                }
            }
            for (k, p) in placements.iter().enumerate() {
                let numel: i64 = p.shape.iter().product();
                let covered: i64 = held[k]
                    .iter()
                    .map(|r| r.iter().map(|(a, b)| b - a).product::<i64>())
                    .sum();
                assert_eq!(
                    covered, numel,
                    "placement {k} ({}) covered once",
                    g.params[p.param].path
                );
                // No two shards of one placement overlap.
                for (x, a) in held[k].iter().enumerate() {
                    for b in &held[k][x + 1..] {
                        let overlap = a
                            .iter()
                            .zip(b)
                            .all(|((a0, a1), (b0, b1))| a0.max(b0) < a1.min(b1));
                        assert!(!overlap, "shards of {} overlap", g.params[p.param].path);
                    }
                }
            }
        }
    }

    #[test]
    fn shards_tile_every_parameter_on_1_to_64_ranks() {
        let g = graph("gpt2_small.enigma");
        tiles_exactly(&g, &layout(&[("gpu", 1)], "gpu", "", ""));
        tiles_exactly(&g, &layout(&[("tp", 2)], "", "tp", ""));
        tiles_exactly(&g, &layout(&[("stage", 2), ("tp", 2)], "", "tp", "stage"));
        tiles_exactly(
            &g,
            &layout(&[("dp", 2), ("stage", 2), ("tp", 2)], "dp", "tp", "stage"),
        );
        tiles_exactly(
            &g,
            &layout(&[("dp", 8), ("stage", 2), ("tp", 4)], "dp", "tp", "stage"),
        );
        let g = graph("enigma_1b.enigma");
        tiles_exactly(
            &g,
            &layout(&[("dp", 8), ("stage", 4), ("tp", 2)], "dp", "tp", "stage"),
        );
    }

    #[test]
    fn megatron_pairs_split_columns_then_rows() {
        let g = graph("gpt2_small.enigma");
        let l = layout(&[("tp", 4)], "", "tp", "");
        let placements = place(&g, &l).unwrap();
        let split_of = |suffix: &str| {
            let p = placements
                .iter()
                .find(|p| g.params[p.param].path.ends_with(suffix))
                .unwrap();
            p.split.iter().map(|a| !a.is_empty()).collect::<Vec<bool>>()
        };
        assert_eq!(split_of("attn.q_proj.w"), [true, false]);
        assert_eq!(split_of("attn.k_proj.bias.b"), [true]);
        assert_eq!(split_of("attn.c_proj.w"), [false, true]);
        assert_eq!(split_of("attn.c_proj.bias.b"), [false]);
        assert_eq!(split_of("c_fc.w"), [true, false]);
        // Norms and the (unmapped) vocabulary stay whole.
        assert_eq!(split_of("ln_1.weight"), [false]);
        assert_eq!(split_of("wte.table"), [false, false]);
    }

    #[test]
    fn a_mapped_vocabulary_splits_embedding_and_head_rows() {
        let g = graph("llama_style.enigma");
        let mut l = layout(&[("tp", 4)], "", "tp", "");
        l.mapped.insert("vocab".to_string(), vec!["tp".to_string()]);
        let placements = place(&g, &l).unwrap();
        for suffix in ["embed.table", "linear_head.linear.w"] {
            let p = placements
                .iter()
                .find(|p| g.params[p.param].path.ends_with(suffix))
                .unwrap();
            assert_eq!(p.split[0], ["tp"], "{suffix}");
        }
        tiles_exactly(&g, &l);
        // GPT-2's vocabulary does not divide by 4.
        let g = graph("gpt2_small.enigma");
        assert!(matches!(place(&g, &l), Err(PlanError::Indivisible { .. })));
    }

    #[test]
    fn pipeline_stages_take_consecutive_layers() {
        let g = graph("gpt2_small.enigma");
        let l = layout(&[("stage", 4)], "", "", "stage");
        let placements = place(&g, &l).unwrap();
        let stages_of = |suffix: &str| -> Vec<usize> {
            placements
                .iter()
                .filter(|p| g.params[p.param].path.ends_with(suffix))
                .map(|p| p.stage)
                .collect()
        };
        // 12 layers over 4 stages: 3 each, in order.
        assert_eq!(
            stages_of("attn.v_proj.w"),
            [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
        );
        // Embeddings before the stack go first; the final norm goes last.
        assert_eq!(stages_of("wte.table"), [0]);
        assert_eq!(stages_of("ln_f.weight"), [3]);
        // Every rank's parameters add up to the model's.
        let total: i64 = (0..4)
            .flat_map(|r| shards(&l, &placements, r))
            .map(|s| s.numel() * placements[s.placement].copies)
            .sum();
        assert_eq!(total, 124_439_808);
    }

    #[test]
    fn unbound_sizes_are_refused() {
        let g = graph("suite2p_calcium.enigma");
        let err = place(&g, &Layout::single()).unwrap_err();
        assert!(matches!(err, PlanError::Symbolic { .. }), "{err}");
    }

    /// The shards of a Megatron MLP pair, computed rank by rank and summed
    /// (the all-reduce after the row-parallel layer), equal the unsharded
    /// layer: checked numerically on GPT-2's first feed-forward block with
    /// 4-way tensor parallelism, in f64.
    #[test]
    fn tensor_parallel_mlp_shards_compose_to_the_whole_layer() {
        let g = graph("gpt2_small.enigma");
        let l = layout(&[("tp", 4)], "", "tp", "");
        let placements = place(&g, &l).unwrap();
        let find = |suffix: &str| {
            placements
                .iter()
                .position(|p| p.layer.unwrap_or(0) == 0 && g.params[p.param].path.ends_with(suffix))
                .unwrap()
        };
        let (fc, proj) = (find("ff.c_fc.w"), find("ff.c_proj.w"));
        let (ffn, d) = (
            placements[fc].shape[0] as usize,
            placements[fc].shape[1] as usize,
        );
        assert_eq!(placements[proj].shape, [d as i64, ffn as i64]);
        // Deterministic pseudo-random weights and two tokens.
        let mut seed: u64 = 42;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let w1: Vec<f64> = (0..ffn * d).map(|_| next()).collect(); // [ffn, d]
        let w2: Vec<f64> = (0..d * ffn).map(|_| next()).collect(); // [d, ffn]
        let x: Vec<f64> = (0..2 * d).map(|_| next()).collect(); // [2, d]
        let relu = |v: f64| v.max(0.0);
        // y = relu(x w1^T) w2^T over hidden units `lo..hi`.
        let partial = |lo: usize, hi: usize| -> Vec<f64> {
            let mut y = vec![0.0; 2 * d];
            for t in 0..2 {
                for j in lo..hi {
                    let h = relu((0..d).map(|k| x[t * d + k] * w1[j * d + k]).sum());
                    for o in 0..d {
                        y[t * d + o] += h * w2[o * ffn + j];
                    }
                }
            }
            y
        };
        let whole = partial(0, ffn);
        let mut reduced = vec![0.0; 2 * d];
        for rank in 0..4 {
            let held = shards(&l, &placements, rank);
            let rows = held.iter().find(|s| s.placement == fc).unwrap().ranges[0];
            let cols = held.iter().find(|s| s.placement == proj).unwrap().ranges[1];
            // The column shard's outputs are exactly the row shard's inputs.
            assert_eq!(rows, cols);
            for (acc, v) in reduced
                .iter_mut()
                .zip(partial(rows.0 as usize, rows.1 as usize))
            {
                *acc += v;
            }
        }
        let err = whole
            .iter()
            .zip(&reduced)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-9, "max difference {err}");
    }
}
