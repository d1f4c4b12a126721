//! Behaviour: running speed, pupil size and pupil position at the frame
//! rate, from a few smooth latent processes.
//!
//! The latents are a two-state (rest/run) Markov chain, an Ornstein-Uhlenbeck
//! (OU) speed fluctuation within bouts, and a slow OU "arousal". Running
//! speed follows the state smoothly; the pupil dilates with running and
//! arousal and relaxes slowly; the eye makes saccade-like jumps, a little
//! more often while running, and otherwise drifts back towards the centre.
//! Each process is updated once per frame with the exact OU transition, so
//! the statistics do not depend on the frame rate. Equations and constants
//! are in `docs/synthetic.md`.

use crate::base::rng::{exp, SplitMix64};

/// The columns of the behaviour array, in order.
pub const COLUMNS: [&str; crate::source::synthetic::BEHAVIOR_COLUMNS] =
    ["running_speed", "pupil_size", "pupil_x", "pupil_y"];

/// Mean rest and run bout durations, seconds.
const MEAN_REST_S: f64 = 20.0;
const MEAN_RUN_S: f64 = 8.0;
/// A bout's mean speed is uniform in this range, cm/s.
const BOUT_SPEED: (f64, f64) = (10.0, 35.0);
/// Within-bout speed fluctuation: OU time constant (s) and SD (cm/s).
const SPEED_TAU_S: f64 = 1.5;
const SPEED_SD: f64 = 4.0;
/// How fast the speed follows its target, s.
const SPEED_LAG_S: f64 = 0.4;
/// Arousal: OU time constant (s); its SD is 1.
const AROUSAL_TAU_S: f64 = 15.0;
/// The pupil diameter at rest with arousal 0 (mm), its dilation with
/// running (mm at saturating speed) and with one SD of arousal, its time
/// constant (s) and its smallest value.
pub const PUPIL_REST_MM: f64 = 1.0;
const PUPIL_RUN_MM: f64 = 0.5;
const PUPIL_AROUSAL_MM: f64 = 0.15;
const PUPIL_TAU_S: f64 = 1.0;
const PUPIL_MIN_MM: f64 = 0.2;
/// The speed (cm/s) at which running's effects are half their maximum:
/// pupil dilation and the neurons' gains use `v / (v + RUN_HALF)`.
pub const RUN_HALF_CM_S: f64 = 10.0;
/// Saccades: rate at rest and extra rate at full running (Hz), the SD of
/// a jump's target (degrees), how much of the old position a jump keeps,
/// the jump's duration (s) and the drift back to centre (time constant, s).
const SACCADE_RATE_HZ: f64 = 0.2;
const SACCADE_RUN_HZ: f64 = 0.6;
const SACCADE_SD_DEG: f64 = 4.0;
const SACCADE_KEEP: f64 = 0.5;
const SACCADE_S: f64 = 0.05;
const EYE_DRIFT_TAU_S: f64 = 5.0;
/// Fixational jitter of the eye position, degrees per frame.
const EYE_JITTER_DEG: f64 = 0.03;

/// Running's saturating effect, in `[0, 1)`.
pub fn run_level(speed: f64) -> f64 {
    let v = speed.max(0.0);
    v / (v + RUN_HALF_CM_S)
}

/// The pupil's deviation from rest in units of its full running dilation,
/// the second behavioural regressor of the neurons' gains.
pub fn pupil_level(pupil_mm: f64) -> f64 {
    (pupil_mm - PUPIL_REST_MM) / PUPIL_RUN_MM
}

/// One exact OU step: `x' = a x + sd sqrt(1 - a^2) n` with `a = e^(-dt/tau)`,
/// which keeps the stationary SD at `sd` for any step.
struct Ou {
    decay: f64,
    kick: f64,
}

impl Ou {
    fn new(dt: f64, tau: f64, sd: f64) -> Ou {
        let decay = exp(-dt / tau);
        Ou {
            decay,
            kick: sd * (1.0 - decay * decay).sqrt(),
        }
    }

