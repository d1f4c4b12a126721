//! The layout of each construct: items, signatures, statements, settings
//! blocks, expressions and lists, built on the line and comment machinery of
//! the parent module.

use super::super::{flat, WIDTH};
use super::Printer;
use crate::base::Span;
use crate::syntax::ast::*;

impl Printer<'_> {
    pub(super) fn item(&mut self, item: &Item) {
        self.docs(&item.docs);
        self.begin_line(item.span.start as usize);
        match &item.kind {
            ItemKind::Use(u) => self.use_item(u, item.span),
            ItemKind::Dim(d) => {
                self.write(&format!("dim {}", d.name.name));
                if let Some(v) = &d.value {
                    self.write(" = ");
                    self.expr(v);
                }
                if d.per_session.is_some() {
                    self.write(" per session");
                }
            }
            ItemKind::Let(l) => self.binding("let", &l.name, l.ty.as_ref(), &l.value),
            ItemKind::Data(d) => {
                self.write(&format!("data {} = ", d.name.name));
                self.expr(&d.source);
                if let Some(c) = &d.config {
                    self.config(c, false);
                }
            }
            ItemKind::Modality(m) => self.modality(m),
            ItemKind::Tokenizer(t) => {
                self.write(&format!("tokenizer {} = ", t.name.name));
                self.expr(&t.value);
            }
            ItemKind::Fn(f) => {
                self.write(&format!("fn {}", f.name.name));
                self.param_list(&f.params, tail(f.ret.as_ref()));
                self.ret(f.ret.as_ref());
                self.body(&f.body);
            }
            ItemKind::Module(m) => {
                self.write(&format!("module {}", m.name.name));
                self.param_list(&m.hyper, 1);
                self.param_list(&m.inputs, tail(m.ret.as_ref()));
                self.ret(m.ret.as_ref());
                self.body(&m.body);
            }
            ItemKind::Model(m) => {
                self.write(&format!("model {}", m.name.name));
                if let Some(p) = &m.params {
                    self.param_list(p, 2);
                }
                self.body(&m.body);
            }
            ItemKind::Loss(o) => self.objective("loss", o),
            ItemKind::Metric(o) => self.objective("metric", o),
            ItemKind::Train(c) => {
                self.write("train");
                self.config(c, true);
            }
            ItemKind::Parallel(c) => {
                self.write("parallel");
                self.config(c, true);
            }
        }
        self.end_line(item.span.end as usize);
    }

    fn use_item(&mut self, u: &UseItem, span: Span) {
        self.write(&format!("use {}", flat::path(&u.path)));
        match &u.imports {
            UseImports::Single { alias } => {
                if let Some(a) = alias {
                    self.write(&format!(" as {}", a.name));
                }
            }
            UseImports::Group(names) => {
                self.write("::");
                let group = Span {
                    start: u.path.last().map(|p| p.span.end).unwrap_or(span.start),
                    end: span.end,
                };
                self.list(
                    ("{", "}"),
                    names,
                    group,
                    flat::use_name,
                    |p, n| p.write(&flat::use_name(n)),
                    |n| n.name.span.to(n.local().span),
                );
            }
        }
    }

    fn binding(&mut self, kw: &str, name: &Ident, ty: Option<&TypeExpr>, value: &Expr) {
        self.write(&format!("{kw} {}", name.name));
        if let Some(t) = ty {
            self.write(&format!(": {}", flat::ty(t)));
        }
        self.write(" = ");
        self.expr(value);
    }

    fn modality(&mut self, m: &ModalityItem) {
        self.write(&format!(
            "modality {}: {} from ",
            m.name.name,
            flat::ty(&m.ty)
        ));
        self.expr(&m.source);
        let pipes: Vec<String> = m.transforms.iter().map(flat::expr).collect();
        let inline: String = pipes.iter().map(|t| format!(" | {t}")).collect();
        let any_comment = m.transforms.iter().any(|t| {
            self.comments_within(Span {
                start: m.source.span.end,
                end: t.span.end,
            })
        });
        if self.fits(&inline) && !any_comment {
            self.write(&inline);
        } else {
            // Long pipelines put one transform per line, indented under the
            // item, so each step reads on its own.
            self.indent += 1;
            let mut previous = m.source.span.end as usize;
            for t in &m.transforms {
                self.end_line_before(previous, t.span.start as usize);
                self.begin_line(t.span.start as usize);
                self.write("| ");
                self.expr(t);
                previous = t.span.end as usize;
            }
            self.indent -= 1;
        }
        if let Some(c) = &m.config {
            self.config(c, false);
        }
    }

    fn objective(&mut self, kw: &str, o: &ObjectiveItem) {
        self.write(kw);
        self.write(" ");
        if let Some(l) = &o.label {
            self.write(&format!("{} = ", l.name));
        }
        self.expr(&o.value);
        if let Some(c) = &o.config {
            self.config(c, false);
        }
    }

    fn ret(&mut self, ret: Option<&TypeExpr>) {
        if let Some(t) = ret {
            self.write(&format!(" -> {}", flat::ty(t)));
        }
    }

    /// A parameter list; `reserve` columns are kept free for what follows
    /// it on the line (`-> type {`).
    fn param_list(&mut self, list: &ParamList, reserve: usize) {
        let has_docs = list.params.iter().any(|p| !p.docs.is_empty());
        if has_docs {
            // Documented parameters always go one per line, docs above.
            self.broken_list(
                ("(", ")"),
                &list.params,
                list.span,
                |p, x| {
                    p.write(&flat::param(x));
                },
                |x| x.span,
                |p, x| p.docs(&x.docs),
            );
        } else {
            let text = format!(
                "({})",
                list.params
                    .iter()
                    .map(flat::param)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let room = self.col() + text.chars().count() + reserve <= WIDTH;
            if list.params.is_empty() || (room && !self.comments_within(list.span)) {
                self.write(&text);
            } else {
                self.broken_list(
                    ("(", ")"),
                    &list.params,
                    list.span,
                    |p, x| p.write(&flat::param(x)),
                    |x| x.span,
                    |_, _| {},
                );
            }
        }
    }

    fn body(&mut self, body: &Body) {
        if body.stmts.is_empty() && !self.comments_within(body.span) {
            self.write(" {}");
            return;
        }
        self.open_block();
        self.stmts(&body.stmts);
        self.close_block((body.span.end as usize).saturating_sub(1));
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Let { name, ty, value } => {
                self.begin_line(s.span.start as usize);
                self.binding("let", name, ty.as_ref(), value);
            }
            StmtKind::Param {
                docs,
                name,
                ty,
                init,
            } => {
                self.docs(docs);
                let start = docs.last().map(|d| d.span.end).unwrap_or(s.span.start);
                self.begin_line(start as usize);
                self.write(&format!("param {}: {}", name.name, flat::ty(ty)));
                if let Some(i) = init {
                    self.write(" = ");
                    self.expr(i);
                }
            }
            StmtKind::Predict { name, ty, value } => {
                self.begin_line(s.span.start as usize);
                self.binding("predict", name, ty.as_ref(), value);
            }
            StmtKind::Return(e) => {
                self.begin_line(s.span.start as usize);
                self.write("return ");
                self.expr(e);
            }
            StmtKind::If(i) => {
                self.begin_line(s.span.start as usize);
                self.if_stmt(i);
            }
        }
        self.end_line(s.span.end as usize);
    }

    fn if_stmt(&mut self, i: &IfStmt) {
        self.write("if ");
        self.expr(&i.cond);
        self.body(&i.then);
        match &i.els {
            None => {}
            Some(Else::If(inner)) => {
                self.write(" else ");
                self.if_stmt(inner);
            }
            Some(Else::Body(b)) => {
                self.write(" else");
                self.body(b);
            }
        }
    }

    /// A settings block. Top-level `train` and `parallel` blocks are always
    /// laid out one setting per line; smaller blocks written on one line
    /// stay on one line when they fit and hold no comments.
    fn config(&mut self, c: &ConfigBlock, multiline: bool) {
        let source = self.src.get(c.span.range()).unwrap_or("");
        if c.entries.is_empty() && !self.comments_within(c.span) {
            self.write(" {}");
            return;
        }
        let one_line = !multiline
            && !source.contains('\n')
            && !self.comments_within(c.span)
            && c.entries.iter().all(|e| e.docs.is_empty());
        if one_line {
            let flat = format!(
                " {{ {} }}",
                c.entries
                    .iter()
                    .map(entry_flat)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if self.fits(&flat) {
                self.write(&flat);
                return;
            }
        }
        self.open_block();
        for e in &c.entries {
            self.docs(&e.docs);
            self.begin_line(e.span.start as usize);
            match &e.kind {
                EntryKind::Setting { key, value } => {
                    self.write(&format!("{}: ", key.name));
                    self.expr(value);
                }
                EntryKind::Mapping { keys, target } => {
                    let ks: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
                    self.write(&format!("{} -> ", ks.join(", ")));
                    self.expr(target);
                }
                EntryKind::Block { key, block } => {
                    self.write(&key.name);
                    self.config(block, false);
                }
            }
            self.end_line(e.span.end as usize);
        }
        self.close_block((c.span.end as usize).saturating_sub(1));
    }

    /// Prints an expression at the current column, breaking call argument
    /// lists, lists and tuples over lines when they do not fit or hold
    /// comments.
    fn expr(&mut self, e: &Expr) {
        let text = flat::expr(e);
        if self.fits(&text) && !self.comments_within(e.span) {
            self.write(&text);
            return;
        }
        match &e.kind {
            ExprKind::Call { callee, args } if !args.is_empty() => {
                self.expr(callee);
                let span = Span {
                    start: callee.span.end,
                    end: e.span.end,
                };
                self.broken_list(
                    ("(", ")"),
                    args,
                    span,
                    |p, a| {
                        if let Some(n) = &a.name {
                            p.write(&format!("{}: ", n.name));
                        }
                        p.expr(&a.value);
                    },
                    |a| a.span,
                    |_, _| {},
                );
            }
            ExprKind::List(xs) if !xs.is_empty() => {
                self.broken_list(
                    ("[", "]"),
                    xs,
                    e.span,
                    |p, x| p.expr(x),
                    |x| x.span,
                    |_, _| {},
                );
            }
            ExprKind::Tuple(xs) if !xs.is_empty() => {
                self.broken_list(
                    ("(", ")"),
                    xs,
                    e.span,
                    |p, x| p.expr(x),
                    |x| x.span,
                    |_, _| {},
                );
            }
            ExprKind::If { cond, then, els } => self.if_expr(cond, then, els),
            // Other forms stay on one line, however long; comments inside
            // them are printed after the element by `end_line`.
            _ => self.write(&text),
        }
    }

    /// An `if` expression too long for one line: each branch on its own
    /// indented line, `} else if` chains kept flat where they fit.
    fn if_expr(&mut self, cond: &Expr, then: &Expr, els: &Expr) {
        self.write("if ");
        self.expr(cond);
        self.write(" ");
        self.branch(then);
        self.write(" else ");
        match &els.kind {
            ExprKind::If {
                cond: c,
                then: t,
                els: e,
            } => {
                let text = flat::expr(els);
                if self.fits(&text) && !self.comments_within(els.span) {
                    self.write(&text);
                } else {
                    self.if_expr(c, t, e);
                }
            }
            _ => self.branch(els),
        }
    }

    /// `{`, the branch expression on its own line, `}`.
    fn branch(&mut self, e: &Expr) {
        self.write("{");
        self.newline();
        self.indent += 1;
        self.fresh = true;
        self.begin_line(e.span.start as usize);
        self.expr(e);
        self.end_line(e.span.end as usize);
        self.indent -= 1;
        self.write_indent();
        self.write("}");
    }

    /// A delimited list printed flat when it fits and holds no comments,
    /// else one element per line.
    fn list<T>(
        &mut self,
        delims: (&str, &str),
        items: &[T],
        span: Span,
        flat_item: impl Fn(&T) -> String,
        print_item: impl Fn(&mut Self, &T),
        item_span: impl Fn(&T) -> Span,
    ) {
        let text = format!(
            "{}{}{}",
            delims.0,
            items.iter().map(&flat_item).collect::<Vec<_>>().join(", "),
            delims.1
        );
        if items.is_empty() || (self.fits(&text) && !self.comments_within(span)) {
            self.write(&text);
            return;
        }
        self.broken_list(delims, items, span, print_item, item_span, |_, _| {});
    }

    fn broken_list<T>(
        &mut self,
        delims: (&str, &str),
        items: &[T],
        span: Span,
        print_item: impl Fn(&mut Self, &T),
        item_span: impl Fn(&T) -> Span,
        before_item: impl Fn(&mut Self, &T),
    ) {
        self.write(delims.0);
        self.newline();
        self.indent += 1;
        self.fresh = true;
        for x in items {
            before_item(self, x);
            let sp = item_span(x);
            self.begin_line(sp.start as usize);
            print_item(self, x);
            self.write(",");
            self.end_line(sp.end as usize);
        }
        self.flush_comments((span.end as usize).saturating_sub(1));
        self.indent -= 1;
        self.write_indent();
        self.write(delims.1);
        self.fresh = false;
    }
}

/// The width of what follows a signature's last parameter list: the
/// return type (` -> type`) and ` {`.
fn tail(ret: Option<&TypeExpr>) -> usize {
    ret.map(|t| flat::ty(t).chars().count() + 4).unwrap_or(0) + 2
}

fn entry_flat(e: &ConfigEntry) -> String {
    match &e.kind {
        EntryKind::Setting { key, value } => format!("{}: {}", key.name, flat::expr(value)),
        EntryKind::Mapping { keys, target } => {
            let ks: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
            format!("{} -> {}", ks.join(", "), flat::expr(target))
        }
        EntryKind::Block { key, block } => format!(
            "{} {{ {} }}",
            key.name,
            block
                .entries
                .iter()
                .map(entry_flat)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
