//! How much of the simulation's known structure a trained model recovers.
//!
//! On synthetic data the noise-free response of every neuron is known
//! (`docs/synthetic.md`). After training, each neuron of the evaluated
//! windows is **held out**: all of its tokens are masked (the other
//! neurons' masks drawn as in training), so the model must predict it from
//! the stimulus, the behaviour, the other neurons and what it learned about
//! that neuron, not from the neuron's own neighbouring values. The
//! held-out predictions are then compared with:
//!
//! - the recorded data (`corr_data`) and the noise-free truth
//!   (`corr_truth`), per neuron, against the noise ceiling (`ceiling`:
//!   the correlation of the recorded data with the truth, what a model that
//!   predicted the truth exactly would reach against the data);
//! - the same with the session's mean over neurons taken out of both sides
//!   at every time point (`corr_specific`): shared drive (running, the
//!   stimulus's overall contrast) cancels, leaving what is particular to
//!   each neuron, its own receptive field and gain;
//! - every neuron's truth in the same session, on those particular parts:
//!   a neuron is **identified** when its prediction correlates best with
//!   its own truth. Chance is one in the session's neuron count;
//! - the simulation's behavioural gains: across neurons, how each held-out
//!   prediction follows the running speed against the neuron's true
//!   running gain (`running_gain`), beside the same for the noise-free
//!   truth (`running_gain_truth`, the most these windows can show).
//!
//! The truth goes through the modality's fitted transforms, so both sides
//! are in the space the model predicts. Inputs without a truth (real
//! recordings) get no report.

use serde::Serialize;

use super::backend::{Backend, HoldOut, MicroBatch};
use crate::dataset::loader::Dataset;
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::Split;
use crate::ir::Graph;
use crate::plan::program::RankProgram;

/// The report, written to `recovery.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recovery {
    /// The prediction held out (`response`) and the dim its units are.
    pub prediction: String,
    pub unit_dim: String,
    pub sessions: usize,
    /// Neurons scored, over all sessions.
    pub neurons: usize,
    /// Time points per neuron, summed over the evaluated windows.
    pub samples: usize,
    /// Means over neurons.
    pub corr_truth: f64,
    pub corr_data: f64,
    pub ceiling: f64,
    /// The same with the session's mean over neurons taken out of both
    /// sides at every time point: what is particular to each neuron.
    pub corr_specific: f64,
    /// The fraction of neurons identified (on those particular parts), and
    /// chance.
    pub identified: f64,
    pub chance: f64,
    /// Across neurons: the correlation between how each held-out
    /// prediction follows the running speed and the neuron's true running
    /// gain; and the same for the noise-free truth, the best the window's
    /// data allows. `None` without a simulated running speed.
    pub running_gain: Option<f64>,
    pub running_gain_truth: Option<f64>,
}

/// What to evaluate: `batches_per_session` batches of `batch` windows of
/// `split` in each session, masks keyed by `seed`.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub split: Split,
    pub batch: usize,
    pub batches_per_session: usize,
    pub seed: u64,
}

/// One neuron's series: held-out prediction, recorded data, truth.
#[derive(Default, Clone)]
struct Series {
    pred: Vec<f64>,
    data: Vec<f64>,
    truth: Vec<f64>,
    /// The running speed at the same time points, and the neuron's true
    /// running gain, when the simulation gives them.
    speed: Vec<f64>,
    gain: Option<f64>,
}

