//! One rank's program: its coordinates and groups, the parameter shards it
//! holds (with ZeRO slices), its gradient buckets, and the schedule of
//! forward and backward passes that `passes.rs` fills with ops.

use std::collections::BTreeMap;

use super::*;

/// One pass of a stage over one micro-batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Forward(usize),
    Backward(usize),
}

/// The order of forward and backward passes of stage `s` of `stages` over
/// `m` micro-batches.
fn schedule(kind: PipelineSchedule, s: usize, stages: usize, m: usize) -> Vec<Chunk> {
    match kind {
        PipelineSchedule::GPipe => (0..m)
            .map(Chunk::Forward)
            .chain((0..m).map(Chunk::Backward))
            .collect(),
        _ => {
            // 1F1B (PipeDream-Flush): warm up with the forwards that fill
            // the pipeline below this stage, then alternate, then drain.
            let warmup = (stages - s - 1).min(m);
            let mut out: Vec<Chunk> = (0..warmup).map(Chunk::Forward).collect();
            for i in 0..m - warmup {
                out.push(Chunk::Forward(warmup + i));
                out.push(Chunk::Backward(i));
            }
            out.extend((m - warmup..m).map(Chunk::Backward));
            out
        }
    }
}

/// The per-rank state of building one program.
pub(super) struct Builder<'a, 'g> {
    pub(super) lw: &'a Lowerer<'g>,
    pub(super) coords: Vec<usize>,
    pub(super) stage: usize,
    pub(super) ops: Vec<Instr>,
    /// Sends waiting to be posted with the next chunk's receives.
    pub(super) pending: Vec<Transfer>,
    pub(super) tensor: Option<usize>,
    pub(super) data: Option<usize>,
    pub(super) zero: Option<usize>,
    pub(super) replica: Option<usize>,
    /// Values gathered over the tensor group in the current pass.
    pub(super) gathered: Vec<Value>,
}

impl<'g> Lowerer<'g> {
    pub(super) fn program(&self, rank: usize, groups: &mut Groups) -> RankProgram {
        let l = self.layout;
        let mesh = &l.mesh;
        let coords = mesh.coords(rank);
        let stage = {
            let mut idx = 0;
            for (i, a) in mesh.axes().iter().enumerate() {
                if l.pipeline.contains(&a.name) {
                    idx = idx * a.size + coords[i];
                }
            }
            idx
        };
        let group = |groups: &mut Groups, kind, axes: &[String]| {
            let ranks = mesh.group(rank, axes).unwrap_or_else(|_| vec![rank]);
            groups.id(kind, axes, ranks)
        };
        let replica_axes: Vec<String> = l
            .data
            .iter()
            .filter(|a| !l.zero_axes.contains(a))
            .cloned()
            .collect();
        let mut b = Builder {
            lw: self,
            coords: coords.clone(),
            stage,
            ops: Vec::new(),
            pending: Vec::new(),
            gathered: Vec::new(),
            tensor: group(groups, GroupKind::Tensor, &l.tensor),
            data: group(groups, GroupKind::Data, &l.data),
            zero: if l.zero > 0 {
                group(groups, GroupKind::Zero, &l.zero_axes)
            } else {
                None
            },
            replica: if l.zero > 0 {
                group(groups, GroupKind::Replica, &replica_axes)
            } else {
                None
            },
        };
        let params = self.local_params(rank, stage, &b);
        let mine: Vec<usize> = (0..self.order.len())
            .filter(|&k| self.stage_of[k] == stage)
            .collect();
        let m = l.steps_per_update();
        let chunks = schedule(l.schedule, stage, l.stages().max(1), m);
        let buckets = self.buckets(&mine, stage);
        for chunk in &chunks {
            let last_backward = matches!(chunk, Chunk::Backward(mb) if *mb == m - 1);
            match *chunk {
                Chunk::Forward(mb) => b.forward(&mine, mb),
                Chunk::Backward(mb) => b.backward(&mine, mb, &buckets, last_backward),
            }
        }
        b.flush(Vec::new());
        b.finish(groups, &buckets);
        RankProgram {
            rank,
            coords,
            stage,
            params,
            ops: b.ops,
        }
    }

    /// The shards `rank` holds, with its ZeRO slices.
    fn local_params(&self, rank: usize, stage: usize, b: &Builder) -> Vec<LocalParam> {
        let l = self.layout;
        let zero_degree = if l.zero > 0 {
            l.mesh.degree(&l.zero_axes).unwrap_or(1).max(1) as i64
        } else {
            1
        };
        let zero_index = {
            let mut idx = 0;
            for (i, a) in l.mesh.axes().iter().enumerate() {
                if l.zero_axes.contains(&a.name) {
                    idx = idx * a.size + b.coords[i];
                }
            }
            idx as i64
        };
        // Shards of placements held here: placed here, or tied copies.
        let mut out = Vec::new();
        let base: Vec<_> = shards(l, &self.placements, rank);
        let mut held: BTreeMap<usize, (Vec<(i64, i64)>, bool)> = base
            .into_iter()
            .map(|s| (s.placement, (s.ranges, s.owner)))
            .collect();
        for (k, hs) in self.holders.iter().enumerate() {
            if hs[0] != stage && hs.contains(&stage) {
                // A tied copy: the shard the placed stage's peer holds.
                let peer = l.mesh.rank(&stage_coords(l, &b.coords, hs[0]));
                if let Some(s) = shards(l, &self.placements, peer)
                    .into_iter()
                    .find(|s| s.placement == k)
                {
                    held.insert(k, (s.ranges, false));
                }
            }
        }
        for (placement, (ranges, owner)) in held {
            let numel: i64 = ranges.iter().map(|(a, b)| b - a).product::<i64>()
                * self.placements[placement].copies;
            let zero_slice = (l.zero > 0 && zero_degree > 1).then(|| {
                let part = (numel + zero_degree - 1) / zero_degree;
                let start = (zero_index * part).min(numel);
                (start, ((zero_index + 1) * part).min(numel))
            });
            out.push(LocalParam {
                placement,
                ranges,
                owner,
                zero_slice,
            });
        }
        out
    }

