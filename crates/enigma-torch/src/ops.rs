//! The forward application of one IR node on libtorch tensors.
//!
//! Each primitive of `docs/primitives.md` that the examples use maps to a
//! few libtorch calls; operands are aligned by dim name (`align.rs`) and
//! constants come from the node's `operands` attribute. Autograd records
//! the calls, so a node's backward is libtorch's. An op not implemented
//! yet is an error naming it, never a silent approximation.

use tch::{Kind, Tensor};

use crate::align::{align, shape};
use crate::OpError;
use enigma::ir::types::tensor::Tensor as Ty;
use enigma::ir::types::DType;
use enigma::ir::{Elementwise, Node, NormKind, Op, Operand, Reduction};
use enigma::run::backend::HoldOut;

/// What a node may need besides its inputs.
pub struct Ctx<'a> {
    /// Training (dropout on, masks drawn per step) or evaluation.
    pub train: bool,
    /// The run-time batch of this micro-batch.
    pub batch: i64,
    /// Keys the token masks of this micro-batch: sample `i` draws from
    /// `derive(mask_key, first + i)`.
    pub mask_key: u64,
    /// The position of this micro-batch's first sample among the samples
    /// of every data-parallel rank (`MicroBatch::first`).
    pub first: i64,
    /// Where nodes without inputs (`sinusoidal`) put their output.
    pub device: tch::Device,
    /// A dim position every token mask over that dim also hides.
    pub hold_out: Option<&'a HoldOut>,
    /// Under tensor parallelism, this rank's shape of the output (a split
    /// dim is its part), which `reshape` and `select` produce instead of
    /// the IR's whole shape.
    pub local: Option<&'a [i64]>,
}

/// The output of a node, and for `mask_tokens` the mask it drew.
pub struct Applied {
    pub out: Tensor,
    pub mask: Option<Tensor>,
}

/// The operands of an elementwise node, aligned to its output: inputs by
/// position and constants as 0-dim tensors.
fn operands(
    node: &Node,
    operands: &[Operand],
    ins: &[Tensor],
    tys: &[&Ty],
) -> Result<Vec<Tensor>, OpError> {
    let device = ins.first().map(Tensor::device).unwrap_or(tch::Device::Cpu);
    operands
        .iter()
        .map(|o| match *o {
            Operand::Input(k) => {
                let (x, ty) = ins
                    .get(k)
                    .zip(tys.get(k))
                    .ok_or_else(|| OpError::new(format!("operand {k} is missing")))?;
                align(x, ty, &node.out)
            }
            Operand::Bool(b) => Ok(Tensor::from(b).to_device(device)),
            Operand::Number(v) => Ok(Tensor::from(v as f32).to_device(device)),
            Operand::DataBound => Err(OpError::new(
                "an operand is a size bound per session, which has no one value".into(),
            )),
        })
        .collect()
}

fn unary(f: Elementwise, x: &Tensor) -> Result<Tensor, OpError> {
    use Elementwise as E;
    Ok(match f {
        E::Exp => x.f_exp()?,
        E::Log => x.f_log()?,
        E::Log1p => x.f_log1p()?,
        E::Sqrt => x.f_sqrt()?,
        E::Rsqrt => x.f_rsqrt()?,
        E::Abs => x.f_abs()?,
        E::Square => x.f_square()?,
        E::Tanh => x.f_tanh()?,
        E::Sigmoid => x.f_sigmoid()?,
        E::Relu => x.f_relu()?,
        E::Silu => x.f_silu()?,
        E::Softplus => x.f_softplus()?,
        E::IsNan => x.f_isnan()?,
        E::Neg => x.f_neg()?,
        E::Not => x.f_logical_not()?,
        E::Gelu { tanh } => x.f_gelu(if tanh { "tanh" } else { "none" })?,
        E::Clamp { min, max } => {
            let mut y = x.shallow_clone();
            if let Some(lo) = min {
                y = y.f_clamp_min(lo)?;
            }
            if let Some(hi) = max {
                y = y.f_clamp_max(hi)?;
            }
            y
        }
        other => {
            return Err(OpError::new(format!(
                "`{}` is not a unary op",
                other.name()
            )))
        }
    })
}

