//! The optimisers on libtorch tensors: AdamW with decoupled weight decay,
//! Adam with L2 regularisation, SGD with momentum, and Lion, all updating
//! f32 master weights in place.
//!
//! The arithmetic follows `torch.optim.AdamW` (PyTorch 2.x, non-fused):
//! `w *= 1 - lr * wd`, then `w -= lr / (1 - b1^t) * m / (sqrt(v) /
//! sqrt(1 - b2^t) + eps)`. Weight decay applies to matrices and larger
//! (rank 2 or more); biases, norm gains and other vectors are not decayed,
//! which is GPT-2's and most transformer recipes' convention.

use tch::Tensor;

use super::OpError;
use crate::ir::train::Optimizer;

/// One parameter copy with its optimiser state.
pub struct Slot {
    pub name: String,
    pub value: Tensor,
    /// First moment (Adam, Lion) or momentum buffer (SGD).
    pub m: Tensor,
    /// Second moment (Adam); unused by SGD.
    pub v: Tensor,
    pub decay: bool,
    /// For a per-session parameter, its session: it is updated only in
    /// steps that saw that session.
    pub session: Option<usize>,
}

/// Applies one update with learning rate `lr` at optimiser step `t`
/// (1-based) to every slot the step used: all shared parameters, and the
/// per-session parameters of the `sessions` in the step's batches.
///
/// This is PyTorch's behaviour with `zero_grad(set_to_none=True)` (its
/// default): a parameter without a gradient in a step is not touched, so
/// its moments do not decay. Deciding it from the sessions rather than
/// from whether libtorch has allocated a gradient keeps a resumed run
/// identical to an uninterrupted one.
pub fn update(
    opt: &Optimizer,
    slots: &mut [Slot],
    lr: f64,
    t: u64,
    sessions: &[usize],
) -> Result<(), OpError> {
    tch::no_grad(|| {
        for s in slots.iter_mut() {
            if s.session.is_some_and(|x| !sessions.contains(&x)) {
                continue;
            }
            let g = s.value.grad();
            let g = if g.defined() {
                g
            } else {
                s.value.f_zeros_like()?
            };
            step_one(opt, s, &g, lr, t)?;
        }
        Ok(())
    })
}

fn step_one(opt: &Optimizer, s: &mut Slot, g: &Tensor, lr: f64, t: u64) -> Result<(), OpError> {
    let ti = i32::try_from(t).unwrap_or(i32::MAX);
    match *opt {
        Optimizer::AdamW {
            betas: (b1, b2),
            eps,
            weight_decay,
            ..
        }
        | Optimizer::Adam {
            betas: (b1, b2),
            eps,
            weight_decay,
            ..
        } => {
            let decoupled = matches!(opt, Optimizer::AdamW { .. });
            let g = if !decoupled && weight_decay > 0.0 && s.decay {
                g.f_add(&s.value.f_mul_scalar(weight_decay)?)?
            } else {
                g.shallow_clone()
            };
            let _ = s.m.f_mul_scalar_(b1)?;
            let _ = s.m.f_add_(&g.f_mul_scalar(1.0 - b1)?)?;
            let _ = s.v.f_mul_scalar_(b2)?;
            let _ = s.v.f_add_(&g.f_square()?.f_mul_scalar(1.0 - b2)?)?;
            if decoupled && weight_decay > 0.0 && s.decay {
                let _ = s.value.f_mul_scalar_(1.0 - lr * weight_decay)?;
            }
            let bc1 = 1.0 - b1.powi(ti);
            let bc2 = 1.0 - b2.powi(ti);
            let denom = s.v.f_sqrt()?.f_div_scalar(bc2.sqrt())?.f_add_scalar(eps)?;
            let step = s.m.f_div(&denom)?.f_mul_scalar(lr / bc1)?;
            let _ = s.value.f_sub_(&step)?;
        }
        Optimizer::Sgd {
            momentum,
            weight_decay,
            ..
        } => {
            if weight_decay > 0.0 && s.decay {
                let _ = s.value.f_mul_scalar_(1.0 - lr * weight_decay)?;
            }
            let dir = if momentum > 0.0 {
                // PyTorch's first step copies the gradient into the buffer.
                if t == 1 {
                    s.m.f_copy_(g)?;
                } else {
                    let _ = s.m.f_mul_scalar_(momentum)?;
                    let _ = s.m.f_add_(g)?;
                }
                s.m.shallow_clone()
            } else {
                g.shallow_clone()
            };
            let _ = s.value.f_sub_(&dir.f_mul_scalar(lr)?)?;
        }
        // Lion (Chen et al., 2023), as lion-pytorch and optax write it:
        // decay, step by the sign of the interpolation of momentum and
        // gradient with `b1`, then update the momentum with `b2`.
        Optimizer::Lion {
            betas: (b1, b2),
            weight_decay,
            ..
        } => {
            if weight_decay > 0.0 && s.decay {
                let _ = s.value.f_mul_scalar_(1.0 - lr * weight_decay)?;
            }
            let update = s.m.f_mul_scalar(b1)?.f_add(&g.f_mul_scalar(1.0 - b1)?)?;
            let _ = s.value.f_sub_(&update.f_sign()?.f_mul_scalar(lr)?)?;
            let _ = s.m.f_mul_scalar_(b2)?;
            let _ = s.m.f_add_(&g.f_mul_scalar(1.0 - b2)?)?;
        }
    }
    Ok(())
}
