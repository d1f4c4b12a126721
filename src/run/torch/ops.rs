//! The forward application of one IR node on libtorch tensors.
//!
//! Each primitive of `docs/primitives.md` that the examples use maps to a
//! few libtorch calls; operands are aligned by dim name (`align.rs`) and
//! constants come from the node's `operands` attribute. Autograd records
//! the calls, so a node's backward is libtorch's. An op not implemented
//! yet is an error naming it, never a silent approximation.

use tch::{Kind, Tensor};

use super::align::{align, named, shape, sum_of};
use super::OpError;
use crate::base::rng::{derive, SplitMix64};
use crate::ir::types::tensor::Tensor as Ty;
use crate::ir::Node;
use crate::run::backend::HoldOut;

/// What a node may need besides its inputs.
pub struct Ctx<'a> {
    /// Training (dropout on, masks drawn per step) or evaluation.
    pub train: bool,
    /// The run-time batch of this micro-batch.
    pub batch: i64,
    /// Keys the token masks of this micro-batch: sample `i` draws from
    /// `derive(mask_key, i)`.
    pub mask_key: u64,
    /// Where nodes without inputs (`sinusoidal`) put their output.
    pub device: tch::Device,
    /// A dim position every token mask over that dim also hides.
    pub hold_out: Option<&'a HoldOut>,
}

/// The output of a node, and for `mask_tokens` the mask it drew.
pub struct Applied {
    pub out: Tensor,
    pub mask: Option<Tensor>,
}

fn attr<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.attrs.get(key).map(String::as_str)
}

fn num_attr(node: &Node, key: &str, default: f64) -> Result<f64, OpError> {
    match attr(node, key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| OpError::new(format!("attribute `{key}: {v}` is not a number"))),
    }
}

/// The operands of an elementwise node, aligned to its output: inputs by
/// position (`$k`) and constants as 0-dim tensors.
fn operands(node: &Node, ins: &[Tensor], tys: &[&Ty]) -> Result<Vec<Tensor>, OpError> {
    let device = ins.first().map(Tensor::device).unwrap_or(tch::Device::Cpu);
    let spelled: Vec<String> = match attr(node, "operands") {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => (0..ins.len()).map(|i| format!("${i}")).collect(),
    };
    spelled
        .iter()
        .map(|o| {
            if let Some(k) = o.strip_prefix('$') {
                let k: usize = k
                    .parse()
                    .map_err(|_| OpError::new(format!("bad operand `{o}`")))?;
                let (x, ty) = ins
                    .get(k)
                    .zip(tys.get(k))
                    .ok_or_else(|| OpError::new(format!("operand `{o}` is missing")))?;
                align(x, ty, &node.out)
            } else if o == "true" || o == "false" {
                Ok(Tensor::from(o == "true").to_device(device))
            } else {
                let v: f64 = o
                    .parse()
                    .map_err(|_| OpError::new(format!("constant `{o}` is not a number")))?;
                Ok(Tensor::from(v as f32).to_device(device))
            }
        })
        .collect()
}

fn unary(op: &str, x: &Tensor, node: &Node) -> Result<Tensor, OpError> {
    Ok(match op {
        "exp" => x.f_exp()?,
        "log" => x.f_log()?,
        "log1p" => x.f_log1p()?,
        "sqrt" => x.f_sqrt()?,
        "rsqrt" => x.f_rsqrt()?,
        "abs" => x.f_abs()?,
        "square" => x.f_square()?,
        "tanh" => x.f_tanh()?,
        "sigmoid" => x.f_sigmoid()?,
        "relu" => x.f_relu()?,
        "silu" => x.f_silu()?,
        "softplus" => x.f_softplus()?,
        "isnan" => x.f_isnan()?,
        "neg" => x.f_neg()?,
        "not" => x.f_logical_not()?,
        "gelu" => x.f_gelu(attr(node, "approximate").unwrap_or("none"))?,
        other => return Err(OpError::new(format!("`{other}` is not a unary op"))),
    })
}

