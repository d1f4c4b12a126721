//! A per-file index of what the syntax tree declares and where: every
//! definition (items, parameters, `let`, `param` and `predict` names,
//! generic dims), every call (for signature help), every settings key
//! with its path from the block keyword, and every `use` name.
//!
//! The resolver records what each *use* of a name means
//! ([`crate::resolve::NameRef`]); this index is the other half, the
//! *definitions*, so that a definition site found through a use can say
//! what it is (a module, a dim, a parameter) and show its signature.

use crate::base::Span;
use crate::syntax::ast::*;

/// What a definition defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefKind {
    Dim,
    Let,
    Data,
    Modality,
    Tokenizer,
    Fn,
    Module,
    Model,
    Loss,
    Metric,
    /// A hyperparameter or input of a `fn`, `module` or `model`.
    Param,
    /// A `let` inside a body.
    Local,
    /// A learned `param` inside a module body.
    Weight,
    /// A `predict` output of a model.
    Predict,
    /// A dim a signature introduces by using it (`[..., d_in]`).
    GenericDim,
}

impl DefKind {
    /// How hovers and symbol lists name the kind.
    pub fn describe(self) -> &'static str {
        match self {
            DefKind::Dim | DefKind::GenericDim => "dim",
            DefKind::Let | DefKind::Local => "let",
            DefKind::Data => "data",
            DefKind::Modality => "modality",
            DefKind::Tokenizer => "tokenizer",
            DefKind::Fn => "fn",
            DefKind::Module => "module",
            DefKind::Model => "model",
            DefKind::Loss => "loss",
            DefKind::Metric => "metric",
            DefKind::Param => "parameter",
            DefKind::Weight => "param",
            DefKind::Predict => "predict",
        }
    }

    /// Whether this is a top-level item (visible in the file scope).
    pub fn is_item(self) -> bool {
        !matches!(
            self,
            DefKind::Param
                | DefKind::Local
                | DefKind::Weight
                | DefKind::Predict
                | DefKind::GenericDim
        )
    }
}

/// One definition.
#[derive(Clone, Debug)]
pub struct Def {
    pub name: String,
    /// The span of the name where it is defined.
    pub span: Span,
    pub kind: DefKind,
    /// The index of the top-level item the definition is in.
    pub item: usize,
    /// The one-line signature to show: `module Linear(d_in: dim, ...)`.
    pub signature: String,
    /// Its doc comment, joined into lines.
    pub docs: String,
    /// For a `fn`, `module` or `model`: the parameters its call takes
    /// (a module's hyperparameters).
    pub params: Vec<ParamInfo>,
}

/// A parameter as signature help and completion show it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    /// `d_in: dim`, `p: float = 0.1`.
    pub text: String,
    pub docs: String,
}

/// A call `callee(args)` and where its arguments are.
#[derive(Clone, Debug)]
pub struct Call {
    /// The whole call expression.
    pub span: Span,
    /// The callee's path (`Linear`, `nn::Linear`).
    pub callee: Vec<Ident>,
    /// Each argument's span and name, if named.
    pub args: Vec<(Span, Option<Ident>)>,
}

/// A settings key, with its path from the block keyword:
/// `["train", "checkpoint", "every"]`.
#[derive(Clone, Debug)]
pub struct KeySite {
    pub span: Span,
    pub path: Vec<String>,
}

/// Everything the index holds for one file.
#[derive(Clone, Debug, Default)]
pub struct FileIndex {
    pub defs: Vec<Def>,
    pub calls: Vec<Call>,
    pub keys: Vec<KeySite>,
    /// Each `use` name (the imported name as written, not its alias) with
    /// the index of its item.
    pub use_names: Vec<(Ident, usize)>,
}

impl FileIndex {
    /// Indexes a parsed file.
    pub fn new(file: &File) -> FileIndex {
        let mut ix = FileIndex::default();
        for (i, item) in file.items.iter().enumerate() {
            ix.item(i, item);
        }
        ix
    }

