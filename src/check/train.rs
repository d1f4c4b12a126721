//! The `train` block evaluated into the IR's [`TrainConfig`], with every
//! default filled in.
//!
//! `settings.rs` has checked the block's schema (known keys, the kind of
//! each value). What is left is what only evaluation tells: that the
//! optimiser's and schedule's arguments are ones they take (E0207) and
//! numbers known before the run (E0208), and that the required numbers are
//! constants. Whatever this accepts, the runtime runs: every optimiser and
//! schedule the schema allows has an implementation.

use super::consts::Consts;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::data::Split;
use crate::ir::train::{NonFinite, Optimizer, Precision, Schedule, TrainConfig};
use crate::ir::types::Value;
use crate::resolve::closest;
use crate::syntax::ast::{Arg, ConfigBlock, EntryKind, Expr, ExprKind, Ident, ItemKind};

/// The root file's `train` block as a [`TrainConfig`], or `None` when the
/// file has none or a setting it needs could not be evaluated (reported).
pub(super) fn train_config(c: &mut Consts) -> Option<TrainConfig> {
    let program = c.program;
    c.module = program.root;
    let ast = program.root_module().ast.as_ref()?;
    let block = ast.items.iter().find_map(|i| match &i.kind {
        ItemKind::Train(b) => Some(b),
        _ => None,
    })?;
    let errors = c.diags.len();
    let mut r = Reader { c, block };
    let steps = r.whole("steps", None);
    let batch = r.whole("batch", None);
    let accumulate = r.whole("accumulate", Some(1));
    let seed = r.whole("seed", Some(0));
    let optimizer = r.optimizer();
    let schedule = r.schedule();
    let precision = match r.symbol("precision").as_deref() {
        Some("bf16") => Precision::Bf16,
        Some("f16") => Precision::F16,
        _ => Precision::F32,
    };
    let on_nonfinite = match r.symbol("on_nonfinite").as_deref() {
        Some("skip") => NonFinite::Skip,
        _ => NonFinite::Stop,
    };
    let cuda = r.symbol("device").as_deref() == Some("cuda");
    let clip = r.number("clip");
    let (steps, batch) = (steps?, batch?);
    let checkpoint = r.sub("checkpoint");
    let eval = r.sub("eval");
    let checkpoint_every = match checkpoint {
        Some(b) => Some(r.within(b).whole("every", Some(steps.max(1)))?),
        None => None,
    };
    let checkpoint_keep = match checkpoint {
        Some(b) => r.within(b).whole("keep", Some(1))?,
        None => 1,
    };
    let eval_every = match eval {
        Some(b) => Some(r.within(b).whole("every", Some(steps.max(1)))?),
        None => None,
    };
    let eval_batches = match eval {
        Some(b) => r.within(b).whole("batches", Some(1))?,
        None => 1,
    };
    let eval_split = match eval.and_then(|b| r.within(b).symbol("split")).as_deref() {
        Some("test") => Split::Test,
        _ => Split::Val,
    };
    let config = TrainConfig {
        optimizer: optimizer?,
        schedule: schedule?,
        steps,
        batch,
        accumulate: accumulate?.max(1),
        precision,
        clip,
        on_nonfinite,
        seed: seed?,
        cuda,
        checkpoint_every,
        checkpoint_keep: usize::try_from(checkpoint_keep.max(1)).unwrap_or(usize::MAX),
        eval_every,
        eval_split,
        eval_batches: eval_batches.max(1),
    };
    (c.diags.len() == errors).then_some(config)
}

/// Reads settings of one block, reporting what cannot be evaluated.
struct Reader<'c, 'p, 'b> {
    c: &'c mut Consts<'p>,
    block: &'b ConfigBlock,
}

