//! Shape rules of the dense primitives: products, embeddings,
//! convolutions and patches, norms, attention and positions.
//!
//! FLOPs are counted for matrix products only (2 per multiply-add), the
//! convention of the `6 N` training-compute rule: elementwise work,
//! normalisation and softmax are memory-bound and left out. Attention's
//! two products are counted over every (query, key) pair, causal or not.

use super::super::{Elab, Res, TVal, Val};
use super::PrimCall;
use crate::diagnostics::Code;
use crate::ir::types::size::Size;
use crate::ir::types::tensor::{name_div, DType, Dim, Mismatch, Tensor};
use crate::ir::types::Value;
use crate::ir::{NormKind, Op};
use crate::syntax::ast::IndexItem;

impl Elab<'_, '_> {
    /// Reports that two dims that must be the same are not.
    pub fn same_dim(
        &mut self,
        prim: &str,
        what: &str,
        a: &Dim,
        b: &Dim,
        at: crate::base::Loc,
    ) -> Res<Dim> {
        match a.matches(b) {
            Ok(()) => Ok(a.merge(b)),
            Err(why) => {
                let code = if why == Mismatch::Rate {
                    Code::E0212
                } else {
                    Code::E0211
                };
                let mut notes = Vec::new();
                if let Some(o) = a.origin {
                    notes.push((o, format!("{} gets its size here", a.describe())));
                }
                if let Some(o) = b.origin {
                    notes.push((o, format!("{} gets its size here", b.describe())));
                }
                let message = format!(
                    "`{prim}` needs {what} to be the same dim, but they are {} and {}",
                    a.describe(),
                    b.describe()
                );
                let help = "check the shapes of the arguments (docs/primitives.md gives each primitive's signature)";
                self.report_disagreement(
                    code,
                    at,
                    message,
                    "these dims differ",
                    help,
                    notes,
                    why,
                    (a, b),
                );
                Err(())
            }
        }
    }

    fn need_rank(
        &mut self,
        prim: &str,
        name: &str,
        t: &TVal,
        min: usize,
        loc: crate::base::Loc,
    ) -> Res<()> {
        if t.ty.dims.len() < min {
            self.report(
                Code::E0213,
                loc,
                format!(
                    "`{name}` of `{prim}` needs at least {min} dims, but it is `{}`",
                    t.ty
                ),
                "too few dims",
                "see docs/primitives.md for the primitive's signature",
            );
            return Err(());
        }
        Ok(())
    }

    pub(super) fn linear(&mut self, c: &mut PrimCall) -> Res<Val> {
        let xa = self.required(c, 0, "x")?;
        let x = self.as_tensor(c.prim, &xa, "x")?;
        let wa = self.required(c, 1, "w")?;
        let w = self.as_tensor(c.prim, &wa, "w")?;
        let b = self.opt_tensor(c, 2, "b")?;
        self.need_rank("linear", "x", &x, 1, xa.loc)?;
        if w.ty.dims.len() != 2 {
            self.report(
                Code::E0213,
                wa.loc,
                format!(
                    "the weight of `linear` must be `[out, in]`, but it is `{}`",
                    w.ty
                ),
                "not a matrix",
                "a linear weight has two dims, output first (PyTorch's layout)",
            );
            return Err(());
        }
        let n = x.ty.dims.len();
        let k = self.same_dim(
            "linear",
            "the last dim of `x` and the input dim of `w`",
            &x.ty.dims[n - 1],
            &w.ty.dims[1],
            xa.loc,
        )?;
        let mut dims = x.ty.dims.clone();
        dims[n - 1] = w.ty.dims[0].clone();
        if let Some(b) = &b {
            if b.ty.dims.len() != 1 {
                let loc = self.loc(c.at);
                self.report(
                    Code::E0213,
                    loc,
                    format!("the bias of `linear` must be `[out]`, but it is `{}`", b.ty),
                    "not a vector",
                    "a bias has one dim, the output dim",
                );
                return Err(());
            }
            let loc = self.loc(c.at);
            self.same_dim(
                "linear",
                "the bias and the output dim",
                &b.ty.dims[0],
                &w.ty.dims[0],
                loc,
            )?;
        }
        let out = Tensor::new(x.ty.dtype.join(w.ty.dtype), dims);
        let flops = product_flops(&out, &[&k])?;
        let mut inputs = vec![&x, &w];
        if let Some(b) = &b {
            inputs.push(b);
        }
        let at = c.at;
        Ok(Val::Tensor(self.node(Op::Linear, &inputs, out, flops, at)))
    }

