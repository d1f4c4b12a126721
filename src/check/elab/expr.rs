//! Expressions: names, operators, indexing, fields and `if`.
//!
//! Arithmetic on compile-time numbers is exact (sizes are integer
//! polynomials, see `size.rs`) and reuses the constant evaluator, so a
//! hyperparameter expression and a top-level `dim` behave alike. Arithmetic
//! on dims makes dims (`heads * head_dim`, `T / t`); arithmetic involving a
//! tensor is an elementwise operation that broadcasts by name.

use std::rc::Rc;

use super::{Callee, Elab, Res, TVal, Val};
use crate::base::Span;
use crate::check::consts;
use crate::diagnostics::Code;
use crate::ir::types::size::{Size, SizeError};
use crate::ir::types::tensor::{name_div, Dim};
use crate::ir::types::Value;
use crate::ir::Elementwise;
use crate::resolve::{builtins, Binding, ModuleId};
use crate::syntax::ast::*;

impl Elab<'_, '_> {
    /// Evaluates an expression, recording its type for the editor when the
    /// checker was asked to (see `Consts::facts`).
    pub fn eval(&mut self, e: &Expr) -> Res<Val> {
        let v = self.eval_kind(e)?;
        self.note_type(e.span, super::super::FactKind::Expr, &v);
        Ok(v)
    }

    fn eval_kind(&mut self, e: &Expr) -> Res<Val> {
        match &e.kind {
            ExprKind::Number(n) => Ok(from_value(consts::number(n))),
            ExprKind::Str(s) => Ok(Val::Const(Value::Str(s.clone()))),
            ExprKind::Bool(b) => Ok(Val::Const(Value::Bool(*b))),
            ExprKind::Path(p) => self.path(p),
            ExprKind::Paren(x) => self.eval(x),
            ExprKind::Tuple(xs) | ExprKind::List(xs) => {
                let mut vals = Vec::with_capacity(xs.len());
                for x in xs {
                    vals.push(self.eval(x)?);
                }
                Ok(Val::Tuple(vals))
            }
            ExprKind::Unary { op, operand } => {
                let v = self.eval(operand)?;
                self.unary(*op, v, e.span, operand.span)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.eval(lhs)?;
                let b = self.eval(rhs)?;
                self.binary(*op, (a, lhs.span), (b, rhs.span), e.span)
            }
            ExprKind::Call { callee, args } => self.call(callee, args, e.span),
            ExprKind::Index { base, items } => {
                let b = self.eval(base)?;
                self.index(b, items, e.span)
            }
            ExprKind::Field { base, name } => {
                let b = self.eval(base)?;
                self.field(b, name)
            }
            ExprKind::If { cond, then, els } => {
                if self.condition(cond)? {
                    self.eval(then)
                } else {
                    self.eval(els)
                }
            }
        }
    }

    /// A condition known at compile time (of `if`).
    pub fn condition(&mut self, cond: &Expr) -> Res<bool> {
        match self.eval(cond)? {
            Val::Const(Value::Bool(b)) => Ok(b),
            other => {
                let at = self.loc(cond.span);
                self.report(
                    Code::E0217,
                    at,
                    format!("`if` needs a condition known at compile time, found {}", other.describe()),
                    "not a compile-time boolean",
                    "`if` chooses between structures using hyperparameters; to choose between tensor values element by element, use `where(cond, a, b)`",
                );
                Err(())
            }
        }
    }

    fn path(&mut self, p: &[Ident]) -> Res<Val> {
        let Some(first) = p.first() else {
            return Ok(Val::Opaque);
        };
        let mut v = self.lookup(first)?;
        for seg in &p[1..] {
            v = self.field(v, seg)?;
        }
        Ok(v)
    }

    /// A name: locals, then the file scope, then the builtins.
    pub fn lookup(&mut self, id: &Ident) -> Res<Val> {
        if let Some((_, v)) = self
            .frame()
            .locals
            .iter()
            .rev()
            .find(|(n, _)| *n == id.name)
        {
            return Ok(v.clone());
        }
        let module = self.module();
        self.scope_lookup(module, &id.name)
    }

    /// A name in the file scope of `module`, following imports.
    pub fn scope_lookup(&mut self, module: ModuleId, name: &str) -> Res<Val> {
        let binding = self.consts.program.module(module).scope.get(name).cloned();
        match binding {
            Some(Binding::Item { .. }) => self.item_val(module, name),
            Some(Binding::Import { module, name, .. }) => self.scope_lookup(module, &name),
            Some(Binding::Module { module, .. }) => Ok(Val::Namespace(module)),
            // A failed import was reported by the resolver.
            Some(Binding::Unresolved { .. }) => Err(()),
            None => Ok(builtin(name)),
        }
    }

