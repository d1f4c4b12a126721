//! The baselines' predictions for one evaluation batch, in the form the
//! runtime's evaluation scores (`run::eval`): the same masks, drawn from the
//! same keys, the prediction in the model's output space (a log-rate for a
//! Poisson loss), and the loss the experiment's loss would give it.

use std::collections::HashMap;

use super::linalg::{cholesky, solve_factored};
use super::setup::{LossKind, Setup};
use super::stats::{shape, Moments};
use crate::base::host::HostTensor;
use crate::dataset::loader::Batch;
use crate::diagnostics::{Error, ErrorKind};
use crate::run::backend::{EvalOutcome, Prediction};
use crate::run::mask;

/// Above this many predictors (the visible units and their lags), one
/// exact ridge solve per set of visible predictors costs too much: entries
/// masked at random give every step of every window its own set, and a
/// solve over a thousand predictors costs a billion operations. Larger
/// models are fitted once per unit over every predictor but the unit's
/// own at the same step, and a hidden predictor counts at its training
/// mean (`Ridge::predict_imputed`).
const EXACT_MAX: usize = 256;

/// The smallest rate a Poisson loss is given: a baseline may predict zero
/// or less where the model's `exp` cannot.
const MIN_RATE: f64 = 1e-6;

/// A baseline and its setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Each unit's mean over the training windows.
    Mean,
    /// A Gaussian-weighted average of the unit's own visible values at the
    /// other steps of the window, `sigma` in steps.
    Smooth { sigma: f64 },
    /// Ridge regression from the visible values of the window at the same
    /// step and `lags` steps before, with penalty `lambda` relative to the
    /// predictors' mean variance.
    Ridge { lags: usize, lambda: f64 },
    /// Ridge regression of each unit on the stimulus and behaviour at the
    /// same step and `covariates::LAGS` steps before (`covariates.rs`),
    /// penalty `lambda` as for `Ridge`.
    Covariates { lambda: f64 },
}

/// What the baselines learned, per session: moments for lags 0 and up.
pub struct Fitted {
    /// `by_lags[l][session]`: `None` when the session has no training
    /// windows.
    pub by_lags: Vec<Vec<Option<Moments>>>,
    /// Per session, the moments on the stimulus and behaviour; empty when
    /// the experiment has none.
    pub covariates: Vec<Option<Moments>>,
}

