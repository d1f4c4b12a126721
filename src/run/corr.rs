//! Per-neuron correlations pooled over a held-out set.
//!
//! [`CorrAccumulator`] pools every (window, time step) entry of a split
//! before taking Pearson's r per neuron, so a neuron's figure does not
//! depend on how the split was batched. [`WindowedCorr`] adds the chance
//! level measured on the same data: each window's prediction paired with
//! another window's target.

use std::collections::VecDeque;
use std::fmt;

/// Slices that do not describe `[samples, neurons]` blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorrError {
    /// Predictions and targets of different lengths.
    Lengths { pred: usize, target: usize },
    /// A length that is not a whole number of samples.
    NotRows { len: usize, neurons: usize },
    /// A mask whose length differs from the values'.
    Mask { mask: usize, values: usize },
    /// A window of other than `steps * neurons` values, or with a
    /// different number of steps than the windows before it.
    Window { expected: usize, found: usize },
    /// Accumulators over different numbers of neurons.
    Neurons { left: usize, right: usize },
    /// A chance shift of zero windows, which would pair each window with
    /// itself.
    ZeroShift,
}

impl fmt::Display for CorrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorrError::Lengths { pred, target } => {
                write!(f, "{pred} predictions but {target} targets")
            }
            CorrError::NotRows { len, neurons } => {
                write!(f, "{len} values are not whole rows of {neurons} neurons")
            }
            CorrError::Mask { mask, values } => {
                write!(f, "a mask of {mask} entries for {values} values")
            }
            CorrError::Window { expected, found } => {
                write!(
                    f,
                    "a window of {found} values where {expected} were expected"
                )
            }
            CorrError::Neurons { left, right } => {
                write!(
                    f,
                    "cannot merge correlations over {left} and {right} neurons"
                )
            }
            CorrError::ZeroShift => write!(f, "the chance shift must be at least one window"),
        }
    }
}

impl std::error::Error for CorrError {}

/// Running means, squared deviations and co-deviation of one neuron's
/// (prediction, target) pairs: Welford's update, which stays accurate when
/// the mean is large compared with the spread (raw sums of squares would
/// cancel catastrophically there).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CoMoments {
    n: u64,
    mean_x: f64,
    mean_y: f64,
    m2_x: f64,
    m2_y: f64,
    c_xy: f64,
}

impl CoMoments {
    fn push(&mut self, x: f64, y: f64) {
        self.n += 1;
        let n = self.n as f64;
        let dx = x - self.mean_x;
        self.mean_x += dx / n;
        let dy = y - self.mean_y;
        self.mean_y += dy / n;
        self.m2_x += dx * (x - self.mean_x);
        self.m2_y += dy * (y - self.mean_y);
        self.c_xy += dx * (y - self.mean_y);
    }

    /// Chan et al.'s pairwise combination of two disjoint sets.
    fn merge(&mut self, other: &CoMoments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let dx = other.mean_x - self.mean_x;
        let dy = other.mean_y - self.mean_y;
        let w = na * nb / n;
        self.m2_x += other.m2_x + dx * dx * w;
        self.m2_y += other.m2_y + dy * dy * w;
        self.c_xy += other.c_xy + dx * dy * w;
        self.mean_x += dx * nb / n;
        self.mean_y += dy * nb / n;
        self.n += other.n;
    }

    fn pearson(&self) -> Option<f64> {
        if self.n < 3 || self.m2_x <= 0.0 || self.m2_y <= 0.0 {
            return None;
        }
        let r = self.c_xy / (self.m2_x.sqrt() * self.m2_y.sqrt());
        // Rounding can push a perfect correlation a hair past one.
        r.is_finite().then(|| r.clamp(-1.0, 1.0))
    }
}

/// Pearson correlation per neuron, pooled over every sample given.
///
/// Samples are rows of `[samples, neurons]` slices (every window and time
/// step flattened); the correlation of neuron `j` is taken over all the
/// counted entries in column `j`, across all calls. Entries where the
/// prediction or target is not finite are skipped and counted in
/// [`CorrAccumulator::non_finite`], so one bad value cannot turn a whole
/// neuron's correlation into NaN.
#[derive(Clone, Debug, PartialEq)]
pub struct CorrAccumulator {
    stats: Vec<CoMoments>,
    non_finite: u64,
}

impl CorrAccumulator {
    /// An empty accumulator over `neurons` neurons.
    pub fn new(neurons: usize) -> CorrAccumulator {
        CorrAccumulator {
            stats: vec![CoMoments::default(); neurons],
            non_finite: 0,
        }
    }

    /// The number of neurons.
    pub fn neurons(&self) -> usize {
        self.stats.len()
    }