fn binary(f: Elementwise, a: &Tensor, b: &Tensor) -> Result<Tensor, OpError> {
    use Elementwise as E;
    Ok(match f {
        E::Add => a.f_add(b)?,
        E::Sub => a.f_sub(b)?,
        E::Mul => a.f_mul(b)?,
        E::Div => a.f_div(b)?,
        E::Pow => a.f_pow(b)?,
        E::Rem => a.f_remainder_tensor(b)?,
        E::Max => a.f_maximum(b)?,
        E::Min => a.f_minimum(b)?,
        E::Eq => a.f_eq_tensor(b)?,
        E::Ne => a.f_ne_tensor(b)?,
        E::Lt => a.f_lt_tensor(b)?,
        E::Le => a.f_le_tensor(b)?,
        E::Gt => a.f_gt_tensor(b)?,
        E::Ge => a.f_ge_tensor(b)?,
        E::And => a.f_logical_and(b)?,
        E::Or => a.f_logical_or(b)?,
        other => {
            return Err(OpError::new(format!(
                "`{}` is not a binary op",
                other.name()
            )))
        }
    })
}

/// The error for an operation the checker accepts but this runtime does
/// not execute yet: named, never approximated.
fn not_yet(op: &Op) -> OpError {
    OpError::unsupported(format!(
        "the runtime does not implement `{}` yet",
        op.name()
    ))
}

/// Applies `node` to its inputs `ins` (whose IR types are `tys`).
pub fn apply(ctx: &Ctx<'_>, node: &Node, ins: &[Tensor], tys: &[&Ty]) -> Result<Applied, OpError> {
    let x = || {
        ins.first()
            .ok_or_else(|| OpError::new("the node has no input".to_string()))
    };
    let ty = || {
        tys.first()
            .copied()
            .ok_or_else(|| OpError::new("the node has no input".to_string()))
    };
    let axes = |a: &[usize]| -> Vec<i64> { a.iter().map(|&k| k as i64).collect() };
    let out = match &node.op {
        Op::Elementwise {
            f,
            operands: spelled,
        } => {
            let o = operands(node, spelled, ins, tys)?;
            match (f.arity(), o.as_slice()) {
                (1, [a]) => unary(*f, a)?,
                (2, [a, b]) => binary(*f, a, b)?,
                (3, [c, a, b]) => a.f_where_self(&c.f_to_kind(Kind::Bool)?, b)?,
                (n, _) => {
                    return Err(OpError::new(format!(
                        "`{}` takes {n} operands, not {}",
                        f.name(),
                        o.len()
                    )))
                }
            }
        }
        Op::OnesLike => x()?.f_ones_like()?,
        Op::ZerosLike => x()?.f_zeros_like()?,
        Op::Linear => match ins {
            [x, w] => x.f_linear(w, None::<&Tensor>)?,
            [x, w, b] => x.f_linear(w, Some(b))?,
            _ => {
                return Err(OpError::new(
                    "`linear` takes `x`, `w` and an optional `b`".into(),
                ))
            }
        },
        Op::Norm { kind, eps } => norm(*kind, *eps, ins)?,
        Op::Reduce { f, axes: a } => {
            let dims: Vec<i64> = if a.is_empty() {
                (0..x()?.dim() as i64).collect()
            } else {
                axes(a)
            };
            reduce(*f, x()?, &dims)?
        }
        Op::Softmax { log, axes: a } => {
            let dims = if a.is_empty() { vec![-1] } else { axes(a) };
            softmax(*log, x()?, &dims)?
        }
        Op::Reshape(_) => x()?.f_reshape(out_shape(ctx, node)?.as_slice())?,
        Op::Concat { axis } => Tensor::f_cat(ins, *axis as i64)?,
        Op::Select { axis, start, .. } => {
            let start = start
                .as_const()
                .ok_or_else(|| OpError::new(format!("the start `{start}` is not a number")))?;
            let len = out_shape(ctx, node)?;
            let len = *len
                .get(*axis)
                .ok_or_else(|| OpError::new("the output lacks the selected axis".into()))?;
            x()?.f_narrow(*axis as i64, start, len)?
        }
        Op::Einsum { .. } => einsum(node, ins, tys)?,
        Op::Dropout { p } => {
            if ctx.train && *p > 0.0 {
                x()?.f_dropout(*p, true)?
            } else {
                x()?.shallow_clone()
            }
        }
        Op::Attention {
            heads, kv_heads, ..
        } => attention(&node.op, ins, heads != kv_heads, ctx.train)?,
        Op::Patchify { size } => patchify(size, x()?)?,
        Op::Sinusoidal { base, times } => {
            if *times {
                return Err(OpError::new(
                    "`sinusoidal` of explicit times is not run yet".into(),
                ));
            }
            sinusoidal(node, *base, ctx.device)?
        }
        Op::MaskTokens { ratio, axes: drawn } => {
            return mask_tokens(ctx, *ratio, drawn, ins, ty().ok())
        }
        Op::Cast { dtype } => {
            let kind = match dtype {
                DType::F32 | DType::Float => Kind::Float,
                DType::F64 => Kind::Double,
                DType::BF16 => Kind::BFloat16,
                DType::F16 => Kind::Half,
                DType::I64 => Kind::Int64,
                DType::I32 => Kind::Int,
                DType::Bool => Kind::Bool,
                DType::I8 | DType::U8 => {
                    return Err(OpError::new(format!("`cast` to {}", dtype.as_str())))
                }
            };
            x()?.f_to_kind(kind)?
        }
        // Drawn by the backend from the masks of the micro-batch.
        Op::TokenMask { .. } => {
            return Err(OpError::new(
                "`token_mask` is read from the drawn masks, not applied".into(),
            ))
        }
        op @ (Op::Matmul
        | Op::Embedding
        | Op::Conv { .. }
        | Op::Unpatchify { .. }
        | Op::Rotary { .. }
        | Op::CausalMask
        | Op::Split { .. }
        | Op::Permute { .. }
        | Op::Broadcast
        | Op::Slice { .. }
        | Op::Take { .. }
        | Op::OneHot
        | Op::Arange
        | Op::Stack) => return Err(not_yet(op)),
    };
    Ok(Applied { out, mask: None })
}

