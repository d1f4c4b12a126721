//! The cost model: memory per rank and step time of a lowered [`Plan`].
//!
//! Everything is a pure function of the graph, the plan and the
//! [`Cluster`] figures, so two runs give the same numbers. The conventions
//! and formulas, with a worked example, are in `docs/cost-model.md`:
//!
//! - collectives cost what NCCL's ring (or, for an all-reduce, the cheaper
//!   of ring and tree) costs on the slowest link of their group: NVLink
//!   inside a node, the network across nodes;
//! - memory is model state (`memory.rs`) plus the peak of activations
//!   found by scanning the rank's ops plus communication buffers;
//! - step time comes from replaying the planned ranks' programs on a
//!   timeline with a compute stream and a communication stream per rank,
//!   where pipeline receives wait for their peer's send.

mod timeline;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::memory::model_state;
use super::program::*;
use crate::ir::{Graph, ValueRef};

pub use timeline::estimate;

/// One kind of link: bandwidth per GPU per direction and per-hop latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Bytes per second.
    pub bandwidth: f64,
    /// Seconds per step of a collective algorithm.
    pub latency: f64,
}

/// The machine a plan runs on.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub gpus_per_node: usize,
    /// Peak dense bf16 FLOP/s of one GPU.
    pub peak_flops: f64,
    /// The fraction of peak that matrix products achieve in practice.
    pub efficiency: f64,
    /// Device memory bandwidth (bytes/s), which bounds the optimizer step.
    pub memory_bandwidth: f64,
    /// Links between GPUs of one node.
    pub nvlink: Link,
    /// Links between nodes.
    pub network: Link,
}

impl Default for Cluster {
    /// H100 SXM nodes of 8 GPUs with NVLink 4 and one 400 Gb/s NDR
    /// InfiniBand adapter per GPU (sources in `docs/cost-model.md`).
    fn default() -> Cluster {
        Cluster {
            gpus_per_node: 8,
            peak_flops: 989e12,
            efficiency: 0.5,
            memory_bandwidth: 3.35e12,
            nvlink: Link {
                bandwidth: 450e9,
                latency: 3e-6,
            },
            network: Link {
                bandwidth: 50e9,
                latency: 10e-6,
            },
        }
    }
}

impl Cluster {
    /// The node a rank runs on.
    pub fn node(&self, rank: usize) -> usize {
        rank / self.gpus_per_node.max(1)
    }

    /// The link that bounds communication among `ranks`: NVLink when they
    /// share a node, else the network (a ring is as fast as its slowest hop).
    pub fn link(&self, ranks: &[usize]) -> Link {
        match ranks.first() {
            Some(&r) if ranks.iter().any(|&o| self.node(o) != self.node(r)) => self.network,
            _ => self.nvlink,
        }
    }

    /// Seconds for `flops` of matrix products.
    pub fn compute_time(&self, flops: f64) -> f64 {
        let rate = self.peak_flops * self.efficiency;
        if rate > 0.0 {
            flops / rate
        } else {
            0.0
        }
    }
}

/// Seconds for a collective over `p` ranks on a buffer of `bytes` (see the
/// module docs of `program.rs` for which buffer): ring algorithms, and for
/// an all-reduce the cheaper of ring and tree, as NCCL's tuner picks.
pub fn collective_time(kind: CollectiveKind, bytes: f64, p: usize, link: Link) -> f64 {
    if p <= 1 || link.bandwidth <= 0.0 {
        return 0.0;
    }
    let n = p as f64;
    let (a, bw) = (link.latency, link.bandwidth);
    match kind {
        CollectiveKind::AllReduce => {
            let ring = 2.0 * (n - 1.0) / n * bytes / bw + 2.0 * (n - 1.0) * a;
            let tree = 2.0 * n.log2() * a + 2.0 * bytes / bw;
            ring.min(tree)
        }
        CollectiveKind::AllGather | CollectiveKind::ReduceScatter => {
            (n - 1.0) / n * bytes / bw + (n - 1.0) * a
        }
    }
}

/// Bytes one rank sends in a ring collective over `p` ranks.
pub fn wire_bytes(kind: CollectiveKind, bytes: f64, p: usize) -> f64 {
    let n = p.max(1) as f64;
    match kind {
        CollectiveKind::AllReduce => 2.0 * (n - 1.0) / n * bytes,
        _ => (n - 1.0) / n * bytes,
    }
}

