//! `enigma-torch`: the libtorch backend (`tch 0.24`) of `enigma`'s runtime,
//! and the runtime program `enigma-run` (`src/main.rs`). It executes a
//! rank's program from the plan, op by op, on the CPU or one CUDA device.
//! This is the only package that links libtorch; it depends on the `enigma`
//! library for everything else and plugs in through
//! `enigma::run::session::Runtime` ([`TorchRuntime`]) and
//! `enigma::run::backend::Backend` ([`TorchBackend`]).
//!
//! - `load` uploads a micro-batch's modality; `forward` applies an IR node
//!   (`ops.rs`) and keeps its output under `(node, copy, micro)`, so a
//!   `repeat` body runs once per layer copy with the layer's own
//!   parameters; `backward` of a micro-batch's first node runs autograd
//!   from that micro-batch's loss (libtorch computes every node's backward
//!   in reverse order, which is the order the plan lists) and frees the
//!   micro-batch's values; `step` clips and applies the optimiser.
//! - Collectives run on the communicator (`comm/`: MPI for CPU tensors,
//!   NCCL for CUDA tensors), data parallelism and ZeRO as `dist.rs` says,
//!   tensor-parallel collectives and pipeline transfers as
//!   `model_parallel.rs` says. Under tensor or pipeline parallelism (and
//!   activation checkpointing) the backward pass runs node by node as the
//!   plan lists it (`nodewise.rs`) instead of in one autograd call.
//! - A rank holds the part of each parameter its plan gives it (a
//!   tensor-parallel shard, the parameters of its pipeline stage), cut from
//!   the one-process initialisation, so every layout starts from the same
//!   weights.
//! - Parameters are f32 master weights; with `precision: bf16` (`f16`) on
//!   CUDA the forward runs under autocast with its dtype set explicitly to
//!   bf16 (fp16) (`precision.rs`: tch's own `autocast` leaves CUDA's fp16
//!   default), so matrix products and attention run in bf16 (fp16) and
//!   norms, softmax and losses in f32. On the CPU the forward runs in f32.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod align;
pub mod comm;
mod dist;
mod model_parallel;
mod nodewise;
mod ops;
mod optim;
pub mod precision;
mod transfer;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use tch::{Device, Kind, Tensor};

use enigma::base::host::HostTensor;
use enigma::base::rng::derive;
use enigma::diagnostics::{Error, ErrorKind, NodePlace};
use enigma::ir::train::TrainConfig;
use enigma::ir::train::{NonFinite, Optimizer};
use enigma::ir::{Experiment, Graph, Op, ValueRef};
use enigma::plan::program::{GroupKind, Instr, Plan, Purpose, RankProgram, Value};
use enigma::run::backend::{
    Backend, EvalOutcome, HoldOut, MicroBatch, Prediction, StepKeys, StepOutcome, Update,
};
use enigma::run::checkpoint::I64Tensor;
use enigma::run::session::{Job, Runtime};

use comm::Communicator;
use dist::Dist;

/// A failed tensor operation, before the backend adds which node it was.
#[derive(Debug)]
pub struct OpError {
    pub message: String,
    /// [`ErrorKind::Op`] for an operation that failed on its inputs (E0502),
    /// [`ErrorKind::Unsupported`] for one this runtime does not execute yet
    /// (E0501).
    pub kind: ErrorKind,
}

impl OpError {
    pub fn new(message: String) -> OpError {
        OpError {
            message,
            kind: ErrorKind::Op,
        }
    }

    /// An operation the checker accepts and this runtime does not execute.
    pub fn unsupported(message: String) -> OpError {
        OpError {
            message,
            kind: ErrorKind::Unsupported,
        }
    }
}