    /// Gradient buckets of a stage: placements in the order their
    /// gradients become final in the backward pass, grouped up to the
    /// bucket size; under ZeRO-3 one bucket per layer (the unit gathered).
    /// Each bucket is reduced after the backward of `ready` (an index into
    /// `order`).
    fn buckets(&self, mine: &[usize], stage: usize) -> Vec<Bucket> {
        // The gradient of a placement is final after the backward of its
        // first use in program order.
        let mut first_use: BTreeMap<usize, usize> = BTreeMap::new();
        for &k in mine {
            let inst = self.order[k];
            for v in &self.g.nodes[inst.node].inputs {
                if let ValueRef::Param(p) = *v {
                    if let Some(pl) = self.placement(p, inst) {
                        first_use.entry(pl).or_insert(k);
                    }
                }
            }
        }
        let mut ready: Vec<(usize, usize)> = first_use
            .into_iter()
            .filter(|(pl, _)| self.holders[*pl].contains(&stage))
            .map(|(pl, k)| (k, pl))
            .collect();
        // Backward runs in reverse program order.
        ready.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let fb = self.g.float_bytes.max(1) as f64;
        let mut out: Vec<Bucket> = Vec::new();
        for (k, pl) in ready {
            let elems = self.shard_elems(pl);
            let unit = self.placements[pl].layer;
            let start_new = match out.last() {
                None => true,
                Some(last) if self.layout.zero >= 3 => last.unit != unit,
                Some(last) => (last.elems + elems) as f64 * fb > self.layout.bucket,
            };
            if start_new {
                out.push(Bucket {
                    placements: Vec::new(),
                    elems: 0,
                    ready: k,
                    unit,
                });
            }
            if let Some(last) = out.last_mut() {
                last.placements.push(pl);
                last.elems += elems;
                last.ready = k;
            }
        }
        out
    }

    /// Elements of one rank's tensor shard of a placement, all copies.
    pub(super) fn shard_elems(&self, pl: usize) -> i64 {
        let p = &self.placements[pl];
        let tp = self.layout.tensor_degree().max(1) as i64;
        let split = p.split.iter().any(|a| !a.is_empty());
        let n: i64 = p.shape.iter().product::<i64>() * p.copies;
        if split {
            n / tp
        } else {
            n
        }
    }
}

/// Placements whose gradients are reduced together.
#[derive(Clone, Debug)]
pub(super) struct Bucket {
    pub(super) placements: Vec<usize>,
    pub(super) elems: i64,
    /// The position in program order after whose backward it is ready.
    pub(super) ready: usize,
    /// The layer it belongs to (ZeRO-3 gathers and reduces by layer).
    pub(super) unit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(chunks: &[Chunk]) -> String {
        chunks
            .iter()
            .map(|c| match c {
                Chunk::Forward(m) => format!("F{m}"),
                Chunk::Backward(m) => format!("B{m}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn one_f_one_b_warms_up_by_the_stages_below() {
        let s = |stage| text(&schedule(PipelineSchedule::OneFOneB, stage, 4, 6));
        assert_eq!(s(0), "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
        assert_eq!(s(2), "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5");
        assert_eq!(s(3), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
        // Fewer micro-batches than stages: all forwards, then backwards.
        assert_eq!(
            text(&schedule(PipelineSchedule::OneFOneB, 0, 4, 2)),
            "F0 F1 B0 B1"
        );
        assert_eq!(
            text(&schedule(PipelineSchedule::GPipe, 1, 4, 3)),
            "F0 F1 F2 B0 B1 B2"
        );
    }

    #[test]
    fn every_schedule_runs_each_micro_batch_forward_then_backward_once() {
        for kind in [PipelineSchedule::OneFOneB, PipelineSchedule::GPipe] {
            for stages in 1..6 {
                for m in 1..10 {
                    for s in 0..stages {
                        let chunks = schedule(kind, s, stages, m);
                        assert_eq!(chunks.len(), 2 * m);
                        for mb in 0..m {
                            let f = chunks.iter().position(|c| *c == Chunk::Forward(mb));
                            let b = chunks.iter().position(|c| *c == Chunk::Backward(mb));
                            assert!(matches!((f, b), (Some(f), Some(b)) if f < b));
                        }
                    }
                }
            }
        }
    }
}
