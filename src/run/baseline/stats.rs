//! What the baselines learn from the training windows of one session: each
//! unit's mean, and the moments a ridge regression needs (the covariance of
//! the lagged values the model sees and their covariance with the target),
//! accumulated once so that any subset of visible predictors can be solved
//! for later.

use crate::base::host::HostTensor;
use crate::dataset::loader::Dataset;
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::Split;

use super::covariates;
use super::setup::Setup;

/// Training windows read at once.
const CHUNK: usize = 64;

/// Moments of one session's training data, for lags `0..=lags`.
#[derive(Clone, Debug)]
pub struct Moments {
    /// Units in the session: the targets.
    pub units: usize,
    /// Predictors per step: the units for the ridge from the visible
    /// units, the pooled covariates for the stimulus and behaviour model.
    pub width: usize,
    /// Lags of the predictors: features are `(lag, predictor)`, lag-major.
    pub lags: usize,
    /// Rows accumulated (one per step with every lag inside its window).
    pub rows: f64,
    /// The mean of each feature, `units * (lags + 1)`.
    pub mean_x: Vec<f64>,
    /// The mean of the target of each unit.
    pub mean_y: Vec<f64>,
    /// The covariance of the features, row-major, `f * f`.
    pub cov_xx: Vec<f64>,
    /// The covariance of each feature with each unit's target, `f * units`.
    pub cov_xy: Vec<f64>,
}

impl Moments {
    /// The number of features.
    pub fn features(&self) -> usize {
        self.width * (self.lags + 1)
    }
}

/// The ids of session `session`'s training windows.
fn training_windows(ds: &Dataset, session: usize) -> Vec<usize> {
    ds.windows(Split::Train)
        .iter()
        .enumerate()
        .filter(|(_, w)| w.session == session)
        .map(|(i, _)| i)
        .collect()
}

/// Accumulates the moments of session `session` over its training windows.
pub fn session_moments(
    ds: &Dataset,
    setup: &Setup,
    session: usize,
    lags: usize,
) -> Result<Option<Moments>, Error> {
    let ids = training_windows(ds, session);
    let seen = setup.masked.as_ref().map_or(setup.target, |m| m.input);
    let mut acc: Option<Acc> = None;
    for chunk in ids.chunks(CHUNK) {
        let batch = ds.batch_of(Split::Train, chunk, Some(&setup.inputs()))?;
        let (x, y) = (
            input(&batch.inputs, seen)?,
            input(&batch.inputs, setup.target)?,
        );
        let [b, t, n] = shape(x)?;
        if shape(y)? != [b, t, n] {
            return Err(Error::new(
                ErrorKind::Mismatch,
                format!(
                    "`{}` is {:?} but the values the model sees are {:?}",
                    setup.name, y.shape, x.shape
                ),
            ));
        }
        let a = acc.get_or_insert_with(|| Acc::new(n, n, lags));
        for w in 0..b {
            for step in lags..t {
                a.row(
                    |lag, unit| x.data[(w * t + step - lag) * n + unit],
                    |unit| y.data[(w * t + step) * n + unit],
                );
            }
        }
    }
    Ok(acc.map(Acc::finish).filter(|m| m.rows > 0.0))
}

/// Accumulates, over session `session`'s training windows, the moments of
/// the target on the stimulus and behaviour predictors (`covariates.rs`)
/// at the same step and the lags before.
pub fn covariate_moments(
    ds: &Dataset,
    setup: &Setup,
    session: usize,
) -> Result<Option<Moments>, Error> {
    let ids = covariates::spread(&training_windows(ds, session));
    let needs: Vec<usize> = std::iter::once(setup.target)
        .chain(setup.covariates.iter().copied())
        .collect();
    let lags = covariates::LAGS;
    let mut acc: Option<Acc> = None;
    for chunk in ids.chunks(CHUNK) {
        let batch = ds.batch_of(Split::Train, chunk, Some(&needs))?;
        let y = input(&batch.inputs, setup.target)?;
        let [b, t, n] = shape(y)?;
        let (x, width) = covariates::features(setup, &batch, t)?;
        let a = acc.get_or_insert_with(|| Acc::new(width, n, lags));
        for w in 0..b {
            for step in lags..t {
                a.row(
                    |lag, p| x[(w * t + step - lag) * width + p],
                    |unit| y.data[(w * t + step) * n + unit],
                );
            }
        }
    }
    Ok(acc.map(Acc::finish).filter(|m| m.rows > 0.0))
}

