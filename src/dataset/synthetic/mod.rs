//! The `synthetic` data source: a deterministic simulated mouse V1.
//!
//! `synthetic.mouse_v1(sessions: S, neurons: N, seed: K)` in a `.enigma`
//! file denotes [`MouseV1::new`] on [`MouseV1Config::new`]`(S, N, K)`: `S`
//! sessions, each with its own video stimulus, behaviour and `N` neurons
//! whose receptive fields, behavioural gains and calcium dynamics are known,
//! so a model's recovery of the truth can be measured. The fields a modality
//! can draw from are, per session:
//!
//! | language       | here                        | shape, rate                 |
//! | -------------- | --------------------------- | --------------------------- |
//! | `v1.video`     | [`Session::video`]          | `[frames, 1, H, W]` @ 30 Hz |
//! | `v1.behavior`  | [`Session::behavior`]       | `[frames, 4]` @ 30 Hz       |
//! | `v1.response`  | [`Session::response`]       | `[samples, N]` @ 8 Hz       |
//! | `v1.spikes`    | [`Session::spikes`]         | `N` lists of times, seconds |
//!
//! Everything is pure Rust with no I/O. The same configuration gives
//! bit-identical output on every run and machine (the generator and the
//! transcendental functions are in [`rng`]); the stream layout, the
//! generative model with its equations and parameter ranges, and measured
//! costs are in `docs/synthetic.md`. Invalid configurations are a
//! [`SyntheticError`], never a panic.
//!
//! The video is procedural: only the segment table is stored and any frame
//! is recomputed from its index ([`stimulus`]), so a session's memory is its
//! behaviour, responses, spikes and the ground truth, about
//! `frames * N * 4` bytes for the true rates plus smaller arrays.

pub mod behavior;
pub mod neurons;
pub mod stimulus;
#[cfg(test)]
mod tests;

use std::fmt;

pub use behavior::COLUMNS as BEHAVIOR_COLUMNS;
pub use neurons::{CellKind, Gabor, NeuronTruth};
pub use stimulus::{Segment, SegmentKind};

use crate::base::rng::{self, derive};
use stimulus::Stimulus;

/// The fields of a session, as the language names them (`v1.video`, ...).
pub const FIELDS: [&str; 4] = ["video", "behavior", "response", "spikes"];

/// The most memory a configuration may ask for, by [`MouseV1Config::memory_bytes`].
pub const MAX_BYTES: u64 = 8 << 30;

/// Stream tags under a session's key (see `docs/synthetic.md`).
const STIMULUS: u64 = 1;
const BEHAVIOR: u64 = 2;
const NEURON_PARAMS: u64 = 3;
const SPIKES: u64 = 4;
const NOISE: u64 = 5;

/// What a [`MouseV1`] simulates.
#[derive(Clone, Debug, PartialEq)]
pub struct MouseV1Config {
    /// Recording sessions, each with its own stimulus, behaviour and neurons.
    pub sessions: usize,
    /// Neurons per session (the largest, when sessions differ).
    pub neurons: usize,
    /// Each session's own neuron count, when sessions differ; empty when
    /// every session has `neurons`.
    pub session_neurons: Vec<usize>,
    /// The seed every random stream derives from.
    pub seed: u64,
    /// Each session's length in seconds; `duration_s * frame_rate` and
    /// `duration_s * response_rate` must be whole (any multiple of 0.5 s at
    /// the default rates).
    pub duration_s: f64,
    /// Video and behaviour frames per second.
    pub frame_rate: u32,
    /// Calcium response samples per second.
    pub response_rate: u32,
    /// Frame height and width, pixels.
    pub height: usize,
    pub width: usize,
}

