//! The runtime: training an experiment from its plan.
//!
//! The pure parts live here and build without libtorch: host tensors
//! ([`host`]) that the data loader fills and checkpoints store. The
//! backend that executes a rank's program on libtorch is behind the
//! `torch` feature.

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod corr;
pub mod error;
pub mod host;
pub mod init;
pub mod metrics;
pub mod plots;
pub mod progress;
#[cfg(feature = "torch")]
pub mod torch;
pub mod train;