    fn step(&self, x: f64, rng: &mut SplitMix64) -> f64 {
        self.decay * x + self.kick * rng.normal()
    }
}

/// Simulates `frames` frames at `frame_rate` Hz from `rng` and returns the
/// row-major `[frames, 4]` array of [`COLUMNS`].
pub fn simulate(rng: &mut SplitMix64, frames: usize, frame_rate: u32) -> Vec<f32> {
    let dt = 1.0 / f64::from(frame_rate);
    let to_run = 1.0 - exp(-dt / MEAN_REST_S);
    let to_rest = 1.0 - exp(-dt / MEAN_RUN_S);
    let speed_ou = Ou::new(dt, SPEED_TAU_S, SPEED_SD);
    let arousal_ou = Ou::new(dt, AROUSAL_TAU_S, 1.0);
    let follow = 1.0 - exp(-dt / SPEED_LAG_S);
    let dilate = 1.0 - exp(-dt / PUPIL_TAU_S);
    let recentre = exp(-dt / EYE_DRIFT_TAU_S);
    let saccade_frames = ((SACCADE_S / dt).round() as usize).max(1);

    // Sessions start at rest with probability 2/3, the chain's stationary
    // share of rest, and with the other latents drawn from their
    // stationary laws, so the first seconds are not special.
    let mut running = rng.uniform() < MEAN_RUN_S / (MEAN_RUN_S + MEAN_REST_S);
    let mut bout_speed = rng.range(BOUT_SPEED.0, BOUT_SPEED.1);
    let mut wobble = SPEED_SD * rng.normal();
    let mut arousal = rng.normal();
    let mut speed = if running { bout_speed } else { 0.0 };
    let mut pupil = PUPIL_REST_MM + PUPIL_RUN_MM * run_level(speed) + PUPIL_AROUSAL_MM * arousal;
    let mut eye = [0.0f64; 2];
    // A saccade in flight: the target and the frames left to reach it.
    let mut target = [0.0f64; 2];
    let mut flight = 0usize;

    let mut out = Vec::with_capacity(frames.saturating_mul(COLUMNS.len()));
    for _ in 0..frames {
        // The rest/run chain; a new bout draws its own mean speed.
        if running {
            running = rng.uniform() >= to_rest;
        } else if rng.uniform() < to_run {
            running = true;
            bout_speed = rng.range(BOUT_SPEED.0, BOUT_SPEED.1);
        }
        wobble = speed_ou.step(wobble, rng);
        arousal = arousal_ou.step(arousal, rng);
        let goal = if running {
            (bout_speed + wobble).max(0.0)
        } else {
            0.0
        };
        speed = (speed + (goal - speed) * follow).max(0.0);

        let pupil_goal =
            PUPIL_REST_MM + PUPIL_RUN_MM * run_level(speed) + PUPIL_AROUSAL_MM * arousal;
        pupil = (pupil + (pupil_goal - pupil) * dilate).max(PUPIL_MIN_MM);

        // Saccades: a Bernoulli approximation of a Poisson process whose
        // rate grows with running; a jump moves the eye to its target in a
        // few frames, and between jumps the eye drifts back and jitters.
        let rate = SACCADE_RATE_HZ + SACCADE_RUN_HZ * run_level(speed);
        if flight == 0 && rng.uniform() < rate * dt {
            for (t, e) in target.iter_mut().zip(&eye) {
                *t = SACCADE_KEEP * e + SACCADE_SD_DEG * rng.normal();
            }
            flight = saccade_frames;
        }
        for (e, t) in eye.iter_mut().zip(&target) {
            if flight > 0 {
                *e += (t - *e) / flight as f64;
            } else {
                *e = *e * recentre + EYE_JITTER_DEG * rng.normal();
            }
        }
        flight = flight.saturating_sub(1);

        out.extend_from_slice(&[speed as f32, pupil as f32, eye[0] as f32, eye[1] as f32]);
    }
    out
}
