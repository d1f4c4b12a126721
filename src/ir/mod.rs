//! The typed IR: what the checker produces and every later stage reads.
//!
//! An [`Experiment`] is the whole of it: the model graph, the training
//! configuration, the layout and the data specification, each with every
//! default filled in and every value evaluated.
//!
//! - [`graph`]: the model as a graph of primitive operations ([`op::Op`])
//!   with concrete shapes, parameters with their initialisers
//!   ([`init::Init`]), inputs, outputs and objectives;
//! - [`train`]: the `train` block ([`train::TrainConfig`]);
//! - [`layout`]: the `parallel` block with the places of its parts
//!   ([`layout::ParallelSpec`]);
//! - [`data`]: sources, windows, splits and modalities
//!   ([`data::DataSpec`]), whose transforms are [`transform`] programs;
//! - [`types`]: sizes, tensor types, quantities and compile-time values;
//! - [`stats`]: parameters, FLOPs and activations of a graph;
//! - [`yaml`]: the graph as `enigma check --emit ir` prints it.
//!
//! Nothing here imports the syntax tree or the checker: the planner, the
//! dataset and the runtime read the IR and nothing above it.

pub mod data;
pub mod graph;
pub mod init;
pub mod layout;
pub mod op;
pub mod split;
pub mod stats;
pub mod train;
pub mod transform;
pub mod types;
pub mod yaml;

use std::path::PathBuf;

use crate::base::FileId;
use crate::diagnostics::Diagnostic;

pub use graph::{
    Graph, Input, ModalityKind, Node, Objective, ObjectiveKind, Output, Param, Scope, ValueRef,
};
pub use init::Init;
pub use op::{Elementwise, NormKind, Op, Operand, Reduction};

/// A checked experiment: everything the planner, the dataset and the
/// runtime need, and nothing of the source text.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The root `.enigma` file.
    pub file: FileId,
    /// Its path, as the user named it.
    pub path: PathBuf,
    pub graph: Graph,
    /// The `train` block; `None` when the file has none (it can be checked
    /// and planned, not run).
    pub train: Option<train::TrainConfig>,
    pub parallel: layout::ParallelSpec,
    /// The data side, or why the runtime cannot read it (E0221 diagnostics
    /// at the items: the model and layout are still sound, so `check` and
    /// `plan` accept the experiment and `run` refuses it with these).
    pub data: Result<data::DataSpec, Vec<Diagnostic>>,
    /// Sizes taken from the data after checking (`N` behind a `select`),
    /// in name order: the graph has them.
    pub sized_from_data: Vec<(String, i64)>,
    /// When sessions differ in a dim declared `per session` (each file its
    /// own cells), the graph of each session, checked with that session's
    /// sizes: the same nodes, parameters and scopes as `graph` (which is
    /// session 0's), with that session's shapes. Empty when every session
    /// has the shapes of `graph`.
    pub session_graphs: Vec<std::sync::Arc<Graph>>,
    /// With `session_graphs`, each session's sizes that differ between
    /// sessions (`N` = 24 in session 0, 28 in session 1, ...).
    pub session_sizes: Vec<Vec<(String, i64)>>,
}

impl Experiment {
    /// The graph with session `s`'s shapes.
    pub fn graph_of(&self, s: usize) -> &Graph {
        self.session_graphs.get(s).map_or(&self.graph, |g| g)
    }
}
