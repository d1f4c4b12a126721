//! The `parallel` block evaluated into the IR's [`ParallelSpec`]: the mesh,
//! the mappings of logical dims to mesh axes, and every setting with its
//! default, each with the place it was written.
//!
//! The block's schema (`settings.rs`) and its names (the resolver: mesh
//! axes, mapped dims, repeated keys) are checked before this runs, so what
//! is left here is evaluation: sizes of mesh axes, and a mesh with more
//! ranks than can be counted (E0208).

use super::consts::Consts;
use crate::base::{Loc, Span};
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::layout::{Mapping, MeshAxis, ParallelSpec, PipelineSchedule};
use crate::ir::types::{Dimension, Value};
use crate::syntax::ast::{ConfigBlock, EntryKind, Expr, ExprKind, ItemKind};

/// The root file's layout: its `parallel` block, or one rank.
pub(super) fn parallel_spec(c: &mut Consts) -> ParallelSpec {
    let program = c.program;
    c.module = program.root;
    let file = c.file();
    let at = |span: Span| Loc { file, span };
    let Some(ast) = program.root_module().ast.as_ref() else {
        return ParallelSpec::single(at(Span::default()));
    };
    let mut train_at = None;
    let mut parallel = None;
    let mut accumulate = 1;
    for item in &ast.items {
        match &item.kind {
            ItemKind::Train(b) => {
                train_at.get_or_insert(item.span);
                accumulate = setting(b, "accumulate")
                    .and_then(|e| whole(c, e))
                    .unwrap_or(1)
                    .max(1);
            }
            ItemKind::Parallel(b) => parallel = Some((b, item.span)),
            _ => {}
        }
    }
    let Some((block, span)) = parallel else {
        let mut spec = ParallelSpec::single(at(train_at.unwrap_or_default()));
        spec.accumulate = accumulate;
        return spec;
    };
    let mut spec = ParallelSpec::single(at(span));
    spec.accumulate = accumulate;
    for entry in &block.entries {
        match &entry.kind {
            EntryKind::Block { key, block } if key.name == "mesh" => {
                spec.places.mesh = Some(at(entry.span));
                for e in &block.entries {
                    if let EntryKind::Setting { key, value } = &e.kind {
                        // A size that is not a positive whole number was
                        // reported by the schema; it counts as 1 here.
                        let size = whole(c, value).unwrap_or(1).max(1);
                        spec.mesh.push(MeshAxis {
                            name: key.name.clone(),
                            size,
                        });
                    }
                }
            }
            EntryKind::Block { .. } => {}
            EntryKind::Mapping { keys, target } => spec.mappings.push(Mapping {
                dims: keys.iter().map(|k| (k.name.clone(), at(k.span))).collect(),
                axes: target_axes(target),
                at: at(entry.span),
                target: at(target.span),
            }),
            EntryKind::Setting { key, value } => {
                spec.places
                    .settings
                    .push((key.name.clone(), at(entry.span)));
                let v = c.eval(value).unwrap_or(Value::Opaque);
                match key.name.as_str() {
                    "zero" => {
                        spec.zero = whole(c, value)
                            .and_then(|z| u8::try_from(z).ok())
                            .unwrap_or(0)
                    }
                    "microbatches" => spec.microbatches = whole(c, value).unwrap_or(1).max(1),
                    "checkpoint_activations" => {
                        spec.checkpoint_activations = v == Value::Bool(true)
                    }
                    "sequence_parallel" => spec.sequence_parallel = v == Value::Bool(true),
                    "device_memory" => spec.device_memory = bytes(&v).unwrap_or(spec.device_memory),
                    "bucket" => spec.bucket = bytes(&v).unwrap_or(spec.bucket),
                    "collective_timeout" => {
                        if let Value::Quantity(q) = &v {
                            if q.dim == Dimension::TIME && q.value > 0.0 {
                                spec.collective_timeout = q.value;
                            }
                        }
                    }
                    "zero_scope" => {
                        if let Value::Str(s) = v {
                            spec.zero_scope = Some(s);
                        }
                    }
                    "pipeline_schedule" => {
                        spec.schedule = match v {
                            Value::Symbol(s) if s == "gpipe" => PipelineSchedule::GPipe,
                            Value::Symbol(s) if s == "interleaved" => PipelineSchedule::Interleaved,
                            _ => PipelineSchedule::OneFOneB,
                        }
                    }
                    // Unknown keys were reported by the schema (E0207, `settings.rs`).
                    _ => {}
                }
            }
        }
    }
    let ranks = spec
        .mesh
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.size));
    if ranks.is_none() {
        let place = spec.places.mesh.unwrap_or(spec.places.block);
        c.diags.push(
            Diagnostic::new(Code::E0208, "the mesh has more ranks than can be counted")
                .primary(
                    place.file,
                    place.span,
                    "the product of these sizes overflows",
                )
                .help(
                    "a mesh is the GPUs of the job: its axes multiply to the number of processes",
                ),
        );
        spec.mesh.clear();
    }
    spec
}

/// The value of setting `key` of a block.
fn setting<'a>(b: &'a ConfigBlock, key: &str) -> Option<&'a Expr> {
    b.entries.iter().find_map(|e| match &e.kind {
        EntryKind::Setting { key: k, value } if k.name == key => Some(value),
        _ => None,
    })
}

fn whole(c: &mut Consts, e: &Expr) -> Option<usize> {
    match c.eval(e) {
        Ok(Value::Size(s)) => s.as_const().and_then(|n| usize::try_from(n).ok()),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<f64> {
    match v {
        Value::Quantity(q) if q.dim == Dimension::BYTES => Some(q.value),
        _ => None,
    }
}

/// The mesh axes of a mapping's target: `gpu` or `(node, gpu)`.
pub(super) fn target_axes(e: &Expr) -> Vec<String> {
    match &e.kind {
        ExprKind::Path(p) => p.iter().map(|i| i.name.clone()).take(1).collect(),
        ExprKind::Paren(inner) => target_axes(inner),
        ExprKind::Tuple(items) => items.iter().flat_map(target_axes).collect(),
        _ => Vec::new(),
    }
}