/// Seconds for a point-to-point transfer.
pub fn p2p_time(bytes: f64, link: Link) -> f64 {
    if link.bandwidth <= 0.0 {
        return 0.0;
    }
    bytes / link.bandwidth + link.latency
}

/// Bytes of device memory one rank needs at its peak.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MemoryCost {
    pub params: f64,
    pub grads: f64,
    pub optimizer: f64,
    /// The peak of live activations over the rank's program.
    pub activations: f64,
    /// Gradient buckets and ZeRO-3 gather buffers, two of each.
    pub buffers: f64,
    pub total: f64,
}

/// The cost of one pipeline stage, seen on one of its ranks.
#[derive(Clone, Debug, PartialEq)]
pub struct StageCost {
    pub stage: usize,
    pub rank: usize,
    pub memory: MemoryCost,
    /// FLOPs this rank runs per step, recomputation included.
    pub flops: f64,
    /// Seconds of compute: forward, backward, recomputation, optimizer.
    pub compute_s: f64,
    /// Of which recomputation of checkpointed blocks.
    pub recompute_s: f64,
    /// Seconds the compute stream waits on communication.
    pub comm_exposed_s: f64,
    /// Seconds idle waiting for other stages (pipeline bubble).
    pub bubble_s: f64,
    /// Bytes this rank sends per step in collectives, by group kind.
    pub comm_bytes: BTreeMap<GroupKind, f64>,
    /// Bytes this rank sends per step to other stages.
    pub p2p_bytes: f64,
}

/// The estimate for a whole plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub stages: Vec<StageCost>,
    pub step_s: f64,
    /// Samples per optimizer step over all replicas.
    pub global_batch: i64,
    /// The sequence length of the repeated body's carried value, or 1.
    pub tokens_per_sample: i64,
    pub tokens_per_s: f64,
    /// 3 x the unsharded forward FLOPs per sample x the global batch.
    pub model_flops: f64,
    pub mfu: f64,
    /// Whether every planned rank fits `layout.device_memory`.
    pub fits: bool,
    /// Anything the estimate had to assume (a plan that cannot finish).
    pub notes: Vec<String>,
}

/// The tokens of one sample: the second-to-last dim of the value the
/// model's first repeated body carries (`[batch, seq, d]`), or 1.
pub fn tokens_per_sample(g: &Graph) -> i64 {
    let carry = g.scopes.iter().find(|s| s.repeat > 1).and_then(|s| s.carry);
    let Some((_, out)) = carry else { return 1 };
    let exists = match out {
        ValueRef::Node(i) => i < g.nodes.len(),
        ValueRef::Param(i) => i < g.params.len(),
        ValueRef::Input(i) => i < g.inputs.len(),
    };
    let dims = if exists {
        &g.type_of(out).dims[..]
    } else {
        &[]
    };
    match dims.len() {
        n if n >= 2 => dims[n - 2].size_or_name().as_const().unwrap_or(1).max(1),
        _ => 1,
    }
}

/// Whether node `n`'s output takes memory of its own.
pub(crate) fn materialised(g: &Graph, n: usize) -> bool {
    let Some(node) = g.nodes.get(n) else {
        return true;
    };
    // Shape changes, slices and dropout with `p: 0` are views of their
    // input, as in PyTorch.
    !node.op.is_view()
}

/// The micro-batch an op belongs to, if any.
fn micro_of(op: &Instr) -> Option<usize> {
    match op {
        Instr::Load { micro, .. }
        | Instr::Forward { micro, .. }
        | Instr::Backward { micro, .. } => Some(*micro),
        Instr::P2p(ts) => ts.iter().map(|t| t.value.micro).max(),
        _ => None,
    }
}

/// A hash map with a fast, deterministic hasher for small integer keys
/// (the standard SipHash dominated the memory scan).
pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The multiply-rotate hash of rustc's `FxHasher`: not resistant to
/// chosen keys, which is fine for op indices of our own plans.
#[derive(Default)]
pub(super) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn elems_bytes(shape: &[i64], dtype: crate::ir::types::tensor::DType, fb: u64) -> f64 {
    shape.iter().map(|&d| d.max(0) as f64).product::<f64>() * dtype.bytes(fb) as f64
}

