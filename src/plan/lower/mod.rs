//! Lowering: from the typed IR and a layout to every rank's program.
//!
//! The steps, each a pure function of the graph and the layout:
//!
//! 1. place parameters on stages and tensor shards (`shard.rs`) and find
//!    which stages use each (a tied embedding is held by two);
//! 2. propagate tensor-parallel states through the nodes (`tp.rs`);
//! 3. unroll the model into node *copies* in program order (a `repeat`
//!    body once per layer) and give each the stage of its layer;
//! 4. order each stage's forward and backward passes over micro-batches by
//!    the schedule (1F1B or GPipe), with batched sends and receives of the
//!    values and gradients that cross stages;
//! 5. emit ZeRO parameter gathers, gradient reductions in buckets (in the
//!    order gradients become ready, so they overlap the backward pass),
//!    tied-parameter reductions and the optimizer step.
//!
//! `verify.rs` then checks the result: collectives agree across each
//! group, sends meet receives, and no rank waits forever.

use std::collections::HashMap;
use std::fmt;

use super::layout::Layout;
use super::program::*;
use super::shard::{place, shards, split_dims, Placement, PlanError};
use super::tp::{self, NodePlan};
use crate::ir::layout::PipelineSchedule;
use crate::ir::types::size::Size;
use crate::ir::types::tensor::DType;
use crate::ir::{Graph, ValueRef};

/// Why an experiment cannot be lowered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LowerError {
    Place(PlanError),
    /// A layout setting the lowering does not implement yet.
    Unsupported(String),
    /// The global batch does not split into the micro-batches.
    Batch {
        global: i64,
        ranks: usize,
        microbatches: usize,
    },
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LowerError::Place(e) => e.fmt(f),
            LowerError::Unsupported(what) => write!(f, "{what} is not supported by the planner yet"),
            LowerError::Batch {
                global,
                ranks,
                microbatches,
            } => write!(
                f,
                "the global batch of {global} does not split into {ranks} data-parallel ranks x {microbatches} micro-batches"
            ),
        }
    }
}

impl std::error::Error for LowerError {}

impl From<PlanError> for LowerError {
    fn from(e: PlanError) -> Self {
        LowerError::Place(e)
    }
}

/// One rank per pipeline stage, with data and tensor index 0: the ranks
/// whose programs stand for all others (data and tensor peers run the same
/// program on other shards).
pub fn representatives(layout: &Layout) -> Vec<usize> {
    let mesh = &layout.mesh;
    let mut out: Vec<usize> = (0..layout.stages())
        .map(|s| {
            let coords = stage_coords(layout, &vec![0; mesh.axes().len()], s);
            mesh.rank(&coords)
        })
        .collect();
    out.dedup();
    out
}

/// `base` with its pipeline coordinates set to stage `s` (row-major over
/// the pipeline axes).
fn stage_coords(layout: &Layout, base: &[usize], mut s: usize) -> Vec<usize> {
    let mut coords = base.to_vec();
    for (i, a) in layout.mesh.axes().iter().enumerate().rev() {
        if layout.pipeline.contains(&a.name) {
            coords[i] = s % a.size;
            s /= a.size;
        }
    }
    coords
}

/// Lowers `g` under `layout`: the programs of `ranks`, or of every rank.
pub fn lower(g: &Graph, layout: &Layout, ranks: Option<&[usize]>) -> Result<Plan, LowerError> {
    if layout.schedule == PipelineSchedule::Interleaved {
        return Err(LowerError::Unsupported(
            "the interleaved pipeline schedule".to_string(),
        ));
    }
    let nested = g
        .scopes
        .iter()
        .enumerate()
        .any(|(i, s)| s.repeat > 1 && s.parent.is_some_and(|p| g.multiplicity(p) > 1) && i > 0);
    if nested {
        return Err(LowerError::Unsupported(
            "a `repeat` inside another `repeat`".to_string(),
        ));
    }
    let placements = place(g, layout)?;
    let dp = layout.data_degree().max(1);
    let m = layout.steps_per_update();
    let global = g.global_batch.unwrap_or((dp * m) as i64);
    let per = (dp * m) as i64;
    if global <= 0 || global % per != 0 {
        return Err(LowerError::Batch {
            global,
            ranks: dp,
            microbatches: m,
        });
    }
    let lw = Lowerer::new(g, layout, placements, global / per);
    let all: Vec<usize> = (0..layout.mesh.size()).collect();
    let ranks = ranks.unwrap_or(&all);
    let mut programs = Vec::with_capacity(ranks.len());
    let mut groups = Groups::default();
    for &r in ranks {
        programs.push(lw.program(r, &mut groups));
    }
    Ok(Plan {
        layout: layout.clone(),
        micro_batch: lw.micro_batch,
        microbatches: m,
        float_bytes: g.float_bytes,
        placements: lw.placements,
        groups: groups.list,
        ranks: programs,
    })
}

