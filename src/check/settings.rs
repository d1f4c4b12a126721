//! Checks on the `train` and `parallel` blocks: every key is known, every
//! value has the kind and range its setting needs, required settings are
//! present, and the settings agree with each other.
//!
//! The schema (`schema.rs`) is the one list of settings these blocks
//! accept, and the language reference documents the same table.
//! Cross-checks: the global batch divides evenly over the data-parallel
//! ranks, micro-batches and accumulation steps, and a schedule's warm-up is
//! shorter than training.

use super::consts::Consts;
use super::schema::{self, list, Kind, Setting};
use crate::base::FileId;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::types::quantity::short;
use crate::ir::types::{Dimension, Value};
use crate::resolve::closest;
use crate::syntax::ast::*;

/// Checks the train and parallel blocks of the root module.
pub(super) fn check_settings(c: &mut Consts) {
    let program = c.program;
    c.module = program.root;
    let Some(ast) = &program.root_module().ast else {
        return;
    };
    let mut train = None;
    let mut parallel = None;
    for item in &ast.items {
        match &item.kind {
            ItemKind::Train(b) => {
                block(c, b, "train", schema::TRAIN, item.span);
                train = Some(b);
            }
            ItemKind::Parallel(b) => {
                block(c, b, "parallel", schema::PARALLEL, item.span);
                parallel = Some(b);
            }
            // A data block's settings are checked here too, so that a
            // misspelt key or split fractions that do not add up are found
            // by `enigma check`, not when the data is first read.
            ItemKind::Data(
                d @ DataItem {
                    config: Some(b), ..
                },
            ) => {
                data_block(c, b);
                super::windows::check_windows(c, d, b);
            }
            // The keys of a loss's or metric's block; what they ask of the
            // model (a masked tokenizer) is checked with the model.
            ItemKind::Loss(ObjectiveItem {
                config: Some(b), ..
            }) => block(c, b, "loss", schema::LOSS, item.span),
            ItemKind::Metric(ObjectiveItem {
                config: Some(b), ..
            }) => block(c, b, "metric", schema::METRIC, item.span),
            _ => {}
        }
    }
    if let Some(t) = train {
        warmup_fits(c, t);
        if let Some(p) = parallel {
            batch_divides(c, t, p);
        }
    }
    if let Some(p) = parallel {
        zero_scope_is_a_data_axis(c, p);
    }
}

/// `zero_scope: "gpu"` names a mesh axis that `batch` is mapped to: the
/// planner would otherwise shard over every data-parallel axis, silently
/// ignoring the setting.
fn zero_scope_is_a_data_axis(c: &mut Consts, p: &ConfigBlock) {
    let file = c.file();
    let Some((key, value, name)) = p.entries.iter().find_map(|e| match &e.kind {
        EntryKind::Setting { key, value } if key.name == "zero_scope" => match &value.kind {
            ExprKind::Str(s) => Some((key, value, s.clone())),
            _ => None,
        },
        _ => None,
    }) else {
        return;
    };
    let data_axes: Vec<String> = p
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Mapping { keys, target } if keys.iter().any(|k| k.name == "batch") => {
                Some(super::parallel::target_axes(target))
            }
            _ => None,
        })
        .flatten()
        .collect();
    if data_axes.contains(&name) {
        return;
    }
    let names: Vec<&str> = data_axes.iter().map(String::as_str).collect();
    let help = match closest(&name, names.iter().copied()) {
        Some(s) => format!("did you mean \"{s}\"?"),
        None if names.is_empty() => {
            "map `batch` to a mesh axis (`batch -> dp`) to shard ZeRO state over it".to_string()
        }
        None => format!("the data-parallel axes are {}", list(&names)),
    };
    c.diags.push(
        Diagnostic::new(
            Code::E0208,
            format!(
                "`{}` must name a mesh axis that `batch` is mapped to, found \"{name}\"",
                key.name
            ),
        )
        .primary(file, value.span, "not a data-parallel axis")
        .help(help),
    );
}

