//! The `train` block as the runtime reads it: optimiser, learning-rate
//! schedule, steps, batch, precision, clipping, the non-finite policy,
//! checkpoints and evaluation.
//!
//! `check` has already validated every setting against its schema (E0207,
//! E0208 and friends), so this module only evaluates values; what the
//! checker accepts but the runtime cannot do yet (the `lion` optimiser,
//! say) is a [`ConfigError`] that names the setting.

use std::fmt;

use crate::ir::types::Value;
use crate::resolve::Program;
use crate::syntax::ast::{EntryKind, Expr, ExprKind, ItemKind};

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
}

impl Optimizer {
    /// The peak learning rate, which the schedule scales.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::AdamW { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::Sgd { lr, .. } => *lr,
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

/// The `train` block, evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub steps: u64,
    /// The global batch: windows per optimiser step.
    pub batch: u64,
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
    pub eval_split: String,
    pub eval_batches: u64,
}

/// A setting the runtime cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "train setting `{}`: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        message: message.into(),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Size(s) => s.as_const().map(|c| c as f64),
        _ => None,
    }
}

/// A call's named arguments, evaluated: `adamw(lr: 3e-3, betas: (0.9,
/// 0.95))` gives `lr` and `betas` (a tuple is kept as its expressions).
struct Call<'a> {
    name: String,
    args: Vec<(String, &'a Expr)>,
}

impl<'a> Call<'a> {
    fn of(e: &'a Expr) -> Option<Call<'a>> {
        let ExprKind::Call { callee, args } = &e.kind else {
            return None;
        };
        let ExprKind::Path(path) = &callee.kind else {
            return None;
        };
        Some(Call {
            name: path.last()?.name.clone(),
            args: args
                .iter()
                .filter_map(|a| Some((a.name.as_ref()?.name.clone(), &a.value)))
                .collect(),
        })
    }

    fn num(&self, program: &Program, key: &str, default: f64) -> Result<f64, ConfigError> {
        match self.args.iter().find(|(k, _)| k == key) {
            None => Ok(default),
            Some((_, e)) => number(&crate::check::constant(program, e)).ok_or_else(|| {
                err(
                    &self.name,
                    format!("`{key}` must be a number known before the run"),
                )
            }),
        }
    }

    fn pair(
        &self,
        program: &Program,
        key: &str,
        default: (f64, f64),
    ) -> Result<(f64, f64), ConfigError> {
        match self.args.iter().find(|(k, _)| k == key) {
            None => Ok(default),
            Some((_, e)) => match &e.kind {
                ExprKind::Tuple(items) if items.len() == 2 => {
                    let a = number(&crate::check::constant(program, &items[0]));
                    let b = number(&crate::check::constant(program, &items[1]));
                    a.zip(b)
                        .ok_or_else(|| err(&self.name, format!("`{key}` must be two numbers")))
                }
                _ => Err(err(&self.name, format!("`{key}` must be a pair `(a, b)`"))),
            },
        }
    }
}

impl TrainConfig {
    /// The split `eval { split: }` names: `test`, else validation (the
    /// checker allows only `val` and `test`).
    pub fn eval_split(&self) -> crate::dataset::windows::Split {
        if self.eval_split == "test" {
            crate::dataset::windows::Split::Test
        } else {
            crate::dataset::windows::Split::Val
        }
    }

