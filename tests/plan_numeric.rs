//! Numerical checks of the planner's tensor-parallel shards, in f64 and
//! without libtorch.
//!
//! Multi-head causal attention is computed twice: once unsharded from the
//! whole weights, and once per rank of a 4-way tensor-parallel layout from
//! only the rows of `q_proj`, `k_proj` and `v_proj` and the columns of
//! `c_proj` that `plan::shard` gives that rank, the partial outputs then
//! summed as the all-reduce after `c_proj` would. The two must agree to
//! rounding. The weights have the real head counts and head widths of the
//! examples' first layer (GPT-2's whole shapes; LLaMA's model width, which
//! no rank splits, shrunk to keep the test fast in a debug build); their
//! values are deterministic pseudo-random numbers.

use std::ops::Range;

use enigma::ir::Graph;
use enigma::plan::shard::{place, shards, Placement, Shard};
use enigma::plan::{Axis, Layout, Mesh};

#[path = "common/checked.rs"]
mod checked;

fn graph(example: &str) -> Graph {
    checked::example_graph(example)
}

/// `ranks`-way tensor parallelism on one axis `tp`, with heads, key/value
/// heads and the feed-forward width mapped to it (not `vocab`: GPT-2's
/// vocabulary does not divide by 4).
fn tensor_parallel(ranks: usize) -> Layout {
    let mut l = Layout::single();
    l.mesh = Mesh::new(vec![Axis {
        name: "tp".to_string(),
        size: ranks,
    }])
    .unwrap();
    l.tensor = vec!["tp".to_string()];
    for d in ["heads", "kv_heads", "ffn"] {
        l.mapped.insert(d.to_string(), vec!["tp".to_string()]);
    }
    l
}

/// Deterministic numbers in [-0.5, 0.5): a 64-bit LCG, as in the MLP check
/// of `plan::shard`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    fn fill(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// A linear layer `y = x w^T + b` with `w` row-major `[out, inp]`.
#[derive(Clone)]
struct Linear {
    out: usize,
    inp: usize,
    w: Vec<f64>,
    b: Option<Vec<f64>>,
}

impl Linear {
    /// `x: [t, inp]` to `[t, out]`.
    fn apply(&self, x: &[f64], t: usize) -> Vec<f64> {
        let mut y = vec![0.0; t * self.out];
        for i in 0..t {
            let row = &x[i * self.inp..(i + 1) * self.inp];
            for o in 0..self.out {
                let w = &self.w[o * self.inp..(o + 1) * self.inp];
                let dot: f64 = row.iter().zip(w).map(|(a, b)| a * b).sum();
                y[i * self.out + o] = dot + self.b.as_ref().map_or(0.0, |b| b[o]);
            }
        }
        y
    }

    /// The rows `rows` (output units) of the weight and bias: a column
    /// shard.
    fn rows(&self, rows: Range<usize>) -> Linear {
        Linear {
            out: rows.len(),
            inp: self.inp,
            w: self.w[rows.start * self.inp..rows.end * self.inp].to_vec(),
            b: self.b.as_ref().map(|b| b[rows].to_vec()),
        }
    }

    /// The columns `cols` (input units) of the weight, with the bias only
    /// when `bias` is set: a row shard, whose replicated bias one rank adds.
    fn cols(&self, cols: Range<usize>, bias: bool) -> Linear {
        let w = (0..self.out)
            .flat_map(|o| self.w[o * self.inp + cols.start..o * self.inp + cols.end].to_vec())
            .collect();
        Linear {
            out: self.out,
            inp: cols.len(),
            w,
            b: if bias { self.b.clone() } else { None },
        }
    }
}

/// The sizes of an attention layer, read from the graph's `Attention`
/// scope.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    d: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    rotary: bool,
}

fn sizes(g: &Graph) -> Sizes {
    let scope = g
        .scopes
        .iter()
        .find(|s| s.module == "Attention")
        .expect("an Attention scope");
    let num = |k: &str| -> usize {
        scope
            .hyper
            .iter()
            .find_map(|(n, v)| match v {
                enigma::ir::types::Value::Size(s) if n == k => s.as_const(),
                _ => None,
            })
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or_else(|| panic!("Attention has a whole `{k}`"))
    };
    Sizes {
        d: num("d"),
        heads: num("heads"),
        kv_heads: num("kv_heads"),
        head_dim: num("head_dim"),
        rotary: scope
            .hyper
            .iter()
            .any(|(n, v)| n == "rotary" && *v == enigma::ir::types::Value::Bool(true)),
    }
}

/// Rotary embedding in the GPT-NeoX layout (`docs/primitives.md`): the
/// first and second halves of a head are the pairs; position `p` rotates
/// pair `i` by `p * base^(-2i / e)`. Applied in place to `x: [t, n * e]`.
fn rotary(x: &mut [f64], t: usize, n: usize, e: usize) {
    let half = e / 2;
    for p in 0..t {
        for h in 0..n {
            let at = p * n * e + h * e;
            for i in 0..half {
                let angle = p as f64 * 10000f64.powf(-2.0 * i as f64 / e as f64);
                let (s, c) = angle.sin_cos();
                let (a, b) = (x[at + i], x[at + half + i]);
                x[at + i] = a * c - b * s;
                x[at + half + i] = a * s + b * c;
            }
        }
    }
}

