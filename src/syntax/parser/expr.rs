//! Lowering expressions: operator chains folded by precedence with explicit
//! stacks, postfix chains, arguments, index items, literals, and the depth
//! bound that keeps every later recursive pass safe.

use pest::iterators::Pair;

use super::pairs::{children, ident, missing_expr, span, unescape};
use super::{Lower, Rule, MAX_EXPR_DEPTH};
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::ast::*;

impl Lower {
    pub(super) fn expr_opt(&mut self, pair: Option<Pair<Rule>>) -> Expr {
        match pair {
            Some(p) => self.expr(p),
            None => missing_expr(),
        }
    }

    /// Folds `unary (op unary)*` by precedence with explicit stacks, so a
    /// long chain costs no recursion; rejects trees deeper than
    /// [`MAX_EXPR_DEPTH`].
    pub(super) fn expr(&mut self, pair: Pair<Rule>) -> Expr {
        let sp = span(&pair);
        let mut operands: Vec<(Expr, usize)> = Vec::new();
        let mut ops: Vec<BinaryOp> = Vec::new();
        for p in children(pair) {
            match p.as_rule() {
                Rule::unary => {
                    let at = span(&p);
                    let e = self.unary(p);
                    let d = depth_capped(&e, MAX_EXPR_DEPTH);
                    if d > MAX_EXPR_DEPTH {
                        self.too_deep(at);
                        return missing_expr();
                    }
                    operands.push((e, d));
                }
                rule => {
                    let Some(op) = binary_op(rule) else { continue };
                    while let Some(&top) = ops.last() {
                        let reduce = top.precedence() > op.precedence()
                            || (top.precedence() == op.precedence() && !op.right_assoc());
                        if !reduce {
                            break;
                        }
                        ops.pop();
                        if !self.reduce(&mut operands, top, sp) {
                            return missing_expr();
                        }
                    }
                    ops.push(op);
                }
            }
        }
        while let Some(op) = ops.pop() {
            if !self.reduce(&mut operands, op, sp) {
                return missing_expr();
            }
        }
        operands.pop().map(|(e, _)| e).unwrap_or_else(missing_expr)
    }

    fn reduce(&mut self, operands: &mut Vec<(Expr, usize)>, op: BinaryOp, whole: Span) -> bool {
        let (Some((rhs, rd)), Some((lhs, ld))) = (operands.pop(), operands.pop()) else {
            return false;
        };
        let depth = 1 + ld.max(rd);
        if depth > MAX_EXPR_DEPTH {
            self.too_deep(whole);
            return false;
        }
        let sp = lhs.span.to(rhs.span);
        operands.push((
            Expr {
                kind: ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span: sp,
            },
            depth,
        ));
        true
    }

    fn too_deep(&mut self, at: Span) {
        self.diags.push(
            Diagnostic::new(
                Code::E0004,
                format!("expression is nested more than {MAX_EXPR_DEPTH} levels deep"),
            )
            .primary(self.file, at, "this expression")
            .help("name intermediate results with `let` to split the expression"),
        );
    }

