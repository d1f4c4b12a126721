//! The predictors of the stimulus and behaviour baseline: a per-unit
//! linear model of what the experiment shows the animal and what it does.
//!
//! Every input besides the neural ones (the target and the values the
//! masked tokenizer reads) whose first dim is the target's time dim is a
//! covariate: the stimulus video, the behaviour columns. Each is brought to
//! the target's steps (the samples of a step averaged; a slower covariate
//! repeated) and, when a step holds more than [`MAX_PER_STEP`] values, its
//! last two dims are average-pooled to at most an [`GRID`] x [`GRID`] grid
//! (a frame of 36 x 64 pixels becomes 64 regions). The model sees them at
//! the same step and [`LAGS`] steps before, since a response follows its
//! stimulus by tens to hundreds of milliseconds.

use super::setup::Setup;
use crate::base::host::HostTensor;
use crate::dataset::loader::Batch;
use crate::diagnostics::{Error, ErrorKind};

/// The most values per step a covariate gives before it is pooled.
const MAX_PER_STEP: usize = 64;
/// The side of the grid a frame is pooled to.
const GRID: usize = 8;
/// Lags of the covariates beyond the same step.
pub const LAGS: usize = 2;
/// The most predictors, over every lag: the normal equations are solved
/// densely, and their matrix is kept per session.
const MAX_FEATURES: usize = 768;

/// The most training windows per session the model is fitted on: a video
/// covariate is rendered or read for every window it sees, and a few
/// hundred predictors are well determined by this many windows' steps.
pub const WINDOWS: usize = 128;

/// At most [`WINDOWS`] of `ids`, evenly spread over them.
pub fn spread(ids: &[usize]) -> Vec<usize> {
    if ids.len() <= WINDOWS {
        return ids.to_vec();
    }
    (0..WINDOWS).map(|k| ids[k * ids.len() / WINDOWS]).collect()
}

/// Each batch window's predictors, `[B, T, width]` for the target's `t`
/// steps, and `width`.
pub fn features(setup: &Setup, batch: &Batch, t: usize) -> Result<(Vec<f32>, usize), Error> {
    let mut parts = Vec::with_capacity(setup.covariates.len());
    for &i in &setup.covariates {
        let x = batch
            .inputs
            .get(i)
            .ok_or_else(|| Error::internal(format!("the batch has no input {i}")))?;
        parts.push(per_step(x, t)?);
    }
    let b = batch.inputs.get(setup.target).map_or(0, |y| y.shape[0]);
    let width: usize = parts.iter().map(|p| p.1).sum();
    if width * (LAGS + 1) > MAX_FEATURES {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the stimulus and behaviour give {width} predictors per step after pooling, and with {LAGS} lags more than the {MAX_FEATURES} a dense regression takes"
            ),
        ));
    }
    let mut out = Vec::with_capacity(b * t * width);
    for w in 0..b {
        for s in 0..t {
            for (values, k) in &parts {
                let at = (w * t + s) * k;
                out.extend_from_slice(values.get(at..at + k).ok_or_else(|| {
                    Error::internal("a covariate has fewer windows than the target")
                })?);
            }
        }
    }
    Ok((out, width))
}

/// One covariate `[B, Tc, ...]` as `[B, t, k]`: its samples averaged into
/// the target's steps and its values pooled; returns the values and `k`.
fn per_step(x: &HostTensor, t: usize) -> Result<(Vec<f32>, usize), Error> {
    let [b, tc, rest @ ..] = x.shape.as_slice() else {
        return Err(Error::internal("a covariate without a time dim"));
    };
    let (b, tc) = (*b, *tc);
    let inner: usize = rest.iter().product();
    // Which pooled value each of a step's values adds to.
    let (cells, k) = pooling(rest);
    let mut out = vec![0f32; b * t * k];
    let mut count = vec![0f32; k];
    for w in 0..b {
        for s in 0..t {
            let samples: Vec<usize> = if tc >= t {
                (s * tc).div_ceil(t)..((s + 1) * tc).div_ceil(t)
            } else {
                let i = s * tc / t;
                i..i + 1
            }
            .collect();
            count.iter_mut().for_each(|c| *c = 0.0);
            let row = &mut out[(w * t + s) * k..(w * t + s + 1) * k];
            for i in samples {
                let values = x
                    .data
                    .get((w * tc + i) * inner..(w * tc + i + 1) * inner)
                    .ok_or_else(|| Error::internal("a covariate is shorter than its shape"))?;
                for (v, &c) in values.iter().zip(&cells) {
                    row[c] += v;
                    count[c] += 1.0;
                }
            }
            for (r, c) in row.iter_mut().zip(&count) {
                *r /= c.max(1.0);
            }
        }
    }
    Ok((out, k))
}

/// For a step's values of shape `rest`, the pooled value each adds to,
/// and how many pooled values there are.
fn pooling(rest: &[usize]) -> (Vec<usize>, usize) {
    let inner: usize = rest.iter().product();
    if inner <= MAX_PER_STEP {
        return ((0..inner).collect(), inner);
    }
    match rest {
        [lead @ .., h, w] => {
            let (gh, gw) = ((*h).min(GRID), (*w).min(GRID));
            let outer: usize = lead.iter().product();
            let cells = (0..inner)
                .map(|i| {
                    let (o, y, x) = (i / (h * w), (i / w) % h, i % w);
                    (o * gh + y * gh / h) * gw + x * gw / w
                })
                .collect();
            (cells, outer * gh * gw)
        }
        _ => {
            let cells = (0..inner).map(|i| i * MAX_PER_STEP / inner).collect();
            (cells, MAX_PER_STEP)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_pooled_to_a_grid_of_regions() {
        // One channel of 4 x 32 = 128 values: 4 rows stay, 32 columns
        // become 8 regions of 4.
        let (cells, k) = pooling(&[1, 4, 32]);
        assert_eq!(k, 32);
        assert_eq!(cells[0], 0);
        assert_eq!(cells[3], 0);
        assert_eq!(cells[4], 1);
        assert_eq!(cells[32], 8);
        assert_eq!(cells[127], 31);
        // A small step is kept as it is.
        assert_eq!(pooling(&[4]), (vec![0, 1, 2, 3], 4));
    }

    #[test]
    fn a_long_session_is_fitted_on_windows_spread_over_it() {
        let ids: Vec<usize> = (0..1000).collect();
        let some = spread(&ids);
        assert_eq!(some.len(), WINDOWS);
        assert_eq!((some[0], some[WINDOWS - 1]), (0, 992));
        assert!(some.windows(2).all(|w| w[1] - w[0] >= 7));
        assert_eq!(spread(&ids[..5]), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn samples_are_averaged_into_the_targets_steps() {
        // 6 samples of 1 value into 2 steps: the means of 0..3 and 3..6.
        let x = HostTensor::new(vec![1, 6, 1], vec![0., 1., 2., 3., 4., 5.]).unwrap();
        let (v, k) = per_step(&x, 2).unwrap();
        assert_eq!((v, k), (vec![1.0, 4.0], 1));
        // 60 samples into 16 steps: every sample counts once.
        let x = HostTensor::new(vec![1, 60, 1], vec![1.0; 60]).unwrap();
        let (v, _) = per_step(&x, 16).unwrap();
        assert!(v.iter().all(|&x| x == 1.0), "{v:?}");
        // A slower covariate is repeated.
        let x = HostTensor::new(vec![1, 2, 1], vec![3.0, 5.0]).unwrap();
        assert_eq!(per_step(&x, 4).unwrap().0, vec![3.0, 3.0, 5.0, 5.0]);
    }
}
