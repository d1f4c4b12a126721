//! Calls: primitives, functions, module instantiation and application.
//!
//! Arguments are bound to a signature positionally, then by name, then
//! from defaults (evaluated in the callee's file, with the parameters before
//! them in scope). Each bound value is matched against its declared type:
//! a shape like `[..., S, d]` binds its unbound names (`S`) to the
//! argument's dims and checks the bound ones (`d`) against them, so one
//! mismatch reports both where the dim got its size and where the argument
//! contradicts it. Module bodies run in their own frame; a `repeat`
//! elaborates its body once and records the count on its scope.

use super::expr::{as_dim, number};
use super::{Callee, Elab, Frame, InstKind, Instance, Res, TVal, Val};
use crate::base::Loc;
use crate::base::Span;
use crate::diagnostics::Code;
use crate::ir::types::quantity::{Dimension, Quantity};
use crate::ir::types::size::Size;
use crate::ir::types::tensor::{DType, Dim, Mismatch, Tensor};
use crate::ir::types::Value;
use crate::ir::Init;
use crate::resolve::{builtins, ModuleId, Program};
use crate::syntax::ast::*;

/// An evaluated argument.
#[derive(Clone, Debug)]
pub(in crate::check) struct ArgVal {
    pub name: Option<String>,
    pub val: Val,
    pub loc: Loc,
}

impl Elab<'_, '_> {
    pub fn call(&mut self, callee: &Expr, args: &[Arg], at: Span) -> Res<Val> {
        // `reshape[d -> (h, e)](x)`: a primitive with dim parameters.
        if let ExprKind::Index { base, items } = &callee.kind {
            if let Val::Callable(Callee::Prim(p)) = self.eval(base)? {
                let args = self.eval_args(args)?;
                return self.prim(p, Some(items), args, at);
            }
        }
        let f = self.eval(callee)?;
        let args = self.eval_args(args)?;
        match f {
            Val::Callable(Callee::Prim(p)) => self.prim(p, None, args, at),
            Val::Callable(Callee::Fn(m, i)) => self.call_fn(m, i, args, at),
            Val::Callable(Callee::Module(m, i)) => self.instantiate(m, i, args, at),
            Val::Callable(Callee::Init(name)) => self.initialiser(&name, args, at),
            Val::Callable(Callee::Other) | Val::Opaque => Ok(Val::Opaque),
            Val::Instance(i) => self.apply(i, args, at),
            other => {
                let loc = self.loc(callee.span);
                self.report(
                    Code::E0217,
                    loc,
                    format!("{} cannot be called", other.describe()),
                    "called here",
                    "calls apply functions, primitives, modules (to hyperparameters) and module instances (to inputs)",
                );
                Err(())
            }
        }
    }

    /// Calls `callee` on arguments already evaluated (a `loss` item adds
    /// the token mask to the ones written).
    pub fn call_with(&mut self, callee: &Expr, args: Vec<ArgVal>, at: Span) -> Res<Val> {
        match self.eval(callee)? {
            Val::Callable(Callee::Prim(p)) => self.prim(p, None, args, at),
            Val::Callable(Callee::Fn(m, i)) => self.call_fn(m, i, args, at),
            Val::Callable(Callee::Module(m, i)) => self.instantiate(m, i, args, at),
            Val::Instance(i) => self.apply(i, args, at),
            _ => Ok(Val::Opaque),
        }
    }

