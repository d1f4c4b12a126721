//! Errors of a run, each naming where it happened: the step, the op and
//! its node, the tensor and its shape, or the file.

use std::fmt;

/// What kind of failure stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunErrorKind {
    /// The experiment or its plan asks for something the runtime cannot do
    /// (an op not implemented yet, collectives in a one-process run).
    Unsupported,
    /// A backend operation failed: the op, its node and its operands'
    /// shapes are in the message.
    Op,
    /// The loss or a gradient is NaN or infinite and the policy is `stop`.
    NonFinite,
    /// The device asked for is not there (`--device cuda` without a GPU).
    Device,
    /// Data could not be loaded.
    Data,
    /// A checkpoint could not be written or read.
    Checkpoint,
    /// A checkpoint does not fit the experiment (another model, another
    /// shape).
    Mismatch,
    /// Writing the run directory (metrics, plots, the plan) failed.
    Io,
}

/// A failure of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunError {
    pub kind: RunErrorKind,
    /// The optimiser step during which it happened, when there was one.
    pub step: Option<u64>,
    pub message: String,
}

impl RunError {
    pub fn new(kind: RunErrorKind, message: impl Into<String>) -> RunError {
        RunError {
            kind,
            step: None,
            message: message.into(),
        }
    }

    /// The same error, attributed to optimiser step `step` (unless it
    /// already names one).
    pub fn at_step(mut self, step: u64) -> RunError {
        self.step.get_or_insert(step);
        self
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(s) => write!(f, "step {s}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RunError {}
