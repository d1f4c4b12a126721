//! The shape rule of every primitive.
//!
//! Each rule takes the evaluated arguments and returns the result's type,
//! recording one IR node. The rules follow `docs/primitives.md` and
//! `docs/language.md` ("Shape rules"): dims are found by name, elementwise
//! operations broadcast by name, and anything a rule cannot accept is a
//! diagnostic that names the primitive, the argument and the shapes.
//!
//! - `mod.rs`: dispatch, argument access, nodes, broadcasting;
//! - `dense.rs`: linear, matmul, einsum, embedding, convolutions, patches,
//!   norms, attention and positions;
//! - `structure.rs`: reductions, concat, split, reshape, permute, slice,
//!   take and the other named-dim operations.

mod dense;
mod structure;

use super::call::ArgVal;
use super::expr::{as_dim, number};
use super::{Elab, InstKind, Res, TVal, Val};
use crate::base::Loc;
use crate::base::Span;
use crate::diagnostics::Code;
use crate::ir::types::size::Size;
use crate::ir::types::tensor::{DType, Dim, Mismatch, Tensor};
use crate::ir::types::Value;
use crate::ir::{Elementwise, Node, Op, Operand};
use crate::syntax::ast::IndexItem;

/// A primitive call being checked: its name, arguments and place.
pub(in crate::check) struct PrimCall {
    pub prim: &'static str,
    pub args: Vec<ArgVal>,
    pub used: Vec<bool>,
    pub at: Span,
}

impl PrimCall {
    /// The argument at position `i` (counting positional arguments only)
    /// or named `name`.
    pub fn get(&mut self, i: usize, name: &str) -> Option<ArgVal> {
        let mut positional = 0;
        for (k, a) in self.args.iter().enumerate() {
            match &a.name {
                Some(n) if n == name => {
                    self.used[k] = true;
                    return Some(a.clone());
                }
                None => {
                    if positional == i {
                        self.used[k] = true;
                        return Some(a.clone());
                    }
                    positional += 1;
                }
                _ => {}
            }
        }
        None
    }

    /// Every positional argument from position `i` on.
    pub fn rest(&mut self, i: usize) -> Vec<ArgVal> {
        let mut out = Vec::new();
        let mut positional = 0;
        for (k, a) in self.args.iter().enumerate() {
            if a.name.is_none() {
                if positional >= i {
                    self.used[k] = true;
                    out.push(a.clone());
                }
                positional += 1;
            }
        }
        out
    }
}

impl Elab<'_, '_> {
    /// Applies primitive `prim` with dim parameters `dims` to `args`.
    pub fn prim(
        &mut self,
        prim: &'static str,
        dims: Option<&[IndexItem]>,
        args: Vec<ArgVal>,
        at: Span,
    ) -> Res<Val> {
        let used = vec![false; args.len()];
        let mut c = PrimCall {
            prim,
            args,
            used,
            at,
        };
        let out = self.dispatch(&mut c, dims.unwrap_or(&[]))?;
        if let Some(k) = c.used.iter().position(|u| !u) {
            let a = &c.args[k];
            let what = match &a.name {
                Some(n) => format!("`{prim}` has no parameter `{n}`"),
                None => format!("`{prim}` takes fewer arguments"),
            };
            let loc = a.loc;
            self.report(
                Code::E0217,
                loc,
                what,
                "unexpected argument",
                "see docs/primitives.md for the primitive's signature",
            );
            return Err(());
        }
        Ok(out)
    }

