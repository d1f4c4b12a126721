//! The data-pipeline functions: stages that work on a whole signal.
//!
//! | stage | what it does |
//! | --- | --- |
//! | `resample(r)` | a series to rate `r`: each output sample averages the input samples of its interval when downsampling (an anti-aliasing box filter), and interpolates linearly when upsampling |
//! | `bin(w)` | events to counts per unit in bins of `w` seconds: a series at `1 / w` |
//! | `zscore()` | per channel, `(x - mean) / std` with the training split's statistics (`Pipeline::fit`) |
//! | `standardize(mean:, std:)` | `(x - mean) / std` with given constants |
//! | `clip(low:, high:)` | values limited to `[low, high]` |
//! | `smooth(w)` | per channel, the centred moving average over `w` seconds |
//! | `dff(baseline: w)` | calcium `(F - F0) / F0`, F0 the 8th percentile of F over the centred `w`-second window (a running baseline that ignores transients) |

use std::fmt;

use super::elementwise::Elementwise;
use super::TransformError;
use crate::ir::transform::Transform;

/// Values sampled at a fixed rate: `T x C`, time-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub rate: f64,
    pub channels: usize,
    pub data: Vec<f32>,
}

impl Series {
    pub fn samples(&self) -> usize {
        self.data.len().checked_div(self.channels).unwrap_or(0)
    }
}

/// Event times per unit, in seconds, within `[start, start + duration)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Events {
    pub start: f64,
    pub duration: f64,
    pub units: Vec<Vec<f64>>,
}

/// Per-channel count, mean and sum of squared deviations of a series seen
/// in parts, for `zscore`: each part is summed in two passes and the parts
/// merged (Chan, Golub and LeVeque), so a session read a chunk at a time
/// gets the statistics a whole one would, to rounding.
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    count: usize,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Moments {
    pub fn new(channels: usize) -> Moments {
        Moments {
            count: 0,
            mean: vec![0.0; channels],
            m2: vec![0.0; channels],
        }
    }

    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Adds time-major samples of `channels()` values each.
    pub fn add(&mut self, data: &[f32]) {
        let c = self.channels();
        let t = data.len().checked_div(c).unwrap_or(0);
        if t == 0 {
            return;
        }
        let mut part = Moments::new(c);
        part.count = t;
        for ch in 0..c {
            let column = (0..t).map(|i| f64::from(data[i * c + ch]));
            let mean = column.clone().sum::<f64>() / t as f64;
            part.mean[ch] = mean;
            part.m2[ch] = column.map(|v| (v - mean) * (v - mean)).sum::<f64>();
        }
        self.merge(&part);
    }

    /// Adds another part's moments over the same channels.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let (n, m) = (self.count as f64, other.count as f64);
        let total = n + m;
        for ch in 0..self.channels().min(other.channels()) {
            let delta = other.mean[ch] - self.mean[ch];
            self.mean[ch] += delta * m / total;
            self.m2[ch] += other.m2[ch] + delta * delta * n * m / total;
        }
        self.count += other.count;
    }

    /// `(mean, std)` per channel, the sample standard deviation; a
    /// constant channel is centred, not blown up. `None` below two samples.
    pub fn stats(&self) -> Option<Vec<(f32, f32)>> {
        if self.count < 2 {
            return None;
        }
        let denominator = (self.count - 1) as f64;
        Some(
            self.mean
                .iter()
                .zip(&self.m2)
                .map(|(&mean, &m2)| {
                    let var = m2 / denominator;
                    let std = if var > 0.0 { var.sqrt() } else { 1.0 };
                    (mean as f32, std as f32)
                })
                .collect(),
        )
    }
}

/// What a stage takes and gives.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    Series(Series),
    Events(Events),
}

