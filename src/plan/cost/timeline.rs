//! The step replayed on a timeline: per planned rank, a compute stream
//! and two communication streams, one for ZeRO-3 parameter gathers and one
//! for gradient reductions (FSDP's all-gather and reduce-scatter streams).
//!
//! Compute ops take their FLOPs at the cluster's achievable rate.
//! Tensor-parallel collectives block the compute stream. ZeRO-3 gathers
//! run one layer ahead of their use (issued when the previous gather's
//! first user starts, as FSDP prefetches) and stall the first op that uses
//! their weights if late; gradient reductions run as they are issued and
//! must finish before the optimizer step, and ZeRO-1/2's gathers of
//! updated weights (on the same stream) before the step ends. The streams
//! do not slow each other down. A batched transfer completes once every
//! peer has posted its side, so a stage waiting for its neighbour accrues
//! pipeline bubble.

use std::collections::BTreeMap;

use super::*;
use crate::ir::stats::Stats;

/// Who posted one side of a point-to-point transfer: sender, receiver,
/// the value, whether it is a gradient, and whether the sender posted it.
type Side = (usize, usize, Value, bool, bool);

/// One rank's replay on the timeline.
struct Track<'p> {
    program: &'p RankProgram,
    pc: usize,
    /// The compute stream's clock.
    t: f64,
    /// When the stream of gradient reductions (and ZeRO-1/2's gathers of
    /// updated weights) is next free.
    comm: f64,
    /// When the stream of ZeRO-3 parameter gathers is next free: a stream
    /// of its own, as in FSDP, so that prefetching the next layer's weights
    /// does not queue behind the last layer's gradients.
    gathers: f64,
    /// When the gradient reductions issued so far complete.
    grads: f64,
    /// Per op: when the ZeRO-3 gathers it needs complete.
    ready: Vec<f64>,
    /// Per op: for a ZeRO-3 gather, the op that first uses its weights.
    consumer: Vec<usize>,
    /// Per op: when it started, for compute ops.
    start: Vec<f64>,
    /// The consumer of the previous gather, after which the next gather is
    /// issued (one layer of prefetch, as FSDP does).
    last_consumer: Option<usize>,
    /// Seconds of the optimizer step.
    step_s: f64,
    row: StageCost,
}

/// For each ZeRO-3 gather, the first later op that uses one of its
/// parameters (or the next compute op).
fn consumers(g: &Graph, plan: &Plan, ops: &[Instr]) -> Vec<usize> {
    let mut next_use = vec![usize::MAX; g.params.len()];
    let mut next_compute = usize::MAX;
    let mut out = vec![usize::MAX; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        match op {
            Instr::Forward { node, .. } | Instr::Backward { node, .. } => {
                next_compute = i;
                for v in g.nodes.get(*node).map_or(&[][..], |n| &n.inputs[..]) {
                    if let ValueRef::Param(p) = v {
                        if let Some(x) = next_use.get_mut(*p) {
                            *x = i;
                        }
                    }
                }
            }
            Instr::Collective(Collective {
                purpose: Purpose::GatherParams(ps),
                ..
            }) => {
                let first = ps
                    .iter()
                    .filter_map(|&k| plan.placements.get(k))
                    .filter_map(|pl| next_use.get(pl.param).copied())
                    .min()
                    .unwrap_or(usize::MAX);
                out[i] = if first == usize::MAX {
                    next_compute
                } else {
                    first
                };
            }
            _ => {}
        }
    }
    out
}

