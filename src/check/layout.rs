//! The `parallel` block against the model: every dim it shards must divide
//! over the mesh axes it is mapped to.
//!
//! The sizes come from the typed IR: `heads` and `kv_heads` from every
//! attention node and `layers` from every `repeat`. Parameters are checked
//! by the planner's own rule for what tensor parallelism splits
//! ([`crate::ir::split`]): dims named by a mapped logical dim, and the
//! column- and row-parallel projections, whatever their sizes are called
//! or however they were written (`ffn: 3000`, or a default `4 * d`). A
//! mapping that cannot split a dim evenly is E0220 at the mapping, naming
//! the module where the dim got its size and, when the checker knows it,
//! the place that set the size. (The schema of the block itself, and the
//! batch's divisibility, are `settings.rs`'s.)

use super::consts::Consts;
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::layout::ParallelSpec;
use crate::ir::split::{param_splits, TENSOR_DIMS};
use crate::ir::types::size::Size;
use crate::ir::{Graph, Op};

pub(super) fn check_layout(c: &mut Consts, g: &Graph, spec: &ParallelSpec) {
    for m in &spec.mappings {
        // The mesh degree of the target; an axis the mesh lacks was the
        // resolver's to report.
        let degree = m.axes.iter().try_fold(1i64, |d, a| {
            let axis = spec.mesh.iter().find(|x| &x.name == a)?;
            d.checked_mul(i64::try_from(axis.size).ok()?)
        });
        let Some(degree) = degree.filter(|&d| d > 1) else {
            continue;
        };
        for (dim, at) in &m.dims {
            if dim == "batch" {
                continue;
            }
            for (size, place) in sizes_of(g, dim) {
                if size % degree != 0 {
                    c.diags.push(
                        Diagnostic::new(
                            Code::E0220,
                            format!("`{dim}` is {size} in `{place}`, which does not split evenly over `{}` ({degree} shards)", m.axes.join(" x ")),
                        )
                        .primary(at.file, at.span, format!("{size} does not divide by {degree}"))
                        .secondary(m.target.file, m.target.span, format!("{degree} shards"))
                        .help(format!("map `{dim}` to mesh axes whose product divides {size}, or change the model so it does")),
                    );
                    // One report per mapping key is enough.
                    break;
                }
            }
        }
    }
    check_param_splits(c, g, spec);
    check_useless(c, g, spec);
}

/// Whether mapping logical dim `dim` splits anything in this model: the
/// batch always; `layers` a `repeat`; `heads` and `kv_heads` an attention;
/// `ffn` a feed-forward block; any other name a parameter dim the
/// planner's rule splits (`split_names`, gathered once by the caller).
fn shards_something(g: &Graph, split_names: &[&Size], dim: &str) -> bool {
    match dim {
        "batch" => true,
        "layers" => g.scopes.iter().any(|s| s.repeat > 1),
        "heads" | "kv_heads" => g.nodes.iter().any(|n| matches!(n.op, Op::Attention { .. })),
        _ => {
            let feed_forward = dim == "ffn"
                && g.scopes
                    .iter()
                    .any(|s| s.hyper.iter().any(|(k, _)| k == "ffn"));
            feed_forward || split_names.contains(&&Size::symbol(dim))
        }
    }
}

/// The names of the parameter dims tensor parallelism splits.
fn split_names<'g>(g: &'g Graph, spec: &ParallelSpec) -> Vec<&'g Size> {
    let tensor = spec.axes_for(TENSOR_DIMS);
    let degree = spec.degree(&tensor).unwrap_or(1);
    let mapped = spec.mapped();
    let mut out = Vec::new();
    for (i, p) in g.params.iter().enumerate() {
        let splits = param_splits(g, i, &mapped, &tensor, degree);
        for (d, axes) in p.ty.dims.iter().zip(&splits) {
            if !axes.is_empty() && !out.contains(&&d.name) {
                out.push(&d.name);
            }
        }
    }
    out
}

