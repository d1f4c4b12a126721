//! Tensor and pipeline parallelism in the backend: the plan's
//! tensor-parallel collectives and pipeline transfers, executed on the
//! communicator over the node-by-node step of `nodewise.rs`.
//!
//! | plan instruction | forward pass | backward pass |
//! | --- | --- | --- |
//! | all-reduce of a node's output (row-parallel partial sums, Megatron's `g`) | the value consumers read becomes the sum | identity: the gradient reaches the partial output unchanged |
//! | reduce-scatter of a node's output (sequence parallelism) | consumers read this rank's sequence shard | the all-gather the plan lists before the node's backward |
//! | all-gather of an input (sequence shards, or a split value a node needs whole) | kept until the node that takes it whole runs | its gradient is this rank's slice, or, when the node leaves it partial, the plan's reduce-scatter |
//! | all-reduce of an input's gradient (Megatron's `f`) | - | sums the partial gradients the node's leaves routed there |
//! | all-gather of a narrowed input's gradient | - | reassembles the parts of a whole value each rank used a part of |
//! | transfers between stages | activations are sent; received ones become values that require gradients | gradients of received values are sent back; received gradients join the sent value's |
//!
//! Gathers and scatters along a dim move that dim first, so that each
//! rank's part is one contiguous run (what the communicator exchanges), and
//! move it back after.

use tch::{Kind, Tensor};

use crate::comm::Communicator;
use crate::dist::comm_err;
use crate::nodewise::{accumulate, value_key, Key};
use crate::{op_err, Executed, TorchBackend};
use enigma::diagnostics::{Error, ErrorKind};
use enigma::ir::types::tensor::DType;
use enigma::ir::ValueRef;
use enigma::plan::program::{Collective, CollectiveKind, Purpose, Transfer, Value};
use enigma::run::backend::MicroBatch;

/// This rank's place in its tensor-parallel group: its position, and the
/// group's size.
#[derive(Clone, Copy, Debug)]
pub struct TensorGroup {
    pub pos: usize,
    pub size: usize,
}

fn t_err(e: tch::TchError, what: &str) -> Error {
    op_err(crate::OpError::from(e), what)
}

/// Runs `exchange` on `t` with `dim` moved first, so that each rank's part
/// is one contiguous run, into a buffer of `rows(dim's size)` rows, and
/// moves the dim back.
fn along(
    t: &Tensor,
    dim: usize,
    what: &str,
    rows: impl FnOnce(i64) -> Result<i64, Error>,
    exchange: impl FnOnce(&Tensor, &mut Tensor) -> Result<(), crate::comm::CommError>,
) -> Result<Tensor, Error> {
    let d = dim as i64;
    let x = t
        .f_movedim([d], [0])
        .and_then(|x| x.f_contiguous())
        .map_err(|e| t_err(e, what))?;
    let mut size = x.size();
    if let Some(first) = size.first_mut() {
        *first = rows(*first)?;
    }
    let mut out = x
        .f_new_zeros(size.as_slice(), (x.kind(), x.device()))
        .map_err(|e| t_err(e, what))?;
    exchange(&x, &mut out).map_err(|e| comm_err(e, what))?;
    out.f_movedim([0], [d]).map_err(|e| t_err(e, what))
}

/// Concatenates every rank's `t` along `dim`, in group order.
pub fn gather_along(
    comm: &mut dyn Communicator,
    group: usize,
    n: usize,
    t: &Tensor,
    dim: usize,
    what: &str,
) -> Result<Tensor, Error> {
    along(
        t,
        dim,
        what,
        |rows| Ok(rows * n as i64),
        |x, out| comm.all_gather(group, x, out),
    )
}

/// Sums `t` over the group and keeps this rank's part of `dim`.
pub fn scatter_along(
    comm: &mut dyn Communicator,
    group: usize,
    n: usize,
    t: &Tensor,
    dim: usize,
    what: &str,
) -> Result<Tensor, Error> {
    let parts = n as i64;
    along(
        t,
        dim,
        what,
        |whole| {
            if whole % parts != 0 {
                return Err(Error::internal(format!(
                    "{what}: a dim of {whole} does not split in {n} equal parts"
                )));
            }
            Ok(whole / parts)
        },
        |x, out| comm.reduce_scatter(group, x, out),
    )
}

/// The libtorch kind a transfer of `dtype` arrives as.
fn kind_of(dtype: DType) -> Kind {
    match dtype {
        DType::I64 => Kind::Int64,
        DType::I32 => Kind::Int,
        DType::Bool => Kind::Bool,
        _ => Kind::Float,
    }
}

impl TorchBackend {
    fn tensor_group(&self) -> Result<crate::model_parallel::TensorGroup, Error> {
        self.tensor.ok_or_else(|| {
            Error::internal("a tensor-parallel collective, but this rank has no tensor group")
        })
    }