impl Track<'_> {
    /// Runs ops until the program ends or a transfer waits for a peer that
    /// has not posted its side; returns whether any op ran. `force` lets a
    /// waiting transfer go ahead as if its peers had posted (a deadlock).
    fn advance(
        &mut self,
        plan: &Plan,
        cluster: &Cluster,
        posted: &mut FastMap<Side, f64>,
        force: bool,
    ) -> bool {
        let me = self.program.rank;
        let fb = plan.float_bytes;
        let mut moved = false;
        while let Some(op) = self.program.ops.get(self.pc) {
            let i = self.pc;
            match op {
                Instr::Forward { flops, .. } | Instr::Backward { flops, .. } => {
                    self.wait(self.ready[i]);
                    self.start[i] = self.t;
                    let d = cluster.compute_time(*flops);
                    if matches!(
                        op,
                        Instr::Forward {
                            recompute: true,
                            ..
                        }
                    ) {
                        self.row.recompute_s += d;
                    }
                    self.row.flops += flops;
                    self.row.compute_s += d;
                    self.t += d;
                }
                Instr::Collective(c) => {
                    let ranks = plan.groups.get(c.group).map_or(&[][..], |g| &g.ranks[..]);
                    let kind = plan.groups.get(c.group).map(|g| g.kind);
                    let bytes = c.elems.max(0) as f64 * c.dtype.bytes(fb) as f64;
                    let d = collective_time(c.kind, bytes, ranks.len(), cluster.link(ranks));
                    if let Some(kind) = kind {
                        *self.row.comm_bytes.entry(kind).or_insert(0.0) +=
                            wire_bytes(c.kind, bytes, ranks.len());
                    }
                    match &c.purpose {
                        Purpose::Forward(_) | Purpose::Backward(_) => {
                            self.row.comm_exposed_s += d;
                            self.t += d;
                        }
                        Purpose::GatherParams(_) => {
                            let issue = match self.last_consumer {
                                Some(k) if k < i => self.start[k].min(self.t),
                                _ => self.t,
                            };
                            let done = self.gathers.max(issue) + d;
                            self.gathers = done;
                            if let Some(r) = self.ready.get_mut(self.consumer[i]) {
                                *r = r.max(done);
                            }
                            self.last_consumer = Some(self.consumer[i]);
                        }
                        Purpose::Gradients(_) | Purpose::UpdatedParams(_) => {
                            self.comm = self.comm.max(self.t) + d;
                            self.grads = self.comm;
                        }
                    }
                }
                Instr::P2p(ts) => {
                    // Post every side first: a peer may wait on any of them.
                    let side = |tr: &Transfer| -> Side {
                        if tr.send {
                            (me, tr.peer, tr.value, tr.grad, true)
                        } else {
                            (tr.peer, me, tr.value, tr.grad, false)
                        }
                    };
                    for tr in ts {
                        posted.entry(side(tr)).or_insert(self.t);
                    }
                    let mut peers = self.t;
                    let (mut sent, mut received) = (0.0, 0.0);
                    let mut ranks = vec![me];
                    for tr in ts {
                        let own = side(tr);
                        match posted.get(&(own.0, own.1, own.2, own.3, !own.4)) {
                            Some(&at) => peers = peers.max(at),
                            None if !force && plan.rank(tr.peer).is_some() => return moved,
                            None => {}
                        }
                        let b = elems_bytes(&tr.shape, tr.dtype, fb);
                        if tr.send {
                            sent += b;
                        } else {
                            received += b;
                        }
                        ranks.push(tr.peer);
                    }
                    let d = p2p_time(f64::max(sent, received), cluster.link(&ranks));
                    self.row.bubble_s += peers - self.t;
                    self.row.comm_exposed_s += d;
                    self.row.p2p_bytes += sent;
                    self.t = peers + d;
                }
                Instr::Step => {
                    self.wait(self.grads);
                    self.row.compute_s += self.step_s;
                    self.t += self.step_s;
                }
                Instr::Load { .. } => {}
            }
            self.pc += 1;
            moved = true;
        }
        moved
    }

    /// Holds the compute stream until `at`, counting the wait as exposed
    /// communication.
    fn wait(&mut self, at: f64) {
        if at > self.t {
            self.row.comm_exposed_s += at - self.t;
            self.t = at;
        }
    }
}