impl MouseV1Config {
    /// The configuration `synthetic.mouse_v1(sessions, neurons, seed)`
    /// denotes: 600 s sessions, video and behaviour at 30 Hz, responses at
    /// 8 Hz, 36 x 64 frames.
    pub fn new(sessions: usize, neurons: usize, seed: u64) -> MouseV1Config {
        MouseV1Config {
            sessions,
            neurons,
            session_neurons: Vec::new(),
            seed,
            duration_s: 600.0,
            frame_rate: crate::source::synthetic::FRAME_RATE,
            response_rate: crate::source::synthetic::RESPONSE_RATE,
            height: crate::source::synthetic::FRAME.0,
            width: crate::source::synthetic::FRAME.1,
        }
    }

    /// The same from the integers a `.enigma` file holds: negative counts
    /// are an error; a negative seed is taken as its two's-complement bits.
    pub fn from_ints(
        sessions: i64,
        neurons: i64,
        seed: i64,
    ) -> Result<MouseV1Config, SyntheticError> {
        let count = |name: &str, v: i64| {
            usize::try_from(v).map_err(|_| {
                SyntheticError::config(format!("`{name}` must be a positive count, not {v}"))
            })
        };
        let config = MouseV1Config::new(
            count("sessions", sessions)?,
            count("neurons", neurons)?,
            seed as u64,
        );
        config.validate()?;
        Ok(config)
    }

    /// The same with each session's own neuron count, as
    /// `synthetic.mouse_v1(neurons: [40, 56, 72])` asks: one count per
    /// session, each at least 1.
    pub fn with_session_neurons(mut self, counts: &[i64]) -> Result<MouseV1Config, SyntheticError> {
        if counts.len() != self.sessions {
            return Err(SyntheticError::config(format!(
                "`neurons` lists {} counts for {} sessions",
                counts.len(),
                self.sessions
            )));
        }
        let counts: Vec<usize> = counts
            .iter()
            .map(|&v| {
                usize::try_from(v).ok().filter(|&v| v >= 1).ok_or_else(|| {
                    SyntheticError::config(format!("`neurons` must be positive counts, not {v}"))
                })
            })
            .collect::<Result<_, _>>()?;
        self.neurons = counts.iter().copied().max().unwrap_or(self.neurons);
        self.session_neurons = counts;
        self.validate()?;
        Ok(self)
    }

    /// Session `s`'s neuron count.
    pub fn neurons_of(&self, s: usize) -> usize {
        self.session_neurons.get(s).copied().unwrap_or(self.neurons)
    }

    /// The same with frames of `(height, width)` pixels, as
    /// `synthetic.mouse_v1(height: h, width: w)` asks.
    pub fn with_frame(
        mut self,
        (height, width): (i64, i64),
    ) -> Result<MouseV1Config, SyntheticError> {
        let size = |name: &str, v: i64| {
            usize::try_from(v)
                .ok()
                .filter(|&v| (1..=4096).contains(&v))
                .ok_or_else(|| {
                    SyntheticError::config(format!("`{name}` must be 1 to 4096 pixels, not {v}"))
                })
        };
        self.height = size("height", height)?;
        self.width = size("width", width)?;
        self.validate()?;
        Ok(self)
    }

    /// Frames per session, when the duration makes them whole.
    pub fn frames(&self) -> Option<usize> {
        whole(self.duration_s * f64::from(self.frame_rate))
    }

    /// Response samples per session, when the duration makes them whole.
    pub fn response_samples(&self) -> Option<usize> {
        whole(self.duration_s * f64::from(self.response_rate))
    }

    /// An estimate of the bytes [`MouseV1::new`] holds at its peak: per
    /// session the behaviour, responses and noise-free calcium, true rates,
    /// receptive fields, the build's two projection arrays and spikes at an
    /// assumed 20 Hz mean (the rates are capped at 200 Hz), plus one frame.
    /// Computed in floating point so that no size can overflow it.
    pub fn memory_bytes(&self) -> f64 {
        let f = |v: usize| v as f64;
        let frames = self.duration_s.max(0.0) * f64::from(self.frame_rate);
        let samples = self.duration_s.max(0.0) * f64::from(self.response_rate);
        let (n, pixels) = (f(self.neurons), f(self.height) * f(self.width));
        let per_session = 4.0
            * (frames * 4.0 + 2.0 * samples * n + 3.0 * frames * n + 2.0 * n * pixels)
            + 8.0 * 20.0 * self.duration_s.max(0.0) * n;
        f(self.sessions) * per_session + 8.0 * pixels
    }