/// Predicts one batch with `method`.
pub fn predict(
    setup: &Setup,
    fitted: &Fitted,
    method: Method,
    batch: &Batch,
    key: u64,
) -> Result<EvalOutcome, Error> {
    let lags = match method {
        Method::Ridge { lags, .. } => lags,
        _ => 0,
    };
    let moments = match method {
        Method::Covariates { .. } => Some(&fitted.covariates),
        _ => fitted.by_lags.get(lags),
    };
    let m = moments
        .and_then(|s| s.get(batch.session))
        .and_then(Option::as_ref)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "session {} has no training windows to fit a baseline on",
                    batch.session
                ),
            )
        })?;
    let y = input(batch, setup.target)?;
    let x = input(
        batch,
        setup.masked.as_ref().map_or(setup.target, |k| k.input),
    )?;
    let [b, t, n] = shape(y)?;
    if shape(x)? != [b, t, n] || m.units != n {
        return Err(Error::new(
            ErrorKind::Mismatch,
            format!(
                "`{}` is {:?}, the values the model sees {:?}, and the training windows had {} units",
                setup.name, y.shape, x.shape, m.units
            ),
        ));
    }
    let hidden = hidden(setup, key, [b, t, n]);
    let visible =
        |w: usize, s: usize, u: usize| hidden.as_ref().is_none_or(|h| !h[(w * t + s) * n + u]);
    let scored =
        |w: usize, s: usize, u: usize| hidden.as_ref().is_none_or(|h| h[(w * t + s) * n + u]);
    let same_values = setup
        .masked
        .as_ref()
        .is_none_or(|k| k.input == setup.target);
    let covariates = match method {
        Method::Covariates { .. } => Some(super::covariates::features(setup, batch, t)?),
        _ => None,
    };
    let mut solver = Ridge::new(m);
    let mut pred = vec![0f32; b * t * n];
    for w in 0..b {
        for s in 0..t {
            for u in 0..n {
                let i = (w * t + s) * n + u;
                let p = if !scored(w, s, u) {
                    m.mean_y[u]
                } else {
                    match method {
                        Method::Mean => m.mean_y[u],
                        Method::Smooth { sigma } => {
                            let mut sum = 0.0;
                            let mut weight = 0.0;
                            for s2 in (0..t).filter(|&s2| s2 != s && visible(w, s2, u)) {
                                let d = s2 as f64 - s as f64;
                                let k = (-d * d / (2.0 * sigma * sigma)).exp();
                                sum += k * f64::from(x.data[(w * t + s2) * n + u]);
                                weight += k;
                            }
                            // The unit's training mean counts as one more
                            // observation of weight 1, so a window with
                            // little of the unit visible (or none) leans on
                            // it, and a rate is never smoothed to zero.
                            let smoothed = (sum + m.mean_x[u]) / (weight + 1.0);
                            if !smoothed.is_finite() {
                                m.mean_y[u]
                            } else if same_values {
                                smoothed
                            } else {
                                // The smoothed values of what the model
                                // sees, mapped to the target by the unit's
                                // regression on the training windows.
                                let var = m.cov_xx[u * m.features() + u];
                                let slope = if var > 0.0 {
                                    m.cov_xy[u * n + u] / var
                                } else {
                                    0.0
                                };
                                m.mean_y[u] + slope * (smoothed - m.mean_x[u])
                            }
                        }
                        Method::Ridge { lambda, .. } => {
                            let mut features = Vec::new();
                            let mut values = Vec::new();
                            for lag in 0..=lags.min(s) {
                                for u2 in 0..n {
                                    if visible(w, s - lag, u2) {
                                        features.push(lag * n + u2);
                                        values.push(f64::from(x.data[(w * t + s - lag) * n + u2]));
                                    }
                                }
                            }
                            if m.features() > EXACT_MAX {
                                solver.predict_imputed(u, &features, &values, lambda)
                            } else {
                                solver.predict(u, &features, &values, lambda)
                            }
                        }
                        Method::Covariates { lambda } => {
                            let (x, width) = covariates.as_ref().ok_or_else(|| {
                                Error::internal("no covariates for their baseline")
                            })?;
                            let mut features = Vec::new();
                            let mut values = Vec::new();
                            for lag in 0..=m.lags.min(s) {
                                for p in 0..*width {
                                    features.push(lag * width + p);
                                    values.push(f64::from(x[(w * t + s - lag) * width + p]));
                                }
                            }
                            solver.predict(u, &features, &values, lambda)
                        }
                    }
                };
                pred[i] = p as f32;
            }
        }
    }
    Ok(outcome(setup, y, pred, hidden, [b, t, n]))
}

/// The entries the model is scored on, `[B, T, N]`, true where hidden: the
/// masked tokenizer's draw for this batch, broadcast over the dims it was
/// not drawn over. `None` when nothing is masked.
fn hidden(setup: &Setup, key: u64, [b, t, n]: [usize; 3]) -> Option<Vec<bool>> {
    let k = setup.masked.as_ref()?;
    let size = |d: &String| if *d == setup.dims[0] { t } else { n };
    let sizes: Vec<usize> = k.drawn.iter().map(size).collect();
    let drawn = mask::draw(mask::application_key(key), 0, b, k.ratio, &sizes);
    let p: usize = sizes.iter().product();
    let mut full = vec![false; b * t * n];
    for w in 0..b {
        for s in 0..t {
            for u in 0..n {
                // The row-major position among the drawn dims.
                let q = k.drawn.iter().fold(0, |q, d| {
                    let (i, len) = if *d == setup.dims[0] { (s, t) } else { (u, n) };
                    q * len + i
                });
                full[(w * t + s) * n + u] = drawn[w * p + q];
            }
        }
    }
    Some(full)
}

