//! Built-in baselines, fitted and scored exactly as `enigma run` evaluates
//! the model (`enigma baseline FILE`, `docs/running.md`).
//!
//! A model of neural data is only worth its training if it predicts better
//! than what a scientist would try first. Each baseline here predicts the
//! entries the model is scored on (the masked tokenizer's hidden entries,
//! drawn from the same keys, `run::mask`) from what the model sees (the
//! visible entries of the same windows), and is scored by the same code
//! (`run::eval::score`): the first `eval.batches` batches of each split,
//! the experiment's loss and the per-neuron correlation with its chance
//! level.
//!
//! - **unit mean**: each unit's mean over the training windows;
//! - **smoothing**: a Gaussian-weighted average of the unit's own visible
//!   values at the window's other steps (not when whole units are hidden);
//! - **ridge**: a ridge regression of each unit on the values visible in
//!   the window at the same step, and with one lag, solved for whichever
//!   predictors each entry has;
//! - **stimulus/behavior**: a ridge regression of each unit on the other
//!   inputs of the model along the target's time (the video, the
//!   behaviour), pooled to the target's steps, at the same step and two
//!   lags (`covariates.rs`).
//!
//! A setting (the width, the penalty) is chosen on the validation split, as
//! the model's would be; the test split is scored once, with that setting.
//! Everything is fitted per session on the training windows.

mod covariates;
mod linalg;
mod predict;
mod setup;
mod stats;

use std::fmt::Write as _;

pub use predict::Method;
pub use setup::{LossKind, Setup};

use crate::dataset::loader::Dataset;
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::Split;
use crate::ir::Experiment;
use crate::run::eval::{eval_batches, score, Scores};
use predict::{predict, Fitted};

/// Widths of the smoothing, in steps.
const SIGMAS: [f64; 4] = [0.5, 1.0, 2.0, 4.0];
/// Ridge penalties, relative to the predictors' mean variance.
const LAMBDAS: [f64; 6] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0];

/// One baseline's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub name: &'static str,
    /// The setting chosen on the validation split (`sigma 2 steps`).
    pub setting: String,
    pub method: Method,
    pub val: Scores,
    pub test: Scores,
}

/// Every baseline that applies, and why the others do not.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub setup: Setup,
    /// Windows per evaluation batch, and batches per split.
    pub batch: usize,
    pub batches: u64,
    pub rows: Vec<Row>,
    pub skipped: Vec<(&'static str, String)>,
}

impl Report {
    /// The row with the best validation correlation.
    pub fn best(&self) -> Option<&Row> {
        self.rows
            .iter()
            .filter(|r| r.val.corr.is_some())
            .max_by(|a, b| {
                a.val
                    .corr
                    .partial_cmp(&b.val.corr)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    }
}

/// Fits and scores the baselines of `x` on its data.
pub fn baselines(x: &Experiment, ds: &Dataset) -> Result<Report, Error> {
    let config = x.train.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            "the experiment has no `train` block: the baselines are scored as its evaluation would be".to_string(),
        )
    })?;
    let setup = Setup::of(&x.graph)?;
    // The evaluation batch of one process: the step's batch over
    // accumulation (`run::train::StepShape::global_micro_batch`).
    let batch = (config.batch / config.accumulate.max(1)).max(1) as usize;
    let val = eval_batches(ds, Split::Val, batch, config.seed, config.eval_batches);
    let test = eval_batches(ds, Split::Test, batch, config.seed, config.eval_batches);
    let sessions = ds.sessions().len();
    let mut by_lags = Vec::new();
    for lags in 0..=1 {
        let mut per = Vec::with_capacity(sessions);
        for s in 0..sessions {
            per.push(stats::session_moments(ds, &setup, s, lags)?);
        }
        by_lags.push(per);
    }
    let mut covariates = Vec::new();
    let mut skipped = Vec::new();
    if setup.covariates.is_empty() {
        skipped.push((
            "stimulus/behavior",
            "the experiment reads no stimulus or behaviour series beside the neural ones"
                .to_string(),
        ));
    } else {
        for s in 0..sessions {
            match stats::covariate_moments(ds, &setup, s) {
                Ok(m) => covariates.push(m),
                Err(e) => {
                    skipped.push(("stimulus/behavior", e.message));
                    covariates.clear();
                    break;
                }
            }
        }
    }
    let fitted = Fitted {
        by_lags,
        covariates,
    };

    let mut families: Vec<(&'static str, Vec<Method>)> = vec![("unit mean", vec![Method::Mean])];
    if setup.masked.is_none() {
        let why = "nothing is masked: the model sees every entry it is scored on".to_string();
        skipped.push(("smoothing", why.clone()));
        skipped.push(("ridge", why));
    } else {
        if setup.own_values_visible() {
            families.push((
                "smoothing",
                SIGMAS
                    .iter()
                    .map(|&sigma| Method::Smooth { sigma })
                    .collect(),
            ));
        } else {
            skipped.push((
                "smoothing",
                "the mask hides whole units, so a unit's own values are never visible".to_string(),
            ));
        }
        for (name, lags) in [("ridge, same step", 0), ("ridge, one lag", 1)] {
            families.push((
                name,
                LAMBDAS
                    .iter()
                    .map(|&lambda| Method::Ridge { lags, lambda })
                    .collect(),
            ));
        }
    }

    if !fitted.covariates.is_empty() {
        families.push((
            "stimulus/behavior",
            LAMBDAS
                .iter()
                .map(|&lambda| Method::Covariates { lambda })
                .collect(),
        ));
    }
    let run = |split: Split, taken: &[Vec<usize>], method: Method| {
        let mut needs = setup.inputs();
        if let Method::Covariates { .. } = method {
            needs.extend(&setup.covariates);
        }
        score(ds, split, taken, config.seed, Some(&needs), |b, key| {
            predict(&setup, &fitted, method, b, key)
        })
    };
    let mut rows = Vec::new();
    for (name, methods) in families {
        let mut best: Option<(Method, Scores)> = None;
        let mut failed = None;
        for method in methods {
            match run(Split::Val, &val, method) {
                Ok(s) => {
                    if best.as_ref().is_none_or(|(_, b)| better(&s, b)) {
                        best = Some((method, s));
                    }
                }
                Err(e) => failed = Some(e.message),
            }
        }
        let Some((method, val_scores)) = best else {
            skipped.push((
                name,
                failed.unwrap_or_else(|| "no setting could be scored".into()),
            ));
            continue;
        };
        let test_scores = match run(Split::Test, &test, method) {
            Ok(s) => s,
            Err(e) => {
                skipped.push((name, e.message));
                continue;
            }
        };
        rows.push(Row {
            name,
            setting: setting(method),
            method,
            val: val_scores,
            test: test_scores,
        });
    }
    Ok(Report {
        setup,
        batch,
        batches: config.eval_batches,
        rows,
        skipped,
    })
}

