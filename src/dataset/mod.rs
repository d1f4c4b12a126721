//! The data side of a run: from the files (or the simulator) to batches.
//!
//! It reads the experiment's data specification
//! ([`crate::ir::data::DataSpec`]) and nothing else of it: [`loader`] reads
//! the sources, fits and applies the [`transform`]s and cuts [`windows`]
//! into batches; [`synthetic`] is the simulated mouse V1; [`bind`] finds
//! the sizes of dims only the data gives.

pub mod bind;
pub mod loader;
pub mod synthetic;
pub mod transform;
pub mod windows;