    fn dispatch(&mut self, c: &mut PrimCall, dims: &[IndexItem]) -> Res<Val> {
        match c.prim {
            "linear" => self.linear(c),
            "matmul" => self.matmul(c),
            "einsum" => self.einsum(c, dims),
            "embedding" => self.embedding(c),
            "conv1d" => self.conv(c, 1),
            "conv2d" => self.conv(c, 2),
            "conv3d" => self.conv(c, 3),
            "patchify" => self.patchify(c),
            "unpatchify" => self.unpatchify(c),
            "layer_norm" | "rms_norm" => self.norm(c),
            "gelu" | "silu" | "relu" | "sigmoid" | "tanh" | "softplus" | "exp" | "log"
            | "log1p" | "sqrt" | "rsqrt" | "abs" | "square" | "isnan" => self.unary_fn(c),
            "max" | "min" => {
                let a = self.required(c, 0, "a")?;
                let b = self.required(c, 1, "b")?;
                let at = c.at;
                let f = if c.prim == "max" {
                    Elementwise::Max
                } else {
                    Elementwise::Min
                };
                self.elementwise(f, &[(a.val, a.loc.span), (b.val, b.loc.span)], at)
            }
            "clamp" => {
                let x = self.required(c, 0, "x")?;
                let mut bounds = [None, None];
                for (slot, bound) in bounds.iter_mut().zip(["min", "max"]) {
                    if let Some(b) = c.get(usize::MAX, bound) {
                        *slot = Some(self.number_arg(c, &b, bound)?);
                    }
                }
                let at = c.at;
                let [min, max] = bounds;
                self.elementwise(Elementwise::Clamp { min, max }, &[(x.val, x.loc.span)], at)
            }
            "where" => {
                let cond = self.required(c, 0, "cond")?;
                let a = self.required(c, 1, "a")?;
                let b = self.required(c, 2, "b")?;
                if let Val::Tensor(t) = &cond.val {
                    if t.ty.dtype != DType::Bool {
                        self.report(Code::E0214, cond.loc, format!("the condition of `where` must be a boolean tensor, but this is `{}`", t.ty), "not boolean", "compare to make a mask: `where(x > 0, x, 0.0)`");
                        return Err(());
                    }
                }
                let at = c.at;
                let out = self.elementwise(
                    Elementwise::Where,
                    &[
                        (cond.val, cond.loc.span),
                        (a.val.clone(), a.loc.span),
                        (b.val, b.loc.span),
                    ],
                    at,
                )?;
                // The result takes the values' dtype, not the condition's.
                Ok(match out {
                    Val::Tensor(mut t) => {
                        if let Val::Tensor(av) = &a.val {
                            t.ty.dtype = av.ty.dtype;
                        } else if t.ty.dtype == DType::Bool {
                            t.ty.dtype = DType::Float;
                        }
                        Val::Tensor(t)
                    }
                    v => v,
                })
            }
            "softmax" | "log_softmax" => self.softmax(c, dims),
            "mean" | "sum" | "var" | "std" | "amax" | "logsumexp" => self.reduce(c, dims),
            "attention" => self.attention(c),
            "rotary" => self.rotary(c, dims),
            "sinusoidal" => self.sinusoidal(c, dims),
            "causal_mask" => self.causal_mask(c, dims),
            "dropout" => self.dropout(c),
            "mask_tokens" => self.mask_tokens(c, dims),
            "concat" => self.concat(c, dims),
            "split" => self.split(c, dims),
            "reshape" | "flatten" | "unflatten" => self.reshape(c, dims),
            "permute" => self.permute(c, dims),
            "broadcast" => self.broadcast_like(c),
            "slice" => self.slice_prim(c, dims),
            "take" => self.take(c, dims),
            "one_hot" => self.one_hot(c, dims),
            "cast" => self.cast(c),
            "ones_like" | "zeros_like" => {
                let x = self.tensor(c, 0, "x")?;
                let at = c.at;
                let ty = x.ty.clone();
                let op = if c.prim == "ones_like" {
                    Op::OnesLike
                } else {
                    Op::ZerosLike
                };
                Ok(Val::Tensor(self.node(op, &[&x], ty, Size::constant(0), at)))
            }
            "arange" => self.arange(c, dims),
            "stack" => self.stack(c, dims),
            "repeat" => self.repeat(c),
            "sequential" => {
                let mut list = Vec::new();
                for a in c.rest(0) {
                    match a.val {
                        Val::Instance(i) => list.push(i),
                        other => {
                            return self.wrong(
                                c.prim,
                                &a.loc,
                                "each argument",
                                "a module instance",
                                &other,
                            )
                        }
                    }
                }
                let at = c.at;
                Ok(Val::Instance(
                    self.new_instance(InstKind::Sequential(list), at),
                ))
            }
            other => self.no_rule(other, c.at),
        }
    }

    /// A name in `resolve::builtins::PRIMITIVES` that the dispatch above
    /// does not handle: a bug in enigma, reported rather than let through
    /// as an unchecked value with no node.
    pub(super) fn no_rule<T>(&mut self, prim: &str, at: Span) -> Res<T> {
        let loc = self.loc(at);
        self.report(
            Code::E0900,
            loc,
            format!("the checker has no shape rule for the primitive `{prim}`"),
            "this primitive",
            "this is a bug in enigma; please report it with the experiment file",
        );
        Err(())
    }