    /// The value `v` as this rank holds it, for a collective.
    fn held(&self, ex: &Executed, v: &Value, micro: &[MicroBatch<'_>]) -> Result<Tensor, Error> {
        match v.value {
            ValueRef::Node(n) => ex
                .values
                .get(&(n, v.copy, v.micro))
                .map(Tensor::shallow_clone)
                .ok_or_else(|| {
                    Error::internal(format!(
                        "the plan reduces %{n} (copy {}, micro-batch {}) before computing it",
                        v.copy, v.micro
                    ))
                }),
            ValueRef::Param(p) => {
                let session = micro.get(v.micro).map_or(0, |m| m.session);
                self.param(p, v.copy, session).map(Tensor::shallow_clone)
            }
            ValueRef::Input(i) => ex
                .inputs
                .get(&(i, v.micro))
                .map(Tensor::shallow_clone)
                .ok_or_else(|| Error::internal(format!("input {i} is not loaded"))),
        }
    }

    /// Executes a tensor-parallel collective of the plan (`Purpose::Forward`
    /// or `Purpose::Backward`).
    pub(crate) fn tensor_collective(
        &mut self,
        ex: &mut Executed,
        c: &Collective,
        micro: &[MicroBatch<'_>],
    ) -> Result<(), Error> {
        let tg = self.tensor_group()?;
        let (v, forward) = match &c.purpose {
            Purpose::Forward(v) => (v, true),
            Purpose::Backward(v) => (v, false),
            _ => return Err(Error::internal("not a tensor-parallel collective")),
        };
        let what = format!(
            "the tensor-parallel {} of {} (copy {}, micro-batch {}){}",
            c.kind.as_str(),
            v.value.label(),
            v.copy,
            v.micro,
            if forward { "" } else { "'s gradient" }
        );
        let dim = || {
            c.dim.ok_or_else(|| {
                Error::internal(format!("{what}: the plan gives no dim to work along"))
            })
        };
        let held = self.held(ex, v, micro)?;
        let zeros = |shape: Vec<i64>| {
            Tensor::f_zeros(shape.as_slice(), (Kind::Float, held.device()))
                .map_err(|e| t_err(e, &what))
        };
        let comm = match self.dist.as_mut() {
            Some(d) => &mut *d.comm,
            None => return Err(Error::internal(format!("{what} in a one-process run"))),
        };
        let key = value_key(v);
        let node_key =
            || key.ok_or_else(|| Error::internal(format!("{what}: only node values are reduced")));
        match (forward, c.kind) {
            (true, CollectiveKind::AllReduce) => {
                let k = node_key()?;
                let mut sum = held.detach().f_detach_copy().map_err(|e| t_err(e, &what))?;
                comm.all_reduce(c.group, &mut sum)
                    .map_err(|e| comm_err(e, &what))?;
                ex.values.insert(k, sum);
            }
            (true, CollectiveKind::ReduceScatter) => {
                let k = node_key()?;
                let shard = scatter_along(comm, c.group, tg.size, &held.detach(), dim()?, &what)?;
                ex.values.insert(k, shard);
                ex.nw.scattered.insert(k);
            }
            (true, CollectiveKind::AllGather) => {
                let d = dim()?;
                let whole = gather_along(comm, c.group, tg.size, &held.detach(), d, &what)?;
                ex.nw.gathered.insert(*v, (whole, d));
            }
            (false, CollectiveKind::AllReduce) => {
                let k = node_key()?;
                let mut g = match ex.nw.partial.remove(&k) {
                    Some(g) => g.f_contiguous().map_err(|e| t_err(e, &what))?,
                    None => zeros(held.size())?,
                };
                comm.all_reduce(c.group, &mut g)
                    .map_err(|e| comm_err(e, &what))?;
                accumulate(&mut ex.nw.grads, k, g)?;
            }
            (false, CollectiveKind::ReduceScatter) => {
                let k = node_key()?;
                let d = dim()?;
                let g = match ex.nw.partial.remove(&k) {
                    Some(g) => g,
                    None => {
                        let mut s = held.size();
                        s[d] *= tg.size as i64;
                        zeros(s)?
                    }
                };
                let part = scatter_along(comm, c.group, tg.size, &g, d, &what)?;
                accumulate(&mut ex.nw.grads, k, part)?;
            }
            (false, CollectiveKind::AllGather) => {
                let k = node_key()?;
                let d = dim()?;
                if ex.nw.scattered.remove(&k) {
                    // The output was reduce-scattered: its backward needs
                    // the whole gradient.
                    let g = match ex.nw.grads.remove(&k) {
                        Some(g) => g,
                        None => zeros(held.size())?,
                    };
                    let whole = gather_along(comm, c.group, tg.size, &g, d, &what)?;
                    ex.nw.grads.insert(k, whole);
                } else {
                    let g = match ex.nw.narrowed.remove(&k) {
                        Some(g) => g,
                        None => {
                            let mut s = held.size();
                            s[d] /= tg.size as i64;
                            zeros(s)?
                        }
                    };
                    let whole = gather_along(comm, c.group, tg.size, &g, d, &what)?;
                    accumulate(&mut ex.nw.grads, k, whole)?;
                }
            }
        }
        Ok(())
    }

    /// Executes a batch of pipeline transfers: every send and receive
    /// posted together. Received activations become values that require
    /// gradients (when training); received gradients join the gradient of
    /// the value this stage sent.
    pub(crate) fn transfers(
        &mut self,
        ex: &mut Executed,
        ts: &[Transfer],
        micro: &[MicroBatch<'_>],
        train: bool,
    ) -> Result<(), Error> {
        let device = self.device;
        let mut sends: Vec<(Tensor, usize)> = Vec::new();
        let mut recvs: Vec<(Tensor, usize, Key, &Transfer)> = Vec::new();
        for t in ts {
            let key = value_key(&t.value).ok_or_else(|| {
                Error::internal(format!("a transfer of {}", t.value.value.label()))
            })?;
            let what = || {
                format!(
                    "{} {}{} of micro-batch {} {} rank {}",
                    if t.send { "sending" } else { "receiving" },
                    if t.grad { "the gradient of " } else { "" },
                    t.value.value.label(),
                    t.value.micro,
                    if t.send { "to" } else { "from" },
                    t.peer
                )
            };
            let mb = micro.get(t.value.micro).ok_or_else(|| {
                Error::new(
                    ErrorKind::Mismatch,
                    format!("{}: the step has {} micro-batches", what(), micro.len()),
                )
            })?;
            let ty = &self.graph.nodes[key.0].out;
            let shape = crate::align::local_shape(ty, &t.shape, self.batch_of(mb));
            let zeros = || {
                Tensor::f_zeros(shape.as_slice(), (Kind::Float, device))
                    .map_err(|e| t_err(e, &what()))
            };
            if t.send {
                let x = if t.grad {
                    match ex.nw.grads.remove(&key) {
                        Some(g) => g,
                        None => zeros()?,
                    }
                } else {
                    ex.values.get(&key).map(Tensor::detach).ok_or_else(|| {
                        Error::internal(format!("{}: the value was not computed", what()))
                    })?
                };
                let x = x
                    .f_to_kind(Kind::Float)
                    .and_then(|x| x.f_contiguous())
                    .map_err(|e| t_err(e, &what()))?;
                sends.push((x, t.peer));
            } else {
                recvs.push((zeros()?, t.peer, key, t));
            }
        }
        {
            let comm = match self.dist.as_mut() {
                Some(d) => &mut *d.comm,
                None => return Err(Error::internal("pipeline transfers in a one-process run")),
            };
            let send_refs: Vec<(&Tensor, usize)> = sends.iter().map(|(t, p)| (t, *p)).collect();
            let mut recv_refs: Vec<(&mut Tensor, usize)> =
                recvs.iter_mut().map(|(t, p, _, _)| (t, *p)).collect();
            let peers: Vec<String> = ts.iter().map(|t| t.peer.to_string()).collect();
            comm.exchange(&send_refs, &mut recv_refs).map_err(|e| {
                comm_err(
                    e,
                    &format!("pipeline transfers with rank {}", peers.join(", ")),
                )
            })?;
        }
        for (t, _, key, tr) in recvs {
            if tr.grad {
                accumulate(&mut ex.nw.grads, key, t)?;
            } else {
                let kind = kind_of(tr.dtype);
                let t = if kind == Kind::Float {
                    t
                } else {
                    t.f_to_kind(kind)
                        .map_err(|e| t_err(e, "converting a received value"))?
                };
                let t = if train && kind == Kind::Float {
                    t.set_requires_grad(true)
                } else {
                    t
                };
                ex.values.insert(key, t);
            }
        }
        Ok(())
    }

    /// The run-time batch of a micro-batch: its first input's leading dim.
    pub(crate) fn batch_of(&self, mb: &MicroBatch<'_>) -> i64 {
        mb.inputs
            .first()
            .and_then(|t| t.shape.first())
            .copied()
            .unwrap_or(1) as i64
    }

    /// Copies `t` from world rank `root` to every rank (the evaluation's
    /// outputs, which only the last pipeline stage computes).
    pub(crate) fn broadcast_from(
        &mut self,
        t: &mut Tensor,
        root: usize,
        what: &str,
    ) -> Result<(), Error> {
        let Some(d) = self.dist.as_mut() else {
            return Ok(());
        };
        let world = d.comm.world();
        d.comm
            .broadcast(world, t, root)
            .map_err(|e| comm_err(e, what))
    }

    /// A float tensor of `shape` on this device: `t` on the root, zeros
    /// elsewhere, then broadcast from the root.
    pub(crate) fn shared(
        &mut self,
        t: Option<&Tensor>,
        shape: &[i64],
        root: usize,
        what: &str,
    ) -> Result<Tensor, Error> {
        let mut buf = match t {
            Some(t) => t
                .f_to_kind(Kind::Float)
                .and_then(|x| x.f_contiguous())
                .and_then(|x| x.f_detach_copy()),
            None => Tensor::f_zeros(shape, (Kind::Float, self.device)),
        }
        .map_err(|e| t_err(e, what))?;
        if buf.size() != shape {
            return Err(Error::internal(format!(
                "{what}: the root holds {:?}, the others expect {shape:?}",
                buf.size()
            )));
        }
        self.broadcast_from(&mut buf, root, what)?;
        Ok(buf)
    }
}