fn binary(op: &str, a: &Tensor, b: &Tensor) -> Result<Tensor, OpError> {
    Ok(match op {
        "add" => a.f_add(b)?,
        "sub" => a.f_sub(b)?,
        "mul" => a.f_mul(b)?,
        "div" => a.f_div(b)?,
        "pow" => a.f_pow(b)?,
        "rem" => a.f_remainder_tensor(b)?,
        "max" => a.f_maximum(b)?,
        "min" => a.f_minimum(b)?,
        "eq" => a.f_eq_tensor(b)?,
        "ne" => a.f_ne_tensor(b)?,
        "lt" => a.f_lt_tensor(b)?,
        "le" => a.f_le_tensor(b)?,
        "gt" => a.f_gt_tensor(b)?,
        "ge" => a.f_ge_tensor(b)?,
        "and" => a.f_logical_and(b)?,
        "or" => a.f_logical_or(b)?,
        other => return Err(OpError::new(format!("`{other}` is not a binary op"))),
    })
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
    let out = match node.op.as_str() {
        "exp" | "log" | "log1p" | "sqrt" | "rsqrt" | "abs" | "square" | "tanh" | "sigmoid"
        | "relu" | "silu" | "softplus" | "isnan" | "neg" | "not" | "gelu" => {
            let o = operands(node, ins, tys)?;
            let a = o.first().ok_or_else(|| OpError::new("no operand".into()))?;
            unary(&node.op, a, node)?
        }
        "add" | "sub" | "mul" | "div" | "pow" | "rem" | "max" | "min" | "eq" | "ne" | "lt"
        | "le" | "gt" | "ge" | "and" | "or" => {
            let o = operands(node, ins, tys)?;
            match o.as_slice() {
                [a, b] => binary(&node.op, a, b)?,
                _ => return Err(OpError::new(format!("`{}` takes two operands", node.op))),
            }
        }
        "where" => {
            let o = operands(node, ins, tys)?;
            match o.as_slice() {
                [c, a, b] => a.f_where_self(&c.f_to_kind(Kind::Bool)?, b)?,
                _ => return Err(OpError::new("`where` takes three operands".into())),
            }
        }
        "ones_like" => x()?.f_ones_like()?,
        "zeros_like" => x()?.f_zeros_like()?,
        "linear" => match ins {
            [x, w] => x.f_linear(w, None::<&Tensor>)?,
            [x, w, b] => x.f_linear(w, Some(b))?,
            _ => {
                return Err(OpError::new(
                    "`linear` takes `x`, `w` and an optional `b`".into(),
                ))
            }
        },
        "layer_norm" | "rms_norm" => norm(node, ins)?,
        "mean" | "sum" | "var" | "std" | "amax" | "logsumexp" => reduce(node, x()?, ty()?)?,
        "softmax" | "log_softmax" => {
            let dims = match attr(node, "dims") {
                Some(d) => named(ty()?, d)?,
                None => vec![-1],
            };
            softmax(&node.op, x()?, &dims)?
        }
        "reshape" | "flatten" | "unflatten" => {
            x()?.f_reshape(shape(&node.out, ctx.batch)?.as_slice())?
        }
        "concat" => {
            let d = attr(node, "dims").unwrap_or("seq");
            let at = named(&node.out, d)?;
            let at = *at
                .first()
                .ok_or_else(|| OpError::new("`concat` needs a dim".into()))?;
            Tensor::f_cat(ins, at)?
        }
        "select" => {
            let seq = named(ty()?, "seq")?;
            let at = *seq
                .first()
                .ok_or_else(|| OpError::new("no `seq` dim".into()))?;
            let start = sum_of(attr(node, "start").unwrap_or("0"))?;
            let len = shape(&node.out, ctx.batch)?;
            let len = *len
                .get(at as usize)
                .ok_or_else(|| OpError::new("`select` output lacks `seq`".into()))?;
            x()?.f_narrow(at, start, len)?
        }
        "einsum" => einsum(node, ins, tys)?,
        "dropout" => {
            let p = num_attr(node, "p", 0.0)?;
            if ctx.train && p > 0.0 {
                x()?.f_dropout(p, true)?
            } else {
                x()?.shallow_clone()
            }
        }
        "attention" => attention(node, ins)?,
        "patchify" => patchify(node, x()?)?,
        "sinusoidal" => sinusoidal(node, ctx.device)?,
        "mask_tokens" => return mask_tokens(ctx, node, ins, tys.first().copied()),
        "cast" => {
            let kind = match attr(node, "dtype") {
                Some("f32") | Some("float") => Kind::Float,
                Some("f64") => Kind::Double,
                Some("bf16") => Kind::BFloat16,
                Some("f16") => Kind::Half,
                Some("i64") => Kind::Int64,
                Some("i32") => Kind::Int,
                Some("bool") => Kind::Bool,
                other => return Err(OpError::new(format!("`cast` to {other:?}"))),
            };
            x()?.f_to_kind(kind)?
        }
        other => {
            return Err(OpError::new(format!(
                "the runtime does not implement `{other}` yet"
            )))
        }
    };
    Ok(Applied { out, mask: None })
}

