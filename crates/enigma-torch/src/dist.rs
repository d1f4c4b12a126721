//! Data parallelism and ZeRO in the backend: the plan's collectives,
//! executed on the communicator, and the slices of model state each rank
//! keeps.
//!
//! The planner decides everything here (`plan::lower`): which groups
//! exist, which placements go into each gradient bucket, when a bucket is
//! reduced, and which slice of each placement's flattened parameter a rank
//! owns under ZeRO (`LocalParam::zero_slice`). This module executes that:
//!
//! | stage | gradients | optimizer state | weights |
//! | --- | --- | --- | --- |
//! | 0 | all-reduced over the data group | whole, on every rank | whole |
//! | 1 | all-reduced | this rank's slice | whole; slices all-gathered after the step |
//! | 2 | reduce-scattered over the ZeRO group (then all-reduced over the replica group when sharding is hybrid) | slice | as 1 |
//! | 3 | as 2 | slice | only the slice (the master copy) between steps; gathered before use |
//!
//! Checkpoints need no collective: each rank writes the parts it holds
//! (`state_parts`), and loading assembles them.
//!
//! Sums are divided by the group's size, so a gradient is the mean over the
//! data-parallel ranks of their micro-batch means: the one-process gradient
//! of the whole batch whenever every rank's loss weighs the same (fixed
//! batch sizes, token masks of a fixed ratio), which is PyTorch DDP's
//! convention too.
//!
//! **Layout of a bucket.** `all_gather` and `reduce_scatter` exchange equal
//! parts, and ZeRO slices each placement separately in `ceil(n / d)`
//! pieces (the last may be short). A bucket's buffer is therefore laid out
//! rank-major: for each rank of the group, for each placement of the
//! bucket, that rank's piece padded to `ceil(n / d)`. Each rank's part is
//! then one contiguous run of the same length.
//!
//! **ZeRO-3 memory.** libtorch runs a micro-batch's whole backward pass in
//! one call, so weights gathered for the forward pass are kept until the
//! step ends (gathers the plan places before backward layers find them
//! present and only exchange); they are freed after the optimizer step.
//! Per-layer freeing inside the backward pass needs autograd hooks, which
//! `tch` does not expose.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use crate::comm::Communicator;
use crate::{download, op_err, TorchBackend};
use enigma::diagnostics::{Error, ErrorKind};
use enigma::plan::program::{Collective, CollectiveKind, Group, GroupKind, Purpose, RankProgram};
use enigma::run::checkpoint::sharded::Part;
use enigma::run::checkpoint::I64Tensor;

/// One placement as this rank holds it.
#[derive(Clone, Debug)]
pub struct Shard {
    /// Its slots, one per copy, in copy order.
    pub slots: Vec<usize>,
    /// Elements of one copy.
    pub numel: i64,
    /// Elements of all copies together: the flattened placement ZeRO
    /// slices.
    pub total: i64,
    /// The padded length of one rank's piece: `ceil(total / d)`.
    pub piece: i64,
    /// This rank's slice of the flattened placement.
    pub own: (i64, i64),
}

/// The communicator and what this rank is in the layout.
pub struct Dist {
    pub comm: Box<dyn Communicator>,
    pub zero: u8,
    pub groups: Vec<Group>,
    /// This rank's group of each kind, if any.
    pub data: Option<usize>,
    pub zero_group: Option<usize>,
    pub replica: Option<usize>,
    /// Per placement this rank holds.
    pub shards: BTreeMap<usize, Shard>,
    /// Under ZeRO 2 and 3, the reduced gradient of each placement's slice.
    pub grad_parts: BTreeMap<usize, Tensor>,
}

impl Dist {
    /// This rank's group of `kind` in the plan.
    pub fn group_of(groups: &[Group], rank: usize, kind: GroupKind) -> Option<usize> {
        groups
            .iter()
            .position(|g| g.kind == kind && g.ranks.contains(&rank))
    }

