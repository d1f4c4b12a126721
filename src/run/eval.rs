//! Evaluation as `enigma run` reports it, for whatever makes the
//! predictions: the backend running the trained model, or a built-in
//! baseline (`crate::baseline`), so that both are scored on the same
//! windows, with the same masks and the same figures.
//!
//! An evaluation takes the first `eval.batches` batches of the evaluation
//! split in its fixed order (sessions in order, windows in time order),
//! each with its own mask key. It reports the mean of the batches' losses,
//! and the mean over neurons of the correlation between prediction and
//! target on the masked entries (every entry when nothing is masked), with
//! its chance level: each window's prediction against the target of the
//! window half the evaluated set away. A prediction that is the log of a
//! rate (read so by a Poisson loss) is correlated as the rate.

use super::backend::{Backend, EvalOutcome, MicroBatch};
use super::corr::{mean, WindowedCorr};
use crate::base::rng::derive;
use crate::dataset::loader::{Batch, Dataset};
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::Split;
use crate::plan::program::RankProgram;

/// The tag of the evaluation's mask keys.
const EVAL: u64 = 0x6576_616c;

/// The figures of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// The mean of the batches' losses.
    pub loss: f64,
    /// The mean per-neuron correlation, when any neuron has one.
    pub corr: Option<f64>,
    /// The same, each window's prediction against a distant window's
    /// target.
    pub chance: Option<f64>,
    /// The windows evaluated.
    pub windows: usize,
    /// Each neuron's correlation, where it has one (what TensorBoard
    /// shows as a histogram).
    pub per_neuron: Vec<f64>,
}

/// The windows an evaluation reads: the first `batches` batches of `size`
/// windows of `split`, in the split's fixed order.
pub fn eval_batches(
    dataset: &Dataset,
    split: Split,
    size: usize,
    seed: u64,
    batches: u64,
) -> Vec<Vec<usize>> {
    let mut all = dataset.epoch_batches(split, size, seed, 0);
    all.truncate(usize::try_from(batches).unwrap_or(usize::MAX));
    all
}

/// The mask key of evaluation batch `i`: the same at every evaluation, so
/// that every evaluation of a run scores the same entries.
pub fn eval_key(seed: u64, i: usize) -> u64 {
    derive(derive(seed, EVAL), i as u64)
}

/// Scores the predictions `predict` makes for each batch of `taken` (given
/// the batch and its mask key). `inputs` limits the batch to the inputs
/// the predictions need (all when `None`).
pub fn score<F>(
    dataset: &Dataset,
    split: Split,
    taken: &[Vec<usize>],
    seed: u64,
    inputs: Option<&[usize]>,
    mut predict: F,
) -> Result<Scores, Error>
where
    F: FnMut(&Batch, u64) -> Result<EvalOutcome, Error>,
{
    // Chance pairs each window with the one half the evaluated windows
    // away: far enough in time that slow shared signals (running, the
    // stimulus sequence) do not line up, as they would for neighbouring,
    // overlapping windows.
    let windows = taken.iter().map(Vec::len).sum::<usize>();
    let shift = (windows / 2).max(1);
    let mut losses = Vec::new();
    let mut corr: Option<WindowedCorr> = None;
    for (i, ids) in taken.iter().enumerate() {
        let batch = dataset.batch_of(split, ids, inputs)?;
        let out = predict(&batch, eval_key(seed, i))?;
        losses.push(out.loss);
        // The first prediction with a target is the one reported.
        let Some(p) = out.predictions.first() else {
            continue;
        };
        let (b, neurons) = match p.pred.shape.as_slice() {
            [b, .., n] => (*b, *n),
            _ => continue,
        };
        let per = p.pred.numel() / b.max(1);
        let mask = p.mask.as_deref();
        if p.target.numel() != p.pred.numel() || mask.is_some_and(|m| m.len() != p.pred.numel()) {
            return Err(Error::new(
                ErrorKind::Mismatch,
                format!(
                    "prediction `{}` is {:?} but its target is {:?}",
                    p.name, p.pred.shape, p.target.shape
                ),
            ));
        }
        let acc = match &mut corr {
            Some(c) => c,
            None => corr.insert(
                WindowedCorr::new(neurons, shift)
                    .map_err(|e| Error::new(ErrorKind::Op, e.to_string()))?,
            ),
        };
        // A session with another neuron count is left out of the pooled
        // figure, which compares neuron k with neuron k.
        if neurons != acc.matched().neurons() {
            continue;
        }
        // A log-rate is correlated as the rate it stands for.
        let rates: Vec<f32>;
        let pred = if p.log_rate {
            rates = p.pred.data.iter().map(|v| v.exp()).collect();
            &rates
        } else {
            &p.pred.data
        };
        for w in 0..b {
            let r = w * per..(w + 1) * per;
            acc.add_window(
                &pred[r.clone()],
                &p.target.data[r.clone()],
                mask.map(|m| &m[r]),
                per / neurons.max(1),
            )
            .map_err(|e| Error::new(ErrorKind::Op, e.to_string()))?;
        }
    }
    let loss = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
    let (c, ch, per_neuron) = match &corr {
        Some(c) => {
            let each = c.finish();
            let per: Vec<f64> = each.iter().flatten().copied().collect();
            (mean(&each), mean(&c.finish_shifted()), per)
        }
        None => (None, None, Vec::new()),
    };
    Ok(Scores {
        loss,
        corr: c,
        chance: ch,
        windows,
        per_neuron,
    })
}

/// [`score`] for the model: `backend` runs `program` (forward only) on each
/// batch, one micro-batch in one process.
pub fn score_backend<B: Backend>(
    backend: &mut B,
    program: &RankProgram,
    dataset: &Dataset,
    split: Split,
    taken: &[Vec<usize>],
    seed: u64,
) -> Result<Scores, Error> {
    score(dataset, split, taken, seed, None, |batch, key| {
        backend.evaluate(
            program,
            MicroBatch {
                session: batch.session,
                inputs: &batch.inputs,
                first: 0,
            },
            key,
            None,
        )
    })
}
