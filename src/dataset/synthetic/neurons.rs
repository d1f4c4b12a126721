//! The neurons: receptive fields, firing rates, spike trains and calcium.
//!
//! Each neuron sees the stimulus through a Gabor receptive field (simple
//! cells: one linear filter; complex cells: the energy of a quadrature
//! pair), a temporal filter with a few frames of latency, a softplus
//! nonlinearity and a multiplicative gain set by running and pupil size.
//! Spikes are an inhomogeneous Poisson process whose rate is constant within
//! each frame, sampled exactly by time rescaling; calcium is the spike train
//! convolved with an exponential kernel, averaged exactly over each response
//! bin, plus Gaussian noise. The equations are in `docs/synthetic.md`.
//!
//! Everything a test or a model evaluation may want to compare against is
//! kept in [`Truth`] and [`NeuronTruth`].

use super::behavior::{pupil_level, run_level};
use super::stimulus::Stimulus;
use super::{Geometry, Truth};
use crate::base::rng::{cos_turns, derive, exp, sin_turns, softplus, SplitMix64};

/// The highest firing rate the simulator allows, Hz. The rate model stays
/// far below it; the cap only bounds the spike count of a degenerate draw.
pub const MAX_RATE_HZ: f64 = 200.0;

/// Whether a neuron is linear in the stimulus or phase-invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// Drive is the projection of the stimulus on one Gabor.
    Simple,
    /// Drive is the energy (sum of squares) of the projections on a Gabor
    /// and its quadrature partner (phase + 1/4 turn).
    Complex,
}

/// A Gabor receptive field's parameters, in pixels and turns.
#[derive(Clone, Debug, PartialEq)]
pub struct Gabor {
    /// The centre, in pixels from the left edge.
    pub x: f64,
    /// The centre, in pixels from the top edge.
    pub y: f64,
    /// The direction of the carrier's modulation, turns in `[0, 0.5)`.
    pub orientation: f64,
    /// The carrier's cycles per pixel.
    pub spatial_frequency: f64,
    /// The carrier's phase at the centre, turns.
    pub phase: f64,
    /// The envelope's SD across the bars, pixels.
    pub sigma: f64,
    /// The envelope's SD along the bars divided by `sigma` (>= 1).
    pub elongation: f64,
}

/// Everything that defines one neuron.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronTruth {
    pub kind: CellKind,
    pub gabor: Gabor,
    /// Frames between a stimulus frame and the first nonzero filter tap.
    pub latency_frames: usize,
    /// The temporal filter, one tap per frame from lag 0; sums to 1.
    pub temporal_filter: Vec<f64>,
    /// The mean and SD over the session of the filtered drive, used to
    /// standardise it (`z = (g - mean) / sd`).
    pub drive_mean: f64,
    pub drive_sd: f64,
    /// The softplus threshold on the standardised drive.
    pub threshold: f64,
    /// Hz per unit of softplus output.
    pub amplitude_hz: f64,
    /// The rate with no drive and unit gain, Hz.
    pub baseline_hz: f64,
    /// The log-gain per unit of running level `v / (v + 10 cm/s)`; exactly
    /// 0 for a fifth of the neurons.
    pub run_gain: f64,
    /// The log-gain per unit of pupil level (see `behavior::pupil_level`).
    pub pupil_gain: f64,
    /// The calcium decay time constant, seconds.
    pub tau_s: f64,
    /// The calcium jump of one spike, dF/F.
    pub spike_amplitude: f64,
    /// The SD of the Gaussian noise added to each response sample, dF/F.
    pub noise_sd: f64,
}