impl From<tch::TchError> for OpError {
    fn from(e: tch::TchError) -> OpError {
        // libtorch's messages carry a C++ backtrace after the first line.
        let text = e.to_string();
        OpError::new(text.lines().next().unwrap_or("libtorch error").to_string())
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub(crate) fn op_err(e: impl Into<OpError>, what: impl fmt::Display) -> Error {
    let e = e.into();
    Error::new(e.kind, format!("{what}: {e}"))
}

/// Which device to run on: the CPU, or CUDA device `local_rank` (each
/// process of a node drives the GPU of its local rank).
pub fn device(cuda: bool, local_rank: usize) -> Result<Device, Error> {
    if !cuda {
        return Ok(Device::Cpu);
    }
    if tch::Cuda::is_available() {
        let n = tch::Cuda::device_count().max(0) as usize;
        if local_rank >= n {
            return Err(Error::new(
                ErrorKind::Device,
                format!("this process is local rank {local_rank}, but the node has {n} CUDA devices; start at most {n} processes per node"),
            ));
        }
        Ok(Device::Cuda(local_rank))
    } else {
        Err(Error::new(
            ErrorKind::Device,
            format!(
                "a CUDA device was asked for, but libtorch finds none (libtorch at {}); run with `--device cpu` or on a GPU machine",
                env!("ENIGMA_LIBTORCH_LIB")
            ),
        ))
    }
}

/// The runtime of `enigma-run`: libtorch backends.
pub struct TorchRuntime;

impl Runtime for TorchRuntime {
    type Backend = TorchBackend;

    fn backend(
        &self,
        x: &Experiment,
        plan: &Plan,
        program: &RankProgram,
        config: &TrainConfig,
        cuda: bool,
        job: &Job<'_>,
    ) -> Result<TorchBackend, Error> {
        let dev = device(cuda, job.world.local_rank)?;
        let comm = if job.world.size > 1 {
            Some(comm::connect(job, plan, dev)?)
        } else {
            None
        };
        TorchBackend::new(&x.graph, plan, program, dev, config, comm)
            .and_then(|b| b.with_session_graphs(&x.session_graphs))
    }
}

/// The libtorch backend of one rank.
pub struct TorchBackend {
    graph: Graph,
    /// Per session, the graph with its shapes, when sessions differ in a
    /// `per session` dim (`Experiment::session_graphs`); empty otherwise.
    session_graphs: Vec<std::sync::Arc<Graph>>,
    /// The run's seed, which initialises every parameter copy.
    seed: u64,
    device: Device,
    /// The dtype the forward autocasts to (`precision::autocast_kind`), or
    /// `None` for no autocast.
    autocast: Option<Kind>,
    optimizer: Optimizer,
    slots: Vec<Slot>,
    /// `(param, layer, copy)` to its slot.
    index: HashMap<(usize, usize, usize), usize>,
    /// Per parameter: whether it has a slot per layer, and per session.
    per_layer: Vec<bool>,
    per_session: Vec<bool>,
    /// Optimiser steps taken (Adam's bias correction).
    t: u64,
    /// The communicator and this rank's share of the model state, in a
    /// job of several processes.
    dist: Option<Dist>,
    /// Per node: the `repeat` body it is in.
    body_of: Vec<Option<usize>>,
    /// The position held out by the evaluation under way, if any.
    hold_out: Option<HoldOut>,
    /// Whether the backward pass runs node by node (`nodewise.rs`).
    nodewise: bool,
    /// Per node: whether its output carries a gradient
    /// (`Graph::grad_carriers`, as the planner decides it).
    needs_grad: Vec<bool>,
    /// This rank's tensor-parallel group, under tensor parallelism.
    tensor: Option<model_parallel::TensorGroup>,
    /// Whether the model is split into pipeline stages, and the world rank
    /// of the last stage that serves evaluations (the outputs are its).
    pipelined: bool,
    eval_root: usize,
    /// Whether only the per-session tables are trained (`transfer.rs`).
    frozen_shared: bool,
}

/// The name of a parameter copy: `path`, `path#layer`, `path@session`.
fn slot_name(path: &str, layer: Option<usize>, copy: Option<usize>) -> String {
    let mut s = path.to_string();
    if let Some(l) = layer {
        s.push_str(&format!("#{l}"));
    }
    if let Some(c) = copy {
        s.push_str(&format!("@{c}"));
    }
    s
}

/// One parameter copy with its optimiser state.
pub struct Slot {
    pub name: String,
    /// The whole copy, requiring gradients. Under ZeRO 3 it exists only
    /// from the gather before its first use to the end of the step
    /// (undefined otherwise).
    pub value: Tensor,
    pub shape: Vec<i64>,
    /// The elements of the flattened copy this rank updates under ZeRO,
    /// `None` for all of them.
    pub own: Option<(i64, i64)>,
    /// Under ZeRO 3, the lasting f32 copy of the `own` elements.
    pub master: Option<Tensor>,
    /// First moment (Adam, Lion) or momentum buffer (SGD), of the `own`
    /// elements (flat) or of the whole copy.
    pub m: Tensor,
    /// Second moment (Adam); unused by SGD.
    pub v: Tensor,
    /// The gradient after the data-parallel all-reduce, when there was one.
    pub grad: Option<Tensor>,
    pub decay: bool,
    /// For a per-session parameter, its session: it is updated only in
    /// steps that saw that session.
    pub session: Option<usize>,
    /// The whole copy's shape, and the part of it this rank holds (a
    /// tensor-parallel shard; all of it otherwise).
    pub whole: Vec<i64>,
    pub ranges: Vec<(i64, i64)>,
    /// Whether this rank counts the copy among the ranks of its replica
    /// that hold the same part (gradient norm, checkpoints).
    pub owner: bool,
}

impl TorchBackend {
    /// Places and initialises every parameter copy that `program` (one
    /// rank of `plan`) holds on `device`, from the run's seed, with the
    /// ZeRO slices its plan gives it when `comm` joins it to other ranks.
    pub fn new(
        graph: &Graph,
        plan: &Plan,
        program: &RankProgram,
        device: Device,
        config: &TrainConfig,
        comm: Option<Box<dyn Communicator>>,
    ) -> Result<TorchBackend, Error> {
        let mut slots: Vec<Slot> = Vec::new();
        let mut index = HashMap::new();
        let mut per_layer = vec![false; graph.params.len()];
        let mut per_session = vec![false; graph.params.len()];
        let mut slots_of: BTreeMap<usize, (Vec<usize>, i64)> = BTreeMap::new();
        let held: std::collections::BTreeSet<usize> =
            program.params.iter().map(|p| p.placement).collect();
        for (k, pl) in plan.placements.iter().enumerate() {
            if !held.contains(&k) {
                continue;
            }
            let Some(param) = graph.params.get(pl.param) else {
                return Err(Error::new(
                    ErrorKind::Mismatch,
                    format!("placement of unknown parameter {}", pl.param),
                ));
            };
            per_layer[pl.param] = pl.layer.is_some();
            per_session[pl.param] = param.per_session;
            let shape: Vec<usize> = pl.shape.iter().map(|&d| d.max(0) as usize).collect();
            let lp = program.params.iter().find(|lp| lp.placement == k);
            let ranges: Vec<(i64, i64)> = match lp {
                Some(lp) if lp.ranges.len() == pl.shape.len() => lp.ranges.clone(),
                _ => pl.shape.iter().map(|&n| (0, n)).collect(),
            };
            let local: Vec<i64> = ranges.iter().map(|(a, b)| b - a).collect();
            let numel: i64 = local.iter().product();
            for c in 0..pl.copies.max(1) as usize {
                let copy = (pl.copies > 1).then_some(c);
                let name = slot_name(&param.path, pl.layer, copy);
                // The whole copy as one process initialises it, then this
                // rank's part: any tensor-parallel degree starts from the
                // same weights.
                let host = enigma::run::init::init(&name, &param.init, &shape, config.seed)
                    .map_err(|e| Error::new(ErrorKind::Unsupported, e.to_string()))?;
                let value = upload(&host, device)
                    .and_then(|t| part_of(&t, &ranges))
                    .map_err(|e| op_err(e, format!("placing `{name}`")))?;
                index.insert((pl.param, pl.layer.unwrap_or(0), c), slots.len());
                let entry = slots_of.entry(k).or_insert((Vec::new(), numel));
                entry.0.push(slots.len());
                slots.push(Slot {
                    m: Tensor::new(),
                    v: Tensor::new(),
                    value: value.set_requires_grad(true),
                    shape: local.clone(),
                    whole: pl.shape.clone(),
                    ranges: ranges.clone(),
                    owner: lp.is_none_or(|lp| lp.owner),
                    own: None,
                    master: None,
                    grad: None,
                    decay: shape.len() >= 2,
                    session: (param.per_session && pl.copies > 1)
                        .then_some(c)
                        .or(param.per_session.then_some(0)),
                    name,
                });
            }
        }
        let zero = plan.layout.zero;
        let dist = match comm {
            None => None,
            Some(comm) => {
                let rank = program.rank;
                let groups = plan.groups.clone();
                let zero_group = Dist::group_of(&groups, rank, GroupKind::Zero);
                let degree = match zero_group {
                    Some(g) if zero > 0 => {
                        comm.group_rank(g)
                            .map_err(|e| dist::comm_err(e, "the ZeRO group"))?
                            .1
                    }
                    _ => 1,
                };
                let shards = Dist::shards(program, degree, &|k| slots_of.get(&k).cloned())?;
                Some(Dist {
                    comm,
                    zero,
                    data: Dist::group_of(&groups, rank, GroupKind::Data),
                    zero_group,
                    replica: Dist::group_of(&groups, rank, GroupKind::Replica),
                    groups,
                    shards,
                    grad_parts: BTreeMap::new(),
                })
            }
        };
        // Each copy's own elements, its moments, and under ZeRO 3 its
        // master copy (the weights are then freed until first gathered).
        if let Some(d) = dist.as_ref().filter(|d| d.zero > 0) {
            for sh in d.shards.values() {
                for (c, &i) in sh.slots.iter().enumerate() {
                    let s = &mut slots[i];
                    let (a, b) = dist::local(sh, c).unwrap_or((0, 0));
                    s.own = Some((a, b));
                    if d.zero >= 3 {
                        let part = s
                            .value
                            .f_reshape([-1])
                            .and_then(|v| v.f_narrow(0, a, b - a))
                            .and_then(|v| v.f_detach_copy())
                            .map_err(|e| op_err(e, format!("the ZeRO-3 slice of `{}`", s.name)))?;
                        s.master = Some(part);
                        s.value = Tensor::new();
                    }
                }
            }
        }
        for s in &mut slots {
            let zeros = || match s.own {
                Some((a, b)) => Tensor::f_zeros([b - a], (Kind::Float, device)),
                None => Tensor::f_zeros(s.shape.as_slice(), (Kind::Float, device)),
            };
            s.m = zeros().map_err(|e| op_err(e, format!("optimiser state of `{}`", s.name)))?;
            s.v = zeros().map_err(|e| op_err(e, format!("optimiser state of `{}`", s.name)))?;
        }
        let body_of = graph.bodies();
        let tensor = match &dist {
            Some(d) => match Dist::group_of(&d.groups, program.rank, GroupKind::Tensor) {
                Some(id) => {
                    let (pos, size) = d
                        .comm
                        .group_rank(id)
                        .map_err(|e| dist::comm_err(e, "the tensor-parallel group"))?;
                    Some(model_parallel::TensorGroup { pos, size })
                }
                None => None,
            },
            None => None,
        };
        let layout = &plan.layout;
        let stages = layout.stages().max(1);
        let eval_root = plan
            .ranks
            .iter()
            .filter(|r| r.stage == stages - 1)
            .map(|r| r.rank)
            .min()
            .unwrap_or(0);
        Ok(TorchBackend {
            needs_grad: graph.grad_carriers(),
            nodewise: layout.tensor_degree() > 1 || stages > 1 || layout.checkpoint_activations,
            tensor,
            pipelined: stages > 1,
            eval_root,
            graph: graph.clone(),
            session_graphs: Vec::new(),
            seed: config.seed,
            device,
            autocast: precision::autocast_kind(config.precision, device),
            optimizer: config.optimizer.clone(),
            slots,
            index,
            per_layer,
            per_session,
            t: 0,
            body_of,
            hold_out: None,
            dist,
            frozen_shared: false,
        })
    }

    /// Gives each session its own shapes: the copies of a per-session
    /// parameter are re-made at their session's size (from the same seed
    /// and name, so a session's table does not depend on the others), and
    /// each micro-batch runs through its session's graph.
    pub fn with_session_graphs(
        mut self,
        graphs: &[std::sync::Arc<Graph>],
    ) -> Result<TorchBackend, Error> {
        if graphs.is_empty() {
            return Ok(self);
        }
        // Each slot's parameter, and its size in its session's graph where
        // that differs from the size it was made at.
        let param_of: HashMap<usize, usize> =
            self.index.iter().map(|(&(p, _, _), &i)| (i, p)).collect();
        let changed: Vec<(usize, usize, Vec<i64>)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let g = graphs.get(s.session?)?;
                let p = *param_of.get(&i)?;
                let whole: Vec<i64> = g
                    .params
                    .get(p)?
                    .ty
                    .dims
                    .iter()
                    .map(|d| d.size_or_name().as_const())
                    .collect::<Option<_>>()?;
                (whole != s.whole).then_some((i, p, whole))
            })
            .collect();
        if !changed.is_empty() {
            if self.dist.as_ref().is_some_and(|d| d.zero > 0) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "ZeRO over per-session parameters whose sizes differ between sessions is not supported yet; run without `zero:`, or give every session the same cells",
                ));
            }
            if self.tensor.is_some() || self.pipelined {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "tensor and pipeline parallelism over per-session parameters whose sizes differ between sessions are not supported yet; map the model's dims to data parallelism only",
                ));
            }
        }
        let device = self.device;
        for (i, p, whole) in changed {
            let s = &mut self.slots[i];
            let init =
                self.graph.params.get(p).map(|x| x.init).ok_or_else(|| {
                    Error::internal(format!("slot `{}` has no parameter", s.name))
                })?;
            let shape: Vec<usize> = whole.iter().map(|&d| d.max(0) as usize).collect();
            let host = enigma::run::init::init(&s.name, &init, &shape, self.seed)
                .map_err(|e| Error::new(ErrorKind::Unsupported, e.to_string()))?;
            let value =
                upload(&host, device).map_err(|e| op_err(e, format!("placing `{}`", s.name)))?;
            s.value = value.set_requires_grad(true);
            s.shape = whole.clone();
            s.ranges = whole.iter().map(|&n| (0, n)).collect();
            s.whole = whole;
            let zeros = || Tensor::f_zeros(s.shape.as_slice(), (Kind::Float, device));
            s.m = zeros().map_err(|e| op_err(e, format!("optimiser state of `{}`", s.name)))?;
            s.v = zeros().map_err(|e| op_err(e, format!("optimiser state of `{}`", s.name)))?;
        }
        self.session_graphs = graphs.to_vec();
        Ok(self)
    }

    /// The graph with session `s`'s shapes.
    fn graph_of(&self, s: usize) -> &Graph {
        self.session_graphs.get(s).map_or(&self.graph, |g| g)
    }

    fn param(&self, p: usize, copy: usize, session: usize) -> Result<&Tensor, Error> {
        let layer = if self.per_layer.get(p).copied().unwrap_or(false) {
            copy
        } else {
            0
        };
        let c = if self.per_session.get(p).copied().unwrap_or(false) {
            session
        } else {
            0
        };
        let path = || self.graph.params.get(p).map_or("?", |x| x.path.as_str());
        let slot = self
            .index
            .get(&(p, layer, c))
            .and_then(|&i| self.slots.get(i))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Mismatch,
                    format!("no copy of parameter `{}` for layer {layer}, session {session} (the data has more sessions than the model was built for?)", path()),
                )
            })?;
        if !slot.value.defined() {
            return Err(Error::internal(format!(
                "parameter `{}` is used before the plan gathers it (ZeRO 3)",
                slot.name
            )));
        }
        Ok(&slot.value)
    }

    /// Runs the forward ops of `program` (and, when `train`, the backward
    /// and step ops); returns each micro-batch's loss and the values kept.
    fn execute(
        &mut self,
        program: &RankProgram,
        micro: &[MicroBatch<'_>],
        keys: StepKeys,
        train: bool,
        update: Option<Update>,
    ) -> Result<Executed, Error> {
        let mut ex = Executed::default();
        let losses = self.graph.loss_nodes();
        let n_micro = micro.len().max(1) as f64;
        let mut done_backward = vec![false; micro.len()];
        let nodewise = self.nodewise && train;
        // Under the node-by-node step, a micro-batch's values are dropped
        // after the last instruction that concerns it.
        let last_of = if nodewise {
            last_uses(program)
        } else {
            HashMap::new()
        };
        for (at, op) in program.ops.iter().enumerate() {
            // A forward chunk ends at the first instruction of another kind:
            // the outputs its checkpointed blocks did not save go.
            if !ex.nw.unsaved.is_empty() && !is_forward(op) {
                for k in std::mem::take(&mut ex.nw.unsaved) {
                    ex.values.remove(&k);
                }
            }
            match op {
                Instr::Load {
                    input, micro: m, ..
                } => {
                    let mb = micro.get(*m).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Mismatch,
                            format!(
                                "the plan loads micro-batch {m}, but the step has {}",
                                micro.len()
                            ),
                        )
                    })?;
                    let name = self
                        .graph
                        .inputs
                        .get(*input)
                        .map_or("?", |i| i.name.as_str())
                        .to_string();
                    let host = mb.inputs.get(*input).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Mismatch,
                            format!("the batch has no data for input `{name}`"),
                        )
                    })?;
                    if let Some(i) = host.first_non_finite() {
                        return Err(Error::new(ErrorKind::NonFinite, format!("input `{name}` of micro-batch {m} holds a non-finite value at flat index {i} (shape {:?})", host.shape)));
                    }
                    let t = upload(host, self.device)
                        .map_err(|e| op_err(e, format!("loading `{name}`")))?;
                    ex.inputs.insert((*input, *m), t);
                }
                Instr::Forward {
                    node,
                    copy,
                    micro: m,
                    shape,
                    saved,
                    recompute,
                    narrow,
                    gather,
                    partial_grad,
                    ..
                } => {
                    let mb = micro.get(*m).ok_or_else(|| {
                        Error::new(ErrorKind::Mismatch, format!("no micro-batch {m}"))
                    })?;
                    let app = App {
                        key: (*node, *copy, *m),
                        planned: shape,
                        narrow,
                        gather,
                        partial: partial_grad,
                        // A checkpointed block's first forward keeps no
                        // graph; its recomputation does.
                        record: nodewise && (*saved || *recompute),
                        unsaved: nodewise && !*saved && !*recompute,
                        // One key for every micro-batch of the step: `first`
                        // tells their samples apart, as one process's batch
                        // does (the key is what a step's single micro-batch
                        // always drew from, so one process draws the masks
                        // it drew before pipelines split its batch).
                        mask_key: enigma::run::mask::application_key(keys.mask),
                        dropout_key: keys.dropout,
                    };
                    self.forward(&mut ex, &app, mb, train)?;
                }
                Instr::Backward {
                    node,
                    copy,
                    micro: m,
                    ..
                } => {
                    if !train || done_backward.get(*m).copied().unwrap_or(true) {
                        if nodewise {
                            self.backward_node(&mut ex.nw, (*node, *copy, *m))?;
                        }
                        continue;
                    }
                    done_backward[*m] = true;
                    // Only the last pipeline stage computes the loss.
                    let here = !losses.is_empty()
                        && losses.iter().all(|&n| ex.values.contains_key(&(n, 0, *m)));
                    if here {
                        let loss = self.loss(&ex, &losses, *m)?;
                        let value = loss.double_value(&[]);
                        ex.losses.push(value);
                        if !value.is_finite() {
                            // Found only now, while the activations are still
                            // here: checking every op's output on every step
                            // would cost a pass over each tensor.
                            if let Some(c) = self.first_non_finite(program, &ex, *m) {
                                ex.culprits.push((*m, c));
                            }
                        } else if nodewise {
                            self.seed_loss(&mut ex.nw, &ex.values, &losses, *m, 1.0 / n_micro)?;
                        } else {
                            let scaled = loss
                                .f_div_scalar(n_micro)
                                .map_err(|e| op_err(e, "scaling the loss"))?;
                            scaled
                                .f_backward()
                                .map_err(|e| op_err(e, format!("backward of micro-batch {m}")))?;
                        }
                    }
                    if nodewise {
                        self.backward_node(&mut ex.nw, (*node, *copy, *m))?;
                    } else {
                        // The micro-batch's activations are no longer needed.
                        ex.values.retain(|k, _| k.2 != *m);
                        ex.masks.retain(|k, _| k.2 != *m);
                    }
                }
                Instr::Collective(c) => match c.purpose {
                    Purpose::Forward(_) | Purpose::Backward(_) => {
                        self.tensor_collective(&mut ex, c, micro)?
                    }
                    _ => self.collective(c)?,
                },
                Instr::P2p(ts) => self.transfers(&mut ex, ts, micro, train)?,
                Instr::Step => {
                    if let Some(u) = update {
                        let sessions: Vec<usize> = micro.iter().map(|m| m.session).collect();
                        ex.outcome = Some(self.step(&ex.losses, &ex.culprits, u, &sessions)?);
                    }
                }
            }
            for (&m, _) in last_of.iter().filter(|(_, &last)| last == at) {
                ex.forget(m);
            }
        }
        Ok(ex)
    }

    fn forward(
        &self,
        ex: &mut Executed,
        app: &App<'_>,
        mb: &MicroBatch<'_>,
        train: bool,
    ) -> Result<(), Error> {
        let (node, copy, m) = app.key;
        let graph = self.graph_of(mb.session);
        let n = graph.nodes.get(node).ok_or_else(|| {
            Error::new(
                ErrorKind::Mismatch,
                format!("the plan names node %{node}, which the model lacks"),
            )
        })?;
        let failed =
            |message: String| Error::new(ErrorKind::Op, message).in_node(self.place(node, copy));
        if let Op::TokenMask { of } = n.op {
            let mask = match ex.masks.get(&(of, 0, m)) {
                Some(mask) => mask.shallow_clone(),
                // Drawn on an earlier pipeline stage: the draw depends only
                // on the keys and shapes, so it is drawn again here.
                None => self
                    .redraw_mask(of, mb, app.mask_key, train)
                    .map_err(|e| failed(format!("drawing the mask of %{of} again: {e}")))?,
            };
            ex.values.insert((node, copy, m), mask);
            return Ok(());
        }
        let mut ins = Vec::with_capacity(n.inputs.len());
        let mut tys = Vec::with_capacity(n.inputs.len());
        let mut leaves = Vec::new();
        for (i, v) in n.inputs.iter().enumerate() {
            let t = self.input(ex, app, i, *v, mb.session, &mut leaves)?;
            ins.push(t);
            tys.push(graph.type_of(*v));
        }
        let batch = self.batch_of(mb);
        let local = self
            .tensor
            .map(|_| align::local_shape(&n.out, app.planned, batch));
        let ctx = ops::Ctx {
            train,
            batch,
            first: mb.first as i64,
            mask_key: app.mask_key,
            device: self.device,
            hold_out: self.hold_out.as_ref(),
            local: local.as_deref(),
        };
        if self.nodewise && matches!(n.op, Op::Dropout { .. }) {
            // Each application draws from its own generator, so that a
            // recomputation draws the mask the first forward drew.
            tch::manual_seed(derive(
                derive(app.dropout_key, node as u64),
                (copy * 1_000_003 + m) as u64,
            ) as i64);
        }
        // Sets the autocast dtype on this thread each time (libtorch keeps it
        // per thread), not only the switch as `tch::autocast` would.
        let run = || {
            precision::autocast(self.device, self.autocast, || {
                ops::apply(&ctx, n, &ins, &tys)
            })
        };
        let applied = if app.unsaved {
            tch::no_grad(run)
        } else {
            run()
        }
        .map_err(|e| {
            if e.kind == ErrorKind::Unsupported {
                // Not a failure on these inputs: their shapes say nothing.
                return Error::new(e.kind, e.message).in_node(self.place(node, copy));
            }
            let shapes: Vec<String> = ins.iter().map(|t| format!("{:?}", t.size())).collect();
            failed(format!("on inputs of shape {}: {e}", shapes.join(", ")))
        })?;
        if let Some(mask) = applied.mask {
            ex.masks.insert(app.key, mask);
        }
        if app.record && applied.out.requires_grad() {
            ex.nw.apps.insert(
                app.key,
                nodewise::App {
                    out: applied.out.shallow_clone(),
                    leaves,
                },
            );
        }
        if app.unsaved {
            ex.nw.unsaved.push(app.key);
        }
        ex.values.insert(app.key, applied.out);
        Ok(())
    }

    /// Input `i` (value `v`) of an application as its node takes it: whole
    /// from the tensor-parallel gather, narrowed to this rank's part, or as
    /// held; under the node-by-node step, through a leaf whose gradient
    /// goes where the plan says (`nodewise::Route`).
    fn input(
        &self,
        ex: &Executed,
        app: &App<'_>,
        i: usize,
        v: ValueRef,
        session: usize,
        leaves: &mut Vec<(Tensor, nodewise::Route)>,
    ) -> Result<Tensor, Error> {
        let (node, copy, m) = app.key;
        let failed =
            |message: String| Error::new(ErrorKind::Op, message).in_node(self.place(node, copy));
        let producer = match v {
            ValueRef::Node(_) => self
                .graph
                .producer(&self.body_of, node, copy, v)
                .map(|(p, c)| (p, c, m)),
            _ => None,
        };
        let raw = match v {
            ValueRef::Input(i) => ex.inputs.get(&(i, m)).map(Tensor::shallow_clone),
            ValueRef::Param(p) => Some(self.param(p, copy, session)?.shallow_clone()),
            ValueRef::Node(_) => {
                producer.and_then(|k| ex.values.get(&k).map(Tensor::shallow_clone))
            }
        }
        .ok_or_else(|| {
            failed(format!(
                "its input {} was not computed before it",
                v.label()
            ))
        })?;
        let t_err = |e: tch::TchError| {
            failed(format!(
                "preparing input {}: {}",
                v.label(),
                OpError::from(e)
            ))
        };
        // A value computed under no autograd (a collective's result, a
        // checkpointed block's first forward, a received activation) still
        // carries a gradient when the plan says it does.
        let grad = app.record
            && (raw.requires_grad()
                || producer.is_some_and(|k| self.needs_grad.get(k.0).copied().unwrap_or(false)));
        let partial = app.partial.contains(&i);
        let narrow = app.narrow.iter().find(|(j, _)| *j == i).map(|&(_, d)| d);
        let gathered = if app.gather.contains(&i) {
            let key = Value {
                value: v,
                copy: producer.map_or(copy, |k| k.1),
                micro: m,
            };
            let (whole, d) = ex.nw.gathered.get(&key).ok_or_else(|| {
                failed(format!(
                    "its input {} was not gathered before it",
                    v.label()
                ))
            })?;
            Some((whole.shallow_clone(), *d))
        } else {
            None
        };
        let tp = self.tensor;
        let part = |t: &Tensor, d: usize| -> Result<Tensor, Error> {
            let tg =
                tp.ok_or_else(|| failed("a narrowed input without tensor parallelism".into()))?;
            let n = t.size().get(d).copied().unwrap_or(0) / tg.size as i64;
            t.f_narrow(d as i64, tg.pos as i64 * n, n).map_err(t_err)
        };
        let mut route = |l: &Tensor, r: nodewise::Route| {
            if l.requires_grad() {
                leaves.push((l.shallow_clone(), r));
            }
        };
        Ok(match (producer, gathered, narrow) {
            // Gathered from sequence shards for a node that leaves its
            // gradient partial: the plan's reduce-scatter returns it.
            (Some(k), Some((whole, _)), _) if partial => {
                let l = nodewise::leaf(&whole, grad);
                route(&l, nodewise::Route::Partial(k));
                l
            }
            // Gathered for a node that computes whole: this rank's slice
            // of the gradient is its own part's, through the splice.
            (_, Some((whole, d)), _) => {
                let own = match producer {
                    Some(k) => {
                        let l = nodewise::leaf(&raw, grad);
                        route(&l, nodewise::Route::Whole(k));
                        l
                    }
                    None => raw,
                };
                let tg =
                    tp.ok_or_else(|| failed("a gathered input without tensor parallelism".into()))?;
                let mut pieces = whole.f_chunk(tg.size as i64, d as i64).map_err(t_err)?;
                if let Some(p) = pieces.get_mut(tg.pos) {
                    *p = own;
                }
                Tensor::f_cat(&pieces, d as i64).map_err(t_err)?
            }
            (Some(k), None, Some(d)) => {
                let l = nodewise::leaf(&part(&raw.detach(), d)?, grad);
                route(&l, nodewise::Route::Narrowed(k));
                l
            }
            // A parameter or data narrowed: autograd's narrow gives the
            // parameter this part's gradient (summed over the group by the
            // plan's gradient all-reduce).
            (None, None, Some(d)) => part(&raw, d)?,
            (Some(k), None, None) if app.record => {
                let l = nodewise::leaf(&raw, grad);
                let r = if partial {
                    nodewise::Route::Partial(k)
                } else {
                    nodewise::Route::Whole(k)
                };
                route(&l, r);
                l
            }
            _ => raw,
        })
    }

    /// Node `node`'s application `copy`, as errors name it: its op, number
    /// and scope.
    fn place(&self, node: usize, copy: usize) -> NodePlace {
        let n = self.graph.nodes.get(node);
        NodePlace {
            op: n.map_or("?", |n| n.op.name()).to_string(),
            node,
            copy,
            scope: n
                .and_then(|n| self.graph.scopes.get(n.scope))
                .map_or(String::new(), |s| s.path.clone()),
        }
    }

    /// The token mask node `of` (a `mask_tokens`) drew for micro-batch
    /// `mb`, drawn again from the same keys and sizes.
    fn redraw_mask(
        &self,
        of: usize,
        mb: &MicroBatch<'_>,
        mask_key: u64,
        train: bool,
    ) -> Result<Tensor, OpError> {
        let graph = self.graph_of(mb.session);
        let n = graph
            .nodes
            .get(of)
            .ok_or_else(|| OpError::new(format!("no node %{of}")))?;
        let (Op::MaskTokens { ratio, axes }, Some(x)) = (&n.op, n.inputs.first()) else {
            return Err(OpError::new(format!("%{of} is not a `mask_tokens`")));
        };
        let x_ty = graph.type_of(*x);
        let batch = self.batch_of(mb);
        let full = align::shape(x_ty, batch)?;
        let dims: Vec<i64> = axes
            .iter()
            .map(|&d| {
                full.get(d)
                    .copied()
                    .ok_or_else(|| OpError::new("bad mask dim".into()))
            })
            .collect::<Result<_, _>>()?;
        let ctx = ops::Ctx {
            train,
            batch,
            first: mb.first as i64,
            mask_key,
            device: self.device,
            hold_out: self.hold_out.as_ref(),
            local: None,
        };
        ops::draw_mask(&ctx, *ratio, axes, &dims, Some(x_ty), self.device)
    }

    /// The first forward value of micro-batch `m`, in execution order,
    /// holding NaN (or, when none does, infinity): the op that made it, its
    /// shape and how many entries are affected. NaN is looked for first
    /// because an infinity can be meant (`-inf` where attention is masked).
    fn first_non_finite(&self, program: &RankProgram, ex: &Executed, m: usize) -> Option<String> {
        let count = |v: &Tensor, nan: bool| -> Option<i64> {
            let b = if nan {
                v.f_isnan().ok()?
            } else {
                v.f_isinf().ok()?
            };
            Some(b.f_sum(Kind::Int64).ok()?.int64_value(&[]))
        };
        [true, false].into_iter().find_map(|nan| {
            program.ops.iter().find_map(|op| {
                let Instr::Forward {
                    node, copy, micro, ..
                } = op
                else {
                    return None;
                };
                let v = ex.values.get(&(*node, *copy, m)).filter(|_| *micro == m)?;
                if !v.is_floating_point() {
                    return None;
                }
                let bad = count(v, nan).filter(|&k| k > 0)?;
                Some(format!(
                    "the output of {} (shape {:?}: {bad} of {} entries {})",
                    self.place(*node, *copy),
                    v.size(),
                    v.numel(),
                    if nan { "NaN" } else { "infinite" }
                ))
            })
        })
    }

    fn loss(&self, ex: &Executed, losses: &[usize], m: usize) -> Result<Tensor, Error> {
        let mut total: Option<Tensor> = None;
        for &n in losses {
            let v = ex.values.get(&(n, 0, m)).ok_or_else(|| {
                Error::new(
                    ErrorKind::Op,
                    format!("the loss (node %{n}) of micro-batch {m} was not computed"),
                )
            })?;
            let v = v
                .f_to_kind(Kind::Float)
                .map_err(|e| op_err(e, "the loss"))?;
            total = Some(match total {
                None => v,
                Some(t) => t.f_add(&v).map_err(|e| op_err(e, "summing the losses"))?,
            });
        }
        total.ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "the experiment has no `loss`".to_string(),
            )
        })
    }

    /// Sums `v` over the ranks of `group` (itself without one).
    fn sum_over(&mut self, group: Option<usize>, v: f64, what: &str) -> Result<f64, Error> {
        let (Some(d), Some(g)) = (self.dist.as_mut(), group) else {
            return Ok(v);
        };
        let mut t = Tensor::from_slice(&[v as f32]);
        d.comm
            .all_reduce(g, &mut t)
            .map_err(|e| dist::comm_err(e, what))?;
        t.f_double_value(&[0]).map_err(|e| op_err(e, what))
    }

    /// The slots the optimiser updates, with their placement and copy
    /// under ZeRO.
    fn updated_slots(&self) -> Vec<(usize, Option<(usize, usize)>)> {
        match &self.dist {
            Some(d) if d.zero > 0 => d
                .shards
                .iter()
                .flat_map(|(&pl, sh)| {
                    sh.slots
                        .iter()
                        .enumerate()
                        .map(move |(c, &i)| (i, Some((pl, c))))
                })
                .collect(),
            _ => (0..self.slots.len()).map(|i| (i, None)).collect(),
        }
    }

    /// The gradient of the elements of slot `i` this rank updates.
    fn update_grad(
        &self,
        i: usize,
        place: Option<(usize, usize)>,
    ) -> Result<Option<Tensor>, Error> {
        let s = &self.slots[i];
        match (s.own, place) {
            (Some((a, b)), _) if a == b => Ok(None),
            (Some((a, b)), Some((pl, c))) => match self.grad_part_of(pl, c)? {
                Some(g) => Ok(Some(g)),
                None => self
                    .grad_of(i)?
                    .f_reshape([-1])
                    .and_then(|g| g.f_narrow(0, a, b - a))
                    .map(Some)
                    .map_err(|e| op_err(e, format!("the gradient of `{}`", s.name))),
            },
            _ => self.grad_of(i).map(Some),
        }
    }

    /// Clips, checks and applies the optimiser after the backward passes.
    ///
    /// In a job of several ranks the loss reported is the mean over the
    /// data-parallel ranks, the gradient norm is the norm of the whole
    /// averaged gradient (summed over the ZeRO group's slices under ZeRO 2
    /// and 3), and whether a step is skipped is decided from those, so
    /// every rank decides the same.
    fn step(
        &mut self,
        losses: &[f64],
        culprits: &[(usize, String)],
        u: Update,
        sessions: &[usize],
    ) -> Result<StepOutcome, Error> {
        let local = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        let data = self.dist.as_ref().and_then(|d| d.data);
        let ranks = match (&self.dist, data) {
            (Some(d), Some(g)) => d.size_of(g)?,
            _ => 1,
        };
        // Under tensor or pipeline parallelism only the last stage computes
        // the loss, and each rank of its tensor group the same one: the
        // first counts it, and the sum over the world is over replicas.
        let model_parallel = self.tensor.is_some() || self.pipelined;
        let world = self.dist.as_ref().map(|d| d.comm.world());
        let loss = if model_parallel {
            let counts = !losses.is_empty() && self.tensor.is_none_or(|t| t.pos == 0);
            let mine = if counts { local } else { 0.0 };
            self.sum_over(world, mine, "averaging the loss")? / ranks as f64
        } else {
            self.sum_over(data, local, "averaging the loss")? / ranks as f64
        };
        let sliced = self.dist.as_ref().is_some_and(|d| d.zero >= 2);
        let mut sq = 0.0f64;
        let mut bad: Option<String> = None;
        let mut square = |g: &Tensor, name: &str| -> Result<(), Error> {
            let n = g
                .f_square()
                .and_then(|x| x.f_sum(Kind::Double))
                .map_err(|e| op_err(e, format!("the gradient of `{name}`")))?
                .double_value(&[]);
            if !n.is_finite() && bad.is_none() {
                bad = Some(format!("the gradient of `{name}` is not finite"));
            }
            sq += n;
            Ok(())
        };
        // Each element counts once: a tensor-parallel replica of a whole
        // parameter, or a tied copy on another stage, only on its owner.
        let frozen = self.frozen_shared;
        let counted = |s: &Slot| (!model_parallel || s.owner) && !(frozen && s.session.is_none());
        if sliced {
            for (i, place) in self.updated_slots() {
                if !counted(&self.slots[i]) {
                    continue;
                }
                if let Some(g) = self.update_grad(i, place)? {
                    square(&g, &self.slots[i].name)?;
                }
            }
        } else {
            for s in self.slots.iter().filter(|s| counted(s)) {
                let g = match &s.grad {
                    Some(g) => g.shallow_clone(),
                    None if s.value.defined() => s.value.grad(),
                    None => continue,
                };
                if g.defined() {
                    square(&g, &s.name)?;
                }
            }
        }
        if model_parallel {
            // Summed over the world, each element is counted by every
            // data-parallel rank that holds it.
            let zero = self.dist.as_ref().and_then(|d| d.zero_group);
            let holders = match (&self.dist, zero) {
                (Some(d), Some(g)) if sliced => ranks / d.size_of(g)?.max(1),
                _ => ranks,
            };
            sq = self.sum_over(world, sq, "summing the gradient norm")? / holders.max(1) as f64;
        } else if sliced {
            let zero = self.dist.as_ref().and_then(|d| d.zero_group);
            sq = self.sum_over(zero, sq, "summing the gradient norm")?;
        }
        let norm = sq.sqrt();
        let reason = if let Some(i) = losses.iter().position(|l| !l.is_finite()) {
            let origin = culprits
                .iter()
                .find(|(m, _)| *m == i)
                .map_or(String::new(), |(_, c)| {
                    format!("; the first non-finite value is {c}")
                });
            Some(format!(
                "the loss of micro-batch {i} is {}{origin}",
                losses[i]
            ))
        } else if !loss.is_finite() {
            Some(format!("the loss of another rank is {loss}"))
        } else if !norm.is_finite() {
            Some(bad.unwrap_or_else(|| {
                "the gradient of another rank's slice is not finite".to_string()
            }))
        } else {
            bad
        };
        if let Some(reason) = reason {
            self.end_step();
            return match u.on_nonfinite {
                NonFinite::Stop => Err(Error::new(
                    ErrorKind::NonFinite,
                    format!("{reason} (train.on_nonfinite: stop; the weights were not updated)"),
                )),
                NonFinite::Skip => Ok(StepOutcome {
                    loss,
                    grad_norm: norm,
                    skipped: Some(reason),
                }),
            };
        }
        let scale = u
            .clip
            .filter(|&clip| norm > clip)
            .map(|clip| clip / (norm + 1e-6));
        self.t += 1;
        let t = self.t;
        tch::no_grad(|| -> Result<(), Error> {
            for (i, place) in self.updated_slots() {
                let session = self.slots[i].session;
                if session.is_some_and(|x| !sessions.contains(&x))
                    || (self.frozen_shared && session.is_none())
                {
                    continue;
                }
                let Some(mut g) = self.update_grad(i, place)? else {
                    continue;
                };
                if let Some(scale) = scale {
                    g = g.f_mul_scalar(scale).map_err(|e| op_err(e, "clipping"))?;
                }
                let s = &mut self.slots[i];
                let mut value = match (&s.master, s.own) {
                    (Some(m), _) => m.shallow_clone(),
                    (None, Some((a, b))) => s
                        .value
                        .f_reshape([-1])
                        .and_then(|v| v.f_narrow(0, a, b - a))
                        .map_err(|e| op_err(e, format!("the slice of `{}`", s.name)))?,
                    (None, None) => s.value.shallow_clone(),
                };
                let target = optim::Target {
                    value: &mut value,
                    m: &mut s.m,
                    v: &mut s.v,
                    decay: s.decay,
                };
                optim::update(&self.optimizer, target, &g, u.lr, t)
                    .map_err(|e| op_err(e, format!("the optimiser step of `{}`", s.name)))?;
            }
            Ok(())
        })?;
        self.end_step();
        Ok(StepOutcome {
            loss,
            grad_norm: norm,
            skipped: None,
        })
    }

    /// Clears the step's gradients; under ZeRO 3 frees the gathered weights.
    fn end_step(&mut self) {
        let free = self.dist.as_ref().is_some_and(|d| d.zero >= 3);
        if let Some(d) = &mut self.dist {
            d.grad_parts.clear();
        }
        for s in &mut self.slots {
            s.grad = None;
            if free {
                s.value = Tensor::new();
                continue;
            }
            if s.value.defined() {
                let mut g = s.value.grad();
                if g.defined() {
                    // A failure here leaves gradients to be overwritten anyway
                    // by the next backward's accumulation only if they are
                    // zero, so report nothing and detach them instead.
                    let _ = g.f_zero_();
                }
            }
        }
    }
}

