//! The per-rank execution graph: what one rank runs for one training step.
//!
//! The lowering (`lower/`) produces a [`Plan`]: the layout, the process
//! groups and one [`RankProgram`] per rank. A rank program is an ordered
//! list of [`Instr`]s that the runtime executes as it is: data loads, forward
//! and backward applications of the typed IR's nodes on local shapes,
//! collectives over named process groups, batched point-to-point transfers
//! between pipeline stages, and the optimizer step. Nothing else decides
//! what a rank does, so what the planner verifies (`verify.rs`) and costs
//! (`cost/`) is what runs.
//!
//! Conventions:
//!
//! - A node of the IR that sits inside `repeat` bodies runs once per copy;
//!   `copy` numbers the copies row-major over the enclosing `repeat`s,
//!   outermost first (for the model's one stack of layers, the layer).
//! - Shapes are local: the leading `batch` dim is the micro-batch a rank
//!   runs, and a dim split by tensor parallelism is this rank's part.
//! - A collective's `elems` is the size of the whole buffer on one rank:
//!   the tensor of an all-reduce, the *output* of an all-gather and the
//!   *input* of a reduce-scatter. Bytes are `elems * dtype bytes`.

use std::fmt;

use super::layout::Layout;
use super::shard::Placement;
use crate::ir::types::tensor::DType;
use crate::ir::ValueRef;

/// The plan for every rank of an experiment.
#[derive(Clone, Debug)]
pub struct Plan {
    pub layout: Layout,
    /// Samples one rank runs per micro-batch.
    pub micro_batch: i64,
    /// Micro-batches per rank per optimizer step (pipeline micro-batches
    /// times gradient accumulation).
    pub microbatches: usize,
    /// Bytes of the model float (2 for bf16 training, 4 for f32).
    pub float_bytes: u64,
    pub placements: Vec<Placement>,
    pub groups: Vec<Group>,
    /// The programs of the ranks planned: every rank, or the
    /// representatives a search asked for.
    pub ranks: Vec<RankProgram>,
}

impl Plan {
    /// The program of `rank`, if it was planned.
    pub fn rank(&self, rank: usize) -> Option<&RankProgram> {
        self.ranks.iter().find(|r| r.rank == rank)
    }
}

/// What a process group is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKind {
    /// Ranks holding the same shard of the model (gradient averaging).
    Data,
    /// Ranks that together hold one layer (tensor parallelism).
    Tensor,
    /// The data-parallel ranks ZeRO shards model state over.
    Zero,
    /// The data-parallel ranks outside the ZeRO group (hybrid sharding):
    /// they average the shards the ZeRO group reduced.
    Replica,
    /// Stages that hold copies of one tied parameter (an embedding used by
    /// the first stage and the output head of the last).
    Tied,
}

impl GroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::Data => "data",
            GroupKind::Tensor => "tensor",
            GroupKind::Zero => "zero",
            GroupKind::Replica => "replica",
            GroupKind::Tied => "tied",
        }
    }
}

/// A process group: a set of ranks that run collectives together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub kind: GroupKind,
    /// The mesh axes it spans (empty for a tied group).
    pub axes: Vec<String>,
    /// Its ranks, ascending.
    pub ranks: Vec<usize>,
}

/// One rank's program for one training step.
#[derive(Clone, Debug)]
pub struct RankProgram {
    pub rank: usize,
    /// Coordinates on the mesh axes, in mesh order.
    pub coords: Vec<usize>,
    pub stage: usize,
    /// The parameter shards this rank holds.
    pub params: Vec<LocalParam>,
    pub ops: Vec<Instr>,
}

impl RankProgram {
    /// The loads and first forward ops of micro-batch 0, in program order,
    /// with the ZeRO-3 gathers of the weights they use, the tensor-parallel
    /// collectives of their values and the transfers of its activations
    /// between pipeline stages: what an evaluation runs (no backward,
    /// collectives of gradients or step; recomputations are the backward
    /// pass's).
    pub fn forward_only(&self) -> RankProgram {
        let first_backward = self
            .ops
            .iter()
            .position(|op| matches!(op, Instr::Backward { .. }))
            .unwrap_or(self.ops.len());
        let ops = self
            .ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| {
                let keep = match op {
                    Instr::Load { micro, .. } => *micro == 0,
                    Instr::Forward {
                        micro, recompute, ..
                    } => *micro == 0 && !*recompute,
                    Instr::Collective(c) => match &c.purpose {
                        Purpose::GatherParams(_) => i < first_backward,
                        Purpose::Forward(v) => v.micro == 0 && i < first_backward,
                        _ => false,
                    },
                    Instr::P2p(ts) => {
                        let first: Vec<Transfer> = ts
                            .iter()
                            .filter(|t| t.value.micro == 0 && !t.grad)
                            .cloned()
                            .collect();
                        return (!first.is_empty()).then_some(Instr::P2p(first));
                    }
                    Instr::Backward { .. } | Instr::Step => false,
                };
                keep.then(|| op.clone())
            })
            .collect();
        RankProgram {
            ops,
            ..self.clone()
        }
    }
}

/// A parameter shard held by a rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalParam {
    /// Index into [`Plan::placements`].
    pub placement: usize,
    /// The part of each dim this rank holds (a half-open range).
    pub ranges: Vec<(i64, i64)>,
    /// Whether this rank owns the shard among the ranks of its replica that
    /// hold it (tensor-parallel copies of a replicated parameter, stages
    /// that hold a tied parameter): the owner counts it.
    pub owner: bool,
    /// Under ZeRO, the slice of the flattened shard whose optimizer state
    /// (and, from stage 2, gradient; at stage 3, weights) this rank keeps:
    /// `(start, end)` in elements.
    pub zero_slice: Option<(i64, i64)>,
}

