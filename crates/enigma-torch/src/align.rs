//! Named dims at run time: the IR's types name every dim, and operands of
//! elementwise ops, `einsum` and reductions are aligned by name, as the
//! checker aligned them. This module turns those names into positions and
//! views of libtorch tensors.
//!
//! The IR's shapes are per sample (`batch` is 1) and the run's batch is
//! larger, so sizes at run time come from the tensors; the IR decides only
//! which dim is which.

use tch::Tensor;

use crate::OpError;
use enigma::ir::types::size::Size;
use enigma::ir::types::tensor::{Dim, Tensor as Ty};

/// How dims are told apart: by name, and an anonymous dim (`36`) by its
/// size.
fn same(a: &Dim, b: &Dim) -> bool {
    if a.is_anon() || b.is_anon() {
        a.is_anon() && b.is_anon() && a.size == b.size
    } else {
        a.name == b.name
    }
}

/// For each dim of `from`, its position among the dims of `to`, following
/// the checker's rule: aligned from the right when the trailing dims agree
/// (NumPy's broadcasting), else by name.
pub fn positions(from: &Ty, to: &Ty) -> Option<Vec<usize>> {
    let (f, t) = (&from.dims, &to.dims);
    if f.len() <= t.len() {
        let offset = t.len() - f.len();
        if f.iter()
            .enumerate()
            .all(|(j, d)| d.matches(&t[offset + j]).is_ok() || same(d, &t[offset + j]))
        {
            return Some((0..f.len()).map(|j| offset + j).collect());
        }
    }
    let mut used = vec![false; t.len()];
    let mut out = Vec::with_capacity(f.len());
    for d in f {
        let k = (0..t.len()).find(|&k| !used[k] && same(d, &t[k]))?;
        used[k] = true;
        out.push(k);
    }
    Some(out)
}

/// `x` (of IR type `from`) as a view that broadcasts against `to`:
/// permuted into `to`'s order, with a size-1 dim for each dim of `to` it
/// lacks.
pub fn align(x: &Tensor, from: &Ty, to: &Ty) -> Result<Tensor, OpError> {
    if from.dims.is_empty() {
        return Ok(x.shallow_clone());
    }
    let pos = positions(from, to)
        .ok_or_else(|| OpError::new(format!("cannot align `{from}` with `{to}` by dim name")))?;
    let mut order: Vec<usize> = (0..pos.len()).collect();
    order.sort_by_key(|&j| pos[j]);
    let perm: Vec<i64> = order.iter().map(|&j| j as i64).collect();
    let mut y = if order.iter().enumerate().all(|(i, &j)| i == j) {
        x.shallow_clone()
    } else {
        x.f_permute(perm.as_slice())?
    };
    // Insert the missing dims, left to right, so each lands at its index.
    let have: Vec<usize> = order.iter().map(|&j| pos[j]).collect();
    let first = have.first().copied().unwrap_or(0);
    for k in first..to.dims.len() {
        if !have.contains(&k) {
            y = y.f_unsqueeze(k as i64 - first as i64)?;
        }
    }
    Ok(y)
}

/// The run-time shape of a value of IR type `ty` when the batch is
/// `batch`: every dim's size from the IR, except `batch`.
pub fn shape(ty: &Ty, batch: i64) -> Result<Vec<i64>, OpError> {
    let b = Size::symbol("batch");
    ty.dims
        .iter()
        .map(|d| {
            if d.name == b {
                return Ok(batch);
            }
            d.size.as_ref().and_then(Size::as_const).ok_or_else(|| {
                OpError::new(format!("the size of `{}` in `{ty}` is not known", d.name))
            })
        })
        .collect()
}

/// The run-time shape of a value the plan gives as `planned` (this rank's
/// part of a split dim, the plan's micro-batch), with `batch` samples: the
/// planned sizes, except the `batch` dims of `ty`.
pub fn local_shape(ty: &Ty, planned: &[i64], batch: i64) -> Vec<i64> {
    let b = Size::symbol("batch");
    planned
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            if ty.dims.get(k).is_some_and(|d| d.name == b) {
                batch
            } else {
                n
            }
        })
        .collect()
}
