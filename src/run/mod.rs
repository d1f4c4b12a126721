//! The runtime: training an experiment from its plan (`docs/running.md`).
//!
//! Everything here but [`torch`] is pure Rust and builds without libtorch:
//! the `train` block ([`config`]), initialisation ([`init`]), the training
//! loop ([`train`]) over the [`backend::Backend`] trait, checkpoints,
//! metrics, correlations, plots and the progress bar, all exchanging
//! [`host`] tensors. The libtorch backend that executes a rank's program
//! is [`torch`], behind the `torch` feature.

pub mod backend;
pub mod checkpoint;
pub mod corr;
pub mod error;
pub mod init;
pub mod metrics;
pub mod plots;
pub mod progress;
pub mod recovery;
pub mod session;
#[cfg(feature = "torch")]
pub mod torch;
pub mod train;