/// The shape of `node`'s output on this rank.
fn out_shape(ctx: &Ctx<'_>, node: &Node) -> Result<Vec<i64>, OpError> {
    match ctx.local {
        Some(local) => Ok(local.to_vec()),
        None => shape(&node.out, ctx.batch),
    }
}

fn norm(kind: NormKind, eps: f64, ins: &[Tensor]) -> Result<Tensor, OpError> {
    let (x, w, b) = match ins {
        [x] => (x, None, None),
        [x, w] => (x, Some(w), None),
        [x, w, b] => (x, Some(w), Some(b)),
        _ => return Err(OpError::new("a norm takes `x`, `w` and `b`".into())),
    };
    let d = *x
        .size()
        .last()
        .ok_or_else(|| OpError::new("a norm needs a dim".into()))?;
    match kind {
        NormKind::Layer => Ok(x.f_layer_norm([d].as_slice(), w, b, eps, true)?),
        NormKind::Rms => {
            let ms = x
                .f_square()?
                .f_mean_dim([-1i64].as_slice(), true, None::<Kind>)?;
            let y = x.f_mul(&ms.f_add_scalar(eps)?.f_rsqrt()?)?;
            Ok(match w {
                Some(w) => y.f_mul(w)?,
                None => y,
            })
        }
    }
}

fn reduce(f: Reduction, x: &Tensor, dims: &[i64]) -> Result<Tensor, OpError> {
    Ok(match f {
        Reduction::Mean => x.f_mean_dim(dims, false, None::<Kind>)?,
        Reduction::Sum => x.f_sum_dim_intlist(dims, false, None::<Kind>)?,
        Reduction::Var => x.f_var_correction(dims, 0, false)?,
        Reduction::Std => x.f_std_correction(dims, 0, false)?,
        Reduction::Amax => x.f_amax(dims, false)?,
        Reduction::LogSumExp => x.f_logsumexp(dims, false)?,
    })
}

fn softmax(log: bool, x: &Tensor, dims: &[i64]) -> Result<Tensor, OpError> {
    // Over several dims jointly: subtract the joint maximum, normalise by
    // the joint sum.
    let m = x.f_amax(dims, true)?.f_detach()?;
    let z = x.f_sub(&m)?;
    let lse = z.f_logsumexp(dims, true)?;
    let logp = z.f_sub(&lse)?;
    Ok(if log { logp } else { logp.f_exp()? })
}