/// Draws neuron `index`'s parameters from its own stream.
pub fn draw(key: u64, index: usize, geo: &Geometry) -> NeuronTruth {
    let mut rng = SplitMix64::new(derive(key, index as u64));
    let (h, w, fr) = (
        geo.height as f64,
        geo.width as f64,
        f64::from(geo.frame_rate),
    );
    let scale = h / 36.0;
    let kind = if rng.uniform() < 0.25 {
        CellKind::Complex
    } else {
        CellKind::Simple
    };
    let x = rng.range(0.1 * w, 0.9 * w);
    let y = rng.range(0.1 * h, 0.9 * h);
    let orientation = rng.range(0.0, 0.5);
    let sigma = rng.range(2.5, 4.5) * scale;
    let elongation = rng.range(1.0, 1.5);
    let spatial_frequency = 1.0 / (sigma * rng.range(3.0, 4.5));
    let phase = rng.uniform();
    let latency_frames = (rng.range(0.05, 0.12) * fr).round() as usize;
    let width = (rng.range(0.033, 0.083) * fr).max(0.3);
    let taps = latency_frames + (4.0 * width).ceil() as usize + 1;
    let mut temporal_filter: Vec<f64> = (0..taps)
        .map(|k| match k.checked_sub(latency_frames) {
            Some(d) => exp(-(d as f64) / width),
            None => 0.0,
        })
        .collect();
    let total: f64 = temporal_filter.iter().sum();
    temporal_filter.iter_mut().for_each(|t| *t /= total);
    let threshold = rng.range(0.25, 1.25);
    let amplitude_hz = rng.range(5.0, 15.0);
    let baseline_hz = rng.range(0.2, 1.5);
    let pick = rng.uniform();
    let run_gain = if pick < 0.2 {
        0.0
    } else if pick < 0.85 {
        rng.range(0.4, 1.2)
    } else {
        rng.range(-0.8, -0.4)
    };
    NeuronTruth {
        kind,
        gabor: Gabor {
            x,
            y,
            orientation,
            spatial_frequency,
            phase,
            sigma,
            elongation,
        },
        latency_frames,
        temporal_filter,
        drive_mean: 0.0,
        drive_sd: 1.0,
        threshold,
        amplitude_hz,
        baseline_hz,
        run_gain,
        pupil_gain: rng.range(-0.2, 0.2),
        tau_s: rng.range(0.4, 1.0),
        spike_amplitude: rng.range(0.08, 0.2),
        noise_sd: rng.range(0.05, 0.15),
    }
}

/// `x * x`. (`f64::powi` may be a library call whose rounding is not
/// specified, which would break bit-identical output across platforms.)
fn sq(x: f64) -> f64 {
    x * x
}

/// A receptive field cropped to its bounding box, for fast projection.
struct Patch {
    top: usize,
    left: usize,
    cols: usize,
    weights: Vec<f32>,
}

impl Patch {
    /// `sum(weights * (frame - 0.5))` over the box, with eight partial
    /// sums so the compiler can vectorise (the order is fixed, so the
    /// result is still deterministic).
    fn project(&self, centred: &[f32], width: usize) -> f32 {
        let mut lanes = [0.0f32; 8];
        let mut tail = 0.0f32;
        for (r, wrow) in self.weights.chunks_exact(self.cols).enumerate() {
            let start = (self.top + r) * width + self.left;
            let frow = &centred[start..start + self.cols];
            let (wc, fc) = (wrow.chunks_exact(8), frow.chunks_exact(8));
            for (a, b) in wc.remainder().iter().zip(fc.remainder()) {
                tail += a * b;
            }
            for (a, b) in wc.zip(fc) {
                for k in 0..8 {
                    lanes[k] += a[k] * b[k];
                }
            }
        }
        lanes.iter().sum::<f32>() + tail
    }
}

