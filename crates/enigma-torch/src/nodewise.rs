//! The backward pass node by node, as the plan lists it: what tensor and
//! pipeline parallelism need.
//!
//! A one-process or data-parallel step runs libtorch's autograd once per
//! micro-batch, from the loss. That cannot work across processes: the
//! gradient of a column-parallel linear's input must be summed over the
//! tensor group *before* it joins the residual stream's gradient, and the
//! gradient of a pipeline stage's output arrives from the next stage. So
//! under tensor or pipeline parallelism (or activation checkpointing) every
//! node application runs on *leaves*: detached inputs that require
//! gradients. Each application keeps its output's autograd graph
//! ([`App`]); its `Backward` instruction runs autograd on that graph alone,
//! seeded with the output's accumulated gradient, and routes each leaf's
//! gradient to where the plan says it goes ([`Route`]):
//!
//! - to the producer's accumulated gradient (`grads`), summed over
//!   consumers;
//! - to a partial sum awaiting the plan's `Backward` all-reduce (or, for an
//!   input gathered from sequence shards, reduce-scatter) over the tensor
//!   group (Megatron's `f`);
//! - to a part awaiting the `Backward` all-gather that reassembles the
//!   gradient of a narrowed input.
//!
//! Parameters stay true leaves, so their gradients accumulate in `.grad`
//! as in the one-process step, and the data-parallel and ZeRO code needs no
//! change. The order is the plan's: the planner verified it (collectives in
//! the same order on every rank of a group, transfers paired), and the
//! runtime executes it as it is.
//!
//! `tch` has no backward call that takes an output gradient, so each
//! application is seeded as `(out * grad).sum().backward()`: one more
//! elementwise product per node, the price of libtorch's C API; the single
//! autograd call of the one-process step keeps its speed.
//!
//! **Activation checkpointing.** A first forward the plan marks unsaved runs
//! without autograd, and its outputs are dropped when the forward chunk
//! ends; the plan's recomputation before the block's backward runs it again
//! with autograd. Dropout draws from a generator seeded per application, so
//! the recomputation draws the same mask.

use std::collections::{HashMap, HashSet};

use tch::{Kind, Tensor};

use crate::{op_err, TorchBackend};
use enigma::diagnostics::{Error, ErrorKind};
use enigma::ir::ValueRef;
use enigma::plan::program::Value;

/// A node application: `(node, copy, micro)`.
pub type Key = (usize, usize, usize);

/// Where the gradient of a leaf goes.
#[derive(Clone, Copy, Debug)]
pub enum Route {
    /// Added to the producer's output gradient.
    Whole(Key),
    /// Added to the producer's partial gradient, which the plan's
    /// `Backward` all-reduce or reduce-scatter completes.
    Partial(Key),
    /// This rank's part of a narrowed value: the plan's `Backward`
    /// all-gather reassembles it.
    Narrowed(Key),
}

/// One application's autograd graph, from its leaves to its output.
pub struct App {
    pub out: Tensor,
    pub leaves: Vec<(Tensor, Route)>,
}

/// The state of a node-by-node step.
#[derive(Default)]
pub struct State {
    pub apps: HashMap<Key, App>,
    /// Accumulated gradients of node outputs, whole (as the value is held).
    pub grads: HashMap<Key, Tensor>,
    /// Partial gradients awaiting a tensor-group reduction.
    pub partial: HashMap<Key, Tensor>,
    /// This rank's parts of the gradients of narrowed values.
    pub narrowed: HashMap<Key, Tensor>,
    /// Values gathered whole by a forward all-gather, with the dim.
    pub gathered: HashMap<Value, (Tensor, usize)>,
    /// Node outputs reduce-scattered in the forward pass, whose gradient
    /// is all-gathered before their backward.
    pub scattered: HashSet<Key>,
    /// Micro-batches whose loss gradient was seeded.
    pub seeded: HashSet<usize>,
    /// Outputs of unsaved (checkpointed) applications of the forward chunk
    /// under way, dropped when it ends.
    pub unsaved: Vec<Key>,
}

/// Adds `g` to the gradient of `key` in `map`.
pub fn accumulate(map: &mut HashMap<Key, Tensor>, key: Key, g: Tensor) -> Result<(), Error> {
    match map.get_mut(&key) {
        Some(t) => {
            let sum = t
                .f_add(&g)
                .map_err(|e| op_err(e, format!("summing gradients of %{}", key.0)))?;
            *t = sum;
        }
        None => {
            map.insert(key, g);
        }
    }
    Ok(())
}

/// A leaf on `t`: the same storage, detached, requiring a gradient when it
/// is floating point and `grad` is asked for.
pub fn leaf(t: &Tensor, grad: bool) -> Tensor {
    let d = t.detach();
    if grad && d.is_floating_point() {
        d.set_requires_grad(true)
    } else {
        d
    }
}

impl TorchBackend {
    /// Runs the backward of one application: autograd over its graph from
    /// the output's accumulated gradient, then each leaf's gradient to its
    /// route. An application whose output got no gradient (a metric, a
    /// value the loss does not depend on) contributes nothing.
    pub(crate) fn backward_node(&self, st: &mut State, key: Key) -> Result<(), Error> {
        let Some(app) = st.apps.remove(&key) else {
            st.grads.remove(&key);
            return Ok(());
        };
        let Some(g) = st.grads.remove(&key) else {
            return Ok(());
        };
        if !app.out.requires_grad() {
            return Ok(());
        }
        let place = || self.place(key.0, key.1);
        let failed = |e: tch::TchError| {
            Error::new(
                ErrorKind::Op,
                format!("backward: {}", crate::OpError::from(e)),
            )
            .in_node(place())
        };
        let g = g.f_to_kind(app.out.kind()).map_err(failed)?;
        app.out
            .f_mul(&g)
            .and_then(|p| p.f_sum(Kind::Float))
            .and_then(|s| s.f_backward())
            .map_err(failed)?;
        for (l, route) in app.leaves {
            let lg = l.grad();
            if !lg.defined() {
                continue;
            }
            let lg = lg.detach();
            match route {
                Route::Whole(k) => accumulate(&mut st.grads, k, lg)?,
                Route::Partial(k) => accumulate(&mut st.partial, k, lg)?,
                Route::Narrowed(k) => accumulate(&mut st.narrowed, k, lg)?,
            }
        }
        Ok(())
    }

    /// Seeds micro-batch `m`'s loss gradient (`1 / micro-batches` for each
    /// loss node this rank computed), once.
    pub(crate) fn seed_loss(
        &self,
        st: &mut State,
        values: &HashMap<Key, Tensor>,
        losses: &[usize],
        m: usize,
        scale: f64,
    ) -> Result<(), Error> {
        if !st.seeded.insert(m) {
            return Ok(());
        }
        for &n in losses {
            let Some(v) = values.get(&(n, 0, m)) else {
                continue;
            };
            let g = v
                .f_ones_like()
                .and_then(|o| o.f_to_kind(Kind::Float))
                .and_then(|o| o.f_mul_scalar(scale))
                .map_err(|e| op_err(e, "seeding the loss gradient"))?;
            accumulate(&mut st.grads, (n, 0, m), g)?;
        }
        Ok(())
    }
}

/// The plan's key of a node value.
pub fn value_key(v: &Value) -> Option<Key> {
    match v.value {
        ValueRef::Node(n) => Some((n, v.copy, v.micro)),
        _ => None,
    }
}