    /// A required argument.
    pub fn required(&mut self, c: &mut PrimCall, i: usize, name: &str) -> Res<ArgVal> {
        match c.get(i, name) {
            Some(a) => Ok(a),
            None => {
                let loc = self.loc(c.at);
                self.report(
                    Code::E0217,
                    loc,
                    format!("`{}` needs the argument `{name}`", c.prim),
                    "missing an argument",
                    "see docs/primitives.md for the primitive's signature",
                );
                Err(())
            }
        }
    }

    /// A required tensor argument.
    pub fn tensor(&mut self, c: &mut PrimCall, i: usize, name: &str) -> Res<TVal> {
        let a = self.required(c, i, name)?;
        self.as_tensor(c.prim, &a, name)
    }

    /// An optional tensor argument.
    pub fn opt_tensor(&mut self, c: &mut PrimCall, i: usize, name: &str) -> Res<Option<TVal>> {
        match c.get(i, name) {
            Some(a) => Ok(Some(self.as_tensor(c.prim, &a, name)?)),
            None => Ok(None),
        }
    }

    pub fn as_tensor(&mut self, prim: &str, a: &ArgVal, name: &str) -> Res<TVal> {
        match &a.val {
            Val::Tensor(t) => Ok(t.clone()),
            other => self.wrong(prim, &a.loc, &format!("`{name}`"), "a tensor", other),
        }
    }

    pub fn wrong<T>(
        &mut self,
        prim: &str,
        loc: &Loc,
        what: &str,
        expected: &str,
        v: &Val,
    ) -> Res<T> {
        self.report(
            Code::E0217,
            *loc,
            format!(
                "{what} of `{prim}` must be {expected}, but this is {}",
                v.describe()
            ),
            "wrong kind of argument",
            "see docs/primitives.md for the primitive's signature",
        );
        Err(())
    }

    /// A compile-time number argument.
    pub fn number_arg(&mut self, c: &PrimCall, a: &ArgVal, name: &str) -> Res<f64> {
        match number(&a.val) {
            Some(x) => Ok(x),
            None => self.wrong(c.prim, &a.loc, &format!("`{name}`"), "a number", &a.val),
        }
    }

    /// A compile-time boolean argument with a default.
    pub fn bool_arg(&mut self, c: &mut PrimCall, name: &str, default: bool) -> Res<bool> {
        match c.get(usize::MAX, name) {
            None => Ok(default),
            Some(ArgVal {
                val: Val::Const(Value::Bool(b)),
                ..
            }) => Ok(b),
            Some(a) => self.wrong(
                c.prim,
                &a.loc,
                &format!("`{name}`"),
                "`true` or `false`",
                &a.val,
            ),
        }
    }

    /// A list of whole numbers (`size: [2, 16, 16]`).
    pub fn int_list(&mut self, c: &PrimCall, a: &ArgVal, name: &str) -> Res<Vec<i64>> {
        let items = match &a.val {
            Val::Tuple(items) => items.clone(),
            v @ Val::Const(Value::Size(_)) => vec![v.clone()],
            other => {
                return self.wrong(
                    c.prim,
                    &a.loc,
                    &format!("`{name}`"),
                    "a list of whole numbers",
                    other,
                )
            }
        };
        let mut out = Vec::new();
        for v in &items {
            match v {
                Val::Const(Value::Size(s)) if s.as_const().is_some_and(|x| x > 0) => {
                    out.push(s.as_const().unwrap_or(1))
                }
                other => {
                    return self.wrong(
                        c.prim,
                        &a.loc,
                        &format!("each element of `{name}`"),
                        "a positive whole number",
                        other,
                    )
                }
            }
        }
        Ok(out)
    }

