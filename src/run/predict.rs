//! `enigma predict RUN_DIR --out FILE.npy`: the model's predictions for
//! every window of a split, as arrays a notebook loads with `numpy.load`.
//!
//! Each window is run forward from the run's newest checkpoint with the
//! masks `enigma eval` draws for it (the same key per batch), so the
//! predictions are the model's guesses of the entries its tokenizer hid:
//! the entries marked in the mask file are the held-out ones, and the
//! others were visible to the model. A prediction the loss reads as a log
//! rate (`poisson_nll`) is written as the rate, `exp` of it, in the units
//! of the target.
//!
//! For `--out preds.npy` it writes
//!
//! ```text
//! preds.npy          predictions, [windows, T, N] float32
//! preds.target.npy   the recorded values of the same entries
//! preds.mask.npy     true where the entry was hidden from the model (bool)
//! preds.json         the split, the checkpoint's step, the prediction's name
//!                    and shape, and each window's session and start time (s)
//! ```
//!
//! When the split's sessions differ in their neuron count, one set of files
//! per session is written (`preds.session-3.npy`, ...), each listed in the
//! JSON with its windows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::eval::eval_key;
use super::evaluate::{restore, Restored};
use super::session::{DeviceChoice, Runtime};
use crate::dataset::loader::{npy_bytes, Dataset};
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::Split;
use crate::ir::Experiment;
use crate::plan::report::Planned;
use crate::run::backend::{Backend, MicroBatch};

/// What the command line asks of `enigma predict`.
#[derive(Clone, Debug)]
pub struct PredictRequest {
    pub run_dir: PathBuf,
    pub split: Split,
    /// The predictions' file (`.npy`); the others are named after it.
    pub out: PathBuf,
    pub device: Option<DeviceChoice>,
}

/// What `enigma predict` wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Predicted {
    /// The step of the checkpoint that predicted.
    pub step: u64,
    pub windows: usize,
    /// Every file written, the JSON last.
    pub files: Vec<PathBuf>,
}

/// The predictions of one session's windows, in split order.
#[derive(Default)]
struct Collected {
    name: String,
    /// `[T, N]` of one window.
    shape: Vec<usize>,
    pred: Vec<f32>,
    target: Vec<f32>,
    mask: Vec<u8>,
    /// (window id in the split, start in seconds).
    windows: Vec<(usize, f64)>,
    /// The model's output is a log rate, written as the rate.
    log_rate: bool,
}