    /// Adds row-major `[samples, neurons]` predictions and targets; when
    /// `mask` is given only entries where it is `true` count (for
    /// instance only the masked tokens of a masked-modelling loss).
    pub fn add(
        &mut self,
        pred: &[f32],
        target: &[f32],
        mask: Option<&[bool]>,
    ) -> Result<(), CorrError> {
        self.check(pred, target, mask)?;
        let neurons = self.stats.len().max(1);
        for (row, (p_row, t_row)) in pred.chunks(neurons).zip(target.chunks(neurons)).enumerate() {
            for (j, ((stats, &p), &t)) in self.stats.iter_mut().zip(p_row).zip(t_row).enumerate() {
                if let Some(mask) = mask {
                    if !mask.get(row * neurons + j).copied().unwrap_or(false) {
                        continue;
                    }
                }
                if p.is_finite() && t.is_finite() {
                    stats.push(f64::from(p), f64::from(t));
                } else {
                    self.non_finite += 1;
                }
            }
        }
        Ok(())
    }

    fn check(&self, pred: &[f32], target: &[f32], mask: Option<&[bool]>) -> Result<(), CorrError> {
        if pred.len() != target.len() {
            return Err(CorrError::Lengths {
                pred: pred.len(),
                target: target.len(),
            });
        }
        let neurons = self.stats.len();
        let whole = if neurons == 0 {
            pred.is_empty()
        } else {
            pred.len().is_multiple_of(neurons)
        };
        if !whole {
            return Err(CorrError::NotRows {
                len: pred.len(),
                neurons,
            });
        }
        match mask {
            Some(mask) if mask.len() != pred.len() => Err(CorrError::Mask {
                mask: mask.len(),
                values: pred.len(),
            }),
            _ => Ok(()),
        }
    }

    /// Folds in another accumulator's samples (another data-parallel
    /// rank's share of the held-out set, for instance); the result is the
    /// same as if every sample had been added here.
    pub fn merge(&mut self, other: &CorrAccumulator) -> Result<(), CorrError> {
        if other.stats.len() != self.stats.len() {
            return Err(CorrError::Neurons {
                left: self.stats.len(),
                right: other.stats.len(),
            });
        }
        for (mine, theirs) in self.stats.iter_mut().zip(&other.stats) {
            mine.merge(theirs);
        }
        self.non_finite += other.non_finite;
        Ok(())
    }

    /// How many entries were counted for each neuron.
    pub fn counts(&self) -> Vec<u64> {
        self.stats.iter().map(|s| s.n).collect()
    }

    /// How many selected entries were skipped as NaN or infinite.
    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// Pearson r per neuron; `None` for a neuron with fewer than three
    /// counted entries or with zero variance in either series.
    pub fn finish(&self) -> Vec<Option<f64>> {
        self.stats.iter().map(CoMoments::pearson).collect()
    }
}

/// One buffered window: its values and mask.
#[derive(Clone, Debug, PartialEq)]
struct Block {
    values: Vec<f32>,
    mask: Option<Vec<bool>>,
}

/// Correlation over whole windows, with its chance level.
///
/// The matched correlation pairs each window's prediction with its own
/// target, like [`CorrAccumulator`]. The chance level is the same
/// statistic with window `i`'s prediction paired with the target of
/// window `(i + shift) mod n`, where `n` is the number of windows: the
/// predictions keep their own distribution and the targets theirs, but
/// any link between them is broken, so whatever correlation remains comes
/// from structure shared across windows (a common stimulus, a mean
/// response) rather than from predicting the window. Choose `shift`
/// larger than the distance over which neighbouring windows are related
/// (overlap, slow drifts); `1` suits windows in shuffled order. In a
/// shifted pair an entry counts only where both windows' masks select it.
///
/// Every window must have the same number of steps so that entries pair
/// up. The pairing is streamed: only the first `shift` targets and the
/// last `shift` predictions are kept, and the wrap-around pairs are added
/// when the result is asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowedCorr {
    matched: CorrAccumulator,
    shifted: CorrAccumulator,
    shift: usize,
    steps: Option<usize>,
    windows: usize,
    first_targets: Vec<Block>,
    recent_preds: VecDeque<Block>,
}

impl WindowedCorr {
    /// An empty accumulator over `neurons` neurons whose chance level
    /// shifts targets by `shift` windows (at least one).
    pub fn new(neurons: usize, shift: usize) -> Result<WindowedCorr, CorrError> {
        if shift == 0 {
            return Err(CorrError::ZeroShift);
        }
        Ok(WindowedCorr {
            matched: CorrAccumulator::new(neurons),
            shifted: CorrAccumulator::new(neurons),
            shift,
            steps: None,
            windows: 0,
            first_targets: Vec::new(),
            recent_preds: VecDeque::new(),
        })
    }