    fn unary(&mut self, op: UnaryOp, v: Val, at: Span, operand: Span) -> Res<Val> {
        match (op, v) {
            (UnaryOp::Not, Val::Const(Value::Bool(b))) => Ok(Val::Const(Value::Bool(!b))),
            (UnaryOp::Neg, Val::Dim(d)) => Ok(Val::Const(Value::Size(d.size_or_name()))),
            (
                UnaryOp::Neg,
                v @ (Val::Const(Value::Size(_))
                | Val::Const(Value::Float(_))
                | Val::Const(Value::Quantity(_))),
            ) => {
                let zero = (Val::Const(Value::Size(Size::constant(0))), at);
                self.binary(BinaryOp::Sub, zero, (v, operand), at)
            }
            (op, v @ Val::Tensor(_)) => {
                let f = if op == UnaryOp::Neg {
                    Elementwise::Neg
                } else {
                    Elementwise::Not
                };
                self.elementwise(f, &[(v, operand)], at)
            }
            (op, v) => {
                let loc = self.loc(operand);
                self.report(
                    Code::E0217,
                    loc,
                    format!("cannot apply `{}` to {}", op.as_str().trim(), v.describe()),
                    "this operand",
                    "`-` applies to numbers and tensors, `not` to booleans and boolean tensors",
                );
                Err(())
            }
        }
    }

    pub fn binary(&mut self, op: BinaryOp, a: (Val, Span), b: (Val, Span), at: Span) -> Res<Val> {
        use BinaryOp::*;
        if matches!(a.0, Val::Tensor(_)) || matches!(b.0, Val::Tensor(_)) {
            let f = match op {
                Add => Elementwise::Add,
                Sub => Elementwise::Sub,
                Mul => Elementwise::Mul,
                Div => Elementwise::Div,
                Rem => Elementwise::Rem,
                Pow => Elementwise::Pow,
                Eq => Elementwise::Eq,
                Ne => Elementwise::Ne,
                Lt => Elementwise::Lt,
                Le => Elementwise::Le,
                Gt => Elementwise::Gt,
                Ge => Elementwise::Ge,
                And => Elementwise::And,
                Or => Elementwise::Or,
            };
            return self.elementwise(f, &[a, b], at);
        }
        match op {
            And | Or => match (&a.0, &b.0) {
                (Val::Const(Value::Bool(x)), Val::Const(Value::Bool(y))) => {
                    Ok(Val::Const(Value::Bool(if op == And {
                        *x && *y
                    } else {
                        *x || *y
                    })))
                }
                _ => self.bad_operands(op, &a.0, &b.0, at),
            },
            Eq | Ne | Lt | Le | Gt | Ge => self.compare(op, &a.0, &b.0, at),
            _ => {
                if matches!(a.0, Val::Dim(_)) || matches!(b.0, Val::Dim(_)) {
                    if let (Some(x), Some(y)) = (as_dim(&a.0), as_dim(&b.0)) {
                        return self.dim_arith(op, x, y, at);
                    }
                }
                // A dim beside a non-integer number is its size (`2.0 / H`).
                let (Some(x), Some(y)) = (
                    to_value(&a.0).or_else(|| dim_value(&a.0)),
                    to_value(&b.0).or_else(|| dim_value(&b.0)),
                ) else {
                    return self.bad_operands(op, &a.0, &b.0, at);
                };
                self.consts.module = self.module();
                self.consts.binary(op, x, y, at).map(from_value)
            }
        }
    }

    fn bad_operands(&mut self, op: BinaryOp, a: &Val, b: &Val, at: Span) -> Res<Val> {
        let loc = self.loc(at);
        self.report(
            Code::E0217,
            loc,
            format!(
                "cannot apply `{}` to {} and {}",
                op.as_str(),
                a.describe(),
                b.describe()
            ),
            "these operands do not fit the operator",
            "arithmetic applies to numbers, dims and tensors; `and`/`or` to booleans",
        );
        Err(())
    }