/// Input `i` of a batch, `[B, T, N]`.
fn input(inputs: &[HostTensor], i: usize) -> Result<&HostTensor, Error> {
    inputs
        .get(i)
        .ok_or_else(|| Error::internal(format!("the batch has no input {i}")))
}

/// The `[B, T, N]` shape of a modality of time by units.
pub fn shape(x: &HostTensor) -> Result<[usize; 3], Error> {
    match x.shape.as_slice() {
        [b, t, n] => Ok([*b, *t, *n]),
        other => Err(Error::new(
            ErrorKind::Mismatch,
            format!("a modality of time by units has 3 dims with the batch, not {other:?}"),
        )),
    }
}

/// Running sums, in f64.
struct Acc {
    units: usize,
    width: usize,
    lags: usize,
    rows: f64,
    sx: Vec<f64>,
    sy: Vec<f64>,
    sxx: Vec<f64>,
    sxy: Vec<f64>,
    row_x: Vec<f64>,
    row_y: Vec<f64>,
}

impl Acc {
    fn new(width: usize, units: usize, lags: usize) -> Acc {
        let f = width * (lags + 1);
        Acc {
            units,
            width,
            lags,
            rows: 0.0,
            sx: vec![0.0; f],
            sy: vec![0.0; units],
            sxx: vec![0.0; f * f],
            sxy: vec![0.0; f * units],
            row_x: vec![0.0; f],
            row_y: vec![0.0; units],
        }
    }

    /// Adds one row: feature `(lag, predictor)` is `x(lag, predictor)`,
    /// the target of `unit` is `y(unit)`. A row with a value that is not
    /// finite is left out whole.
    fn row(&mut self, x: impl Fn(usize, usize) -> f32, y: impl Fn(usize) -> f32) {
        let (n, w) = (self.units, self.width);
        let f = w * (self.lags + 1);
        for lag in 0..=self.lags {
            for p in 0..w {
                self.row_x[lag * w + p] = f64::from(x(lag, p));
            }
        }
        for u in 0..n {
            self.row_y[u] = f64::from(y(u));
        }
        if !self.row_x.iter().chain(&self.row_y).all(|v| v.is_finite()) {
            return;
        }
        self.rows += 1.0;
        for i in 0..f {
            let xi = self.row_x[i];
            self.sx[i] += xi;
            for j in i..f {
                self.sxx[i * f + j] += xi * self.row_x[j];
            }
            for u in 0..n {
                self.sxy[i * n + u] += xi * self.row_y[u];
            }
        }
        for u in 0..n {
            self.sy[u] += self.row_y[u];
        }
    }

    fn finish(self) -> Moments {
        let (n, f) = (self.units, self.width * (self.lags + 1));
        let r = self.rows.max(1.0);
        let mean_x: Vec<f64> = self.sx.iter().map(|s| s / r).collect();
        let mean_y: Vec<f64> = self.sy.iter().map(|s| s / r).collect();
        let mut cov_xx = vec![0.0; f * f];
        for i in 0..f {
            for j in i..f {
                let c = self.sxx[i * f + j] / r - mean_x[i] * mean_x[j];
                cov_xx[i * f + j] = c;
                cov_xx[j * f + i] = c;
            }
        }
        let mut cov_xy = vec![0.0; f * n];
        for i in 0..f {
            for u in 0..n {
                cov_xy[i * n + u] = self.sxy[i * n + u] / r - mean_x[i] * mean_y[u];
            }
        }
        Moments {
            units: n,
            width: self.width,
            lags: self.lags,
            rows: self.rows,
            mean_x,
            mean_y,
            cov_xx,
            cov_xy,
        }
    }
}