/// One forward application as the plan gives it.
struct App<'a> {
    key: nodewise::Key,
    /// This rank's shape of the output, with the plan's micro-batch.
    planned: &'a [i64],
    narrow: &'a [(usize, usize)],
    gather: &'a [usize],
    partial: &'a [usize],
    /// Whether its graph is kept for a node-by-node backward.
    record: bool,
    /// Whether it is a checkpointed block's first forward, run without
    /// autograd and dropped when its chunk ends.
    unsaved: bool,
    mask_key: u64,
    dropout_key: u64,
}

/// Whether `op` belongs to a forward chunk.
fn is_forward(op: &Instr) -> bool {
    match op {
        Instr::Load { .. } | Instr::Forward { .. } => true,
        Instr::Collective(c) => matches!(c.purpose, Purpose::Forward(_) | Purpose::GatherParams(_)),
        _ => false,
    }
}

/// Per micro-batch, the position of the last instruction that concerns it.
fn last_uses(program: &RankProgram) -> HashMap<usize, usize> {
    let mut last = HashMap::new();
    for (at, op) in program.ops.iter().enumerate() {
        let mut mark = |m: usize| {
            last.insert(m, at);
        };
        match op {
            Instr::Load { micro, .. }
            | Instr::Forward { micro, .. }
            | Instr::Backward { micro, .. } => mark(*micro),
            Instr::Collective(c) => match &c.purpose {
                Purpose::Forward(v) | Purpose::Backward(v) => mark(v.micro),
                _ => {}
            },
            Instr::P2p(ts) => ts.iter().for_each(|t| mark(t.value.micro)),
            Instr::Step => {}
        }
    }
    last
}

