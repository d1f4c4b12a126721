//! Modalities against what their source provides: kind, dtype, the order
//! and role of the axes, their sizes and the sampling rate.
//!
//! A source whose fields are known without reading data (the built-in
//! `synthetic.mouse_v1`, see [`crate::source::synthetic`]) describes each
//! field as a list of axes with a role (time, units, channels, space), a
//! size where the source fixes one, and a rate. A modality drawn from it
//! must declare the same axes in the same order: the loader does not guess
//! a transposition, and a stdlib module binds its generic `T` and `N` to
//! whatever sits in those positions, so an axis swap left here would be
//! reported much later, at a line that does not help, or not at all. The
//! same holds for the rate: a modality declared at 60 Hz from a 30 Hz
//! field, with no `resample(...)` or `bin(...)` stage, would be fed half
//! the samples its type promises.
//!
//! The primary label goes on what disagrees with the data: the axis, the
//! rate, the dtype of the declaration, or the `dim` item that fixed a size
//! the data does not have.

use super::consts::Consts;
use super::sources::{bind, Binding, SHARED_DIM};
use crate::base::{FileId, Span};
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::types::{Dimension, Value};
use crate::source::synthetic::{Field, Role};
use crate::syntax::ast::*;
use std::collections::BTreeMap;

/// One declared axis of a modality.
struct Declared<'a> {
    /// The size expression (`T`, `N`, `36`).
    size: &'a Expr,
    /// The whole `T @ 30Hz`.
    span: Span,
    /// The role the declaration gives it, when clear: a sampled or
    /// duration dim is time; a dim the data binds is units.
    time: bool,
    /// The declared rate and where it is written.
    rate: Option<(f64, Span)>,
    /// The size, when known now.
    value: Option<i64>,
    /// The name of a data-bound dim (`N`).
    symbol: Option<String>,
}

fn declared<'a>(c: &mut Consts, shape: &'a Shape) -> Vec<Declared<'a>> {
    let mut out = Vec::new();
    for sd in &shape.dims {
        let ShapeDimKind::Dim { size, rate } = &sd.kind else {
            continue;
        };
        let rate = rate.as_ref().and_then(|r| match c.eval(r) {
            Ok(Value::Quantity(q)) if q.dim == Dimension::RATE => Some((q.value, r.span)),
            _ => None,
        });
        let (mut value, mut symbol, mut time) = (None, None, rate.is_some());
        match c.eval(size) {
            Ok(Value::Size(v)) => match (v.as_const(), v.symbols().as_slice()) {
                (Some(k), _) => value = Some(k),
                (None, [one]) if v == crate::ir::types::Size::symbol(one) => {
                    symbol = Some(one.to_string())
                }
                _ => {}
            },
            Ok(Value::Quantity(q)) if q.dim == Dimension::TIME => time = true,
            _ => {}
        }
        out.push(Declared {
            size,
            span: sd.span,
            time,
            rate,
            value,
            symbol,
        });
    }
    out
}

/// Whether a declared axis can stand for a provided one.
fn fits(d: &Declared, a: &crate::source::synthetic::Axis) -> bool {
    if d.time != (a.role == Role::Time) {
        return false;
    }
    match (d.value, a.size) {
        (Some(k), Some(n)) => k == n,
        _ => true,
    }
}

/// Whether a pipeline stage changes the rate (`resample`, `bin`), so the
/// declared rate need not be the source's.
fn changes_rate(m: &ModalityItem) -> bool {
    m.transforms.iter().any(|t| match &t.kind {
        ExprKind::Call { callee, .. } => matches!(&callee.kind,
            ExprKind::Path(p) if p.last().is_some_and(|f| f.name == "resample" || f.name == "bin")),
        _ => false,
    })
}

