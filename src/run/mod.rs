//! The runtime: training an experiment from its plan (`docs/running.md`).
//!
//! Everything here is pure Rust and builds without libtorch: the run's
//! orchestration ([`session`]: run directory, signals, recovery report),
//! initialisation ([`init`]), the training loop ([`train`]) over the
//! [`backend::Backend`] trait, checkpoints, metrics, correlations, plots and
//! the progress bar, all exchanging host tensors (`base::host`). The
//! libtorch backend that executes a rank's program lives in its own
//! package, `crates/enigma-torch`, which implements [`session::Runtime`].

pub mod backend;
pub mod baseline;
pub mod checkpoint;
pub mod corr;
pub mod eval;
pub mod evaluate;
pub mod export;
pub mod failure;
pub mod init;
pub mod launch;
pub mod logs;
pub mod mask;
pub mod metrics;
pub mod plots;
pub mod predict;
pub mod progress;
pub mod ranks;
pub mod recovery;
pub mod session;
pub mod tensorboard;
pub mod train;
