//! The `parallel` block against the model: every dim it shards must divide
//! over the mesh axes it is mapped to.
//!
//! The sizes come from the typed IR: `heads` and `kv_heads` from every
//! attention node, `layers` from every `repeat`, and any other logical dim
//! (`vocab`, `ffn`, ...) from the parameter dims that carry that name. A
//! mapping that cannot split its dim evenly is E0220 at the mapping, naming
//! the module where the dim got its size. (The schema of the block itself,
//! and the batch's divisibility, are `settings.rs`'s.)

use super::consts::Consts;
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::layout::ParallelSpec;
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
        _ => {
            let name = crate::ir::types::size::Size::symbol(dim);
            for p in &g.params {
                for d in p.ty.dims.iter().filter(|d| d.name == name) {
                    if let Some(v) = d.size.as_ref().and_then(|s| s.as_const()) {
                        out.push((v, p.path.clone()));
                    }
                }
            }
        }
    }
    out
}
