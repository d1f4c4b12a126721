//! Plan: from the typed IR and the `parallel` block to what each rank
//! runs (issue 4, in progress).
//!
//! So far: the device mesh with its rank order and process groups
//! (`mesh.rs`), the layout the `parallel` block describes (`layout.rs`)
//! and where every parameter lives: its pipeline stage, its tensor-parallel
//! split and the shard each rank holds (`shard.rs`), and the model-state
//! memory of each rank under ZeRO (`memory.rs`). Lowering to per-rank
//! execution graphs, collectives and the cost model build on these; no
//! subcommand uses them yet.

pub mod cost;
pub mod emit;
pub mod layout;
pub mod lower;
pub mod memory;
pub mod mesh;
pub mod program;
pub mod search;
pub mod shard;
pub mod tp;
pub mod validate;
pub mod verify;

pub use layout::{Layout, Schedule};
pub use mesh::{Axis, Mesh, MeshError};