/// The prediction as the run reports it, and its loss.
fn outcome(
    setup: &Setup,
    y: &HostTensor,
    pred: Vec<f32>,
    hidden: Option<Vec<bool>>,
    [b, t, n]: [usize; 3],
) -> EvalOutcome {
    let log_rate = matches!(setup.loss, LossKind::Poisson { log_rate: true });
    let out: Vec<f32> = if log_rate {
        pred.iter()
            .map(|&p| f64::from(p).max(MIN_RATE).ln() as f32)
            .collect()
    } else {
        pred
    };
    let mut sum = 0.0;
    let mut count = 0.0;
    for (i, (&o, &target)) in out.iter().zip(&y.data).enumerate() {
        if hidden.as_ref().is_some_and(|h| !h[i]) {
            continue;
        }
        let (o, target) = (f64::from(o), f64::from(target));
        sum += match setup.loss {
            LossKind::Poisson { log_rate: true } => o.exp() - target * o,
            LossKind::Poisson { log_rate: false } => o - target * (o.max(0.0) + 1e-8).ln(),
            LossKind::Mse => (o - target) * (o - target),
            LossKind::Other => f64::NAN,
        };
        count += 1.0;
    }
    EvalOutcome {
        loss: sum / f64::max(count, 1.0),
        predictions: vec![Prediction {
            name: setup.name.clone(),
            pred: HostTensor {
                shape: vec![b, t, n],
                data: out,
            },
            target: y.clone(),
            mask: hidden,
            log_rate,
        }],
    }
}

fn input(batch: &Batch, i: usize) -> Result<&HostTensor, Error> {
    batch
        .inputs
        .get(i)
        .ok_or_else(|| Error::internal(format!("the batch has no input {i}")))
}

/// Ridge factorisations by set of visible predictors: every hidden unit
/// of a step has the same visible predictors (a whole-unit mask leaves the
/// same few sets in every window), so each set is factored once and solved
/// for each unit.
struct Ridge<'m> {
    m: &'m Moments,
    factored: HashMap<(Vec<usize>, u64), Option<Vec<f64>>>,
    /// Per unit and penalty, the coefficients over every predictor but
    /// the unit's own at the same step (`predict_imputed`).
    imputed: HashMap<(usize, u64), Option<Vec<f64>>>,
}

