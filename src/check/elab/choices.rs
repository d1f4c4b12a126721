//! The values a string hyperparameter may take, read from the module that
//! declares it.
//!
//! A module chooses its structure with string hyperparameters (`norm:
//! "layer"` or `"rms"`, `mlp: "gelu"` or `"swiglu"`) and reads them only
//! by comparing them with literals. Any other string would silently take
//! the `else` branch (`norm: "rmsnorm"` builds a LayerNorm), so the values
//! a module compares a `str` parameter with, together with its default,
//! are the values it accepts: an argument that is none of them is E0217
//! at the argument. A parameter the module never compares with a literal
//! (a name, a path) accepts any string.

use super::{Elab, Res, Val};
use crate::diagnostics::Code;
use crate::ir::types::Value;
use crate::syntax::ast::{
    BinaryOp, Body, Else, Expr, ExprKind, IfStmt, ModuleItem, StmtKind, TypeKind,
};

impl Elab<'_, '_> {
    /// Checks each `str` hyperparameter of `md` just bound in the current
    /// frame against the literals the module compares it with.
    pub(super) fn check_choices(&mut self, md: &ModuleItem) -> Res<()> {
        for p in &md.hyper.params {
            let is_str = matches!(
                p.ty.as_ref().map(|t| &t.kind),
                Some(TypeKind::Named { name, shape: None, .. }) if name.name == "str"
            );
            if !is_str {
                continue;
            }
            let mut choices = Vec::new();
            compared_in_body(&md.body, &p.name.name, &mut choices);
            if choices.is_empty() {
                continue;
            }
            if let Some(Expr {
                kind: ExprKind::Str(d),
                ..
            }) = &p.default
            {
                push_unique(&mut choices, d);
            }
            let given = self
                .frame()
                .locals
                .iter()
                .rev()
                .find(|(n, _)| *n == p.name.name);
            let Some((_, Val::Const(Value::Str(s)))) = given else {
                continue;
            };
            if choices.iter().any(|c| c == s) {
                continue;
            }
            let s = s.clone();
            // The argument that set it, followed back to the user's file
            // when an enclosing module passed the user's value on
            // (`Transformer`'s `mlp: mlp`).
            let top = self.frames.len() - 1;
            let culprits = self.blame_names(&[(top, p.name.name.as_str())], None);
            let Some(setter) = self
                .frame()
                .setters
                .iter()
                .rev()
                .find(|x| x.name == p.name.name)
            else {
                continue;
            };
            let loc = setter.loc;
            let listed = choices
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>();
            let near = choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(&s))
                .map(String::as_str)
                .or_else(|| crate::resolve::closest(&s, choices.iter().map(String::as_str)));
            let help = match near {
                Some(c) => format!(
                    "did you mean \"{c}\"? `{}` takes {}",
                    p.name.name,
                    or_list(&listed)
                ),
                None => format!("`{}` takes {}", p.name.name, or_list(&listed)),
            };
            let message = format!(
                "`{}` of `{}` must be {}, but this is \"{s}\"",
                p.name.name,
                md.name.name,
                or_list(&listed)
            );
            let label = "not one of the values the module compares it with";
            if culprits.is_empty() {
                self.report_with(Code::E0217, loc, message, label, &help, Vec::new());
            } else {
                self.report_blaming(Code::E0217, loc, message, label, &help, culprits);
            }
            return Err(());
        }
        Ok(())
    }
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("one of {} or {last}", init.join(", ")),
    }
}

fn push_unique(out: &mut Vec<String>, s: &str) {
    if !out.iter().any(|c| c == s) {
        out.push(s.to_string());
    }
}

fn compared_in_body(body: &Body, name: &str, out: &mut Vec<String>) {
    for s in &body.stmts {
        match &s.kind {
            StmtKind::Let { value, .. }
            | StmtKind::Predict { value, .. }
            | StmtKind::Return(value) => compared_in(value, name, out),
            StmtKind::Param { init, .. } => {
                if let Some(e) = init {
                    compared_in(e, name, out);
                }
            }
            StmtKind::If(i) => compared_in_if(i, name, out),
        }
    }
}

fn compared_in_if(i: &IfStmt, name: &str, out: &mut Vec<String>) {
    compared_in(&i.cond, name, out);
    compared_in_body(&i.then, name, out);
    match &i.els {
        Some(Else::If(e)) => compared_in_if(e, name, out),
        Some(Else::Body(b)) => compared_in_body(b, name, out),
        None => {}
    }
}

/// Collects the literals `name` is compared with (`name == "rms"`,
/// `"rms" != name`) anywhere in `e`.
fn compared_in(e: &Expr, name: &str, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Binary { op, lhs, rhs } => {
            if matches!(op, BinaryOp::Eq | BinaryOp::Ne) {
                let is_name = |x: &Expr| matches!(&x.kind, ExprKind::Path(p) if p.len() == 1 && p[0].name == name);
                let literal = |x: &Expr| match &x.kind {
                    ExprKind::Str(s) => Some(s.clone()),
                    _ => None,
                };
                if let (true, Some(s)) = (is_name(lhs), literal(rhs)) {
                    push_unique(out, &s);
                }
                if let (true, Some(s)) = (is_name(rhs), literal(lhs)) {
                    push_unique(out, &s);
                }
            }
            compared_in(lhs, name, out);
            compared_in(rhs, name, out);
        }
        ExprKind::Paren(x) => compared_in(x, name, out),
        ExprKind::Unary { operand, .. } => compared_in(operand, name, out),
        ExprKind::Tuple(xs) | ExprKind::List(xs) => {
            xs.iter().for_each(|x| compared_in(x, name, out))
        }
        ExprKind::Call { callee, args } => {
            compared_in(callee, name, out);
            args.iter().for_each(|a| compared_in(&a.value, name, out));
        }
        ExprKind::Index { base, .. } | ExprKind::Field { base, .. } => compared_in(base, name, out),
        ExprKind::If { cond, then, els } => {
            compared_in(cond, name, out);
            compared_in(then, name, out);
            compared_in(els, name, out);
        }
        ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Path(_) => {}
    }
}