    fn compare(&mut self, op: BinaryOp, a: &Val, b: &Val, at: Span) -> Res<Val> {
        use std::cmp::Ordering;
        let ord = match (a, b) {
            (Val::Const(Value::Str(x)), Val::Const(Value::Str(y))) => x.partial_cmp(y),
            (Val::Const(Value::Bool(x)), Val::Const(Value::Bool(y))) => x.partial_cmp(y),
            (Val::Const(Value::Symbol(x)), Val::Const(Value::Symbol(y))) => x.partial_cmp(y),
            _ => match (number(a), number(b)) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => None,
            },
        };
        let Some(ord) = ord else {
            return self.bad_operands(op, a, b, at);
        };
        Ok(Val::Const(Value::Bool(match op {
            BinaryOp::Eq => ord == Ordering::Equal,
            BinaryOp::Ne => ord != Ordering::Equal,
            BinaryOp::Lt => ord == Ordering::Less,
            BinaryOp::Le => ord != Ordering::Greater,
            BinaryOp::Gt => ord == Ordering::Greater,
            _ => ord != Ordering::Less,
        })))
    }

    /// Arithmetic on dims: the name and the size are computed alike, a
    /// rate is divided along with its dim (`T / 2` of `T @ 30Hz` is at
    /// 15 Hz).
    fn dim_arith(&mut self, op: BinaryOp, a: Dim, b: Dim, at: Span) -> Res<Val> {
        let sa = a.size.clone();
        let sb = b.size.clone();
        let name = match op {
            BinaryOp::Add => a.name.add(&b.name),
            BinaryOp::Sub => a.name.sub(&b.name),
            BinaryOp::Mul => a.name.mul(&b.name),
            BinaryOp::Div => name_div(&a.name, &b.name),
            _ => {
                return self.bad_operands(op, &Val::Dim(a), &Val::Dim(b), at);
            }
        };
        let size = match (&sa, &sb) {
            (Some(x), Some(y)) => Some(match op {
                BinaryOp::Add => x.add(y),
                BinaryOp::Sub => x.sub(y),
                BinaryOp::Mul => x.mul(y),
                _ => match x.div(y) {
                    Err(SizeError::NotExact)
                        if x.as_const().is_some() && y.as_const().is_some() =>
                    {
                        let loc = self.loc(at);
                        self.report(
                            Code::E0215,
                            loc,
                            format!(
                                "`{}` is not a whole number of positions: {x} / {y}",
                                self.text(at)
                            ),
                            "this division does not come out whole",
                            "a dim made by division must divide exactly; change one of the sizes",
                        );
                        return Err(());
                    }
                    // A division of data-bound sizes is checked once the
                    // data binds them.
                    Err(SizeError::NotExact) => Ok(Size::symbol(&format!("{x}/{y}"))),
                    r => r,
                },
            }),
            _ => None,
        };
        let name = self.size_result(name, at)?;
        let size = match size {
            Some(s) => Some(self.size_result(s, at)?),
            None => None,
        };
        if let Some(s) = &size {
            if !s.is_positive() && s.as_const().is_some() {
                let loc = self.loc(at);
                self.report(
                    Code::E0203,
                    loc,
                    format!(
                        "`{}` has size {s}; a dim needs at least one position",
                        self.text(at)
                    ),
                    "not a positive size",
                    "check the dims this size is computed from",
                );
                return Err(());
            }
        }
        let rate = match op {
            BinaryOp::Div => match (a.rate, b.size.as_ref().and_then(Size::as_const)) {
                (Some(r), Some(k)) if b.rate.is_none() && k != 0 => Some(r / k as f64),
                _ => None,
            },
            _ => None,
        };
        Ok(Val::Dim(Dim {
            name,
            size,
            rate,
            origin: Some(self.loc(at)),
            soft: a.soft || b.soft,
        }))
    }

    fn size_result(&mut self, r: Result<Size, SizeError>, at: Span) -> Res<Size> {
        match r {
            Ok(s) => Ok(s),
            Err(SizeError::DivisionByZero) => {
                let loc = self.loc(at);
                self.report(
                    Code::E0202,
                    loc,
                    "division by zero".into(),
                    "the divisor is zero",
                    "check the dims the divisor is made of",
                );
                Err(())
            }
            Err(_) => {
                let loc = self.loc(at);
                self.report(
                    Code::E0201,
                    loc,
                    "size arithmetic overflows (past 9223372036854775807)".into(),
                    "this expression overflows",
                    "sizes are 64-bit integers; check the factors for a misplaced unit or an extra multiplication",
                );
                Err(())
            }
        }
    }

    /// `a.b`: a field of a record, a parameter of an applied instance, an
    /// item of a module namespace.
    pub fn field(&mut self, base: Val, name: &Ident) -> Res<Val> {
        match base {
            Val::Record(fields) => match fields.iter().find(|(n, _)| *n == name.name) {
                Some((_, v)) => Ok(v.clone()),
                None => {
                    let names: Vec<String> = fields.iter().map(|(n, _)| format!("`{n}`")).collect();
                    let loc = self.loc(name.span);
                    self.report(
                        Code::E0217,
                        loc,
                        format!(
                            "there is no `{}` here; the fields are {}",
                            name.name,
                            names.join(", ")
                        ),
                        "no such field",
                        "a model's fields are its `predict` outputs",
                    );
                    Err(())
                }
            },
            Val::Instance(i) => {
                if let Some(p) = self.instances[i].params.get(&name.name) {
                    return Ok(Val::Tensor(p.clone()));
                }
                let applied = self.instances[i].applied;
                let loc = self.loc(name.span);
                let message = if applied {
                    format!("this instance has no parameter `{}`", name.name)
                } else {
                    format!(
                        "the parameter `{}` does not exist until the instance is applied",
                        name.name
                    )
                };
                self.report(
                    Code::E0217,
                    loc,
                    message,
                    "no such parameter",
                    "an instance's fields are the `param`s of its module, made when it is first applied to inputs",
                );
                Err(())
            }
            Val::Namespace(m) => self.scope_lookup(m, &name.name),
            Val::Opaque | Val::Callable(Callee::Other) => Ok(Val::Opaque),
            other => {
                let loc = self.loc(name.span);
                self.report(
                    Code::E0217,
                    loc,
                    format!("{} has no field `{}`", other.describe(), name.name),
                    "no such field",
                    "fields belong to models (their predictions), instances (their parameters) and events modalities (`unit`, `time`)",
                );
                Err(())
            }
        }
    }

    /// `parts[0]`, `size[1]`, `x[D: a..b]`, `h[tok]`.
    fn index(&mut self, base: Val, items: &[IndexItem], at: Span) -> Res<Val> {
        match base {
            Val::Tuple(vals) => {
                let [item] = items else {
                    return self.bad_index(at, "a tuple or list takes one position: `parts[0]`");
                };
                let IndexKind::Expr(e) = &item.kind else {
                    return self.bad_index(
                        item.span,
                        "a tuple or list takes a literal position: `parts[0]`",
                    );
                };
                let pos = match self.eval(e)? {
                    Val::Const(Value::Size(s)) => s.as_const(),
                    _ => None,
                };
                match pos
                    .and_then(|p| usize::try_from(p).ok())
                    .and_then(|p| vals.get(p))
                {
                    Some(v) => Ok(v.clone()),
                    None => {
                        let loc = self.loc(item.span);
                        self.report(
                            Code::E0217,
                            loc,
                            format!(
                                "position `{}` is out of range: there are {} elements",
                                self.text(item.span),
                                vals.len()
                            ),
                            "no such position",
                            "positions count from 0",
                        );
                        Err(())
                    }
                }
            }
            Val::Tensor(t) => self.index_tensor(t, items, at),
            other => {
                let loc = self.loc(at);
                self.report(
                    Code::E0217,
                    loc,
                    format!("{} cannot be indexed", other.describe()),
                    "indexed here",
                    "brackets index tensors (`x[T: 0..8]`, `h[tok]`), tuples and lists (`parts[0]`)",
                );
                Err(())
            }
        }
    }

    fn bad_index(&mut self, at: Span, help: &str) -> Res<Val> {
        let loc = self.loc(at);
        self.report(
            Code::E0217,
            loc,
            "this index does not fit the value".into(),
            "this index",
            help,
        );
        Err(())
    }

    fn index_tensor(&mut self, mut t: TVal, items: &[IndexItem], at: Span) -> Res<Val> {
        // `h[tok]`: the positions of `seq` that tokenizer `tok` produced.
        if let [IndexItem {
            dim: None,
            kind: IndexKind::Expr(e),
            span,
        }] = items
        {
            if let ExprKind::Path(p) = &e.kind {
                if p.len() == 1 && self.tokenizers.contains(&p[0].name) {
                    return self.select_tokens(t, &p[0].name, *span, at);
                }
            }
        }
        for item in items {
            let (Some(dim), IndexKind::Range { start, end }) = (&item.dim, &item.kind) else {
                return self.bad_index(
                    item.span,
                    "index a tensor by dim name: `x[T: 0..8]`; select a tokenizer's tokens with `h[tok]`",
                );
            };
            t = self.slice(t, dim, start.as_ref(), end.as_ref(), item.span)?;
        }
        Ok(Val::Tensor(t))
    }

    fn select_tokens(&mut self, t: TVal, tok: &str, item: Span, at: Span) -> Res<Val> {
        let seq = Size::symbol("seq");
        let part = t
            .parts
            .as_ref()
            .and_then(|ps| ps.iter().find(|(n, _)| n == tok).cloned());
        let positions = t.ty.find(&seq);
        let (Some((_, size)), [i]) = (part, positions.as_slice()) else {
            let loc = self.loc(item);
            self.report(
                Code::E0216,
                loc,
                format!("`{tok}` selects tokens of `seq`, but this tensor `{}` has no tokens of `{tok}`", t.ty),
                "not part of this sequence",
                "`h[tok]` works on a sequence built by `concat[seq](...)` from tokenizer outputs (or on one tokenizer's output)",
            );
            return Err(());
        };
        let mut ty = t.ty.clone();
        ty.dims[*i].size = Some(size.clone());
        // Where the tokenizer's tokens start in `seq`: the sizes of the
        // parts before it, in the order `concat` joined them.
        let mut start = Size::constant(0);
        for (_, s) in t
            .parts
            .iter()
            .flat_map(|ps| ps.iter())
            .take_while(|(n, _)| n != tok)
        {
            start = start.add(s).map_err(|_| ())?;
        }
        let op = crate::ir::Op::Select {
            tokenizer: tok.to_string(),
            axis: *i,
            start,
        };
        let out = self.node(op, &[&t], ty, Size::constant(0), at);
        Ok(Val::Tensor(TVal {
            parts: Some(Rc::new(vec![(tok.to_string(), size)])),
            ..out
        }))
    }
}