/// Whether `a` is a better validation result than `b`: the higher
/// correlation, or the lower loss when neither has one.
fn better(a: &Scores, b: &Scores) -> bool {
    match (a.corr, b.corr) {
        (Some(x), Some(y)) => x > y,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => a.loss < b.loss,
    }
}

fn setting(m: Method) -> String {
    match m {
        Method::Mean => String::new(),
        Method::Smooth { sigma } => format!("sigma {sigma} steps"),
        Method::Ridge { lambda, .. } | Method::Covariates { lambda } => {
            format!("penalty {lambda:e}")
        }
    }
}

/// The report as a table.
pub fn render(r: &Report) -> String {
    let fig = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    let loss = |v: f64| {
        if v.is_finite() {
            format!("{v:.4}")
        } else {
            "n/a".to_string()
        }
    };
    let mut out = String::new();
    let scored = match &r.setup.masked {
        Some(m) => format!(
            "the {:.0}% of entries the masked tokenizer hides",
            m.ratio * 100.0
        ),
        None => "every entry".to_string(),
    };
    let windows = |f: fn(&Row) -> &Scores| r.rows.first().map_or(0, |row| f(row).windows);
    let _ = writeln!(
        out,
        "baselines for `{}`, scored as `enigma run` evaluates: the first {} batch(es) of up to {} windows of each split ({} validation and {} test windows), on {scored}",
        r.setup.name,
        r.batches,
        r.batch,
        windows(|row| &row.val),
        windows(|row| &row.test)
    );
    let _ = writeln!(
        out,
        "{:<18} {:<16} {:>10} {:>9} {:>8} {:>10} {:>9} {:>8}",
        "baseline", "setting", "val loss", "val corr", "chance", "test loss", "test corr", "chance"
    );
    for row in &r.rows {
        let _ = writeln!(
            out,
            "{:<18} {:<16} {:>10} {:>9} {:>8} {:>10} {:>9} {:>8}",
            row.name,
            row.setting,
            loss(row.val.loss),
            fig(row.val.corr),
            fig(row.val.chance),
            loss(row.test.loss),
            fig(row.test.corr),
            fig(row.test.chance)
        );
    }
    for (name, why) in &r.skipped {
        let _ = writeln!(out, "{name}: not applicable: {why}");
    }
    if let Some(best) = r.best() {
        let _ = writeln!(
            out,
            "best baseline on validation: {} {} (corr {})",
            best.name,
            best.setting,
            fig(best.val.corr)
        );
    }
    out
}
