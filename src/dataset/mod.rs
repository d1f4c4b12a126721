//! The data side of a run: from the files (or the simulator) to batches.
//!
//! [`spec`] is what the experiment says about its data; [`loader`] reads
//! the sources, fits and applies the [`transform`]s and cuts [`windows`]
//! into batches; [`synthetic`] is the simulated mouse V1; [`bind`] sizes the
//! dims only the data gives.

pub mod bind;
pub mod loader;
pub mod spec;
pub mod synthetic;
pub mod transform;
pub mod windows;
