//! Statistics of a typed model: parameters, training FLOPs and activation
//! memory, as `enigma check --stats` prints them.
//!
//! Conventions, stated wherever the figures are shown:
//!
//! - **Parameters** count every element of every `param`, times the
//!   `repeat` counts around it. A parameter whose shape involves a dim bound
//!   per session (`dim N per session`) exists once per session; it is
//!   counted separately and multiplied by the number of sessions when the
//!   data source says how many there are.
//! - **FLOPs** count matrix products only (linear, matmul, einsum,
//!   convolutions, attention), 2 per multiply-add. Attention's two products
//!   are counted over all query-key pairs, causal or not. A training step is
//!   forward plus backward, 3x the forward FLOPs, times the global batch.
//!   For a transformer this is the `6 N + 12 L d S` per token of Kaplan et
//!   al. (2020), with the embeddings' lookups left out.
//! - **Activation memory** is the sum of the sizes of every intermediate
//!   tensor that depends on the sample (has the `batch` dim), at the model
//!   float's width: what eager autograd keeps for the backward pass without
//!   activation checkpointing. It is an upper bound: fused kernels keep
//!   less.

use std::collections::BTreeMap;

use super::Graph;
use crate::ir::types::size::Size;

/// The statistics of one graph. Sizes may depend on data-bound dims.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Parameters shared by every session.
    pub shared_params: Size,
    /// Parameters of one session (per-session tables and readouts).
    pub session_params: Size,
    /// Parameters in each scope and its descendants, by scope index.
    pub scope_params: BTreeMap<usize, Size>,
    /// Forward FLOPs for one sample.
    pub forward_flops: Size,
    /// Bytes of activations for one sample.
    pub activation_bytes: Size,
}

impl Stats {
    pub fn of(g: &Graph) -> Stats {
        let mut shared = Size::constant(0);
        let mut session = Size::constant(0);
        let mut scope_params: BTreeMap<usize, Size> = BTreeMap::new();
        for p in &g.params {
            let n = scaled(p.ty.numel(), g.multiplicity(p.scope));
            if p.per_session {
                session = add(&session, &n);
            } else {
                shared = add(&shared, &n);
            }
            let mut s = Some(p.scope);
            while let Some(i) = s {
                let entry = scope_params.entry(i).or_insert_with(|| Size::constant(0));
                *entry = add(entry, &n);
                s = g.scopes[i].parent;
            }
        }
        let mut flops = Size::constant(0);
        let mut bytes = Size::constant(0);
        let batch = Size::symbol("batch");
        for node in &g.nodes {
            let m = g.multiplicity(node.scope);
            flops = add(&flops, &scaled(Ok(node.flops.clone()), m));
            if node.out.dims.iter().any(|d| d.name == batch) {
                let width = node.out.dtype.bytes(g.float_bytes) as i64;
                let n = node.out.numel().and_then(|n| n.mul(&Size::constant(width)));
                bytes = add(&bytes, &scaled(n, m));
            }
        }
        Stats {
            shared_params: shared,
            session_params: session,
            scope_params,
            forward_flops: flops,
            activation_bytes: bytes,
        }
    }

    /// All parameters: shared plus one copy per session.
    pub fn total_params(&self, sessions: Option<i64>) -> Size {
        let s = sessions.unwrap_or(1).max(1);
        add(
            &self.shared_params,
            &scaled(Ok(self.session_params.clone()), s),
        )
    }

    /// FLOPs of one training step (forward and backward over the global
    /// batch), when every size is known.
    pub fn step_flops(&self, global_batch: i64) -> Option<f64> {
        let f = self.forward_flops.as_const()? as f64;
        Some(3.0 * f * global_batch as f64)
    }
}

/// The human summary of `enigma check --stats`: parameters per module
/// (two levels deep), training FLOPs and activation memory, each with its
/// convention.
pub fn report(g: &Graph) -> String {
    use std::fmt::Write;
    let st = Stats::of(g);
    let mut out = String::new();
    let total = st.total_params(g.sessions);
    if st.session_params.as_const() == Some(0) {
        let _ = writeln!(out, "parameters: {}", group(&total));
    } else {
        let sessions = match g.sessions {
            Some(n) => format!("{n} sessions x {}", group(&st.session_params)),
            None => format!("{} per session", group(&st.session_params)),
        };
        let _ = writeln!(
            out,
            "parameters: {} = {} shared + {sessions}",
            group(&total),
            group(&st.shared_params)
        );
    }
    // Scopes two levels below the top, in the order they were made.
    for (i, scope) in g.scopes.iter().enumerate().skip(1) {
        let depth = scope.path.matches('.').count();
        let Some(n) = st.scope_params.get(&i) else {
            continue;
        };
        if depth > 1 || n.as_const() == Some(0) {
            continue;
        }
        let name = scope.path.rsplit('.').next().unwrap_or(&scope.path);
        let indent = "  ".repeat(depth + 1);
        let count = if scope.repeat > 1 {
            let each = n
                .div(&Size::constant(scope.repeat))
                .unwrap_or_else(|_| n.clone());
            format!("{} ({} x {})", group(n), scope.repeat, group(&each))
        } else {
            group(n)
        };
        let label = format!("{indent}{name}");
        let _ = writeln!(out, "{label:<28} {:<18} {count}", scope.module);
    }
    let precision = if g.float_bytes == 2 { "bf16" } else { "f32" };
    let per_sample = group(&st.forward_flops);
    match (g.global_batch, st.step_flops(g.global_batch.unwrap_or(1))) {
        (Some(b), Some(step)) => {
            let _ = writeln!(
                out,
                "compute: {} FLOPs per training step = 3 (forward + backward) x {per_sample} forward FLOPs per sample x batch {b}",
                sci(step)
            );
        }
        _ => {
            let _ = writeln!(out, "compute: {per_sample} forward FLOPs per sample");
        }
    }
    let _ = writeln!(
        out,
        "  (matrix products only, 2 FLOPs per multiply-add; attention over all query-key pairs, causal or not)"
    );
    let memory = match st.activation_bytes.as_const() {
        Some(b) => bytes(b as f64),
        None => format!("{} bytes", st.activation_bytes),
    };
    let _ = writeln!(
        out,
        "activations: {memory} per sample ({precision}; every intermediate kept for the backward pass, no checkpointing)"
    );
    out
}

fn add(a: &Size, b: &Size) -> Size {
    a.add(b).unwrap_or_else(|_| a.clone())
}

fn scaled(n: Result<Size, crate::ir::types::size::SizeError>, m: i64) -> Size {
    n.and_then(|n| n.mul(&Size::constant(m)))
        .unwrap_or_else(|_| Size::constant(0))
}

/// `1234567` as `1,234,567`; a polynomial as written.
pub fn group(s: &Size) -> String {
    match s.as_const() {
        Some(v) => thousands(v),
        None => s.to_string(),
    }
}

pub fn thousands(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// `7.95e16`-style engineering text for large figures.
pub fn sci(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    format!("{x:.3e}")
}

/// Bytes in binary units: `1.50 GiB`.
pub fn bytes(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", units[u])
    } else {
        format!("{v:.2} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(thousands(124_439_808), "124,439,808");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(bytes(1536.0), "1.50 KiB");
        assert_eq!(bytes(12.0), "12 B");
        assert_eq!(group(&Size::symbol("N")), "N");
    }
}