/// Holds out every neuron of the evaluated windows in turn; `None` when
/// no prediction has a noise-free truth.
pub fn measure(
    backend: &mut dyn Backend,
    graph: &Graph,
    program: &RankProgram,
    dataset: &Dataset,
    settings: Settings,
) -> Result<Option<Recovery>, Error> {
    let batches = dataset.epoch_batches(settings.split, settings.batch, settings.seed, 0);
    // Evaluation batches are in order per session: keep the first few of
    // each session, so that every session is scored.
    let mut taken: Vec<Vec<usize>> = Vec::new();
    let mut per_session = std::collections::BTreeMap::new();
    for ids in batches {
        let Some(w) = ids.first().and_then(|&i| dataset.window(settings.split, i)) else {
            continue;
        };
        let k = per_session.entry(w.session).or_insert(0usize);
        if *k < settings.batches_per_session {
            *k += 1;
            taken.push(ids);
        }
    }
    let Some((output, input)) = graph.outputs.iter().find_map(|o| {
        let i = graph.inputs.iter().position(|i| i.name == o.name)?;
        Some((o, i))
    }) else {
        return Ok(None);
    };
    let Some(unit_dim) = output.ty.dims.last().map(|d| d.name.to_string()) else {
        return Ok(None);
    };
    // session -> neuron -> series
    let mut series: std::collections::BTreeMap<usize, Vec<Series>> = Default::default();
    for (b, ids) in taken.iter().enumerate() {
        let Some(clean) = dataset.clean_batch(input, settings.split, ids)? else {
            return Ok(None);
        };
        let batch = dataset.batch(settings.split, ids)?;
        let running = dataset.running(input, settings.split, ids);
        let n = *clean.shape.last().unwrap_or(&0);
        let neurons = series.entry(batch.session).or_default();
        neurons.resize(n, Series::default());
        let key = crate::base::rng::derive(settings.seed, b as u64);
        for (j, s) in neurons.iter_mut().enumerate() {
            let hold = HoldOut {
                dim: unit_dim.clone(),
                index: j,
            };
            let out = backend.evaluate(
                program,
                MicroBatch {
                    session: batch.session,
                    inputs: &batch.inputs,
                    first: 0,
                },
                key,
                Some(&hold),
            )?;
            let Some(p) = out.predictions.iter().find(|p| p.name == output.name) else {
                return Ok(None);
            };
            if p.pred.shape != clean.shape || p.target.shape != clean.shape {
                return Err(Error::new(
                    ErrorKind::Mismatch,
                    format!(
                        "prediction `{}` is {:?}, its target {:?} and the truth {:?}",
                        p.name, p.pred.shape, p.target.shape, clean.shape
                    ),
                ));
            }
            let column = |v: &[f32]| -> Vec<f64> {
                v.iter()
                    .skip(j)
                    .step_by(n.max(1))
                    .map(|&x| f64::from(x))
                    .collect()
            };
            s.pred.extend(column(&p.pred.data));
            s.data.extend(column(&p.target.data));
            s.truth.extend(column(&clean.data));
            if let Some(r) = &running {
                s.speed.extend(&r.speed);
                s.gain = r.gains.get(j).copied();
            }
        }
    }
    Ok(summarise(&output.name, &unit_dim, &series))
}

/// The report from every session's neurons.
fn summarise(
    prediction: &str,
    unit_dim: &str,
    series: &std::collections::BTreeMap<usize, Vec<Series>>,
) -> Option<Recovery> {
    let (mut truth, mut data, mut ceiling, mut specific) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut identified, mut chance, mut neurons, mut samples) = (0usize, 0.0, 0usize, 0usize);
    for neurons_of in series.values() {
        let n = neurons_of.len();
        let own = deviations(neurons_of);
        for (j, s) in neurons_of.iter().enumerate() {
            neurons += 1;
            samples = samples.max(s.pred.len());
            chance += 1.0 / n as f64;
            truth.extend(pearson(&s.pred, &s.truth));
            data.extend(pearson(&s.pred, &s.data));
            ceiling.extend(pearson(&s.data, &s.truth));
            specific.extend(pearson(&own[j].pred, &own[j].truth));
            if best_match(&own[j].pred, &own) == Some(j) {
                identified += 1;
            }
        }
    }
    if neurons == 0 {
        return None;
    }
    // Behavioural gain: how each neuron's prediction (and its truth)
    // follows the running speed, against its true running gain.
    let (mut by_pred, mut by_truth, mut gains) = (Vec::new(), Vec::new(), Vec::new());
    for s in series.values().flatten() {
        let (Some(g), Some(p), Some(t)) = (
            s.gain,
            pearson(&s.pred, &s.speed),
            pearson(&s.truth, &s.speed),
        ) else {
            continue;
        };
        gains.push(g);
        by_pred.push(p);
        by_truth.push(t);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Some(Recovery {
        prediction: prediction.to_string(),
        unit_dim: unit_dim.to_string(),
        sessions: series.len(),
        neurons,
        samples,
        corr_truth: mean(&truth),
        corr_data: mean(&data),
        ceiling: mean(&ceiling),
        corr_specific: mean(&specific),
        identified: identified as f64 / neurons as f64,
        chance: chance / neurons as f64,
        running_gain: pearson(&by_pred, &gains),
        running_gain_truth: pearson(&by_truth, &gains),
    })
}

/// Each neuron's prediction and truth less the session's mean over
/// neurons at the same time point: shared drive (running, the stimulus's
/// overall contrast) cancels, and what remains is particular to the neuron.
fn deviations(neurons: &[Series]) -> Vec<Series> {
    let len = neurons
        .iter()
        .map(|s| s.pred.len().min(s.truth.len()))
        .min()
        .unwrap_or(0);
    let n = neurons.len().max(1) as f64;
    let mean_of = |f: &dyn Fn(&Series) -> &Vec<f64>| -> Vec<f64> {
        (0..len)
            .map(|t| neurons.iter().map(|s| f(s)[t]).sum::<f64>() / n)
            .collect()
    };
    let (mp, mt) = (mean_of(&|s| &s.pred), mean_of(&|s| &s.truth));
    neurons
        .iter()
        .map(|s| Series {
            pred: (0..len).map(|t| s.pred[t] - mp[t]).collect(),
            truth: (0..len).map(|t| s.truth[t] - mt[t]).collect(),
            data: Vec::new(),
            speed: Vec::new(),
            gain: None,
        })
        .collect()
}

