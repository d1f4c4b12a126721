//! Compile-time evaluation of top-level `dim` and `let` values.
//!
//! Values are computed on demand, following names to their definitions in
//! this file or an imported one, memoised, and guarded against definitions
//! that refer to themselves (E0206). Arithmetic carries units (see
//! `quantity.rs`) and symbolic sizes (see `size.rs`); overflow (E0201),
//! division by zero (E0202), mixed units (E0204) and divisions that do not
//! come out whole (E0205) are reported at the operator that caused them.
//! Anything that is not a compile-time constant (a call, a data field) is
//! `Value::Opaque` and checked by later stages.

use std::collections::HashMap;

use crate::base::FileId;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::types::{Dimension, Quantity, Size, SizeError, Value};
use crate::resolve::{builtins, Binding, ModuleId, Program};
use crate::syntax::ast::*;

/// Turns a dimensionless quantity back into a size or a float.
fn from_quantity(q: Quantity) -> Value {
    if q.dim != Dimension::COUNT {
        return Value::Quantity(q);
    }
    match q.as_whole() {
        Some(n) => Value::Size(Size::constant(n)),
        None => Value::Float(q.value),
    }
}

/// `Err(())` means the problem has been reported already.
pub type Eval = Result<Value, ()>;

pub struct Consts<'p> {
    pub program: &'p Program,
    /// The module whose expressions are being evaluated.
    pub module: ModuleId,
    memo: HashMap<(ModuleId, String), Eval>,
    in_progress: Vec<(ModuleId, String)>,
    pub diags: Vec<Diagnostic>,
    /// The type of every expression and binding the elaborator evaluated,
    /// when the caller asked for them (the language server); `None` keeps
    /// the command line from paying for them.
    pub facts: Option<Vec<super::TypeFact>>,
}