/// Process groups, numbered as first met.
#[derive(Default)]
struct Groups {
    list: Vec<Group>,
    index: HashMap<(GroupKind, Vec<usize>), usize>,
}

impl Groups {
    /// The id of a group, or `None` for a group of one (no communication).
    fn id(&mut self, kind: GroupKind, axes: &[String], ranks: Vec<usize>) -> Option<usize> {
        if ranks.len() <= 1 {
            return None;
        }
        let key = (kind, ranks);
        if let Some(&i) = self.index.get(&key) {
            return Some(i);
        }
        let i = self.list.len();
        self.list.push(Group {
            kind,
            axes: axes.to_vec(),
            ranks: key.1.clone(),
        });
        self.index.insert(key, i);
        Some(i)
    }
}

/// A node applied once: the node and which copy of its `repeat` body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Inst {
    node: usize,
    copy: usize,
}

/// What lowering knows before looking at any one rank.
struct Lowerer<'g> {
    g: &'g Graph,
    layout: &'g Layout,
    placements: Vec<Placement>,
    micro_batch: i64,
    tp: Vec<NodePlan>,
    /// Program order: every node copy.
    order: Vec<Inst>,
    /// Stage of each entry of `order`.
    stage_of: Vec<usize>,
    /// Position in `order` of each instance.
    pos: HashMap<Inst, usize>,
    /// The `repeat` body a node belongs to, if any.
    body_of: Vec<Option<usize>>,
    /// Per placement, the stages that use it (the placed stage first).
    holders: Vec<Vec<usize>>,
    /// The placements of each layer (`None`: outside the layers), in
    /// order: a ZeRO-3 gather's members.
    by_layer: HashMap<Option<usize>, Vec<usize>>,
    /// Placement of each (param, layer).
    placement_of: HashMap<(usize, Option<usize>), usize>,
    /// Whether each node's output carries a gradient.
    needs_grad: Vec<bool>,
    /// The pipelined `repeat` body.
    pipelined: Option<usize>,
    /// Per body node, the inputs `(position, dim)` its first copy narrows
    /// from the whole value the body takes (sequence parallelism).
    entry_narrow: HashMap<usize, Vec<(usize, usize)>>,
    /// Placements whose gradients are partial over the tensor group.
    partial_grads: Vec<usize>,
    /// Per node, the inputs whose gradient is all-reduced after its
    /// backward (see `fuse_grad_reductions`).
    reduce_grad: Vec<Vec<usize>>,
    /// Per stage, the values it receives: (producer, producing stage).
    incoming: Vec<Vec<(Inst, usize)>>,
    /// Per stage, the values it sends: (producer, consuming stage).
    outgoing: Vec<Vec<(Inst, usize)>>,
}

