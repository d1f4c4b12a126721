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

use crate::ir::types::Value;
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
        Elementwise::from_code(code)
    }

    fn from_code(code: Vec<Ins>) -> Result<Elementwise, CompileError> {
        // The block evaluator indexes its registers by stack depth, so the
        // program must never pop what it has not pushed and must leave one
        // value: checked once here rather than on every element.
        let mut depth: usize = 0;
        let mut max = 0;
        for ins in &code {
            let (pops, pushes) = ins.arity();
            depth = depth
                .checked_sub(pops)
                .ok_or_else(|| CompileError(format!("the stack program underflows at {ins:?}")))?
                + pushes;
            max = max.max(depth);
        }
        if depth != 1 {
            return Err(CompileError(format!(
                "the stack program leaves {depth} values, not 1"
            )));
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
        // Blocks of elements through the program, one instruction at a time
        // over the whole block: the dispatch is paid per block, and each
        // instruction's loop is plain arithmetic the compiler vectorises.
        // Every element sees the same f32 operations in the same order as
        // in `run`, so the results are the same bits (tested).
        let mut regs = vec![[0.0f32; BLOCK]; self.depth];
        for chunk in data.chunks_mut(BLOCK) {
            let n = chunk.len();
            let mut sp = 0;
            for ins in &self.code {
                block(*ins, &mut regs, &mut sp, chunk, n);
            }
            chunk.copy_from_slice(&regs[0][..n]);
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

/// Elements per block of [`Elementwise::apply`]: 1 KiB per register.
const BLOCK: usize = 256;

impl Ins {
    /// How many values the instruction pops and pushes.
    fn arity(self) -> (usize, usize) {
        match self {
            Ins::Const(_) | Ins::X => (0, 1),
            Ins::Neg | Ins::Not | Ins::Fn1(_) => (1, 1),
            Ins::Bin(_) | Ins::Max | Ins::Min => (2, 1),
            Ins::Select => (3, 1),
        }
    }
}

/// Runs one instruction over the first `n` elements of the registers;
/// `sp` is the number of registers in use. `compile` checked that the
/// program never pops an empty stack and that `regs` holds its depth.
fn block(ins: Ins, regs: &mut [[f32; BLOCK]], sp: &mut usize, x: &[f32], n: usize) {
    let top = *sp;
    match ins {
        Ins::Const(c) => regs[top][..n].fill(c),
        Ins::X => regs[top][..n].copy_from_slice(x),
        Ins::Neg => map1(&mut regs[top - 1][..n], |v| -v),
        Ins::Not => map1(&mut regs[top - 1][..n], |v| flag(!truth(v))),
        Ins::Fn1(f) => match f {
            Fn1::Exp => map1(&mut regs[top - 1][..n], f32::exp),
            Fn1::Log => map1(&mut regs[top - 1][..n], f32::ln),
            Fn1::Abs => map1(&mut regs[top - 1][..n], f32::abs),
            Fn1::Square => map1(&mut regs[top - 1][..n], |v| v * v),
            Fn1::Relu => map1(&mut regs[top - 1][..n], |v| v.max(0.0)),
            other => map1(&mut regs[top - 1][..n], |v| other.apply(v)),
        },
        Ins::Bin(op) => {
            let (lo, hi) = regs.split_at_mut(top - 1);
            let (a, b) = (&mut lo[top - 2][..n], &hi[0][..n]);
            match op {
                BinaryOp::Add => map2(a, b, |p, q| p + q),
                BinaryOp::Sub => map2(a, b, |p, q| p - q),
                BinaryOp::Mul => map2(a, b, |p, q| p * q),
                BinaryOp::Div => map2(a, b, |p, q| p / q),
                other => map2(a, b, |p, q| binary(other, p, q)),
            }
        }
        Ins::Max | Ins::Min => {
            let (lo, hi) = regs.split_at_mut(top - 1);
            let (a, b) = (&mut lo[top - 2][..n], &hi[0][..n]);
            if ins == Ins::Max {
                map2(a, b, f32::max);
            } else {
                map2(a, b, f32::min);
            }
        }
        Ins::Select => {
            let (lo, hi) = regs.split_at_mut(top - 2);
            let (then, els) = hi.split_at(1);
            let cond = &mut lo[top - 3][..n];
            for ((c, t), e) in cond.iter_mut().zip(&then[0][..n]).zip(&els[0][..n]) {
                *c = if truth(*c) { *t } else { *e };
            }
        }
    }
    let (pops, pushes) = ins.arity();
    *sp = top - pops + pushes;
}

fn map1(a: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in a {
        *v = f(*v);
    }
}

fn map2(a: &mut [f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (p, &q) in a.iter_mut().zip(b) {
        *p = f(*p, q);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of instruction, in programs of depth 1 to 3.
    fn programs() -> Vec<Vec<Ins>> {
        use BinaryOp::*;
        let mut out = Vec::new();
        for op in [
            Add, Sub, Mul, Div, Rem, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or,
        ] {
            out.push(vec![Ins::X, Ins::Const(0.75), Ins::Bin(op)]);
            out.push(vec![Ins::Const(-2.0), Ins::X, Ins::Bin(op)]);
        }
        for f in [
            Fn1::Exp,
            Fn1::Log,
            Fn1::Log1p,
            Fn1::Sqrt,
            Fn1::Rsqrt,
            Fn1::Abs,
            Fn1::Square,
            Fn1::Tanh,
            Fn1::Sigmoid,
            Fn1::Relu,
        ] {
            out.push(vec![Ins::X, Ins::Fn1(f)]);
        }
        out.push(vec![Ins::X, Ins::Neg]);
        out.push(vec![Ins::X, Ins::Not]);
        out.push(vec![Ins::X, Ins::Const(0.0), Ins::Max]);
        out.push(vec![Ins::X, Ins::Const(0.0), Ins::Min]);
        // (x - 0.5) / 0.25, and if x > 1 { log1p(x) } else { -x * x }.
        out.push(vec![
            Ins::X,
            Ins::Const(0.5),
            Ins::Bin(Sub),
            Ins::Const(0.25),
            Ins::Bin(Div),
        ]);
        out.push(vec![
            Ins::X,
            Ins::Const(1.0),
            Ins::Bin(Gt),
            Ins::X,
            Ins::Fn1(Fn1::Log1p),
            Ins::X,
            Ins::Neg,
            Ins::X,
            Ins::Bin(Mul),
            Ins::Select,
        ]);
        out
    }

    #[test]
    fn blocks_give_the_same_bits_as_the_scalar_machine() {
        // 1,000 values (not a multiple of the block), with the awkward ones.
        let mut data: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) / 37.0).collect();
        data[3] = f32::NAN;
        data[300] = f32::INFINITY;
        data[301] = f32::NEG_INFINITY;
        data[700] = 0.0;
        data[701] = -0.0;
        for code in programs() {
            let e = Elementwise::from_code(code.clone()).unwrap();
            let mut got = data.clone();
            e.apply(&mut got);
            for (i, (&g, &x)) in got.iter().zip(&data).enumerate() {
                let want = e.eval(x);
                assert_eq!(
                    g.to_bits(),
                    want.to_bits(),
                    "{code:?} at {i} (x = {x}): {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn malformed_programs_are_refused() {
        assert!(Elementwise::from_code(vec![Ins::X, Ins::Bin(BinaryOp::Add)]).is_err());
        assert!(Elementwise::from_code(vec![Ins::X, Ins::X]).is_err());
        assert!(Elementwise::from_code(vec![]).is_err());
    }
}