    pub fn eval_args(&mut self, args: &[Arg]) -> Res<Vec<ArgVal>> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            let val = self.eval(&a.value)?;
            out.push(ArgVal {
                name: a.name.as_ref().map(|n| n.name.clone()),
                val,
                loc: self.loc(a.value.span),
            });
        }
        Ok(out)
    }

    fn push_frame(
        &mut self,
        module: ModuleId,
        scope: usize,
        instance: Option<usize>,
        at: Span,
        callee: &str,
    ) {
        let call_site = Some(self.loc(at));
        self.frames
            .push(Frame::new(module, scope, instance, call_site, callee));
    }

    fn pop_frame(&mut self) {
        if self.frames.len() > 1 {
            self.frames.pop();
        }
    }

    fn call_fn(&mut self, m: ModuleId, i: usize, args: Vec<ArgVal>, at: Span) -> Res<Val> {
        let Some(ItemKind::Fn(f)) = item_kind(self.consts.program, m, i) else {
            return Ok(Val::Opaque);
        };
        if self.frames.len() > 64 {
            return self.too_deep(at, &f.name.name);
        }
        let scope = self.frame().scope;
        self.push_frame(m, scope, None, at, &f.name.name);
        let result = self.fn_body(f, args, at).map(|v| self.unrename(v));
        self.pop_frame();
        result
    }

    fn fn_body(&mut self, f: &FnItem, args: Vec<ArgVal>, at: Span) -> Res<Val> {
        self.bind_params(&f.params, args, &f.name.name, at)?;
        let result = self.run_body(&f.body)?;
        let Some((v, ret_span)) = result else {
            return Ok(Val::Opaque);
        };
        match &f.ret {
            Some(ty) => {
                let loc = self.loc(ret_span);
                self.match_type(ty, v, loc, "the result")
            }
            None => Ok(v),
        }
    }

    /// Gives dims that a signature named back their anonymity, so a
    /// callee's generic names (`h`, `e`) do not leak into the caller.
    fn unrename(&self, v: Val) -> Val {
        let renamed = &self.frame().renamed;
        if renamed.is_empty() {
            return v;
        }
        match v {
            Val::Tensor(mut t) => {
                for d in &mut t.ty.dims {
                    if let Some((_, orig)) = renamed
                        .iter()
                        .find(|(n, o)| *n == d.name && o.size == d.size)
                    {
                        d.name = orig.name.clone();
                    }
                }
                Val::Tensor(t)
            }
            Val::Tuple(items) => Val::Tuple(items.into_iter().map(|x| self.unrename(x)).collect()),
            other => other,
        }
    }

    fn too_deep(&mut self, at: Span, name: &str) -> Res<Val> {
        let loc = self.loc(at);
        self.report(
            Code::E0217,
            loc,
            format!("calls nest more than 64 deep at `{name}`"),
            "this call",
            "functions and modules may not call themselves, directly or through others",
        );
        Err(())
    }

    /// `Linear(d_in: 4, d_out: 8)`: binds the hyperparameters and makes an
    /// instance (or, when the same body runs again for a reapplied
    /// instance, finds the one made the first time).
    fn instantiate(&mut self, m: ModuleId, i: usize, args: Vec<ArgVal>, at: Span) -> Res<Val> {
        let Some(ItemKind::Module(md)) = item_kind(self.consts.program, m, i) else {
            return Ok(Val::Opaque);
        };
        if self.frames.len() > 64 {
            return self.too_deep(at, &md.name.name);
        }
        let scope = self.frame().scope;
        self.push_frame(m, scope, None, at, &md.name.name);
        let bound = self
            .bind_params(&md.hyper, args, &md.name.name, at)
            .and_then(|()| self.check_choices(md));
        let hyper = std::mem::take(&mut self.frame_mut().locals);
        let setters = std::mem::take(&mut self.frame_mut().setters);
        self.pop_frame();
        bound?;
        let kind = InstKind::Module {
            module: m,
            item: i,
            hyper,
            setters,
        };
        Ok(Val::Instance(self.new_instance(kind, at)))
    }

    /// Registers an instance made in the current frame, or returns the one
    /// made at the same point of an earlier run of the same body.
    pub fn new_instance(&mut self, kind: InstKind, at: Span) -> usize {
        let parent = self.frame().instance;
        let made = self.frame().made;
        self.frame_mut().made += 1;
        if let Some(p) = parent {
            if let Some(&existing) = self.instances[p].children.get(made) {
                return existing;
            }
        }
        let created_at = self.loc(at);
        self.instances.push(Instance {
            kind,
            name: None,
            parent_scope: self.frame().scope,
            scope: None,
            params: Default::default(),
            children: Vec::new(),
            created_at,
            applied: false,
        });
        let id = self.instances.len() - 1;
        if let Some(p) = parent {
            self.instances[p].children.push(id);
        }
        id
    }

    fn module_name(&self, i: usize) -> String {
        match &self.instances[i].kind {
            InstKind::Module { module, item, .. } => {
                match item_kind(self.consts.program, *module, *item) {
                    Some(ItemKind::Module(md)) => md.name.name.clone(),
                    _ => "module".to_string(),
                }
            }
            InstKind::Repeat { .. } => "repeat".to_string(),
            InstKind::Sequential(_) => "sequential".to_string(),
        }
    }

    /// The instance's scope, made on first use.
    fn instance_scope(&mut self, i: usize, repeat: i64) -> usize {
        if let Some(s) = self.instances[i].scope {
            return s;
        }
        let module = self.module_name(i);
        let name = self.instances[i]
            .name
            .clone()
            .unwrap_or_else(|| snake(&module));
        let parent = self.instances[i].parent_scope;
        let s = self.new_scope(parent, &name, &module, repeat);
        self.instances[i].scope = Some(s);
        s
    }

    /// Applies an instance to its inputs.
    pub fn apply(&mut self, i: usize, args: Vec<ArgVal>, at: Span) -> Res<Val> {
        if self.frames.len() > 64 {
            return self.too_deep(at, &self.module_name(i));
        }
        let kind = self.instances[i].kind.clone();
        match kind {
            InstKind::Module {
                module,
                item,
                hyper,
                setters,
            } => {
                let Some(ItemKind::Module(md)) = item_kind(self.consts.program, module, item)
                else {
                    return Ok(Val::Opaque);
                };
                let scope = self.instance_scope(i, 1);
                self.instances[i].applied = true;
                if self.graph.scopes[scope].hyper.is_empty() {
                    self.graph.scopes[scope].hyper =
                        hyper.iter().map(|(n, v)| (n.clone(), value(v))).collect();
                }
                self.push_frame(module, scope, Some(i), at, &md.name.name);
                self.frame_mut().locals = hyper;
                self.frame_mut().setters = setters;
                let result = self.module_body(md, args, at).map(|v| self.unrename(v));
                self.pop_frame();
                result
            }
            InstKind::Repeat { count, inner } => {
                let outer = self.instance_scope(i, 1);
                self.instances[i].applied = true;
                if self.instances[inner].scope.is_none() {
                    let module = self.module_name(inner);
                    let s = self.new_scope(outer, "layer", &module, count);
                    self.instances[inner].scope = Some(s);
                }
                let input = args.first().map(|a| (a.val.clone(), a.loc));
                let out = self.apply(inner, args, at)?;
                if let (Some((Val::Tensor(x), _)), Val::Tensor(y), Some(body)) =
                    (&input, &out, self.instances[inner].scope)
                {
                    if let (Some(a), Some(b)) = (x.src, y.src) {
                        self.graph.scopes[body].carry = Some((a, b));
                    }
                }
                if let (Some((Val::Tensor(x), loc)), Val::Tensor(y)) = (&input, &out) {
                    let same = x.ty.dims.len() == y.ty.dims.len()
                        && x.ty
                            .dims
                            .iter()
                            .zip(&y.ty.dims)
                            .all(|(a, b)| a.matches(b).is_ok());
                    if !same {
                        let created = self.instances[inner].created_at;
                        self.report_with(
                            Code::E0211,
                            *loc,
                            format!(
                                "`repeat` needs a block that maps its input to the same type, but `{}` maps `{}` to `{}`",
                                self.module_name(inner),
                                x.ty,
                                y.ty
                            ),
                            "the input of the repeated block",
                            "each copy feeds the next, so the block's output type must equal its input type",
                            vec![(created, "the repeated block".to_string())],
                        );
                        return Err(());
                    }
                }
                Ok(out)
            }
            InstKind::Sequential(list) => {
                self.instance_scope(i, 1);
                self.instances[i].applied = true;
                let mut args = args;
                let mut out = Val::Opaque;
                for inner in list {
                    out = self.apply(inner, args, at)?;
                    args = vec![ArgVal {
                        name: None,
                        val: out.clone(),
                        loc: self.loc(at),
                    }];
                }
                Ok(out)
            }
        }
    }

    fn module_body(&mut self, md: &ModuleItem, args: Vec<ArgVal>, at: Span) -> Res<Val> {
        self.bind_params(&md.inputs, args, &md.name.name, at)?;
        let Some((v, ret_span)) = self.run_body(&md.body)? else {
            return Ok(Val::Opaque);
        };
        match &md.ret {
            Some(ty) => {
                let loc = self.loc(ret_span);
                self.match_type(ty, v, loc, "the result")
            }
            None => Ok(v),
        }
    }

    /// Binds arguments to a parameter list in the current (callee) frame.
    fn bind_params(
        &mut self,
        list: &ParamList,
        args: Vec<ArgVal>,
        callee: &str,
        at: Span,
    ) -> Res<()> {
        let call = self.frame().call_site.unwrap_or_else(|| self.loc(at));
        let mut slots: Vec<Option<ArgVal>> = vec![None; list.params.len()];
        let mut next = 0;
        for a in args {
            let index = match &a.name {
                None => {
                    if next >= list.params.len() {
                        self.report(
                            Code::E0217,
                            a.loc,
                            format!(
                                "`{callee}` takes {} arguments, but more were given",
                                list.params.len()
                            ),
                            "one argument too many",
                            "remove the extra argument, or pass it by name",
                        );
                        return Err(());
                    }
                    next += 1;
                    next - 1
                }
                Some(n) => match list.params.iter().position(|p| p.name.name == *n) {
                    Some(i) => i,
                    None => {
                        let names: Vec<&str> =
                            list.params.iter().map(|p| p.name.name.as_str()).collect();
                        let help = match crate::resolve::closest(n, names.iter().copied()) {
                            Some(s) => {
                                format!("did you mean `{s}`? `{callee}` takes {}", names.join(", "))
                            }
                            None => format!("`{callee}` takes {}", names.join(", ")),
                        };
                        self.report(
                            Code::E0217,
                            a.loc,
                            format!("`{callee}` has no parameter `{n}`"),
                            "unknown argument",
                            &help,
                        );
                        return Err(());
                    }
                },
            };
            slots[index] = Some(a);
        }
        for (p, slot) in list.params.iter().zip(slots) {
            let (v, loc, outer) = match slot {
                Some(a) => (a.val, a.loc, true),
                None => match &p.default {
                    Some(d) => (self.eval(d)?, self.loc(d.span), false),
                    None => {
                        self.report(
                            Code::E0217,
                            call,
                            format!("`{callee}` needs the argument `{}`", p.name.name),
                            "missing an argument",
                            &format!("pass `{}: ...`", p.name.name),
                        );
                        return Err(());
                    }
                },
            };
            let v = match &p.ty {
                Some(ty) => self.match_type(ty, v, loc, &format!("`{}`", p.name.name))?,
                None => v,
            };
            self.set_by(&p.name.name, &v, loc, outer);
            self.bind(&p.name.name, v);
        }
        Ok(())
    }

    /// Runs statements; returns the value of `return` and where it was.
    pub fn run_body(&mut self, body: &Body) -> Res<Option<(Val, Span)>> {
        self.run_stmts(&body.stmts)
    }

    fn run_stmts(&mut self, stmts: &[Stmt]) -> Res<Option<(Val, Span)>> {
        for s in stmts {
            match &s.kind {
                StmtKind::Let { name, ty, value } => {
                    let mut v = self.eval(value)?;
                    if let Val::Instance(i) = v {
                        if self.instances[i].name.is_none() {
                            self.instances[i].name = Some(name.name.clone());
                        }
                    }
                    if let Some(ty) = ty {
                        let loc = self.loc(value.span);
                        v = self.match_type(ty, v, loc, &format!("`{}`", name.name))?;
                    }
                    self.note_type(name.span, crate::check::FactKind::Binding, &v);
                    let loc = self.loc(value.span);
                    self.set_by(&name.name, &v, loc, false);
                    self.bind(&name.name, v);
                }
                StmtKind::Param { name, ty, init, .. } => {
                    let v = self.param(name, ty, init.as_ref(), s.span)?;
                    self.note_type(name.span, crate::check::FactKind::Binding, &v);
                    self.bind(&name.name, v);
                }
                StmtKind::Predict { name, ty, value } => {
                    let mut v = self.eval(value)?;
                    if let Some(ty) = ty {
                        let loc = self.loc(value.span);
                        v = self.match_type(ty, v, loc, &format!("`{}`", name.name))?;
                    }
                    self.note_type(name.span, crate::check::FactKind::Binding, &v);
                    self.predicts.push((name.name.clone(), v.clone()));
                    self.bind(&name.name, v);
                }
                StmtKind::Return(e) => return Ok(Some((self.eval(e)?, e.span))),
                StmtKind::If(i) => {
                    if let Some(r) = self.if_stmt(i)? {
                        return Ok(Some(r));
                    }
                }
            }
        }
        Ok(None)
    }

    fn if_stmt(&mut self, i: &IfStmt) -> Res<Option<(Val, Span)>> {
        let depth = self.frame().locals.len();
        let result = if self.condition(&i.cond)? {
            self.run_stmts(&i.then.stmts)
        } else {
            match &i.els {
                Some(Else::If(inner)) => self.if_stmt(inner),
                Some(Else::Body(b)) => self.run_stmts(&b.stmts),
                None => Ok(None),
            }
        };
        // Names bound inside a branch end with it.
        self.frame_mut().locals.truncate(depth);
        result
    }

    /// `param w: [d_out, d_in] = normal(std: 0.02)`.
    fn param(&mut self, name: &Ident, ty: &TypeExpr, init: Option<&Expr>, at: Span) -> Res<Val> {
        let scope = self.frame().scope;
        let key = (scope, name.name.clone());
        if let Some(p) = self.params_by_scope.get(&key) {
            return Ok(Val::Tensor(p.clone()));
        }
        let (dtype, shape) = match &ty.kind {
            TypeKind::Shape(s) => (DType::Float, s),
            TypeKind::Named {
                name: n,
                shape: Some(s),
                ..
            } => (DType::parse(&n.name).unwrap_or(DType::Float), s),
            TypeKind::Named { .. } => {
                let loc = self.loc(ty.span);
                self.report(
                    Code::E0217,
                    loc,
                    "a `param` needs a shape: `param w: [d_out, d_in]`".into(),
                    "not a shape",
                    "write the parameter's dims in brackets",
                );
                return Err(());
            }
        };
        let mut dims = Vec::with_capacity(shape.dims.len());
        for sd in &shape.dims {
            let ShapeDimKind::Dim { size, rate } = &sd.kind else {
                let loc = self.loc(sd.span);
                self.report(
                    Code::E0217,
                    loc,
                    "a parameter's shape cannot have `...`".into(),
                    "not a fixed dim",
                    "a parameter has a fixed shape; name every dim",
                );
                return Err(());
            };
            let mut d = self.shape_dim(size, rate.as_ref(), sd.span)?;
            if d.size.is_none() {
                let loc = self.loc(sd.span);
                self.report(
                    Code::E0217,
                    loc,
                    format!(
                        "`{}` has no size here, so the parameter `{}` has no shape",
                        self.text(sd.span),
                        name.name
                    ),
                    "size unknown",
                    "a duration dim needs a rate to have a size (`T @ 8Hz`)",
                );
                return Err(());
            }
            // A size passed in as an argument keeps the argument as its
            // origin: that is what the user can change.
            if d.origin.is_none() {
                d.origin = Some(self.loc(sd.span));
            }
            dims.push(d);
        }
        let init = match init {
            Some(e) => match self.eval(e)? {
                Val::Init(i) => i,
                other => {
                    let loc = self.loc(e.span);
                    self.report(
                        Code::E0217,
                        loc,
                        format!("a parameter is initialised by an initialiser, not {}", other.describe()),
                        "not an initialiser",
                        "use one of normal, trunc_normal, uniform, zeros, ones, constant, xavier_*, kaiming_*, scaled_normal",
                    );
                    return Err(());
                }
            },
            None => crate::ir::init::DEFAULT_INIT,
        };
        let ty = Tensor::new(dtype, dims);
        let per_session = self.is_per_session(&ty);
        let path = format!("{}.{}", self.graph.scopes[scope].path, name.name);
        self.graph.params.push(crate::ir::Param {
            path: path.trim_start_matches('.').to_string(),
            scope,
            ty: ty.clone(),
            init,
            per_session,
        });
        let _ = at;
        let t = TVal {
            ty,
            src: Some(crate::ir::ValueRef::Param(self.graph.params.len() - 1)),
            parts: None,
        };
        self.params_by_scope.insert(key, t.clone());
        if let Some(i) = self.frame().instance {
            self.instances[i]
                .params
                .insert(name.name.clone(), t.clone());
        }
        Ok(Val::Tensor(t))
    }

    /// A dim written in a shape, evaluated in the current frame: its name,
    /// size and rate (`T @ 8Hz` over `dim T = 2s` is 16 samples).
    pub fn shape_dim(&mut self, size: &Expr, rate: Option<&Expr>, at: Span) -> Res<Dim> {
        let v = self.eval(size)?;
        let mut d = match v {
            Val::Const(Value::Quantity(q)) if q.dim == Dimension::TIME => Dim {
                name: Size::symbol(&self.text(size.span)),
                size: None,
                rate: None,
                origin: Some(self.loc(size.span)),
                soft: false,
            },
            other => match as_dim(&other) {
                Some(d) => d,
                None => {
                    let loc = self.loc(size.span);
                    self.report(
                        Code::E0217,
                        loc,
                        format!("a dim must be a size, found {}", other.describe()),
                        "not a dim",
                        "dims are whole numbers, dim names or expressions of them",
                    );
                    return Err(());
                }
            },
        };
        let Some(r) = rate else {
            return Ok(d);
        };
        let hz = match self.eval(r)? {
            Val::Const(Value::Quantity(q)) if q.dim == Dimension::RATE => q.value,
            other => {
                let loc = self.loc(r.span);
                self.report(
                    Code::E0204,
                    loc,
                    format!(
                        "a sampling rate must be a frequency, found {}",
                        other.describe()
                    ),
                    "not a rate",
                    "write a rate in Hz or kHz: `T @ 30Hz`",
                );
                return Err(());
            }
        };
        d.rate = Some(hz);
        // A duration at a rate has a size: 2 s at 8 Hz is 16 samples.
        if d.size.is_none() {
            let seconds = self.duration_of(size)?;
            let samples = Quantity::count(seconds * hz);
            match samples.as_whole() {
                Some(n) if n > 0 => d.size = Some(Size::constant(n)),
                _ => {
                    let loc = self.loc(at);
                    self.report(
                        Code::E0205,
                        loc,
                        format!(
                            "{}s at {}Hz is not a whole number of samples",
                            crate::ir::types::quantity::short(seconds),
                            crate::ir::types::quantity::short(hz)
                        ),
                        "not a whole number of samples",
                        "choose a window that is a multiple of the sampling period",
                    );
                    return Err(());
                }
            }
        }
        Ok(d)
    }

    fn duration_of(&mut self, e: &Expr) -> Res<f64> {
        match self.eval(e)? {
            Val::Const(Value::Quantity(q)) if q.dim == Dimension::TIME => Ok(q.value),
            Val::Dim(d) => match d.name.symbols().first() {
                Some(n) => {
                    let name = n.to_string();
                    match self.duration_dims.get(&name) {
                        Some(s) => Ok(*s),
                        None => Ok(0.0),
                    }
                }
                None => Ok(0.0),
            },
            _ => Ok(0.0),
        }
    }

    /// Matches a value against a declared type, binding the type's unbound
    /// dim names in the current frame. Returns the value as seen inside:
    /// anonymous dims take the names the signature gives them.
    pub fn match_type(&mut self, ty: &TypeExpr, v: Val, loc: Loc, what: &str) -> Res<Val> {
        let (kind, dtype, shape) = match &ty.kind {
            TypeKind::Shape(s) => (None, None, Some(s)),
            TypeKind::Named { name, shape, .. } => (
                Some(name.name.as_str()),
                DType::parse(&name.name),
                shape.as_ref(),
            ),
        };
        match (kind, shape, v) {
            (Some("dim"), _, v) => match as_dim(&v) {
                Some(mut d) => {
                    if d.origin.is_none() {
                        d.origin = Some(loc);
                    }
                    Ok(Val::Dim(d))
                }
                None => self.kind_mismatch(loc, what, "a dim", &v, ty),
            },
            (Some("int"), None, v @ Val::Const(Value::Size(_))) => Ok(v),
            (Some("int"), None, Val::Dim(d))
                if d.size.as_ref().is_some_and(|s| s.as_const().is_some()) =>
            {
                Ok(Val::Const(Value::Size(
                    d.size.unwrap_or_else(|| Size::constant(0)),
                )))
            }
            (Some("int"), Some(s), Val::Tuple(items)) => {
                // `int[3]`: a list of three whole numbers.
                let want = match s.dims.as_slice() {
                    [ShapeDim {
                        kind: ShapeDimKind::Dim { size, .. },
                        ..
                    }] => match self.eval(size)? {
                        Val::Const(Value::Size(n)) => {
                            n.as_const().and_then(|n| usize::try_from(n).ok())
                        }
                        _ => None,
                    },
                    _ => None,
                };
                if want.is_some_and(|n| n != items.len())
                    || !items
                        .iter()
                        .all(|x| matches!(x, Val::Const(Value::Size(_))))
                {
                    let v = Val::Tuple(items);
                    let n = want.map(|n| n.to_string()).unwrap_or_default();
                    return self.kind_mismatch(
                        loc,
                        what,
                        &format!("a list of {n} whole numbers"),
                        &v,
                        ty,
                    );
                }
                Ok(Val::Tuple(items))
            }
            (Some("float"), None, Val::Const(Value::Size(s))) => match s.as_const() {
                Some(c) => Ok(Val::Const(Value::Float(c as f64))),
                None => self.kind_mismatch(loc, what, "a number", &Val::Const(Value::Size(s)), ty),
            },
            (Some("float"), None, v @ Val::Const(Value::Float(_))) => Ok(v),
            (Some("bool"), None, v @ Val::Const(Value::Bool(_))) => Ok(v),
            (Some("str"), None, v @ Val::Const(Value::Str(_))) => Ok(v),
            (Some("duration" | "rate" | "bytes"), None, v @ Val::Const(Value::Quantity(_))) => {
                Ok(v)
            }
            (Some("dtype"), None, v @ Val::Const(Value::Symbol(_))) => Ok(v),
            (Some("module"), None, v @ (Val::Instance(_) | Val::Callable(Callee::Module(..)))) => {
                Ok(v)
            }
            (Some("tensor"), None, v @ Val::Tensor(_)) => Ok(v),
            (Some("events" | "intervals"), shape, Val::Record(fields)) => {
                if let (Some(s), Some((_, Val::Tensor(t)))) =
                    (shape, fields.iter().find(|(n, _)| n == "dims"))
                {
                    self.match_shape(s, t.clone(), None, loc, what)?;
                }
                Ok(Val::Record(fields))
            }
            (_, Some(s), v)
                if kind.is_none_or(|k| dtype.is_some() || matches!(k, "video" | "series")) =>
            {
                let t = match v {
                    Val::Tensor(t) => t,
                    // A constant broadcasts to any shape (a default such as
                    // `mask: bool[..., N] = true`).
                    Val::Const(Value::Bool(_))
                    | Val::Const(Value::Float(_))
                    | Val::Const(Value::Size(_)) => return Ok(v),
                    other => return self.kind_mismatch(loc, what, "a tensor", &other, ty),
                };
                let want = match (&ty.kind, dtype) {
                    (TypeKind::Named { args, .. }, None) => {
                        args.first().and_then(|a| match &a.kind {
                            TypeKind::Named { name, .. } => DType::parse(&name.name),
                            _ => None,
                        })
                    }
                    (_, d) => d,
                };
                Ok(Val::Tensor(self.match_shape(s, t, want, loc, what)?))
            }
            (_, _, v @ Val::Opaque) => Ok(v),
            (_, _, v) => {
                let expected = match kind {
                    Some("int") if shape.is_some() => "a list of whole numbers".to_string(),
                    Some(k) => format!("`{}`", k),
                    None => "a tensor".to_string(),
                };
                self.kind_mismatch(loc, what, &expected, &v, ty)
            }
        }
    }

    fn kind_mismatch(
        &mut self,
        loc: Loc,
        what: &str,
        expected: &str,
        v: &Val,
        ty: &TypeExpr,
    ) -> Res<Val> {
        let decl = self.loc(ty.span);
        // Records the user did not build: say what they are and how to get
        // a tensor from them.
        let fields: Vec<&str> = match v {
            Val::Record(f) => f.iter().map(|(n, _)| n.as_str()).collect(),
            _ => Vec::new(),
        };
        let (found, help) = if fields.contains(&"unit") && fields.contains(&"time") {
            (
                "an events modality (spike times per unit), not values".to_string(),
                "bin the events into counts with a modality of their own (`modality counts: series<f32>[T @ 50Hz, N] from spikes | bin(20ms)`) and pass the counts, or tokenize the spikes themselves with `SpikeTokens`".to_string(),
            )
        } else if fields.contains(&"start") && fields.contains(&"stop") {
            (
                "an intervals modality (start and stop times)".to_string(),
                "pass its `start` or `stop` field, or use it to restrict the windows (`within:` in the data block)".to_string(),
            )
        } else if matches!(v, Val::Record(_)) {
            (
                format!("a record with the fields {}", fields.join(", ")),
                "pass one of its fields: `record.name`".to_string(),
            )
        } else {
            (
                v.describe(),
                "pass a value of the declared type".to_string(),
            )
        };
        self.report_with(
            Code::E0217,
            loc,
            format!("{what} must be {expected}, but this is {found}"),
            "wrong kind of value",
            &help,
            vec![(decl, "declared here".to_string())],
        );
        Err(())
    }

    /// Matches a tensor against a declared shape (and dtype).
    pub fn match_shape(
        &mut self,
        shape: &Shape,
        mut t: TVal,
        dtype: Option<DType>,
        loc: Loc,
        what: &str,
    ) -> Res<TVal> {
        let decl = self.loc(shape.span);
        if let Some(want) = dtype {
            let ok = want == t.ty.dtype
                || (want.is_int() && t.ty.dtype.is_int())
                || (want.is_float() && t.ty.dtype.is_float());
            if !ok {
                self.report_with(
                    Code::E0214,
                    loc,
                    format!(
                        "{what} must have dtype `{}`, but this tensor is `{}`",
                        want.as_str(),
                        t.ty
                    ),
                    "wrong dtype",
                    "convert it with `cast(x, dtype)` or pass a tensor of the declared dtype",
                    vec![(decl, "declared here".to_string())],
                );
                return Err(());
            }
        }
        let ellipsis = shape
            .dims
            .iter()
            .position(|d| matches!(d.kind, ShapeDimKind::Ellipsis));
        let fixed = shape.dims.len() - usize::from(ellipsis.is_some());
        let n = t.ty.dims.len();
        let fits = if ellipsis.is_some() {
            n >= fixed
        } else {
            n == fixed
        };
        if !fits {
            let source = self.text(shape.span);
            self.report_with(
                Code::E0213,
                loc,
                format!(
                    "{what} must have the shape `{source}`, but this tensor is `{}`",
                    t.ty
                ),
                &format!(
                    "{} dims where `{source}` needs {}{}",
                    n,
                    if ellipsis.is_some() { "at least " } else { "" },
                    fixed
                ),
                "check the tensor passed; reshape or reduce it first if needed",
                vec![(decl, "declared here".to_string())],
            );
            return Err(());
        }
        // Declared dims after the ellipsis pair with the trailing dims.
        let start = match ellipsis {
            Some(e) => {
                let after = shape.dims.len() - e - 1;
                let before = e;
                // `[a, ..., b]`: the first `before` and the last `after`.
                (0..before).chain(n - after..n).collect::<Vec<usize>>()
            }
            None => (0..n).collect(),
        };
        let declared: Vec<&ShapeDim> = shape
            .dims
            .iter()
            .filter(|d| !matches!(d.kind, ShapeDimKind::Ellipsis))
            .collect();
        for (sd, &pos) in declared.iter().zip(&start) {
            let ShapeDimKind::Dim { size, rate } = &sd.kind else {
                continue;
            };
            let actual = t.ty.dims[pos].clone();
            if let ExprKind::Path(p) = &size.kind {
                if p.len() == 1 && !self.visible(&p[0].name) {
                    // A generic dim: bind it to the argument's dim.
                    let mut d = actual.clone();
                    if d.is_anon() {
                        // Inside the callee the dim goes by the signature's
                        // name; it gets its anonymity back on the way out.
                        // A soft name: it still matches any dim of its
                        // size, as the anonymous dim did.
                        d.name = Size::symbol(&p[0].name);
                        d.soft = true;
                        self.frame_mut()
                            .renamed
                            .push((d.name.clone(), actual.clone()));
                    }
                    if let Some(r) = rate {
                        let want = match self.eval(r)? {
                            Val::Const(Value::Quantity(q)) if q.dim == Dimension::RATE => {
                                Some(q.value)
                            }
                            _ => None,
                        };
                        if let (Some(w), Some(a)) = (want, actual.rate) {
                            if (w - a).abs() > 1e-9 * w.max(a) {
                                let expected = Dim {
                                    rate: Some(w),
                                    ..actual.clone()
                                };
                                self.dim_mismatch(
                                    &expected,
                                    &actual,
                                    Mismatch::Rate,
                                    loc,
                                    sd,
                                    what,
                                    &t.ty,
                                );
                                return Err(());
                            }
                        }
                    }
                    t.ty.dims[pos] = d.clone();
                    self.bind(&p[0].name, Val::Dim(d));
                    continue;
                }
            }
            let mut expected = self.shape_dim(size, rate.as_ref(), sd.span)?;
            if expected.origin.is_none() {
                expected.origin = Some(self.loc(sd.span));
            }
            if let Err(why) = actual.matches(&expected) {
                self.dim_mismatch(&expected, &actual, why, loc, sd, what, &t.ty);
                if why == Mismatch::Name {
                    self.note_operand_order(&t);
                }
                return Err(());
            }
            t.ty.dims[pos] = actual.merge(&expected);
        }
        Ok(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn dim_mismatch(
        &mut self,
        expected: &Dim,
        actual: &Dim,
        why: Mismatch,
        loc: Loc,
        sd: &ShapeDim,
        what: &str,
        ty: &Tensor,
    ) {
        let declared = self.text(sd.span);
        let (code, message, help) = match why {
            Mismatch::Rate => (
                Code::E0212,
                format!(
                    "{what} needs `{declared}` at {}Hz, but this tensor's {} is sampled at {}Hz",
                    expected.rate.map(crate::ir::types::quantity::short).unwrap_or_default(),
                    actual.describe(),
                    actual.rate.map(crate::ir::types::quantity::short).unwrap_or_default()
                ),
                "resample explicitly (`| resample(rate)` on the modality) so both sides have the same rate",
            ),
            _ => (
                Code::E0211,
                {
                    // `N` (64) rather than `N` = `N` (64) when the signature
                    // names the dim itself.
                    let wanted = expected.describe();
                    // A signature's label for an anonymous size (`N` in a
                    // loss given 2 behaviour columns) is not the user's
                    // dim of that name: name the size only.
                    let wanted = if wanted.starts_with(&format!("`{declared}`")) || expected.soft {
                        wanted
                    } else {
                        format!("`{declared}` = {wanted}")
                    };
                    format!("{what} needs {wanted} here, but this tensor `{ty}` has {}", actual.describe())
                },
                if why == Mismatch::Name && expected.size == actual.size {
                    "dims are matched by name; if these are really the same dim, rename one with `reshape[a -> b]`, or check the order of the dims"
                } else if why == Mismatch::Name {
                    "dims are matched by name and size; check the order of the dims and where each got its size"
                } else {
                    "the sizes must agree; check where each side got its size"
                },
            ),
        };
        let mut notes = vec![(self.loc(sd.span), "declared here".to_string())];
        if let Some(o) = expected.origin {
            notes.push((o, format!("{} gets its size here", expected.describe())));
        }
        if let Some(o) = actual.origin {
            notes.push((o, format!("{} gets its size here", actual.describe())));
        }
        self.report_disagreement(
            code,
            loc,
            message,
            "this argument",
            help,
            notes,
            why,
            (expected, actual),
        );
    }

    /// Whether a name is bound in the current frame, its file or the
    /// builtins.
    fn visible(&self, name: &str) -> bool {
        self.frame().locals.iter().any(|(n, _)| n == name)
            || self
                .consts
                .program
                .module(self.module())
                .scope
                .contains_key(name)
            || builtins::lookup(name).is_some()
    }
}

/// Item `i` of module `m`, as the resolver loaded it.
fn item_kind(program: &Program, m: ModuleId, i: usize) -> Option<&ItemKind> {
    program
        .module(m)
        .ast
        .as_ref()?
        .items
        .get(i)
        .map(|it| &it.kind)
}

/// `Linear` -> `linear`, `TransformerBlock` -> `transformer_block`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An argument as text, for initialisers: `std: 0.02`.
/// An elaboration value as the IR keeps a hyperparameter: numbers,
/// strings and lists as they are, a dim as its size; modules and other
/// values that only elaboration has are opaque.
fn value(v: &Val) -> Value {
    match v {
        Val::Const(v) => v.clone(),
        Val::Dim(d) => Value::Size(d.size_or_name()),
        Val::Tuple(items) => Value::List(items.iter().map(value).collect()),
        Val::Tensor(_)
        | Val::Callable(_)
        | Val::Instance(_)
        | Val::Record(_)
        | Val::Namespace(_)
        | Val::Init(_)
        | Val::Opaque => Value::Opaque,
    }
}

impl Elab<'_, '_> {
    /// An initialiser call (`normal(std: 0.02)`) as the IR's [`Init`], with
    /// the documented defaults (`docs/primitives.md`, "Initialisers"). Its
    /// arguments are named numbers known before the run; `constant` needs
    /// its `value` and `scaled_normal` its `layers`.
    fn initialiser(&mut self, name: &str, args: Vec<ArgVal>, at: Span) -> Res<Val> {
        let params: &[(&str, Option<f64>)] = match name {
            "zeros" | "ones" => &[],
            "constant" => &[("value", None)],
            "normal" => &[("mean", Some(0.0)), ("std", Some(1.0))],
            "scaled_normal" => &[("std", Some(0.02)), ("layers", None)],
            "trunc_normal" => &[
                ("mean", Some(0.0)),
                ("std", Some(1.0)),
                ("a", Some(-2.0)),
                ("b", Some(2.0)),
            ],
            "uniform" => &[("low", Some(0.0)), ("high", Some(1.0))],
            "xavier_uniform" | "xavier_normal" => &[("gain", Some(1.0))],
            "kaiming_uniform" | "kaiming_normal" => &[("a", Some(0.0))],
            _ => {
                let loc = self.loc(at);
                self.report(
                    Code::E0217,
                    loc,
                    format!("`{name}` is not an initialiser the runtime knows"),
                    "unknown initialiser",
                    "use one of normal, trunc_normal, uniform, zeros, ones, constant, xavier_*, kaiming_*, scaled_normal",
                );
                return Err(());
            }
        };
        let mut values: Vec<Option<f64>> = params.iter().map(|(_, d)| *d).collect();
        for a in &args {
            let Some(key) = &a.name else {
                self.report(
                    Code::E0217,
                    a.loc,
                    format!("the arguments of `{name}` are named: `{name}(std: 0.02)`"),
                    "unnamed argument",
                    "name the argument (docs/primitives.md lists each initialiser's arguments)",
                );
                return Err(());
            };
            let Some(slot) = params.iter().position(|(k, _)| k == key) else {
                let known: Vec<String> = params.iter().map(|(k, _)| format!("`{k}`")).collect();
                self.report(
                    Code::E0217,
                    a.loc,
                    format!("`{name}` has no argument `{key}`"),
                    "unexpected argument",
                    &if known.is_empty() {
                        format!("`{name}()` takes no arguments")
                    } else {
                        format!("`{name}` takes {}", known.join(", "))
                    },
                );
                return Err(());
            };
            match number(&a.val) {
                Some(v) if v.is_finite() => values[slot] = Some(v),
                _ => {
                    return self.wrong(
                        name,
                        &a.loc,
                        &format!("`{key}`"),
                        "a number known before the run",
                        &a.val,
                    )
                }
            }
        }
        let mut got = Vec::with_capacity(params.len());
        for ((key, _), v) in params.iter().zip(&values) {
            match v {
                Some(v) => got.push(*v),
                None => {
                    let loc = self.loc(at);
                    self.report(
                        Code::E0217,
                        loc,
                        format!("`{name}` needs the argument `{key}`"),
                        "missing an argument",
                        "docs/primitives.md lists each initialiser's arguments",
                    );
                    return Err(());
                }
            }
        }
        let arg = |i: usize| got.get(i).copied().unwrap_or(0.0);
        let init = match name {
            "zeros" => Init::Zeros,
            "ones" => Init::Ones,
            "constant" => Init::Constant { value: arg(0) },
            "normal" => Init::Normal {
                mean: arg(0),
                std: arg(1),
            },
            "scaled_normal" => Init::ScaledNormal {
                std: arg(0),
                layers: arg(1),
            },
            "trunc_normal" => Init::TruncNormal {
                mean: arg(0),
                std: arg(1),
                a: arg(2),
                b: arg(3),
            },
            "uniform" => Init::Uniform {
                low: arg(0),
                high: arg(1),
            },
            "xavier_uniform" => Init::XavierUniform { gain: arg(0) },
            "xavier_normal" => Init::XavierNormal { gain: arg(0) },
            "kaiming_uniform" => Init::KaimingUniform { a: arg(0) },
            _ => Init::KaimingNormal { a: arg(0) },
        };
        let bad = match init {
            Init::TruncNormal { a, b, .. } if a >= b => Some(format!(
                "`trunc_normal` needs `a` below `b`, not {a} and {b}"
            )),
            Init::Uniform { low, high } if low > high => Some(format!(
                "`uniform` needs `low` at most `high`, not {low} and {high}"
            )),
            Init::ScaledNormal { layers, .. } if layers < 1.0 => Some(format!(
                "`scaled_normal` needs `layers` of at least 1, not {layers}"
            )),
            _ => None,
        };
        if let Some(message) = bad {
            let loc = self.loc(at);
            self.report(
                Code::E0217,
                loc,
                message,
                "cannot be drawn from",
                "docs/primitives.md gives each initialiser's arguments",
            );
            return Err(());
        }
        Ok(Val::Init(init))
    }
}