impl LocalParam {
    /// Elements of the shard (per copy of the placement).
    pub fn numel(&self) -> i64 {
        self.ranges.iter().map(|(a, b)| b - a).product()
    }
}

/// The value an op computes or moves: a node's output, a parameter or an
/// input, for one copy and one micro-batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Value {
    pub value: ValueRef,
    pub copy: usize,
    pub micro: usize,
}

/// A collective operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CollectiveKind {
    AllReduce,
    AllGather,
    ReduceScatter,
}

impl CollectiveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectiveKind::AllReduce => "all_reduce",
            CollectiveKind::AllGather => "all_gather",
            CollectiveKind::ReduceScatter => "reduce_scatter",
        }
    }
}

/// Why a collective runs: what the runtime applies it to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Tensor parallelism in the forward pass: the output of a node (the
    /// partial sums of a row-parallel linear, or a split value a node
    /// needs whole).
    Forward(Value),
    /// Tensor parallelism in the backward pass: the gradient of a value.
    Backward(Value),
    /// ZeRO-3 gathers these placements' weights before use.
    GatherParams(Vec<usize>),
    /// Gradients of these placements (a bucket), reduced over data ranks.
    Gradients(Vec<usize>),
    /// ZeRO-1/2 gathers these placements' updated weights after the step.
    UpdatedParams(Vec<usize>),
}

/// A collective on one rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collective {
    pub kind: CollectiveKind,
    /// Index into [`Plan::groups`].
    pub group: usize,
    pub dtype: DType,
    /// Elements of the whole buffer (see the module docs).
    pub elems: i64,
    /// The dim a tensor-parallel all-gather concatenates along or a
    /// reduce-scatter splits (the sequence under sequence parallelism, the
    /// split dim of a gathered or narrowed value); `None` for flat buffers
    /// (ZeRO, gradients) and all-reduces.
    pub dim: Option<usize>,
    pub purpose: Purpose,
}

/// A send or a receive of a point-to-point transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub send: bool,
    pub peer: usize,
    pub value: Value,
    /// Whether it carries the value's gradient (backward) or the value.
    pub grad: bool,
    pub shape: Vec<i64>,
    pub dtype: DType,
}

/// One instruction of a rank program.
#[derive(Clone, Debug, PartialEq)]
pub enum Instr {
    /// The data pipeline hands over a modality for a micro-batch.
    Load {
        input: usize,
        micro: usize,
        shape: Vec<i64>,
        dtype: DType,
    },
    /// A node's forward application. `recompute` marks the second forward
    /// of a checkpointed block, run during the backward pass.
    Forward {
        node: usize,
        copy: usize,
        micro: usize,
        shape: Vec<i64>,
        dtype: DType,
        /// FLOPs of this application on this rank (2 per multiply-add).
        flops: f64,
        /// Whether the output stays in memory until the node's backward of
        /// the same micro-batch: false inside a checkpointed block on its
        /// first forward (only the block's input is kept, and the block is
        /// run again before its backward).
        saved: bool,
        recompute: bool,
        /// Inputs `(position, dim)` that this rank holds whole but the node
        /// takes in part: the runtime cuts this rank's part of the dim
        /// (its index in the tensor group, as for every split) before the
        /// node runs.
        narrow: Vec<(usize, usize)>,
        /// Inputs (by position) that this rank holds split but the node
        /// takes whole: the tensor-parallel all-gather before it (listed
        /// once per pass, for its first consumer) supplies them.
        gather: Vec<usize>,
        /// Inputs (by position) whose gradient this application leaves
        /// partial on each rank of the tensor group: it is summed (or, when
        /// gathered from sequence shards, reduce-scattered) by the
        /// `Backward` collective on that value before it joins the value's
        /// other gradients.
        partial_grad: Vec<usize>,
    },
    /// A node's backward application: gradients of its inputs from the
    /// gradient of its output. Its FLOPs are twice the forward's for matrix
    /// products (gradients of both operands).
    Backward {
        node: usize,
        copy: usize,
        micro: usize,
        flops: f64,
    },
    Collective(Collective),
    /// Sends and receives posted together and then waited for (NCCL's
    /// group semantics), so that neighbouring stages exchanging both ways
    /// do not wait on each other.
    P2p(Vec<Transfer>),
    /// The optimizer updates the shards (or ZeRO slices) this rank owns.
    Step,
}

impl fmt::Display for Instr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Instr::Load { input, micro, .. } => write!(f, "load input:{input} mb{micro}"),
            Instr::Forward {
                node,
                copy,
                micro,
                recompute,
                ..
            } => {
                let r = if *recompute { " (recompute)" } else { "" };
                write!(f, "forward %{node}#{copy} mb{micro}{r}")
            }
            Instr::Backward {
                node, copy, micro, ..
            } => write!(f, "backward %{node}#{copy} mb{micro}"),
            Instr::Collective(c) => write!(
                f,
                "{} group {} {} x {}",
                c.kind.as_str(),
                c.group,
                c.elems,
                c.dtype.as_str()
            ),
            Instr::P2p(ts) => {
                let parts: Vec<String> = ts
                    .iter()
                    .map(|t| {
                        format!(
                            "{} {}{} mb{} {} rank {}",
                            if t.send { "send" } else { "recv" },
                            if t.grad { "grad " } else { "" },
                            t.value.value.label(),
                            t.value.micro,
                            if t.send { "to" } else { "from" },
                            t.peer
                        )
                    })
                    .collect();
                f.write_str(&parts.join(", "))
            }
            Instr::Step => f.write_str("optimizer step"),
        }
    }
}