fn norm(node: &Node, ins: &[Tensor]) -> Result<Tensor, OpError> {
    let (x, w, b) = match ins {
        [x] => (x, None, None),
        [x, w] => (x, Some(w), None),
        [x, w, b] => (x, Some(w), Some(b)),
        _ => {
            return Err(OpError::new(format!(
                "`{}` takes `x`, `w` and `b`",
                node.op
            )))
        }
    };
    let d = *x
        .size()
        .last()
        .ok_or_else(|| OpError::new("a norm needs a dim".into()))?;
    if node.op == "layer_norm" {
        let eps = num_attr(node, "eps", 1e-5)?;
        Ok(x.f_layer_norm([d].as_slice(), w, b, eps, true)?)
    } else {
        let eps = num_attr(node, "eps", 1e-6)?;
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

fn reduce(node: &Node, x: &Tensor, ty: &Ty) -> Result<Tensor, OpError> {
    let dims: Vec<i64> = match attr(node, "dims") {
        Some(d) => named(ty, d)?,
        None => (0..x.dim() as i64).collect(),
    };
    let d = dims.as_slice();
    Ok(match node.op.as_str() {
        "mean" => x.f_mean_dim(d, false, None::<Kind>)?,
        "sum" => x.f_sum_dim_intlist(d, false, None::<Kind>)?,
        "var" => x.f_var_correction(d, 0, false)?,
        "std" => x.f_std_correction(d, 0, false)?,
        "amax" => x.f_amax(d, false)?,
        _ => x.f_logsumexp(d, false)?,
    })
}

fn softmax(op: &str, x: &Tensor, dims: &[i64]) -> Result<Tensor, OpError> {
    // Over several dims jointly: subtract the joint maximum, normalise by
    // the joint sum.
    let m = x.f_amax(dims, true)?.f_detach()?;
    let z = x.f_sub(&m)?;
    let lse = z.f_logsumexp(dims, true)?;
    let log = z.f_sub(&lse)?;
    Ok(if op == "log_softmax" {
        log
    } else {
        log.f_exp()?
    })
}

/// `einsum[D...](a, b, ...)`: one letter per dim name over all operands
/// and the output; the summed dims are the ones the output lacks.
fn einsum(node: &Node, ins: &[Tensor], tys: &[&Ty]) -> Result<Tensor, OpError> {
    let mut names: Vec<String> = Vec::new();
    let mut letter = |d: &crate::ir::types::tensor::Dim| -> Result<char, OpError> {
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
/// there are fewer key/value heads.
fn attention(node: &Node, ins: &[Tensor]) -> Result<Tensor, OpError> {
    let [q, k, v] = ins else {
        return Err(OpError::new("`attention` takes `q`, `k` and `v`".into()));
    };
    let causal = attr(node, "causal") == Some("true");
    let heads = num_attr(node, "heads", 1.0)?;
    let kv = num_attr(node, "kv_heads", heads)?;
    let t = |x: &Tensor| x.f_transpose(-3, -2);
    let o = Tensor::f_scaled_dot_product_attention(
        &t(q)?,
        &t(k)?,
        &t(v)?,
        None::<&Tensor>,
        0.0,
        causal,
        None,
        kv != heads,
    )?;
    Ok(o.f_transpose(-3, -2)?)
}

/// `patchify(x: [..., T, C, H, W], size: [t, h, w])` to `[..., T/t, H/h,
/// W/w, C*t*h*w]`, each patch flattened in `(C, t, h, w)` order (and the
/// image form without `T`).
fn patchify(node: &Node, x: &Tensor) -> Result<Tensor, OpError> {
    let size: Vec<i64> = attr(node, "size")
        .unwrap_or("")
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|s| s.trim().parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| OpError::new("`patchify` needs `size: [t, h, w]`".into()))?;
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
    match (size.as_slice(), &s[s.len() - r..]) {
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
fn sinusoidal(node: &Node, device: tch::Device) -> Result<Tensor, OpError> {
    let base = num_attr(node, "base", 10_000.0)?;
    let (lead, d) = match node.out.dims.as_slice() {
        [lead, d] => (lead, d),
        _ => {
            return Err(OpError::new(
                "`sinusoidal` of explicit times is not run yet".into(),
            ))
        }
    };
    let size = |x: &crate::ir::types::tensor::Dim| {
        x.size
            .as_ref()
            .and_then(crate::ir::types::size::Size::as_const)
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
    node: &Node,
    ins: &[Tensor],
    x_ty: Option<&Ty>,
) -> Result<Applied, OpError> {
    let [x, token] = ins else {
        return Err(OpError::new("`mask_tokens` takes `x` and `token`".into()));
    };
    let ratio = num_attr(node, "ratio", 0.0)?;
    let drawn: Vec<usize> = attr(node, "dims")
        .unwrap_or("")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let s = x.size();
    let dims: Vec<i64> = drawn
        .iter()
        .map(|&d| {
            s.get(d)
                .copied()
                .ok_or_else(|| OpError::new("bad mask dim".into()))
        })
        .collect::<Result<_, _>>()?;
    let p: i64 = dims.iter().product();
    let k = ((ratio * p as f64).round() as i64).clamp(0, p);
    let b = ctx.batch;
    let mut mask = vec![false; (b * p) as usize];
    for i in 0..b {
        let mut rng = SplitMix64::new(derive(ctx.mask_key, i as u64));
        let mut idx: Vec<i64> = (0..p).collect();
        for j in 0..k {
            let r = j + rng.below((p - j) as u64) as i64;
            idx.swap(j as usize, r as usize);
            mask[(i * p + idx[j as usize]) as usize] = true;
        }
    }
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
    mshape.extend(&dims);
    let m = Tensor::f_from_slice(&mask)?
        .f_reshape(mshape.as_slice())?
        .f_to_device(x.device())?;
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
