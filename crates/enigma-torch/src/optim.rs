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

use crate::OpError;
use enigma::ir::train::Optimizer;

/// The tensors of one update (`step_one`'s view of a [`Target`]).
struct Slot {
    value: Tensor,
    /// First moment (Adam, Lion) or momentum buffer (SGD).
    m: Tensor,
    /// Second moment (Adam); unused by SGD.
    v: Tensor,
    decay: bool,
}

/// The tensors one update touches: the weights (the whole parameter, or
/// under ZeRO this rank's slice of it, as a view or its master copy), the
/// moments of exactly those elements, and whether they decay.
pub struct Target<'a> {
    pub value: &'a mut Tensor,
    pub m: &'a mut Tensor,
    pub v: &'a mut Tensor,
    pub decay: bool,
}

/// Applies one update with learning rate `lr` at optimiser step `t`
/// (1-based) to `s` with gradient `g` (of the same elements).
///
/// Every optimiser here is elementwise, so updating a ZeRO slice of a
/// parameter gives exactly the elements that updating the whole would.
/// Which parameters a step updates is the caller's: a per-session
/// parameter is skipped in steps that did not see its session, which is
/// PyTorch's behaviour with `zero_grad(set_to_none=True)` (its default):
/// a parameter without a gradient is not touched, so its moments do not
/// decay.
pub fn update(opt: &Optimizer, s: Target<'_>, g: &Tensor, lr: f64, t: u64) -> Result<(), OpError> {
    tch::no_grad(|| {
        // Shallow clones share the storage, so updating them in place
        // updates the caller's tensors.
        let mut slot = Slot {
            value: s.value.shallow_clone(),
            m: s.m.shallow_clone(),
            v: s.v.shallow_clone(),
            decay: s.decay,
        };
        step_one(opt, &mut slot, g, lr, t)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(w: &[f32], shape: [i64; 2]) -> Slot {
        let value = Tensor::from_slice(w).reshape(shape);
        Slot {
            m: value.zeros_like(),
            v: value.zeros_like(),
            value,
            decay: true,
        }
    }

    fn lion() -> Optimizer {
        Optimizer::Lion {
            lr: 0.1,
            betas: (0.9, 0.99),
            weight_decay: 0.5,
        }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    /// Two Lion steps against the update written out by hand: decay the
    /// weight, step by the sign of `b1 m + (1 - b1) g`, then set
    /// `m = b2 m + (1 - b2) g`.
    #[test]
    fn lion_follows_the_sign_of_the_interpolated_momentum() {
        let opt = lion();
        let mut s = slot(&[1.0, -2.0, 0.5, 0.0], [2, 2]);
        let g1 = Tensor::from_slice(&[0.3f32, -0.2, 0.0, 4.0]).reshape([2, 2]);
        step_one(&opt, &mut s, &g1, 0.1, 1).unwrap();
        // w * (1 - 0.05) - 0.1 * sign(0.1 g): sign(0) is 0.
        let w1 = [0.95 - 0.1, -1.9 + 0.1, 0.475, -0.1];
        let m1 = [0.003, -0.002, 0.0, 0.04];
        for (a, b) in values(&s.value).iter().zip(w1) {
            assert!((a - b).abs() < 1e-6, "{:?} vs {w1:?}", values(&s.value));
        }
        for (a, b) in values(&s.m).iter().zip(m1) {
            assert!((a - b).abs() < 1e-7, "{:?} vs {m1:?}", values(&s.m));
        }
        // A second gradient against the momentum: the momentum's sign wins
        // where 0.9 m outweighs 0.1 g.
        let g2 = Tensor::from_slice(&[-0.01f32, 0.0, 1.0, -0.5]).reshape([2, 2]);
        step_one(&opt, &mut s, &g2, 0.1, 2).unwrap();
        // 0.9 * m1 + 0.1 * g2 = [0.0017, -0.0018, 0.1, -0.014].
        let w2 = [
            w1[0] * 0.95 - 0.1,
            w1[1] * 0.95 + 0.1,
            w1[2] * 0.95 - 0.1,
            w1[3] * 0.95 + 0.1,
        ];
        for (a, b) in values(&s.value).iter().zip(w2) {
            assert!((a - b).abs() < 1e-6, "{:?} vs {w2:?}", values(&s.value));
        }
    }

    /// Vectors (biases, gains) are not decayed, as for AdamW.
    #[test]
    fn lion_does_not_decay_vectors() {
        let opt = lion();
        let mut s = slot(&[1.0, 1.0], [1, 2]);
        s.decay = false;
        let g = Tensor::from_slice(&[1.0f32, -1.0]).reshape([1, 2]);
        step_one(&opt, &mut s, &g, 0.1, 1).unwrap();
        let w = values(&s.value);
        assert!(
            (w[0] - 0.9).abs() < 1e-6 && (w[1] - 1.1).abs() < 1e-6,
            "{w:?}"
        );
    }
}