/// One stage of a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    Elementwise(Elementwise),
    Resample {
        rate: f64,
    },
    Bin {
        width: f64,
    },
    /// Per-channel statistics, learned by `fit`.
    ZScore {
        stats: Option<Vec<(f32, f32)>>,
    },
    Standardize {
        mean: f32,
        std: f32,
    },
    Clip {
        low: f32,
        high: f32,
    },
    Smooth {
        width: f64,
    },
    Dff {
        baseline: f64,
    },
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Elementwise(_) => "elementwise",
            Stage::Resample { .. } => "resample",
            Stage::Bin { .. } => "bin",
            Stage::ZScore { .. } => "zscore",
            Stage::Standardize { .. } => "standardize",
            Stage::Clip { .. } => "clip",
            Stage::Smooth { .. } => "smooth",
            Stage::Dff { .. } => "dff",
        })
    }
}

impl Stage {
    /// The stage that runs `t`, unfitted.
    pub fn new(t: &Transform) -> Stage {
        match t {
            Transform::Elementwise(p) => Stage::Elementwise(Elementwise::new(p.clone())),
            Transform::Resample { rate } => Stage::Resample { rate: *rate },
            Transform::Bin { width } => Stage::Bin { width: *width },
            Transform::ZScore => Stage::ZScore { stats: None },
            Transform::Standardize { mean, std } => Stage::Standardize {
                mean: *mean,
                std: *std,
            },
            Transform::Clip { low, high } => Stage::Clip {
                low: *low,
                high: *high,
            },
            Transform::Smooth { width } => Stage::Smooth { width: *width },
            Transform::Dff { baseline } => Stage::Dff {
                baseline: *baseline,
            },
        }
    }

    fn error(&self, message: impl Into<String>) -> TransformError {
        TransformError {
            stage: self.to_string(),
            message: message.into(),
        }
    }

    /// Learns `zscore`'s statistics from (already transformed) training data.
    pub fn fit(&mut self, train: &Signal) -> Result<(), TransformError> {
        if let Stage::ZScore { stats } = self {
            let Signal::Series(s) = train else {
                return Err(self.error("needs a series (`bin` events first)"));
            };
            let mut moments = Moments::new(s.channels);
            moments.add(&s.data);
            let Some(out) = moments.stats() else {
                return Err(self.error("needs at least two training samples"));
            };
            *stats = Some(out);
        }
        Ok(())
    }

    /// Applies the stage.
    pub fn apply(&self, signal: Signal) -> Result<Signal, TransformError> {
        match (self, signal) {
            (Stage::Bin { width }, Signal::Events(e)) => Ok(Signal::Series(bin(&e, *width))),
            (Stage::Bin { .. }, Signal::Series(_)) => Err(self.error("takes events, not a series")),
            (_, Signal::Events(_)) => Err(self.error("needs a series (`bin` events first)")),
            (stage, Signal::Series(mut s)) => {
                match stage {
                    Stage::Elementwise(f) => f.apply(&mut s.data),
                    Stage::Resample { rate } => s = resample(&s, *rate),
                    Stage::ZScore { stats } => {
                        let Some(stats) = stats else {
                            return Err(
                                self.error("has no statistics: fit it on the training split first")
                            );
                        };
                        if stats.len() != s.channels {
                            return Err(self.error(format!(
                                "was fitted on {} channels but the data has {}",
                                stats.len(),
                                s.channels
                            )));
                        }
                        for row in s.data.chunks_mut(s.channels.max(1)) {
                            for (v, (m, sd)) in row.iter_mut().zip(stats) {
                                *v = (*v - m) / sd;
                            }
                        }
                    }
                    Stage::Standardize { mean, std } => {
                        s.data.iter_mut().for_each(|v| *v = (*v - mean) / std)
                    }
                    Stage::Clip { low, high } => {
                        s.data.iter_mut().for_each(|v| *v = v.max(*low).min(*high))
                    }
                    Stage::Smooth { width } => s = smooth(&s, *width),
                    Stage::Dff { baseline } => s = dff(&s, *baseline),
                    Stage::Bin { .. } => {}
                }
                Ok(Signal::Series(s))
            }
        }
    }
}

/// Counts per unit in bins of `width` seconds.
fn bin(e: &Events, width: f64) -> Series {
    let bins = (e.duration / width).round().max(0.0) as usize;
    let units = e.units.len();
    let mut data = vec![0.0f32; bins * units];
    for (u, times) in e.units.iter().enumerate() {
        for &t in times {
            let k = ((t - e.start) / width).floor();
            if k >= 0.0 && (k as usize) < bins {
                data[k as usize * units + u] += 1.0;
            }
        }
    }
    Series {
        rate: 1.0 / width,
        channels: units,
        data,
    }
}