/// Compares modality `m`, drawn from field `field_name` of data item
/// `data`, with what the field provides (`None`: no such field).
#[allow(clippy::too_many_arguments)]
pub(super) fn modality_vs_field(
    c: &mut Consts,
    file: FileId,
    m: &ModalityItem,
    data: &str,
    field_name: &str,
    field: Option<Field>,
    fields: &[&str],
    bound: &mut BTreeMap<String, Binding>,
) {
    let origin = format!("{data}.{field_name}");
    let Some(field) = field else {
        c.diags.push(
            Diagnostic::new(Code::E0219, format!("`{data}` has no field `{field_name}`"))
                .primary(file, m.source.span, "no such field")
                .help(format!("its fields are {}", fields.join(", "))),
        );
        return;
    };
    let TypeKind::Named { name, args, shape } = &m.ty.kind else {
        return;
    };
    // A declaration already wrong in itself (a size of 0, a rate that is
    // not a frequency) is not compared again. A window that is not whole at
    // the declared rate is: the rate may be what is wrong.
    let broken = c.diags.iter().any(|d| {
        d.is_error()
            && d.code != Code::E0205
            && d.labels
                .iter()
                .any(|l| l.file == file && m.ty.span.contains(l.span))
    });
    if broken {
        return;
    }
    let provided = field.describe();
    // `bin(...)` makes a series of counts from events.
    let binned = field.kind == "events" && name.name == "series" && changes_rate(m);
    if name.name != field.kind && !binned {
        c.diags.push(
            Diagnostic::new(
                Code::E0219,
                format!(
                    "`{}` is declared as {}, but `{origin}` is {}",
                    m.name.name, name.name, field.kind
                ),
            )
            .primary(file, name.span, "not what the source provides")
            .secondary(file, m.source.span, format!("provides `{provided}`"))
            .help(format!("declare it as `{}`", field.kind)),
        );
        return;
    }
    if let Some(dtype) = args.first() {
        if let TypeKind::Named { name: d, .. } = &dtype.kind {
            let float = d.name.starts_with('f') || d.name == "bf16";
            if float != field.float {
                c.diags.push(
                    Diagnostic::new(
                        Code::E0219,
                        format!(
                            "`{}` is declared `{}`, but `{origin}` holds {} values",
                            m.name.name,
                            d.name,
                            if field.float { "floating-point" } else { "integer" }
                        ),
                    )
                    .primary(file, d.span, "not the source's dtype")
                    .secondary(file, m.source.span, format!("provides `{provided}`"))
                    .help(if field.float {
                        "declare a float dtype (`f32`); fractional values would be truncated, and integer tensors carry no gradient"
                    } else {
                        "declare an integer dtype"
                    }),
                );
                return;
            }
        }
    }
    let Some(shape) = shape else { return };
    let dims = declared(c, shape);
    if dims.len() != field.axes.len() {
        c.diags.push(
            Diagnostic::new(
                Code::E0219,
                format!(
                    "`{}` declares {} axes, but `{origin}` has {}: `{provided}`",
                    m.name.name,
                    dims.len(),
                    field.axes.len()
                ),
            )
            .primary(file, shape.span, "not the source's axes")
            .secondary(file, m.source.span, "the source"),
        );
        return;
    }
    // The first axis that does not fit its position.
    if let Some(i) = (0..dims.len()).find(|&i| !fits(&dims[i], &field.axes[i])) {
        axis_mismatch(c, file, m, &origin, &provided, &dims, &field, i);
        return;
    }
    for (d, a) in dims.iter().zip(&field.axes) {
        if let (Some(sym), Some(n), Role::Units) = (&d.symbol, a.size, a.role) {
            bind(
                c,
                file,
                bound,
                sym,
                n,
                format!("the {} of `{data}` ({n})", a.what),
                m.source.span,
                SHARED_DIM,
            );
        }
        if let Some(want) = a.rate {
            rate_vs_source(c, file, m, &origin, want, d);
        }
    }
}

/// A sampled axis declared at another rate than its source's `want`, with
/// no stage that changes the rate, is E0212 at the declared rate.
fn rate_vs_source(
    c: &mut Consts,
    file: FileId,
    m: &ModalityItem,
    origin: &str,
    want: f64,
    d: &Declared,
) {
    let Some((rate, at)) = d.rate else { return };
    if (rate - want).abs() <= 1e-9 * rate.max(want) || changes_rate(m) {
        return;
    }
    forget_window(c, file, d.span);
    c.diags.push(
        Diagnostic::new(
            Code::E0212,
            format!(
                "`{}` is declared at {rate}Hz, but `{origin}` is sampled at {want}Hz",
                m.name.name
            ),
        )
        .primary(file, at, "not the source's rate")
        .secondary(file, m.source.span, format!("sampled at {want}Hz"))
        .help(format!(
            "declare the source's rate (`@ {want}Hz`), or change it in the pipeline: `from {origin} | resample({rate}Hz)`"
        )),
    );
}

/// A modality drawn from a file whose data item gives its rate
/// (`npy(..., rate: 30Hz)`): its sampled axis must be at that rate unless a
/// stage changes it.
pub(super) fn modality_vs_rate(
    c: &mut Consts,
    file: FileId,
    m: &ModalityItem,
    origin: &str,
    want: f64,
) {
    let TypeKind::Named {
        shape: Some(shape), ..
    } = &m.ty.kind
    else {
        return;
    };
    let dims = declared(c, shape);
    if let Some(d) = dims.iter().find(|d| d.rate.is_some()) {
        rate_vs_source(c, file, m, origin, want, d);
    }
}

