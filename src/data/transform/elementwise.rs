//! Elementwise transform stages: an expression in `x` compiled to a small
//! stack program and run over every element of a signal.
//!
//! `(x - 0.5) / 0.25` and `log1p(max(x, 0))` are the typical stages. The
//! compiler folds every sub-expression that does not mention `x` to a
//! constant (named dims and lets included, through `check::constant`), so
//! the loop does only the work that depends on the data. This interpreter
//! is the reference semantics; a later release compiles the same programs
//! to native loops with cranelift behind the same [`super::Stage`] trait.

use std::fmt;

use crate::check::Value;
use crate::resolve::Program;
use crate::syntax::ast::{BinaryOp, Expr, ExprKind, UnaryOp};

/// One instruction of the stack machine.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ins {
    Const(f32),
    X,
    Neg,
    Not,
    Bin(BinaryOp),
    Fn1(Fn1),
    Max,
    Min,
    /// Pops `else`, `then`, `cond`; pushes the chosen one.
    Select,
}

/// Functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fn1 {
    Exp,
    Log,
    Log1p,
    Sqrt,
    Rsqrt,
    Abs,
    Square,
    Tanh,
    Sigmoid,
    Relu,
}

impl Fn1 {
    fn parse(name: &str) -> Option<Fn1> {
        Some(match name {
            "exp" => Fn1::Exp,
            "log" => Fn1::Log,
            "log1p" => Fn1::Log1p,
            "sqrt" => Fn1::Sqrt,
            "rsqrt" => Fn1::Rsqrt,
            "abs" => Fn1::Abs,
            "square" => Fn1::Square,
            "tanh" => Fn1::Tanh,
            "sigmoid" => Fn1::Sigmoid,
            "relu" => Fn1::Relu,
            _ => return None,
        })
    }

    fn apply(self, v: f32) -> f32 {
        match self {
            Fn1::Exp => v.exp(),
            Fn1::Log => v.ln(),
            Fn1::Log1p => v.ln_1p(),
            Fn1::Sqrt => v.sqrt(),
            Fn1::Rsqrt => 1.0 / v.sqrt(),
            Fn1::Abs => v.abs(),
            Fn1::Square => v * v,
            Fn1::Tanh => v.tanh(),
            Fn1::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Fn1::Relu => v.max(0.0),
        }
    }
}

/// Why an expression is not an elementwise transform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError(pub String);

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A compiled elementwise expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Elementwise {
    code: Vec<Ins>,
    /// The deepest the stack gets, to size it once.
    depth: usize,
}

impl Elementwise {
    /// Compiles `e`; names other than `x` are evaluated as constants of
    /// `program`.
    pub fn compile(program: &Program, e: &Expr) -> Result<Elementwise, CompileError> {
        let mut code = Vec::new();
        emit(program, e, &mut code)?;
        let mut depth: usize = 0;
        let mut max = 0;
        for ins in &code {
            depth = match ins {
                Ins::Const(_) | Ins::X => depth + 1,
                Ins::Bin(_) | Ins::Max | Ins::Min => depth.saturating_sub(1),
                Ins::Select => depth.saturating_sub(2),
                Ins::Neg | Ins::Not | Ins::Fn1(_) => depth,
            };
            max = max.max(depth);
        }
        Ok(Elementwise { code, depth: max })
    }

    /// Applies the expression to every element, in place.
    pub fn apply(&self, data: &mut [f32]) {
        // A constant expression fills; `x` alone is the identity.
        match self.code.as_slice() {
            [Ins::X] => return,
            [Ins::Const(c)] => {
                data.fill(*c);
                return;
            }
            _ => {}
        }
        let mut stack: Vec<f32> = Vec::with_capacity(self.depth);
        for v in data.iter_mut() {
            stack.clear();
            *v = run(&self.code, *v, &mut stack);
        }
    }

    /// The value at one element (for tests and constant folding).
    pub fn eval(&self, x: f32) -> f32 {
        let mut stack = Vec::with_capacity(self.depth);
        run(&self.code, x, &mut stack)
    }
}

fn truth(v: f32) -> bool {
    v != 0.0 && !v.is_nan()
}

fn flag(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn run(code: &[Ins], x: f32, stack: &mut Vec<f32>) -> f32 {
    for ins in code {
        match *ins {
            Ins::Const(c) => stack.push(c),
            Ins::X => stack.push(x),
            Ins::Neg => {
                if let Some(v) = stack.last_mut() {
                    *v = -*v;
                }
            }
            Ins::Not => {
                if let Some(v) = stack.last_mut() {
                    *v = flag(!truth(*v));
                }
            }
            Ins::Fn1(f) => {
                if let Some(v) = stack.last_mut() {
                    *v = f.apply(*v);
                }
            }
            Ins::Bin(_) | Ins::Max | Ins::Min => {
                let b = stack.pop().unwrap_or(f32::NAN);
                let a = stack.pop().unwrap_or(f32::NAN);
                stack.push(match *ins {
                    Ins::Max => a.max(b),
                    Ins::Min => a.min(b),
                    Ins::Bin(op) => binary(op, a, b),
                    _ => f32::NAN,
                });
            }
            Ins::Select => {
                let els = stack.pop().unwrap_or(f32::NAN);
                let then = stack.pop().unwrap_or(f32::NAN);
                let cond = stack.pop().unwrap_or(f32::NAN);
                stack.push(if truth(cond) { then } else { els });
            }
        }
    }
    stack.pop().unwrap_or(f32::NAN)
}

fn binary(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Rem => a % b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Eq => flag(a == b),
        BinaryOp::Ne => flag(a != b),
        BinaryOp::Lt => flag(a < b),
        BinaryOp::Le => flag(a <= b),
        BinaryOp::Gt => flag(a > b),
        BinaryOp::Ge => flag(a >= b),
        BinaryOp::And => flag(truth(a) && truth(b)),
        BinaryOp::Or => flag(truth(a) || truth(b)),
    }
}