    /// The dim parameters of a call as dims: `mean[batch, T]`.
    pub fn dim_params(&mut self, c: &PrimCall, dims: &[IndexItem]) -> Res<Vec<(Dim, Span)>> {
        let mut out = Vec::new();
        for item in dims {
            let crate::syntax::ast::IndexKind::Expr(e) = &item.kind else {
                let loc = self.loc(item.span);
                self.report(
                    Code::E0217,
                    loc,
                    format!("`{}` takes dims here, not a slice or a rewrite", c.prim),
                    "not a dim",
                    "write the dims: `mean[T, N](x)`",
                );
                return Err(());
            };
            let v = self.eval(e)?;
            match as_dim(&v) {
                Some(d) => out.push((d, item.span)),
                None => {
                    let loc = self.loc(item.span);
                    self.report(
                        Code::E0217,
                        loc,
                        format!(
                            "the dim parameters of `{}` must be dims, but this is {}",
                            c.prim,
                            v.describe()
                        ),
                        "not a dim",
                        "write dim names or sizes: `mean[T](x)`",
                    );
                    return Err(());
                }
            }
        }
        Ok(out)
    }

    /// The position of dim `d` in `t`, which must have exactly one dim of
    /// that name (or, for an anonymous `d`, of that size).
    pub fn find_dim(&mut self, prim: &str, t: &TVal, d: &Dim, at: Span) -> Res<usize> {
        let hits: Vec<usize> = if d.is_anon() {
            // A dim written as a number finds the dim of that size: an
            // anonymous one first, else the one named dim of that size.
            let same = |named: bool| -> Vec<usize> {
                (0..t.ty.dims.len())
                    .filter(|&i| t.ty.dims[i].is_anon() != named && t.ty.dims[i].size == d.size)
                    .collect()
            };
            let anon = same(false);
            if anon.is_empty() {
                same(true)
            } else {
                anon
            }
        } else {
            // By name; else an anonymous dim of the same size, which
            // matches any dim of its size.
            let named = t.ty.find(&d.name);
            if named.is_empty() && d.size.is_some() {
                (0..t.ty.dims.len())
                    .filter(|&i| t.ty.dims[i].is_anon() && t.ty.dims[i].size == d.size)
                    .collect()
            } else {
                named
            }
        };
        match hits.as_slice() {
            [i] => Ok(*i),
            _ => {
                let loc = self.loc(at);
                let none = hits.is_empty();
                self.report(
                    Code::E0216,
                    loc,
                    format!(
                        "`{prim}` names the dim `{}`, but `{}` has {} dim of that name",
                        d.name,
                        t.ty,
                        if none { "no" } else { "more than one" }
                    ),
                    if none { "no such dim" } else { "ambiguous dim" },
                    "dim parameters name dims of the first tensor argument by name; check the spelling and the tensor's dims",
                );
                Err(())
            }
        }
    }

    /// Records an IR node and returns its value. Token provenance follows
    /// the first input that has it, as long as its `seq` survives intact.
    pub fn node(&mut self, op: Op, inputs: &[&TVal], out: Tensor, flops: Size, _at: Span) -> TVal {
        let seq = Size::symbol("seq");
        let parts = inputs.iter().find_map(|t| {
            let p = t.parts.as_ref()?;
            let i = *t.ty.find(&seq).first()?;
            let size = &t.ty.dims[i].size;
            out.find(&seq)
                .iter()
                .any(|&j| out.dims[j].size == *size)
                .then(|| p.clone())
        });
        // A node that keeps an input's dim order keeps the note on who
        // chose that order (see `Elab::ordered_by`).
        let ordered_by = inputs.iter().find_map(|t| {
            let at = *self.ordered_by.get(&t.src?)?;
            let same = t.ty.dims.len() == out.dims.len()
                && t.ty
                    .dims
                    .iter()
                    .zip(&out.dims)
                    .all(|(a, b)| a.name == b.name);
            same.then_some(at)
        });
        self.graph.nodes.push(Node {
            op,
            scope: self.frame().scope,
            inputs: inputs.iter().filter_map(|t| t.src).collect(),
            out: out.clone(),
            flops,
        });
        let src = crate::ir::ValueRef::Node(self.graph.nodes.len() - 1);
        if let Some(at) = ordered_by {
            self.ordered_by.insert(src, at);
        }
        TVal {
            ty: out,
            src: Some(src),
            parts,
        }
    }