    fn unary(&mut self, pair: Pair<Rule>) -> Expr {
        let sp = span(&pair);
        let mut op = None;
        let mut operand = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::op_neg => op = Some(UnaryOp::Neg),
                Rule::op_not => op = Some(UnaryOp::Not),
                Rule::postfix => operand = Some(self.postfix(p)),
                _ => {}
            }
        }
        let operand = operand.unwrap_or_else(missing_expr);
        match op {
            Some(op) => Expr {
                kind: ExprKind::Unary {
                    op,
                    operand: Box::new(operand),
                },
                span: sp,
            },
            None => operand,
        }
    }

    fn postfix(&mut self, pair: Pair<Rule>) -> Expr {
        let mut it = children(pair);
        let mut e = match it.next() {
            Some(p) => self.primary(p),
            None => missing_expr(),
        };
        for (n, p) in it.enumerate() {
            // A chain such as `x.a.b.c...` builds a tree as deep as it is
            // long; stop before it becomes too deep to walk or drop.
            if n >= MAX_EXPR_DEPTH {
                self.too_deep(e.span);
                return missing_expr();
            }
            let sp = Span {
                start: e.span.start,
                end: span(&p).end,
            };
            let kind = match p.as_rule() {
                Rule::call_args => ExprKind::Call {
                    callee: Box::new(e),
                    args: children(p).map(|a| self.arg(a)).collect(),
                },
                Rule::index_args => ExprKind::Index {
                    base: Box::new(e),
                    items: children(p).map(|i| self.index_item(i)).collect(),
                },
                Rule::field => ExprKind::Field {
                    base: Box::new(e),
                    name: ident(children(p).next()),
                },
                _ => continue,
            };
            e = Expr { kind, span: sp };
        }
        e
    }

    fn arg(&mut self, pair: Pair<Rule>) -> Arg {
        let sp = span(&pair);
        let mut name = None;
        let mut value = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::key => name = Some(ident(Some(p))),
                Rule::expr => value = Some(self.expr(p)),
                _ => {}
            }
        }
        Arg {
            name,
            value: value.unwrap_or_else(missing_expr),
            span: sp,
        }
    }

    fn index_item(&mut self, pair: Pair<Rule>) -> IndexItem {
        let sp = span(&pair);
        let mut dim = None;
        let mut lead = None;
        let mut kind = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::key => dim = Some(ident(Some(p))),
                Rule::expr => lead = Some(self.expr(p)),
                Rule::range_to => {
                    kind = Some(IndexKind::Range {
                        start: None,
                        end: children(p).next().map(|e| self.expr(e)),
                    })
                }
                Rule::range_from => {
                    kind = Some(IndexKind::Range {
                        start: lead.take(),
                        end: children(p).next().map(|e| self.expr(e)),
                    })
                }
                Rule::arrow_to => {
                    kind = Some(IndexKind::Arrow {
                        from: lead.take().unwrap_or_else(missing_expr),
                        to: self.expr_opt(children(p).next()),
                    })
                }
                _ => {}
            }
        }
        let kind = kind.unwrap_or_else(|| IndexKind::Expr(lead.unwrap_or_else(missing_expr)));
        IndexItem {
            dim,
            kind,
            span: sp,
        }
    }

    fn primary(&mut self, pair: Pair<Rule>) -> Expr {
        let sp = span(&pair);
        let Some(inner) = children(pair).next() else {
            return missing_expr();
        };
        let kind = match inner.as_rule() {
            Rule::number => ExprKind::Number(self.number(inner)),
            Rule::string => ExprKind::Str(unescape(
                children(inner).next().map(|p| p.as_str()).unwrap_or(""),
            )),
            Rule::boolean => ExprKind::Bool(
                inner
                    .into_inner()
                    .next()
                    .is_some_and(|k| k.as_rule() == Rule::kw_true),
            ),
            Rule::path => ExprKind::Path(children(inner).map(|i| ident(Some(i))).collect()),
            Rule::paren => {
                let mut trailing_comma = false;
                let mut items = Vec::new();
                for p in children(inner) {
                    match p.as_rule() {
                        Rule::trailing_comma => trailing_comma = true,
                        _ => items.push(self.expr(p)),
                    }
                }
                if items.len() == 1 && !trailing_comma {
                    ExprKind::Paren(Box::new(items.remove(0)))
                } else {
                    ExprKind::Tuple(items)
                }
            }
            Rule::list => ExprKind::List(children(inner).map(|e| self.expr(e)).collect()),
            Rule::if_expr => return self.if_expr(inner),
            _ => return missing_expr(),
        };
        Expr { kind, span: sp }
    }

    fn if_expr(&mut self, pair: Pair<Rule>) -> Expr {
        let sp = span(&pair);
        let mut it = children(pair);
        let cond = self.expr_opt(it.next());
        let then = self.expr_opt(it.next());
        let els = match it.next() {
            Some(p) if p.as_rule() == Rule::if_expr => self.if_expr(p),
            other => self.expr_opt(other),
        };
        Expr {
            kind: ExprKind::If {
                cond: Box::new(cond),
                then: Box::new(then),
                els: Box::new(els),
            },
            span: sp,
        }
    }

    fn number(&mut self, pair: Pair<Rule>) -> Number {
        let sp = span(&pair);
        let mut text = String::new();
        let mut unit = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::number_value => text = p.as_str().to_string(),
                Rule::unit => unit = Unit::parse(p.as_str()),
                _ => {}
            }
        }
        let digits: String = text.chars().filter(|c| *c != '_').collect();
        let is_int = !digits.contains(['.', 'e', 'E']);
        let value = digits.parse::<f64>().unwrap_or(f64::INFINITY);
        let exact_int = !is_int || digits.parse::<i64>().is_ok();
        if !value.is_finite() || !exact_int {
            self.diags.push(
                Diagnostic::new(Code::E0007, format!("number `{text}` is out of range"))
                    .primary(self.file, sp, "too large to represent")
                    .help(if is_int {
                        "integers must fit in 64 bits (at most 9223372036854775807)"
                    } else {
                        "floating-point numbers must be finite (at most about 1.8e308)"
                    }),
            );
        }
        Number {
            text,
            value,
            is_int,
            unit,
        }
    }
}