fn block(c: &mut Consts, b: &ConfigBlock, name: &str, fields: &[Setting], item: Span) {
    let file = c.file();
    // Keys suggested for misspelt ones: a required key that was misspelt is
    // reported once, as unknown, not also as missing.
    let mut suggested: Vec<&str> = Vec::new();
    for e in &b.entries {
        let (key, value) = match &e.kind {
            EntryKind::Setting { key, value } => (key, Some(value)),
            EntryKind::Block { key, .. } => (key, None),
            // Mappings are resolved (and later planned) on their own.
            EntryKind::Mapping { .. } => continue,
        };
        let Some(f) = fields.iter().find(|f| f.key == key.name) else {
            if let Some(s) = unknown(c, file, key, name, fields) {
                suggested.push(s);
            }
            continue;
        };
        match (&e.kind, f.kind) {
            (EntryKind::Block { block: inner, .. }, Kind::Block(sub)) => {
                block(c, inner, &format!("{name}.{}", f.key), sub, key.span)
            }
            (EntryKind::Block { block: inner, .. }, Kind::Mesh) => mesh(c, inner),
            (EntryKind::Block { .. }, kind) => {
                invalid(c, file, e.span, key, &kind.describe(), "a block `{ ... }`")
            }
            (_, Kind::Block(_) | Kind::Mesh) => {
                let found = value.map(|v| c.source(v)).unwrap_or_default();
                invalid(
                    c,
                    file,
                    e.span,
                    key,
                    &f.kind.describe(),
                    &format!("`{found}`"),
                )
            }
            (_, kind) => {
                if let Some(v) = value {
                    setting(c, key, v, kind);
                }
            }
        }
    }
    for f in fields.iter().filter(|f| f.required) {
        let present = b.entries.iter().any(|e| entry_key(e) == Some(f.key));
        if !present && !suggested.contains(&f.key) {
            let at = Span::new(
                item.start as usize,
                item.start as usize + name.len().min(item.len()),
            );
            c.diags.push(
                Diagnostic::new(Code::E0209, format!("`{name}` has no `{}` setting", f.key))
                    .primary(file, at, format!("`{}` is required here", f.key))
                    .help(match f.kind {
                        Kind::Block(_) | Kind::Mesh => format!("add `{} {{ ... }}`", f.key),
                        kind => format!("add `{}: ...`, {}", f.key, kind.describe()),
                    }),
            );
        }
    }
}

/// A data block: unknown keys (E0207) and the split's fractions (E0208).
/// Its lengths are the data stage's (`check/data/`): a window may be a
/// duration or, for data without time, a number of samples, which
/// experiments that are only checked and planned use.
fn data_block(c: &mut Consts, b: &ConfigBlock) {
    let file = c.file();
    for e in &b.entries {
        let EntryKind::Setting { key, value } = &e.kind else {
            continue;
        };
        match schema::DATA.iter().find(|f| f.key == key.name) {
            None => {
                unknown(c, file, key, "data", schema::DATA);
            }
            Some(f) => setting(c, key, value, f.kind),
        }
    }
}

fn entry_key(e: &ConfigEntry) -> Option<&str> {
    match &e.kind {
        EntryKind::Setting { key, .. } | EntryKind::Block { key, .. } => Some(&key.name),
        EntryKind::Mapping { .. } => None,
    }
}

/// Reports an unknown key; returns the setting suggested instead, if any.
fn unknown(
    c: &mut Consts,
    file: FileId,
    key: &Ident,
    block: &str,
    fields: &[Setting],
) -> Option<&'static str> {
    let names: Vec<&'static str> = fields.iter().map(|f| f.key).collect();
    let suggestion = closest(&key.name, names.iter().copied());
    let help = match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("`{block}` accepts {}", list(&names)),
    };
    c.diags.push(
        Diagnostic::new(
            Code::E0207,
            format!("unknown setting `{}` in `{block}`", key.name),
        )
        .primary(file, key.span, "not a setting of this block")
        .help(help),
    );
    suggestion
}