    /// The definition whose name is at `span`, if any.
    pub fn def_at(&self, span: Span) -> Option<&Def> {
        self.defs.iter().find(|d| d.span == span)
    }

    /// The definition whose name contains `offset`.
    pub fn def_containing(&self, offset: usize) -> Option<&Def> {
        self.defs.iter().find(|d| contains(d.span, offset))
    }

    /// The innermost call whose parentheses contain `offset`.
    pub fn call_around(&self, offset: usize) -> Option<&Call> {
        self.calls
            .iter()
            .filter(|c| {
                let after_callee = c.callee.last().map_or(c.span.start, |i| i.span.end);
                (after_callee as usize) < offset && offset < c.span.end as usize
            })
            .min_by_key(|c| c.span.len())
    }

    fn def(&mut self, item: usize, name: &Ident, kind: DefKind, signature: String, docs: &[Doc]) {
        if name.name.is_empty() {
            return;
        }
        self.defs.push(Def {
            name: name.name.clone(),
            span: name.span,
            kind,
            item,
            signature,
            docs: join_docs(docs),
            params: Vec::new(),
        });
    }

    /// Sets the call parameters of the definition just added.
    fn callable(&mut self, name: &Ident, list: &ParamList) {
        if let Some(d) = self.defs.last_mut().filter(|d| d.span == name.span) {
            d.params = list
                .params
                .iter()
                .map(|p| ParamInfo {
                    name: p.name.name.clone(),
                    text: crate::fmt::flat::param(p),
                    docs: join_docs(&p.docs),
                })
                .collect();
        }
    }

    fn item(&mut self, i: usize, item: &Item) {
        let docs = &item.docs;
        match &item.kind {
            ItemKind::Use(u) => {
                if let UseImports::Group(names) = &u.imports {
                    for n in names {
                        self.use_names.push((n.name.clone(), i));
                    }
                } else if let Some(last) = u.path.last() {
                    self.use_names.push((last.clone(), i));
                }
            }
            ItemKind::Dim(d) => {
                let mut sig = format!("dim {}", d.name.name);
                if let Some(v) = &d.value {
                    sig.push_str(&format!(" = {}", crate::fmt::flat::expr(v)));
                    self.expr(v);
                }
                if d.per_session.is_some() {
                    sig.push_str(" per session");
                }
                self.def(i, &d.name, DefKind::Dim, sig, docs);
            }
            ItemKind::Let(l) => {
                let sig = format!("let {} = {}", l.name.name, crate::fmt::flat::expr(&l.value));
                self.def(i, &l.name, DefKind::Let, sig, docs);
                self.expr(&l.value);
            }
            ItemKind::Data(d) => {
                let sig = format!(
                    "data {} = {}",
                    d.name.name,
                    crate::fmt::flat::expr(&d.source)
                );
                self.def(i, &d.name, DefKind::Data, sig, docs);
                self.expr(&d.source);
                if let Some(c) = &d.config {
                    self.config(c, &mut vec!["data".to_string()]);
                }
            }
            ItemKind::Modality(m) => {
                let sig = format!(
                    "modality {}: {} from {}",
                    m.name.name,
                    crate::fmt::flat::ty(&m.ty),
                    crate::fmt::flat::expr(&m.source)
                );
                self.def(i, &m.name, DefKind::Modality, sig, docs);
                self.expr(&m.source);
                m.transforms.iter().for_each(|t| self.expr(t));
            }
            ItemKind::Tokenizer(t) => {
                let sig = format!(
                    "tokenizer {} = {}",
                    t.name.name,
                    crate::fmt::flat::expr(&t.value)
                );
                self.def(i, &t.name, DefKind::Tokenizer, sig, docs);
                self.expr(&t.value);
            }
            ItemKind::Fn(f) => {
                let sig = format!(
                    "fn {}{}{}",
                    f.name.name,
                    params(&f.params),
                    ret(f.ret.as_ref())
                );
                self.def(i, &f.name, DefKind::Fn, sig, docs);
                self.callable(&f.name, &f.params);
                self.params(i, &f.params, true);
                self.body(i, &f.body);
            }
            ItemKind::Module(m) => {
                let sig = signature_of_module(m);
                self.def(i, &m.name, DefKind::Module, sig, docs);
                self.callable(&m.name, &m.hyper);
                self.params(i, &m.hyper, false);
                self.params(i, &m.inputs, true);
                self.body(i, &m.body);
            }
            ItemKind::Model(m) => {
                let ps = m.params.as_ref().map(params).unwrap_or_default();
                self.def(
                    i,
                    &m.name,
                    DefKind::Model,
                    format!("model {}{ps}", m.name.name),
                    docs,
                );
                if let Some(p) = &m.params {
                    self.callable(&m.name, p);
                    self.params(i, p, false);
                }
                self.body(i, &m.body);
            }
            ItemKind::Loss(o) | ItemKind::Metric(o) => {
                let (kind, word) = match &item.kind {
                    ItemKind::Loss(_) => (DefKind::Loss, "loss"),
                    _ => (DefKind::Metric, "metric"),
                };
                if let Some(l) = &o.label {
                    let sig = format!("{word} {} = {}", l.name, crate::fmt::flat::expr(&o.value));
                    self.def(i, l, kind, sig, docs);
                }
                self.expr(&o.value);
                if let Some(c) = &o.config {
                    self.config(c, &mut vec![word.to_string()]);
                }
            }
            ItemKind::Train(c) => self.config(c, &mut vec!["train".to_string()]),
            ItemKind::Parallel(c) => self.config(c, &mut vec!["parallel".to_string()]),
        }
    }