/// Writes the Gabor's image into `out` and returns it cropped. The image
/// has zero sum and unit L2 norm, and is zero outside the bounding box of
/// the envelope's 3-SD ellipse (where the envelope is below 1.1% of its
/// peak), which is what makes projecting every frame cheap.
/// `quarter_turns` shifts the carrier's phase (1 gives the quadrature
/// partner).
fn gabor_image(g: &Gabor, quarter_turns: f64, geo: &Geometry, out: &mut [f32]) -> Patch {
    let (co, so) = (cos_turns(g.orientation), sin_turns(g.orientation));
    let (sx, sy) = (g.sigma, g.sigma * g.elongation);
    let half_x = 3.0 * (sq(sx * co) + sq(sy * so)).sqrt();
    let half_y = 3.0 * (sq(sx * so) + sq(sy * co)).sqrt();
    let span = |centre: f64, half: f64, len: usize| {
        let lo = (centre - half - 0.5).ceil().max(0.0) as usize;
        let hi = ((centre + half - 0.5).floor().max(-1.0) + 1.0) as usize;
        (lo.min(len), hi.min(len).max(lo.min(len)))
    };
    let (c0, c1) = span(g.x, half_x, geo.width);
    let (r0, r1) = span(g.y, half_y, geo.height);
    let mut envelope = Vec::with_capacity((r1 - r0) * (c1 - c0));
    let mut carrier = Vec::with_capacity((r1 - r0) * (c1 - c0));
    for r in r0..r1 {
        for c in c0..c1 {
            let (dx, dy) = (c as f64 + 0.5 - g.x, r as f64 + 0.5 - g.y);
            let along = dx * co + dy * so;
            let across = -dx * so + dy * co;
            envelope.push(exp(-0.5 * (sq(along / sx) + sq(across / sy))));
            carrier.push(cos_turns(
                g.spatial_frequency * along + g.phase + 0.25 * quarter_turns,
            ));
        }
    }
    // The carrier is offset by its envelope-weighted mean so that the
    // field sums to zero: like a real simple cell's balanced subregions, it
    // ignores uniform changes of luminance and sees only structure.
    let mass: f64 = envelope.iter().sum();
    let offset = if mass > 0.0 {
        envelope
            .iter()
            .zip(&carrier)
            .map(|(e, c)| e * c)
            .sum::<f64>()
            / mass
    } else {
        0.0
    };
    let weights: Vec<f64> = envelope
        .iter()
        .zip(&carrier)
        .map(|(e, c)| e * (c - offset))
        .collect();
    let norm = weights.iter().map(|v| v * v).sum::<f64>().sqrt();
    let norm = if norm > 0.0 { norm } else { 1.0 };
    let weights: Vec<f32> = weights.iter().map(|v| (v / norm) as f32).collect();
    let cols = c1 - c0;
    for (r, row) in weights.chunks_exact(cols.max(1)).enumerate() {
        let at = (r0 + r) * geo.width + c0;
        out[at..at + cols].copy_from_slice(row);
    }
    Patch {
        top: r0,
        left: c0,
        cols: cols.max(1),
        weights: if cols == 0 { Vec::new() } else { weights },
    }
}

/// Keys of the per-neuron streams of one session.
pub struct Keys {
    pub params: u64,
    pub spikes: u64,
    pub noise: u64,
}

/// What the neurons of one session produce.
pub struct Output {
    pub truth: Truth,
    pub response: Vec<f32>,
    pub spikes: Vec<Vec<f64>>,
}

