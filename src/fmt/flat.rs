//! One-line renderings of expressions and types.
//!
//! The printer first renders a node flat and keeps that form when it fits
//! the line; only lists that do not fit are broken over lines. Because the
//! AST keeps the parentheses that were written (`ExprKind::Paren`) and
//! binary trees come from precedence parsing, printing an expression never
//! needs to add parentheses to preserve its meaning.

use crate::syntax::ast::*;

pub fn expr(e: &Expr) -> String {
    let mut s = String::new();
    write_expr(&mut s, e);
    s
}

fn write_expr(s: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Number(n) => s.push_str(&number(n)),
        ExprKind::Str(v) => s.push_str(&string(v)),
        ExprKind::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
        ExprKind::Path(p) => s.push_str(&path(p)),
        ExprKind::Paren(x) => {
            s.push('(');
            write_expr(s, x);
            s.push(')');
        }
        ExprKind::Tuple(xs) => {
            s.push('(');
            join(s, xs, write_expr);
            if xs.len() == 1 {
                s.push(',');
            }
            s.push(')');
        }
        ExprKind::List(xs) => {
            s.push('[');
            join(s, xs, write_expr);
            s.push(']');
        }
        ExprKind::Unary { op, operand } => {
            s.push_str(op.as_str());
            write_expr(s, operand);
        }
        ExprKind::Binary { op, lhs, rhs } => {
            write_expr(s, lhs);
            s.push(' ');
            s.push_str(op.as_str());
            s.push(' ');
            write_expr(s, rhs);
        }
        ExprKind::Call { callee, args } => {
            write_expr(s, callee);
            s.push('(');
            join(s, args, |s, a| s.push_str(&arg(a)));
            s.push(')');
        }
        ExprKind::Index { base, items } => {
            write_expr(s, base);
            s.push('[');
            join(s, items, |s, i| s.push_str(&index_item(i)));
            s.push(']');
        }
        ExprKind::Field { base, name } => {
            write_expr(s, base);
            s.push('.');
            s.push_str(&name.name);
        }
        ExprKind::If { cond, then, els } => {
            s.push_str("if ");
            write_expr(s, cond);
            s.push_str(" { ");
            write_expr(s, then);
            s.push_str(" } else ");
            if matches!(els.kind, ExprKind::If { .. }) {
                write_expr(s, els);
            } else {
                s.push_str("{ ");
                write_expr(s, els);
                s.push_str(" }");
            }
        }
    }
}

fn join<T>(s: &mut String, xs: &[T], mut f: impl FnMut(&mut String, &T)) {
    for (i, x) in xs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        f(s, x);
    }
}

pub fn arg(a: &Arg) -> String {
    match &a.name {
        Some(n) => format!("{}: {}", n.name, expr(&a.value)),
        None => expr(&a.value),
    }
}

pub fn index_item(i: &IndexItem) -> String {
    let body = match &i.kind {
        IndexKind::Expr(x) => expr(x),
        IndexKind::Range { start, end } => format!(
            "{}..{}",
            start.as_ref().map(expr).unwrap_or_default(),
            end.as_ref().map(expr).unwrap_or_default()
        ),
        IndexKind::Arrow { from, to } => format!("{} -> {}", expr(from), expr(to)),
    };
    match &i.dim {
        Some(d) => format!("{}: {body}", d.name),
        None => body,
    }
}

pub fn number(n: &Number) -> String {
    match n.unit {
        Some(u) => format!("{}{}", n.text, u.as_str()),
        None => n.text.clone(),
    }
}

pub fn string(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

pub fn path(p: &[Ident]) -> String {
    p.iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join("::")
}

pub fn ty(t: &TypeExpr) -> String {
    match &t.kind {
        TypeKind::Shape(sh) => shape(sh),
        TypeKind::Named {
            name,
            args,
            shape: sh,
        } => {
            let mut s = name.name.clone();
            if !args.is_empty() {
                s.push('<');
                s.push_str(&args.iter().map(ty).collect::<Vec<_>>().join(", "));
                s.push('>');
            }
            if let Some(sh) = sh {
                s.push_str(&shape(sh));
            }
            s
        }
    }
}

pub fn shape(sh: &Shape) -> String {
    let dims: Vec<String> = sh
        .dims
        .iter()
        .map(|d| match &d.kind {
            ShapeDimKind::Ellipsis => "...".to_string(),
            ShapeDimKind::Dim { size, rate: None } => expr(size),
            ShapeDimKind::Dim {
                size,
                rate: Some(r),
            } => format!("{} @ {}", expr(size), expr(r)),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

pub fn param(p: &Param) -> String {
    let mut s = p.name.name.clone();
    if let Some(t) = &p.ty {
        s.push_str(": ");
        s.push_str(&ty(t));
    }
    if let Some(d) = &p.default {
        s.push_str(" = ");
        s.push_str(&expr(d));
    }
    s
}

pub fn use_name(n: &UseName) -> String {
    match &n.alias {
        Some(a) => format!("{} as {}", n.name.name, a.name),
        None => n.name.name.clone(),
    }
}