    pub(super) fn matmul(&mut self, c: &mut PrimCall) -> Res<Val> {
        let aa = self.required(c, 0, "a")?;
        let a = self.as_tensor(c.prim, &aa, "a")?;
        let ba = self.required(c, 1, "b")?;
        let b = self.as_tensor(c.prim, &ba, "b")?;
        self.need_rank("matmul", "a", &a, 2, aa.loc)?;
        self.need_rank("matmul", "b", &b, 2, ba.loc)?;
        let (n, m) = (a.ty.dims.len(), b.ty.dims.len());
        let k = self.same_dim(
            "matmul",
            "the last dim of `a` and the second-to-last of `b`",
            &a.ty.dims[n - 1],
            &b.ty.dims[m - 2],
            ba.loc,
        )?;
        let lead = match super::broadcast(&a.ty.dims[..n - 2], &b.ty.dims[..m - 2]) {
            Ok(d) => d,
            Err(e) => {
                let (x, y, _) = *e;
                self.same_dim("matmul", "the leading dims", &x, &y, ba.loc)?;
                return Err(());
            }
        };
        let mut dims = lead;
        dims.push(a.ty.dims[n - 2].clone());
        dims.push(b.ty.dims[m - 1].clone());
        let out = Tensor::new(a.ty.dtype.join(b.ty.dtype), dims);
        let flops = product_flops(&out, &[&k])?;
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Matmul,
            &[&a, &b],
            out,
            flops,
            at,
        )))
    }

    pub(super) fn einsum(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let summed = self.dim_params(c, dims)?;
        let operands = c.rest(0);
        if operands.len() < 2 {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                "`einsum` needs at least two tensors".into(),
                "too few operands",
                "write `einsum[d](a, b)` to multiply `a` and `b` and sum over `d`",
            );
            return Err(());
        }
        let mut tensors = Vec::new();
        for a in &operands {
            tensors.push(self.as_tensor("einsum", a, "each operand")?);
        }
        let mut product = tensors[0].ty.dims.clone();
        for (t, a) in tensors.iter().zip(&operands).skip(1) {
            product = match super::broadcast(&product, &t.ty.dims) {
                Ok(d) => d,
                Err(e) => {
                    let (x, y, _) = *e;
                    self.same_dim("einsum", "dims of the same name", &x, &y, a.loc)?;
                    return Err(());
                }
            };
        }
        let whole = TVal {
            ty: Tensor::new(DType::Float, product.clone()),
            src: None,
            parts: None,
        };
        let mut remove = Vec::new();
        let mut sizes = Vec::new();
        for (d, span) in &summed {
            let i = self.find_dim("einsum", &whole, d, *span)?;
            remove.push(i);
            sizes.push(product[i].clone());
        }
        let out_dims: Vec<Dim> = product
            .iter()
            .enumerate()
            .filter(|(i, _)| !remove.contains(i))
            .map(|(_, d)| d.clone())
            .collect();
        let dtype = tensors
            .iter()
            .fold(tensors[0].ty.dtype, |acc, t| acc.join(t.ty.dtype));
        let out = Tensor::new(dtype, out_dims);
        let refs: Vec<&Dim> = sizes.iter().collect();
        let flops = product_flops(&out, &refs)?;
        let op = Op::Einsum {
            summed: sizes.iter().map(|d| d.name.clone()).collect(),
        };
        let inputs: Vec<&TVal> = tensors.iter().collect();
        let at = c.at;
        Ok(Val::Tensor(self.node(op, &inputs, out, flops, at)))
    }

    pub(super) fn embedding(&mut self, c: &mut PrimCall) -> Res<Val> {
        let ia = self.required(c, 0, "ids")?;
        let ids = self.as_tensor(c.prim, &ia, "ids")?;
        let ta = self.required(c, 1, "table")?;
        let table = self.as_tensor(c.prim, &ta, "table")?;
        if !ids.ty.dtype.is_int() {
            self.report(
                Code::E0214,
                ia.loc,
                format!(
                    "`embedding` looks up integer ids, but `ids` is `{}`",
                    ids.ty
                ),
                "not integer ids",
                "declare the modality with an integer dtype (`series<i64>[...]`) or `cast` the ids",
            );
            return Err(());
        }
        if table.ty.dims.len() != 2 {
            self.report(
                Code::E0213,
                ta.loc,
                format!(
                    "the table of `embedding` must be `[vocab, d]`, but it is `{}`",
                    table.ty
                ),
                "not a table",
                "an embedding table has one row per id",
            );
            return Err(());
        }
        let mut dims = ids.ty.dims.clone();
        dims.push(table.ty.dims[1].clone());
        let out = Tensor::new(table.ty.dtype, dims);
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Embedding,
            &[&ids, &table],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn conv(&mut self, c: &mut PrimCall, k: usize) -> Res<Val> {
        let xa = self.required(c, 0, "x")?;
        let x = self.as_tensor(c.prim, &xa, "x")?;
        let wa = self.required(c, 1, "w")?;
        let w = self.as_tensor(c.prim, &wa, "w")?;
        let b = self.opt_tensor(c, 2, "b")?;
        self.need_rank(c.prim, "x", &x, k + 1, xa.loc)?;
        if w.ty.dims.len() != k + 2 {
            self.report(Code::E0213, wa.loc, format!("the weight of `{}` must have {} dims `[out, in / groups, kernel...]`, but it is `{}`", c.prim, k + 2, w.ty), "wrong rank", "see docs/primitives.md");
            return Err(());
        }
        let ints = |e: &mut Self, c: &mut PrimCall, name: &str, default: i64| -> Res<Vec<i64>> {
            match c.get(usize::MAX, name) {
                None => Ok(vec![default; k]),
                Some(a) => {
                    let v = e.int_list(c, &a, name)?;
                    if v.len() == 1 {
                        Ok(vec![v[0]; k])
                    } else if v.len() == k {
                        Ok(v)
                    } else {
                        e.wrong(
                            c.prim,
                            &a.loc,
                            &format!("`{name}`"),
                            &format!("a list of {k} whole numbers"),
                            &a.val,
                        )
                    }
                }
            }
        };
        let stride = ints(self, c, "stride", 1)?;
        let dilation = ints(self, c, "dilation", 1)?;
        let padding = match c.get(usize::MAX, "padding") {
            None => vec![0; k],
            Some(a) => match &a.val {
                Val::Const(Value::Size(s)) if s.as_const() == Some(0) => vec![0; k],
                _ => {
                    let v = self.int_list(c, &a, "padding")?;
                    if v.len() == 1 {
                        vec![v[0]; k]
                    } else {
                        v
                    }
                }
            },
        };
        let groups = match c.get(usize::MAX, "groups") {
            None => 1,
            Some(a) => match &a.val {
                Val::Const(Value::Size(s)) if s.as_const().is_some_and(|g| g > 0) => {
                    s.as_const().unwrap_or(1)
                }
                other => {
                    return self.wrong(c.prim, &a.loc, "`groups`", "a positive whole number", other)
                }
            },
        };
        let n = x.ty.dims.len();
        let channels = &x.ty.dims[n - k - 1];
        let cin = channels.size.as_ref().and_then(Size::as_const);
        let win = w.ty.dims[1].size.as_ref().and_then(Size::as_const);
        if let (Some(cin), Some(win)) = (cin, win) {
            if cin % groups != 0 || cin / groups != win {
                // Name the dims by the user's names, and point at the dim
                // of the input that would fit as channels, if one does.
                let fits = x.ty.dims[..n - k - 1]
                    .iter()
                    .chain(&x.ty.dims[n - k..])
                    .find(|d| d.size.as_ref().and_then(Size::as_const) == Some(win * groups));
                let help = match fits {
                    Some(d) => format!(
                        "the input channels are the dim before the last {k} of the input, {}; if the channels are {}, move them there with `permute[...]` first (`permute[C, T](x)` for `[..., T, C]`)",
                        channels.describe(),
                        d.describe()
                    ),
                    None => "the weight's second dim is the input channels divided by `groups`".to_string(),
                };
                self.report(
                    Code::E0215,
                    wa.loc,
                    if cin % groups != 0 {
                        format!(
                            "`{}` reads {} of the input as its channels, which do not divide into {groups} groups",
                            c.prim,
                            channels.describe(),
                        )
                    } else {
                        format!(
                            "`{}` with {groups} groups reads {} of the input as its channels, {} per group, but the weight has {win} per group",
                            c.prim,
                            channels.describe(),
                            cin / groups,
                        )
                    },
                    "wrong input channels",
                    &help,
                );
                return Err(());
            }
        }
        let mut dims: Vec<Dim> = x.ty.dims[..n - k - 1].to_vec();
        dims.push(w.ty.dims[0].clone());
        for j in 0..k {
            let input = &x.ty.dims[n - k + j];
            let kernel = w.ty.dims[2 + j].size.as_ref().and_then(Size::as_const);
            let (Some(l), Some(kk)) = (input.size.as_ref().and_then(Size::as_const), kernel) else {
                dims.push(Dim::named(
                    &format!("{}'", input.name),
                    Size::symbol(&format!("{}'", input.name)),
                    None,
                ));
                continue;
            };
            let span = l + 2 * padding.get(j).copied().unwrap_or(0) - dilation[j] * (kk - 1) - 1;
            if span < 0 || span % stride[j] != 0 {
                let loc = self.loc(c.at);
                self.report(Code::E0215, loc, format!("`{}` over {} positions with kernel {kk} and stride {} does not tile the input exactly", c.prim, l, stride[j]), "the positions do not come out whole", "choose padding and stride so that (L + 2 padding - dilation (k - 1) - 1) is a multiple of the stride");
                return Err(());
            }
            let out_len = span / stride[j] + 1;
            if out_len == l {
                dims.push(input.clone());
            } else {
                dims.push(Dim::anon(out_len, Some(self.loc(c.at))));
            }
        }
        if let Some(b) = &b {
            let loc = self.loc(c.at);
            if let Some(bd) = b.ty.dims.first() {
                self.same_dim(
                    c.prim,
                    "the bias and the output channels",
                    bd,
                    &w.ty.dims[0],
                    loc,
                )?;
            }
        }
        let out = Tensor::new(x.ty.dtype.join(w.ty.dtype), dims);
        let per_output: Vec<&Dim> = w.ty.dims[1..].iter().collect();
        let flops = product_flops(&out, &per_output)?;
        let mut inputs = vec![&x, &w];
        if let Some(b) = &b {
            inputs.push(b);
        }
        let at = c.at;
        let op = Op::Conv {
            spatial: k,
            stride,
            padding,
            dilation,
            groups,
        };
        Ok(Val::Tensor(self.node(op, &inputs, out, flops, at)))
    }

    pub(super) fn patchify(&mut self, c: &mut PrimCall) -> Res<Val> {
        let xa = self.required(c, 0, "x")?;
        let x = self.as_tensor(c.prim, &xa, "x")?;
        let sa = self.required(c, 1, "size")?;
        let size = self.int_list(c, &sa, "size")?;
        let k = size.len();
        if k != 2 && k != 3 {
            return self.wrong(
                c.prim,
                &sa.loc,
                "`size`",
                "`[h, w]` or `[t, h, w]`",
                &sa.val,
            );
        }
        // [..., T, C, H, W] for tubelets, [..., C, H, W] for patches.
        self.need_rank(c.prim, "x", &x, k + 1, xa.loc)?;
        let n = x.ty.dims.len();
        let (time, chan, rows, cols) = if k == 3 {
            (
                Some(&x.ty.dims[n - 4]),
                &x.ty.dims[n - 3],
                &x.ty.dims[n - 2],
                &x.ty.dims[n - 1],
            )
        } else {
            (
                None,
                &x.ty.dims[n - 3],
                &x.ty.dims[n - 2],
                &x.ty.dims[n - 1],
            )
        };
        let mut split = Vec::new();
        let parts: Vec<(&Dim, i64)> = match time {
            Some(t) => vec![(t, size[0]), (rows, size[1]), (cols, size[2])],
            None => vec![(rows, size[0]), (cols, size[1])],
        };
        for (d, p) in parts {
            split.push(self.divide_dim("patchify", d, p, sa.loc)?);
        }
        let mut channels = chan.clone();
        let factor: i64 = size.iter().product();
        channels.name = channels.name.mul(&Size::constant(factor)).map_err(|_| ())?;
        channels.size = match &channels.size {
            Some(s) => Some(s.mul(&Size::constant(factor)).map_err(|_| ())?),
            None => None,
        };
        channels.rate = None;
        let lead = n - k - 1;
        let mut dims: Vec<Dim> = x.ty.dims[..lead].to_vec();
        dims.extend(split);
        dims.push(channels);
        let out = Tensor::new(x.ty.dtype, dims);
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Patchify { size },
            &[&x],
            out,
            Size::constant(0),
            at,
        )))
    }

    /// `d / p` as a dim, checked to be whole; a rate is divided too.
    fn divide_dim(&mut self, prim: &str, d: &Dim, p: i64, loc: crate::base::Loc) -> Res<Dim> {
        let pz = Size::constant(p);
        let size = match &d.size {
            Some(s) => match s.div(&pz) {
                Ok(q) => Some(q),
                Err(_) if s.as_const().is_none() => Some(Size::symbol(&format!("{s}/{p}"))),
                Err(_) => {
                    self.report(
                        Code::E0215,
                        loc,
                        format!(
                            "`{prim}` cuts {} into pieces of {p}, which does not divide it",
                            d.describe()
                        ),
                        "not divisible",
                        "choose a patch size that divides the dim, or crop the input",
                    );
                    return Err(());
                }
            },
            None => None,
        };
        Ok(Dim {
            name: name_div(&d.name, &pz).map_err(|_| ())?,
            size,
            rate: d.rate.map(|r| r / p as f64),
            origin: d.origin,
            soft: d.soft,
        })
    }

    pub(super) fn unpatchify(&mut self, c: &mut PrimCall) -> Res<Val> {
        let xa = self.required(c, 0, "x")?;
        let x = self.as_tensor(c.prim, &xa, "x")?;
        let sa = self.required(c, 1, "size")?;
        let size = self.int_list(c, &sa, "size")?;
        let ca = self.required(c, 2, "channels")?;
        let Some(channels) = super::as_dim(&ca.val) else {
            return self.wrong(c.prim, &ca.loc, "`channels`", "a dim", &ca.val);
        };
        let k = size.len();
        self.need_rank(c.prim, "x", &x, k + 1, xa.loc)?;
        let n = x.ty.dims.len();
        let flat = &x.ty.dims[n - 1];
        let factor: i64 = size.iter().product();
        let want = channels
            .size
            .as_ref()
            .and_then(|s| s.mul(&Size::constant(factor)).ok());
        if let (Some(w), Some(f)) = (&want, &flat.size) {
            if w != f {
                self.report(Code::E0215, xa.loc, format!("`unpatchify` with {factor} pixels per patch and {} channels needs a last dim of {w}, but it is {f}", channels.describe()), "wrong patch width", "the last dim must be channels times the patch volume");
                return Err(());
            }
        }
        let mut dims: Vec<Dim> = x.ty.dims[..n - k - 1].to_vec();
        for (j, p) in size.iter().enumerate() {
            let d = &x.ty.dims[n - k - 1 + j];
            let s = d
                .size
                .as_ref()
                .and_then(|s| s.mul(&Size::constant(*p)).ok());
            let mut dim = Dim {
                name: d.name.mul(&Size::constant(*p)).map_err(|_| ())?,
                size: s,
                rate: d.rate.map(|r| r * *p as f64),
                origin: d.origin,
                soft: d.soft,
            };
            if k == 3 && j == 0 {
                dims.push(std::mem::replace(&mut dim, channels.clone()));
                dims.push(dim);
                continue;
            }
            if k == 2 && j == 0 {
                dims.push(channels.clone());
            }
            dims.push(dim);
        }
        let out = Tensor::new(x.ty.dtype, dims);
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Unpatchify { size },
            &[&x],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn norm(&mut self, c: &mut PrimCall) -> Res<Val> {
        let xa = self.required(c, 0, "x")?;
        let x = self.as_tensor(c.prim, &xa, "x")?;
        self.need_rank(c.prim, "x", &x, 1, xa.loc)?;
        let last = x.ty.dims[x.ty.dims.len() - 1].clone();
        let mut inputs = vec![x.clone()];
        let names: &[&str] = if c.prim == "layer_norm" {
            &["w", "b"]
        } else {
            &["w"]
        };
        for (i, name) in names.iter().enumerate() {
            if let Some(a) = c.get(i + 1, name) {
                let t = self.as_tensor(c.prim, &a, name)?;
                if t.ty.dims.len() != 1 {
                    self.report(
                        Code::E0213,
                        a.loc,
                        format!(
                            "`{name}` of `{}` must be `[d]`, but it is `{}`",
                            c.prim, t.ty
                        ),
                        "not a vector",
                        "norm parameters have one dim, the normalised dim",
                    );
                    return Err(());
                }
                self.same_dim(
                    c.prim,
                    &format!("the last dim of `x` and `{name}`"),
                    &last,
                    &t.ty.dims[0],
                    a.loc,
                )?;
                inputs.push(t);
            }
        }
        // The defaults of docs/primitives.md (PyTorch's for LayerNorm;
        // the usual 1e-6 of RMSNorm implementations).
        let kind = if c.prim == "layer_norm" {
            NormKind::Layer
        } else {
            NormKind::Rms
        };
        let mut eps = match kind {
            NormKind::Layer => 1e-5,
            NormKind::Rms => 1e-6,
        };
        if let Some(a) = c.get(usize::MAX, "eps") {
            eps = self.number_arg(c, &a, "eps")?;
            if eps <= 0.0 {
                return self.wrong(c.prim, &a.loc, "`eps`", "a positive number", &a.val);
            }
        }
        let out = x.ty.clone();
        let refs: Vec<&TVal> = inputs.iter().collect();
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Norm { kind, eps },
            &refs,
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn attention(&mut self, c: &mut PrimCall) -> Res<Val> {
        let qa = self.required(c, 0, "q")?;
        let q = self.as_tensor(c.prim, &qa, "q")?;
        let ka = self.required(c, 1, "k")?;
        let k = self.as_tensor(c.prim, &ka, "k")?;
        let va = self.required(c, 2, "v")?;
        let v = self.as_tensor(c.prim, &va, "v")?;
        for (t, a, n) in [(&q, &qa, "q"), (&k, &ka, "k"), (&v, &va, "v")] {
            self.need_rank("attention", n, t, 3, a.loc)?;
        }
        let causal = self.bool_arg(c, "causal", false)?;
        let mut dropout = 0.0;
        if let Some(a) = c.get(usize::MAX, "dropout") {
            dropout = self.number_arg(c, &a, "dropout")?;
            if !(0.0..1.0).contains(&dropout) {
                return self.wrong(
                    c.prim,
                    &a.loc,
                    "`dropout`",
                    "a probability in [0, 1)",
                    &a.val,
                );
            }
        }
        let mut scale = None;
        if let Some(a) = c.get(usize::MAX, "scale") {
            scale = Some(self.number_arg(c, &a, "scale")?);
        }
        let mask = self.opt_tensor(c, usize::MAX, "mask")?;
        let (nq, nk, nv) = (q.ty.dims.len(), k.ty.dims.len(), v.ty.dims.len());
        let (s, heads, e) = (&q.ty.dims[nq - 3], &q.ty.dims[nq - 2], &q.ty.dims[nq - 1]);
        let (s2, kv, ek) = (&k.ty.dims[nk - 3], &k.ty.dims[nk - 2], &k.ty.dims[nk - 1]);
        self.same_dim("attention", "the head width of `q` and `k`", e, ek, ka.loc)?;
        self.same_dim(
            "attention",
            "the sequence dims of `k` and `v`",
            s2,
            &v.ty.dims[nv - 3],
            va.loc,
        )?;
        self.same_dim(
            "attention",
            "the key/value heads of `k` and `v`",
            kv,
            &v.ty.dims[nv - 2],
            va.loc,
        )?;
        let (hs, kvs) = (
            heads.size.as_ref().and_then(Size::as_const),
            kv.size.as_ref().and_then(Size::as_const),
        );
        if let (Some(h), Some(g)) = (hs, kvs) {
            if g == 0 || h % g != 0 {
                // The head counts are dims this frame was given (the
                // stdlib's `heads` and `kv_heads`): name the arguments
                // that set them.
                let culprits = self.blame_sizes(&[h, g]);
                self.report_blaming(
                    Code::E0215,
                    ka.loc,
                    format!("`attention` needs the query heads to be a multiple of the key/value heads, but {h} query heads do not divide into {g} groups"),
                    "key/value heads do not divide the query heads",
                    "in grouped-query attention each key/value head serves heads / kv_heads query heads; choose kv_heads dividing heads",
                    culprits,
                );
                return Err(());
            }
        }
        if causal && s.size != s2.size {
            self.report(Code::E0211, ka.loc, format!("causal attention needs queries and keys over the same positions, but they are {} and {}", s.describe(), s2.describe()), "different sequence lengths", "use `causal: false`, or pass the same sequence as queries and keys");
            return Err(());
        }
        let lead = match super::broadcast(&q.ty.dims[..nq - 3], &k.ty.dims[..nk - 3]) {
            Ok(d) => d,
            Err(e) => {
                let (x, y, _) = *e;
                self.same_dim(
                    "attention",
                    "the leading dims of `q` and `k`",
                    &x,
                    &y,
                    ka.loc,
                )?;
                return Err(());
            }
        };
        let mut dims = lead;
        dims.push(s.clone());
        dims.push(heads.clone());
        dims.push(v.ty.dims[nv - 1].clone());
        let out = Tensor::new(q.ty.dtype, dims);
        // QK^T over every (query, key) pair and head, then the weighted
        // sum of values: 2 S S2 h (e + ev) per leading index.
        let mut f = Size::constant(2);
        let lead_dims: Vec<Dim> = out.dims[..out.dims.len() - 3].to_vec();
        for d in lead_dims.iter().chain([s, s2, heads]) {
            f = f.mul(&d.size_or_name()).map_err(|_| ())?;
        }
        let widths = e
            .size_or_name()
            .add(&v.ty.dims[nv - 1].size_or_name())
            .map_err(|_| ())?;
        let flops = f.mul(&widths).map_err(|_| ())?;
        let op = Op::Attention {
            causal,
            heads: heads.size_or_name(),
            kv_heads: kv.size_or_name(),
            dropout,
            scale,
            masked: mask.is_some(),
        };
        let mut inputs = vec![&q, &k, &v];
        if let Some(m) = &mask {
            inputs.push(m);
        }
        let at = c.at;
        Ok(Val::Tensor(self.node(op, &inputs, out, flops, at)))
    }

    pub(super) fn rotary(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let xa = self.required(c, 0, "x")?;
        let x = self.as_tensor(c.prim, &xa, "x")?;
        self.need_rank("rotary", "x", &x, 3, xa.loc)?;
        let mut base = 10_000.0;
        let mut scale = 1.0;
        for (slot, name) in [(&mut base, "base"), (&mut scale, "scale")] {
            if let Some(a) = c.get(usize::MAX, name) {
                *slot = self.number_arg(c, &a, name)?;
            }
        }
        let Some((s, span)) = params.first() else {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                "`rotary` needs the sequence dim: `rotary[S](x)`".into(),
                "missing dim parameter",
                "name the dim whose positions rotate",
            );
            return Err(());
        };
        let axis = self.find_dim("rotary", &x, s, *span)?;
        let e = &x.ty.dims[x.ty.dims.len() - 1];
        if let Some(w) = e.size.as_ref().and_then(Size::as_const) {
            if w % 2 != 0 {
                let culprits = self.blame_sizes(&[w]);
                self.report_blaming(
                    Code::E0215,
                    xa.loc,
                    format!(
                        "`rotary` rotates pairs of channels, but the head width {} is odd",
                        e.describe()
                    ),
                    "odd head width",
                    "use an even head width",
                    culprits,
                );
                return Err(());
            }
        }
        let out = x.ty.clone();
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Rotary { axis, base, scale },
            &[&x],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn sinusoidal(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let mut base = 10_000.0;
        if let Some(a) = c.get(usize::MAX, "base") {
            base = self.number_arg(c, &a, "base")?;
        }
        let (lead, t) = match params.first() {
            Some((d, _)) => (vec![d.clone()], None),
            None => {
                let t = self.tensor(c, 0, "t")?;
                (t.ty.dims.clone(), Some(t))
            }
        };
        let da = self.required(c, if t.is_some() { 1 } else { 0 }, "d")?;
        let Some(d) = super::as_dim(&da.val) else {
            return self.wrong(c.prim, &da.loc, "`d`", "a dim", &da.val);
        };
        if d.size
            .as_ref()
            .and_then(Size::as_const)
            .is_some_and(|w| w % 2 != 0)
        {
            self.report(
                Code::E0215,
                da.loc,
                format!(
                    "`sinusoidal` needs an even width, but {} is odd",
                    d.describe()
                ),
                "odd width",
                "use an even width: half the channels are sines, half cosines",
            );
            return Err(());
        }
        if lead.iter().any(|x| x.size.is_none()) {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                "`sinusoidal` needs a dim with a size (a duration dim needs a rate)".into(),
                "no size",
                "name a dim of a tensor in scope",
            );
            return Err(());
        }
        let mut dims = lead;
        dims.push(d);
        let out = Tensor::new(DType::Float, dims);
        let inputs: Vec<&TVal> = t.iter().collect();
        let op = Op::Sinusoidal {
            base,
            times: t.is_some(),
        };
        let at = c.at;
        Ok(Val::Tensor(self.node(
            op,
            &inputs,
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn dropout(&mut self, c: &mut PrimCall) -> Res<Val> {
        let x = self.tensor(c, 0, "x")?;
        let pa = self.required(c, 1, "p")?;
        let p = self.number_arg(c, &pa, "p")?;
        if !(0.0..1.0).contains(&p) {
            return self.wrong(c.prim, &pa.loc, "`p`", "a probability in [0, 1)", &pa.val);
        }
        let out = x.ty.clone();
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Dropout { p },
            &[&x],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn mask_tokens(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let xa = self.required(c, 0, "x")?;
        let x = self.as_tensor(c.prim, &xa, "x")?;
        for (d, span) in &params {
            self.find_dim("mask_tokens", &x, d, *span)?;
        }
        let ra = self.required(c, usize::MAX, "ratio")?;
        let r = self.number_arg(c, &ra, "ratio")?;
        if !(r > 0.0 && r < 1.0) {
            return self.wrong(
                c.prim,
                &ra.loc,
                "`ratio`",
                "a fraction strictly between 0 and 1",
                &ra.val,
            );
        }
        let ta = self.required(c, usize::MAX, "token")?;
        let token = self.as_tensor(c.prim, &ta, "token")?;
        self.need_rank("mask_tokens", "x", &x, 1, xa.loc)?;
        if let (Some(last), [td]) = (x.ty.dims.last(), token.ty.dims.as_slice()) {
            self.same_dim(
                "mask_tokens",
                "the last dim of `x` and the mask token",
                last,
                td,
                ta.loc,
            )?;
        } else {
            self.report(
                Code::E0213,
                ta.loc,
                format!("the mask token must be `[d]`, but it is `{}`", token.ty),
                "not a vector",
                "one vector replaces each masked position",
            );
            return Err(());
        }
        let out = x.ty.clone();
        // The dims the draw spans, by their position in `x`: the runtime
        // draws one mask over these and shares it along the others.
        let mut axes = Vec::new();
        for (d, span) in &params {
            axes.push(self.find_dim("mask_tokens", &x, d, *span)?);
        }
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::MaskTokens { ratio: r, axes },
            &[&x, &token],
            out,
            Size::constant(0),
            at,
        )))
    }
}

/// `2 * numel(out) * prod(contracted)`: the FLOPs of a product whose
/// output is `out` and whose contracted dims are `k`.
fn product_flops(out: &Tensor, k: &[&Dim]) -> Res<Size> {
    let mut f = out
        .numel()
        .map_err(|_| ())?
        .mul(&Size::constant(2))
        .map_err(|_| ())?;
    for d in k {
        f = f.mul(&d.size_or_name()).map_err(|_| ())?;
    }
    Ok(f)
}