/// The neuron whose truth `pred` correlates with best.
fn best_match(pred: &[f64], neurons: &[Series]) -> Option<usize> {
    neurons
        .iter()
        .enumerate()
        .filter_map(|(k, s)| pearson(pred, &s.truth).map(|r| (k, r)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

/// Pearson's correlation; `None` for fewer than 2 points, a constant
/// series or non-finite values.
fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let (ma, mb) = (
        a[..n].iter().sum::<f64>() / n as f64,
        b[..n].iter().sum::<f64>() / n as f64,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a[..n].iter().zip(&b[..n]) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    let r = sab / (saa * sbb).sqrt();
    r.is_finite().then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn neuron(pred: Vec<f64>, truth: Vec<f64>) -> Series {
        Series {
            data: truth.iter().map(|t| t + 0.5).collect(),
            pred,
            truth,
            speed: Vec::new(),
            gain: None,
        }
    }

    #[test]
    fn pearson_of_known_series() {
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]), Some(1.0));
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0], &[1.0]), None);
    }

    /// Three neurons: a strong shared signal plus a pattern of their own.
    fn session(pred: impl Fn(usize, &[f64], &[f64]) -> Vec<f64>) -> BTreeMap<usize, Vec<Series>> {
        let shared = [0.0, 3.0, 1.0, 4.0, 0.0, 3.0, 1.0, 4.0];
        let own = [
            [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0],
        ];
        let neurons = (0..3)
            .map(|k| {
                let truth: Vec<f64> = shared.iter().zip(&own[k]).map(|(s, o)| s + o).collect();
                neuron(pred(k, &shared, &own[k]), truth)
            })
            .collect();
        BTreeMap::from([(0, neurons)])
    }

    #[test]
    fn predicting_the_truth_identifies_every_neuron() {
        let r = summarise(
            "response",
            "N",
            &session(|_, s, o| s.iter().zip(o).map(|(a, b)| 2.0 * (a + b) + 1.0).collect()),
        )
        .unwrap();
        assert_eq!((r.neurons, r.sessions, r.samples), (3, 1, 8));
        assert!((r.corr_truth - 1.0).abs() < 1e-12);
        assert!((r.corr_specific - 1.0).abs() < 1e-12);
        assert!((r.identified - 1.0).abs() < 1e-12);
        assert!((r.chance - 1.0 / 3.0).abs() < 1e-12);
        // The recorded data is the truth shifted: a ceiling of 1.
        assert!((r.ceiling - 1.0).abs() < 1e-12);
    }

    #[test]
    fn predicting_only_the_shared_signal_identifies_nobody() {
        let r = summarise("response", "N", &session(|_, s, _| s.to_vec())).unwrap();
        // The shared signal explains most of each truth...
        assert!(r.corr_truth > 0.8, "{r:?}");
        // ...but nothing particular to any neuron.
        assert_eq!(r.identified, 0.0);
        assert_eq!(r.corr_specific, 0.0);
    }

    #[test]
    fn running_gain_compares_speed_following_with_the_true_gains() {
        let speed: Vec<f64> = (0..8).map(f64::from).collect();
        let own = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
        let gains = [-0.5, 0.0, 0.5, 1.0];
        let build = |sign: f64| {
            let neurons = gains
                .iter()
                .map(|&g| {
                    let truth: Vec<f64> = speed.iter().zip(&own).map(|(v, o)| g * v + o).collect();
                    let pred = speed
                        .iter()
                        .zip(&own)
                        .map(|(v, o)| sign * g * v + o)
                        .collect();
                    Series {
                        speed: speed.clone(),
                        gain: Some(g),
                        ..neuron(pred, truth)
                    }
                })
                .collect();
            BTreeMap::from([(0, neurons)])
        };
        let r = summarise("response", "N", &build(1.0)).unwrap();
        assert!(r.running_gain.unwrap() > 0.9, "{r:?}");
        assert!(r.running_gain_truth.unwrap() > 0.9, "{r:?}");
        // A model with every gain's sign flipped follows speed the wrong way.
        let r = summarise("response", "N", &build(-1.0)).unwrap();
        assert!(r.running_gain.unwrap() < -0.9, "{r:?}");
        // Without a simulated speed there is no figure.
        let r = summarise("response", "N", &session(|_, s, _| s.to_vec())).unwrap();
        assert_eq!(r.running_gain, None);
    }
}