    /// Adds one window of `steps` time steps: row-major `[steps, neurons]`
    /// predictions, targets and optional mask.
    pub fn add_window(
        &mut self,
        pred: &[f32],
        target: &[f32],
        mask: Option<&[bool]>,
        steps: usize,
    ) -> Result<(), CorrError> {
        let expected = steps.saturating_mul(self.matched.neurons());
        if pred.len() != expected {
            return Err(CorrError::Window {
                expected,
                found: pred.len(),
            });
        }
        if let Some(first) = self.steps.filter(|&s| s != steps) {
            return Err(CorrError::Window {
                expected: first.saturating_mul(self.matched.neurons()),
                found: pred.len(),
            });
        }
        self.matched.add(pred, target, mask)?;
        self.steps = Some(steps);
        let owned = |values: &[f32]| Block {
            values: values.to_vec(),
            mask: mask.map(<[bool]>::to_vec),
        };
        let target_block = owned(target);
        // Window `j` is the shifted partner of window `j - shift`, whose
        // prediction is the oldest one kept once `shift` are buffered.
        if self.recent_preds.len() == self.shift {
            if let Some(old) = self.recent_preds.pop_front() {
                add_pair(&mut self.shifted, &old, &target_block)?;
            }
        }
        if self.windows < self.shift {
            self.first_targets.push(target_block);
        }
        self.recent_preds.push_back(owned(pred));
        self.windows += 1;
        Ok(())
    }

    /// The number of windows added.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// The matched correlation per neuron (see [`CorrAccumulator::finish`]).
    pub fn finish(&self) -> Vec<Option<f64>> {
        self.matched.finish()
    }

    /// The matched accumulator, for counts or merging across ranks.
    pub fn matched(&self) -> &CorrAccumulator {
        &self.matched
    }

    /// The chance correlation per neuron: every window's prediction
    /// against the target `shift` windows later, wrapping around. All
    /// `None` when fewer than two windows were added or when `shift` is a
    /// multiple of the window count (every window would meet itself).
    pub fn finish_shifted(&self) -> Vec<Option<f64>> {
        let none = vec![None; self.matched.neurons()];
        let n = self.windows;
        if n < 2 || self.shift.is_multiple_of(n) {
            return none;
        }
        let mut shifted = self.shifted.clone();
        if n > self.shift {
            // The last `shift` predictions meet the first `shift` targets.
            for (pred, target) in self.recent_preds.iter().zip(&self.first_targets) {
                if add_pair(&mut shifted, pred, target).is_err() {
                    return none;
                }
            }
        } else {
            // Every window is still buffered, so pair them directly.
            for (i, pred) in self.recent_preds.iter().enumerate() {
                let Some(target) = self.first_targets.get((i + self.shift) % n) else {
                    return none;
                };
                if add_pair(&mut shifted, pred, target).is_err() {
                    return none;
                }
            }
        }
        shifted.finish()
    }
}

/// Adds a prediction block against a target block, counting an entry only
/// where both blocks' masks select it.
fn add_pair(acc: &mut CorrAccumulator, pred: &Block, target: &Block) -> Result<(), CorrError> {
    let mask: Option<Vec<bool>> = match (&pred.mask, &target.mask) {
        (None, None) => None,
        (Some(m), None) | (None, Some(m)) => Some(m.clone()),
        (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(&x, &y)| x && y).collect()),
    };
    acc.add(&pred.values, &target.values, mask.as_deref())
}

/// The mean of the defined correlations, `None` when there are none.
pub fn mean(values: &[Option<f64>]) -> Option<f64> {
    let defined: Vec<f64> = values.iter().flatten().copied().collect();
    if defined.is_empty() {
        return None;
    }
    Some(defined.iter().sum::<f64>() / defined.len() as f64)
}

/// The median of the defined correlations (the mean of the middle two for
/// an even count), `None` when there are none.
pub fn median(values: &[Option<f64>]) -> Option<f64> {
    let mut defined: Vec<f64> = values.iter().flatten().copied().collect();
    defined.sort_by(f64::total_cmp);
    let mid = defined.len() / 2;
    match defined.len() {
        0 => None,
        len if len % 2 == 1 => defined.get(mid).copied(),
        _ => Some((defined.get(mid - 1)? + defined.get(mid)?) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_the_two_pass_formula_with_a_large_offset() {
        // At an offset of 1e6, raw sums of squares in f64 keep only about
        // four digits of the spread; the co-moment update must keep them
        // all (the inputs are f32, so the signal is quantised, not lost).
        let xs: Vec<f32> = (0..200).map(|i| 1.0e6 + (i as f32 * 0.37).sin()).collect();
        let ys: Vec<f32> = (0..200)
            .map(|i| 1.0e6 + (i as f32 * 0.37 + 0.5).sin())
            .collect();
        let mut acc = CorrAccumulator::new(1);
        acc.add(&xs, &ys, None).unwrap();
        let (x, y): (Vec<f64>, Vec<f64>) = xs
            .iter()
            .zip(&ys)
            .map(|(&a, &b)| (f64::from(a), f64::from(b)))
            .unzip();
        let mx = x.iter().sum::<f64>() / 200.0;
        let my = y.iter().sum::<f64>() / 200.0;
        let sxy: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
        let expected = sxy / (sxx * syy).sqrt();
        let r = acc.finish()[0].unwrap();
        assert!((r - expected).abs() < 1e-9, "{r} vs {expected}");
    }
}