/// W0202: a mapping of a dim the model does not have (an `experts`
/// mapping in a dense model); E0222: a mesh axis that carries no
/// parallelism at all, so every rank along it would repeat the others'
/// work.
fn check_useless(c: &mut Consts, g: &Graph, spec: &ParallelSpec) {
    let split = split_names(g, spec);
    let mut working: Vec<&str> = Vec::new();
    for m in &spec.mappings {
        if spec.degree(&m.axes).is_none_or(|d| d <= 1) {
            continue;
        }
        for (dim, at) in &m.dims {
            if shards_something(g, &split, dim) {
                working.extend(m.axes.iter().map(String::as_str));
                continue;
            }
            c.diags.push(
                Diagnostic::new(
                    Code::W0202,
                    format!("`{dim}` is mapped to `{}`, but nothing in the model is split along `{dim}`", m.axes.join(" x ")),
                )
                .primary(at.file, at.span, "shards nothing")
                .secondary(m.target.file, m.target.span, "these ranks hold the same copy")
                .help(format!("remove the mapping, or give the model a dim `{dim}` to split")),
            );
        }
    }
    let Some(mesh_at) = spec.places.mesh else {
        return;
    };
    for axis in spec.mesh.iter().filter(|a| a.size > 1) {
        if working.contains(&axis.name.as_str()) {
            continue;
        }
        let mut diag = Diagnostic::new(
            Code::E0222,
            format!(
                "mesh axis `{}` ({} ranks) carries no parallelism: every rank along it would repeat the same work",
                axis.name, axis.size
            ),
        )
        .primary(mesh_at.file, mesh_at.span, format!("`{}` is declared here", axis.name));
        for m in spec.mappings.iter().filter(|m| m.axes.contains(&axis.name)) {
            diag = diag.secondary(m.at.file, m.at.span, "this mapping splits nothing");
        }
        c.diags.push(diag.help(format!(
            "map `batch` to `{}` for data parallelism, shard a dim of the model over it, or remove it from the mesh",
            axis.name
        )));
    }
}

/// Every parameter dim tensor parallelism splits divides by its shards.
/// One report per distinct (size, shards) is enough: a 24-block model
/// would otherwise repeat it 24 times.
fn check_param_splits(c: &mut Consts, g: &Graph, spec: &ParallelSpec) {
    let tensor = spec.axes_for(TENSOR_DIMS);
    let Some(degree) = spec.degree(&tensor).filter(|&d| d > 1) else {
        return;
    };
    let mapped = spec.mapped();
    let mut reported: Vec<(i64, usize)> = Vec::new();
    for (i, p) in g.params.iter().enumerate() {
        let splits = param_splits(g, i, &mapped, &tensor, degree);
        for (k, axes) in splits.iter().enumerate() {
            let Some(shards) = spec.degree(axes).filter(|&d| d > 1) else {
                continue;
            };
            let Some(dim) = p.ty.dims.get(k) else {
                continue;
            };
            let Some(size) = dim.size_or_name().as_const() else {
                continue;
            };
            if size % shards as i64 == 0 || reported.contains(&(size, shards)) {
                continue;
            }
            reported.push((size, shards));
            // The mapping that asked for the split: the logical dim the
            // parameter dim is named after, else the tensor-parallel
            // mapping onto these axes (`ffn` first: most projections that
            // do not divide are feed-forward widths).
            let named = mapped.keys().find(|l| dim.name == Size::symbol(l));
            let key = named.cloned().or_else(|| {
                ["ffn", "heads", "kv_heads", "vocab"]
                    .into_iter()
                    .find(|d| {
                        mapped
                            .get(*d)
                            .is_some_and(|to| to.iter().all(|a| axes.contains(a)))
                    })
                    .map(str::to_string)
            });
            let Some(m) = key.as_deref().and_then(|key| {
                spec.mappings.iter().find_map(|m| {
                    m.dims
                        .iter()
                        .find(|(d, _)| d == key)
                        .map(|(_, at)| (m, *at))
                })
            }) else {
                continue;
            };
            let (mapping, at) = m;
            let what = if dim.is_anon() {
                format!("{size}")
            } else {
                format!("`{}` ({size})", dim.name)
            };
            let mut diag = Diagnostic::new(
                Code::E0220,
                format!(
                    "`{}` is split along {what} by tensor parallelism, which does not split evenly over `{}` ({shards} shards)",
                    p.path,
                    axes.join(" x ")
                ),
            )
            .primary(at.file, at.span, format!("{size} does not divide by {shards}"))
            .secondary(mapping.target.file, mapping.target.span, format!("{shards} shards"));
            if let Some(origin) = dim.origin {
                diag = diag.secondary(origin.file, origin.span, format!("{size} is set here"));
            }
            c.diags.push(diag.help(format!(
                "make {size} a multiple of {shards}, or map `{}` to mesh axes whose product divides it",
                key.as_deref().unwrap_or("it")
            )));
        }
    }
}

/// The sizes a logical dim has in the model, each with the scope it
/// comes from.
fn sizes_of(g: &Graph, dim: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    match dim {
        "heads" | "kv_heads" => {
            for n in &g.nodes {
                let Op::Attention {
                    heads, kv_heads, ..
                } = &n.op
                else {
                    continue;
                };
                let size = if dim == "heads" { heads } else { kv_heads };
                if let Some(v) = size.as_const() {
                    out.push((v, g.scopes[n.scope].path.clone()));
                }
            }
        }
        "layers" => {
            for s in g.scopes.iter().filter(|s| s.repeat > 1) {
                out.push((s.repeat, s.path.clone()));
            }
        }
        // Parameter dims are `check_param_splits`'s, by the planner's rule.
        _ => {}
    }
    out
}