    /// The root file's `train` block. An experiment without one cannot be
    /// run.
    pub fn of(program: &Program) -> Result<TrainConfig, ConfigError> {
        let block = program
            .root_module()
            .ast
            .as_ref()
            .and_then(|ast| {
                ast.items.iter().find_map(|i| match &i.kind {
                    ItemKind::Train(b) => Some(b),
                    _ => None,
                })
            })
            .ok_or_else(|| err("train", "the experiment has no `train` block"))?;
        let mut settings: Vec<(String, &Expr)> = Vec::new();
        let mut blocks: Vec<(String, Vec<(String, &Expr)>)> = Vec::new();
        for entry in &block.entries {
            match &entry.kind {
                EntryKind::Setting { key, value } => settings.push((key.name.clone(), value)),
                EntryKind::Block { key, block } => blocks.push((
                    key.name.clone(),
                    block
                        .entries
                        .iter()
                        .filter_map(|e| match &e.kind {
                            EntryKind::Setting { key, value } => Some((key.name.clone(), value)),
                            _ => None,
                        })
                        .collect(),
                )),
                EntryKind::Mapping { .. } => {}
            }
        }
        let get = |list: &[(String, &Expr)], key: &str| -> Value {
            list.iter()
                .find(|(k, _)| k == key)
                .map(|(_, e)| crate::check::constant(program, e))
                .unwrap_or(Value::Opaque)
        };
        let int = |list: &[(String, &Expr)], key: &str| -> Option<u64> {
            number(&get(list, key))
                .filter(|v| *v >= 0.0)
                .map(|v| v as u64)
        };
        let symbol = |list: &[(String, &Expr)], key: &str| -> Option<String> {
            match get(list, key) {
                Value::Symbol(s) | Value::Str(s) => Some(s),
                _ => None,
            }
        };
        let steps =
            int(&settings, "steps").ok_or_else(|| err("steps", "must be a whole number"))?;
        let batch =
            int(&settings, "batch").ok_or_else(|| err("batch", "must be a whole number"))?;
        let optimizer = optimizer(program, &settings)?;
        let schedule = match settings.iter().find(|(k, _)| k == "schedule") {
            None => Schedule::Constant,
            Some((_, e)) => schedule(program, e)?,
        };
        let precision = match symbol(&settings, "precision").as_deref() {
            None | Some("f32") => Precision::F32,
            Some("bf16") => Precision::Bf16,
            Some("f16") => Precision::F16,
            Some(other) => return Err(err("precision", format!("unknown precision `{other}`"))),
        };
        let on_nonfinite = match symbol(&settings, "on_nonfinite").as_deref() {
            Some("skip") => NonFinite::Skip,
            _ => NonFinite::Stop,
        };
        let sub = |name: &str| -> &[(String, &Expr)] {
            blocks
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.as_slice())
                .unwrap_or(&[])
        };
        let has = |name: &str| blocks.iter().any(|(n, _)| n == name);
        Ok(TrainConfig {
            optimizer,
            schedule,
            steps,
            batch,
            precision,
            clip: number(&get(&settings, "clip")),
            on_nonfinite,
            seed: int(&settings, "seed").unwrap_or(0),
            cuda: symbol(&settings, "device").as_deref() == Some("cuda"),
            checkpoint_every: if has("checkpoint") {
                Some(int(sub("checkpoint"), "every").unwrap_or(steps.max(1)))
            } else {
                None
            },
            checkpoint_keep: int(sub("checkpoint"), "keep").unwrap_or(1).max(1) as usize,
            eval_every: if has("eval") {
                Some(int(sub("eval"), "every").unwrap_or(steps.max(1)))
            } else {
                None
            },
            eval_split: symbol(sub("eval"), "split").unwrap_or_else(|| "val".to_string()),
            eval_batches: int(sub("eval"), "batches").unwrap_or(1).max(1),
        })
    }
}

fn optimizer(program: &Program, settings: &[(String, &Expr)]) -> Result<Optimizer, ConfigError> {
    let e = settings
        .iter()
        .find(|(k, _)| k == "optimizer")
        .map(|(_, e)| *e)
        .ok_or_else(|| err("optimizer", "is required"))?;
    let c =
        Call::of(e).ok_or_else(|| err("optimizer", "must be a call such as `adamw(lr: 3e-4)`"))?;
    let lr = c.num(program, "lr", 1e-3)?;
    match c.name.as_str() {
        "adamw" => Ok(Optimizer::AdamW {
            lr,
            betas: c.pair(program, "betas", (0.9, 0.999))?,
            eps: c.num(program, "eps", 1e-8)?,
            weight_decay: c.num(program, "weight_decay", 0.01)?,
        }),
        "adam" => Ok(Optimizer::Adam {
            lr,
            betas: c.pair(program, "betas", (0.9, 0.999))?,
            eps: c.num(program, "eps", 1e-8)?,
            weight_decay: c.num(program, "weight_decay", 0.0)?,
        }),
        "sgd" => Ok(Optimizer::Sgd {
            lr,
            momentum: c.num(program, "momentum", 0.0)?,
            weight_decay: c.num(program, "weight_decay", 0.0)?,
        }),
        other => Err(err(
            "optimizer",
            format!("`{other}` is checked but not run yet; use `adamw`, `adam` or `sgd`"),
        )),
    }
}

fn schedule(program: &Program, e: &Expr) -> Result<Schedule, ConfigError> {
    let c = Call::of(e).ok_or_else(|| err("schedule", "must be a call such as `constant()`"))?;
    let warmup = c.num(program, "warmup", 0.0)?.max(0.0) as u64;
    let min_ratio = c.num(program, "min_ratio", 0.0)?;
    Ok(match c.name.as_str() {
        "constant" => Schedule::Constant,
        "linear_warmup" => Schedule::LinearWarmup { warmup },
        "warmup_cosine" => Schedule::WarmupCosine { warmup, min_ratio },
        "warmup_linear" => Schedule::WarmupLinear { warmup, min_ratio },
        "cosine" => Schedule::Cosine { min_ratio },
        "step_decay" => Schedule::StepDecay {
            every: c.num(program, "every", 1.0)?.max(1.0) as u64,
            gamma: c.num(program, "gamma", 0.1)?,
        },
        other => return Err(err("schedule", format!("unknown schedule `{other}`"))),
    })
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