/// The part `ranges` (a half-open range per dim) of `t`, contiguous.
fn part_of(t: &Tensor, ranges: &[(i64, i64)]) -> Result<Tensor, OpError> {
    let mut x = t.shallow_clone();
    for (d, &(a, b)) in ranges.iter().enumerate() {
        if x.size().get(d) != Some(&(b - a)) || a != 0 {
            x = x.f_narrow(d as i64, a, b - a)?;
        }
    }
    Ok(x.f_contiguous()?)
}

#[derive(Default)]
struct Executed {
    inputs: HashMap<(usize, usize), Tensor>,
    values: HashMap<(usize, usize, usize), Tensor>,
    masks: HashMap<(usize, usize, usize), Tensor>,
    /// The node-by-node step's graphs and gradients.
    nw: nodewise::State,
    losses: Vec<f64>,
    /// For a micro-batch whose loss is not finite, the first value of its
    /// forward pass that was not, described for the error.
    culprits: Vec<(usize, String)>,
    outcome: Option<StepOutcome>,
}

impl Executed {
    /// Drops everything of micro-batch `m` (its backward is done).
    fn forget(&mut self, m: usize) {
        self.inputs.retain(|k, _| k.1 != m);
        self.values.retain(|k, _| k.2 != m);
        self.masks.retain(|k, _| k.2 != m);
        let nw = &mut self.nw;
        nw.apps.retain(|k, _| k.2 != m);
        nw.grads.retain(|k, _| k.2 != m);
        nw.partial.retain(|k, _| k.2 != m);
        nw.narrowed.retain(|k, _| k.2 != m);
        nw.gathered.retain(|k, _| k.micro != m);
        nw.scattered.retain(|k| k.2 != m);
    }
}