/// The memory `program` needs. Conventions: a saved forward output (and a
/// loaded input or received activation) of micro-batch `m` lives until the
/// rank's last backward of `m`; an unsaved output until the next op; a
/// recomputed one until its node's backward of that copy; a backward holds
/// the gradients of its output and input (each the output's size); views
/// ([`VIEWS`]) hold nothing. Buffers are two of the largest gradient bucket
/// and two of the largest ZeRO-3 gather (one in flight while the other is
/// used).
pub fn memory(g: &Graph, plan: &Plan, program: &RankProgram) -> MemoryCost {
    let ms = model_state(g, &plan.layout, &plan.placements, program.rank);
    // Tied copies held on another stage than their placement's are not in
    // `memory.rs`'s shards; they cost what the placed copies cost per element.
    let tied: f64 = program
        .params
        .iter()
        .filter(|lp| plan.placements.get(lp.placement).map(|p| p.stage) != Some(program.stage))
        .map(|lp| {
            let copies = plan.placements.get(lp.placement).map_or(1, |p| p.copies);
            (lp.numel() * copies) as f64
        })
        .sum();
    let scale = if ms.params > 0.0 {
        1.0 + tied / ms.params
    } else {
        1.0
    };
    let fb = plan.float_bytes;
    let micros = program
        .ops
        .iter()
        .filter_map(micro_of)
        .max()
        .map_or(0, |m| m + 1);
    let mut last_backward = vec![usize::MAX; micros];
    for (i, op) in program.ops.iter().enumerate() {
        if let Instr::Backward { micro, .. } = op {
            last_backward[*micro] = i;
        }
    }
    // Saved bytes per micro-batch, and per (node, copy, micro) the output's
    // bytes and what of it was recomputed.
    let mut per_micro = vec![0.0f64; micros];
    let mut outputs: FastMap<(usize, usize, usize), (f64, f64)> = FastMap::default();
    let (mut live, mut peak, mut prev, mut buckets, mut gathers) =
        (0.0f64, 0.0f64, 0.0, 0.0f64, 0.0f64);
    for (i, op) in program.ops.iter().enumerate() {
        // Bytes live during this op only, and bytes freed after it.
        let (mut now, mut release) = (0.0, 0.0);
        let mut keep = |m: usize, b: f64, live: &mut f64| {
            *live += b;
            if let Some(x) = per_micro.get_mut(m) {
                *x += b;
            }
        };
        match op {
            Instr::Load {
                micro,
                shape,
                dtype,
                ..
            } => keep(*micro, elems_bytes(shape, *dtype, fb), &mut live),
            Instr::Forward {
                node,
                copy,
                micro,
                shape,
                dtype,
                saved,
                recompute,
                ..
            } => {
                let b = if materialised(g, *node) {
                    elems_bytes(shape, *dtype, fb)
                } else {
                    0.0
                };
                let entry = outputs.entry((*node, *copy, *micro)).or_insert((0.0, 0.0));
                entry.0 = b;
                if *recompute {
                    live += b;
                    entry.1 += b;
                } else if *saved {
                    keep(*micro, b, &mut live);
                } else {
                    now = b;
                }
            }
            Instr::Backward {
                node, copy, micro, ..
            } => {
                if let Some(o) = outputs.get_mut(&(*node, *copy, *micro)) {
                    now = 2.0 * o.0;
                    // A recomputed output is freed once its backward ran.
                    release = std::mem::take(&mut o.1);
                }
            }
            Instr::P2p(ts) => {
                for t in ts.iter().filter(|t| !t.send) {
                    let b = elems_bytes(&t.shape, t.dtype, fb);
                    if t.grad {
                        now += b;
                    } else {
                        keep(t.value.micro, b, &mut live);
                    }
                }
            }
            Instr::Collective(c) => {
                let b = c.elems.max(0) as f64 * c.dtype.bytes(fb) as f64;
                match c.purpose {
                    Purpose::Gradients(_) => buckets = buckets.max(b),
                    Purpose::GatherParams(_) => gathers = gathers.max(b),
                    _ => {}
                }
            }
            Instr::Step => {}
        }
        peak = peak.max(live + now + prev);
        live -= release;
        prev = if matches!(op, Instr::Forward { .. }) {
            now
        } else {
            0.0
        };
        if let Instr::Backward { micro, .. } = op {
            if last_backward.get(*micro) == Some(&i) {
                live -= std::mem::take(&mut per_micro[*micro]);
            }
        }
    }
    let mut m = MemoryCost {
        params: ms.param_bytes * scale,
        grads: ms.grad_bytes * scale,
        optimizer: ms.optimizer_bytes * scale,
        activations: peak,
        buffers: 2.0 * buckets + 2.0 * gathers,
        total: 0.0,
    };
    m.total = m.params + m.grads + m.optimizer + m.activations + m.buffers;
    m
}

#[cfg(test)]
mod tests;