    /// An elementwise operation over tensors and constants, broadcast by
    /// name. Boolean functions (comparisons, `and`, `or`, `not`, `isnan`)
    /// give `bool` tensors.
    pub fn elementwise(&mut self, f: Elementwise, operands: &[(Val, Span)], at: Span) -> Res<Val> {
        let mut dims: Option<Vec<Dim>> = None;
        let mut dtype: Option<DType> = None;
        let mut inputs: Vec<TVal> = Vec::new();
        let mut first_span = at;
        let mut order_chosen = false;
        // Each operand as the runtime reads it: an input of the node, or a
        // constant. Constants are not values of the graph, so without this
        // list `max(s, 1.0)` and `where(true, a, b)` could not be executed.
        let mut spelled: Vec<Operand> = Vec::new();
        for (v, span) in operands {
            let t = match v {
                Val::Tensor(t) => t.clone(),
                Val::Const(Value::Bool(b)) => {
                    spelled.push(Operand::Bool(*b));
                    TVal {
                        ty: Tensor::scalar(DType::Bool),
                        src: None,
                        parts: None,
                    }
                }
                v if number(v).is_some() => {
                    spelled.push(number(v).map_or(Operand::DataBound, Operand::Number));
                    continue;
                }
                Val::Dim(_) | Val::Const(Value::Size(_)) => {
                    // A dim whose size is not a constant (bound per
                    // session) has no single value to record.
                    spelled.push(Operand::DataBound);
                    continue;
                }
                other => {
                    let loc = self.loc(*span);
                    self.report(
                        Code::E0217,
                        loc,
                        format!(
                            "`{}` applies to tensors and numbers, not {}",
                            f.name(),
                            other.describe()
                        ),
                        "not a tensor or number",
                        "elementwise operations take tensors, numbers and booleans",
                    );
                    return Err(());
                }
            };
            dtype = Some(match dtype {
                None => t.ty.dtype,
                Some(d) => d.join(t.ty.dtype),
            });
            dims = Some(match dims {
                None => {
                    first_span = *span;
                    t.ty.dims.clone()
                }
                Some(acc) => match broadcast(&acc, &t.ty.dims) {
                    Ok(d) => {
                        if order_depends_on_operands(&acc, &t.ty.dims) {
                            order_chosen = true;
                        }
                        d
                    }
                    Err(e) => {
                        let (a, b, why) = *e;
                        let left = Tensor::new(dtype.unwrap_or(DType::Float), acc.clone());
                        self.broadcast_error(f, &left, &t.ty, a, b, why, first_span, *span);
                        return Err(());
                    }
                },
            });
            if t.src.is_some() {
                spelled.push(Operand::Input(
                    inputs.iter().filter(|i| i.src.is_some()).count(),
                ));
            }
            inputs.push(t);
        }
        let Some(dims) = dims else {
            // Constants only: fold what can be folded.
            return Ok(fold(f, operands));
        };
        let dtype = if f.is_boolean() {
            DType::Bool
        } else {
            dtype.unwrap_or(DType::Float)
        };
        let out = Tensor::new(dtype, dims);
        let refs: Vec<&TVal> = inputs.iter().collect();
        let op = Op::Elementwise {
            f,
            operands: spelled,
        };
        let v = self.node(op, &refs, out, Size::constant(0), at);
        if let (true, Some(r)) = (order_chosen, v.src) {
            let loc = self.loc(at);
            self.ordered_by.insert(r, loc);
        }
        Ok(Val::Tensor(v))
    }

    #[allow(clippy::too_many_arguments)]
    fn broadcast_error(
        &mut self,
        f: Elementwise,
        left: &Tensor,
        right: &Tensor,
        a: Dim,
        b: Dim,
        why: Mismatch,
        ls: Span,
        rs: Span,
    ) {
        let (code, help) = match why {
            Mismatch::Rate => (Code::E0212, "the two sides are sampled at different rates; resample one modality explicitly (`| resample(rate)`) so the times line up"),
            _ => (Code::E0211, "operands are aligned by dim name; dims with the same name must have the same size"),
        };
        let mut notes = vec![(self.loc(ls), format!("this side is `{left}`"))];
        if let Some(o) = a.origin {
            notes.push((o, format!("{} gets its size here", a.describe())));
        }
        if let Some(o) = b.origin {
            notes.push((o, format!("{} gets its size here", b.describe())));
        }
        let loc = self.loc(rs);
        let message = format!(
            "`{}` cannot combine {} with {}: `{left}` and `{right}`",
            operator(f),
            a.describe(),
            b.describe()
        );
        let label = format!("this side is `{right}`");
        self.report_disagreement(code, loc, message, &label, help, notes, why, (&a, &b));
    }