fn upload(h: &HostTensor, device: Device) -> Result<Tensor, OpError> {
    let shape: Vec<i64> = h.shape.iter().map(|&d| d as i64).collect();
    Ok(Tensor::f_from_slice(&h.data)?
        .f_reshape(shape.as_slice())?
        .f_to_device(device)?)
}

pub(crate) fn download(t: &Tensor) -> Result<HostTensor, OpError> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d.max(0) as usize).collect();
    let flat = t
        .f_to_kind(Kind::Float)?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_reshape([-1i64].as_slice())?;
    let data = Vec::<f32>::try_from(&flat)?;
    HostTensor::new(shape, data).map_err(|e| OpError::new(e.to_string()))
}

impl Backend for TorchBackend {
    fn device(&self) -> String {
        match self.device {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(i) => format!("cuda:{i}"),
            other => format!("{other:?}"),
        }
    }

    fn parameters(&self) -> i64 {
        // Whole copies, also while ZeRO 3 holds only slices of them.
        self.slots
            .iter()
            .map(|s| s.shape.iter().product::<i64>())
            .sum()
    }

    fn train_step(
        &mut self,
        program: &RankProgram,
        micro: &[MicroBatch<'_>],
        keys: StepKeys,
        update: Update,
    ) -> Result<StepOutcome, Error> {
        tch::manual_seed(keys.dropout as i64);
        let ex = self.execute(program, micro, keys, true, Some(update))?;
        ex.outcome.ok_or_else(|| {
            Error::new(
                ErrorKind::Mismatch,
                "the plan has no optimiser step".to_string(),
            )
        })
    }

    fn evaluate(
        &mut self,
        program: &RankProgram,
        batch: MicroBatch<'_>,
        mask_key: u64,
        hold_out: Option<&HoldOut>,
    ) -> Result<EvalOutcome, Error> {
        let keys = StepKeys {
            mask: mask_key,
            dropout: 0,
        };
        self.hold_out = hold_out.cloned();
        let ex = tch::no_grad(|| self.execute(program, &[batch], keys, false, None));
        self.hold_out = None;
        let ex = ex?;
        // Under pipeline parallelism the last stage holds the loss and the
        // outputs; every rank gets them from it, so that every rank (and
        // rank 0, which reports) sees the one evaluation.
        let rank = self.dist.as_ref().map_or(0, |d| d.comm.rank());
        let holds = !self.pipelined || rank == self.eval_root;
        let root = self.eval_root;
        let losses = self.graph.loss_nodes();
        let loss = if holds {
            Some(self.loss(&ex, &losses, 0)?)
        } else {
            None
        };
        let loss = if self.pipelined {
            self.shared(loss.as_ref(), &[], root, "sharing the evaluation loss")?
        } else {
            loss.ok_or_else(|| Error::internal("no evaluation loss".to_string()))?
        };
        let loss = loss
            .f_double_value(&[])
            .map_err(|e| op_err(e, "the evaluation loss"))?;
        let mask_node = self
            .graph
            .nodes
            .iter()
            .position(|n| matches!(n.op, Op::TokenMask { .. }));
        let mask = mask_node.and_then(|i| {
            Some((
                ex.values.get(&(i, 0, 0))?.shallow_clone(),
                self.graph.nodes[i].out.clone(),
            ))
        });
        let b = self.batch_of(&batch);
        // A Poisson loss reads the outputs as log-rates.
        let log_rate = self
            .graph
            .objectives
            .iter()
            .any(|o| o.kind == enigma::ir::ObjectiveKind::Loss && o.log_rate);
        let mut predictions = Vec::new();
        let outputs = self.graph.outputs.clone();
        for o in &outputs {
            let (ValueRef::Node(n), Some(target)) = (
                o.value,
                self.graph.inputs.iter().position(|i| i.name == o.name),
            ) else {
                continue;
            };
            let Some(target) = batch.inputs.get(target) else {
                continue;
            };
            let ty = self.graph.nodes[n].out.clone();
            let pred = ex.values.get(&(n, 0, 0)).map(Tensor::shallow_clone);
            // The mask is [batch, drawn dims]: aligned by dim name with the
            // prediction, then broadcast over the rest (a whole-unit mask
            // `[batch, N]` covers every step).
            let full = match (&pred, &mask) {
                (Some(p), Some((m, mask_ty))) => Some(
                    align::align(m, mask_ty, &ty)
                        .and_then(|m| Ok(m.f_to_kind(Kind::Float)?))
                        .and_then(|m| Ok(m.f_expand(p.size().as_slice(), false)?))
                        .map_err(|e| op_err(e, "reading the token mask"))?,
                ),
                _ => None,
            };
            let (pred, full) = if self.pipelined {
                let shape = align::shape(&ty, b).map_err(|e| op_err(e, "a prediction's shape"))?;
                let what = format!("sharing prediction `{}`", o.name);
                let pred = self.shared(pred.as_ref(), &shape, root, &what)?;
                let full = match mask_node {
                    Some(_) => Some(self.shared(full.as_ref(), &shape, root, &what)?),
                    None => None,
                };
                (pred, full)
            } else {
                match pred {
                    Some(p) => (p, full),
                    None => continue,
                }
            };
            let pred = download(&pred)
                .map_err(|e| op_err(e, format!("reading prediction `{}`", o.name)))?;
            let mask = match full {
                Some(t) => {
                    let h = download(&t).map_err(|e| op_err(e, "reading the token mask"))?;
                    Some(h.data.iter().map(|&v| v > 0.5).collect())
                }
                None => None,
            };
            predictions.push(Prediction {
                name: o.name.clone(),
                pred,
                target: target.clone(),
                mask,
                log_rate,
            });
        }
        Ok(EvalOutcome { loss, predictions })
    }

    fn export(&mut self) -> Result<BTreeMap<String, HostTensor>, Error> {
        // One process holds every tensor whole, so its parts are its state;
        // a job writes its parts as shards, which loading assembles.
        if self.dist.is_some() {
            return Err(Error::internal(
                "a job of several processes exports its state in parts (a sharded checkpoint)"
                    .to_string(),
            ));
        }
        self.state_parts()?
            .into_iter()
            .map(|p| {
                let t = HostTensor::new(p.shape, p.data)
                    .map_err(|e| Error::internal(format!("`{}`: {e}", p.name)))?;
                Ok((p.name, t))
            })
            .collect()
    }

    fn import(&mut self, state: &BTreeMap<String, HostTensor>) -> Result<(), Error> {
        let mismatch = |m: String| Error::new(ErrorKind::Mismatch, m);
        let device = self.device;
        tch::no_grad(|| -> Result<(), Error> {
            for s in &mut self.slots {
                let want: Vec<usize> = s.whole.iter().map(|&d| d as usize).collect();
                let read = |key: String| -> Result<Tensor, Error> {
                    let h = state
                        .get(&key)
                        .ok_or_else(|| mismatch(format!("the checkpoint has no `{key}`")))?;
                    if h.shape != want {
                        return Err(mismatch(format!(
                            "`{key}` is {:?} in the checkpoint but {:?} in the model",
                            h.shape, want
                        )));
                    }
                    // This rank's part of the whole (its tensor-parallel
                    // shard), and under ZeRO its slice of that.
                    let t = upload(h, device)
                        .and_then(|t| part_of(&t, &s.ranges))
                        .map_err(|e| op_err(e, format!("restoring `{key}`")))?;
                    match s.own {
                        Some((a, b)) => t
                            .f_reshape([-1])
                            .and_then(|t| t.f_narrow(0, a, b - a))
                            .map_err(|e| op_err(e, format!("slicing `{key}`"))),
                        None => Ok(t),
                    }
                };
                let w = read(s.name.clone())?;
                let m = read(format!("optim.m/{}", s.name))?;
                let v = read(format!("optim.v/{}", s.name))?;
                let copy = |dst: &mut Tensor, src: &Tensor, what: &str| {
                    dst.f_copy_(src)
                        .map(|_| ())
                        .map_err(|e| op_err(e, format!("restoring {what} of `{}`", s.name)))
                };
                copy(&mut s.m, &m, "the first moment")?;
                copy(&mut s.v, &v, "the second moment")?;
                match &mut s.master {
                    Some(master) => copy(master, &w, "the weights")?,
                    None if s.value.defined() => {
                        // The whole weights, though only a slice is read
                        // under ZeRO 1 and 2: every rank restores all.
                        let whole = state
                            .get(&s.name)
                            .map(|h| upload(h, device).and_then(|t| part_of(&t, &s.ranges)));
                        if let Some(Ok(whole)) = whole {
                            copy(&mut s.value, &whole, "the weights")?;
                        }
                    }
                    None => {}
                }
            }
            Ok(())
        })
    }

    fn export_ints(&mut self) -> Result<BTreeMap<String, I64Tensor>, Error> {
        // Rank 0 writes the step count, which every rank holds alike.
        let first = self.dist.as_ref().is_none_or(|d| d.comm.rank() == 0);
        if !first {
            return Ok(BTreeMap::new());
        }
        Ok(BTreeMap::from([(
            dist::STEP_COUNT.to_string(),
            dist::step_count(self.t)?,
        )]))
    }

    fn import_ints(&mut self, state: &BTreeMap<String, I64Tensor>) -> Result<(), Error> {
        let name = dist::STEP_COUNT;
        let t = state.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::Mismatch,
                format!("the checkpoint has no `{name}` (the optimiser's step count)"),
            )
        })?;
        // A count below zero or of several values is not one this backend
        // wrote; resuming with it would change Adam's bias correction.
        self.t = t
            .single()
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Mismatch,
                    format!(
                        "`{name}` is {:?} of shape {:?}; the optimiser's step count is one \
                         whole number from 0",
                        t.data, t.shape
                    ),
                )
            })?;
        Ok(())
    }

    fn load_shared(&mut self, state: &BTreeMap<String, HostTensor>) -> Result<usize, Error> {
        self.load_shared_weights(state)
    }

    fn freeze_shared(&mut self) -> Result<(), Error> {
        if !self.slots.iter().any(|s| s.session.is_some()) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "--freeze-shared trains only the per-session tables, and this model has none (no parameter has a `per session` dim)",
            ));
        }
        self.frozen_shared = true;
        Ok(())
    }

    fn export_parts(&mut self) -> Result<Vec<enigma::run::checkpoint::sharded::Part>, Error> {
        self.state_parts()
    }

    fn any_rank(&mut self, flag: bool) -> Result<bool, Error> {
        let Some(d) = self.dist.as_mut() else {
            return Ok(flag);
        };
        let world = d.comm.world();
        let mut t = Tensor::from_slice(&[if flag { 1f32 } else { 0.0 }]);
        d.comm
            .all_reduce(world, &mut t)
            .map_err(|e| dist::comm_err(e, "agreeing to stop"))?;
        Ok(t.f_double_value(&[0])
            .map_err(|e| op_err(e, "agreeing to stop"))?
            > 0.0)
    }

    fn barrier(&mut self) -> Result<(), Error> {
        let Some(d) = self.dist.as_mut() else {
            return Ok(());
        };
        let world = d.comm.world();
        d.comm
            .barrier(world)
            .map_err(|e| dist::comm_err(e, "waiting for every rank"))
    }

    fn finish(&mut self) {
        if let Some(d) = self.dist.as_mut() {
            d.comm.finish();
        }
    }
}