/// To `rate`: box-averaged when downsampling, linear when upsampling.
fn resample(s: &Series, rate: f64) -> Series {
    let (t, c) = (s.samples(), s.channels);
    let duration = t as f64 / s.rate;
    let out_t = (duration * rate).round() as usize;
    let mut data = vec![0.0f32; out_t * c];
    for k in 0..out_t {
        let (a, b) = (k as f64 * s.rate / rate, (k + 1) as f64 * s.rate / rate);
        if rate < s.rate {
            let (lo, hi) = (
                a.floor() as usize,
                (b.ceil() as usize).min(t).max(a.floor() as usize + 1),
            );
            for ch in 0..c {
                let sum: f32 = (lo..hi.min(t)).map(|i| s.data[i * c + ch]).sum();
                data[k * c + ch] = sum / (hi.min(t) - lo).max(1) as f32;
            }
        } else {
            // The input time of this output sample's centre.
            let at = ((k as f64 + 0.5) * s.rate / rate - 0.5).max(0.0);
            let i = (at.floor() as usize).min(t.saturating_sub(1));
            let j = (i + 1).min(t.saturating_sub(1));
            let w = (at - i as f64) as f32;
            for ch in 0..c {
                data[k * c + ch] = s.data[i * c + ch] * (1.0 - w) + s.data[j * c + ch] * w;
            }
        }
    }
    Series {
        rate,
        channels: c,
        data,
    }
}

/// Samples in a centred window of `width` seconds (at least one).
fn half_window(rate: f64, width: f64) -> usize {
    ((width * rate).round() as usize).max(1) / 2
}

/// The centred moving average over `width` seconds, per channel.
fn smooth(s: &Series, width: f64) -> Series {
    let (t, c) = (s.samples(), s.channels);
    let h = half_window(s.rate, width);
    let mut data = vec![0.0f32; t * c];
    for ch in 0..c {
        // A running sum makes this linear in the length.
        let mut prefix = vec![0.0f64; t + 1];
        for i in 0..t {
            prefix[i + 1] = prefix[i] + f64::from(s.data[i * c + ch]);
        }
        for i in 0..t {
            let (lo, hi) = (i.saturating_sub(h), (i + h + 1).min(t));
            data[i * c + ch] = ((prefix[hi] - prefix[lo]) / (hi - lo) as f64) as f32;
        }
    }
    Series { data, ..s.clone() }
}

/// `(F - F0) / F0` with F0 the 8th percentile over a centred window of
/// `baseline` seconds, per channel. The window's values are kept sorted as
/// it slides, so each step costs one removal and one insertion.
fn dff(s: &Series, baseline: f64) -> Series {
    let (t, c) = (s.samples(), s.channels);
    let h = half_window(s.rate, baseline);
    let mut data = vec![0.0f32; t * c];
    for ch in 0..c {
        let value = |i: usize| s.data[i * c + ch];
        let mut window: Vec<f32> = (0..(h + 1).min(t)).map(value).collect();
        window.sort_by(f32::total_cmp);
        for i in 0..t {
            if i > 0 {
                if i + h < t {
                    let v = value(i + h);
                    let at = window.partition_point(|w| w.total_cmp(&v).is_lt());
                    window.insert(at, v);
                }
                if i > h {
                    let v = value(i - h - 1);
                    let at = window.partition_point(|w| w.total_cmp(&v).is_lt());
                    if at < window.len() {
                        window.remove(at);
                    }
                }
            }
            let k = ((window.len() as f64 - 1.0) * 0.08).round() as usize;
            let f0 = window.get(k).copied().unwrap_or(0.0);
            // A baseline at or below zero has no ratio; the value is 0.
            data[i * c + ch] = if f0 > 0.0 { (value(i) - f0) / f0 } else { 0.0 };
        }
    }
    Series { data, ..s.clone() }
}