    /// A parameter list; in an input list, dims named in the types and not
    /// otherwise known are generic dims bound there, which is what the
    /// resolver records as local definitions.
    fn params(&mut self, i: usize, list: &ParamList, inputs: bool) {
        for p in &list.params {
            let sig = crate::fmt::flat::param(p);
            self.def(i, &p.name, DefKind::Param, sig, &p.docs);
            if let Some(d) = &p.default {
                self.expr(d);
            }
            if inputs {
                if let Some(t) = &p.ty {
                    self.generic_dims(i, t);
                }
            }
        }
    }

    fn generic_dims(&mut self, i: usize, t: &TypeExpr) {
        let shape = match &t.kind {
            TypeKind::Shape(s) => Some(s),
            TypeKind::Named { shape, .. } => shape.as_ref(),
        };
        for d in shape.iter().flat_map(|s| &s.dims) {
            if let ShapeDimKind::Dim { size, .. } = &d.kind {
                if let ExprKind::Path(p) = &size.kind {
                    if let [name] = p.as_slice() {
                        if !self.defs.iter().any(|d| d.item == i && d.name == name.name) {
                            let sig = format!("dim {} (generic: bound at each use)", name.name);
                            self.def(i, name, DefKind::GenericDim, sig, &[]);
                        }
                    }
                }
            }
        }
    }

    fn body(&mut self, i: usize, body: &Body) {
        for s in &body.stmts {
            self.stmt(i, s);
        }
    }

    fn stmt(&mut self, i: usize, s: &Stmt) {
        match &s.kind {
            StmtKind::Let { name, ty, value } => {
                let t = ty
                    .as_ref()
                    .map(|t| format!(": {}", crate::fmt::flat::ty(t)))
                    .unwrap_or_default();
                let sig = format!("let {}{t} = {}", name.name, crate::fmt::flat::expr(value));
                self.def(i, name, DefKind::Local, sig, &[]);
                self.expr(value);
            }
            StmtKind::Param {
                docs,
                name,
                ty,
                init,
            } => {
                let sig = format!("param {}: {}", name.name, crate::fmt::flat::ty(ty));
                self.def(i, name, DefKind::Weight, sig, docs);
                if let Some(e) = init {
                    self.expr(e);
                }
            }
            StmtKind::Predict { name, value, .. } => {
                let sig = format!("predict {} = {}", name.name, crate::fmt::flat::expr(value));
                self.def(i, name, DefKind::Predict, sig, &[]);
                self.expr(value);
            }
            StmtKind::Return(e) => self.expr(e),
            StmtKind::If(f) => self.if_stmt(i, f),
        }
    }