    fn unary_fn(&mut self, c: &mut PrimCall) -> Res<Val> {
        let x = self.required(c, 0, "x")?;
        let Some(mut f) = Elementwise::unary(c.prim) else {
            let loc = self.loc(c.at);
            self.report(
                Code::E0217,
                loc,
                format!("`{}` is not a function of one tensor", c.prim),
                "not elementwise",
                "see docs/primitives.md for the primitive's signature",
            );
            return Err(());
        };
        // GELU's form is part of the computation: recorded on the node.
        let form = if c.prim == "gelu" {
            c.get(usize::MAX, "approximate")
        } else {
            None
        };
        if let Some(a) = form {
            match &a.val {
                Val::Const(Value::Str(s)) if s == "tanh" || s == "none" => {
                    f = Elementwise::Gelu { tanh: s == "tanh" };
                }
                other => {
                    return self.wrong(
                        c.prim,
                        &a.loc,
                        "`approximate`",
                        "\"tanh\" or \"none\"",
                        other,
                    )
                }
            }
        }
        // Constants fold: `log(init_sigma)` in an initialiser.
        if let Some(v) = number(&x.val) {
            return Ok(Val::Const(Value::Float(f.fold1(v).unwrap_or(v))));
        }
        let at = c.at;
        self.elementwise(f, &[(x.val, x.loc.span)], at)
    }

    fn repeat(&mut self, c: &mut PrimCall) -> Res<Val> {
        let n = self.required(c, 0, "n")?;
        let m = self.required(c, 1, "m")?;
        let count = match &n.val {
            Val::Const(Value::Size(s)) => s.as_const().filter(|x| *x > 0),
            _ => None,
        };
        let Some(count) = count else {
            return self.wrong(c.prim, &n.loc, "`n`", "a positive whole number", &n.val);
        };
        let Val::Instance(inner) = m.val else {
            return self.wrong(c.prim, &m.loc, "`m`", "a module instance", &m.val);
        };
        let at = c.at;
        Ok(Val::Instance(
            self.new_instance(InstKind::Repeat { count, inner }, at),
        ))
    }
}

/// The dims of `a (op) b`, aligned by name (anonymous dims by size).
///
/// The order is canonical, the same for `a + b` and `b + a` whenever the
/// operands differ in rank: dims that line up from the right (numpy's
/// rule) keep their place; otherwise the operand with more dims gives the
/// order, and each dim only the other operand has is placed just before
/// the next dim that follows it there (`[B, T, d] + [N, d]` is
/// `[B, T, N, d]`), or last when none does. Only between operands of
/// equal rank that hold different dims does the left one decide, which
/// [`Elab::elementwise`] records so that a later error can say so.
pub(super) fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, Box<(Dim, Dim, Mismatch)>> {
    let k = a.len().min(b.len());
    let aligned = (1..=k).all(|j| a[a.len() - j].matches(&b[b.len() - j]).is_ok());
    if aligned {
        let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
        let mut out = long.to_vec();
        let offset = long.len() - short.len();
        for (j, d) in short.iter().enumerate() {
            out[offset + j] = long[offset + j].merge(d);
        }
        return Ok(out);
    }
    // The operand with more dims leads; errors still name the left
    // operand's dim first, as the user wrote them.
    let swapped = b.len() > a.len();
    let (base, other) = if swapped { (b, a) } else { (a, b) };
    let mut out = base.to_vec();
    // Walking the other operand from the right, `anchor` is where its next
    // missing dim goes: just before the last dim of it that was placed.
    let mut anchor = out.len();
    for d in other.iter().rev() {
        let hit = if d.is_anon() {
            (0..out.len()).find(|&i| out[i].is_anon() && out[i].size == d.size)
        } else {
            (0..out.len()).find(|&i| out[i].name == d.name)
        };
        match hit {
            Some(i) => {
                out[i].matches(d).map_err(|why| {
                    if swapped {
                        (d.clone(), out[i].clone(), why)
                    } else {
                        (out[i].clone(), d.clone(), why)
                    }
                })?;
                out[i] = out[i].merge(d);
                anchor = i;
            }
            None => out.insert(anchor, d.clone()),
        }
    }
    Ok(out)
}

/// Whether `a (op) b` orders its dims differently from `b (op) a`: only
/// between operands of equal rank (see [`broadcast`]).
fn order_depends_on_operands(a: &[Dim], b: &[Dim]) -> bool {
    let names = |d: Result<Vec<Dim>, _>| {
        d.ok()
            .map(|v| v.into_iter().map(|d| d.name).collect::<Vec<_>>())
    };
    a.len() == b.len() && names(broadcast(a, b)) != names(broadcast(b, a))
}