    /// The ZeRO slices of `program`'s parameters, checked against the
    /// slots the backend made: `slots_of(placement)` gives each copy's slot
    /// and its elements.
    pub fn shards(
        program: &RankProgram,
        degree: usize,
        slots_of: &dyn Fn(usize) -> Option<(Vec<usize>, i64)>,
    ) -> Result<BTreeMap<usize, Shard>, Error> {
        let mut out = BTreeMap::new();
        for lp in &program.params {
            let Some((slots, numel)) = slots_of(lp.placement) else {
                return Err(Error::internal(format!(
                    "rank {} holds placement {}, which the backend did not place",
                    program.rank, lp.placement
                )));
            };
            let total = numel * slots.len() as i64;
            let d = degree.max(1) as i64;
            let piece = (total + d - 1) / d;
            let own = lp.zero_slice.unwrap_or((0, total));
            if own.1 - own.0 > piece || own.1 > total {
                return Err(Error::internal(format!(
                    "the ZeRO slice {own:?} of placement {} is not one of {d} pieces of its {total} elements",
                    lp.placement
                )));
            }
            out.insert(
                lp.placement,
                Shard {
                    slots,
                    numel,
                    total,
                    piece,
                    own,
                },
            );
        }
        Ok(out)
    }

    /// The number of ranks in `group`.
    pub(crate) fn size_of(&self, group: usize) -> Result<usize, Error> {
        self.comm
            .group_rank(group)
            .map(|(_, n)| n)
            .map_err(|e| comm_err(e, "a group's size"))
    }
}

/// A communication failure as the runtime's error.
pub fn comm_err(e: crate::comm::CommError, what: &str) -> Error {
    Error::new(ErrorKind::Comm, format!("{what}: {e}"))
}

fn t_err(e: tch::TchError, what: &str) -> Error {
    op_err(crate::OpError::from(e), what)
}

impl TorchBackend {
    /// Executes one of the plan's collectives.
    pub(crate) fn collective(&mut self, c: &Collective) -> Result<(), Error> {
        let group = self
            .dist
            .as_ref()
            .and_then(|d| d.groups.get(c.group))
            .map(|g| g.kind)
            .ok_or_else(|| {
                Error::internal(format!(
                    "the plan names group {}, which this job does not have",
                    c.group
                ))
            })?;
        tch::no_grad(|| {
            match (&c.purpose, c.kind) {
                (Purpose::Gradients(pls), CollectiveKind::AllReduce) => {
                    // Data-parallel ranks average; the ranks of a tensor group
                    // (partial gradients of a whole parameter) and the stages
                    // holding a tied parameter add their contributions.
                    let average = !matches!(group, GroupKind::Tensor | GroupKind::Tied);
                    let sliced = self
                        .dist
                        .as_ref()
                        .is_some_and(|d| pls.iter().all(|p| d.grad_parts.contains_key(p)));
                    if group == GroupKind::Replica || (sliced && !average) {
                        self.reduce_grad_parts(c.group, pls, average)
                    } else {
                        self.all_reduce_grads(c.group, pls, average)
                    }
                }
                (Purpose::Gradients(pls), CollectiveKind::ReduceScatter) => {
                    self.reduce_scatter_grads(c.group, pls)
                }
                (Purpose::UpdatedParams(pls), CollectiveKind::AllGather) => {
                    self.gather_weights(c.group, pls, false)
                }
                (Purpose::GatherParams(pls), CollectiveKind::AllGather) => {
                    self.gather_weights(c.group, pls, true)
                }
                (p, k) => Err(Error::internal(format!(
                    "the plan asks for {} of {p:?}, which no layout needs",
                    k.as_str()
                ))),
            }
        })
    }

    fn dist(&mut self) -> Result<&mut Dist, Error> {
        self.dist
            .as_mut()
            .ok_or_else(|| Error::internal("a collective in a one-process run".to_string()))
    }