impl<'g> Lowerer<'g> {
    fn new(g: &'g Graph, layout: &'g Layout, placements: Vec<Placement>, micro_batch: i64) -> Self {
        let stages = layout.stages().max(1);
        // Which body each node is in (only the outermost repeats exist).
        let body_of = g.bodies();
        let pipelined = (0..g.scopes.len()).find(|&s| g.scopes[s].repeat > 1);
        let first_pipelined = pipelined.and_then(|p| body_of.iter().position(|b| *b == Some(p)));
        // Program order: a body's nodes once per copy, where it starts.
        let mut order = Vec::new();
        let mut done = vec![false; g.scopes.len()];
        for (i, b) in body_of.iter().enumerate() {
            match b {
                None => order.push(Inst { node: i, copy: 0 }),
                Some(b) if !done[*b] => {
                    done[*b] = true;
                    let members: Vec<usize> = (0..g.nodes.len())
                        .filter(|&j| body_of[j] == Some(*b))
                        .collect();
                    for copy in 0..g.scopes[*b].repeat.max(1) as usize {
                        order.extend(members.iter().map(|&node| Inst { node, copy }));
                    }
                }
                Some(_) => {}
            }
        }
        let layers = pipelined
            .map(|p| g.scopes[p].repeat.max(1) as usize)
            .unwrap_or(1);
        let stage_of: Vec<usize> = order
            .iter()
            .map(|inst| match (body_of[inst.node], pipelined) {
                (Some(b), Some(p)) if b == p => inst.copy * stages / layers,
                _ => match first_pipelined {
                    Some(f) if inst.node > f => stages - 1,
                    _ => 0,
                },
            })
            .collect();
        let pos: HashMap<Inst, usize> = order.iter().enumerate().map(|(i, x)| (*x, i)).collect();
        let placement_of: HashMap<(usize, Option<usize>), usize> = placements
            .iter()
            .enumerate()
            .map(|(k, p)| ((p.param, p.layer), k))
            .collect();
        let param_split = split_dims(g.params.len(), &placements);
        let tp = tp::propagate(
            g,
            &param_split,
            layout.tensor_degree(),
            layout.sequence_parallel,
        );
        let reduce_grad = fuse_grad_reductions(g, &tp);
        let needs_grad = g.grad_carriers();
        let mut lw = Lowerer {
            g,
            layout,
            placements,
            micro_batch,
            tp,
            order,
            stage_of,
            pos,
            body_of,
            holders: Vec::new(),
            placement_of,
            needs_grad,
            pipelined,
            by_layer: HashMap::new(),
            entry_narrow: HashMap::new(),
            partial_grads: Vec::new(),
            reduce_grad,
            incoming: vec![Vec::new(); stages],
            outgoing: vec![Vec::new(); stages],
        };
        for (k, inst) in lw.order.iter().enumerate() {
            let to = lw.stage_of[k];
            for v in &g.nodes[inst.node].inputs {
                let Some(p) = lw.producer(*inst, *v) else {
                    continue;
                };
                let Some(&pk) = lw.pos.get(&p) else { continue };
                let from = lw.stage_of[pk];
                if from != to && !lw.incoming[to].contains(&(p, from)) {
                    lw.incoming[to].push((p, from));
                    lw.outgoing[from].push((p, to));
                }
            }
        }
        let mut holders: Vec<Vec<usize>> = lw.placements.iter().map(|p| vec![p.stage]).collect();
        for (k, inst) in lw.order.iter().enumerate() {
            for v in &g.nodes[inst.node].inputs {
                if let ValueRef::Param(p) = *v {
                    if let Some(pl) = lw.placement(p, *inst) {
                        if !holders[pl].contains(&lw.stage_of[k]) {
                            holders[pl].push(lw.stage_of[k]);
                        }
                    }
                }
            }
        }
        lw.holders = holders;
        for (k, p) in lw.placements.iter().enumerate() {
            lw.by_layer.entry(p.layer).or_default().push(k);
        }
        // The first copy of a body narrows the whole value it takes when
        // the body carries it split (sequence parallelism).
        for (n, node) in g.nodes.iter().enumerate() {
            for (i, v) in node.inputs.iter().enumerate() {
                let Some(b) = tp::carried_in(g, n, *v) else {
                    continue;
                };
                let out_state = match g.scopes[b].carry {
                    Some((_, ValueRef::Node(o))) => lw.tp[o].out,
                    _ => None,
                };
                let in_state = match *v {
                    ValueRef::Node(j) => lw.tp[j].out,
                    _ => None,
                };
                if let (Some(tp::State::Split(d)), Some(tp::State::Whole)) = (out_state, in_state) {
                    lw.entry_narrow.entry(n).or_default().push((i, d));
                }
            }
        }
        let mut partial = Vec::new();
        for inst in &lw.order {
            for &i in &lw.tp[inst.node].partial_param_grads {
                if let ValueRef::Param(p) = g.nodes[inst.node].inputs[i] {
                    if let Some(pl) = lw.placement(p, *inst) {
                        if !partial.contains(&pl) {
                            partial.push(pl);
                        }
                    }
                }
            }
        }
        partial.sort_unstable();
        lw.partial_grads = partial;
        lw
    }