/// Causal attention of `t` tokens for `heads` query heads over `kv` key and
/// value heads, each query head `h` reading key/value head `kv_of(h)`.
/// `q: [t, heads * e]`, `k`, `v: [t, kv * e]`; the result is
/// `[t, heads * e]`, heads concatenated in order.
fn attend(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    t: usize,
    (heads, kv, e): (usize, usize, usize),
    kv_of: impl Fn(usize) -> usize,
) -> Vec<f64> {
    let scale = 1.0 / (e as f64).sqrt();
    let mut out = vec![0.0; t * heads * e];
    for h in 0..heads {
        let g = kv_of(h);
        assert!(g < kv, "query head {h} reads key/value head {g} of {kv}");
        for i in 0..t {
            let qi = &q[i * heads * e + h * e..][..e];
            // Positions j <= i only; a stable softmax over them.
            let scores: Vec<f64> = (0..=i)
                .map(|j| {
                    let kj = &k[j * kv * e + g * e..][..e];
                    scale * qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>()
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exp: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = exp.iter().sum();
            for (j, w) in exp.iter().enumerate() {
                let vj = &v[j * kv * e + g * e..][..e];
                for c in 0..e {
                    out[i * heads * e + h * e + c] += w / total * vj[c];
                }
            }
        }
    }
    out
}

/// The four projections of one attention layer.
struct Weights {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
}

/// One layer's attention: q, k and v projections, rotary positions if the
/// model uses them, attention with query head `h` on key/value head
/// `h / (heads / kv_heads)`, and `c_proj`.
fn attention(w: &Weights, x: &[f64], t: usize, s: Sizes, heads: usize, kv: usize) -> Vec<f64> {
    let e = s.head_dim;
    let (mut q, mut k, v) = (w.q.apply(x, t), w.k.apply(x, t), w.v.apply(x, t));
    if s.rotary {
        rotary(&mut q, t, heads, e);
        rotary(&mut k, t, kv, e);
    }
    let group = heads / kv;
    let a = attend(&q, &k, &v, t, (heads, kv, e), |h| h / group);
    w.o.apply(&a, t)
}

/// The placement of layer 0's parameter whose path ends with `suffix`.
fn find(g: &Graph, placements: &[Placement], suffix: &str) -> Option<usize> {
    placements
        .iter()
        .position(|p| p.layer.unwrap_or(0) == 0 && g.params[p.param].path.ends_with(suffix))
}

fn range(held: &[Shard], placement: usize, dim: usize) -> Range<usize> {
    let s = held
        .iter()
        .find(|s| s.placement == placement)
        .expect("the rank holds the placement");
    s.ranges[dim].0 as usize..s.ranges[dim].1 as usize
}

/// Checks on `example` with `ranks`-way tensor parallelism that every rank
/// holds whole query heads and the whole key/value heads they read, and
/// that the ranks' partial attention outputs sum to the unsharded layer's.
/// `width`, when given, replaces the model width in the numbers: the input
/// of the q, k and v projections and the output of `c_proj`, which tensor
/// parallelism does not split.
fn attention_composes(example: &str, ranks: usize, tokens: usize, width: Option<usize>) {
    let g = graph(example);
    let s = sizes(&g);
    let l = tensor_parallel(ranks);
    let placements = place(&g, &l).unwrap();
    let proj = |name: &str| {
        let w = find(&g, &placements, &format!("attn.{name}.w"))
            .unwrap_or_else(|| panic!("{example} has attn.{name}.w"));
        (w, find(&g, &placements, &format!("attn.{name}.bias.b")))
    };
    let ((q, qb), (k, kb), (v, vb), (o, ob)) = (
        proj("q_proj"),
        proj("k_proj"),
        proj("v_proj"),
        proj("c_proj"),
    );
    let (qd, kvd) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
    assert_eq!(placements[q].shape, [qd as i64, s.d as i64]);
    assert_eq!(placements[k].shape, [kvd as i64, s.d as i64]);
    assert_eq!(placements[v].shape, [kvd as i64, s.d as i64]);
    assert_eq!(placements[o].shape, [s.d as i64, qd as i64]);

    let mut rng = Lcg(7);
    let mut linear = |out: usize, inp: usize, bias: Option<usize>| Linear {
        out,
        inp,
        w: rng.fill(out * inp),
        b: bias.map(|_| rng.fill(out)),
    };
    let d = width.unwrap_or(s.d);
    let whole = Weights {
        q: linear(qd, d, qb),
        k: linear(kvd, d, kb),
        v: linear(kvd, d, vb),
        o: linear(d, qd, ob),
    };
    let x = Lcg(11).fill(tokens * d);
    let expected = attention(&whole, &x, tokens, s, s.heads, s.kv_heads);

    let mut reduced = vec![0.0; tokens * d];
    let mut owners_of_the_output_bias = 0;
    for rank in 0..ranks {
        let held = shards(&l, &placements, rank);
        let (qr, kr, vr) = (range(&held, q, 0), range(&held, k, 0), range(&held, v, 0));
        let or = range(&held, o, 1);
        // Whole heads: the ranges fall on head boundaries, and key and
        // value shards hold the same heads.
        for r in [&qr, &kr] {
            assert_eq!(r.start % s.head_dim, 0, "rank {rank}: {r:?}");
            assert_eq!(r.end % s.head_dim, 0, "rank {rank}: {r:?}");
        }
        assert_eq!(kr, vr, "rank {rank}: key and value heads");
        // c_proj's input columns are exactly this rank's attention outputs.
        assert_eq!(or, qr, "rank {rank}: c_proj columns");
        let heads = qr.start / s.head_dim..qr.end / s.head_dim;
        let kv = kr.start / s.head_dim..kr.end / s.head_dim;
        assert_eq!(heads.len(), s.heads / ranks);
        // Every local query head's key/value head (GQA: h / group) is
        // local, so no GQA group is split across ranks.
        let group = s.heads / s.kv_heads;
        for h in heads.clone() {
            assert!(
                kv.contains(&(h / group)),
                "rank {rank}: query head {h} reads key/value head {} outside {kv:?}",
                h / group
            );
        }
        // The replicated output bias is added by its owner only (once per
        // sum), as after a row-parallel linear.
        let owns_bias = ob.is_some_and(|b| {
            held.iter()
                .find(|sh| sh.placement == b)
                .expect("the rank holds c_proj's bias")
                .owner
        });
        owners_of_the_output_bias += usize::from(owns_bias);
        let local = Weights {
            q: whole.q.rows(qr),
            k: whole.k.rows(kr),
            v: whole.v.rows(vr),
            o: whole.o.cols(or, owns_bias),
        };
        // Positions are the token indices on every rank, so rotary
        // embeddings on local heads are those of the whole layer.
        let partial = attention(&local, &x, tokens, s, heads.len(), kv.len());
        for (acc, p) in reduced.iter_mut().zip(partial) {
            *acc += p;
        }
    }
    assert_eq!(owners_of_the_output_bias, usize::from(ob.is_some()));
    let err = expected
        .iter()
        .zip(&reduced)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-9, "{example}: max difference {err}");
    // The layer is not trivially zero, so the comparison means something.
    assert!(expected.iter().any(|v| v.abs() > 1e-3));
}

/// LLaMA-style grouped-query attention (32 query heads on 4 key/value
/// heads, rotary positions, no biases) split 4 ways: 8 query heads and
/// their one key/value head per rank.
#[test]
fn tensor_parallel_grouped_query_attention_composes_to_the_whole_layer() {
    let g = graph("llama_style.enigma");
    let s = sizes(&g);
    assert_eq!((s.heads, s.kv_heads, s.head_dim), (32, 4, 64));
    assert!(s.rotary);
    attention_composes("llama_style.enigma", 4, 4, Some(256));
}

/// GPT-2's multi-head attention (12 heads, biases on every projection)
/// split 4 ways: 3 heads per rank, column-split q/k/v biases and the
/// replicated `c_proj` bias added once.
#[test]
fn tensor_parallel_multi_head_attention_with_biases_composes_to_the_whole_layer() {
    attention_composes("gpt2_small.enigma", 4, 3, None);
}

/// The check fails when the shards do not compose: a rank that takes its
/// neighbour's key/value head gives a different result. This guards the
/// comparison itself against passing vacuously.
#[test]
fn a_wrong_key_value_head_is_detected() {
    let s = Sizes {
        d: 16,
        heads: 4,
        kv_heads: 2,
        head_dim: 4,
        rotary: false,
    };
    let mut rng = Lcg(3);
    let mut linear = |out: usize, inp: usize| Linear {
        out,
        inp,
        w: rng.fill(out * inp),
        b: None,
    };
    let w = Weights {
        q: linear(16, 16),
        k: linear(8, 16),
        v: linear(8, 16),
        o: linear(16, 16),
    };
    let x = Lcg(5).fill(3 * s.d);
    let whole = attention(&w, &x, 3, s, 4, 2);
    // Rank 0 of 2 holds query heads 0-1 but, wrongly, key/value head 1.
    let mut sum = attention(
        &Weights {
            q: w.q.rows(0..8),
            k: w.k.rows(4..8),
            v: w.v.rows(4..8),
            o: w.o.cols(0..8, false),
        },
        &x,
        3,
        s,
        2,
        1,
    );
    let rank1 = attention(
        &Weights {
            q: w.q.rows(8..16),
            k: w.k.rows(4..8),
            v: w.v.rows(4..8),
            o: w.o.cols(8..16, false),
        },
        &x,
        3,
        s,
        2,
        1,
    );
    for (a, b) in sum.iter_mut().zip(rank1) {
        *a += b;
    }
    let err = whole
        .iter()
        .zip(&sum)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err > 1e-6, "a wrong key/value head changes the output");
}