/// Whether `e` mentions the element `x`.
fn mentions_x(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Path(p) => p.len() == 1 && p[0].name == "x",
        ExprKind::Paren(inner) => mentions_x(inner),
        ExprKind::Unary { operand, .. } => mentions_x(operand),
        ExprKind::Binary { lhs, rhs, .. } => mentions_x(lhs) || mentions_x(rhs),
        ExprKind::Call { args, .. } => args.iter().any(|a| mentions_x(&a.value)),
        ExprKind::If { cond, then, els } => mentions_x(cond) || mentions_x(then) || mentions_x(els),
        ExprKind::Tuple(items) | ExprKind::List(items) => items.iter().any(mentions_x),
        ExprKind::Index { base, .. } | ExprKind::Field { base, .. } => mentions_x(base),
        _ => false,
    }
}

/// A constant's value as a number.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Size(s) => s.as_const().map(|n| n as f64),
        Value::Float(f) => Some(*f),
        Value::Quantity(q) => Some(q.value),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn emit(program: &Program, e: &Expr, code: &mut Vec<Ins>) -> Result<(), CompileError> {
    if !mentions_x(e) {
        let v = match &e.kind {
            ExprKind::Number(n) => Some(n.value),
            _ => number(&crate::check::constant(program, e)),
        };
        return match v {
            Some(v) => {
                code.push(Ins::Const(v as f32));
                Ok(())
            }
            None => Err(CompileError(
                "a part of the transform is not a number known before the data".to_string(),
            )),
        };
    }
    match &e.kind {
        ExprKind::Path(_) => code.push(Ins::X),
        ExprKind::Paren(inner) => emit(program, inner, code)?,
        ExprKind::Unary { op, operand } => {
            emit(program, operand, code)?;
            code.push(match op {
                UnaryOp::Neg => Ins::Neg,
                UnaryOp::Not => Ins::Not,
            });
        }
        ExprKind::Binary { op, lhs, rhs } => {
            emit(program, lhs, code)?;
            emit(program, rhs, code)?;
            code.push(Ins::Bin(*op));
        }
        ExprKind::If { cond, then, els } => {
            emit(program, cond, code)?;
            emit(program, then, code)?;
            emit(program, els, code)?;
            code.push(Ins::Select);
        }
        ExprKind::Call { callee, args } => call(program, callee, args, code)?,
        _ => {
            return Err(CompileError(
                "only arithmetic, comparisons, `if` and elementwise functions of `x` can transform each element".to_string(),
            ))
        }
    }
    Ok(())
}

fn call(
    program: &Program,
    callee: &Expr,
    args: &[crate::syntax::ast::Arg],
    code: &mut Vec<Ins>,
) -> Result<(), CompileError> {
    let name = match &callee.kind {
        ExprKind::Path(p) => p.last().map(|i| i.name.as_str()).unwrap_or(""),
        _ => "",
    };
    let named = |key: &str| {
        args.iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
    };
    let positional: Vec<&Expr> = args
        .iter()
        .filter(|a| a.name.is_none())
        .map(|a| &a.value)
        .collect();
    match (name, positional.as_slice()) {
        (f, [a]) if Fn1::parse(f).is_some() => {
            emit(program, a, code)?;
            if let Some(f) = Fn1::parse(f) {
                code.push(Ins::Fn1(f));
            }
        }
        ("max" | "min", [a, b]) => {
            emit(program, a, code)?;
            emit(program, b, code)?;
            code.push(if name == "max" { Ins::Max } else { Ins::Min });
        }
        ("clamp", [a]) => {
            emit(program, a, code)?;
            if let Some(lo) = named("min") {
                emit(program, &lo.value, code)?;
                code.push(Ins::Max);
            }
            if let Some(hi) = named("max") {
                emit(program, &hi.value, code)?;
                code.push(Ins::Min);
            }
        }
        ("where", [c, a, b]) => {
            emit(program, c, code)?;
            emit(program, a, code)?;
            emit(program, b, code)?;
            code.push(Ins::Select);
        }
        _ => {
            return Err(CompileError(format!(
                "`{name}` is not an elementwise function of `x`"
            )))
        }
    }
    Ok(())
}
