//! `enigma`: a compiler and runtime for declarative multimodal neuroscience
//! foundation-model experiments.
//!
//! The crate follows the pipeline, and imports point down it only:
//! [`syntax`] (parse `.enigma` text into a spanned AST), [`resolve`]
//! (imports, the standard library and names), [`check`] (values, settings,
//! shapes) producing one typed [`ir::Experiment`], which [`plan`] (per-rank
//! programs), [`dataset`] (from files to batches) and [`run`] (training
//! over a backend) read. [`base`], [`source`] (the one I/O trait and data
//! headers) and [`diagnostics`] (one model for every error) are at the
//! bottom; [`driver`] runs the stages for a file, and [`cli`] is a thin
//! layer over it. `fmt` formats source. See `docs/ARCHITECTURE.md`.

// Nothing a user, a file, another rank or the environment can influence
// may panic: failures are values (`diagnostics::Error`). Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod base;
pub mod check;
pub mod cli;
pub mod dataset;
pub mod diagnostics;
pub mod driver;
pub mod fmt;
pub mod ide;
pub mod ir;
pub mod lsp;
pub mod plan;
pub mod resolve;
pub mod run;
pub mod source;
pub mod syntax;
#[cfg(test)]
pub(crate) mod testing;
