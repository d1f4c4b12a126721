//! The model graph: an experiment's model as primitive operations with
//! concrete shapes.
//!
//! The checker builds it by elaborating the model (`check::elab`): every
//! module instance becomes a [`Scope`], every `param` a [`Param`] with its
//! shape, dtype and initialiser, every primitive application a [`Node`]
//! with its input values, attributes, output type and forward FLOPs. A
//! `repeat(n, block)` is elaborated once and its scope records `repeat: n`,
//! so the graph stays small for deep stacks while the statistics and the
//! planner still see `n` copies. The graph is the input of the statistics
//! (`stats.rs`), of `--emit ir` (`yaml.rs`) and of the planner.
//!
//! Shapes are per sample (the leading `batch` dim has size 1) unless the
//! graph says otherwise in `batch`.

use super::init::Init;
use super::op::Op;
use super::types::{Size, Tensor, Value};

/// Identifies a node's or parameter's or input's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueRef {
    /// The output of a node.
    Node(usize),
    /// A learned parameter.
    Param(usize),
    /// A modality fed by the data pipeline.
    Input(usize),
}

impl ValueRef {
    /// `%12`, `param:3`, `input:0`: how the value is written in the IR.
    pub fn label(self) -> String {
        match self {
            ValueRef::Node(i) => format!("%{i}"),
            ValueRef::Param(i) => format!("param:{i}"),
            ValueRef::Input(i) => format!("input:{i}"),
        }
    }
}

/// The four kinds of modality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModalityKind {
    /// Frames: `[T, C, H, W]` per window.
    Video,
    /// Regularly sampled values: `[T, ...]` per window.
    Series,
    /// Irregular events such as spikes: times and units.
    Events,
    /// Intervals such as trials: start and stop times.
    Intervals,
}

impl ModalityKind {
    /// The kind a modality's type names (`video<f32>[...]`).
    pub fn parse(name: &str) -> Option<ModalityKind> {
        Some(match name {
            "video" => ModalityKind::Video,
            "series" => ModalityKind::Series,
            "events" => ModalityKind::Events,
            "intervals" => ModalityKind::Intervals,
            _ => return None,
        })
    }

    /// The kind as the language spells it.
    pub fn name(self) -> &'static str {
        match self {
            ModalityKind::Video => "video",
            ModalityKind::Series => "series",
            ModalityKind::Events => "events",
            ModalityKind::Intervals => "intervals",
        }
    }
}

/// A modality as the model receives it.
#[derive(Clone, Debug)]
pub struct Input {
    pub name: String,
    pub kind: ModalityKind,
    pub ty: Tensor,
}

/// A module instance (or the model, or a tokenizer).
#[derive(Clone, Debug)]
pub struct Scope {
    /// Dotted path from the root: `backbone.blocks.layer.attn.q_proj`.
    pub path: String,
    /// The module it instantiates (`Linear`), or `model` / `tokenizer`.
    pub module: String,
    pub parent: Option<usize>,
    /// How many copies of this scope run (a `repeat` body); 1 otherwise.
    pub repeat: i64,
    /// The module's hyperparameters as evaluated, in declaration order
    /// (`d_out: 2048`, `split: "column"`): what the planner reads to shard
    /// the instance, and what tools show.
    pub hyper: Vec<(String, Value)>,
    /// For a `repeat` body: the value its first copy takes and the value
    /// each copy returns, which the next copy takes. A runtime that unrolls
    /// the copies feeds copy `l + 1` the `carry.1` of copy `l`.
    pub carry: Option<(ValueRef, ValueRef)>,
}

/// A learned tensor.
#[derive(Clone, Debug)]
pub struct Param {
    /// `scope path + "." + name`.
    pub path: String,
    pub scope: usize,
    pub ty: Tensor,
    /// The initialiser, with its arguments evaluated and defaults filled.
    pub init: Init,
    /// Whether the shape involves a dim bound per session, so each session
    /// has its own copy.
    pub per_session: bool,
}

/// One primitive application.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub scope: usize,
    pub inputs: Vec<ValueRef>,
    pub out: Tensor,
    /// Forward multiply-add FLOPs (2 per multiply-add) of matrix products,
    /// per application; 0 for other operations.
    pub flops: Size,
}

/// A model prediction (`predict name = ...`).
#[derive(Clone, Debug)]
pub struct Output {
    pub model: String,
    pub name: String,
    pub value: ValueRef,
    pub ty: Tensor,
}

/// Whether an objective is trained on or only reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectiveKind {
    Loss,
    Metric,
}

impl ObjectiveKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectiveKind::Loss => "loss",
            ObjectiveKind::Metric => "metric",
        }
    }
}

/// A `loss` or `metric` item.
#[derive(Clone, Debug)]
pub struct Objective {
    pub kind: ObjectiveKind,
    /// The function called (`poisson_nll`) or the item's label.
    pub name: String,
    pub value: ValueRef,
    pub ty: Tensor,
    /// `masked_only: true`: scored on the masked positions only.
    pub masked_only: bool,
    /// The loss reads its prediction as the log of a rate (the standard
    /// library's `poisson_nll`, unless `log_input: false`): the rate is
    /// `exp` of the prediction, and correlations are computed on it.
    pub log_rate: bool,
}

