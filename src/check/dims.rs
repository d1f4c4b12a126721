//! Checks on declared sizes: every `dim` item and every dim of a modality's
//! declared shape.
//!
//! A `dim` is a positive whole number (`dim d = 256`), a positive duration
//! (`dim T = 2s`), or bound by the data (`dim N`). In a shape, a duration
//! needs a sampling rate and becomes a number of samples (`T @ 30Hz`),
//! which must come out whole; a plain size takes no rate.

use super::consts::Consts;
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::types::quantity::short;
use crate::ir::types::{Dimension, Quantity, Value};
use crate::resolve::ModuleId;
use crate::syntax::ast::*;

pub(super) fn check_dims(c: &mut Consts) {
    let program = c.program;
    for (i, module) in program.modules.iter().enumerate() {
        let Some(ast) = &module.ast else { continue };
        c.module = ModuleId(i as u32);
        for item in &ast.items {
            match &item.kind {
                ItemKind::Dim(d) => dim_item(c, d),
                ItemKind::Let(l) => {
                    // Evaluating reports arithmetic errors in the value.
                    let _ = c.item_value(c.module, &l.name.name);
                }
                ItemKind::Modality(m) => match &m.ty.kind {
                    TypeKind::Named {
                        name,
                        shape: Some(s),
                        ..
                    } => shape(c, s, continuous_time(&name.name)),
                    TypeKind::Shape(s) => shape(c, s, false),
                    TypeKind::Named { shape: None, .. } => {}
                },
                _ => {}
            }
        }
    }
}

fn dim_item(c: &mut Consts, d: &DimItem) {
    let Some(expr) = &d.value else { return };
    let Ok(value) = c.item_value(c.module, &d.name.name) else {
        return;
    };
    let file = c.file();
    let name = &d.name.name;
    let problem = match &value {
        Value::Size(s) => match s.as_const() {
            Some(n) if n <= 0 => Some((
                Code::E0203,
                format!("dim `{name}` is {n}; a size must be at least 1"),
            )),
            _ => None,
        },
        Value::Quantity(q) if q.dim == Dimension::TIME => (q.value <= 0.0).then(|| {
            (
                Code::E0203,
                format!("dim `{name}` is {q}; a duration must be positive"),
            )
        }),
        Value::Float(f) => Some((
            Code::E0205,
            format!("dim `{name}` is {}, not a whole number", short(*f)),
        )),
        Value::Quantity(_) | Value::Bool(_) | Value::Str(_) | Value::Symbol(_) | Value::List(_) => {
            Some((
                Code::E0204,
                format!(
                    "dim `{name}` is {}; a dim is a whole number, a duration or bound by data",
                    value.describe()
                ),
            ))
        }
        Value::Opaque => None,
    };
    if let Some((code, message)) = problem {
        c.diags.push(
            Diagnostic::new(code, message)
                .primary(file, expr.span, "the value of the dim")
                .secondary(file, d.name.span, "declared here")
                .help("dims are sizes (`dim d = 256`), time windows (`dim T = 2s`), or left to the data (`dim N`)"),
        );
    }
}

/// Events (spike times) and intervals (trials) live in continuous time: a
/// window such as `T` is an extent in seconds, not a number of samples.
fn continuous_time(kind: &str) -> bool {
    matches!(kind, "events" | "intervals")
}

fn shape(c: &mut Consts, s: &Shape, continuous: bool) {
    for d in &s.dims {
        let ShapeDimKind::Dim { size, rate } = &d.kind else {
            continue;
        };
        let Ok(value) = c.eval(size) else { continue };
        match rate {
            Some(r) => sampled(c, size, &value, r),
            None => plain(c, size, &value, continuous),
        }
    }
}

/// A dim without a rate: a positive whole size, or in continuous time a
/// positive duration.
fn plain(c: &mut Consts, size: &Expr, value: &Value, continuous: bool) {
    let file = c.file();
    let diag = match value {
        Value::Size(s) => match s.as_const() {
            Some(n) if n <= 0 => Diagnostic::new(
                Code::E0203,
                format!("a dim of size {n}; sizes must be at least 1"),
            )
            .primary(file, size.span, "not a valid size"),
            _ => return,
        },
        Value::Quantity(q) if q.dim == Dimension::TIME && continuous => {
            if q.value > 0.0 {
                return;
            }
            Diagnostic::new(
                Code::E0203,
                format!("a time window of {q}; it must be positive"),
            )
            .primary(file, size.span, "not a valid window")
        }
        Value::Quantity(q) if q.dim == Dimension::TIME => Diagnostic::new(
            Code::E0204,
            format!(
                "`{}` is a duration ({q}), not a number of samples",
                c.source(size)
            ),
        )
        .primary(file, size.span, "a duration needs a sampling rate")
        .help(format!(
            "give the rate it is sampled at: `{} @ 30Hz`",
            c.source(size)
        )),
        Value::Float(f) => Diagnostic::new(
            Code::E0205,
            format!("a dim of size {}, not a whole number", short(*f)),
        )
        .primary(file, size.span, "not a whole number"),
        Value::Opaque => return,
        other => Diagnostic::new(Code::E0204, format!("a dim's size is {}", other.describe()))
            .primary(file, size.span, "not a size"),
    };
    c.diags.push(with_definition(c, size, diag));
}

