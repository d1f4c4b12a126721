//! The transforms of a modality (`from v1.response | log1p(max(x, 0))`),
//! as the checker compiled them ([`crate::ir::transform::Transform`]),
//! fitted and applied to each sample's signal.
//!
//! A [`Pipeline`] is the modality's stages in order. Elementwise stages are
//! stack programs in `x`, run by the interpreter (`elementwise.rs`); the
//! data-pipeline functions work on whole signals (`stages.rs`): `resample`,
//! `bin`, `zscore`, `standardize`, `clip`, `smooth` and `dff`. The loader
//! sees only [`Pipeline::fit`] and [`Pipeline::apply`], so a compiled
//! backend can replace the interpreter without touching it.
//!
//! Signals are time-major: a series of `T` samples of `C` channels is `T x
//! C` values (a video's channels are its `C x H x W` pixels); events are
//! times per unit, which `bin` turns into a series.

pub mod elementwise;
pub mod stages;

use std::fmt;

pub use stages::{Signal, Stage};

use crate::ir::transform::Transform;

/// Why a transform could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformError {
    /// The stage, as the user wrote its name (`zscore`, `bin`).
    pub stage: String,
    pub message: String,
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transform `{}`: {}", self.stage, self.message)
    }
}

impl std::error::Error for TransformError {}

/// The stages of one modality, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// The stages of a modality's transforms, unfitted.
    pub fn new(transforms: &[Transform]) -> Pipeline {
        Pipeline {
            stages: transforms.iter().map(Stage::new).collect(),
        }
    }

    /// Learns what stages need from the training split (the statistics of
    /// `zscore`): `train` is the training data, untransformed. Each
    /// statistic is taken after the stages before it.
    pub fn fit(&mut self, train: &Signal) -> Result<(), TransformError> {
        let mut signal = train.clone();
        for i in 0..self.stages.len() {
            self.stages[i].fit(&signal)?;
            signal = self.stages[i].apply(signal)?;
        }
        Ok(())
    }

    /// Applies every stage in order.
    pub fn apply(&self, mut signal: Signal) -> Result<Signal, TransformError> {
        for stage in &self.stages {
            signal = stage.apply(signal)?;
        }
        Ok(signal)
    }
}

#[cfg(test)]
mod tests;