pub(super) fn binary_op(rule: Rule) -> Option<BinaryOp> {
    Some(match rule {
        Rule::op_or => BinaryOp::Or,
        Rule::op_and => BinaryOp::And,
        Rule::op_eq => BinaryOp::Eq,
        Rule::op_ne => BinaryOp::Ne,
        Rule::op_lt => BinaryOp::Lt,
        Rule::op_le => BinaryOp::Le,
        Rule::op_gt => BinaryOp::Gt,
        Rule::op_ge => BinaryOp::Ge,
        Rule::op_add => BinaryOp::Add,
        Rule::op_sub => BinaryOp::Sub,
        Rule::op_mul => BinaryOp::Mul,
        Rule::op_div => BinaryOp::Div,
        Rule::op_rem => BinaryOp::Rem,
        Rule::op_pow => BinaryOp::Pow,
        _ => return None,
    })
}

/// The depth of an expression tree, counted no further than `cap + 1` so
/// that measuring never recurses deeper than the limit being enforced.
pub(super) fn depth_capped(e: &Expr, cap: usize) -> usize {
    if cap == 0 {
        return 1;
    }
    let below = |x: &Expr| depth_capped(x, cap - 1);
    1 + match &e.kind {
        ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Path(_) => 0,
        ExprKind::Paren(x) => below(x),
        ExprKind::Unary { operand, .. } => below(operand),
        ExprKind::Field { base, .. } => below(base),
        ExprKind::Tuple(xs) | ExprKind::List(xs) => xs.iter().map(below).max().unwrap_or(0),
        ExprKind::Binary { lhs, rhs, .. } => below(lhs).max(below(rhs)),
        ExprKind::If { cond, then, els } => below(cond).max(below(then)).max(below(els)),
        ExprKind::Call { callee, args } => args
            .iter()
            .map(|a| below(&a.value))
            .max()
            .unwrap_or(0)
            .max(below(callee)),
        ExprKind::Index { base, items } => items
            .iter()
            .map(|i| match &i.kind {
                IndexKind::Expr(x) => below(x),
                IndexKind::Range { start, end } => start
                    .as_ref()
                    .map(below)
                    .unwrap_or(0)
                    .max(end.as_ref().map(below).unwrap_or(0)),
                IndexKind::Arrow { from, to } => below(from).max(below(to)),
            })
            .max()
            .unwrap_or(0)
            .max(below(base)),
    }
}