    fn if_stmt(&mut self, i: usize, f: &IfStmt) {
        self.expr(&f.cond);
        self.body(i, &f.then);
        match &f.els {
            Some(Else::If(e)) => self.if_stmt(i, e),
            Some(Else::Body(b)) => self.body(i, b),
            None => {}
        }
    }

    fn config(&mut self, c: &ConfigBlock, path: &mut Vec<String>) {
        for e in &c.entries {
            match &e.kind {
                EntryKind::Setting { key, value } => {
                    self.key(key, path);
                    self.expr(value);
                }
                EntryKind::Block { key, block } => {
                    self.key(key, path);
                    path.push(key.name.clone());
                    self.config(block, path);
                    path.pop();
                }
                EntryKind::Mapping { target, .. } => self.expr(target),
            }
        }
    }

    fn key(&mut self, key: &Ident, path: &[String]) {
        let mut full = path.to_vec();
        full.push(key.name.clone());
        self.keys.push(KeySite {
            span: key.span,
            path: full,
        });
    }

    /// Expressions hold calls (for signature help) and nothing else the
    /// index wants; the walk is iterative so deep expressions cannot
    /// exhaust the stack.
    fn expr(&mut self, e: &Expr) {
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match &e.kind {
                ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Path(_) => {}
                ExprKind::Paren(x) => stack.push(x),
                ExprKind::Tuple(xs) | ExprKind::List(xs) => stack.extend(xs),
                ExprKind::Unary { operand, .. } => stack.push(operand),
                ExprKind::Binary { lhs, rhs, .. } => {
                    stack.push(lhs);
                    stack.push(rhs);
                }
                ExprKind::Call { callee, args } => {
                    if let ExprKind::Path(p) = &callee.kind {
                        self.calls.push(Call {
                            span: e.span,
                            callee: p.clone(),
                            args: args.iter().map(|a| (a.span, a.name.clone())).collect(),
                        });
                    }
                    stack.push(callee);
                    stack.extend(args.iter().map(|a| &a.value));
                }
                ExprKind::Index { base, items } => {
                    stack.push(base);
                    for it in items {
                        match &it.kind {
                            IndexKind::Expr(x) => stack.push(x),
                            IndexKind::Range { start, end } => {
                                stack.extend(start.iter().chain(end.iter()));
                            }
                            IndexKind::Arrow { from, to } => {
                                stack.push(from);
                                stack.push(to);
                            }
                        }
                    }
                }
                ExprKind::Field { base, .. } => stack.push(base),
                ExprKind::If { cond, then, els } => {
                    stack.push(cond);
                    stack.push(then);
                    stack.push(els);
                }
            }
        }
    }
}

/// `module Linear(d_in: dim, d_out: dim)(x: [..., d_in]) -> [..., d_out]`.
pub fn signature_of_module(m: &ModuleItem) -> String {
    format!(
        "module {}{}{}{}",
        m.name.name,
        params(&m.hyper),
        params(&m.inputs),
        ret(m.ret.as_ref())
    )
}

fn params(list: &ParamList) -> String {
    let ps: Vec<String> = list.params.iter().map(crate::fmt::flat::param).collect();
    format!("({})", ps.join(", "))
}

fn ret(t: Option<&TypeExpr>) -> String {
    t.map(|t| format!(" -> {}", crate::fmt::flat::ty(t)))
        .unwrap_or_default()
}

fn join_docs(docs: &[Doc]) -> String {
    let lines: Vec<&str> = docs
        .iter()
        .map(|d| d.text.strip_prefix(' ').unwrap_or(&d.text).trim_end())
        .collect();
    lines.join("\n").trim().to_string()
}

/// Whether `offset` is inside `span` or just after it (where a cursor
/// sits after typing a name).
pub fn contains(span: Span, offset: usize) -> bool {
    (span.start as usize) <= offset && offset <= span.end as usize
}
