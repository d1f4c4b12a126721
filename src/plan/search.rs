//! The search over parallel layouts: every way to run an experiment on a
//! number of GPUs that the planner can lower, costed and ranked.
//!
//! A candidate is data x tensor x pipeline parallelism whose product is the
//! world, on a mesh `dp, pp, tp` (tensor parallelism fastest, so its groups
//! stay inside a node), with a ZeRO stage, a number of micro-batches and
//! activation checkpointing on or off. Candidates that cannot fit are
//! dropped before lowering by a lower bound on their memory; the rest are
//! lowered for one rank per stage, estimated (`cost.rs`), kept if they fit
//! and sorted by step time. The bound, the space and the measured speed are
//! in `docs/cost-model.md`.

use std::cmp::Ordering;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use super::cost::{estimate, Cluster, Estimate, StageCost};
use super::layout::Layout;
use super::lower::{lower, representatives};
use super::memory::model_state;
use super::mesh::{Axis, Mesh};
use super::shard::place;
use super::tp;
use crate::ir::layout::PipelineSchedule;
use crate::ir::types::Value;
use crate::ir::{Graph, Op, ValueRef};

/// Micro-batches per step the search tries: powers of two up to this.
const MAX_MICROBATCHES: usize = 32;

/// One layout the search costed.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub dp: usize,
    pub tp: usize,
    pub pp: usize,
    pub zero: u8,
    pub microbatches: usize,
    pub checkpoint: bool,
    pub layout: Layout,
    pub estimate: Estimate,
    /// The estimate's step time, MFU and the largest memory any stage
    /// needs (bytes), for ranking and tables.
    pub step_s: f64,
    pub mfu: f64,
    pub memory: f64,
    /// On the first candidate: why it beats the runner-up.
    pub why: Option<String>,
}

impl Candidate {
    /// `dp 64 x tp 1 x pp 1, ZeRO-3, 8 micro-batches, checkpointing`.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dp {} x tp {} x pp {}, ZeRO-{}, {} micro-batch{}{}",
            self.dp,
            self.tp,
            self.pp,
            self.zero,
            self.microbatches,
            if self.microbatches == 1 { "" } else { "es" },
            if self.checkpoint {
                ", checkpointing"
            } else {
                ""
            }
        )
    }
}

/// What a search looked at, besides what it kept.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// The fitting candidates, fastest first.
    pub candidates: Vec<Candidate>,
    /// Layouts enumerated.
    pub considered: usize,
    /// Dropped by the memory lower bound, without lowering.
    pub pruned: usize,
    /// Refused by the lowering (a split that does not divide, say).
    pub refused: usize,
    /// Lowered and estimated, but over the device's memory.
    pub too_big: usize,
}

/// The layouts of `world` GPUs for `g` that fit, fastest first; `base`
/// gives the settings the search does not vary (device memory, bucket
/// size, schedule).
pub fn search(g: &Graph, base: &Layout, world: usize, cluster: &Cluster) -> Vec<Candidate> {
    explore(g, base, world, cluster).candidates
}