impl<'p, 'b> Reader<'_, 'p, 'b> {
    fn within<'r>(&'r mut self, block: &'b ConfigBlock) -> Reader<'r, 'p, 'b> {
        Reader { c: self.c, block }
    }

    fn setting(&self, key: &str) -> Option<(&'b Ident, &'b Expr)> {
        self.block.entries.iter().find_map(|e| match &e.kind {
            EntryKind::Setting { key: k, value } if k.name == key => Some((k, value)),
            _ => None,
        })
    }

    fn sub(&self, key: &str) -> Option<&'b ConfigBlock> {
        self.block.entries.iter().find_map(|e| match &e.kind {
            EntryKind::Block { key: k, block } if k.name == key => Some(block),
            _ => None,
        })
    }

    fn invalid(&mut self, at: Span, message: String, help: &str) {
        let file = self.c.file();
        self.c.diags.push(
            Diagnostic::new(Code::E0208, message)
                .primary(file, at, "not known before the run")
                .help(help.to_string()),
        );
    }

    /// A whole number of at least 0; `default` when the setting is absent
    /// (a required setting's absence is `settings.rs`'s E0209).
    fn whole(&mut self, key: &str, default: Option<u64>) -> Option<u64> {
        let Some((_, e)) = self.setting(key) else {
            return default;
        };
        match self.c.eval(e) {
            Ok(Value::Size(s)) => s.as_const().and_then(|n| u64::try_from(n).ok()),
            // Reported already, or of the wrong kind (settings.rs).
            Ok(Value::Opaque) => {
                self.invalid(
                    e.span,
                    format!("`{key}` must be a whole number known before the run"),
                    "write a number, or a `dim` or `let` with a constant value",
                );
                None
            }
            _ => None,
        }
    }

    fn number(&mut self, key: &str) -> Option<f64> {
        let (_, e) = self.setting(key)?;
        match self.c.eval(e) {
            Ok(v) => as_number(&v),
            Err(()) => None,
        }
    }

    fn symbol(&mut self, key: &str) -> Option<String> {
        let (_, e) = self.setting(key)?;
        match self.c.eval(e) {
            Ok(Value::Symbol(s) | Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn optimizer(&mut self) -> Option<Optimizer> {
        // A missing or misspelt optimiser is the schema's E0209/E0208.
        let (_, e) = self.setting("optimizer")?;
        let call = Call::of(e)?;
        let known: &[&str] = match call.name {
            "adamw" | "adam" => &["lr", "betas", "eps", "weight_decay"],
            "sgd" => &["lr", "momentum", "weight_decay"],
            "lion" => &["lr", "betas", "weight_decay"],
            _ => return None,
        };
        self.unknown_args(&call, known, "optimizer")?;
        // The defaults of `torch.optim` (and lion-pytorch for Lion).
        let lr = self.arg(&call, "lr", if call.name == "lion" { 1e-4 } else { 1e-3 })?;
        Some(match call.name {
            "adamw" | "adam" => {
                let betas = self.pair(&call, "betas", (0.9, 0.999))?;
                let eps = self.arg(&call, "eps", 1e-8)?;
                let decoupled = call.name == "adamw";
                let weight_decay =
                    self.arg(&call, "weight_decay", if decoupled { 0.01 } else { 0.0 })?;
                if decoupled {
                    Optimizer::AdamW {
                        lr,
                        betas,
                        eps,
                        weight_decay,
                    }
                } else {
                    Optimizer::Adam {
                        lr,
                        betas,
                        eps,
                        weight_decay,
                    }
                }
            }
            "sgd" => Optimizer::Sgd {
                lr,
                momentum: self.arg(&call, "momentum", 0.0)?,
                weight_decay: self.arg(&call, "weight_decay", 0.0)?,
            },
            _ => Optimizer::Lion {
                lr,
                betas: self.pair(&call, "betas", (0.9, 0.99))?,
                weight_decay: self.arg(&call, "weight_decay", 0.0)?,
            },
        })
    }

    fn schedule(&mut self) -> Option<Schedule> {
        let Some((_, e)) = self.setting("schedule") else {
            return Some(Schedule::Constant);
        };
        let call = Call::of(e)?;
        let known: &[&str] = match call.name {
            "constant" => &[],
            "linear_warmup" => &["warmup"],
            "warmup_cosine" | "warmup_linear" => &["warmup", "min_ratio"],
            "cosine" => &["min_ratio"],
            "step_decay" => &["every", "gamma"],
            _ => return None,
        };
        self.unknown_args(&call, known, "schedule")?;
        let warmup = self.arg(&call, "warmup", 0.0)?.max(0.0) as u64;
        let min_ratio = self.arg(&call, "min_ratio", 0.0)?;
        Some(match call.name {
            "constant" => Schedule::Constant,
            "linear_warmup" => Schedule::LinearWarmup { warmup },
            "warmup_cosine" => Schedule::WarmupCosine { warmup, min_ratio },
            "warmup_linear" => Schedule::WarmupLinear { warmup, min_ratio },
            "cosine" => Schedule::Cosine { min_ratio },
            _ => Schedule::StepDecay {
                every: self.arg(&call, "every", 1.0)?.max(1.0) as u64,
                gamma: self.arg(&call, "gamma", 0.1)?,
            },
        })
    }

    /// E0207 for an argument the call does not take; `None` if any.
    fn unknown_args(&mut self, call: &Call<'b>, known: &[&str], setting: &str) -> Option<()> {
        let mut ok = true;
        for a in call.args {
            let Some(name) = &a.name else {
                let file = self.c.file();
                self.c.diags.push(
                    Diagnostic::new(
                        Code::E0208,
                        format!("the arguments of `{}` are named", call.name),
                    )
                    .primary(file, a.span, "unnamed argument")
                    .help(format!("write `{}(lr: 3e-4)`", call.name)),
                );
                ok = false;
                continue;
            };
            if known.contains(&name.name.as_str()) {
                continue;
            }
            let help = match closest(&name.name, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => format!("`{}()` takes no arguments", call.name),
                None => format!("`{}` takes {}", call.name, quoted(known)),
            };
            let file = self.c.file();
            self.c.diags.push(
                Diagnostic::new(
                    Code::E0207,
                    format!(
                        "unknown argument `{}` of the {setting} `{}`",
                        name.name, call.name
                    ),
                )
                .primary(file, name.span, "not an argument of this function")
                .help(help),
            );
            ok = false;
        }
        ok.then_some(())
    }

    /// A numeric argument, or `default` when absent.
    fn arg(&mut self, call: &Call<'b>, key: &str, default: f64) -> Option<f64> {
        let Some(e) = call.named(key) else {
            return Some(default);
        };
        match self.c.eval(e) {
            Ok(v) => match as_number(&v) {
                Some(x) if x.is_finite() => Some(x),
                _ => {
                    self.invalid(
                        e.span,
                        format!(
                            "`{key}` of `{}` must be a number known before the run, found {}",
                            call.name,
                            v.describe()
                        ),
                        "write a number, or a `let` with a constant value",
                    );
                    None
                }
            },
            Err(()) => None,
        }
    }

    /// A pair of numbers `(a, b)`, or `default` when absent.
    fn pair(&mut self, call: &Call<'b>, key: &str, default: (f64, f64)) -> Option<(f64, f64)> {
        let Some(e) = call.named(key) else {
            return Some(default);
        };
        let items = match &e.kind {
            ExprKind::Tuple(items) if items.len() == 2 => items,
            _ => {
                self.invalid(
                    e.span,
                    format!("`{key}` of `{}` must be a pair `(a, b)`", call.name),
                    "write two numbers in parentheses: `betas: (0.9, 0.95)`",
                );
                return None;
            }
        };
        let mut out = [0.0; 2];
        for (slot, item) in out.iter_mut().zip(items) {
            match self.c.eval(item) {
                Ok(v) => match as_number(&v) {
                    Some(x) if x.is_finite() => *slot = x,
                    _ => {
                        self.invalid(
                            item.span,
                            format!("`{key}` of `{}` must be two numbers", call.name),
                            "write two numbers in parentheses: `betas: (0.9, 0.95)`",
                        );
                        return None;
                    }
                },
                Err(()) => return None,
            }
        }
        Some((out[0], out[1]))
    }
}

/// `adamw(lr: 3e-4)`: the function's name and its arguments.
struct Call<'a> {
    name: &'a str,
    args: &'a [Arg],
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
            name: path.last()?.name.as_str(),
            args,
        })
    }

    fn named(&self, key: &str) -> Option<&'a Expr> {
        self.args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
            .map(|a| &a.value)
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Size(s) => s.as_const().map(|c| c as f64),
        _ => None,
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