/// `T @ rate`: a duration times a rate, a whole positive number of samples.
fn sampled(c: &mut Consts, size: &Expr, value: &Value, rate_expr: &Expr) {
    let file = c.file();
    let Ok(rate_value) = c.eval(rate_expr) else {
        return;
    };
    let rate = match rate_value {
        Value::Quantity(q) if q.dim == Dimension::RATE && q.value > 0.0 => q,
        Value::Opaque => return,
        other => {
            let diag = Diagnostic::new(
                Code::E0204,
                format!(
                    "a sampling rate must be a positive frequency, found {}",
                    other.describe()
                ),
            )
            .primary(file, rate_expr.span, "not a rate")
            .help("write the rate with `Hz` or `kHz`: `T @ 30Hz`");
            c.diags.push(diag);
            return;
        }
    };
    let duration = match value {
        Value::Quantity(q) if q.dim == Dimension::TIME => *q,
        Value::Opaque => return,
        other => {
            let diag = Diagnostic::new(
                Code::E0204,
                format!(
                    "only a duration can be sampled at a rate, but `{}` is {}",
                    c.source(size),
                    other.describe()
                ),
            )
            .primary(file, size.span, "not a duration")
            .secondary(file, rate_expr.span, "sampled at this rate")
            .help("declare the time window as a duration (`dim T = 2s`) and write `T @ rate`, or drop the rate from a plain size");
            c.diags.push(with_definition(c, size, diag));
            return;
        }
    };
    let samples = Quantity {
        value: duration.value * rate.value,
        dim: Dimension::COUNT,
    };
    let at = size.span.to(rate_expr.span);
    let diag = match samples.as_whole() {
        Some(n) if n >= 1 => return,
        Some(n) => Diagnostic::new(Code::E0203, format!("{duration} at {rate} is {n} samples"))
            .primary(file, at, "no samples in this window"),
        None => Diagnostic::new(
            Code::E0205,
            format!(
                "{duration} at {rate} is {} samples, not a whole number",
                short(samples.value)
            ),
        )
        .primary(file, at, "not a whole number of samples")
        .help(format!(
            "choose a window that is a multiple of 1/{rate} ({}), or another rate",
            Quantity {
                value: 1.0 / rate.value,
                dim: Dimension::TIME
            }
        )),
    };
    match window_definition(c, size) {
        Some(def) => blame_window(c, diag, def, file, at, &rate),
        None => c.diags.push(diag),
    }
}

/// Where the named duration dim of a sampled shape dim (`T` in
/// `T @ 30Hz`) got its value, when that is a `dim` item.
fn window_definition(c: &Consts, size: &Expr) -> Option<(crate::base::FileId, crate::base::Span)> {
    let ExprKind::Path(p) = &size.kind else {
        return None;
    };
    let [name] = p.as_slice() else { return None };
    let (file, span, _) = c.definition(&name.name)?;
    Some((file, span))
}

/// Reports a window that is not a whole number of samples at the `dim`
/// that set the window: the rate usually comes from the data (its source
/// samples at 30 Hz), while the window is the user's choice. Several
/// modalities at the same rate give one diagnostic with a label at each.
fn blame_window(
    c: &mut Consts,
    diag: Diagnostic,
    (def_file, def_span): (crate::base::FileId, crate::base::Span),
    file: crate::base::FileId,
    at: crate::base::Span,
    rate: &Quantity,
) {
    let here = format!("sampled at {rate} here");
    let same = c.diags.iter_mut().find(|d| {
        d.code == diag.code
            && d.message == diag.message
            && d.primary_label()
                .is_some_and(|l| l.file == def_file && l.span == def_span)
    });
    if let Some(earlier) = same {
        let merged = std::mem::replace(earlier, Diagnostic::new(diag.code, String::new()));
        *earlier = merged.secondary(file, at, here);
        return;
    }
    let label = match diag.code {
        Code::E0203 => "the window is set here, shorter than one sample",
        _ => "the window is set here",
    };
    let mut blamed = Diagnostic::new(diag.code, diag.message)
        .primary(def_file, def_span, label)
        .secondary(file, at, here);
    if let Some(help) = diag.help {
        blamed = blamed.help(help);
    }
    c.diags.push(blamed);
}

/// Adds a label where the named dim got its value, when `size` is a name.
fn with_definition(c: &Consts, size: &Expr, diag: Diagnostic) -> Diagnostic {
    let ExprKind::Path(p) = &size.kind else {
        return diag;
    };
    let [name] = p.as_slice() else { return diag };
    match c.definition(&name.name) {
        Some((file, span, n)) => diag.secondary(file, span, format!("`{n}` gets its value here")),
        None => diag,
    }
}