/// `einsum[D...](a, b, ...)`: one letter per dim name over all operands
/// and the output; the summed dims are the ones the output lacks.
fn einsum(node: &Node, ins: &[Tensor], tys: &[&Ty]) -> Result<Tensor, OpError> {
    let mut names: Vec<String> = Vec::new();
    let mut letter = |d: &enigma::ir::types::tensor::Dim| -> Result<char, OpError> {
        let key = d.name.to_string();
        let i = match names.iter().position(|n| *n == key) {
            Some(i) => i,
            None => {
                names.push(key);
                names.len() - 1
            }
        };
        char::from_u32('a' as u32 + i as u32)
            .filter(|c| c.is_ascii_lowercase())
            .ok_or_else(|| OpError::new("`einsum` over more than 26 dims".into()))
    };
    let mut terms = Vec::new();
    for ty in tys {
        terms.push(
            ty.dims
                .iter()
                .map(&mut letter)
                .collect::<Result<String, _>>()?,
        );
    }
    let out: String = node
        .out
        .dims
        .iter()
        .map(&mut letter)
        .collect::<Result<_, _>>()?;
    let eq = format!("{}->{out}", terms.join(","));
    Ok(Tensor::f_einsum(&eq, ins, None::<&[i64]>)?)
}

/// `attention(q, k, v)` on `[..., S, heads, e]`: libtorch's fused
/// scaled-dot-product attention on `[..., heads, S, e]`, grouped-query when
/// there are fewer key/value heads, with the attention dropout in training
/// and the logits' scale when the node gives one.
fn attention(op: &Op, ins: &[Tensor], grouped: bool, train: bool) -> Result<Tensor, OpError> {
    let Op::Attention {
        causal,
        dropout,
        scale,
        masked,
        ..
    } = op
    else {
        return Err(OpError::new("not an attention node".into()));
    };
    if *masked {
        return Err(OpError::unsupported(
            "the runtime does not implement attention with a `mask` yet".into(),
        ));
    }
    let [q, k, v] = ins else {
        return Err(OpError::new("`attention` takes `q`, `k` and `v`".into()));
    };
    let t = |x: &Tensor| x.f_transpose(-3, -2);
    let o = Tensor::f_scaled_dot_product_attention(
        &t(q)?,
        &t(k)?,
        &t(v)?,
        None::<&Tensor>,
        if train { *dropout } else { 0.0 },
        *causal,
        *scale,
        grouped,
    )?;
    Ok(o.f_transpose(-3, -2)?)
}

/// `patchify(x: [..., T, C, H, W], size: [t, h, w])` to `[..., T/t, H/h,
/// W/w, C*t*h*w]`, each patch flattened in `(C, t, h, w)` order (and the
/// image form without `T`).
fn patchify(size: &[i64], x: &Tensor) -> Result<Tensor, OpError> {
    let s = x.size();
    let r = size.len() + 1;
    if s.len() < r {
        return Err(OpError::new(format!(
            "`patchify` of a rank-{} tensor",
            s.len()
        )));
    }
    let lead = &s[..s.len() - r];
    let mut view: Vec<i64> = lead.to_vec();
    let mut perm: Vec<i64> = (0..lead.len() as i64).collect();
    let n = lead.len() as i64;
    match (size, &s[s.len() - r..]) {
        ([t, h, w], [tt, c, hh, ww]) => {
            view.extend([tt / t, *t, *c, hh / h, *h, ww / w, *w]);
            // [.., T/t, t, C, H/h, h, W/w, w] -> [.., T/t, H/h, W/w, C, t, h, w]
            perm.extend([n, n + 3, n + 5, n + 2, n + 1, n + 4, n + 6]);
            let y = x.f_reshape(view.as_slice())?.f_permute(perm.as_slice())?;
            let mut out: Vec<i64> = lead.to_vec();
            out.extend([tt / t, hh / h, ww / w, c * t * h * w]);
            Ok(y.f_reshape(out.as_slice())?)
        }
        ([h, w], [c, hh, ww]) => {
            view.extend([*c, hh / h, *h, ww / w, *w]);
            perm.extend([n + 1, n + 3, n, n + 2, n + 4]);
            let y = x.f_reshape(view.as_slice())?.f_permute(perm.as_slice())?;
            let mut out: Vec<i64> = lead.to_vec();
            out.extend([hh / h, ww / w, c * h * w]);
            Ok(y.f_reshape(out.as_slice())?)
        }
        _ => Err(OpError::new(
            "`patchify` needs `size` of 2 or 3 numbers".into(),
        )),
    }
}

