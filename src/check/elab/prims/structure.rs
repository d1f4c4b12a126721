//! Shape rules of the named-dim operations: reductions, normalised
//! exponentials, concatenation, splitting, reshaping, permuting, slicing,
//! gathering and the constructors (`arange`, `one_hot`, `causal_mask`).
//!
//! Every dim these operations name is found in the tensor by name (see
//! `find_dim`), and every size they create is checked: the parts of a
//! `split` add up, a `reshape` keeps the number of elements, a slice stays
//! inside its dim.

use std::rc::Rc;

use super::super::{Elab, Res, TVal, Val};
use super::PrimCall;
use crate::base::Span;
use crate::check::elab::call::ArgVal;
use crate::diagnostics::Code;
use crate::ir::op::Rewrite;
use crate::ir::types::size::Size;
use crate::ir::types::tensor::{DType, Dim, Tensor};
use crate::ir::types::Value;
use crate::ir::{Op, Reduction};
use crate::syntax::ast::{Expr, ExprKind, Ident, IndexItem, IndexKind};

impl Elab<'_, '_> {
    pub(super) fn softmax(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let x = self.tensor(c, 0, "x")?;
        if params.is_empty() {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                format!(
                    "`{}` needs the dims it normalises over: `{}[C](x)`",
                    c.prim, c.prim
                ),
                "missing dim parameters",
                "name the dims the probabilities sum over",
            );
            return Err(());
        }
        let mut axes = Vec::new();
        for (d, span) in &params {
            axes.push(self.find_dim(c.prim, &x, d, *span)?);
        }
        let out = x.ty.clone();
        let at = c.at;
        let op = Op::Softmax {
            log: c.prim == "log_softmax",
            axes,
        };
        Ok(Val::Tensor(self.node(
            op,
            &[&x],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn reduce(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let x = self.tensor(c, 0, "x")?;
        let mut remove = Vec::new();
        for (d, span) in &params {
            remove.push(self.find_dim(c.prim, &x, d, *span)?);
        }
        let out_dims: Vec<Dim> = if params.is_empty() {
            Vec::new()
        } else {
            x.ty.dims
                .iter()
                .enumerate()
                .filter(|(i, _)| !remove.contains(i))
                .map(|(_, d)| d.clone())
                .collect()
        };
        let dtype = if x.ty.dtype.is_float() {
            x.ty.dtype
        } else {
            DType::Float
        };
        let out = Tensor::new(if c.prim == "amax" { x.ty.dtype } else { dtype }, out_dims);
        let f = match c.prim {
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            "var" => Reduction::Var,
            "std" => Reduction::Std,
            "amax" => Reduction::Amax,
            "logsumexp" => Reduction::LogSumExp,
            other => return self.no_rule(other, c.at),
        };
        let at = c.at;
        let op = Op::Reduce { f, axes: remove };
        Ok(Val::Tensor(self.node(
            op,
            &[&x],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn causal_mask(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let [(s, _), (s2, _)] = params.as_slice() else {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                "`causal_mask` needs two dims: `causal_mask[S, S2]()`".into(),
                "wrong dim parameters",
                "name the query and key dims",
            );
            return Err(());
        };
        let out = Tensor::new(DType::Bool, vec![s.clone(), s2.clone()]);
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::CausalMask,
            &[],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn concat(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let (d, span) = self.one_dim(
            c,
            &params,
            "`concat` joins along one dim: `concat[seq](a, b)`",
            "name the one dim to join along",
        )?;
        let operands = c.rest(0);
        let mut tensors = Vec::new();
        for a in &operands {
            tensors.push(self.as_tensor("concat", a, "each operand")?);
        }
        let Some(first) = tensors.first().cloned() else {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                "`concat` needs at least one tensor".into(),
                "nothing to join",
                "pass the tensors to join",
            );
            return Err(());
        };
        let axis = self.find_dim("concat", &first, &d, span)?;
        let mut total = Size::constant(0);
        let mut parts: Vec<(String, Size)> = Vec::new();
        let mut dims = first.ty.dims.clone();
        for (t, a) in tensors.iter().zip(&operands) {
            let i = self.find_dim("concat", t, &d, span)?;
            if t.ty.dims.len() != first.ty.dims.len() || i != axis {
                self.report(Code::E0211, a.loc, format!("`concat` needs operands of the same shape apart from the joined dim, but `{}` and `{}` differ", first.ty, t.ty), "a different shape", "every operand must have the same dims in the same order");
                return Err(());
            }
            for (j, (x, y)) in first.ty.dims.iter().zip(&t.ty.dims).enumerate() {
                if j != axis {
                    dims[j] =
                        self.same_dim("concat", "the dims other than the joined one", x, y, a.loc)?;
                }
            }
            let size = t.ty.dims[i].size_or_name();
            total = total.add(&size).map_err(|_| ())?;
            match &t.parts {
                Some(p) => parts.extend(p.iter().cloned()),
                None => parts.push((String::new(), size)),
            }
        }
        dims[axis].size = Some(total);
        dims[axis].origin = Some(self.loc(c.at));
        // Positions joined from streams at different rates have no one
        // rate (each keeps its own time stamp).
        let rates: Vec<Option<f64>> = tensors.iter().map(|t| t.ty.dims[axis].rate).collect();
        if rates.windows(2).any(|w| w[0] != w[1]) {
            dims[axis].rate = None;
        }
        let dtype = tensors
            .iter()
            .fold(first.ty.dtype, |acc, t| acc.join(t.ty.dtype));
        let out = Tensor::new(dtype, dims);
        let refs: Vec<&TVal> = tensors.iter().collect();
        let at = c.at;
        let mut v = self.node(Op::Concat { axis }, &refs, out, Size::constant(0), at);
        if parts.iter().any(|(n, _)| !n.is_empty()) {
            v.parts = Some(Rc::new(parts));
        }
        Ok(Val::Tensor(v))
    }

    pub(super) fn split(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let x = self.tensor(c, 0, "x")?;
        let Some((from, to)) = arrow(dims) else {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                "`split` needs a rewrite: `split[D -> (D1, D2)](x)`".into(),
                "missing the rewrite",
                "name the dim and the sizes of its parts",
            );
            return Err(());
        };
        let d = self.dim_expr(c, from)?;
        let i = self.find_dim("split", &x, &d, from.span)?;
        let parts = self.dim_list(c, to)?;
        let mut sum = Size::constant(0);
        for p in &parts {
            sum = sum.add(&p.size_or_name()).map_err(|_| ())?;
        }
        let whole = x.ty.dims[i].size_or_name();
        if sum != whole {
            let loc = self.loc(to.span);
            self.report(
                Code::E0215,
                loc,
                format!(
                    "the parts of `split` add up to {sum}, but {} has {whole}",
                    x.ty.dims[i].describe()
                ),
                "parts do not add up",
                "the part sizes must sum to the size of the split dim",
            );
            return Err(());
        }
        let mut out = Vec::new();
        let mut start = Size::constant(0);
        for (k, p) in parts.into_iter().enumerate() {
            let next = start.add(&p.size_or_name()).map_err(|_| ())?;
            let mut dims = x.ty.dims.clone();
            dims[i] = p;
            let at = c.at;
            let op = Op::Split {
                axis: i,
                part: k,
                start,
            };
            out.push(Val::Tensor(self.node(
                op,
                &[&x],
                Tensor::new(x.ty.dtype, dims),
                Size::constant(0),
                at,
            )));
            start = next;
        }
        Ok(Val::Tuple(out))
    }

    /// `reshape[d -> (h, e)]` splits a dim; `reshape[(a, b) -> d]` merges
    /// consecutive dims; `reshape[a -> b]` renames a dim of the same size.
    pub(super) fn reshape(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let x = self.tensor(c, 0, "x")?;
        let Some((from, to)) = arrow(dims) else {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                format!(
                    "`{}` needs a rewrite: `{}[d -> (h, e)](x)` or `{}[(a, b) -> d](x)`",
                    c.prim, c.prim, c.prim
                ),
                "missing the rewrite",
                "name the dims before and after",
            );
            return Err(());
        };
        let sources = match &from.kind {
            ExprKind::Tuple(items) => {
                let mut ds = Vec::new();
                for e in items {
                    ds.push((self.dim_expr(c, e)?, e.span));
                }
                ds
            }
            _ => vec![(self.dim_expr(c, from)?, from.span)],
        };
        let mut positions = Vec::new();
        for (d, span) in &sources {
            positions.push(self.find_dim(c.prim, &x, d, *span)?);
        }
        let consecutive = positions.windows(2).all(|w| w[1] == w[0] + 1);
        if !consecutive {
            let loc = self.loc(from.span);
            self.report(Code::E0216, loc, format!("`{}` merges consecutive dims in order, but in `{}` these are not consecutive", c.prim, x.ty), "not consecutive", "permute the dims first (`permute[...]`) so the merged dims are adjacent and in this order");
            self.note_operand_order(&x);
            return Err(());
        }
        let mut whole = Size::constant(1);
        let mut rate = None;
        for &p in &positions {
            whole = whole.mul(&x.ty.dims[p].size_or_name()).map_err(|_| ())?;
            if positions.len() == 1 {
                rate = x.ty.dims[p].rate;
            }
        }
        let mut targets = self.dim_list(c, to)?;
        // A single unsized target (a logical dim such as `seq`) takes the
        // merged size.
        if let [t] = targets.as_mut_slice() {
            if t.size.is_none() {
                t.size = Some(whole.clone());
                t.rate = rate;
            }
        }
        // One part without a size (a duration dim such as `T`) takes what
        // the others leave: `reshape[seq -> (T, N)]`.
        let open: Vec<usize> = (0..targets.len())
            .filter(|&i| targets[i].size.is_none())
            .collect();
        if let [u] = open.as_slice() {
            let mut rest = Size::constant(1);
            for (i, t) in targets.iter().enumerate() {
                if i != *u {
                    rest = rest.mul(&t.size_or_name()).map_err(|_| ())?;
                }
            }
            match whole.div(&rest) {
                Ok(q) => targets[*u].size = Some(q),
                // The part would hold a fraction of a position: a size
                // that does not divide, not one that is missing.
                Err(crate::ir::types::size::SizeError::NotExact)
                    if whole.as_const().is_some() && rest.as_const().is_some() =>
                {
                    let loc = self.loc(to.span);
                    self.report(
                        Code::E0215,
                        loc,
                        format!(
                            "`{}[{} -> {}]` splits {whole} positions into parts of {rest} ({} would be {whole} / {rest}), not a whole number",
                            c.prim,
                            self.text(from.span),
                            self.text(to.span),
                            targets[*u].describe()
                        ),
                        "this split does not come out whole",
                        "a dim made by division must divide exactly; change one of the sizes",
                    );
                    return Err(());
                }
                Err(_) => {}
            }
        }
        let mut product = Size::constant(1);
        for t in &targets {
            match &t.size {
                Some(s) => product = product.mul(s).map_err(|_| ())?,
                None => {
                    let loc = self.loc(to.span);
                    self.report(
                        Code::E0217,
                        loc,
                        format!(
                            "`{}` cannot size {}: a split needs every part's size",
                            c.prim,
                            t.describe()
                        ),
                        "no size",
                        "give the parts sizes (dims with sizes or numbers)",
                    );
                    return Err(());
                }
            }
        }
        if product != whole {
            let loc = self.loc(c.at);
            let from_text = self.text(from.span);
            self.report(
                Code::E0215,
                loc,
                format!("`{}[{from_text} -> {}]` changes the number of elements: {whole} before, {product} after", c.prim, self.text(to.span)),
                "sizes do not multiply out",
                "a reshape keeps every element: the sizes after must multiply to the sizes before",
            );
            return Err(());
        }
        let (first, last) = (positions[0], positions[positions.len() - 1]);
        let mut dims: Vec<Dim> = x.ty.dims[..first].to_vec();
        for mut t in targets {
            if t.origin.is_none() {
                t.origin = Some(self.loc(to.span));
            }
            dims.push(t);
        }
        dims.extend(x.ty.dims[last + 1..].iter().cloned());
        let out = Tensor::new(x.ty.dtype, dims);
        let op = Op::Reshape(Rewrite {
            written: format!("{} -> {}", self.text(from.span), self.text(to.span)),
        });
        let at = c.at;
        Ok(Val::Tensor(self.node(
            op,
            &[&x],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn permute(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let x = self.tensor(c, 0, "x")?;
        let k = params.len();
        if k > x.ty.dims.len() {
            let loc = self.loc(c.at);
            self.report(
                Code::E0213,
                loc,
                format!(
                    "`permute` lists {k} dims, but `{}` has {}",
                    x.ty,
                    x.ty.dims.len()
                ),
                "too many dims",
                "list the trailing dims in their new order",
            );
            return Err(());
        }
        let lead = x.ty.dims.len() - k;
        let mut order = Vec::new();
        for (d, span) in &params {
            let i = self.find_dim("permute", &x, d, *span)?;
            if i < lead || order.contains(&i) {
                let loc = self.loc(*span);
                self.report(
                    Code::E0216,
                    loc,
                    format!(
                        "`permute` must list each of the last {k} dims of `{}` once",
                        x.ty
                    ),
                    "not one of the permuted dims",
                    "list every trailing dim exactly once, in the new order",
                );
                return Err(());
            }
            order.push(i);
        }
        let mut out_dims: Vec<Dim> = x.ty.dims[..lead].to_vec();
        out_dims.extend(order.iter().map(|&i| x.ty.dims[i].clone()));
        let out = Tensor::new(x.ty.dtype, out_dims);
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Permute { order },
            &[&x],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn broadcast_like(&mut self, c: &mut PrimCall) -> Res<Val> {
        let xa = self.required(c, 0, "x")?;
        let x = self.as_tensor(c.prim, &xa, "x")?;
        let like = self.tensor(c, 1, "like")?;
        for d in &x.ty.dims {
            let hits = like.ty.find(&d.name);
            let ok = hits.iter().any(|&i| like.ty.dims[i].matches(d).is_ok())
                || (d.is_anon() && like.ty.dims.iter().any(|l| l.matches(d).is_ok()));
            if !ok {
                self.report(
                    Code::E0216,
                    xa.loc,
                    format!(
                        "`broadcast` needs every dim of `x` in `like`, but {} is not in `{}`",
                        d.describe(),
                        like.ty
                    ),
                    "a dim `like` lacks",
                    "`broadcast` only adds dims; reduce or reshape `x` first",
                );
                return Err(());
            }
        }
        let out = Tensor::new(x.ty.dtype, like.ty.dims.clone());
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Broadcast,
            &[&x, &like],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn slice_prim(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let x = self.tensor(c, 0, "x")?;
        let (d, span) = self.one_dim(
            c,
            &params,
            "`slice` takes one dim: `slice[T](x, 0, 8)`",
            "name the dim to slice",
        )?;
        let start = self.required(c, 1, "start")?;
        let end = self.required(c, 2, "end")?;
        let i = self.find_dim("slice", &x, &d, span)?;
        let at = c.at;
        self.slice_at(x, i, Some(start.val), Some(end.val), at)
            .map(Val::Tensor)
    }

    /// `x[D: a..b]`.
    pub fn slice(
        &mut self,
        x: TVal,
        dim: &Ident,
        start: Option<&Expr>,
        end: Option<&Expr>,
        at: Span,
    ) -> Res<TVal> {
        let d = match self.lookup(dim)? {
            Val::Dim(d) => d,
            other => {
                let loc = self.loc(dim.span);
                self.report(
                    Code::E0217,
                    loc,
                    format!(
                        "`{}` must name a dim, but it is {}",
                        dim.name,
                        other.describe()
                    ),
                    "not a dim",
                    "slice by dim name: `x[T: 0..8]`",
                );
                return Err(());
            }
        };
        let i = self.find_dim("slice", &x, &d, dim.span)?;
        let s = match start {
            Some(e) => Some(self.eval(e)?),
            None => None,
        };
        let e = match end {
            Some(e) => Some(self.eval(e)?),
            None => None,
        };
        self.slice_at(x, i, s, e, at)
    }

    fn slice_at(
        &mut self,
        x: TVal,
        i: usize,
        start: Option<Val>,
        end: Option<Val>,
        at: Span,
    ) -> Res<TVal> {
        let whole = x.ty.dims[i].size_or_name();
        let bound = |v: Option<Val>, default: Size| -> Option<Size> {
            match v {
                None => Some(default),
                Some(Val::Const(Value::Size(s))) => Some(s),
                Some(Val::Dim(d)) => d.size,
                _ => None,
            }
        };
        let (Some(a), Some(b)) = (bound(start, Size::constant(0)), bound(end, whole.clone()))
        else {
            let loc = self.loc(at);
            self.report(
                Code::E0217,
                loc,
                "slice bounds must be whole numbers or dims known at compile time".into(),
                "not a compile-time bound",
                "write bounds such as `0..context`",
            );
            return Err(());
        };
        let len = b.sub(&a).map_err(|_| ())?;
        let op = Op::Slice {
            axis: i,
            start: a.clone(),
            end: b.clone(),
        };
        let bad = match (a.as_const(), b.as_const(), whole.as_const()) {
            (Some(a), Some(b), Some(w)) => a < 0 || b > w || b <= a,
            (Some(a), Some(b), None) => a < 0 || b <= a,
            _ => false,
        };
        if bad {
            let loc = self.loc(at);
            self.report(
                Code::E0215,
                loc,
                format!("the slice {a}..{b} does not fit {}: it must be non-empty and inside 0..{whole}", x.ty.dims[i].describe()),
                "out of range",
                "slices take positions start..end with 0 <= start < end <= the dim's size",
            );
            return Err(());
        }
        let mut dims = x.ty.dims.clone();
        dims[i].size = Some(len);
        dims[i].origin = Some(self.loc(at));
        let out = Tensor::new(x.ty.dtype, dims);
        Ok(self.node(op, &[&x], out, Size::constant(0), at))
    }

    pub(super) fn take(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let x = self.tensor(c, 0, "x")?;
        let ia = self.required(c, 1, "idx")?;
        let idx = self.as_tensor(c.prim, &ia, "idx")?;
        let (d, span) = self.one_dim(
            c,
            &params,
            "`take` gathers along one dim: `take[C](x, idx)`",
            "name the dim to gather along",
        )?;
        self.integer_indices(c.prim, &ia, &idx)?;
        let i = self.find_dim("take", &x, &d, span)?;
        // Indices made by `arange[S]()` reach S - 1: S must fit in D.
        if let Some(crate::ir::ValueRef::Node(k)) = idx.src {
            if self.graph.nodes[k].op == Op::Arange {
                let reach = idx
                    .ty
                    .dims
                    .first()
                    .and_then(|d| d.size.as_ref())
                    .and_then(Size::as_const);
                let room = x.ty.dims[i].size.as_ref().and_then(Size::as_const);
                if let (Some(n), Some(m)) = (reach, room) {
                    if n > m {
                        self.report(
                            Code::E0215,
                            ia.loc,
                            format!("`take` reads positions 0..{n} of {}, which has only {m}", x.ty.dims[i].describe()),
                            "indices out of range",
                            "the table is too short for the sequence: make it longer (a larger `context`) or the sequence shorter",
                        );
                        return Err(());
                    }
                }
            }
        }
        // Index dims that `x` also has are batch dims of the gather; the
        // others replace the gathered dim.
        let mut batch = Vec::new();
        let mut fresh = Vec::new();
        for id in &idx.ty.dims {
            let hit =
                x.ty.dims
                    .iter()
                    .enumerate()
                    .find(|(j, xd)| *j != i && xd.name == id.name && !id.is_anon());
            match hit {
                Some((j, xd)) => {
                    self.same_dim(
                        "take",
                        "a batch dim of the indices and of `x`",
                        xd,
                        id,
                        ia.loc,
                    )?;
                    batch.push(j);
                }
                None => fresh.push(id.clone()),
            }
        }
        let mut out_dims: Vec<Dim> = x.ty.dims[..i].to_vec();
        out_dims.extend(fresh);
        out_dims.extend(x.ty.dims[i + 1..].iter().cloned());
        let out = Tensor::new(x.ty.dtype, out_dims);
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Take { axis: i },
            &[&x, &idx],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn one_hot(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let ia = self.required(c, 0, "idx")?;
        let idx = self.as_tensor(c.prim, &ia, "idx")?;
        let (d, _) = self.one_dim(
            c,
            &params,
            "`one_hot` needs the class dim: `one_hot[C](idx)`",
            "name the dim of the classes",
        )?;
        self.integer_indices(c.prim, &ia, &idx)?;
        let mut dims = idx.ty.dims.clone();
        dims.push(d.clone());
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::OneHot,
            &[&idx],
            Tensor::new(DType::Float, dims),
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn cast(&mut self, c: &mut PrimCall) -> Res<Val> {
        let x = self.tensor(c, 0, "x")?;
        let da = self.required(c, 1, "dtype")?;
        let dtype = match &da.val {
            Val::Const(Value::Symbol(s)) => DType::parse(s),
            _ => None,
        };
        let Some(dtype) = dtype else {
            return self.wrong(
                c.prim,
                &da.loc,
                "`dtype`",
                "a dtype (`f32`, `i64`, ...)",
                &da.val,
            );
        };
        let out = Tensor::new(dtype, x.ty.dims.clone());
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Cast { dtype },
            &[&x],
            out,
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn arange(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let (d, _) = self.one_dim(
            c,
            &params,
            "`arange` takes one dim: `arange[T]()`",
            "name the dim whose indices you want",
        )?;
        if d.size.is_none() {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                format!(
                    "`arange` needs a dim with a size, but {} has none here",
                    d.describe()
                ),
                "no size",
                "a duration dim needs a rate; name a dim of a tensor in scope",
            );
            return Err(());
        }
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Arange,
            &[],
            Tensor::new(DType::I64, vec![d.clone()]),
            Size::constant(0),
            at,
        )))
    }

    pub(super) fn stack(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        let params = self.dim_params(c, dims)?;
        let operands = c.rest(0);
        let mut tensors = Vec::new();
        for a in &operands {
            tensors.push(self.as_tensor("stack", a, "each operand")?);
        }
        let ([(d, _)], Some(first)) = (params.as_slice(), tensors.first()) else {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                "`stack` needs one new dim and at least one tensor: `stack[D](a, b)`".into(),
                "wrong arguments",
                "name the new dim and pass the tensors",
            );
            return Err(());
        };
        for (t, a) in tensors.iter().zip(&operands).skip(1) {
            let same = t.ty.dims.len() == first.ty.dims.len()
                && t.ty
                    .dims
                    .iter()
                    .zip(&first.ty.dims)
                    .all(|(x, y)| x.matches(y).is_ok());
            if !same {
                self.report(
                    Code::E0211,
                    a.loc,
                    format!(
                        "`stack` needs operands of one shape, but `{}` and `{}` differ",
                        first.ty, t.ty
                    ),
                    "a different shape",
                    "every operand must have the same dims",
                );
                return Err(());
            }
        }
        let n = tensors.len() as i64;
        if let Some(s) = d.size.as_ref().and_then(Size::as_const) {
            if s != n {
                let loc = self.loc(c.at);
                self.report(
                    Code::E0215,
                    loc,
                    format!(
                        "`stack` makes {} of size {n} (one per operand), but it has size {s}",
                        d.describe()
                    ),
                    "wrong size",
                    "stack as many tensors as the new dim has positions",
                );
                return Err(());
            }
        }
        let mut dims = first.ty.dims.clone();
        dims.push(Dim {
            size: Some(Size::constant(n)),
            ..d.clone()
        });
        let refs: Vec<&TVal> = tensors.iter().collect();
        let at = c.at;
        Ok(Val::Tensor(self.node(
            Op::Stack,
            &refs,
            Tensor::new(first.ty.dtype, dims),
            Size::constant(0),
            at,
        )))
    }

    /// Indices must be integers (E0214).
    fn integer_indices(&mut self, prim: &str, a: &ArgVal, idx: &TVal) -> Res<()> {
        if idx.ty.dtype.is_int() {
            return Ok(());
        }
        self.report(
            Code::E0214,
            a.loc,
            format!("`{prim}` needs integer indices, but `idx` is `{}`", idx.ty),
            "not integer",
            "indices are integer tensors (`i64[...]`)",
        );
        Err(())
    }

    /// The one dim parameter of a call (`take[C]`), or E0217 saying how
    /// the primitive is written.
    fn one_dim(
        &mut self,
        c: &PrimCall,
        params: &[(Dim, Span)],
        usage: &str,
        help: &str,
    ) -> Res<(Dim, Span)> {
        match params {
            [(d, span)] => Ok((d.clone(), *span)),
            _ => {
                let loc = self.loc(c.at);
                self.report(
                    Code::E0217,
                    loc,
                    usage.to_string(),
                    "wrong dim parameters",
                    help,
                );
                Err(())
            }
        }
    }

    /// A dim written in a rewrite, evaluated.
    fn dim_expr(&mut self, c: &PrimCall, e: &Expr) -> Res<Dim> {
        let v = self.eval(e)?;
        match super::as_dim(&v) {
            Some(d) => Ok(d),
            None => {
                let loc = self.loc(e.span);
                self.report(
                    Code::E0217,
                    loc,
                    format!("`{}` rewrites dims, but this is {}", c.prim, v.describe()),
                    "not a dim",
                    "write dim names, sizes or expressions of them",
                );
                Err(())
            }
        }
    }

    /// `(a, b, c)` or a single dim.
    fn dim_list(&mut self, c: &PrimCall, e: &Expr) -> Res<Vec<Dim>> {
        match &e.kind {
            ExprKind::Tuple(items) => {
                let mut out = Vec::new();
                for x in items {
                    out.push(self.dim_expr(c, x)?);
                }
                Ok(out)
            }
            ExprKind::Paren(inner) => self.dim_list(c, inner),
            _ => Ok(vec![self.dim_expr(c, e)?]),
        }
    }
}

/// The `from -> to` of a rewrite.
fn arrow(dims: &[IndexItem]) -> Option<(&Expr, &Expr)> {
    match dims {
        [IndexItem {
            kind: IndexKind::Arrow { from, to },
            ..
        }] => Some((from, to)),
        _ => None,
    }
}