/// Predicts every window of `req.split` with the newest checkpoint of
/// `req.run_dir` and writes the files.
pub fn predict<R: Runtime>(
    runtime: &R,
    x: &Experiment,
    planned: &Planned,
    dataset: &Dataset,
    req: &PredictRequest,
) -> Result<Predicted, Error> {
    let Restored {
        mut backend,
        forward,
        config,
        step,
        batch,
    } = restore(
        runtime,
        x,
        planned,
        &req.run_dir,
        req.device,
        "enigma predict",
    )?;
    let taken = dataset.epoch_batches(req.split, batch, config.seed, 0);
    if taken.is_empty() {
        return Err(Error::new(
            ErrorKind::Window,
            format!("the {} split has no windows", req.split.name()),
        ));
    }
    let mut sessions: BTreeMap<usize, Collected> = BTreeMap::new();
    for (i, ids) in taken.iter().enumerate() {
        let b = dataset.batch_of(req.split, ids, None)?;
        let out = backend.evaluate(
            &forward,
            MicroBatch {
                session: b.session,
                inputs: &b.inputs,
                first: 0,
            },
            eval_key(config.seed, i),
            None,
        )?;
        let Some(p) = out.predictions.into_iter().next() else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "the model predicts no recorded modality (no `predict` has a target), so there is nothing to write",
            ));
        };
        let Some((&windows, shape)) = p.pred.shape.split_first() else {
            return Err(Error::internal(format!(
                "prediction `{}` is a scalar",
                p.name
            )));
        };
        if windows != ids.len() || p.target.shape != p.pred.shape {
            return Err(Error::new(
                ErrorKind::Mismatch,
                format!(
                    "prediction `{}` is {:?} for {} windows, and its target is {:?}",
                    p.name,
                    p.pred.shape,
                    ids.len(),
                    p.target.shape
                ),
            ));
        }
        let c = sessions.entry(b.session).or_default();
        if c.shape.is_empty() {
            c.name = p.name.clone();
            c.shape = shape.to_vec();
            c.log_rate = p.log_rate;
        }
        if p.log_rate {
            c.pred.extend(p.pred.data.iter().map(|v| v.exp()));
        } else {
            c.pred.extend_from_slice(&p.pred.data);
        }
        c.target.extend_from_slice(&p.target.data);
        match &p.mask {
            Some(m) => c.mask.extend(m.iter().map(|&h| u8::from(h))),
            None => c.mask.extend(std::iter::repeat_n(0u8, p.pred.data.len())),
        }
        for &id in ids {
            let start = dataset.window(req.split, id).map_or(f64::NAN, |w| w.start);
            c.windows.push((id, start));
        }
    }
    backend.finish();
    let log_rate = sessions.values().any(|c| c.log_rate);
    let same_shape = sessions
        .values()
        .map(|c| &c.shape)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == 1;
    let stem = stem_of(&req.out);
    let mut files = Vec::new();
    let mut parts = Vec::new();
    let groups: Vec<(Option<usize>, Vec<&Collected>, Vec<usize>)> = if same_shape {
        vec![(
            None,
            sessions.values().collect(),
            sessions.keys().copied().collect(),
        )]
    } else {
        sessions
            .iter()
            .map(|(s, c)| (Some(*s), vec![c], vec![*s]))
            .collect()
    };
    let mut windows = 0;
    for (session, group, ids) in groups {
        let base = match session {
            Some(s) => stem.with_file_name(format!("{}.session-{s}", file_name(&stem))),
            None => stem.clone(),
        };
        let shape = group.first().map(|c| c.shape.clone()).unwrap_or_default();
        let n: usize = group.iter().map(|c| c.windows.len()).sum();
        windows += n;
        let dims = std::iter::once(n)
            .chain(shape.iter().copied())
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let tuple = if shape.is_empty() {
            format!("({dims},)")
        } else {
            format!("({dims})")
        };
        let f32_bytes = |v: &dyn Fn(&Collected) -> &[f32]| -> Vec<u8> {
            group
                .iter()
                .flat_map(|c| v(c).iter().flat_map(|x| x.to_le_bytes()))
                .collect()
        };
        let pred = with_suffix(&base, "npy");
        let target = with_suffix(&base, "target.npy");
        let mask = with_suffix(&base, "mask.npy");
        write(
            &pred,
            &npy_bytes("<f4", false, &tuple, &f32_bytes(&|c| &c.pred)),
        )?;
        write(
            &target,
            &npy_bytes("<f4", false, &tuple, &f32_bytes(&|c| &c.target)),
        )?;
        let mask_bytes: Vec<u8> = group.iter().flat_map(|c| c.mask.iter().copied()).collect();
        write(&mask, &npy_bytes("|b1", false, &tuple, &mask_bytes))?;
        let listed: Vec<serde_json::Value> = group
            .iter()
            .zip(&ids)
            .flat_map(|(c, s)| {
                c.windows
                    .iter()
                    .map(move |(id, start)| json!({"session": s, "window": id, "start_s": start}))
            })
            .collect();
        parts.push(json!({
            "session": session,
            "predictions": file_name(&pred),
            "target": file_name(&target),
            "mask": file_name(&mask),
            "shape": std::iter::once(n).chain(shape.iter().copied()).collect::<Vec<_>>(),
            "windows": listed,
        }));
        files.extend([pred, target, mask]);
    }
    let name = sessions
        .values()
        .next()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let meta = json!({
        "run_dir": req.run_dir.display().to_string(),
        "step": step,
        "split": req.split.name(),
        "prediction": name,
        "values": if log_rate { "rate (exp of the model's log rate)" } else { "the model's output" },
        "window_s": dataset.settings().length,
        "parts": parts,
    });
    let json_path = with_suffix(&stem, "json");
    let text = serde_json::to_string_pretty(&meta)
        .map_err(|e| Error::internal(format!("cannot describe the predictions: {e}")))?;
    write(&json_path, text.as_bytes())?;
    files.push(json_path);
    Ok(Predicted {
        step,
        windows,
        files,
    })
}

/// `preds.npy` → `preds` (the files are named after it).
fn stem_of(out: &Path) -> PathBuf {
    match out.extension() {
        Some(e) if e == "npy" => out.with_extension(""),
        _ => out.to_path_buf(),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    stem.with_file_name(format!("{}.{suffix}", file_name(stem)))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(path, bytes).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("{}: cannot write it: {e}", path.display()),
        )
    })
}
