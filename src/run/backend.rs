//! The boundary between the training loop and the tensors: a [`Backend`]
//! executes one rank's program from the plan.
//!
//! The loop (`train.rs`), the loader, checkpoints and metrics are pure
//! Rust and see only this trait and host tensors, so they build and are
//! tested without libtorch; the libtorch implementation lives in
//! `crates/enigma-torch`, the one package that links libtorch.

use std::collections::BTreeMap;

use crate::base::host::HostTensor;
use crate::diagnostics::Error;
use crate::ir::train::NonFinite;
use crate::plan::program::RankProgram;
use crate::run::checkpoint::sharded::Part;
use crate::run::checkpoint::I64Tensor;

/// One micro-batch's data: the model's inputs, in the IR's input order,
/// each `[B, ...]`, and the session they come from (which picks the
/// per-session parameters).
#[derive(Clone, Copy, Debug)]
pub struct MicroBatch<'a> {
    pub session: usize,
    pub inputs: &'a [HostTensor],
    /// The position of its first window in the micro-batch of all the
    /// data-parallel ranks together (0 in one process): a sample's token
    /// mask is keyed by its position there, so every layout draws the
    /// masks one process draws.
    pub first: usize,
}

/// What the optimiser does at the end of a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Update {
    /// The learning rate for this step, after the schedule.
    pub lr: f64,
    /// Clip the global gradient norm to this value.
    pub clip: Option<f64>,
    pub on_nonfinite: NonFinite,
}

/// Randomness of one step, derived from the run's seed and the step
/// number only, so a resumed run draws exactly what an uninterrupted one
/// would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepKeys {
    /// Keys the token masks (`mask_tokens`) of each sample.
    pub mask: u64,
    /// Seeds libtorch's generator for dropout.
    pub dropout: u64,
}

/// What a training step did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutcome {
    /// The loss, averaged over the step's micro-batches.
    pub loss: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// Whether the step was skipped (non-finite loss or gradients under
    /// `on_nonfinite: skip`); `reason` says what was not finite.
    pub skipped: Option<String>,
}

/// What an evaluation batch gives: the loss, and for each prediction that
/// has a target, the prediction, the target and which entries count.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOutcome {
    pub loss: f64,
    pub predictions: Vec<Prediction>,
}

/// A position of a dim that an evaluation hides wherever a token mask is
/// drawn over the dim: `N` = 5 holds neuron 5 out at every step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldOut {
    pub dim: String,
    pub index: usize,
}

/// One prediction of one evaluation batch, as `[B, T, N]` host tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The prediction's name (`response`).
    pub name: String,
    pub pred: HostTensor,
    pub target: HostTensor,
    /// True where the entry was masked from the model (a masked-modelling
    /// loss is scored there), `[B, T, N]`; `None` when nothing was masked.
    pub mask: Option<Vec<bool>>,
    /// The prediction is the log of a rate (a `poisson_nll` loss reads it
    /// so): correlations are computed on the rate, `exp` of it.
    pub log_rate: bool,
}

/// A device that runs rank programs.
pub trait Backend {
    /// The device, for people: `cpu`, `cuda:0`.
    fn device(&self) -> String;

    /// The number of parameter values this rank holds.
    fn parameters(&self) -> i64;

    /// Runs one training step: the program's ops in order over the step's
    /// micro-batches (forward, backward, and the optimiser at `step`).
    fn train_step(
        &mut self,
        program: &RankProgram,
        micro: &[MicroBatch<'_>],
        keys: StepKeys,
        update: Update,
    ) -> Result<StepOutcome, Error>;

    /// Runs a forward-only program ([`RankProgram::forward_only`]) on one
    /// batch (of any size) without gradients, masks drawn from `mask_key`;
    /// with `hold_out`, every mask that draws over that dim also hides that
    /// position of it entirely (one neuron held out, the rest drawn as in
    /// training).
    fn evaluate(
        &mut self,
        program: &RankProgram,
        batch: MicroBatch<'_>,
        mask_key: u64,
        hold_out: Option<&HoldOut>,
    ) -> Result<EvalOutcome, Error>;

    /// The training state of one process: every parameter copy and the
    /// optimiser's moments, by name, whole (the step count is
    /// [`Backend::export_ints`]'s). A job of several processes writes its
    /// state in parts ([`Backend::export_parts`]) instead.
    fn export(&mut self) -> Result<BTreeMap<String, HostTensor>, Error>;

    /// The integer state, whole, by name: the optimiser's step count
    /// `optim.t`, an I64 scalar (checkpoints store it as I64, since f32
    /// holds integers exactly only to 2^24). In a job the rank that writes
    /// it returns it and the others return nothing.
    fn export_ints(&mut self) -> Result<BTreeMap<String, I64Tensor>, Error>;

    /// Restores what [`Backend::export_ints`] gave.
    fn import_ints(&mut self, state: &BTreeMap<String, I64Tensor>) -> Result<(), Error>;

    /// The parts of the training state this rank writes to a job's
    /// checkpoint (`run::checkpoint::sharded`), named as
    /// [`Backend::export`] names the whole tensors: under ZeRO this rank's
    /// slices (on the first replica of each slice), else the whole tensors
    /// (on the first rank of the data-parallel group). No collective runs,
    /// and together the ranks' parts cover the state exactly once.
    fn export_parts(&mut self) -> Result<Vec<Part>, Error>;

    /// Restores what [`Backend::export`] gave; every name and shape must
    /// match.
    fn import(&mut self, state: &BTreeMap<String, HostTensor>) -> Result<(), Error>;

    /// Copies the weights of every shared parameter (all but the
    /// per-session tables) from `state`, a checkpoint of a run of the same
    /// model, and returns how many tensors it copied: the start of a
    /// few-shot fit of new sessions. The per-session tables and the
    /// optimiser start fresh.
    fn load_shared(&mut self, state: &BTreeMap<String, HostTensor>) -> Result<usize, Error>;

    /// From now on, trains only the per-session tables (unit embeddings,
    /// read-out weights); an error when the model has none.
    fn freeze_shared(&mut self) -> Result<(), Error>;

    /// Whether `flag` is set on any rank of the job (one process: `flag`):
    /// every rank must call it at the same point, and all get the same
    /// answer, so that a signal seen by one rank stops every rank after
    /// the same step.
    fn any_rank(&mut self, flag: bool) -> Result<bool, Error>;

    /// Waits for every rank of the job.
    fn barrier(&mut self) -> Result<(), Error>;

    /// The run ended well on this rank: the communicator may shut down
    /// cleanly (waiting for the other ranks) when the backend is dropped.
    fn finish(&mut self);
}
