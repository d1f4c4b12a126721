//! The typed IR: what the checker produces and every later stage reads.
//!
//! - [`graph`]: the model as a graph of primitive operations ([`op::Op`])
//!   with concrete shapes, parameters with their initialisers
//!   ([`init::Init`]), inputs, outputs and objectives;
//! - [`types`]: sizes, tensor types, quantities and compile-time values;
//! - [`stats`]: parameters, FLOPs and activations of a graph;
//! - [`yaml`]: the graph as `enigma check --emit ir` prints it.
//!
//! Nothing here imports the syntax tree or the checker: the planner, the
//! dataset and the runtime read the IR and nothing above it.

pub mod graph;
pub mod init;
pub mod op;
pub mod stats;
pub mod types;
pub mod yaml;

pub use graph::{
    Graph, Input, ModalityKind, Node, Objective, ObjectiveKind, Output, Param, Scope, ValueRef,
};
pub use init::Init;
pub use op::{Elementwise, NormKind, Op, Operand, Reduction};