/// The whole typed model of an experiment.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Size of the leading `batch` dim in every shape.
    pub batch: i64,
    /// Bytes of the model float (2 for bf16 training, 4 for f32).
    pub float_bytes: u64,
    /// Global batch of the `train` block, when given.
    pub global_batch: Option<i64>,
    /// Number of sessions, when the data source says.
    pub sessions: Option<i64>,
    /// For each dim declared `per session` whose size differs between
    /// sessions, its sum over them (`N` of 24 to 52 over 8 sessions sums
    /// to 304): a per-session table over it is counted at that total, not
    /// at this graph's size (session 0's) once per session. Empty when the
    /// sessions agree or the data was not opened.
    pub session_totals: Vec<(String, i64)>,
    pub inputs: Vec<Input>,
    pub scopes: Vec<Scope>,
    pub params: Vec<Param>,
    pub nodes: Vec<Node>,
    pub outputs: Vec<Output>,
    pub objectives: Vec<Objective>,
}

impl Graph {
    /// How many times scope `s` runs per application of the model: the
    /// product of the `repeat` counts on its path.
    pub fn multiplicity(&self, mut s: usize) -> i64 {
        let mut m: i64 = 1;
        loop {
            let scope = &self.scopes[s];
            m = m.saturating_mul(scope.repeat);
            match scope.parent {
                Some(p) => s = p,
                None => return m,
            }
        }
    }

    /// Whether scope `s` is `ancestor` or inside it.
    pub fn within(&self, mut s: usize, ancestor: usize) -> bool {
        loop {
            if s == ancestor {
                return true;
            }
            match self.scopes.get(s).and_then(|x| x.parent) {
                Some(p) => s = p,
                None => return false,
            }
        }
    }

    /// Per node, the `repeat` body (a scope that runs more than once) it
    /// is in, if any.
    pub fn bodies(&self) -> Vec<Option<usize>> {
        let bodies: Vec<usize> = (0..self.scopes.len())
            .filter(|&s| self.scopes[s].repeat > 1)
            .collect();
        self.nodes
            .iter()
            .map(|n| bodies.iter().copied().find(|&b| self.within(n.scope, b)))
            .collect()
    }

    /// Which copy of node `j` copy `copy` of `node` reads when it takes
    /// value `v` (`j`'s output), given the nodes' bodies ([`Graph::bodies`]):
    /// the same copy inside one body; the previous copy's carried output
    /// for a body's carried input (copy `l + 1` takes `carry.1` of copy
    /// `l`); the last copy of a body read from outside it; else copy 0.
    /// `None` when `v` is not a node's output.
    pub fn producer(
        &self,
        body_of: &[Option<usize>],
        node: usize,
        copy: usize,
        v: ValueRef,
    ) -> Option<(usize, usize)> {
        let ValueRef::Node(j) = v else { return None };
        let b = body_of.get(node).copied().flatten();
        if let Some((carry_in, ValueRef::Node(out))) = b.and_then(|b| self.scopes.get(b)?.carry) {
            if v == carry_in && copy > 0 {
                return Some((out, copy - 1));
            }
        }
        let c = match body_of.get(j).copied().flatten() {
            Some(bj) if Some(bj) == b => copy,
            Some(bj) => (self.scopes.get(bj)?.repeat.max(1) - 1) as usize,
            None => 0,
        };
        Some((j, c))
    }

    /// Per node, whether its output carries a gradient: it is floating
    /// point and computed from a parameter. The planner sends gradients
    /// only for these values, and the runtime keeps graphs only for them.
    pub fn grad_carriers(&self) -> Vec<bool> {
        let mut carries = vec![false; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            let from_param = n.inputs.iter().any(|v| match *v {
                ValueRef::Param(_) => true,
                ValueRef::Node(j) => carries.get(j).copied().unwrap_or(false),
                ValueRef::Input(_) => false,
            });
            carries[i] = from_param && n.out.dtype.is_float();
        }
        carries
    }

    /// The nodes whose outputs are the `loss` items, summed into the
    /// training loss.
    pub fn loss_nodes(&self) -> Vec<usize> {
        self.objectives
            .iter()
            .filter(|o| o.kind == ObjectiveKind::Loss)
            .filter_map(|o| match o.value {
                ValueRef::Node(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// The parameters whose size is still symbolic (sized by a dim only
    /// the data gives), each with that size as text.
    pub fn unsized_params(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .filter_map(|p| {
                p.ty.dims
                    .iter()
                    .map(|d| d.size_or_name())
                    .find(|s| s.as_const().is_none())
                    .map(|s| (p.path.clone(), s.to_string()))
            })
            .collect()
    }

    /// The type of a value.
    pub fn type_of(&self, v: ValueRef) -> &Tensor {
        match v {
            ValueRef::Node(i) => &self.nodes[i].out,
            ValueRef::Param(i) => &self.params[i].ty,
            ValueRef::Input(i) => &self.inputs[i].ty,
        }
    }
}
