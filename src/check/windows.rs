//! A data item's windows against the modalities cut from it.
//!
//! `window:` and `stride:` are checked as durations by the settings schema;
//! here they meet the modalities drawn from the item:
//!
//! - the window must be the duration of the modalities' time dim: a
//!   `window: 4s` over modalities declared `[T @ 8Hz, N]` with `dim T = 2s`
//!   would cut 4 s of data into tensors typed for 2 s (E0210, at the
//!   window, since the modalities' `T` is what the model was checked with);
//! - the stride must be a whole number of samples at the rate of every
//!   sampled modality whose rate is its source's, or window starts would
//!   fall between samples and be rounded differently per modality, so the
//!   streams of one example would not cover the same time (E0205, at the
//!   stride).

use super::consts::Consts;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::types::quantity::short;
use crate::ir::types::{Dimension, Value};
use crate::syntax::ast::*;

/// A duration setting of the block, in seconds, with where it is written.
fn duration(c: &mut Consts, b: &ConfigBlock, key: &str) -> Option<(f64, Span)> {
    b.entries.iter().find_map(|e| match &e.kind {
        EntryKind::Setting { key: k, value } if k.name == key => match c.eval(value) {
            Ok(Value::Quantity(q)) if q.dim == Dimension::TIME && q.value > 0.0 => {
                Some((q.value, value.span))
            }
            _ => None,
        },
        _ => None,
    })
}

/// The data item a modality is ultimately drawn from, through the
/// modalities it is derived from (`from spikes | bin(20ms)`).
fn root_data<'a>(items: &'a [Item], m: &'a ModalityItem) -> Option<&'a str> {
    let mut at = m;
    for _ in 0..items.len() {
        let first = match &at.source.kind {
            ExprKind::Path(p) => p.first(),
            ExprKind::Field { .. } => {
                let mut e = &at.source;
                while let ExprKind::Field { base, .. } = &e.kind {
                    e = base;
                }
                match &e.kind {
                    ExprKind::Path(p) => p.first(),
                    _ => None,
                }
            }
            _ => None,
        }?;
        let next = items.iter().find_map(|i| match &i.kind {
            ItemKind::Modality(n) if n.name.name == first.name => Some(n),
            _ => None,
        });
        match next {
            Some(n) => at = n,
            None => return Some(&first.name),
        }
    }
    None
}

/// The time dim of a modality: its duration in seconds, its rate when
/// sampled, and its span.
fn time_dim(c: &mut Consts, m: &ModalityItem) -> Option<(f64, Option<f64>, Span)> {
    let TypeKind::Named { shape: Some(s), .. } = &m.ty.kind else {
        return None;
    };
    s.dims.iter().find_map(|sd| {
        let ShapeDimKind::Dim { size, rate } = &sd.kind else {
            return None;
        };
        let length = match c.eval(size) {
            Ok(Value::Quantity(q)) if q.dim == Dimension::TIME => q.value,
            _ => return None,
        };
        let rate = match rate.as_ref().map(|r| c.eval(r)) {
            None => None,
            Some(Ok(Value::Quantity(q))) if q.dim == Dimension::RATE && q.value > 0.0 => {
                Some(q.value)
            }
            Some(_) => return None,
        };
        Some((length, rate, sd.span))
    })
}

/// Whether a pipeline stage changes the rate, so the declared rate is not
/// the one windows are cut at.
fn resampled(m: &ModalityItem) -> bool {
    m.transforms.iter().any(|t| match &t.kind {
        ExprKind::Call { callee, .. } => matches!(&callee.kind,
            ExprKind::Path(p) if p.last().is_some_and(|f| f.name == "resample" || f.name == "bin")),
        _ => false,
    })
}

/// A window or stride written as a bare number over data in time
/// (`stride: 500` for 500 ms) is a missing unit: a count of samples is for
/// data that is not in time (tokens, images).
fn unitless(c: &mut Consts, d: &DataItem, b: &ConfigBlock, items: &[Item]) {
    let timed = items.iter().any(|i| match &i.kind {
        ItemKind::Modality(m) => {
            root_data(items, m) == Some(d.name.name.as_str()) && time_dim(c, m).is_some()
        }
        _ => false,
    });
    if !timed {
        return;
    }
    let file = c.file();
    for e in &b.entries {
        let EntryKind::Setting { key, value } = &e.kind else {
            continue;
        };
        if key.name != "window" && key.name != "stride" {
            continue;
        }
        if let Ok(Value::Size(s)) = c.eval(value) {
            c.diags.push(
                Diagnostic::new(
                    Code::E0208,
                    format!(
                        "`{}` is the number {s}, but the modalities of `{}` are in time",
                        key.name, d.name.name
                    ),
                )
                .primary(file, value.span, "a duration without a unit")
                .help(format!(
                    "write a duration: `{}: {s}ms` or `{}: {s}s`; a count of samples is for data that is not in time",
                    key.name, key.name
                )),
            );
        }
    }
}

pub(super) fn check_windows(c: &mut Consts, d: &DataItem, b: &ConfigBlock) {
    let program = c.program;
    let root = program.root_module();
    let Some(ast) = &root.ast else { return };
    let file = root.file;
    unitless(c, d, b, &ast.items);
    let Some((window, window_at)) = duration(c, b, "window") else {
        return;
    };
    let stride = duration(c, b, "stride");
    let mut window_reported = false;
    let mut stride_reported = false;
    for item in &ast.items {
        let ItemKind::Modality(m) = &item.kind else {
            continue;
        };
        if root_data(&ast.items, m) != Some(d.name.name.as_str()) {
            continue;
        }
        let Some((length, rate, dim_at)) = time_dim(c, m) else {
            continue;
        };
        if !window_reported && (length - window).abs() > 1e-9 * window.max(length) {
            window_reported = true;
            c.diags.push(
                Diagnostic::new(
                    Code::E0210,
                    format!(
                        "the windows of `{}` are {} s, but `{}` is declared over {} s",
                        d.name.name,
                        short(window),
                        m.name.name,
                        short(length)
                    ),
                )
                .primary(file, window_at, "the window cut from the data")
                .secondary(file, dim_at, "the time the model's types were checked with")
                .help("make the window the modalities' time dim: `window: T`"),
            );
        }
        let (Some((stride, stride_at)), Some(rate)) = (stride, rate) else {
            continue;
        };
        let samples = stride * rate;
        if !stride_reported && !resampled(m) && (samples - samples.round()).abs() > 1e-6 {
            stride_reported = true;
            c.diags.push(
                Diagnostic::new(
                    Code::E0205,
                    format!(
                        "a stride of {} s is {} samples of `{}` at {} Hz, not a whole number",
                        short(stride),
                        short(samples),
                        m.name.name,
                        short(rate)
                    ),
                )
                .primary(file, stride_at, "windows would start between samples")
                .secondary(file, dim_at, format!("sampled at {} Hz", short(rate)))
                .help(format!(
                    "use a stride that is a multiple of every modality's sampling period ({} s here)",
                    short(1.0 / rate)
                )),
            );
        }
    }
}