/// [`search`], with the counts of what was dropped and why.
pub fn explore(g: &Graph, base: &Layout, world: usize, cluster: &Cluster) -> Search {
    let mut out = Search::default();
    let layers = g
        .scopes
        .iter()
        .find(|s| s.repeat > 1)
        .map_or(1, |s| s.repeat.max(1) as usize);
    let splits = tensor_sizes(g);
    let node = cluster.gpus_per_node.max(1);
    let mut todo: Vec<(Shape, Layout)> = Vec::new();
    for tp in divisors(world).filter(|&t| node.is_multiple_of(t)) {
        if splits.iter().any(|&n| n % tp as i64 != 0) {
            continue;
        }
        for pp in divisors(world / tp).filter(|&p| layers % p == 0) {
            let dp = world / (tp * pp);
            let global = g.global_batch.unwrap_or(dp as i64);
            if global <= 0 || global % dp as i64 != 0 {
                continue;
            }
            let per_replica = (global / dp as i64) as usize;
            let zeros: &[u8] = if dp > 1 { &[0, 1, 2, 3] } else { &[0] };
            let checkpoints: &[bool] = if layers > 1 { &[false, true] } else { &[false] };
            let mut m = 1;
            while m <= MAX_MICROBATCHES && per_replica.is_multiple_of(m) {
                for &zero in zeros {
                    for &checkpoint in checkpoints {
                        out.considered += 1;
                        let s = Shape {
                            dp,
                            tp,
                            pp,
                            zero,
                            microbatches: m,
                            checkpoint,
                        };
                        match candidate_layout(base, dp, tp, pp, zero, m, checkpoint)
                            .and_then(|l| Some((memory_bound(g, &l)?, l)))
                        {
                            None => out.refused += 1,
                            Some((bound, l)) if bound > l.device_memory => out.pruned += 1,
                            Some((_, l)) => todo.push((s, l)),
                        }
                    }
                }
                m *= 2;
            }
        }
    }
    for outcome in parallel_map(&todo, |(s, l)| evaluate(g, cluster, *s, l)) {
        match outcome {
            Outcome::Refused => out.refused += 1,
            Outcome::TooBig => out.too_big += 1,
            Outcome::Fits(c) => out.candidates.push(*c),
        }
    }
    out.candidates.sort_by(order);
    if let [first, second, ..] = &out.candidates[..] {
        let reason = compare(first, second);
        out.candidates[0].why = Some(reason);
    }
    out
}

/// The knobs of one candidate.
#[derive(Clone, Copy, Debug)]
struct Shape {
    dp: usize,
    tp: usize,
    pp: usize,
    zero: u8,
    microbatches: usize,
    checkpoint: bool,
}

/// What became of a candidate that passed the memory bound.
enum Outcome {
    Refused,
    TooBig,
    Fits(Box<Candidate>),
}

/// Lowers one candidate for its representatives and estimates it.
fn evaluate(g: &Graph, cluster: &Cluster, s: Shape, layout: &Layout) -> Outcome {
    let reps = representatives(layout);
    let Ok(plan) = lower(g, layout, Some(&reps)) else {
        return Outcome::Refused;
    };
    let estimate = estimate(g, &plan, cluster);
    if !estimate.fits {
        return Outcome::TooBig;
    }
    let memory = estimate
        .stages
        .iter()
        .map(|s| s.memory.total)
        .fold(0.0, f64::max);
    Outcome::Fits(Box::new(Candidate {
        step_s: estimate.step_s,
        mfu: estimate.mfu,
        memory,
        dp: s.dp,
        tp: s.tp,
        pp: s.pp,
        zero: s.zero,
        microbatches: s.microbatches,
        checkpoint: s.checkpoint,
        layout: layout.clone(),
        estimate,
        why: None,
    }))
}

/// `f` over `items` on every core, the results in the items' order (so
/// the outcome does not depend on the number of threads). Lowering and
/// estimating are most of a search's time and independent per candidate.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(&f).collect();
    }
    // Threads take the next unclaimed item, since candidates with more
    // micro-batches take longer to lower.
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        // A panicking worker is a bug in the planner: raise it again rather
        // than return a ranking with holes.
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The layout of one candidate: mesh `dp, pp, tp`, the batch over `dp`,
/// attention heads and the feed-forward width over `tp`, layers over `pp`,
/// ZeRO over all of `dp`; everything else as in `base`. `None` if the mesh
/// cannot be built (a zero degree).
pub fn candidate_layout(
    base: &Layout,
    dp: usize,
    tp: usize,
    pp: usize,
    zero: u8,
    microbatches: usize,
    checkpoint: bool,
) -> Option<Layout> {
    let axis = |name: &str, size| Axis {
        name: name.to_string(),
        size,
    };
    let mut l = base.clone();
    l.mesh = Mesh::new(vec![axis("dp", dp), axis("pp", pp), axis("tp", tp)]).ok()?;
    let one = |a: &str| vec![a.to_string()];
    l.mapped.clear();
    l.mapped.insert("batch".into(), one("dp"));
    l.mapped.insert("layers".into(), one("pp"));
    for d in ["heads", "kv_heads", "ffn"] {
        l.mapped.insert(d.into(), one("tp"));
    }
    (l.data, l.tensor, l.pipeline) = (one("dp"), one("tp"), one("pp"));
    (l.zero, l.zero_axes) = (zero, one("dp"));
    // The micro-batches are the whole split of a replica's batch: no
    // further gradient accumulation.
    (l.microbatches, l.accumulate) = (microbatches, 1);
    l.checkpoint_activations = checkpoint;
    l.sequence_parallel = false;
    if l.schedule == PipelineSchedule::Interleaved {
        l.schedule = PipelineSchedule::OneFOneB;
    }
    Some(l)
}

