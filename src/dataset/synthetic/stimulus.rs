//! The video stimulus: a procedural sequence of segments, any frame of which
//! can be rendered from its index alone.
//!
//! A session's stimulus is a list of segments of 2 to 5 s each, drawn once
//! from the session's stimulus stream: grey screen (10%), drifting
//! sinusoidal gratings (30%), sparse noise (30%) and smoothed pink noise
//! (30%). Only the segment table is stored (tens of bytes per segment);
//! [`Stimulus::render`] recomputes a frame's pixels from the table and the
//! frame index, so a long session costs no video memory and the runtime can
//! cut windows anywhere. The formulas are in `docs/synthetic.md`.
//!
//! Pixel `(row, col)` has its centre at `x = col + 0.5`, `y = row + 0.5`, in
//! pixels, with `y` growing downwards. Every value lies in `[0, 1]`, and
//! every segment kind has mean luminance 0.5 in expectation.

use crate::base::rng::{cos_turns, derive, floor, mix64, sin_turns, SplitMix64};

/// The sparse-noise square side and the pink-noise lattice spacings are
/// given for a 36-pixel-high frame and scale with the frame's height.
const REFERENCE_HEIGHT: f64 = 36.0;

/// Pink noise: lattice spacings of the three octaves, in reference pixels.
/// Each octave's amplitude is proportional to its spacing, which gives the
/// roughly 1/f amplitude spectrum of natural images.
const OCTAVE_SPACINGS: [f64; 3] = [16.0, 8.0, 4.0];

/// The standard deviation of the unnormalised sum of octaves, measured over
/// many frames (see the unit test `pink_noise_has_unit_scale`), so that the
/// pink-noise contrast is the pixel standard deviation before clipping.
const PINK_SD: f64 = 6.7;

/// What a segment shows.
#[derive(Clone, Debug, PartialEq)]
pub enum SegmentKind {
    /// A uniform grey screen at luminance 0.5.
    Grey,
    /// A full-field sinusoidal grating drifting perpendicular to its bars.
    Grating {
        /// The direction of the luminance modulation, in turns from the
        /// `x` axis towards `y` (`[0, 0.5)`: bars are symmetric).
        orientation: f64,
        /// Cycles per pixel.
        spatial_frequency: f64,
        /// Cycles per second; the sign is the direction of drift.
        temporal_frequency: f64,
        /// Michelson contrast in `[0, 1]`.
        contrast: f64,
        /// The phase at the segment's first frame, in turns.
        phase: f64,
    },
    /// Black and white squares on grey, redrawn every `refresh` frames.
    SparseNoise {
        /// Frames between redraws.
        refresh: usize,
        /// Squares per redraw.
        squares: usize,
        /// The side of a square, in pixels.
        side: usize,
    },
    /// Three octaves of value noise, interpolated smoothly in space and
    /// in time between lattice "knots" `knot` frames apart.
    PinkNoise {
        /// Frames between time knots.
        knot: usize,
        /// The pixel standard deviation before clipping to `[0, 1]`.
        contrast: f64,
    },
}

/// One stretch of the stimulus.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// The first frame.
    pub start: usize,
    /// The number of frames.
    pub len: usize,
    /// What it shows.
    pub kind: SegmentKind,
    /// The key of this segment's own random streams (sparse-noise draws,
    /// pink-noise lattice values).
    key: u64,
}

/// A session's stimulus: its segment table and the frame geometry.
#[derive(Clone, Debug)]
pub struct Stimulus {
    height: usize,
    width: usize,
    frame_rate: f64,
    segments: Vec<Segment>,
}

