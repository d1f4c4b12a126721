//! Which dims of a parameter tensor parallelism splits: the one rule that
//! the checker (every split must divide evenly, E0220) and the planner
//! (where each shard lives) both follow, so that a layout `enigma check`
//! accepts is one `enigma plan` can place.
//!
//! A parameter dim is split when its name is a mapped logical dim
//! (`vocab -> tp` splits every dim named `vocab`), and the weight and bias
//! of a `Linear` whose `split` hyperparameter is `"column"` or `"row"`
//! (Megatron-LM's column- and row-parallel projections, which the
//! standard library's attention and feed-forward blocks ask for) are split
//! over every tensor-parallel axis, whatever their sizes are called.

use std::collections::BTreeMap;

use super::types::size::Size;
use super::types::Value;
use super::Graph;

/// Logical dims whose splitting is tensor parallelism.
pub const TENSOR_DIMS: &[&str] = &["heads", "kv_heads", "ffn", "vocab"];

/// For each dim of parameter `i`, the mesh axes tensor parallelism splits
/// it over (empty: the dim is whole on every rank). `mapped` gives each
/// logical dim's axes, `tensor` the tensor-parallel axes in mesh order and
/// `degree` their product.
pub fn param_splits(
    g: &Graph,
    i: usize,
    mapped: &BTreeMap<String, Vec<String>>,
    tensor: &[String],
    degree: usize,
) -> Vec<Vec<String>> {
    let Some(p) = g.params.get(i) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<String>> = vec![Vec::new(); p.ty.dims.len()];
    if degree <= 1 {
        return out;
    }
    // A dim named by a mapped logical dim (`vocab -> tp`).
    for (k, d) in p.ty.dims.iter().enumerate() {
        for (logical, axes) in mapped {
            if d.name == Size::symbol(logical) && axes.iter().all(|a| tensor.contains(a)) {
                out[k] = axes.clone();
            }
        }
    }
    // A column- or row-parallel projection: the weight is `w` of a Linear
    // scope, the bias `b` of its Bias child.
    let scope = |s: usize| g.scopes.get(s);
    let (linear, is_bias) = match (
        scope(p.scope).map(|s| s.module.as_str()),
        p.path.rsplit('.').next(),
    ) {
        (Some("Linear"), Some("w")) => (Some(p.scope), false),
        (Some("Bias"), Some("b")) => (
            scope(p.scope)
                .and_then(|s| s.parent)
                .filter(|&q| scope(q).is_some_and(|s| s.module == "Linear")),
            true,
        ),
        _ => (None, false),
    };
    let split = linear.and_then(|q| {
        scope(q)?.hyper.iter().find_map(|(k, v)| match v {
            Value::Str(s) if k == "split" => Some(s.clone()),
            _ => None,
        })
    });
    match (split.as_deref(), is_bias, out.len()) {
        (Some("column"), false, 2) | (Some("column"), true, 1) => out[0] = tensor.to_vec(),
        (Some("row"), false, 2) => out[1] = tensor.to_vec(),
        _ => {}
    }
    out
}