/// The value of a builtin name in value position.
fn builtin(name: &str) -> Val {
    use builtins::BuiltinKind::*;
    match builtins::lookup(name) {
        Some(Primitive) => match builtins::PRIMITIVES.iter().find(|p| **p == name) {
            Some(p) => Val::Callable(Callee::Prim(p)),
            None => Val::Opaque,
        },
        Some(Init) => Val::Callable(Callee::Init(name.to_string())),
        Some(Dtype | Symbol) => Val::Const(Value::Symbol(name.to_string())),
        Some(LogicalDim) => Val::Dim(Dim {
            name: Size::symbol(name),
            size: None,
            rate: None,
            origin: None,
            soft: false,
        }),
        Some(Source | Data | Optimizer | Schedule) => Val::Callable(Callee::Other),
        None => Val::Opaque,
    }
}

pub(super) fn from_value(v: Value) -> Val {
    match v {
        Value::List(items) => Val::Tuple(items.into_iter().map(from_value).collect()),
        Value::Opaque => Val::Opaque,
        scalar => Val::Const(scalar),
    }
}

fn to_value(v: &Val) -> Option<Value> {
    Some(match v {
        Val::Const(Value::Size(s)) => Value::Size(s.clone()),
        Val::Const(Value::Float(f)) => Value::Float(*f),
        Val::Const(Value::Quantity(q)) => Value::Quantity(*q),
        _ => return None,
    })
}

/// A dim's size as a number, for arithmetic with fractions.
fn dim_value(v: &Val) -> Option<Value> {
    match v {
        Val::Dim(d) => d.size.clone().map(Value::Size),
        _ => None,
    }
}

/// A value usable as a dim: a dim, or a whole number (an anonymous dim).
pub(super) fn as_dim(v: &Val) -> Option<Dim> {
    match v {
        Val::Dim(d) => Some(d.clone()),
        Val::Const(Value::Size(s)) => Some(Dim {
            name: s.clone(),
            size: Some(s.clone()),
            rate: None,
            origin: None,
            soft: false,
        }),
        _ => None,
    }
}

/// A value as a plain number, when it is one.
pub(super) fn number(v: &Val) -> Option<f64> {
    match v {
        Val::Const(Value::Size(s)) => s.as_const().map(|c| c as f64),
        Val::Const(Value::Float(f)) => Some(*f),
        Val::Dim(d) => d.size.as_ref().and_then(Size::as_const).map(|c| c as f64),
        _ => None,
    }
}
