//! Plan: from the typed IR and the `parallel` block to what each rank
//! runs, how much memory it needs and how long a step takes.
//!
//! In pipeline order: the device mesh with its rank order and process
//! groups (`mesh.rs`), the layout the `parallel` block describes
//! (`layout.rs`), where every parameter lives (`shard.rs`, `memory.rs`),
//! the tensor-parallel state of every value (`tp.rs`), the lowering to one
//! program per rank (`lower/`, into the types of `program.rs`), its static
//! verification (`verify.rs`), the cost model (`cost/`), the layout search
//! (`search.rs`), the planner's diagnostics (`validate.rs`), and what
//! `enigma plan` runs and prints (`report.rs`, `emit/`). See
//! `docs/planner.md` and `docs/cost-model.md`.

pub mod cost;
pub mod emit;
pub mod layout;
pub mod lower;
pub mod memory;
pub mod mesh;
pub mod program;
pub mod report;
pub mod search;
pub mod shard;
pub mod tp;
pub mod validate;
pub mod verify;

pub use layout::Layout;
pub use mesh::{Axis, Mesh, MeshError};