impl Stimulus {
    /// Draws the segment table covering `frames` frames from the stream
    /// `key` (segment parameters) and its children (per-segment streams).
    pub fn new(key: u64, frames: usize, frame_rate: u32, height: usize, width: usize) -> Stimulus {
        let fr = f64::from(frame_rate);
        let scale = height as f64 / REFERENCE_HEIGHT;
        let mut rng = SplitMix64::new(derive(key, 0));
        let mut segments = Vec::new();
        let mut start = 0;
        while start < frames {
            let len = ((rng.range(2.0, 5.0) * fr).round() as usize).max(1);
            let len = len.min(frames - start);
            let pick = rng.uniform();
            let kind = if pick < 0.1 {
                SegmentKind::Grey
            } else if pick < 0.4 {
                let tf = rng.range(0.5, 3.0);
                SegmentKind::Grating {
                    orientation: rng.range(0.0, 0.5),
                    spatial_frequency: 1.0 / (rng.log_range(6.0, 30.0) * scale),
                    temporal_frequency: if rng.coin() { tf } else { -tf },
                    contrast: rng.range(0.25, 1.0),
                    phase: rng.uniform(),
                }
            } else if pick < 0.7 {
                SegmentKind::SparseNoise {
                    refresh: ((0.1 * fr).round() as usize).max(1),
                    squares: 20 + rng.below(21) as usize,
                    side: ((4.0 * scale).round() as usize).clamp(1, height.min(width)),
                }
            } else {
                SegmentKind::PinkNoise {
                    knot: ((0.5 * fr).round() as usize).max(1),
                    contrast: rng.range(0.12, 0.25),
                }
            };
            let index = segments.len() as u64;
            segments.push(Segment {
                start,
                len,
                kind,
                key: derive(key, index + 1),
            });
            start += len;
        }
        Stimulus {
            height,
            width,
            frame_rate: fr,
            segments,
        }
    }

    /// The segment table, in time order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The segment showing frame `t`, if `t` is inside the session.
    pub fn segment_at(&self, t: usize) -> Option<&Segment> {
        let after = self.segments.partition_point(|s| s.start <= t);
        let seg = self.segments.get(after.checked_sub(1)?)?;
        (t < seg.start + seg.len).then_some(seg)
    }

    /// Writes frame `t` (row-major, `height * width` values) into `out`.
    /// Returns `false`, leaving `out` untouched, when `t` is past the end or
    /// `out` has the wrong length.
    pub fn render(&self, t: usize, out: &mut [f32]) -> bool {
        let Some(seg) = self.segment_at(t) else {
            return false;
        };
        if out.len() != self.height * self.width {
            return false;
        }
        let local = t - seg.start;
        match &seg.kind {
            SegmentKind::Grey => out.fill(0.5),
            SegmentKind::Grating {
                orientation,
                spatial_frequency,
                temporal_frequency,
                contrast,
                phase,
            } => {
                let drift = temporal_frequency * local as f64 / self.frame_rate;
                self.grating(
                    *orientation,
                    *spatial_frequency,
                    phase + drift,
                    *contrast,
                    out,
                );
            }
            SegmentKind::SparseNoise {
                refresh,
                squares,
                side,
            } => {
                let chunk = (local / refresh) as u64;
                self.sparse_noise(derive(seg.key, chunk), *squares, *side, out);
            }
            SegmentKind::PinkNoise { knot, contrast } => {
                let position = local as f64 / *knot as f64;
                self.pink_noise(seg.key, position, *contrast, out);
            }
        }
        true
    }

    /// `0.5 + 0.5 c sin(2 pi (f (x cos o + y sin o) + phase))`, computed
    /// separably: `sin(a + b) = sin a cos b + cos a sin b` with `a` from the
    /// column and `b` from the row, so a frame costs `height + width` sines.
    fn grating(&self, orientation: f64, sf: f64, phase: f64, contrast: f64, out: &mut [f32]) {
        let (fx, fy) = (sf * cos_turns(orientation), sf * sin_turns(orientation));
        let cols: Vec<(f64, f64)> = (0..self.width)
            .map(|c| {
                let a = fx * (c as f64 + 0.5);
                (sin_turns(a), cos_turns(a))
            })
            .collect();
        let amp = 0.5 * contrast;
        for (r, row) in out.chunks_exact_mut(self.width).enumerate() {
            let b = fy * (r as f64 + 0.5) + phase;
            let (sb, cb) = (sin_turns(b), cos_turns(b));
            for (px, &(sa, ca)) in row.iter_mut().zip(&cols) {
                *px = (0.5 + amp * (sa * cb + ca * sb)) as f32;
            }
        }
    }

