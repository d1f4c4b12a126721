//! Tensor-parallel sharding of every value, propagated through the graph.
//!
//! Parameters start split as `shard.rs` placed them; every other value's
//! state follows from its inputs by a rule per primitive, in the manner of
//! GSPMD's sharding propagation but with a handful of rules, because the
//! standard library uses Megatron's patterns:
//!
//! - a column-parallel `linear` (weight split by output rows) takes a whole
//!   input and gives an output split along its last dim; in the backward
//!   pass each rank then holds only part of the input's gradient, so that
//!   gradient is all-reduced (Megatron's `f`);
//! - a row-parallel `linear` (weight split by input columns) takes an input
//!   split along its last dim and gives partial sums, all-reduced at once
//!   (Megatron's `g`); so does an embedding whose table is split by rows;
//! - elementwise operations, norms over an unsplit last dim, rotary
//!   embeddings and attention over split heads keep the split;
//! - `reshape` moves a split to the output dim that starts at the same
//!   element boundary (`[.., heads * head_dim]` to `[.., heads, head_dim]`).
//!
//! Anything else that meets a split input gathers it whole first: always
//! correct, and visible in the plan as an all-gather. A whole input that
//! meets split ones in an elementwise node is *narrowed* to this rank's
//! part instead (free; its gradient is gathered back in the backward pass).
//! A whole parameter used on split data (a norm's gain under sequence
//! parallelism) gets a partial gradient on each rank, summed over the
//! tensor group before the optimizer step.
//!
//! **Sequence parallelism** (Megatron-LM's, Korthikanti et al. 2022) keeps
//! the activations between the tensor-parallel blocks split along the
//! sequence: partial sums are reduce-scattered along the sequence dim
//! instead of all-reduced, norms, dropout and residual additions run on
//! sequence shards, and a column-parallel linear all-gathers its input
//! first (reduce-scattering the input's gradient in the backward pass).
//! The value a `repeat` body carries is then split too, so the first
//! layer narrows its input from the whole value before it.
//!
//! The same state holds on every rank of a tensor group, so the analysis
//! runs once per plan.

use crate::ir::{Graph, Node, Op, ValueRef};

/// How a value is laid out over the tensor-parallel ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Every rank holds all of it.
    Whole,
    /// Each rank holds an equal part of this dim.
    Split(usize),
    /// Each rank holds a partial sum of all of it.
    Partial,
}

/// What tensor parallelism does around one node.
#[derive(Clone, Debug, Default)]
pub struct NodePlan {
    /// The state of the node's output after its forward collectives.
    pub out: Option<State>,
    /// Inputs (by position) gathered whole before the forward.
    pub gather: Vec<usize>,
    /// Whether the output is a partial sum, all-reduced after the forward.
    pub reduce_out: bool,
    /// Sequence parallelism: the partial-sum output is reduce-scattered
    /// along this dim instead.
    pub scatter_out: Option<usize>,
    /// Whole inputs (position, dim) cut to this rank's part of the dim.
    pub narrow: Vec<(usize, usize)>,
    /// Inputs (by position) whose gradient this node leaves partial, so it
    /// is all-reduced after the node's backward (reduce-scattered when
    /// `scatter_grad`: the input was gathered from sequence shards).
    pub reduce_grad: Vec<usize>,
    pub scatter_grad: bool,
    /// Whole parameter inputs (by position) used on split data: their
    /// gradients are partial on each rank.
    pub partial_param_grads: Vec<usize>,
    /// How many times smaller this rank's share of the node's work is.
    pub work_div: f64,
}

