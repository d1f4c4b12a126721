//! A modality's `| stage` compiled into the IR's [`Transform`]: the
//! data-pipeline functions with their arguments evaluated, and elementwise
//! expressions in `x` as stack programs.
//!
//! Every sub-expression that does not mention `x` is folded to a constant
//! (named dims and lets included), so a program holds only the work that
//! depends on the data.

use super::Problem;
use crate::ir::transform::{BinOp, Fn1, Ins, Program, Transform};
use crate::ir::types::Value;
use crate::resolve::Program as Resolved;
use crate::syntax::ast::{Arg, BinaryOp, Expr, ExprKind, UnaryOp};

/// A number an argument evaluates to (seconds for durations, hertz for
/// rates).
fn number(program: &Resolved, e: &Expr) -> Option<f64> {
    match super::super::constant(program, e) {
        Value::Size(s) => s.as_const().map(|n| n as f64),
        Value::Float(f) => Some(f),
        Value::Quantity(q) => Some(q.value),
        _ => None,
    }
}

/// Compiles one `| stage` of a modality.
pub(super) fn compile(program: &Resolved, e: &Expr) -> Result<Transform, Problem> {
    let ExprKind::Call { callee, args } = &e.kind else {
        return elementwise(program, e).map(Transform::Elementwise);
    };
    let name = match &callee.kind {
        ExprKind::Path(p) if p.len() == 1 => p[0].name.as_str(),
        _ => "",
    };
    let arg = |key: &str, position: usize| -> Option<f64> {
        let named = args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == key));
        let positional = args.iter().filter(|a| a.name.is_none()).nth(position);
        named.or(positional).and_then(|a| number(program, &a.value))
    };
    let need = |key: &str, position: usize| {
        arg(key, position)
            .filter(|v| v.is_finite())
            .ok_or_else(|| Problem::new(format!("`{name}` needs a number for `{key}`")).at(e.span))
    };
    let positive = |key: &str, position: usize| {
        need(key, position).and_then(|v| {
            if v > 0.0 {
                Ok(v)
            } else {
                Err(Problem::new(format!("`{name}` needs a positive `{key}`")).at(e.span))
            }
        })
    };
    Ok(match name {
        "resample" => Transform::Resample {
            rate: positive("rate", 0)?,
        },
        "bin" => Transform::Bin {
            width: positive("width", 0)?,
        },
        "zscore" => Transform::ZScore,
        "standardize" => Transform::Standardize {
            mean: need("mean", 0)? as f32,
            std: positive("std", 1)? as f32,
        },
        "clip" => Transform::Clip {
            low: need("low", 0)? as f32,
            high: need("high", 1)? as f32,
        },
        "smooth" => Transform::Smooth {
            width: positive("width", 0)?,
        },
        "dff" => Transform::Dff {
            baseline: positive("baseline", 0)?,
        },
        _ => return elementwise(program, e).map(Transform::Elementwise),
    })
}

/// An expression in `x` as a stack program.
fn elementwise(program: &Resolved, e: &Expr) -> Result<Program, Problem> {
    let mut code = Vec::new();
    emit(program, e, &mut code)?;
    Program::new(code).map_err(|err| Problem::new(err.0).at(e.span))
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

/// A constant's value as a number (a boolean is 1 or 0).
fn constant(v: &Value) -> Option<f64> {
    match v {
        Value::Size(s) => s.as_const().map(|n| n as f64),
        Value::Float(f) => Some(*f),
        Value::Quantity(q) => Some(q.value),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn bin_op(op: BinaryOp) -> BinOp {
    match op {
        BinaryOp::Add => BinOp::Add,
        BinaryOp::Sub => BinOp::Sub,
        BinaryOp::Mul => BinOp::Mul,
        BinaryOp::Div => BinOp::Div,
        BinaryOp::Rem => BinOp::Rem,
        BinaryOp::Pow => BinOp::Pow,
        BinaryOp::Eq => BinOp::Eq,
        BinaryOp::Ne => BinOp::Ne,
        BinaryOp::Lt => BinOp::Lt,
        BinaryOp::Le => BinOp::Le,
        BinaryOp::Gt => BinOp::Gt,
        BinaryOp::Ge => BinOp::Ge,
        BinaryOp::And => BinOp::And,
        BinaryOp::Or => BinOp::Or,
    }
}

fn emit(program: &Resolved, e: &Expr, code: &mut Vec<Ins>) -> Result<(), Problem> {
    if !mentions_x(e) {
        let v = match &e.kind {
            ExprKind::Number(n) => Some(n.value),
            _ => constant(&super::super::constant(program, e)),
        };
        return match v {
            Some(v) => {
                code.push(Ins::Const(v as f32));
                Ok(())
            }
            None => Err(Problem::new(
                "a part of the transform is not a number known before the data",
            )
            .at(e.span)),
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
            code.push(Ins::Bin(bin_op(*op)));
        }
        ExprKind::If { cond, then, els } => {
            emit(program, cond, code)?;
            emit(program, then, code)?;
            emit(program, els, code)?;
            code.push(Ins::Select);
        }
        ExprKind::Call { callee, args } => call(program, callee, args, code)
            .map_err(|p| p.at(e.span))?,
        _ => {
            return Err(Problem::new(
                "only arithmetic, comparisons, `if` and elementwise functions of `x` can transform each element",
            )
            .at(e.span))
        }
    }
    Ok(())
}

fn call(
    program: &Resolved,
    callee: &Expr,
    args: &[Arg],
    code: &mut Vec<Ins>,
) -> Result<(), Problem> {
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
            return Err(Problem::new(format!(
                "`{name}` is not an elementwise function of `x`"
            )))
        }
    }
    Ok(())
}