fn invalid(c: &mut Consts, file: FileId, at: Span, key: &Ident, wanted: &str, found: &str) {
    c.diags.push(
        Diagnostic::new(
            Code::E0208,
            format!("`{}` must be {wanted}, found {found}", key.name),
        )
        .primary(file, at, "invalid value")
        .help(format!("write `{}: ` followed by {wanted}", key.name)),
    );
}

/// Checks one `key: value` against its kind.
fn setting(c: &mut Consts, key: &Ident, value: &Expr, kind: Kind) {
    let file = c.file();
    let ok = match kind {
        Kind::Call(_) | Kind::Split => match &value.kind {
            ExprKind::Call { callee, .. } => {
                matches!(&callee.kind, ExprKind::Path(p) if p.len() == 1 && kind.values().contains(&p[0].name.as_str()))
            }
            _ => false,
        },
        Kind::Symbol(names) => {
            matches!(&value.kind, ExprKind::Path(p) if p.len() == 1 && names.contains(&p[0].name.as_str()))
        }
        Kind::ModalityName => matches!(&value.kind, ExprKind::Path(p) if p.len() == 1),
        Kind::Str => matches!(value.kind, ExprKind::Str(_)),
        Kind::Bool => matches!(value.kind, ExprKind::Bool(_)),
        _ => {
            let Ok(v) = c.eval(value) else { return };
            match (kind, &v) {
                (_, Value::Opaque) => true,
                (Kind::Positive, Value::Size(s)) => s.as_const().is_none_or(|n| n >= 1),
                (Kind::UpTo(max), Value::Size(s)) => {
                    s.as_const().is_none_or(|n| (0..=max).contains(&n))
                }
                (Kind::PositiveNumber, Value::Size(s)) => s.as_const().is_none_or(|n| n > 0),
                (Kind::PositiveNumber, Value::Float(f)) => *f > 0.0,
                (Kind::Bytes, Value::Quantity(q)) => q.dim == Dimension::BYTES && q.value > 0.0,
                (Kind::Duration | Kind::Extent, Value::Quantity(q)) => {
                    q.dim == Dimension::TIME && q.value > 0.0
                }
                (Kind::Extent, Value::Size(s)) => s.as_const().is_none_or(|n| n >= 1),
                _ => false,
            }
        }
    };
    if !ok {
        let found = format!("`{}`", c.source(value));
        invalid(c, file, value.span, key, &kind.describe(), &found);
    } else if kind == Kind::Split {
        split_fractions(c, key, value);
    }
}

/// `split: by_time(train: 0.8, val: 0.1, test: 0.1)`: each fraction is a
/// number from 0 to 1 and they add up to 1 (`train: 80` is a percentage,
/// not a fraction).
fn split_fractions(c: &mut Consts, key: &Ident, value: &Expr) {
    let file = c.file();
    let ExprKind::Call { args, .. } = &value.kind else {
        return;
    };
    let mut sum = 0.0;
    for a in args {
        let Some(name) = &a.name else {
            invalid(
                c,
                file,
                a.span,
                key,
                "named fractions `train:`, `val:` and `test:`",
                &format!("`{}`", c.source(&a.value)),
            );
            return;
        };
        if !["train", "val", "test"].contains(&name.name.as_str()) {
            invalid(
                c,
                file,
                name.span,
                key,
                "fractions named `train`, `val` and `test`",
                &format!("`{}`", name.name),
            );
            return;
        }
        let f = match c.eval(&a.value) {
            Ok(Value::Size(s)) => s.as_const().map(|n| n as f64),
            Ok(Value::Float(f)) => Some(f),
            Ok(Value::Opaque) | Err(_) => return,
            Ok(_) => None,
        };
        match f {
            Some(f) if (0.0..=1.0).contains(&f) => sum += f,
            _ => {
                let found = format!("`{}`", c.source(&a.value));
                invalid(
                    c,
                    file,
                    a.value.span,
                    name,
                    "a fraction from 0 to 1",
                    &found,
                );
                return;
            }
        }
    }
    if (sum - 1.0).abs() > 1e-6 {
        c.diags.push(
            Diagnostic::new(
                Code::E0208,
                format!("the split fractions add up to {}, not 1", short(sum)),
            )
            .primary(file, value.span, "these fractions")
            .help("give the parts of the windows each split takes, such as `by_time(train: 0.8, val: 0.1, test: 0.1)`"),
        );
    }
}