/// The estimate of one training step of `plan` on `cluster`: memory of
/// every planned rank, and the step replayed over the planned ranks (the
/// representatives of each stage, or all). A stage's row is its planned
/// rank with the most memory.
pub fn estimate(g: &Graph, plan: &Plan, cluster: &Cluster) -> Estimate {
    let opt_bytes = if plan.float_bytes == 2 { 12.0 } else { 8.0 };
    let mut tracks: Vec<Track> = plan
        .ranks
        .iter()
        .map(|p| {
            let memory = memory(g, plan, p);
            // AdamW reads and writes the fp32 master weight and both
            // moments, reads the gradient and writes the working copy:
            // about 28 bytes per parameter it owns.
            let owned = memory.optimizer / opt_bytes;
            Track {
                program: p,
                pc: 0,
                t: 0.0,
                comm: 0.0,
                gathers: 0.0,
                grads: 0.0,
                ready: vec![0.0; p.ops.len()],
                consumer: consumers(g, plan, &p.ops),
                start: vec![0.0; p.ops.len()],
                last_consumer: None,
                step_s: if cluster.memory_bandwidth > 0.0 {
                    owned * 28.0 / cluster.memory_bandwidth
                } else {
                    0.0
                },
                row: StageCost {
                    stage: p.stage,
                    rank: p.rank,
                    memory,
                    flops: 0.0,
                    compute_s: 0.0,
                    recompute_s: 0.0,
                    comm_exposed_s: 0.0,
                    bubble_s: 0.0,
                    comm_bytes: BTreeMap::new(),
                    p2p_bytes: 0.0,
                },
            }
        })
        .collect();
    let mut posted: FastMap<Side, f64> = FastMap::default();
    let mut notes = Vec::new();
    loop {
        let mut moved = false;
        for tr in tracks.iter_mut() {
            moved |= tr.advance(plan, cluster, &mut posted, false);
        }
        let Some(stuck) = tracks.iter_mut().find(|t| t.pc < t.program.ops.len()) else {
            break;
        };
        if !moved {
            // The plan cannot finish (verify reports why): let the first
            // waiting rank go on so that the estimate still ends.
            notes.push(format!(
                "rank {} waits forever at op {}; timed as if its peers were there",
                stuck.program.rank, stuck.pc
            ));
            stuck.advance(plan, cluster, &mut posted, true);
        }
    }
    // A rank ends when its communication stream drains; the step ends
    // when the last rank does, and earlier ranks idle (a bubble) till then.
    for tr in tracks.iter_mut() {
        let end = tr.comm.max(tr.gathers).max(tr.t);
        tr.wait(end);
    }
    let step_s = tracks.iter().map(|t| t.t).fold(0.0, f64::max);
    let mut stages: BTreeMap<usize, StageCost> = BTreeMap::new();
    for tr in tracks {
        let mut row = tr.row;
        row.bubble_s += step_s - tr.t;
        match stages.get(&row.stage) {
            Some(old) if old.memory.total >= row.memory.total => {}
            _ => {
                stages.insert(row.stage, row);
            }
        }
    }
    let stages: Vec<StageCost> = stages.into_values().collect();
    let dp = plan.layout.data_degree().max(1) as i64;
    let global_batch = plan.micro_batch * plan.microbatches as i64 * dp;
    let forward = Stats::of(g).forward_flops.as_const().unwrap_or(0) as f64;
    let model_flops = 3.0 * forward * global_batch as f64;
    let world = plan.layout.mesh.size() as f64;
    let tokens = tokens_per_sample(g);
    let per_s = |x: f64| if step_s > 0.0 { x / step_s } else { 0.0 };
    Estimate {
        fits: stages
            .iter()
            .all(|s| s.memory.total <= plan.layout.device_memory),
        step_s,
        global_batch,
        tokens_per_sample: tokens,
        tokens_per_s: per_s((tokens * global_batch) as f64),
        model_flops,
        mfu: per_s(model_flops) / (world * cluster.peak_flops).max(1.0),
        stages,
        notes,
    }
}