impl<'m> Ridge<'m> {
    fn new(m: &'m Moments) -> Ridge<'m> {
        Ridge {
            m,
            factored: HashMap::new(),
            imputed: HashMap::new(),
        }
    }

    /// Unit `u`'s prediction from the visible predictors `features` with
    /// `values`, by the ridge regression of `u` on every predictor but its
    /// own value at the same step (which is hidden wherever `u` is
    /// scored), a hidden predictor counting at its training mean. One
    /// factorisation per penalty serves every unit: with `M` the inverse of
    /// the penalised covariance over all predictors and `j` the unit's own,
    /// the solution without `j` is `M b - M[:, j] (M b)_j / M_jj` for the
    /// unit's covariances `b` with `b_j` set to zero.
    fn predict_imputed(
        &mut self,
        u: usize,
        features: &[usize],
        values: &[f64],
        lambda: f64,
    ) -> f64 {
        let m = self.m;
        let f = m.features();
        let all: Vec<usize> = (0..f).collect();
        let Some(l) = self
            .factored
            .entry((all, lambda.to_bits()))
            .or_insert_with_key(|(all, _)| penalised(m, all, lambda))
        else {
            return m.mean_y[u];
        };
        let beta = self
            .imputed
            .entry((u, lambda.to_bits()))
            .or_insert_with(|| {
                // The unit's own feature at lag 0 (features are lag-major).
                let j = u;
                let mut b: Vec<f64> = (0..f).map(|i| m.cov_xy[i * m.units + u]).collect();
                *b.get_mut(j)? = 0.0;
                let mb = solve_factored(l, &b);
                let mut e = vec![0.0; f];
                e[j] = 1.0;
                let mj = solve_factored(l, &e);
                let t = mb[j] / mj[j];
                Some(
                    (0..f)
                        .map(|i| if i == j { 0.0 } else { mb[i] - mj[i] * t })
                        .collect(),
                )
            });
        let Some(beta) = beta else {
            return m.mean_y[u];
        };
        m.mean_y[u]
            + features
                .iter()
                .zip(values)
                .map(|(&i, v)| beta[i] * (v - m.mean_x[i]))
                .sum::<f64>()
    }

    /// Unit `u`'s prediction from the predictors `features` (indices into
    /// the moments' features) with `values`; its mean when they cannot be
    /// solved for.
    fn predict(&mut self, u: usize, features: &[usize], values: &[f64], lambda: f64) -> f64 {
        let m = self.m;
        let k = features.len();
        let factor = self
            .factored
            .entry((features.to_vec(), lambda.to_bits()))
            .or_insert_with(|| {
                if k == 0 {
                    None
                } else {
                    penalised(m, features, lambda)
                }
            });
        let Some(l) = factor else {
            return m.mean_y[u];
        };
        let rhs: Vec<f64> = features
            .iter()
            .map(|&i| m.cov_xy[i * m.units + u])
            .collect();
        let beta = solve_factored(l, &rhs);
        m.mean_y[u]
            + beta
                .iter()
                .zip(features.iter().zip(values))
                .map(|(b, (&i, v))| b * (v - m.mean_x[i]))
                .sum::<f64>()
    }
}

/// The Cholesky factor of the covariance of `features` with the ridge
/// penalty added; the penalty is relative to the predictors' mean
/// variance, so one grid suits data of any scale.
fn penalised(m: &Moments, features: &[usize], lambda: f64) -> Option<Vec<f64>> {
    let (f, k) = (m.features(), features.len());
    let scale = features.iter().map(|&i| m.cov_xx[i * f + i]).sum::<f64>() / k.max(1) as f64;
    let ridge = lambda * scale.max(f64::MIN_POSITIVE);
    let mut a = vec![0.0; k * k];
    for (r, &i) in features.iter().enumerate() {
        for (c, &j) in features.iter().enumerate() {
            a[r * k + c] = m.cov_xx[i * f + j] + if r == c { ridge } else { 0.0 };
        }
    }
    cholesky(&a, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moments of 3 units with one lag (6 predictors) from a fixed
    /// covariance: a random symmetric positive-definite matrix.
    fn moments() -> Moments {
        let (n, f) = (3, 6);
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut r = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let x: Vec<f64> = (0..f * f).map(|_| r()).collect();
        let mut cov_xx = vec![0.0; f * f];
        for i in 0..f {
            for j in 0..f {
                cov_xx[i * f + j] = (0..f).map(|k| x[i * f + k] * x[j * f + k]).sum::<f64>()
                    + if i == j { 0.1 } else { 0.0 };
            }
        }
        // Unit variances, so that the penalty (relative to the predictors'
        // mean variance) is the same over any subset of them.
        let d: Vec<f64> = (0..f).map(|i| cov_xx[i * f + i].sqrt()).collect();
        for i in 0..f {
            for j in 0..f {
                cov_xx[i * f + j] /= d[i] * d[j];
            }
        }
        Moments {
            units: n,
            width: n,
            lags: 1,
            rows: 100.0,
            mean_x: (0..f).map(|_| r()).collect(),
            mean_y: (0..n).map(|_| r()).collect(),
            cov_xx,
            cov_xy: (0..f * n).map(|_| r()).collect(),
        }
    }

    #[test]
    fn the_one_factorisation_solution_is_the_ridge_without_the_units_own_value() {
        // With every predictor but the unit's own visible, the imputed
        // prediction is exactly the ridge over those predictors.
        let m = moments();
        let mut ridge = Ridge::new(&m);
        for u in 0..3 {
            let features: Vec<usize> = (0..6).filter(|&i| i != u).collect();
            let values: Vec<f64> = features.iter().map(|&i| 0.3 * i as f64 - 0.4).collect();
            for lambda in [1e-3, 1.0] {
                let exact = ridge.predict(u, &features, &values, lambda);
                let imputed = ridge.predict_imputed(u, &features, &values, lambda);
                assert!(
                    (exact - imputed).abs() < 1e-9,
                    "unit {u}: {exact} against {imputed}"
                );
            }
        }
    }
}