    /// The gradient of slot `i` as it stands: reduced, or libtorch's, or
    /// zeros where the step did not reach the parameter.
    pub(crate) fn grad_of(&self, i: usize) -> Result<Tensor, Error> {
        let s = &self.slots[i];
        if let Some(g) = &s.grad {
            return Ok(g.shallow_clone());
        }
        let g = if s.value.defined() {
            s.value.grad()
        } else {
            Tensor::new()
        };
        if g.defined() {
            return Ok(g);
        }
        Tensor::f_zeros(s.shape.as_slice(), (Kind::Float, self.device))
            .map_err(|e| t_err(e, "a zero gradient"))
    }

    fn shard(&self, pl: usize) -> Result<Shard, Error> {
        self.dist
            .as_ref()
            .and_then(|d| d.shards.get(&pl))
            .cloned()
            .ok_or_else(|| {
                Error::internal(format!(
                    "placement {pl} is not held by this rank, yet its collective is in its program"
                ))
            })
    }

    /// The flattened gradient of placement `pl` (all copies).
    fn flat_grad(&self, pl: usize) -> Result<Tensor, Error> {
        let sh = self.shard(pl)?;
        let parts: Vec<Tensor> = sh
            .slots
            .iter()
            .map(|&i| {
                self.grad_of(i)
                    .and_then(|g| g.f_reshape([-1]).map_err(|e| t_err(e, "a gradient")))
            })
            .collect::<Result<_, _>>()?;
        Tensor::f_cat(&parts, 0).map_err(|e| t_err(e, "flattening gradients"))
    }

    /// ZeRO 0 and 1: the whole gradients of a bucket, averaged over the
    /// data group (or, unless `average`, summed over a tensor or tied
    /// group).
    fn all_reduce_grads(
        &mut self,
        group: usize,
        pls: &[usize],
        average: bool,
    ) -> Result<(), Error> {
        let flats: Vec<Tensor> = pls
            .iter()
            .map(|&p| self.flat_grad(p))
            .collect::<Result<_, _>>()?;
        let mut buf = Tensor::f_cat(&flats, 0).map_err(|e| t_err(e, "a gradient bucket"))?;
        let d = self.dist()?;
        let n = if average { d.size_of(group)? } else { 1 };
        d.comm
            .all_reduce(group, &mut buf)
            .map_err(|e| comm_err(e, "all-reducing gradients"))?;
        let buf = buf
            .f_div_scalar(n as f64)
            .map_err(|e| t_err(e, "averaging gradients"))?;
        let mut at = 0i64;
        for &p in pls {
            let sh = self.shard(p)?;
            for &i in &sh.slots {
                let g = buf
                    .f_narrow(0, at, sh.numel)
                    .and_then(|g| g.f_reshape(self.slots[i].shape.as_slice()))
                    .map_err(|e| t_err(e, "unpacking gradients"))?;
                self.slots[i].grad = Some(g);
                at += sh.numel;
            }
        }
        Ok(())
    }

    /// ZeRO 2 and 3: the gradients of a bucket summed over the ZeRO group,
    /// each rank keeping the mean of its slice.
    fn reduce_scatter_grads(&mut self, group: usize, pls: &[usize]) -> Result<(), Error> {
        let flats: Vec<(Shard, Tensor)> = pls
            .iter()
            .map(|&p| Ok((self.shard(p)?, self.flat_grad(p)?)))
            .collect::<Result<_, Error>>()?;
        let d = self.dist()?;
        let n = d.size_of(group)?;
        let mut pieces = Vec::with_capacity(n * flats.len());
        for r in 0..n as i64 {
            for (sh, flat) in &flats {
                pieces.push(piece(flat, sh, r)?);
            }
        }
        let input = Tensor::f_cat(&pieces, 0).map_err(|e| t_err(e, "a gradient bucket"))?;
        let len: i64 = flats.iter().map(|(sh, _)| sh.piece).sum();
        let mut out = input
            .f_new_zeros([len], (Kind::Float, input.device()))
            .map_err(|e| t_err(e, "a gradient slice"))?;
        d.comm
            .reduce_scatter(group, &input, &mut out)
            .map_err(|e| comm_err(e, "reduce-scattering gradients"))?;
        let mut at = 0;
        for (&p, (sh, _)) in pls.iter().zip(&flats) {
            let own = sh.own.1 - sh.own.0;
            let part = out
                .f_narrow(0, at, own)
                .and_then(|t| t.f_div_scalar(n as f64))
                .map_err(|e| t_err(e, "a gradient slice"))?;
            d.grad_parts.insert(p, part);
            at += sh.piece;
        }
        Ok(())
    }