/// `sinusoidal[D](d)`: Vaswani et al.'s encoding of the positions of `D`
/// (in seconds when `D` has a rate), sines at even and cosines at odd
/// channels.
fn sinusoidal(node: &Node, base: f64, device: tch::Device) -> Result<Tensor, OpError> {
    let (lead, d) = match node.out.dims.as_slice() {
        [lead, d] => (lead, d),
        _ => {
            return Err(OpError::new(
                "`sinusoidal` of explicit times is not run yet".into(),
            ))
        }
    };
    let size = |x: &enigma::ir::types::tensor::Dim| {
        x.size
            .as_ref()
            .and_then(enigma::ir::types::size::Size::as_const)
            .ok_or_else(|| OpError::new("`sinusoidal` needs known sizes".into()))
    };
    let (n, w) = (size(lead)?, size(d)?);
    let rate = lead.rate.unwrap_or(1.0);
    let mut data = Vec::with_capacity((n * w) as usize);
    for p in 0..n {
        let pos = p as f64 / rate;
        for i in 0..w {
            let freq = base.powf(-((i / 2 * 2) as f64) / w as f64);
            let a = pos * freq;
            data.push(if i % 2 == 0 { a.sin() } else { a.cos() } as f32);
        }
    }
    Ok(Tensor::f_from_slice(&data)?
        .f_reshape([n, w].as_slice())?
        .f_to_device(device)?)
}

/// `mask_tokens[D...](x, token)`: in each sample, exactly `round(ratio *
/// P)` of the `P` positions of the drawn dims are chosen (a partial
/// Fisher-Yates shuffle keyed by the sample), and their vectors replaced by
/// `token`. The mask (`[B, D...]`, true where masked) is returned for the
/// `token_mask` node and the evaluation.
fn mask_tokens(
    ctx: &Ctx<'_>,
    ratio: f64,
    drawn: &[usize],
    ins: &[Tensor],
    x_ty: Option<&Ty>,
) -> Result<Applied, OpError> {
    let [x, token] = ins else {
        return Err(OpError::new("`mask_tokens` takes `x` and `token`".into()));
    };
    let s = x.size();
    let dims: Vec<i64> = drawn
        .iter()
        .map(|&d| {
            s.get(d)
                .copied()
                .ok_or_else(|| OpError::new("bad mask dim".into()))
        })
        .collect::<Result<_, _>>()?;
    let m = draw_mask(ctx, ratio, drawn, &dims, x_ty, x.device())?;
    let b = ctx.batch;
    // Broadcast the mask over the dims not drawn: [B, D...] to x's rank.
    let mut view = vec![1i64; s.len()];
    if let Some(first) = view.first_mut() {
        *first = b;
    }
    for (&d, &n) in drawn.iter().zip(&dims) {
        view[d] = n;
    }
    let mb = m.f_reshape(view.as_slice())?;
    let out = token.f_expand_as(x)?.f_where_self(&mb, x)?;
    Ok(Applied { out, mask: Some(m) })
}

/// The mask `mask_tokens` draws over drawn dims of sizes `dims`: `[B,
/// dims...]`, true where masked. It depends only on the keys, the sizes
/// and the hold-out, so a pipeline stage that did not apply the node draws
/// the same mask again.
pub fn draw_mask(
    ctx: &Ctx<'_>,
    ratio: f64,
    drawn: &[usize],
    dims: &[i64],
    x_ty: Option<&Ty>,
    device: tch::Device,
) -> Result<Tensor, OpError> {
    let p: i64 = dims.iter().product();
    let b = ctx.batch;
    // The draw is the front end's, which the baselines share.
    let sizes: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
    let mut mask = enigma::run::mask::draw(
        ctx.mask_key,
        ctx.first.max(0) as usize,
        b.max(0) as usize,
        ratio,
        &sizes,
    );
    // A held-out position hides every token at that index of its dim, on
    // top of the tokens drawn.
    let held = ctx.hold_out.and_then(|h| {
        let ty = x_ty?;
        let j = drawn
            .iter()
            .position(|&d| ty.dims.get(d).is_some_and(|x| x.name.to_string() == h.dim))?;
        let stride: i64 = dims[j + 1..].iter().product();
        Some((j, stride, h.index as i64))
    });
    if let Some((j, stride, index)) = held {
        if index >= dims[j] {
            return Err(OpError::new(format!(
                "cannot hold out position {index} of a dim of size {}",
                dims[j]
            )));
        }
        for i in 0..b {
            for q in 0..p {
                if (q / stride) % dims[j] == index {
                    mask[(i * p + q) as usize] = true;
                }
            }
        }
    }
    let mut mshape = vec![b];
    mshape.extend(dims);
    Ok(Tensor::f_from_slice(&mask)?
        .f_reshape(mshape.as_slice())?
        .f_to_device(device)?)
}
