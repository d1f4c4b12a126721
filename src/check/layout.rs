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
use crate::ir::{Graph, Op};
use crate::syntax::ast::*;

pub(super) fn check_layout(c: &mut Consts, g: &Graph) {
    let program = c.program;
    let root = program.root_module();
    let Some(ast) = &root.ast else { return };
    for item in &ast.items {
        let ItemKind::Parallel(block) = &item.kind else {
            continue;
        };
        // The planner's reading of the block; a mesh the settings check
        // rejected has been reported there.
        let value = &mut |e: &Expr| super::constant(program, e);
        let Ok(layout) = crate::plan::Layout::from_block(block, value) else {
            continue;
        };
        for entry in &block.entries {
            let EntryKind::Mapping { keys, target } = &entry.kind else {
                continue;
            };
            let axes = crate::plan::layout::target_axes(target);
            let Ok(degree) = layout.mesh.degree(&axes) else {
                continue;
            };
            let degree = degree as i64;
            if degree <= 1 {
                continue;
            }
            for key in keys {
                if key.name == "batch" {
                    continue;
                }
                for (size, place) in sizes_of(g, &key.name) {
                    if size % degree != 0 {
                        c.diags.push(
                            Diagnostic::new(
                                Code::E0220,
                                format!("`{}` is {size} in `{place}`, which does not split evenly over `{}` ({degree} shards)", key.name, axes.join(" x ")),
                                )
                                .primary(root.file, key.span, format!("{size} does not divide by {degree}"))
                                .secondary(root.file, target.span, format!("{degree} shards"))
                                .help(format!("map `{}` to mesh axes whose product divides {size}, or change the model so it does", key.name)),
                        );
                        // One report per mapping key is enough.
                        break;
                    }
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