/// Simulates the session's neurons on its stimulus and behaviour.
pub fn simulate(keys: &Keys, geo: &Geometry, stimulus: &Stimulus, behavior: &[f32]) -> Output {
    let (n, frames, pixels) = (geo.neurons, geo.frames, geo.height * geo.width);
    let mut neurons: Vec<NeuronTruth> = (0..n).map(|i| draw(keys.params, i, geo)).collect();
    let mut rf = vec![0.0f32; n * pixels];
    let mut rf_quadrature = vec![0.0f32; n * pixels];
    let mut patches = Vec::with_capacity(n);
    for (i, neuron) in neurons.iter().enumerate() {
        let even = gabor_image(
            &neuron.gabor,
            0.0,
            geo,
            &mut rf[i * pixels..(i + 1) * pixels],
        );
        let odd = (neuron.kind == CellKind::Complex).then(|| {
            let out = &mut rf_quadrature[i * pixels..(i + 1) * pixels];
            gabor_image(&neuron.gabor, 1.0, geo, out)
        });
        patches.push((even, odd));
    }

    // Each frame is rendered once; every neuron's projections on it are
    // kept, neuron-major, for the temporal filtering below.
    let mut even = vec![0.0f32; frames * n];
    let mut odd = vec![0.0f32; frames * n];
    let mut frame = vec![0.0f32; pixels];
    for t in 0..frames {
        if stimulus.render(t, &mut frame) {
            frame.iter_mut().for_each(|v| *v -= 0.5);
        } else {
            frame.fill(0.0);
        }
        for (i, (e, o)) in patches.iter().enumerate() {
            even[i * frames + t] = e.project(&frame, geo.width);
            if let Some(o) = o {
                odd[i * frames + t] = o.project(&frame, geo.width);
            }
        }
    }

    let dt = 1.0 / f64::from(geo.frame_rate);
    let mut rates = vec![0.0f32; frames * n];
    let mut drive = vec![0.0f64; frames];
    for (i, neuron) in neurons.iter_mut().enumerate() {
        let (even, odd) = (
            &even[i * frames..(i + 1) * frames],
            &odd[i * frames..(i + 1) * frames],
        );
        // Temporal filtering; frames before the session count as grey.
        let filter = |source: &[f32], t: usize| -> f64 {
            let taps = neuron.temporal_filter.iter().take(t + 1).enumerate();
            taps.map(|(k, h)| h * f64::from(source[t - k])).sum()
        };
        for (t, d) in drive.iter_mut().enumerate() {
            let e = filter(even, t);
            *d = match neuron.kind {
                CellKind::Simple => e,
                CellKind::Complex => sq(e) + sq(filter(odd, t)),
            };
        }
        let mean = drive.iter().sum::<f64>() / frames as f64;
        let var = drive.iter().map(|d| sq(d - mean)).sum::<f64>() / frames as f64;
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        neuron.drive_mean = mean;
        neuron.drive_sd = sd;
        for (t, &d) in drive.iter().enumerate() {
            let row = &behavior[t * 4..t * 4 + 4];
            let gain = exp(neuron.run_gain * run_level(f64::from(row[0]))
                + neuron.pupil_gain * pupil_level(f64::from(row[1])));
            let z = (d - mean) / sd;
            let rate =
                gain * (neuron.baseline_hz + neuron.amplitude_hz * softplus(z - neuron.threshold));
            rates[t * n + i] = rate.min(MAX_RATE_HZ) as f32;
        }
    }

    let spikes: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut rng = SplitMix64::new(derive(keys.spikes, i as u64));
            spike_train(
                &mut rng,
                (0..frames).map(|t| f64::from(rates[t * n + i])),
                dt,
            )
        })
        .collect();

    let samples = geo.samples;
    let mut calcium = vec![0.0f32; samples * n];
    let mut response = vec![0.0f32; samples * n];
    let bin = 1.0 / f64::from(geo.response_rate);
    for (i, neuron) in neurons.iter().enumerate() {
        let mut rng = SplitMix64::new(derive(keys.noise, i as u64));
        let clean = bin_calcium(
            &spikes[i],
            neuron.tau_s,
            neuron.spike_amplitude,
            bin,
            samples,
        );
        for (j, c) in clean.into_iter().enumerate() {
            calcium[j * n + i] = c as f32;
            response[j * n + i] = (c + neuron.noise_sd * rng.normal()) as f32;
        }
    }

    Output {
        truth: Truth {
            neurons,
            rf,
            rf_quadrature,
            rates,
            calcium,
        },
        response,
        spikes,
    }
}

/// Spike times (seconds) of a Poisson process whose rate is `rates[t]` over
/// `[t dt, (t+1) dt)`, by time rescaling: exponential draws of unit mean are
/// spent against the integrated rate, which is exact for a piecewise
/// constant rate and costs one draw per spike.
pub fn spike_train(rng: &mut SplitMix64, rates: impl Iterator<Item = f64>, dt: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut need = rng.exp1();
    for (t, rate) in rates.enumerate() {
        let start = t as f64 * dt;
        let mut left = rate * dt;
        let mut offset = 0.0;
        while need <= left {
            offset += need / rate;
            // Rounding may push a spike a hair past its frame's end.
            out.push(start + offset.min(dt));
            left -= need;
            need = rng.exp1();
        }
        need -= left;
    }
    out
}

/// The mean over each bin of width `bin` of `c(t) = sum_s a e^{-(t-s)/tau}`
/// for the spike times `s <= t`, computed exactly bin by bin.
pub fn bin_calcium(spikes: &[f64], tau: f64, a: f64, bin: f64, samples: usize) -> Vec<f64> {
    let decay = exp(-bin / tau);
    let mut out = Vec::with_capacity(samples);
    let mut level = 0.0;
    let mut next = spikes.iter().peekable();
    for j in 0..samples {
        let end = (j + 1) as f64 * bin;
        // What is carried in decays over the whole bin; each spike inside
        // the bin contributes from its own time to the bin's end.
        let mut integral = level * tau * (1.0 - decay);
        level *= decay;
        while let Some(&&s) = next.peek() {
            if s >= end {
                break;
            }
            let tail = exp(-(end - s) / tau);
            integral += a * tau * (1.0 - tail);
            level += a * tail;
            next.next();
        }
        out.push(integral / bin);
    }
    out
}