    /// The placement of parameter `p` as used by `inst`.
    fn placement(&self, p: usize, inst: Inst) -> Option<usize> {
        let layer = match (self.body_of[inst.node], self.pipelined) {
            (Some(b), Some(q))
                if b == q && self.placement_of.contains_key(&(p, Some(inst.copy))) =>
            {
                Some(inst.copy)
            }
            _ => None,
        };
        self.placement_of
            .get(&(p, layer))
            .or_else(|| self.placement_of.get(&(p, Some(0))))
            .copied()
    }

    /// The instance that produced input `v` of `inst`, for a node input.
    fn producer(&self, inst: Inst, v: ValueRef) -> Option<Inst> {
        self.g
            .producer(&self.body_of, inst.node, inst.copy, v)
            .map(|(node, copy)| Inst { node, copy })
    }

    /// The local shape of a value of type `ty`: the batch dim is the
    /// micro-batch, a split dim this rank's part.
    fn local_shape(&self, ty: &crate::ir::types::tensor::Tensor, split: Option<usize>) -> Vec<i64> {
        let batch = Size::symbol("batch");
        let tp = self.layout.tensor_degree().max(1) as i64;
        ty.dims
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let n = d.size_or_name().as_const().unwrap_or(1);
                let n = if d.name == batch {
                    n * self.micro_batch
                } else {
                    n
                };
                if split == Some(k) {
                    n / tp
                } else {
                    n
                }
            })
            .collect()
    }

    /// The inputs `inst` narrows: its node's, and on a body's first copy
    /// the value the body takes when it carries it split.
    fn narrowed(&self, inst: Inst) -> Vec<(usize, usize)> {
        let mut out = self.tp[inst.node].narrow.clone();
        if inst.copy == 0 {
            if let Some(extra) = self.entry_narrow.get(&inst.node) {
                out.extend(extra.iter().copied());
            }
        }
        out
    }

    fn out_split(&self, node: usize) -> Option<usize> {
        match self.tp[node].out {
            Some(tp::State::Split(k)) => Some(k),
            _ => None,
        }
    }

    /// The whole (unsplit) local size of a node's output.
    fn whole_elems(&self, node: usize) -> i64 {
        self.local_shape(&self.g.nodes[node].out, None)
            .iter()
            .product()
    }
}

/// Where the partial input gradients of column-parallel nodes are summed.
/// A value whose every consumer leaves its gradient partial (the normed
/// input of the query, key and value projections) is all-reduced once,
/// after the backward of its first consumer, which runs last; otherwise
/// each partial contribution is all-reduced on its own before it joins
/// whole ones. Values carried between `repeat` copies are always reduced
/// per consumer, since their consumers differ between copies.
fn fuse_grad_reductions(g: &Graph, tp: &[NodePlan]) -> Vec<Vec<usize>> {
    let carried: Vec<ValueRef> = g
        .scopes
        .iter()
        .filter_map(|s| s.carry)
        .flat_map(|(a, b)| [a, b])
        .collect();
    let mut consumers: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
    for (n, node) in g.nodes.iter().enumerate() {
        for (i, v) in node.inputs.iter().enumerate() {
            if let ValueRef::Node(j) = *v {
                consumers.entry(j).or_default().push((n, i));
            }
        }
    }
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); g.nodes.len()];
    for (n, plan) in tp.iter().enumerate() {
        for &i in &plan.reduce_grad {
            let v = g.nodes[n].inputs[i];
            let fused = match v {
                ValueRef::Node(j) if !carried.contains(&v) => consumers.get(&j).map(|cs| {
                    let all = cs.iter().all(|&(c, ci)| tp[c].reduce_grad.contains(&ci));
                    (all, cs.iter().map(|&(c, _)| c).min())
                }),
                _ => None,
            };
            match fused {
                Some((true, first)) if first != Some(n) => {}
                _ => out[n].push(i),
            }
        }
    }
    out
}

/// The dtype a value is computed in: floating-point values in the model
/// float (bf16 under mixed precision, where autocast runs matrix products
/// and the activations they produce in bf16 whatever the data's dtype),
/// others as they are. Loaded data keeps its own dtype.
pub fn compute_dtype(d: DType) -> DType {
    if d.is_float() {
        DType::Float
    } else {
        d
    }
}

mod passes;
mod rank;

use rank::{Bucket, Builder};