    /// Hybrid sharding: the slices the ZeRO group reduced, averaged over
    /// the replicas (or, unless `average`, summed over a tensor or tied
    /// group).
    fn reduce_grad_parts(
        &mut self,
        group: usize,
        pls: &[usize],
        average: bool,
    ) -> Result<(), Error> {
        let d = self.dist()?;
        let n = if average { d.size_of(group)? } else { 1 };
        let parts: Vec<Tensor> = pls
            .iter()
            .map(|p| {
                d.grad_parts
                    .get(p)
                    .map(Tensor::shallow_clone)
                    .ok_or_else(|| {
                        Error::internal(format!(
                        "the replica all-reduce of placement {p} comes before its reduce-scatter"
                    ))
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut buf = Tensor::f_cat(&parts, 0).map_err(|e| t_err(e, "a gradient bucket"))?;
        d.comm
            .all_reduce(group, &mut buf)
            .map_err(|e| comm_err(e, "all-reducing gradient slices over replicas"))?;
        let mut at = 0;
        for (p, part) in pls.iter().zip(&parts) {
            let len = part.size().first().copied().unwrap_or(0);
            let avg = buf
                .f_narrow(0, at, len)
                .and_then(|t| t.f_div_scalar(n as f64))
                .map_err(|e| t_err(e, "a gradient slice"))?;
            d.grad_parts.insert(*p, avg);
            at += len;
        }
        Ok(())
    }

    /// This rank's slice of placement `sh`'s weights, flattened.
    fn own_weights(&self, sh: &Shard) -> Result<Tensor, Error> {
        let mut parts = Vec::new();
        for (c, &i) in sh.slots.iter().enumerate() {
            let Some((a, b)) = local(sh, c) else { continue };
            let s = &self.slots[i];
            let t = match &s.master {
                Some(m) => m.shallow_clone(),
                None => s
                    .value
                    .f_reshape([-1])
                    .and_then(|v| v.f_narrow(0, a, b - a))
                    .map_err(|e| t_err(e, "a weight slice"))?,
            };
            parts.push(t);
        }
        if parts.is_empty() {
            return Tensor::f_zeros([0], (Kind::Float, self.device))
                .map_err(|e| t_err(e, "an empty slice"));
        }
        Tensor::f_cat(&parts, 0).map_err(|e| t_err(e, "a weight slice"))
    }

    /// Gathers the weights of a bucket from the slices of the ZeRO group:
    /// after the step (ZeRO 1 and 2) into the weights, and before use
    /// (ZeRO 3) into fresh weights unless they are present already.
    fn gather_weights(
        &mut self,
        group: usize,
        pls: &[usize],
        before_use: bool,
    ) -> Result<(), Error> {
        let shards: Vec<Shard> = pls
            .iter()
            .map(|&p| self.shard(p))
            .collect::<Result<_, _>>()?;
        let mut mine = Vec::new();
        for sh in &shards {
            mine.push(pad(&self.own_weights(sh)?, sh.piece)?);
        }
        let input = Tensor::f_cat(&mine, 0).map_err(|e| t_err(e, "a weight bucket"))?;
        let d = self.dist()?;
        let n = d.size_of(group)?;
        let len: i64 = shards.iter().map(|s| s.piece).sum();
        let mut out = input
            .f_new_zeros([len * n as i64], (Kind::Float, input.device()))
            .map_err(|e| t_err(e, "a weight bucket"))?;
        d.comm
            .all_gather(group, &input, &mut out)
            .map_err(|e| comm_err(e, "all-gathering weights"))?;
        let mut offset = 0;
        for sh in &shards {
            // The placement, flattened: each rank's piece in rank order.
            let pieces: Vec<Tensor> = (0..n as i64)
                .map(|r| out.f_narrow(0, r * len + offset, sh.piece))
                .collect::<Result<_, _>>()
                .map_err(|e| t_err(e, "a gathered slice"))?;
            let flat = Tensor::f_cat(&pieces, 0)
                .and_then(|t| t.f_narrow(0, 0, sh.total))
                .map_err(|e| t_err(e, "a gathered placement"))?;
            for (c, &i) in sh.slots.iter().enumerate() {
                let whole = flat
                    .f_narrow(0, c as i64 * sh.numel, sh.numel)
                    .and_then(|t| t.f_reshape(self.slots[i].shape.as_slice()))
                    .map_err(|e| t_err(e, "a gathered weight"))?;
                let s = &mut self.slots[i];
                if before_use {
                    if !s.value.defined() {
                        s.value = whole
                            .f_contiguous()
                            .map_err(|e| t_err(e, "a gathered weight"))?
                            .set_requires_grad(true);
                    }
                } else {
                    s.value
                        .f_copy_(&whole)
                        .map_err(|e| t_err(e, "updating the weights"))?;
                }
            }
            offset += sh.piece;
        }
        Ok(())
    }

    /// Under ZeRO 2 and 3, the gradient of slot `i`'s own elements.
    pub(crate) fn grad_part_of(&self, pl: usize, c: usize) -> Result<Option<Tensor>, Error> {
        let Some(d) = &self.dist else { return Ok(None) };
        let Some(part) = d.grad_parts.get(&pl) else {
            return Ok(None);
        };
        let sh = self.shard(pl)?;
        let Some((a, b)) = local(&sh, c) else {
            return Ok(None);
        };
        // Offset of copy `c`'s own run within the slice.
        let start = (c as i64 * sh.numel + a) - sh.own.0;
        part.f_narrow(0, start, b - a)
            .map(Some)
            .map_err(|e| t_err(e, "a gradient slice"))
    }
}

impl TorchBackend {
    /// The parts of the state this rank writes to a job's checkpoint
    /// ([`enigma::run::backend::Backend::export_parts`]).
    pub(crate) fn state_parts(&mut self) -> Result<Vec<Part>, Error> {
        let get = |t: &Tensor, what: &str, name: &str| {
            download(t).map_err(|e| op_err(e, format!("reading {what} of `{name}`")))
        };
        let mut out = Vec::new();
        let (zero, writer) = match &self.dist {
            None => (0, true),
            Some(d) => {
                // The first rank of the group whose ranks hold the same
                // state writes it.
                let same = if d.zero > 0 { d.replica } else { d.data };
                let writer = match same {
                    Some(g) => {
                        d.comm
                            .group_rank(g)
                            .map_err(|e| comm_err(e, "the checkpoint's writers"))?
                            .0
                            == 0
                    }
                    None => true,
                };
                (d.zero, writer)
            }
        };
        if writer {
            for (i, place) in self.updated_slots() {
                let s = &self.slots[i];
                // A copy held whole by several ranks of the replica (a
                // tensor-parallel copy of a whole parameter, a tied copy)
                // is written by its owner.
                if !s.owner {
                    continue;
                }
                let shape: Vec<usize> = s.whole.iter().map(|&d| d.max(0) as usize).collect();
                let region: Vec<(usize, usize)> = if s.shape == s.whole {
                    Vec::new()
                } else {
                    s.ranges
                        .iter()
                        .map(|&(a, b)| (a.max(0) as usize, b.max(0) as usize))
                        .collect()
                };
                let part =
                    |name: String, start: i64, t: &Tensor, what: &str| -> Result<Part, Error> {
                        Ok(Part {
                            name,
                            shape: shape.clone(),
                            region: region.clone(),
                            start: start as usize,
                            data: get(t, what, &s.name)?.data,
                        })
                    };
                let (start, value) = match (zero, s.own, place) {
                    (0, _, _) | (_, None, _) => (0, s.value.shallow_clone()),
                    (_, Some((a, b)), _) if a == b => continue,
                    (_, Some((a, b)), _) => match &s.master {
                        Some(m) => (a, m.shallow_clone()),
                        None => (
                            a,
                            s.value
                                .f_reshape([-1])
                                .and_then(|v| v.f_narrow(0, a, b - a))
                                .map_err(|e| t_err(e, "a weight slice"))?,
                        ),
                    },
                };
                out.push(part(s.name.clone(), start, &value, "the weights")?);
                out.push(part(
                    format!("optim.m/{}", s.name),
                    start,
                    &s.m,
                    "the first moment",
                )?);
                out.push(part(
                    format!("optim.v/{}", s.name),
                    start,
                    &s.v,
                    "the second moment",
                )?);
            }
        }
        // The step count is not a part: it is I64 state, which rank 0
        // writes whole (`Backend::export_ints`).
        Ok(out)
    }
}

/// The name checkpoints give the optimiser's step count.
pub const STEP_COUNT: &str = "optim.t";

/// The optimiser's step count as checkpoints store it: an I64 scalar
/// (shape `[]`), exact where an f32 is exact only to 2^24.
pub fn step_count(t: u64) -> Result<I64Tensor, Error> {
    i64::try_from(t).map(I64Tensor::scalar).map_err(|_| {
        Error::internal(format!(
            "the optimiser's step count {t} does not fit a checkpoint's I64"
        ))
    })
}

/// The elements `(a, b)` of copy `c` of placement `sh` that lie in this
/// rank's slice, in the copy's own flat numbering; `None` when none do.
pub fn local(sh: &Shard, c: usize) -> Option<(i64, i64)> {
    let start = c as i64 * sh.numel;
    let a = sh.own.0.max(start);
    let b = sh.own.1.min(start + sh.numel);
    (a < b).then(|| (a - start, b - start))
}

/// Rank `r`'s piece of the flattened placement `flat`, padded with zeros.
fn piece(flat: &Tensor, sh: &Shard, r: i64) -> Result<Tensor, Error> {
    let a = (r * sh.piece).min(sh.total);
    let b = ((r + 1) * sh.piece).min(sh.total);
    let t = flat
        .f_narrow(0, a, b - a)
        .map_err(|e| t_err(e, "a gradient piece"))?;
    pad(&t, sh.piece)
}

/// `t` (1-d) padded with zeros to `len`.
fn pad(t: &Tensor, len: i64) -> Result<Tensor, Error> {
    let n = t.size().first().copied().unwrap_or(0);
    if n == len {
        return Ok(t.shallow_clone());
    }
    t.f_constant_pad_nd([0, len - n])
        .map_err(|e| t_err(e, "padding a piece"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_over_two_copies_splits_at_the_copy_boundary() {
        // Two copies of 6 elements sliced in pieces of 4 over 3 ranks:
        // rank 1 owns elements 4..8, the last two of copy 0 and the first
        // two of copy 1.
        let sh = Shard {
            slots: vec![0, 1],
            numel: 6,
            total: 12,
            piece: 4,
            own: (4, 8),
        };
        assert_eq!(local(&sh, 0), Some((4, 6)));
        assert_eq!(local(&sh, 1), Some((0, 2)));
        let last = Shard { own: (8, 12), ..sh };
        assert_eq!(local(&last, 0), None);
        assert_eq!(local(&last, 1), Some((2, 6)));
    }

    #[test]
    fn pieces_are_padded_to_one_length() {
        let flat = Tensor::from_slice(&[1f32, 2., 3., 4., 5.]);
        let sh = Shard {
            slots: vec![0],
            numel: 5,
            total: 5,
            piece: 3,
            own: (3, 5),
        };
        let p1 = Vec::<f32>::try_from(piece(&flat, &sh, 1).unwrap()).unwrap();
        assert_eq!(p1, vec![4., 5., 0.]);
        let p0 = Vec::<f32>::try_from(piece(&flat, &sh, 0).unwrap()).unwrap();
        assert_eq!(p0, vec![1., 2., 3.]);
    }
}
