//! The `train` block as the checker evaluated it: optimiser, learning-rate
//! schedule, steps, batch, precision, clipping, the non-finite policy,
//! checkpoints and evaluation, with every default filled in.
//!
//! `check::train` builds it; the planner reads the batch and accumulation,
//! and the runtime everything else. Every optimiser and schedule here runs.

use super::data::Split;

/// The optimiser and its hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    /// Adam with decoupled weight decay (Loshchilov and Hutter, 2019):
    /// `w -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)`.
    AdamW {
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
    },
    /// Adam with L2 regularisation: `weight_decay * w` is added to the
    /// gradient before the moments, as `torch.optim.Adam` does.
    Adam {
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
    },
    /// Stochastic gradient descent with (heavy-ball) momentum and
    /// decoupled weight decay.
    Sgd {
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    },
    /// Lion (Chen et al., 2023, "Symbolic Discovery of Optimization
    /// Algorithms"): the sign of an interpolation of momentum and
    /// gradient, with decoupled weight decay; one moment per weight.
    Lion {
        lr: f64,
        betas: (f64, f64),
        weight_decay: f64,
    },
}

impl Optimizer {
    /// The peak learning rate, which the schedule scales.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::AdamW { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::Sgd { lr, .. }
            | Optimizer::Lion { lr, .. } => *lr,
        }
    }
}

/// How the learning rate changes over the run, as a factor of the peak.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Linear from `1 / warmup` of the peak to the peak over `warmup`
    /// steps, then constant.
    LinearWarmup {
        warmup: u64,
    },
    /// Linear warm-up, then a half cosine from the peak down to
    /// `min_ratio` of it at the last step.
    WarmupCosine {
        warmup: u64,
        min_ratio: f64,
    },
    /// Linear warm-up, then linear decay to `min_ratio` at the last step.
    WarmupLinear {
        warmup: u64,
        min_ratio: f64,
    },
    /// A half cosine from the peak to `min_ratio` of it, no warm-up.
    Cosine {
        min_ratio: f64,
    },
    /// Multiply by `gamma` every `every` steps.
    StepDecay {
        every: u64,
        gamma: f64,
    },
}

impl Schedule {
    /// The factor of the peak learning rate at optimiser step `step`
    /// (0-based) of a run of `total` steps.
    pub fn factor(&self, step: u64, total: u64) -> f64 {
        let warm = |w: u64| {
            if w > 0 && step < w {
                Some((step + 1) as f64 / w as f64)
            } else {
                None
            }
        };
        // Progress through the decay phase, 0 at its first step and 1 at
        // the run's last step.
        let progress = |w: u64| {
            let span = total.saturating_sub(w).saturating_sub(1);
            if span == 0 {
                1.0
            } else {
                (step.saturating_sub(w) as f64 / span as f64).min(1.0)
            }
        };
        match *self {
            Schedule::Constant => 1.0,
            Schedule::LinearWarmup { warmup } => warm(warmup).unwrap_or(1.0),
            Schedule::WarmupCosine { warmup, min_ratio } => warm(warmup).unwrap_or_else(|| {
                let c = 0.5 * (1.0 + (std::f64::consts::PI * progress(warmup)).cos());
                min_ratio + (1.0 - min_ratio) * c
            }),
            Schedule::WarmupLinear { warmup, min_ratio } => {
                warm(warmup).unwrap_or_else(|| 1.0 - (1.0 - min_ratio) * progress(warmup))
            }
            Schedule::Cosine { min_ratio } => {
                let c = 0.5 * (1.0 + (std::f64::consts::PI * progress(0)).cos());
                min_ratio + (1.0 - min_ratio) * c
            }
            Schedule::StepDecay { every, gamma } => {
                gamma.powi((step / every.max(1)).min(i32::MAX as u64) as i32)
            }
        }
    }
}

/// What to do when the loss or a gradient is NaN or infinite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinite {
    /// Stop the run with an error naming the step and the tensor; the last
    /// checkpoint stays as it was.
    Stop,
    /// Drop the step's gradients, leave the weights and the optimiser
    /// state unchanged, and go on with the next batch.
    Skip,
}

/// The compute precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// Autocast to bf16 for matrix products; master weights and optimiser
    /// state stay f32.
    Bf16,
    F16,
}

/// The `train` block, evaluated, with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub steps: u64,
    /// The global batch: windows per optimiser step.
    pub batch: u64,
    /// Rounds of micro-batches accumulated per optimiser step.
    pub accumulate: u64,
    pub precision: Precision,
    /// Clip the global gradient norm to this value.
    pub clip: Option<f64>,
    pub on_nonfinite: NonFinite,
    pub seed: u64,
    /// `device: cuda` in the experiment.
    pub cuda: bool,
    /// Save every `every` steps, keep the newest `keep`.
    pub checkpoint_every: Option<u64>,
    pub checkpoint_keep: usize,
    /// Evaluate every `every` steps on `batches` batches of `split`.
    pub eval_every: Option<u64>,
    pub eval_split: Split,
    pub eval_batches: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_rises_linearly_to_the_peak() {
        let s = Schedule::LinearWarmup { warmup: 4 };
        let f: Vec<f64> = (0..6).map(|i| s.factor(i, 10)).collect();
        assert_eq!(f, vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn warmup_cosine_peaks_then_reaches_the_floor_at_the_last_step() {
        let s = Schedule::WarmupCosine {
            warmup: 10,
            min_ratio: 0.1,
        };
        assert!((s.factor(0, 110) - 0.1).abs() < 1e-12);
        assert!((s.factor(9, 110) - 1.0).abs() < 1e-12);
        assert!((s.factor(10, 110) - 1.0).abs() < 1e-12);
        // Halfway through the decay the cosine is at its midpoint.
        let mid = s.factor(10 + 99 / 2, 110);
        assert!(
            (mid - (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * 49.0 / 99.0).cos()))).abs()
                < 1e-12
        );
        assert!((s.factor(109, 110) - 0.1).abs() < 1e-12);
        // Monotone after the warm-up.
        assert!((10..109).all(|i| s.factor(i + 1, 110) <= s.factor(i, 110)));
    }

    #[test]
    fn step_decay_multiplies_every_period() {
        let s = Schedule::StepDecay {
            every: 3,
            gamma: 0.5,
        };
        let f: Vec<f64> = (0..7).map(|i| s.factor(i, 7)).collect();
        assert_eq!(f, vec![1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]);
    }
}