    /// Grey with `squares` black or white squares of `side` pixels, each
    /// wholly inside the frame, at positions from the chunk's own stream.
    fn sparse_noise(&self, key: u64, squares: usize, side: usize, out: &mut [f32]) {
        out.fill(0.5);
        let mut rng = SplitMix64::new(key);
        let (h, w) = (self.height, self.width);
        for _ in 0..squares {
            let r0 = rng.below((h - side + 1) as u64) as usize;
            let c0 = rng.below((w - side + 1) as u64) as usize;
            let value = if rng.coin() { 1.0 } else { 0.0 };
            for r in r0..r0 + side {
                out[r * w + c0..r * w + c0 + side].fill(value);
            }
        }
    }

    /// Three octaves of value noise at time `position` (in knots since the
    /// segment began), scaled to standard deviation `contrast` around 0.5.
    pub(super) fn pink_noise(&self, key: u64, position: f64, contrast: f64, out: &mut [f32]) {
        let (h, w) = (self.height, self.width);
        let scale = h as f64 / REFERENCE_HEIGHT;
        let knot = floor(position);
        let blend = smoothstep(position - knot);
        let knot = knot as u64;
        let mut sum = vec![0.0f64; h * w];
        for (octave, &spacing) in OCTAVE_SPACINGS.iter().enumerate() {
            let spacing = spacing * scale;
            let octave_key = derive(key, octave as u64);
            let (cols, rows) = (lattice_len(w, spacing), lattice_len(h, spacing));
            // The lattice at this instant: each point's value blended
            // between the two time knots that bracket the frame.
            let (k0, k1) = (derive(octave_key, knot), derive(octave_key, knot + 1));
            let lattice: Vec<f64> = (0..(rows * cols) as u64)
                .map(|i| {
                    let (v0, v1) = (lattice_value(k0, i), lattice_value(k1, i));
                    v0 + (v1 - v0) * blend
                })
                .collect();
            // Interpolate along x for every lattice row, then along y.
            let xs: Vec<(usize, f64)> = (0..w).map(|c| cell(c, spacing)).collect();
            let mut along_x = vec![0.0f64; rows * w];
            for (j, line) in along_x.chunks_exact_mut(w).enumerate() {
                let values = &lattice[j * cols..(j + 1) * cols];
                for (v, &(i, t)) in line.iter_mut().zip(&xs) {
                    *v = values[i] + (values[i + 1] - values[i]) * t;
                }
            }
            for r in 0..h {
                let (j, t) = cell(r, spacing);
                let (upper, lower) = (&along_x[j * w..(j + 1) * w], &along_x[(j + 1) * w..]);
                for ((s, &a), &b) in sum[r * w..(r + 1) * w].iter_mut().zip(upper).zip(lower) {
                    *s += spacing / scale * (a + (b - a) * t);
                }
            }
        }
        let gain = contrast / PINK_SD;
        for (px, s) in out.iter_mut().zip(&sum) {
            *px = (0.5 + gain * s).clamp(0.0, 1.0) as f32;
        }
    }
}

/// Lattice points needed to cover `pixels` at `spacing` (both ends).
fn lattice_len(pixels: usize, spacing: f64) -> usize {
    (pixels as f64 / spacing).ceil() as usize + 2
}

/// The lattice cell of pixel `p` and the smoothed position inside it.
fn cell(p: usize, spacing: f64) -> (usize, f64) {
    let u = (p as f64 + 0.5) / spacing;
    let i = floor(u);
    (i as usize, smoothstep(u - i))
}

/// `3t^2 - 2t^3`: interpolation with zero slope at the lattice points, so
/// the noise has no visible creases.
fn smoothstep(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

/// The value of lattice point `i` at the knot keyed `key`, uniform in
/// `[-1, 1)`: a pure hash, so any frame is computable on its own.
fn lattice_value(key: u64, i: u64) -> f64 {
    let bits = mix64(key ^ mix64(i));
    (bits >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0
}