    /// Checks every field, with a message naming the one at fault.
    pub fn validate(&self) -> Result<(), SyntheticError> {
        let bad = |m: String| Err(SyntheticError::config(m));
        if self.sessions == 0 {
            return bad("`sessions` must be at least 1".into());
        }
        if self.neurons == 0 {
            return bad("`neurons` must be at least 1".into());
        }
        for (name, rate) in [
            ("frame_rate", self.frame_rate),
            ("response_rate", self.response_rate),
        ] {
            if !(1..=1000).contains(&rate) {
                return bad(format!("`{name}` must be 1 to 1000 Hz, not {rate}"));
            }
        }
        for (name, size) in [("height", self.height), ("width", self.width)] {
            if !(8..=1024).contains(&size) {
                return bad(format!("`{name}` must be 8 to 1024 pixels, not {size}"));
            }
        }
        let d = self.duration_s;
        if !d.is_finite() || d <= 0.0 {
            return bad(format!(
                "`duration` must be a positive number of seconds, not {d}"
            ));
        }
        if d > 7.0 * 86_400.0 {
            return bad(format!(
                "`duration` of {d} s is longer than the 7 days the simulator allows"
            ));
        }
        if self.frames().is_none() || self.response_samples().is_none() {
            return bad(format!(
                "`duration` of {d} s is not a whole number of frames at {} Hz and of samples at {} Hz",
                self.frame_rate, self.response_rate
            ));
        }
        let gib = self.memory_bytes() / f64::from(1u32 << 30);
        if gib > (MAX_BYTES >> 30) as f64 {
            let need = if gib < 1e6 {
                format!("about {gib:.1} GiB")
            } else {
                "over a million GiB".to_string()
            };
            return Err(SyntheticError {
                kind: SyntheticErrorKind::TooLarge,
                message: format!(
                    "synthetic.mouse_v1: {} sessions of {} neurons for {d} s would need {need}, over the {} GiB the simulator allows",
                    self.sessions,
                    self.neurons,
                    MAX_BYTES >> 30
                ),
            });
        }
        Ok(())
    }
}

/// `x` as a count when it is within 1e-6 of a whole number (durations like
/// 0.1 s times 30 Hz are not exact in binary).
fn whole(x: f64) -> Option<usize> {
    let r = x.round();
    ((1.0..=1e12).contains(&r) && (x - r).abs() <= 1e-6).then_some(r as usize)
}

/// Why a configuration or a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyntheticErrorKind {
    /// A field of the configuration is out of range.
    InvalidConfig,
    /// The configuration would need more memory than [`MAX_BYTES`].
    TooLarge,
    /// A frame or a neuron index past the end of a session.
    OutOfRange,
    /// An output buffer of the wrong length.
    BufferSize,
}

/// A refused configuration or request, with a sentence for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticError {
    pub kind: SyntheticErrorKind,
    pub message: String,
}

impl SyntheticError {
    fn config(message: String) -> SyntheticError {
        SyntheticError {
            kind: SyntheticErrorKind::InvalidConfig,
            message: format!("synthetic.mouse_v1: {message}"),
        }
    }
}

impl fmt::Display for SyntheticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SyntheticError {}

/// The sizes one session is built with, shared by the submodules.
#[derive(Clone, Debug)]
pub struct Geometry {
    pub frames: usize,
    pub samples: usize,
    pub neurons: usize,
    pub height: usize,
    pub width: usize,
    pub frame_rate: u32,
    pub response_rate: u32,
}