impl<'p> Consts<'p> {
    pub fn new(program: &'p Program) -> Consts<'p> {
        Consts {
            program,
            module: program.root,
            memo: HashMap::new(),
            in_progress: Vec::new(),
            diags: Vec::new(),
            facts: None,
        }
    }

    pub fn file(&self) -> FileId {
        self.program.module(self.module).file
    }

    /// The source text of an expression of the current module.
    pub fn source(&self, e: &Expr) -> String {
        self.program
            .sources
            .get(self.file())
            .slice(e.span)
            .to_string()
    }

    /// Where the dim or let that `name` refers to (in the current module)
    /// gets its value, for secondary labels.
    pub fn definition(&self, name: &str) -> Option<(FileId, Span, String)> {
        let (module, item_name) = self.follow(self.module, name)?;
        let m = self.program.module(module);
        let item = m.defined(&item_name)?;
        let value_span = match &item.kind {
            ItemKind::Dim(d) => d.value.as_ref().map(|v| v.span).unwrap_or(d.name.span),
            ItemKind::Let(l) => l.value.span,
            _ => return None,
        };
        Some((m.file, value_span, item_name))
    }

    /// Follows imports to the module that defines `name`.
    fn follow(&self, module: ModuleId, name: &str) -> Option<(ModuleId, String)> {
        let mut at = (module, name.to_string());
        // Imports cannot chain more times than there are modules.
        for _ in 0..=self.program.modules.len() {
            match self.program.module(at.0).scope.get(&at.1)? {
                Binding::Item { .. } => return Some(at),
                Binding::Import { module, name, .. } => at = (*module, name.clone()),
                Binding::Module { .. } | Binding::Unresolved { .. } => return None,
            }
        }
        None
    }

    /// The value of the dim or let `name` as seen from the current module.
    fn named(&mut self, name: &Ident) -> Eval {
        if let Some((module, item_name)) = self.follow(self.module, &name.name) {
            return self.item_value(module, &item_name);
        }
        if let Some(kind) = builtins::lookup(&name.name) {
            return Ok(match kind {
                builtins::BuiltinKind::Symbol | builtins::BuiltinKind::Dtype => {
                    Value::Symbol(name.name.clone())
                }
                _ => Value::Opaque,
            });
        }
        Ok(Value::Opaque)
    }

    /// The value of item `name` defined in `module`, memoised.
    pub fn item_value(&mut self, module: ModuleId, name: &str) -> Eval {
        let key = (module, name.to_string());
        if let Some(v) = self.memo.get(&key) {
            return v.clone();
        }
        if let Some(pos) = self.in_progress.iter().position(|k| *k == key) {
            self.report_cycle(pos);
            self.memo.insert(key, Err(()));
            return Err(());
        }
        let Some(item) = self.program.module(module).defined(name) else {
            return Ok(Value::Opaque);
        };
        self.in_progress.push(key.clone());
        let saved = std::mem::replace(&mut self.module, module);
        let value = match &item.kind {
            ItemKind::Dim(d) => match &d.value {
                Some(v) => self.eval(v),
                None => Ok(Value::Size(Size::symbol(name))),
            },
            ItemKind::Let(l) => self.eval(&l.value),
            _ => Ok(Value::Opaque),
        };
        self.module = saved;
        self.in_progress.pop();
        // A cycle reported while evaluating may already have poisoned the
        // entry; keep that.
        self.memo.entry(key).or_insert(value).clone()
    }

    fn report_cycle(&mut self, start: usize) {
        let chain: Vec<(ModuleId, String)> = self.in_progress[start..].to_vec();
        let names: Vec<&str> = chain.iter().map(|(_, n)| n.as_str()).collect();
        let first = names[0];
        let (m0, n0) = &chain[0];
        let module = self.program.module(*m0);
        let Some(item) = module.defined(n0) else {
            return;
        };
        let at = item
            .kind
            .defined_name()
            .map(|i| i.span)
            .unwrap_or(item.span);
        let mut diag = Diagnostic::new(
            Code::E0206,
            format!(
                "`{first}` is defined in terms of itself: {} -> {first}",
                names.join(" -> ")
            ),
        )
        .primary(module.file, at, "defined here");
        for (m, n) in &chain[1..] {
            let module = self.program.module(*m);
            if let Some(i) = module.defined(n).and_then(|i| i.kind.defined_name()) {
                diag = diag.secondary(module.file, i.span, format!("`{n}` depends on it"));
            }
        }
        self.diags.push(
            diag.help("give one of the definitions a value that does not refer back to the others"),
        );
    }

    fn error(&mut self, code: Code, at: Span, message: String, label: &str, help: &str) {
        let file = self.file();
        self.diags.push(
            Diagnostic::new(code, message)
                .primary(file, at, label)
                .help(help),
        );
    }

    pub fn eval(&mut self, e: &Expr) -> Eval {
        match &e.kind {
            ExprKind::Number(n) => Ok(number(n)),
            ExprKind::Str(s) => Ok(Value::Str(s.clone())),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Path(p) if p.len() == 1 => self.named(&p[0]),
            ExprKind::Paren(x) => self.eval(x),
            ExprKind::Unary {
                op: UnaryOp::Neg,
                operand,
            } => {
                let v = self.eval(operand)?;
                Ok(match v {
                    Value::Size(s) => match s.neg() {
                        Ok(n) => Value::Size(n),
                        Err(_) => return self.overflow(e.span, "-"),
                    },
                    Value::Float(f) => Value::Float(-f),
                    Value::Quantity(q) => Value::Quantity(Quantity {
                        value: -q.value,
                        dim: q.dim,
                    }),
                    _ => Value::Opaque,
                })
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.eval(lhs)?;
                let b = self.eval(rhs)?;
                self.binary(*op, a, b, e.span)
            }
            _ => Ok(Value::Opaque),
        }
    }

    fn overflow(&mut self, at: Span, op: &str) -> Eval {
        self.error(
            Code::E0201,
            at,
            format!("size arithmetic overflows (`{op}` goes past 9223372036854775807)"),
            "this expression overflows",
            "sizes are 64-bit integers; check the factors for a misplaced unit or an extra multiplication",
        );
        Err(())
    }

    pub fn binary(&mut self, op: BinaryOp, a: Value, b: Value, at: Span) -> Eval {
        use BinaryOp::*;
        if !matches!(op, Add | Sub | Mul | Div | Rem | Pow) {
            return Ok(Value::Opaque);
        }
        // Exact integer (possibly symbolic) arithmetic when both are sizes.
        if let (Value::Size(x), Value::Size(y)) = (&a, &b) {
            let result = match op {
                Add => x.add(y),
                Sub => x.sub(y),
                Mul => x.mul(y),
                Div => x.div(y),
                Rem => match (x.as_const(), y.as_const()) {
                    (_, Some(0)) => Err(SizeError::DivisionByZero),
                    (Some(p), Some(q)) => Ok(Size::constant(p % q)),
                    _ => return Ok(Value::Opaque),
                },
                _ => return self.power(x, y, at),
            };
            return match result {
                Ok(s) => Ok(Value::Size(s)),
                Err(SizeError::Overflow) => self.overflow(at, op.as_str()),
                Err(SizeError::DivisionByZero) => self.division_by_zero(at),
                // A fraction of constants is a float; a symbolic one is
                // known only once the data binds its dims.
                Err(SizeError::NotExact) => match (x.as_const(), y.as_const()) {
                    (Some(p), Some(q)) => Ok(Value::Float(p as f64 / q as f64)),
                    _ => Ok(Value::Opaque),
                },
            };
        }
        let (Some(x), Some(y)) = (a.quantity(), b.quantity()) else {
            return Ok(Value::Opaque);
        };
        let q = match op {
            Add | Sub => {
                if x.dim != y.dim {
                    let message = format!(
                        "cannot {} {} and {}",
                        if op == Add { "add" } else { "subtract" },
                        a.describe(),
                        b.describe()
                    );
                    self.error(Code::E0204, at, message, "the units do not match", "both sides of `+` and `-` need the same unit: durations with durations, rates with rates");
                    return Err(());
                }
                let v = if op == Add {
                    x.value + y.value
                } else {
                    x.value - y.value
                };
                Some(Quantity {
                    value: v,
                    dim: x.dim,
                })
            }
            Mul => x.times(y),
            Div | Rem => {
                if y.value == 0.0 {
                    return self.division_by_zero(at);
                }
                if op == Div {
                    x.over(y)
                } else if x.dim == y.dim {
                    Some(Quantity {
                        value: x.value % y.value,
                        dim: x.dim,
                    })
                } else {
                    return Ok(Value::Opaque);
                }
            }
            _ => return Ok(Value::Opaque),
        };
        match q {
            Some(q) if q.value.is_finite() => Ok(from_quantity(q)),
            _ => self.overflow(at, op.as_str()),
        }
    }

    fn power(&mut self, base: &Size, exp: &Size, at: Span) -> Eval {
        let Some(n) = exp.as_const() else {
            return Ok(Value::Opaque);
        };
        if n < 0 {
            return match base.as_const() {
                Some(b) if b != 0 => Ok(Value::Float((b as f64).powi(n.clamp(-1024, 0) as i32))),
                Some(_) => self.division_by_zero(at),
                None => Ok(Value::Opaque),
            };
        }
        let mut result = Size::constant(1);
        // Beyond 64 squarings any base other than 0 and +-1 has overflowed.
        for _ in 0..n.min(64) {
            result = match result.mul(base) {
                Ok(r) => r,
                Err(_) => return self.overflow(at, "**"),
            };
        }
        if n > 64 && base.as_const().is_none_or(|b| b.abs() > 1) {
            return self.overflow(at, "**");
        }
        Ok(Value::Size(result))
    }

    fn division_by_zero(&mut self, at: Span) -> Eval {
        self.error(
            Code::E0202,
            at,
            "division by zero".to_string(),
            "the divisor is zero",
            "check the dims the divisor is made of",
        );
        Err(())
    }
}

/// A literal's value: a whole number is a size, a fraction a float, a
/// number with a unit a quantity.
pub fn number(n: &Number) -> Value {
    match n.unit {
        Some(u) => from_quantity_unit(n.value, u),
        // The parser has checked that whole numbers fit in 64 bits.
        None if n.is_int => match n.text.replace('_', "").parse::<i64>() {
            Ok(v) => Value::Size(Size::constant(v)),
            Err(_) => Value::Float(n.value),
        },
        None => Value::Float(n.value),
    }
}

fn from_quantity_unit(value: f64, unit: Unit) -> Value {
    Value::Quantity(super::units::quantity(value, unit))
}