/// Every size tensor parallelism splits: attention heads and key/value
/// heads, and feed-forward widths (parameter dims named `ffn`, or a
/// module's `ffn` hyperparameter).
fn tensor_sizes(g: &Graph) -> Vec<i64> {
    let mut out = Vec::new();
    for n in &g.nodes {
        if let Op::Attention {
            heads, kv_heads, ..
        } = &n.op
        {
            out.extend(heads.as_const());
            out.extend(kv_heads.as_const());
        }
    }
    for s in &g.scopes {
        for (k, v) in &s.hyper {
            if let ("heads" | "kv_heads" | "ffn", Value::Size(n)) = (k.as_str(), v) {
                out.extend(n.as_const());
            }
        }
    }
    let ffn = crate::ir::types::size::Size::symbol("ffn");
    for p in &g.params {
        for d in p.ty.dims.iter().filter(|d| d.name == ffn) {
            out.extend(d.size.as_ref().and_then(|s| s.as_const()));
        }
    }
    out.retain(|&n| n > 0);
    out
}

fn divisors(n: usize) -> impl Iterator<Item = usize> {
    (1..=n).filter(move |d| n.is_multiple_of(*d))
}

/// A lower bound on the memory of the first stage's rank: its model state
/// (exact, `memory.rs`) and the activations it holds at its first backward
/// in the cost model's conventions: for each in-flight micro-batch the
/// outputs before the layers and every materialised output of its layers
/// (under checkpointing only their inputs), and on top the most that one
/// backward op adds: two gradients of its output's size, and within a
/// checkpointed layer the recomputed outputs not yet freed.
/// `None` if the parameters cannot be placed.
fn memory_bound(g: &Graph, l: &Layout) -> Option<f64> {
    let placements = place(g, l).ok()?;
    let reps = representatives(l);
    let state = reps
        .iter()
        .map(|&r| model_state(g, l, &placements, r).total())
        .fold(0.0, f64::max);
    let first = reps
        .first()
        .map_or(0.0, |&r| model_state(g, l, &placements, r).total());
    let Some(body) = g.scopes.iter().position(|s| s.repeat > 1) else {
        return Some(state);
    };
    let layers = g.scopes[body].repeat.max(1) as f64;
    let (pp, tp) = (l.stages().max(1), l.tensor_degree().max(1));
    let m = l.steps_per_update();
    // Without a global batch the lowering runs one sample per micro-batch.
    let micro_batch = g
        .global_batch
        .map_or(1.0, |b| b as f64 / (l.data_degree().max(1) * m) as f64);
    let in_flight = match l.schedule {
        PipelineSchedule::GPipe => m,
        _ => m.min(pp),
    } as f64;
    // Which outputs tensor parallelism splits, as the lowering finds them
    // (the first placement of each parameter gives its split dim).
    let param_split = super::shard::split_dims(g.params.len(), &placements);
    let states = tp::propagate(g, &param_split, tp, l.sequence_parallel);
    let batch = crate::ir::types::size::Size::symbol("batch");
    // The local bytes of a node's output for one micro-batch, as the
    // lowering shapes it; views count nothing, as in the cost model.
    let bytes = |i: usize| -> f64 {
        let node = &g.nodes[i];
        if !super::cost::materialised(g, i) {
            return 0.0;
        }
        let n: f64 = node
            .out
            .dims
            .iter()
            .map(|d| {
                let n = d.size_or_name().as_const().unwrap_or(0) as f64;
                if d.name == batch {
                    n * micro_batch
                } else {
                    n
                }
            })
            .product();
        let split = matches!(states.get(i).and_then(|p| p.out), Some(tp::State::Split(_)));
        n / if split { tp as f64 } else { 1.0 }
            * super::lower::compute_dtype(node.out.dtype).bytes(g.float_bytes) as f64
    };
    let inside: Vec<bool> = g.nodes.iter().map(|n| g.within(n.scope, body)).collect();
    let first_inside = inside.iter().position(|&x| x).unwrap_or(g.nodes.len());
    // The nodes outside the layers are on the first stage if they come
    // before them, or if there is one stage.
    let before: f64 = (0..g.nodes.len())
        .filter(|&i| !inside[i] && (i < first_inside || pp == 1))
        .map(bytes)
        .sum();
    let block: f64 = (0..g.nodes.len()).filter(|&i| inside[i]).map(bytes).sum();
    let per_layer = match g.scopes[body].carry {
        Some((_, ValueRef::Node(c))) if l.checkpoint_activations && c < g.nodes.len() => bytes(c),
        _ => block,
    };
    // Then a backward op holds two gradients of its node's output's size
    // and, within a checkpointed layer, the recomputed outputs of the nodes
    // up to its own (later ones were freed by their backward).
    let outside = (0..g.nodes.len())
        .filter(|&i| !inside[i] && (i < first_inside || pp == 1))
        .map(bytes)
        .fold(0.0, f64::max);
    let (mut recomputed, mut within) = (0.0, 0.0f64);
    for b in (0..g.nodes.len()).filter(|&i| inside[i]).map(bytes) {
        if l.checkpoint_activations {
            recomputed += b;
        }
        within = within.max(recomputed + 2.0 * b);
    }
    let transient = within.max(2.0 * outside);
    let activations = in_flight * (before + layers / pp as f64 * per_layer) + transient;
    Some(state.max(first + activations))
}