/// Drops what was said about the window at a sampled dim whose rate is
/// wrong (`T @ 7Hz` is 10.5 samples): the rate is the mistake, and with the
/// source's rate the window may well be whole.
fn forget_window(c: &mut Consts, file: FileId, at: Span) {
    let here = |l: &crate::diagnostics::Label| l.file == file && at.contains(l.span);
    c.diags.retain_mut(|d| {
        if !matches!(d.code, Code::E0203 | Code::E0205) || !d.labels.iter().any(here) {
            return true;
        }
        // One diagnostic at the window's `dim` may label several uses:
        // keep it for the others.
        d.labels.retain(|l| !here(l));
        d.labels.iter().filter(|l| !l.primary).count() > 0 && d.labels.iter().any(|l| l.primary)
    });
}

/// Reports axis `i` of `m`, which does not fit field's axis `i`: an order
/// the source does not have (with the order it does), or a size it does not
/// have (at the `dim` that fixed it, when one did).
#[allow(clippy::too_many_arguments)]
fn axis_mismatch(
    c: &mut Consts,
    file: FileId,
    m: &ModalityItem,
    origin: &str,
    provided: &str,
    dims: &[Declared],
    field: &Field,
    i: usize,
) {
    let (d, a) = (&dims[i], &field.axes[i]);
    // Another order of the same declared axes that fits: a transposition.
    let mut order: Vec<usize> = Vec::new();
    for want in &field.axes {
        match (0..dims.len()).find(|&k| !order.contains(&k) && fits(&dims[k], want)) {
            Some(k) => order.push(k),
            None => break,
        }
    }
    let text = |s: Span| c.program.sources.get(file).slice(s).to_string();
    if order.len() == dims.len() {
        let fixed: Vec<String> = order.iter().map(|&k| text(dims[k].span)).collect();
        c.diags.push(
            Diagnostic::new(
                Code::E0219,
                format!(
                    "`{}` declares its axes in another order than `{origin}`: `{provided}`",
                    m.name.name
                ),
            )
            .primary(
                file,
                d.span,
                format!("the source has {} here", a.what),
            )
            .secondary(file, m.source.span, "the source")
            .help(format!(
                "declare the axes in the source's order: `[{}]`; stdlib modules read them by position (`Tubelets` wants `[T, C, H, W]`, `UnitValues` `[T, N]`)",
                fixed.join(", ")
            )),
        );
        return;
    }
    let size = d.value.unwrap_or_default();
    let message = match (a.size, d.time, a.role) {
        (Some(n), false, _) => format!(
            "`{}` declares {} axis {} of size {size}, but `{origin}` has {n} {}",
            m.name.name,
            a.role.name(),
            i + 1,
            a.what
        ),
        (_, true, _) => format!(
            "`{}` declares time as axis {}, but `{origin}` has {} there: `{provided}`",
            m.name.name,
            i + 1,
            a.what
        ),
        (None, false, _) => format!(
            "`{}` declares axis {} as `{}`, but `{origin}` has time there: `{provided}`",
            m.name.name,
            i + 1,
            text(d.size.span)
        ),
    };
    let mut diag = Diagnostic::new(Code::E0219, message);
    // A size fixed by a `dim` item (`dim N = 64`) is blamed there: it is
    // what disagrees with the data.
    let defined = match &d.size.kind {
        ExprKind::Path(p) if p.len() == 1 => c.definition(&p[0].name),
        _ => None,
    };
    match defined {
        Some((def_file, def_span, name)) if d.value.is_some() => {
            diag = diag
                .primary(
                    def_file,
                    def_span,
                    format!("`{name}` is set to {size} here"),
                )
                .secondary(
                    file,
                    d.span,
                    format!("the source has {} {}", a.size.unwrap_or_default(), a.what),
                );
            if a.role == Role::Units {
                diag = diag.help(format!(
                    "leave the number of neurons to the data: `dim {name} per session` (or `dim {name}` for one session), or `select({name}, where: ...)` a subset"
                ));
            }
        }
        _ => {
            diag = diag
                .primary(file, d.span, "not what the source has here")
                .secondary(file, m.source.span, format!("provides `{provided}`"));
        }
    }
    c.diags.push(diag);
}