/// The ground truth of one session.
#[derive(Clone, Debug)]
pub struct Truth {
    /// Every neuron's parameters.
    pub neurons: Vec<NeuronTruth>,
    /// Receptive field images `[N, H * W]`, unit L2 norm: a simple cell's
    /// filter, or a complex cell's even (phase) filter.
    pub rf: Vec<f32>,
    /// The quadrature partners `[N, H * W]` of complex cells; zero rows for
    /// simple cells.
    pub rf_quadrature: Vec<f32>,
    /// Firing rates `[frames, N]`, Hz, constant within each frame.
    pub rates: Vec<f32>,
    /// Noise-free calcium `[samples, N]`: the response before noise.
    pub calcium: Vec<f32>,
}

impl Truth {
    /// Neuron `neuron`'s receptive field image (`H * W`, row-major).
    pub fn rf(&self, neuron: usize) -> Option<&[f32]> {
        self.row(&self.rf, neuron)
    }

    /// A complex cell's quadrature partner (zeros for a simple cell).
    pub fn rf_quadrature(&self, neuron: usize) -> Option<&[f32]> {
        self.row(&self.rf_quadrature, neuron)
    }

    /// Row `neuron` of an `[N, H * W]` array, checked all the way.
    fn row<'a>(&self, array: &'a [f32], neuron: usize) -> Option<&'a [f32]> {
        let pixels = array.len().checked_div(self.neurons.len())?;
        let start = neuron.checked_mul(pixels)?;
        array.get(start..start.checked_add(pixels)?)
    }
}

/// One simulated recording session.
#[derive(Clone, Debug)]
pub struct Session {
    geo: Geometry,
    stimulus: Stimulus,
    behavior: Vec<f32>,
    response: Vec<f32>,
    spikes: Vec<Vec<f64>>,
    truth: Truth,
}

impl Session {
    fn build(config: &MouseV1Config, geo: Geometry, index: usize) -> Session {
        let key = derive(derive(rng::mix64(config.seed), 0), index as u64);
        let stimulus = Stimulus::new(
            derive(key, STIMULUS),
            geo.frames,
            geo.frame_rate,
            geo.height,
            geo.width,
        );
        let mut behavior_rng = rng::SplitMix64::new(derive(key, BEHAVIOR));
        let behavior = behavior::simulate(&mut behavior_rng, geo.frames, geo.frame_rate);
        let keys = neurons::Keys {
            params: derive(key, NEURON_PARAMS),
            spikes: derive(key, SPIKES),
            noise: derive(key, NOISE),
        };
        let out = neurons::simulate(&keys, &geo, &stimulus, &behavior);
        Session {
            geo,
            stimulus,
            behavior,
            response: out.response,
            spikes: out.spikes,
            truth: out.truth,
        }
    }

    /// Video (and behaviour) frames.
    pub fn frames(&self) -> usize {
        self.geo.frames
    }

    /// Response samples.
    pub fn response_samples(&self) -> usize {
        self.geo.samples
    }

    /// Neurons.
    pub fn neurons(&self) -> usize {
        self.geo.neurons
    }

    /// Frame height and width, pixels.
    pub fn frame_size(&self) -> (usize, usize) {
        (self.geo.height, self.geo.width)
    }

    /// Writes frames `start..start + len` into `out` (`[len, 1, H, W]`,
    /// row-major, values in `[0, 1]`), computing each from its index.
    pub fn video(&self, start: usize, len: usize, out: &mut [f32]) -> Result<(), SyntheticError> {
        let pixels = self.geo.height * self.geo.width;
        let end = start.checked_add(len).filter(|&e| e <= self.geo.frames);
        if end.is_none() {
            return Err(SyntheticError {
                kind: SyntheticErrorKind::OutOfRange,
                message: format!(
                    "frames {start}..{start}+{len} are past the session's {} frames",
                    self.geo.frames
                ),
            });
        }
        if Some(out.len()) != len.checked_mul(pixels) {
            return Err(SyntheticError {
                kind: SyntheticErrorKind::BufferSize,
                message: format!(
                    "a buffer for {len} frames of {pixels} pixels has {} values",
                    out.len()
                ),
            });
        }
        for (t, frame) in (start..).zip(out.chunks_exact_mut(pixels)) {
            self.stimulus.render(t, frame);
        }
        Ok(())
    }