/// Fastest first; among equal step times, less memory, then the simpler
/// layout (lower ZeRO stage, fewer micro-batches, no recomputation).
fn order(a: &Candidate, b: &Candidate) -> Ordering {
    a.step_s
        .total_cmp(&b.step_s)
        .then(a.memory.total_cmp(&b.memory))
        .then(a.zero.cmp(&b.zero))
        .then(a.microbatches.cmp(&b.microbatches))
        .then(a.checkpoint.cmp(&b.checkpoint))
        .then((a.tp, a.pp).cmp(&(b.tp, b.pp)))
}

/// One term of a stage's step time.
type Term = fn(&StageCost) -> f64;

/// Why `a` beats `b`: the cost term (averaged over stages, so that the
/// terms add up to the step) that differs most in `a`'s favour.
pub fn compare(a: &Candidate, b: &Candidate) -> String {
    let mean = |c: &Candidate, f: Term| {
        let s = &c.estimate.stages;
        s.iter().map(f).sum::<f64>() / s.len().max(1) as f64
    };
    let terms: [(&str, Term); 3] = [
        ("compute", |s| s.compute_s),
        ("exposed communication", |s| s.comm_exposed_s),
        ("pipeline bubble", |s| s.bubble_s),
    ];
    let ms = |x: f64| format!("{:.1} ms", x * 1e3);
    let (ta, tb) = (a.estimate.step_s, b.estimate.step_s);
    let mut best: Option<(&str, f64, f64)> = None;
    for (name, f) in terms {
        let (x, y) = (mean(a, f), mean(b, f));
        if best.is_none_or(|(_, bx, by)| y - x > by - bx) {
            best = Some((name, x, y));
        }
    }
    match best {
        Some((name, x, y)) if tb - ta > 1e-6 && y > x => format!(
            "{a} takes {} per step against {} for {b}: its {name} is {:.1} ms less ({} against {})",
            ms(ta),
            ms(tb),
            (y - x) * 1e3,
            ms(x),
            ms(y)
        ),
        _ => format!(
            "{a} and {b} take the same time per step ({}); it needs less memory ({:.1} GB against {:.1} GB) or is the simpler layout",
            ms(ta),
            a.memory / 1e9,
            b.memory / 1e9
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> (Graph, Layout) {
        let x = crate::testing::example(name);
        (x.graph, Layout::of(&x.parallel).unwrap())
    }

    #[test]
    fn gpt2_on_8_gpus() {
        let (g, base) = example("gpt2_small.enigma");
        let s = explore(&g, &base, 8, &Cluster::default());
        let c = &s.candidates;
        assert!(!c.is_empty());
        assert_eq!(
            s.considered,
            s.pruned + s.refused + s.too_big + c.len(),
            "every layout is accounted for"
        );
        for x in c {
            assert_eq!(x.dp * x.tp * x.pp, 8);
            assert_eq!(x.layout.mesh.size(), 8);
            assert!(x.estimate.fits && x.memory <= base.device_memory);
            // 12 heads do not split 8 ways.
            assert!(x.tp <= 4);
            assert!(x.estimate.notes.is_empty(), "{x}: {:?}", x.estimate.notes);
            // The bound that pruned the others holds for every kept one.
            let bound = memory_bound(&g, &x.layout).unwrap();
            assert!(bound <= x.estimate.stages[0].memory.total, "{x}");
        }
        assert!(c
            .windows(2)
            .all(|w| w[0].estimate.step_s <= w[1].estimate.step_s));
        assert!(c[0]
            .why
            .as_deref()
            .is_some_and(|r| r.contains(&c[1].to_string())));
        assert!(c[1..].iter().all(|x| x.why.is_none()));
        // GPT-2 small fits one GPU many times over: plain data parallelism
        // wins, and pipelines are among the candidates.
        assert_eq!((c[0].dp, c[0].tp, c[0].pp), (8, 1, 1));
        assert!(c.iter().any(|x| x.pp > 1) && c.iter().any(|x| x.tp > 1));
    }

    #[test]
    fn the_memory_bound_never_exceeds_the_estimate() {
        for (name, world) in [("gpt2_small.enigma", 8), ("enigma_1b.enigma", 64)] {
            let (g, base) = example(name);
            for (tp, pp) in [(1, 1), (2, 1), (1, 2), (2, 2), (1, 4)] {
                for (zero, m, ckpt) in [(0, 1, false), (3, 2, true), (1, 4, true), (2, 4, false)] {
                    let dp = world / (tp * pp);
                    let l = candidate_layout(&base, dp, tp, pp, zero, m, ckpt).unwrap();
                    let bound = memory_bound(&g, &l).unwrap();
                    let plan = lower(&g, &l, Some(&representatives(&l))).unwrap();
                    let e = estimate(&g, &plan, &Cluster::default());
                    let actual = e.stages[0].memory.total;
                    assert!(
                        bound <= actual,
                        "{name} {dp}x{tp}x{pp} z{zero} m{m}: {bound} > {actual}"
                    );
                    assert!(
                        bound > 0.5 * actual,
                        "{name} {dp}x{tp}x{pp}: {bound} against {actual}"
                    );
                }
            }
        }
    }

    #[test]
    fn tensor_groups_stay_inside_a_node() {
        let l = candidate_layout(&Layout::single(), 4, 8, 2, 1, 4, true).unwrap();
        let c = Cluster::default();
        for group in l.mesh.groups(&l.tensor).unwrap() {
            assert_eq!(group.len(), 8);
            assert!(group.iter().all(|&r| c.node(r) == c.node(group[0])));
        }
        assert_eq!(l.mesh.group(0, &l.pipeline).unwrap(), [0, 8]);
        assert_eq!((l.data_degree(), l.stages(), l.zero_axes.len()), (4, 2, 1));
        assert_eq!(l.steps_per_update(), 4);
    }

    #[test]
    fn the_reason_names_the_term_that_differs() {
        let (g, base) = example("gpt2_small.enigma");
        let run = |dp, pp, m| {
            let l = candidate_layout(&base, dp, 1, pp, 0, m, false).unwrap();
            let s = Shape {
                dp,
                tp: 1,
                pp,
                zero: 0,
                microbatches: m,
                checkpoint: false,
            };
            match evaluate(&g, &Cluster::default(), s, &l) {
                Outcome::Fits(c) => *c,
                _ => panic!("gpt2 {dp}x{pp} fits"),
            }
        };
        let (flat, piped) = (run(8, 1, 4), run(2, 4, 4));
        let why = compare(&flat, &piped);
        assert!(why.contains("pipeline bubble"), "{why}");
        assert!(compare(&flat, &flat).contains("the same time"));
    }
}
