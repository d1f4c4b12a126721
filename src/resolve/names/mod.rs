//! Resolving every name in every body, type and setting.
//!
//! The walk keeps a stack of local names (parameters, `let` and `param`
//! bindings, generic dims introduced by signatures). A name is looked up in
//! the locals (innermost first), then the file scope, then the builtins;
//! failing all three it is E0105 with a suggestion. The walk also enforces
//! where statements may appear (E0106, E0107), duplicate named arguments and
//! settings (E0108), argument order (E0109), parallel-block mappings, and
//! reports imports nothing used (W0101).

mod parallel;

use std::collections::HashSet;

use super::builtins;
use super::scope::duplicate;
use super::suggest;
use super::{Binding, ModuleId, NameRef, Program, RefTarget};
use crate::base::FileId;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::ast::*;

pub(super) fn resolve_names(program: &mut Program) {
    let mut used: HashSet<(ModuleId, String)> = HashSet::new();
    let mut diags = Vec::new();
    let mut refs = Vec::new();
    for i in 0..program.modules.len() {
        let id = ModuleId(i as u32);
        let mut w = Walker {
            program,
            module: id,
            file: program.module(id).file,
            locals: Vec::new(),
            diags: Vec::new(),
            refs: Vec::new(),
            used: &mut used,
        };
        if let Some(ast) = &program.module(id).ast {
            for item in &ast.items {
                w.item(item);
            }
        }
        diags.extend(w.diags);
        refs.extend(w.refs);
    }
    diags.extend(unused_imports(program, &used));
    program.diagnostics.extend(diags);
    program.refs = refs;
}

/// What kind of body is being walked, for statement placement rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Fn,
    Module,
    Model,
}

impl BodyKind {
    fn describe(self) -> &'static str {
        match self {
            BodyKind::Fn => "a `fn`",
            BodyKind::Module => "a `module`",
            BodyKind::Model => "a `model`",
        }
    }
}

struct Local {
    name: String,
    /// Where the name is bound, for go to definition.
    span: Span,
}

struct Walker<'p> {
    program: &'p Program,
    module: ModuleId,
    file: FileId,
    locals: Vec<Local>,
    diags: Vec<Diagnostic>,
    refs: Vec<NameRef>,
    used: &'p mut HashSet<(ModuleId, String)>,
}

