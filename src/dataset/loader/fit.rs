//! Fitting and applying a modality's transforms.
//!
//! `zscore` learns its statistics from the training windows only: the
//! stretches of each session the training windows cover are cut out of the
//! untransformed values, joined end to end, and given to
//! [`Pipeline::fit`]. A modality with a dim declared `per session` (each
//! session has its own neurons) is fitted per session; one whose channels
//! mean the same thing in every session (behaviour columns, pixels) is
//! fitted once on every session's training stretches. The fitted pipeline
//! is then applied to each whole session, so stages that look across time
//! (`dff`'s running baseline, `smooth`, `resample`) see real neighbours at
//! window edges; only the synthetic video, never stored, is transformed
//! per window as it is rendered.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::lazy::LazySeries;
use super::sources::{Chan, Stream};
use super::{Error, ErrorKind};
use crate::dataset::synthetic::MouseV1;
use crate::dataset::transform::stages::{Events, Moments, Series, Stage};
use crate::dataset::transform::{Pipeline, Signal};
use crate::dataset::windows::Splits;
use crate::ir::data::Split;
use crate::ir::data::{ModalitySpec, WindowSettings};
use crate::ir::transform::Transform;

/// The stretches of session `s` its training windows cover, merged.
fn training_ranges(splits: &Splits, s: usize, length: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for w in splits.get(Split::Train).iter().filter(|w| w.session == s) {
        let (a, b) = (w.start, w.start + length);
        match out.last_mut() {
            Some(last) if a <= last.1 + 1e-9 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The part of a stream inside `ranges`, as a signal, the ranges joined
/// end to end.
fn portion(
    stream: &Stream,
    session: usize,
    ranges: &[(f64, f64)],
    synthetic: &BTreeMap<usize, Arc<MouseV1>>,
) -> Result<Option<Signal>, Error> {
    let width = |chan: &[Chan]| chan.iter().map(|c| c.size).product::<usize>();
    Ok(match stream {
        Stream::Series { rate, chan, data } => {
            let c = width(chan);
            let mut out = Vec::new();
            for &(a, b) in ranges {
                let (i, j) = ((a * rate).round() as usize, (b * rate).round() as usize);
                out.extend_from_slice(data.get(i * c..j * c).unwrap_or_default());
            }
            Some(Signal::Series(Series {
                rate: *rate,
                channels: c,
                data: out,
            }))
        }
        Stream::Video { source, rate, chan } => {
            let c = width(chan);
            let mut out = Vec::new();
            for &(a, b) in ranges {
                let (i, j) = ((a * rate).round() as usize, (b * rate).round() as usize);
                let at = out.len();
                out.resize(at + j.saturating_sub(i) * c, 0.0);
                super::render(synthetic, *source, session, i, &mut out[at..])?;
            }
            Some(Signal::Series(Series {
                rate: *rate,
                channels: c,
                data: out,
            }))
        }
        Stream::Events { units, .. } => {
            let mut out = vec![Vec::new(); units.len()];
            let mut offset = 0.0;
            for &(a, b) in ranges {
                for (o, u) in out.iter_mut().zip(units) {
                    o.extend(
                        u.iter()
                            .filter(|&&t| t >= a && t < b)
                            .map(|t| t - a + offset),
                    );
                }
                offset += b - a;
            }
            Some(Signal::Events(Events {
                start: 0.0,
                duration: offset,
                units: out,
            }))
        }
        // Only when some sessions of a modality are read lazily and others
        // whole (a Fortran-order file among C-order ones): the training
        // stretches are read into memory, as the whole-file path would.
        Stream::Lazy(l) => {
            let mut out = Vec::new();
            for &(a, b) in ranges {
                let (i, j) = samples_of(l, a, b);
                out.extend(l.read(i, j)?);
            }
            Some(Signal::Series(Series {
                rate: l.rate,
                channels: l.width(),
                data: out,
            }))
        }
        Stream::Intervals { .. } => None,
    })
}

/// The samples of a lazy series seconds `a..b` cover.
fn samples_of(l: &LazySeries, a: f64, b: f64) -> (usize, usize) {
    let t = l.samples();
    let i = ((a * l.rate).round() as usize).min(t);
    (i, ((b * l.rate).round() as usize).clamp(i, t))
}

/// Fits a modality whose every session is read lazily, a chunk at a time:
/// each `zscore` stage's statistics are summed over the training
/// stretches through the stages before it, per session or pooled.
fn fit_lazy(
    m: &ModalitySpec,
    lazies: &[&LazySeries],
    splits: &Splits,
    settings: &WindowSettings,
    pipeline: &Pipeline,
) -> Result<Vec<Pipeline>, Error> {
    let per_session = m.per_session() || lazies.len() == 1;
    let mut fitted = vec![pipeline.clone(); lazies.len()];
    for k in 0..pipeline.stages.len() {
        if !matches!(pipeline.stages[k], Stage::ZScore { .. }) {
            continue;
        }
        let mut moments = Vec::with_capacity(lazies.len());
        for (s, l) in lazies.iter().enumerate() {
            let mut part = Moments::new(l.width());
            for (a, b) in training_ranges(splits, s, settings.length) {
                let (i, j) = samples_of(l, a, b);
                for (x, y) in l.chunks(i, j) {
                    part.add(&l.read_through(x, y, &fitted[s], k)?);
                }
            }
            moments.push(part);
        }
        let stats = |m: &Moments| {
            m.stats().ok_or_else(|| {
                Error::new(
                    ErrorKind::Transform,
                    "zscore: needs at least two training samples",
                )
            })
        };
        if per_session {
            for (s, part) in moments.iter().enumerate() {
                let stats = stats(part).map_err(|_| no_training_window().session(s))?;
                fitted[s].stages[k] = Stage::ZScore { stats: Some(stats) };
            }
        } else {
            let mut all = Moments::new(moments.first().map_or(0, Moments::channels));
            for part in &moments {
                if part.channels() != all.channels() {
                    return Err(different_channels());
                }
                all.merge(part);
            }
            let stats = stats(&all)?;
            for p in &mut fitted {
                p.stages[k] = Stage::ZScore {
                    stats: Some(stats.clone()),
                };
            }
        }
    }
    Ok(fitted)
}

fn no_training_window() -> Error {
    Error::new(
        ErrorKind::Transform,
        "its statistics are fitted per session (a dim is `per session`), but this session has no training window; split by time, or use `standardize` with fixed values",
    )
}

fn different_channels() -> Error {
    Error::new(
        ErrorKind::DataShape,
        "its sessions have different channels, so one set of statistics cannot fit them all; declare the dim `per session`",
    )
}

/// Fits modality `m`'s transforms, per session or pooled over sessions,
/// on the training windows only; one fitted pipeline per session.
pub fn fit(
    m: &ModalitySpec,
    raw: &[Stream],
    splits: &Splits,
    settings: &WindowSettings,
    synthetic: &BTreeMap<usize, Arc<MouseV1>>,
) -> Result<Vec<Pipeline>, Error> {
    let sessions = raw.len();
    let pipeline = Pipeline::new(&m.transforms);
    let needs = m.transforms.iter().any(|t| matches!(t, Transform::ZScore));
    if !needs {
        return Ok(vec![pipeline; sessions]);
    }
    let lazies: Vec<&LazySeries> = raw
        .iter()
        .filter_map(|s| match s {
            Stream::Lazy(l) => Some(l),
            _ => None,
        })
        .collect();
    if !lazies.is_empty() && lazies.len() == sessions {
        return fit_lazy(m, &lazies, splits, settings, &pipeline);
    }
    let portions = raw
        .iter()
        .enumerate()
        .map(|(s, stream)| {
            let ranges = training_ranges(splits, s, settings.length);
            portion(stream, s, &ranges, synthetic)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let fit_one = |signal: &Signal| {
        let mut p = pipeline.clone();
        p.fit(signal)
            .map_err(|e| Error::new(ErrorKind::Transform, e.to_string()))?;
        Ok::<Pipeline, Error>(p)
    };
    if m.per_session() || sessions == 1 {
        portions
            .iter()
            .enumerate()
            .map(|(s, p)| match p {
                Some(signal) if !is_empty(signal) => fit_one(signal).map_err(|e| e.session(s)),
                _ => Err(no_training_window().session(s)),
            })
            .collect()
    } else {
        let joined = join(portions.into_iter().flatten().collect())?;
        let p = fit_one(&joined)?;
        Ok(vec![p; sessions])
    }
}

fn is_empty(s: &Signal) -> bool {
    match s {
        Signal::Series(s) => s.data.is_empty(),
        Signal::Events(e) => e.duration <= 0.0,
    }
}

/// Training signals of several sessions, end to end.
fn join(parts: Vec<Signal>) -> Result<Signal, Error> {
    let mut it = parts.into_iter();
    let Some(mut first) = it.next() else {
        return Err(Error::new(
            ErrorKind::Transform,
            "no training data to fit its statistics on",
        ));
    };
    for part in it {
        match (&mut first, part) {
            (Signal::Series(a), Signal::Series(b)) if a.channels == b.channels => {
                a.data.extend(b.data)
            }
            (Signal::Events(a), Signal::Events(b)) if a.units.len() == b.units.len() => {
                for (u, v) in a.units.iter_mut().zip(b.units) {
                    u.extend(v.into_iter().map(|t| t + a.duration));
                }
                a.duration += b.duration;
            }
            _ => return Err(different_channels()),
        }
    }
    Ok(first)
}

/// Applies fitted transforms to a whole session's stream (not to video,
/// which is transformed per window as it is rendered).
pub fn transform(stream: Stream, pipeline: &Pipeline, duration: f64) -> Result<Stream, Error> {
    if pipeline.stages.is_empty() {
        return Ok(stream);
    }
    let failed = |e: crate::dataset::transform::TransformError| {
        Error::new(ErrorKind::Transform, e.to_string())
    };
    match stream {
        Stream::Video { .. } => Ok(stream),
        // Transforms of one sample at a time stay lazy; the others need
        // the session whole.
        Stream::Lazy(mut l) => {
            if l.then(pipeline) {
                Ok(Stream::Lazy(l))
            } else {
                transform(l.load()?, pipeline, duration)
            }
        }
        Stream::Intervals { .. } => Err(Error::spec("intervals take no transforms")),
        Stream::Series { rate, chan, data } => {
            let channels = chan.iter().map(|c| c.size).product();
            let out = pipeline
                .apply(Signal::Series(Series {
                    rate,
                    channels,
                    data,
                }))
                .map_err(failed)?;
            back(out, chan)
        }
        Stream::Events { chan, units } => {
            let out = pipeline
                .apply(Signal::Events(Events {
                    start: 0.0,
                    duration,
                    units,
                }))
                .map_err(failed)?;
            back(out, chan)
        }
    }
}

fn back(signal: Signal, chan: Vec<Chan>) -> Result<Stream, Error> {
    Ok(match signal {
        Signal::Series(s) => Stream::Series {
            rate: s.rate,
            chan,
            data: s.data,
        },
        Signal::Events(e) => Stream::Events {
            chan,
            units: e.units,
        },
    })
}

/// The rate transforms' output has, given its input's (`None` for events):
/// `resample(r)` makes `r`, `bin(w)` makes `1 / w`, the rest keep it.
pub fn output_rate(input: Option<f64>, transforms: &[Transform]) -> Option<f64> {
    transforms.iter().fold(input, |rate, t| match t {
        Transform::Resample { rate } => Some(*rate),
        Transform::Bin { width } => Some(1.0 / width),
        _ => rate,
    })
}