    /// Writes frame `t` into `out` (`H * W` values).
    pub fn video_frame(&self, t: usize, out: &mut [f32]) -> Result<(), SyntheticError> {
        self.video(t, 1, out)
    }

    /// The stimulus segments, in time order (part of the ground truth).
    pub fn segments(&self) -> &[Segment] {
        self.stimulus.segments()
    }

    /// Behaviour `[frames, 4]`, row-major: running speed (cm/s), pupil
    /// diameter (mm), pupil x and y (degrees); see [`BEHAVIOR_COLUMNS`].
    pub fn behavior(&self) -> &[f32] {
        &self.behavior
    }

    /// Calcium responses `[samples, N]`, row-major, dF/F with noise.
    pub fn response(&self) -> &[f32] {
        &self.response
    }

    /// Neuron `neuron`'s spike times in seconds, ascending.
    pub fn spikes(&self, neuron: usize) -> Option<&[f64]> {
        self.spikes.get(neuron).map(Vec::as_slice)
    }

    /// The ground truth.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }
}

/// Builds every session, spread over the machine's cores: sessions are
/// independent (each has its own streams), so the result is the same as a
/// sequential build, whatever the thread count. When threads cannot be
/// started, the remaining sessions are built on the calling thread.
fn build_sessions(config: &MouseV1Config, geo: &Geometry) -> Vec<Session> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(config.sessions);
    let mut slots: Vec<Option<Session>> = vec![None; config.sessions];
    if threads > 1 {
        // Thread k builds sessions k, k + threads, k + 2 threads, ...
        std::thread::scope(|scope| {
            let mut chunks: Vec<Vec<(usize, &mut Option<Session>)>> =
                (0..threads).map(|_| Vec::new()).collect();
            for (s, slot) in slots.iter_mut().enumerate() {
                chunks[s % threads].push((s, slot));
            }
            for chunk in chunks {
                let work = move || {
                    for (s, slot) in chunk {
                        *slot = Some(Session::build(config, geo_of(geo, config, s), s));
                    }
                };
                // A thread that cannot start leaves its slots empty; they
                // are filled below.
                let _ = std::thread::Builder::new().spawn_scoped(scope, work);
            }
        });
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(s, slot)| slot.unwrap_or_else(|| Session::build(config, geo_of(geo, config, s), s)))
        .collect()
}

/// Session `s`'s geometry: `geo` with its own neuron count.
fn geo_of(geo: &Geometry, config: &MouseV1Config, s: usize) -> Geometry {
    Geometry {
        neurons: config.neurons_of(s),
        ..geo.clone()
    }
}

/// A simulated mouse V1: every session, built eagerly.
#[derive(Clone, Debug)]
pub struct MouseV1 {
    config: MouseV1Config,
    sessions: Vec<Session>,
}

impl MouseV1 {
    /// Validates `config` and simulates every session.
    pub fn new(config: MouseV1Config) -> Result<MouseV1, SyntheticError> {
        config.validate()?;
        let (Some(frames), Some(samples)) = (config.frames(), config.response_samples()) else {
            return Err(SyntheticError::config(
                "the duration gives no whole frame count".into(),
            ));
        };
        let geo = Geometry {
            frames,
            samples,
            neurons: config.neurons,
            height: config.height,
            width: config.width,
            frame_rate: config.frame_rate,
            response_rate: config.response_rate,
        };
        let sessions = build_sessions(&config, &geo);
        Ok(MouseV1 { config, sessions })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &MouseV1Config {
        &self.config
    }

    /// The number of sessions.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Session `s`, if there is one.
    pub fn session(&self, s: usize) -> Option<&Session> {
        self.sessions.get(s)
    }
}