/// The tensor-parallel plan of every node of `g`, given the split dim (if
/// any) of each parameter and the tensor-parallel degree.
pub fn propagate(
    g: &Graph,
    param_split: &[Option<usize>],
    degree: usize,
    sequence_parallel: bool,
) -> Vec<NodePlan> {
    let mut carried: Vec<(ValueRef, State)> = Vec::new();
    // A second pass when a body's carried value leaves in another state
    // than it came in (sequence parallelism): inside the body the value
    // taken is then in the state the body returns.
    for _ in 0..2 {
        let (plans, states) = pass(g, param_split, degree, sequence_parallel, &carried);
        let mut changed = false;
        for s in &g.scopes {
            if let Some((ValueRef::Node(a), ValueRef::Node(b))) = s.carry {
                let (sa, sb) = (states.get(a).copied(), states.get(b).copied());
                let inside = carried
                    .iter()
                    .find(|(v, _)| *v == ValueRef::Node(a))
                    .map(|x| x.1);
                if let (Some(sa), Some(sb)) = (sa, sb) {
                    if sa != sb && inside != Some(sb) {
                        carried.push((ValueRef::Node(a), sb));
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return plans;
        }
    }
    pass(g, param_split, degree, sequence_parallel, &carried).0
}

/// The `repeat` body (a scope) that takes `v` as its carried input, if
/// node `node` is inside it.
pub fn carried_in(g: &Graph, node: usize, v: ValueRef) -> Option<usize> {
    (0..g.scopes.len()).find(|&b| {
        g.scopes[b].carry.is_some_and(|(a, _)| a == v) && g.within(g.nodes[node].scope, b)
    })
}

/// One propagation over the nodes in order; `carried` overrides the state
/// of values a `repeat` body takes, as seen inside the body.
fn pass(
    g: &Graph,
    param_split: &[Option<usize>],
    degree: usize,
    sequence_parallel: bool,
    carried: &[(ValueRef, State)],
) -> (Vec<NodePlan>, Vec<State>) {
    let mut states: Vec<State> = Vec::with_capacity(g.nodes.len());
    let mut plans = Vec::with_capacity(g.nodes.len());
    for (n, node) in g.nodes.iter().enumerate() {
        let input_states: Vec<State> = node
            .inputs
            .iter()
            .map(|v| match *v {
                ValueRef::Node(j) => match carried.iter().find(|(c, _)| c == v) {
                    Some((_, s)) if carried_in(g, n, *v).is_some() => *s,
                    _ => states.get(j).copied().unwrap_or(State::Whole),
                },
                ValueRef::Param(p) => match param_split.get(p).copied().flatten() {
                    Some(d) if degree > 1 => State::Split(d),
                    _ => State::Whole,
                },
                ValueRef::Input(_) => State::Whole,
            })
            .collect();
        let mut plan = rule(g, node, &input_states, degree, sequence_parallel);
        if degree <= 1 {
            plan = NodePlan {
                out: Some(State::Whole),
                work_div: 1.0,
                ..NodePlan::default()
            };
        }
        let rank = node.out.dims.len();
        let seq = rank.checked_sub(2).filter(|_| rank >= 3);
        let seq_splits = seq.is_some_and(|k| {
            node.out.dims[k]
                .size_or_name()
                .as_const()
                .is_some_and(|n| n % degree as i64 == 0 && n >= degree as i64)
        });
        let out = match plan.out {
            Some(State::Partial) if sequence_parallel && seq_splits => {
                plan.scatter_out = seq;
                State::Split(seq.unwrap_or(0))
            }
            Some(State::Partial) => {
                plan.reduce_out = true;
                State::Whole
            }
            Some(s) => s,
            None => State::Whole,
        };
        plan.out = Some(out);
        // A whole parameter applied to split data gets a partial gradient.
        if degree > 1 && out != State::Whole {
            for (i, v) in node.inputs.iter().enumerate() {
                if matches!(v, ValueRef::Param(_)) && input_states[i] == State::Whole {
                    plan.partial_param_grads.push(i);
                }
            }
        }
        states.push(out);
        plans.push(plan);
    }
    (plans, states)
}

/// The rule for one node. `None` as the output state means the fallback:
/// gather every split input and compute whole.
fn rule(g: &Graph, node: &Node, ins: &[State], degree: usize, sp: bool) -> NodePlan {
    let rank_of = |i: usize| g.type_of(node.inputs[i]).dims.len();
    let out_rank = node.out.dims.len();
    let split_inputs: Vec<usize> = (0..ins.len()).filter(|&i| ins[i] != State::Whole).collect();
    let d = degree as f64;
    let keep = |s: State, gather: Vec<usize>, reduce_grad: Vec<usize>, div: f64| NodePlan {
        out: Some(s),
        gather,
        reduce_grad,
        work_div: div,
        ..NodePlan::default()
    };
    if split_inputs.is_empty() {
        return keep(State::Whole, Vec::new(), Vec::new(), 1.0);
    }
    let planned = match &node.op {
        Op::Linear if ins.len() == 2 => {
            let x_last = rank_of(0).saturating_sub(1);
            match (ins[0], ins[1]) {
                // Column-parallel: whole input, weight split by output rows.
                (State::Whole, State::Split(0)) => Some(keep(
                    State::Split(out_rank.saturating_sub(1)),
                    Vec::new(),
                    vec![0],
                    d,
                )),
                // Sequence parallelism: gather the sequence shards first,
                // and reduce-scatter the input's gradient back to them.
                (State::Split(k), State::Split(0)) if sp && k < x_last => Some(NodePlan {
                    scatter_grad: true,
                    ..keep(
                        State::Split(out_rank.saturating_sub(1)),
                        vec![0],
                        vec![0],
                        d,
                    )
                }),
                // Row-parallel: input split along the reduced dim.
                (State::Split(k), State::Split(1)) if k == x_last => {
                    Some(keep(State::Partial, Vec::new(), Vec::new(), d))
                }
                _ => None,
            }
        }
        // A table split by rows: each rank looks up its rows, zero
        // elsewhere, and the sum over ranks is the lookup.
        Op::Embedding if ins.len() == 2 && ins[0] == State::Whole && ins[1] == State::Split(0) => {
            Some(keep(State::Partial, Vec::new(), Vec::new(), 1.0))
        }
        Op::Attention { .. } => {
            let heads = out_rank.checked_sub(2);
            let all =
                (0..ins.len()).all(|i| Some(ins[i]) == rank_of(i).checked_sub(2).map(State::Split));
            match heads {
                Some(h) if all && ins.len() >= 3 => {
                    Some(keep(State::Split(h), Vec::new(), Vec::new(), d))
                }
                _ => None,
            }
        }
        Op::Norm { .. } | Op::Rotary { .. } => match ins[0] {
            State::Split(k)
                if k + 1 < rank_of(0)
                    && (1..ins.len()).all(|i| ins[i] == State::Whole)
                    && out_rank == rank_of(0) =>
            {
                Some(keep(State::Split(k), Vec::new(), Vec::new(), d))
            }
            _ => None,
        },
        Op::Reshape(_) => match ins[0] {
            State::Split(k) => reshape_split(g, node, k, degree)
                .map(|o| keep(State::Split(o), Vec::new(), Vec::new(), d)),
            _ => None,
        },
        // Operations computed position by position (with broadcasting).
        Op::Elementwise { .. }
        | Op::Dropout { .. }
        | Op::Cast { .. }
        | Op::OnesLike
        | Op::ZerosLike => elementwise(g, node, ins, degree),
        // Everything else computes whole: the fallback below gathers its
        // split inputs.
        Op::Linear
        | Op::Embedding
        | Op::Matmul
        | Op::Einsum { .. }
        | Op::Conv { .. }
        | Op::Patchify { .. }
        | Op::Unpatchify { .. }
        | Op::Sinusoidal { .. }
        | Op::CausalMask
        | Op::MaskTokens { .. }
        | Op::TokenMask { .. }
        | Op::Softmax { .. }
        | Op::Reduce { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Permute { .. }
        | Op::Broadcast
        | Op::Slice { .. }
        | Op::Take { .. }
        | Op::OneHot
        | Op::Arange
        | Op::Stack
        | Op::Select { .. } => None,
    };
    planned.unwrap_or_else(|| NodePlan {
        out: Some(State::Whole),
        gather: split_inputs
            .into_iter()
            .filter(|&i| ins[i] != State::Partial)
            .collect(),
        work_div: 1.0,
        ..NodePlan::default()
    })
}

/// An elementwise node keeps a split when every split input is split along
/// the same output dim (aligned from the right) at full size, and every
/// whole input is broadcast along it (size 1 or absent).
fn elementwise(g: &Graph, node: &Node, ins: &[State], degree: usize) -> Option<NodePlan> {
    let out_rank = node.out.dims.len();
    let out_size = |k: usize| {
        node.out
            .dims
            .get(k)
            .and_then(|d| d.size_or_name().as_const())
    };
    let mut at: Option<usize> = None;
    for (i, s) in ins.iter().enumerate() {
        let ty = g.type_of(node.inputs[i]);
        let offset = out_rank.checked_sub(ty.dims.len())?;
        if let State::Split(k) = *s {
            let o = offset + k;
            let size = ty.dims.get(k).and_then(|d| d.size_or_name().as_const());
            if size != out_size(o) || at.is_some_and(|a| a != o) {
                return None;
            }
            at = Some(o);
        } else if *s == State::Partial {
            return None;
        }
    }
    let o = at?;
    let mut narrow = Vec::new();
    for (i, s) in ins.iter().enumerate() {
        if *s == State::Whole {
            let ty = g.type_of(node.inputs[i]);
            let offset = out_rank - ty.dims.len().min(out_rank);
            if o >= offset {
                let size = ty
                    .dims
                    .get(o - offset)
                    .and_then(|d| d.size_or_name().as_const());
                if size == out_size(o) && size != Some(1) {
                    // A whole operand as large as the split dim: take this
                    // rank's part of it.
                    narrow.push((i, o - offset));
                } else if size != Some(1) {
                    return None;
                }
            }
        }
    }
    Some(NodePlan {
        out: Some(State::Split(o)),
        narrow,
        work_div: degree as f64,
        ..NodePlan::default()
    })
}

/// Where a split along input dim `k` lands after a reshape: the output dim
/// whose block of elements starts where dim `k`'s does (the product of the
/// dims after it is equal on both sides), if that dim divides evenly.
fn reshape_split(g: &Graph, node: &Node, k: usize, degree: usize) -> Option<usize> {
    let sizes = |dims: &[crate::ir::types::tensor::Dim]| -> Option<Vec<i64>> {
        dims.iter().map(|d| d.size_or_name().as_const()).collect()
    };
    let input = sizes(&g.type_of(*node.inputs.first()?).dims)?;
    let output = sizes(&node.out.dims)?;
    let outer = |dims: &[i64], k: usize| -> i64 { dims[k..].iter().product() };
    let boundary = outer(&input, k);
    (0..output.len())
        .find(|&o| outer(&output, o) == boundary && output[o] % degree as i64 == 0 && output[o] > 1)
}