/// How an elementwise operation is written in source: `+` for `add`.
fn operator(f: Elementwise) -> &'static str {
    match f {
        Elementwise::Add => "+",
        Elementwise::Sub => "-",
        Elementwise::Mul => "*",
        Elementwise::Div => "/",
        Elementwise::Rem => "%",
        Elementwise::Pow => "**",
        Elementwise::Eq => "==",
        Elementwise::Ne => "!=",
        Elementwise::Lt => "<",
        Elementwise::Le => "<=",
        Elementwise::Gt => ">",
        Elementwise::Ge => ">=",
        Elementwise::Neg => "-",
        other => other.name(),
    }
}

/// Folds an elementwise operation on constants (`max(1.0, 2.0)`).
fn fold(f: Elementwise, operands: &[(Val, Span)]) -> Val {
    let nums: Vec<f64> = operands.iter().filter_map(|(v, _)| number(v)).collect();
    match (f, nums.as_slice()) {
        (Elementwise::Max, [a, b]) => Val::Const(Value::Float(a.max(*b))),
        (Elementwise::Min, [a, b]) => Val::Const(Value::Float(a.min(*b))),
        _ => operands
            .first()
            .map(|(v, _)| v.clone())
            .unwrap_or(Val::Opaque),
    }
}

#[cfg(test)]
mod tests {
    use super::{broadcast, order_depends_on_operands};
    use crate::ir::types::{Dim, Size};

    fn dims(names: &str) -> Vec<Dim> {
        names
            .split_whitespace()
            .map(|n| Dim::named(n, Size::constant(4), None))
            .collect()
    }

    fn names(d: &[Dim]) -> String {
        d.iter()
            .map(|d| d.name.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn both_ways(a: &str, b: &str) -> (String, String) {
        let (a, b) = (dims(a), dims(b));
        let ab = broadcast(&a, &b).map(|d| names(&d)).unwrap_or_default();
        let ba = broadcast(&b, &a).map(|d| names(&d)).unwrap_or_default();
        (ab, ba)
    }

    #[test]
    fn operands_of_different_rank_give_one_order_either_way_round() {
        // Aligned from the right, a subset out of place, and dims only the
        // smaller operand has, which go before the next dim they precede.
        for (a, b, want) in [
            ("batch T N d", "N d", "batch T N d"),
            ("batch T N d", "T d", "batch T N d"),
            ("batch T d", "N d", "batch T N d"),
            ("batch T N", "d", "batch T N d"),
            ("batch T C H W", "H N W", "batch T C H N W"),
        ] {
            let (ab, ba) = both_ways(a, b);
            assert_eq!(ab, want, "{a} + {b}");
            assert_eq!(ba, want, "{b} + {a}");
            assert!(!order_depends_on_operands(&dims(a), &dims(b)));
        }
    }

    #[test]
    fn operands_of_equal_rank_keep_the_left_order_and_say_so() {
        let (ab, ba) = both_ways("T d", "N d");
        assert_eq!((ab.as_str(), ba.as_str()), ("T N d", "N T d"));
        assert!(order_depends_on_operands(&dims("T d"), &dims("N d")));
        assert!(order_depends_on_operands(
            &dims("batch T N"),
            &dims("batch N T")
        ));
        // The same dims in the same order: nothing to choose.
        assert!(!order_depends_on_operands(&dims("T d"), &dims("T d")));
    }

    #[test]
    fn a_dim_of_the_same_name_and_another_size_is_an_error_either_way_round() {
        let a = dims("batch T d");
        let b = vec![Dim::named("d", Size::constant(8), None)];
        let Err(e) = broadcast(&a, &b) else {
            panic!("d=4 and d=8 were combined");
        };
        // The left operand's dim is named first, as the user wrote it.
        assert_eq!(
            (e.0.size.clone(), e.1.size.clone()),
            (Some(Size::constant(4)), Some(Size::constant(8)))
        );
        let Err(e) = broadcast(&b, &a) else {
            panic!("d=8 and d=4 were combined");
        };
        assert_eq!(
            (e.0.size.clone(), e.1.size.clone()),
            (Some(Size::constant(8)), Some(Size::constant(4)))
        );
    }
}