/// `mesh { axis: size }`: every size a whole number of at least 1.
fn mesh(c: &mut Consts, b: &ConfigBlock) {
    let file = c.file();
    for e in &b.entries {
        match &e.kind {
            EntryKind::Setting { key, value } => setting(c, key, value, Kind::Positive),
            EntryKind::Block { key, .. } => {
                invalid(c, file, e.span, key, "a mesh axis size", "a block")
            }
            EntryKind::Mapping { .. } => {}
        }
    }
}

/// The value of setting `key` in `b`, with its span, when it is a constant
/// whole number.
fn int_setting(c: &mut Consts, b: &ConfigBlock, key: &str) -> Option<(i64, Span)> {
    b.entries.iter().find_map(|e| match &e.kind {
        EntryKind::Setting { key: k, value } if k.name == key => match c.eval(value) {
            Ok(Value::Size(s)) => s.as_const().map(|n| (n, e.span)),
            _ => None,
        },
        _ => None,
    })
}

/// The global batch divides evenly over data-parallel ranks, micro-batches
/// and accumulation steps.
fn batch_divides(c: &mut Consts, train: &ConfigBlock, parallel: &ConfigBlock) {
    let file = c.file();
    let Some((batch, batch_at)) = int_setting(c, train, "batch") else {
        return;
    };
    // The data-parallel degree: the product of the mesh axes `batch` maps to.
    let mut axes: Vec<(String, i64)> = Vec::new();
    for e in &parallel.entries {
        if let EntryKind::Block { key, block } = &e.kind {
            if key.name == "mesh" {
                for a in &block.entries {
                    if let EntryKind::Setting { key, .. } = &a.kind {
                        if let Some((n, _)) = int_setting(c, block, &key.name) {
                            axes.push((key.name.clone(), n));
                        }
                    }
                }
            }
        }
    }
    let mapping = parallel.entries.iter().find_map(|e| match &e.kind {
        EntryKind::Mapping { keys, target } if keys.iter().any(|k| k.name == "batch") => {
            Some((target, e.span))
        }
        _ => None,
    });
    let mut factors: Vec<(String, i64, Span)> = Vec::new();
    if let Some((target, span)) = mapping {
        let names: Vec<&str> = match &target.kind {
            ExprKind::Path(p) => p.iter().map(|i| i.name.as_str()).collect(),
            ExprKind::Tuple(xs) => xs
                .iter()
                .filter_map(|x| match &x.kind {
                    ExprKind::Path(p) if p.len() == 1 => Some(p[0].name.as_str()),
                    _ => None,
                })
                .collect(),
            ExprKind::Paren(x) => match &x.kind {
                ExprKind::Path(p) if p.len() == 1 => vec![p[0].name.as_str()],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        // One factor for the data-parallel degree, labelled once.
        let mut parts = Vec::new();
        let mut degree: i64 = 1;
        for n in names {
            if let Some((_, size)) = axes.iter().find(|(a, _)| a == n) {
                parts.push(format!("{n} {size}"));
                degree = degree.saturating_mul(*size);
            }
        }
        if !parts.is_empty() {
            factors.push((parts.join(" x "), degree, span));
        }
    }
    if let Some((m, span)) = int_setting(c, parallel, "microbatches") {
        factors.push((format!("microbatches {m}"), m, span));
    }
    if let Some((a, span)) = int_setting(c, train, "accumulate") {
        factors.push((format!("accumulate {a}"), a, span));
    }
    let mut divisor: i64 = 1;
    for (_, f, _) in &factors {
        match divisor.checked_mul(*f) {
            Some(d) if d > 0 => divisor = d,
            _ => return,
        }
    }
    if divisor <= 1 || batch % divisor == 0 {
        return;
    }
    let parts: Vec<&str> = factors.iter().map(|(s, _, _)| s.as_str()).collect();
    let knob = |s: &str| s.starts_with("microbatches") || s.starts_with("accumulate");
    // A software setting (microbatches, accumulation) without which the
    // batch would divide is what to change: the mesh is the hardware, and
    // the batch a figure the run was tuned for.
    let culprits: Vec<usize> = (0..factors.len())
        .filter(|&i| knob(&factors[i].0) && batch % (divisor / factors[i].1) == 0)
        .collect();
    let (primary_at, primary_label) = match culprits.as_slice() {
        [i] => (
            factors[*i].2,
            format!("{} does not divide the batch of {batch}", factors[*i].0),
        ),
        _ => (batch_at, format!("{batch} is not a multiple of {divisor}")),
    };
    let mut diag = Diagnostic::new(
        Code::E0210,
        format!(
            "global batch {batch} does not divide into {divisor} equal parts ({})",
            parts.join(" x ")
        ),
    )
    .primary(file, primary_at, primary_label);
    if primary_at != batch_at {
        diag = diag.secondary(file, batch_at, format!("the global batch, {batch}"));
    }
    for (s, _, span) in &factors {
        if *span == primary_at {
            continue;
        }
        let label = if knob(s) {
            s.clone()
        } else {
            format!("data parallel over {s}")
        };
        diag = diag.secondary(file, *span, label);
    }
    let lower = batch / divisor * divisor;
    // Near the top of the integer range the next multiple does not exist.
    let help = match (lower > 0, lower.checked_add(divisor)) {
        (true, Some(upper)) => format!("use a batch of {lower} or {upper}, or change the layout"),
        (true, None) => format!("use a batch of {lower}, or change the layout"),
        (false, Some(upper)) => format!("use a batch of {upper}, or change the layout"),
        (false, None) => "change the batch or the layout".to_string(),
    };
    c.diags.push(diag.help(help));
}

/// A schedule's warm-up is shorter than the training run.
fn warmup_fits(c: &mut Consts, train: &ConfigBlock) {
    let file = c.file();
    let Some((steps, steps_at)) = int_setting(c, train, "steps") else {
        return;
    };
    for e in &train.entries {
        let EntryKind::Setting { key, value } = &e.kind else {
            continue;
        };
        if key.name != "schedule" {
            continue;
        }
        let ExprKind::Call { args, .. } = &value.kind else {
            continue;
        };
        for a in args {
            if a.name.as_ref().is_none_or(|n| n.name != "warmup") {
                continue;
            }
            let Ok(Value::Size(s)) = c.eval(&a.value) else {
                continue;
            };
            let Some(w) = s.as_const() else { continue };
            if w >= steps {
                c.diags.push(
                    Diagnostic::new(
                        Code::E0210,
                        format!(
                            "the warm-up ({w} steps) is not shorter than training ({steps} steps)"
                        ),
                    )
                    .primary(file, a.span, "warm-up")
                    .secondary(file, steps_at, "the training steps")
                    .help(format!(
                        "warm up for a fraction of training, e.g. `warmup: {}`",
                        short((steps / 20).max(1) as f64)
                    )),
                );
            }
        }
    }
}
