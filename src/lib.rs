//! `enigma`: a compiler and runtime for declarative multimodal neuroscience
//! foundation-model experiments.
//!
//! The crate follows the pipeline: [`syntax`] (parse `.enigma` text into a
//! spanned AST), [`resolve`] (imports, the standard library and names),
//! [`fmt`] (canonical layout), with one diagnostic model in [`diagnostics`]
//! and all file access behind [`source::SourceLoader`]. The command-line
//! interface in [`cli`] is a thin layer over these. See
//! `docs/ARCHITECTURE.md` for the map.

pub mod base;
pub mod check;
pub mod cli;
pub mod dataset;
pub mod diagnostics;
pub mod driver;
pub mod fmt;
pub mod ir;
pub mod plan;
pub mod resolve;
pub mod run;
pub mod source;
pub mod syntax;
#[cfg(test)]
pub(crate) mod testing;