impl Walker<'_> {
    fn item(&mut self, item: &Item) {
        self.locals.clear();
        match &item.kind {
            ItemKind::Use(_) => {}
            ItemKind::Dim(d) => {
                if let Some(v) = &d.value {
                    self.expr(v);
                }
            }
            ItemKind::Let(l) => {
                if let Some(t) = &l.ty {
                    self.ty(t, false);
                }
                self.expr(&l.value);
            }
            ItemKind::Data(d) => {
                self.expr(&d.source);
                if let Some(c) = &d.config {
                    self.config(c);
                }
            }
            ItemKind::Modality(m) => {
                self.ty(&m.ty, false);
                self.expr(&m.source);
                // Transforms are expressions in the implicit element `x`.
                self.locals.push(Local {
                    name: "x".to_string(),
                    span: m.name.span,
                });
                for t in &m.transforms {
                    self.expr(t);
                }
                self.locals.pop();
                if let Some(c) = &m.config {
                    self.config(c);
                }
            }
            ItemKind::Tokenizer(t) => self.expr(&t.value),
            ItemKind::Fn(f) => {
                self.params(&f.params, true);
                if let Some(r) = &f.ret {
                    self.ty(r, false);
                }
                self.body(&f.body, BodyKind::Fn, f.name.span);
            }
            ItemKind::Module(m) => {
                self.params(&m.hyper, false);
                self.params(&m.inputs, true);
                if let Some(r) = &m.ret {
                    self.ty(r, false);
                }
                self.body(&m.body, BodyKind::Module, m.name.span);
            }
            ItemKind::Model(m) => {
                if let Some(p) = &m.params {
                    self.params(p, false);
                }
                self.body(&m.body, BodyKind::Model, m.name.span);
            }
            ItemKind::Loss(o) | ItemKind::Metric(o) => {
                self.expr(&o.value);
                if let Some(c) = &o.config {
                    self.config(c);
                }
            }
            ItemKind::Train(c) => self.config(c),
            ItemKind::Parallel(c) => self.parallel(c),
        }
    }

    /// Binds a parameter list. Input lists (`generic`) introduce unknown dim
    /// names in their types as generic dims.
    fn params(&mut self, list: &ParamList, generic: bool) {
        let mut seen: Vec<&Ident> = Vec::new();
        for p in &list.params {
            if let Some(t) = &p.ty {
                self.ty(t, generic);
            }
            if let Some(d) = &p.default {
                self.expr(d);
            }
            if let Some(prev) = seen.iter().find(|i| i.name == p.name.name) {
                self.diags.push(duplicate(
                    self.file,
                    &p.name.name,
                    p.name.span,
                    prev.span,
                    "parameter",
                ));
            } else {
                seen.push(&p.name);
            }
            self.bind(&p.name);
        }
    }

    fn bind(&mut self, name: &Ident) {
        self.locals.push(Local {
            name: name.name.clone(),
            span: name.span,
        });
    }

    fn body(&mut self, body: &Body, kind: BodyKind, name_span: Span) {
        let depth = self.locals.len();
        let returns = self.block(&body.stmts, kind);
        self.locals.truncate(depth);
        if kind != BodyKind::Model && !returns {
            let at = body.stmts.last().map(|s| s.span).unwrap_or(Span::new(
                (body.span.end as usize).saturating_sub(1),
                body.span.end as usize,
            ));
            self.diags.push(
                Diagnostic::new(
                    Code::E0106,
                    format!("{} body must end with `return`", kind.describe()),
                )
                .primary(self.file, at, "the body ends here without returning a value")
                .secondary(self.file, name_span, "defined here")
                .help("end the body with `return <expression>`; in an `if`, both branches must return"),
            );
        }
    }

    /// Walks statements in order; returns whether the block always returns.
    fn block(&mut self, stmts: &[Stmt], kind: BodyKind) -> bool {
        let mut returned: Option<Span> = None;
        for s in stmts {
            if let Some(ret) = returned {
                self.diags.push(
                    Diagnostic::new(Code::E0106, "statement after `return`")
                        .primary(self.file, s.span, "this is never reached")
                        .secondary(self.file, ret, "the body returns here")
                        .help("`return` must be the last statement of its block"),
                );
                // One report per block is enough.
                return true;
            }
            match &s.kind {
                StmtKind::Let { name, ty, value } => {
                    if let Some(t) = ty {
                        self.ty(t, false);
                    }
                    self.expr(value);
                    self.bind(name);
                }
                StmtKind::Param { name, ty, init, .. } => {
                    if kind != BodyKind::Module {
                        self.misplaced(s.span, "param", kind, "only modules own parameters; define a `module` and instantiate it here");
                    }
                    self.ty(ty, false);
                    if let Some(i) = init {
                        self.expr(i);
                    }
                    self.bind(name);
                }
                StmtKind::Predict { name, ty, value } => {
                    if kind != BodyKind::Model {
                        self.misplaced(
                            s.span,
                            "predict",
                            kind,
                            "`predict` names a model output; use `return` in a fn or module",
                        );
                    }
                    if let Some(t) = ty {
                        self.ty(t, false);
                    }
                    self.expr(value);
                    self.bind(name);
                }
                StmtKind::Return(e) => {
                    if kind == BodyKind::Model {
                        self.misplaced(
                            s.span,
                            "return",
                            kind,
                            "a model names its outputs with `predict name = ...`",
                        );
                    }
                    self.expr(e);
                    returned = Some(s.span);
                }
                StmtKind::If(i) => {
                    if self.if_stmt(i, kind) {
                        returned = Some(s.span);
                    }
                }
            }
        }
        returned.is_some()
    }

    fn if_stmt(&mut self, i: &IfStmt, kind: BodyKind) -> bool {
        self.expr(&i.cond);
        let depth = self.locals.len();
        let then = self.block(&i.then.stmts, kind);
        self.locals.truncate(depth);
        let els = match &i.els {
            None => false,
            Some(Else::If(inner)) => self.if_stmt(inner, kind),
            Some(Else::Body(b)) => {
                let r = self.block(&b.stmts, kind);
                self.locals.truncate(depth);
                r
            }
        };
        then && els
    }

    fn misplaced(&mut self, at: Span, what: &str, kind: BodyKind, help: &str) {
        self.diags.push(
            Diagnostic::new(
                Code::E0107,
                format!("`{what}` is not allowed in {}", kind.describe()),
            )
            .primary(self.file, at, format!("`{what}` here"))
            .help(help),
        );
    }

    /// Resolves names in a type. With `generic`, unknown single-name dims
    /// become generic dims bound at each use.
    fn ty(&mut self, t: &TypeExpr, generic: bool) {
        match &t.kind {
            TypeKind::Shape(s) => self.shape(s, generic),
            TypeKind::Named { name, args, shape } => {
                self.type_name(name);
                for a in args {
                    self.ty(a, false);
                }
                if let Some(s) = shape {
                    self.shape(s, generic);
                }
            }
        }
    }

    fn type_name(&mut self, name: &Ident) {
        if builtins::is_type_name(&name.name) {
            self.refer(name, RefTarget::Builtin(name.name.clone()));
            return;
        }
        let candidates = builtins::TYPE_NAMES.iter().chain(builtins::DTYPES).copied();
        let mut diag = Diagnostic::new(Code::E0105, format!("unknown type `{}`", name.name))
            .primary(self.file, name.span, "not a type");
        diag = match suggest::closest(&name.name, candidates) {
            Some(s) => diag.help(format!("did you mean `{s}`?")),
            None => diag.help("types are dtypes (f32, bf16, ...), modality kinds (video, series, events, intervals) or dim, int, float, bool, str, module"),
        };
        self.diags.push(diag);
    }

    fn shape(&mut self, s: &Shape, generic: bool) {
        for d in &s.dims {
            if let ShapeDimKind::Dim { size, rate } = &d.kind {
                match &size.kind {
                    ExprKind::Path(p) if generic && p.len() == 1 && !self.visible(&p[0].name) => {
                        self.bind(&p[0]);
                    }
                    _ => self.expr(size),
                }
                if let Some(r) = rate {
                    self.expr(r);
                }
            }
        }
    }

    /// Whether a name is visible without reporting anything.
    fn visible(&self, name: &str) -> bool {
        self.locals.iter().any(|l| l.name == name)
            || self.program.module(self.module).scope.contains_key(name)
            || builtins::lookup(name).is_some()
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
            ExprKind::Path(p) => self.path(p),
            ExprKind::Paren(x) => self.expr(x),
            ExprKind::Tuple(xs) | ExprKind::List(xs) => xs.iter().for_each(|x| self.expr(x)),
            ExprKind::Unary { operand, .. } => self.expr(operand),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Call { callee, args } => {
                self.expr(callee);
                self.args(args);
            }
            ExprKind::Index { base, items } => {
                self.expr(base);
                for i in items {
                    match &i.kind {
                        IndexKind::Expr(x) => self.expr(x),
                        IndexKind::Range { start, end } => {
                            start.iter().chain(end).for_each(|x| self.expr(x));
                        }
                        IndexKind::Arrow { from, to } => {
                            self.expr(from);
                            self.expr(to);
                        }
                    }
                }
            }
            // Fields are checked against the base's type by the checker.
            ExprKind::Field { base, .. } => self.expr(base),
            ExprKind::If { cond, then, els } => {
                self.expr(cond);
                self.expr(then);
                self.expr(els);
            }
        }
    }

    fn args(&mut self, args: &[Arg]) {
        let mut named: Vec<&Ident> = Vec::new();
        for a in args {
            self.expr(&a.value);
            match &a.name {
                Some(n) => {
                    if let Some(prev) = named.iter().find(|p| p.name == n.name) {
                        self.diags.push(
                            Diagnostic::new(
                                Code::E0108,
                                format!("argument `{}` is given twice", n.name),
                            )
                            .primary(self.file, n.span, "given again here")
                            .secondary(self.file, prev.span, "first given here")
                            .help("remove one of them"),
                        );
                    } else {
                        named.push(n);
                    }
                }
                None => {
                    if let Some(first) = named.first() {
                        self.diags.push(
                            Diagnostic::new(
                                Code::E0109,
                                "positional argument after a named argument",
                            )
                            .primary(self.file, a.span, "positional argument")
                            .secondary(self.file, first.span, "named arguments start here")
                            .help("put positional arguments first, or name this one"),
                        );
                    }
                }
            }
        }
    }

    fn path(&mut self, p: &[Ident]) {
        let Some(first) = p.first() else { return };
        if p.len() == 1 {
            self.lookup(first);
            return;
        }
        let scope = &self.program.module(self.module).scope;
        match scope.get(&first.name) {
            Some(Binding::Module { module, .. }) => {
                self.used.insert((self.module, first.name.clone()));
                let module = *module;
                self.refer(
                    first,
                    RefTarget::Scope {
                        module: self.module,
                        name: first.name.clone(),
                    },
                );
                let target = self.program.module(module);
                let second = &p[1];
                if target.defined(&second.name).is_some() {
                    self.refs.push(NameRef {
                        file: self.file,
                        span: second.span,
                        target: RefTarget::Item {
                            module,
                            name: second.name.clone(),
                        },
                    });
                }
                if target.defined(&second.name).is_none() {
                    let mut diag = Diagnostic::new(
                        Code::E0102,
                        format!("module `{}` has no item `{}`", target.name, second.name),
                    )
                    .primary(self.file, second.span, "not defined there");
                    if let Some(s) = suggest::closest(&second.name, target.defined_names()) {
                        diag = diag.help(format!("did you mean `{}::{s}`?", first.name));
                    }
                    self.diags.push(diag);
                } else if p.len() > 2 {
                    let at = p[1].span.to(p[p.len() - 1].span);
                    self.diags.push(
                        Diagnostic::new(
                            Code::E0105,
                            format!("`{}::{}` is not a module", first.name, second.name),
                        )
                        .primary(self.file, at, "cannot look inside an item")
                        .help("paths have the form `module::item`"),
                    );
                }
            }
            // Its import failed and was reported already.
            Some(Binding::Unresolved { .. }) => {}
            _ => {
                let mut diag = Diagnostic::new(
                    Code::E0105,
                    format!("`{}` is not an imported module", first.name),
                )
                .primary(self.file, first.span, "not a module");
                diag = diag.help(format!(
                    "import the module first, e.g. `use std::{}`",
                    first.name
                ));
                self.diags.push(diag);
            }
        }
    }

    fn lookup(&mut self, name: &Ident) {
        if let Some(local) = self.locals.iter().rev().find(|l| l.name == name.name) {
            let at = local.span;
            self.refer(name, RefTarget::Local(at));
            return;
        }
        if self
            .program
            .module(self.module)
            .scope
            .contains_key(&name.name)
        {
            self.used.insert((self.module, name.name.clone()));
            self.refer(
                name,
                RefTarget::Scope {
                    module: self.module,
                    name: name.name.clone(),
                },
            );
            return;
        }
        if builtins::lookup(&name.name).is_some() {
            self.refer(name, RefTarget::Builtin(name.name.clone()));
            return;
        }
        self.unknown(name, "not found in this scope");
    }

    /// Records what a use of `name` resolved to.
    fn refer(&mut self, name: &Ident, target: RefTarget) {
        self.refs.push(NameRef {
            file: self.file,
            span: name.span,
            target,
        });
    }

    fn unknown(&mut self, name: &Ident, label: &str) {
        // A `use` that failed to parse may have imported it; its syntax
        // error is the one to fix first.
        if self.program.module(self.module).broken_use() {
            return;
        }
        let scope = &self.program.module(self.module).scope;
        let mut candidates: Vec<&str> = self.locals.iter().map(|l| l.name.as_str()).collect();
        candidates.extend(scope.keys().map(String::as_str));
        for b in builtins::all_values() {
            candidates.push(b);
        }
        let suggestion = suggest::closest(&name.name, candidates).map(str::to_string);
        let mut diag = Diagnostic::new(Code::E0105, format!("unknown name `{}`", name.name))
            .primary(self.file, name.span, label);
        if name.name == "x" {
            diag = diag.help("`x` is the element being transformed and exists only in a modality's `| ...` transforms");
        } else if let Some(s) = suggestion {
            diag = diag.help(format!("did you mean `{s}`?"));
        }
        self.diags.push(diag);
    }

    /// A settings block: values are expressions; keys are checked against a
    /// schema by the checker. Keys given twice are reported here.
    fn config(&mut self, c: &ConfigBlock) {
        let mut keys: Vec<&Ident> = Vec::new();
        for e in &c.entries {
            let key = match &e.kind {
                EntryKind::Setting { key, value } => {
                    self.expr(value);
                    Some(key)
                }
                EntryKind::Block { key, block } => {
                    self.config(block);
                    Some(key)
                }
                EntryKind::Mapping { target, .. } => {
                    self.expr(target);
                    None
                }
            };
            if let Some(key) = key {
                self.check_repeat(&mut keys, key);
            }
        }
    }

    fn check_repeat<'a>(&mut self, keys: &mut Vec<&'a Ident>, key: &'a Ident) {
        if let Some(prev) = keys.iter().find(|k| k.name == key.name) {
            self.diags.push(
                Diagnostic::new(
                    Code::E0108,
                    format!("setting `{}` is given twice", key.name),
                )
                .primary(self.file, key.span, "given again here")
                .secondary(self.file, prev.span, "first given here")
                .help("remove one of them"),
            );
        } else {
            keys.push(key);
        }
    }
}

fn unused_imports(program: &Program, used: &HashSet<(ModuleId, String)>) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    // An item that failed to parse may be the one that used the import: a
    // file with syntax errors is not told its imports are unused.
    let unparsed: HashSet<crate::base::FileId> = program
        .diagnostics
        .iter()
        .filter(|d| d.code.as_str().starts_with("E000"))
        .filter_map(|d| d.labels.first().map(|l| l.file))
        .collect();
    for (i, m) in program.modules.iter().enumerate() {
        let id = ModuleId(i as u32);
        if unparsed.contains(&m.file) {
            continue;
        }
        for (name, b) in &m.scope {
            let (span, help) = match b {
                Binding::Import { span, .. } => (*span, "remove it from the `use` item"),
                Binding::Module { span, .. } => (*span, "remove the `use` item"),
                Binding::Item { .. } | Binding::Unresolved { .. } => continue,
            };
            if !used.contains(&(id, name.clone())) {
                diags.push(
                    Diagnostic::new(Code::W0101, format!("`{name}` is imported but never used"))
                        .primary(m.file, span, "unused import")
                        .help(help),
                );
            }
        }
    }
    diags
}
