//! Top-level items: what the model sees (modalities), how it is fed
//! (tokenizers), the model itself and what it is trained and judged on
//! (losses and metrics).
//!
//! Items are evaluated on demand and memoised, so a tokenizer used by two
//! models or a model referred to by several losses is elaborated once. The
//! root file's items are visited in order; an item that fails is reported
//! once and poisons only the items that use it.

use std::rc::Rc;

use super::expr::from_value;
use super::{Callee, Elab, Res, TVal, Val};
use crate::check::consts::Consts;
use crate::diagnostics::Code;
use crate::ir::types::quantity::Dimension;
use crate::ir::types::size::Size;
use crate::ir::types::tensor::{DType, Dim, Tensor};
use crate::ir::types::Value;
use crate::ir::{Graph, Input, ModalityKind, Objective, ObjectiveKind, Op, Output, ValueRef};
use crate::resolve::{Binding, ModuleId};
use crate::syntax::ast::*;

/// Elaborates the root file's model, tokenizers, losses and metrics into
/// the typed IR. Returns `None` when an error was reported.
pub(in crate::check) fn elaborate(consts: &mut Consts, bound: &[(String, i64)]) -> Option<Graph> {
    let mut e = Elab::new(consts);
    e.bound.extend(bound.iter().cloned());
    e.collect_dims();
    e.settings();
    let program = e.consts.program;
    let root = program.root;
    let ast = program.module(root).ast.as_ref()?;
    for item in &ast.items {
        if let ItemKind::Tokenizer(t) = &item.kind {
            e.tokenizers.insert(t.name.name.clone());
        }
    }
    for item in &ast.items {
        match &item.kind {
            ItemKind::Modality(m) => {
                let _ = e.item_val(root, &m.name.name);
            }
            ItemKind::Tokenizer(t) => {
                let _ = e.item_val(root, &t.name.name);
            }
            ItemKind::Model(m) => {
                let _ = e.item_val(root, &m.name.name);
            }
            ItemKind::Loss(o) => {
                let _ = e.objective(ObjectiveKind::Loss, o);
            }
            ItemKind::Metric(o) => {
                let _ = e.objective(ObjectiveKind::Metric, o);
            }
            _ => {}
        }
    }
    if e.failed {
        None
    } else {
        Some(std::mem::take(&mut e.graph))
    }
}

impl Elab<'_, '_> {
    /// Which dims are durations and which are bound per session.
    fn collect_dims(&mut self) {
        let program = self.consts.program;
        for (i, m) in program.modules.iter().enumerate() {
            let Some(ast) = &m.ast else { continue };
            for item in &ast.items {
                let ItemKind::Dim(d) = &item.kind else {
                    continue;
                };
                if d.per_session.is_some() {
                    self.per_session.insert(d.name.name.clone());
                }
                if let Ok(Value::Quantity(q)) =
                    self.consts.item_value(ModuleId(i as u32), &d.name.name)
                {
                    if q.dim == Dimension::TIME {
                        self.duration_dims.insert(d.name.name.clone(), q.value);
                    }
                }
            }
        }
    }

    /// Precision, global batch and sessions, for the statistics.
    fn settings(&mut self) {
        let program = self.consts.program;
        let Some(ast) = program.root_module().ast.as_ref() else {
            return;
        };
        for item in &ast.items {
            match &item.kind {
                ItemKind::Train(block) => {
                    for entry in &block.entries {
                        let EntryKind::Setting { key, value } = &entry.kind else {
                            continue;
                        };
                        match (key.name.as_str(), &value.kind) {
                            ("precision", ExprKind::Path(p)) if p.len() == 1 => {
                                if let Some(dt) = DType::parse(&p[0].name) {
                                    self.graph.float_bytes = dt.bytes(4);
                                }
                            }
                            ("batch", ExprKind::Number(n)) if n.is_int => {
                                self.graph.global_batch = Some(n.value as i64);
                            }
                            _ => {}
                        }
                    }
                }
                ItemKind::Data(d) => {
                    if let ExprKind::Call { args, .. } = &d.source.kind {
                        for a in args {
                            if let (Some(n), ExprKind::Number(v)) = (&a.name, &a.value.kind) {
                                if n.name == "sessions" && v.is_int {
                                    self.graph.sessions = Some(v.value as i64);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The value of a top-level item, memoised.
    pub fn item_val(&mut self, module: ModuleId, name: &str) -> Res<Val> {
        let key = (module, name.to_string());
        if let Some(v) = self.items.get(&key) {
            return v.clone();
        }
        if !self.in_progress.insert(key.clone()) {
            // A cycle between items (a tokenizer used in its own
            // definition); the resolver's order rules make this rare.
            return Err(());
        }
        let program = self.consts.program;
        let m = program.module(module);
        let index = match m.scope.get(name) {
            Some(Binding::Item { index, .. }) => *index,
            _ => {
                self.in_progress.remove(&key);
                return Ok(Val::Opaque);
            }
        };
        let Some(item) = m.ast.as_ref().and_then(|a| a.items.get(index)) else {
            self.in_progress.remove(&key);
            return Ok(Val::Opaque);
        };
        let file = m.file;
        let v = match &item.kind {
            ItemKind::Dim(d) => self.dim_item(module, d, file),
            ItemKind::Let(l) => match self.consts.item_value(module, name) {
                Ok(Value::Opaque) => self.in_root_frame(module, |e| e.eval(&l.value)),
                Ok(v) => Ok(from_value(v)),
                Err(()) => Err(()),
            },
            ItemKind::Fn(_) => Ok(Val::Callable(Callee::Fn(module, index))),
            ItemKind::Module(_) => Ok(Val::Callable(Callee::Module(module, index))),
            ItemKind::Modality(md) => self.in_root_frame(module, |e| e.modality(md)),
            ItemKind::Tokenizer(t) => self.in_root_frame(module, |e| e.tokenizer(t)),
            ItemKind::Model(md) => self.in_root_frame(module, |e| e.model(md)),
            _ => Ok(Val::Opaque),
        };
        self.in_progress.remove(&key);
        self.items.insert(key, v.clone());
        v
    }

    fn in_root_frame(
        &mut self,
        module: ModuleId,
        f: impl FnOnce(&mut Self) -> Res<Val>,
    ) -> Res<Val> {
        let saved = std::mem::take(&mut self.frames);
        self.frames
            .push(super::Frame::new(module, 0, None, None, ""));
        let v = f(self);
        self.frames = saved;
        v
    }

    fn dim_item(&mut self, module: ModuleId, d: &DimItem, file: crate::base::FileId) -> Res<Val> {
        let origin = Some(crate::base::Loc {
            file,
            span: d.value.as_ref().map(|v| v.span).unwrap_or(d.name.span),
        });
        let size = match self.consts.item_value(module, &d.name.name)? {
            Value::Size(s) => Some(self.bind_sizes(&s)),
            Value::Quantity(q) if q.dim == Dimension::TIME => None,
            _ => Some(self.bind_sizes(&Size::symbol(&d.name.name))),
        };
        Ok(Val::Dim(Dim {
            name: Size::symbol(&d.name.name),
            size,
            rate: None,
            origin,
            soft: false,
        }))
    }

    /// A size with the dims the data bound replaced by their values.
    pub fn bind_sizes(&self, s: &Size) -> Size {
        s.substitute(&|name| self.bound.get(name).copied())
            .unwrap_or_else(|_| s.clone())
    }

    fn modality(&mut self, m: &ModalityItem) -> Res<Val> {
        let TypeKind::Named {
            name: kind,
            args,
            shape,
        } = &m.ty.kind
        else {
            return Ok(Val::Opaque);
        };
        // The resolver has reported a kind that is not one of the four.
        let Some(modality_kind) = ModalityKind::parse(&kind.name) else {
            return Ok(Val::Opaque);
        };
        let dtype = args
            .first()
            .and_then(|a| match &a.kind {
                TypeKind::Named { name, .. } => DType::parse(&name.name),
                _ => None,
            })
            .unwrap_or(DType::F32);
        let mut dims = vec![Dim::named("batch", Size::constant(self.graph.batch), None)];
        if let Some(s) = shape {
            for sd in &s.dims {
                let ShapeDimKind::Dim { size, rate } = &sd.kind else {
                    continue;
                };
                let mut d = self.shape_dim(size, rate.as_ref(), sd.span)?;
                if let Some(sz) = &d.size {
                    d.size = Some(self.bind_sizes(sz));
                }
                if d.origin.is_none() || d.is_anon() {
                    d.origin = Some(self.loc(sd.span));
                }
                dims.push(d);
            }
        }
        self.check_transforms(m, &dims)?;
        let ty = Tensor::new(dtype, dims);
        self.graph.inputs.push(Input {
            name: m.name.name.clone(),
            kind: modality_kind,
            ty: ty.clone(),
        });
        let src = Some(ValueRef::Input(self.graph.inputs.len() - 1));
        let whole = TVal {
            ty: ty.clone(),
            src,
            parts: None,
        };
        match modality_kind {
            ModalityKind::Events => {
                // The events of a window, padded to the longest window of
                // the batch: one position of `seq` per event.
                let seq = Dim::named(
                    "seq",
                    Size::symbol(&format!("{}_events", m.name.name)),
                    Some(self.loc(m.name.span)),
                );
                let batch = ty.dims[0].clone();
                let field = |dtype| {
                    Val::Tensor(TVal {
                        ty: Tensor::new(dtype, vec![batch.clone(), seq.clone()]),
                        src,
                        parts: None,
                    })
                };
                Ok(Val::Record(vec![
                    ("unit".to_string(), field(DType::I64)),
                    ("time".to_string(), field(DType::F32)),
                    ("dims".to_string(), Val::Tensor(whole)),
                ]))
            }
            ModalityKind::Intervals => {
                let field = |dtype| {
                    Val::Tensor(TVal {
                        ty: Tensor::new(dtype, ty.dims.clone()),
                        src,
                        parts: None,
                    })
                };
                Ok(Val::Record(vec![
                    ("start".to_string(), field(DType::F64)),
                    ("stop".to_string(), field(DType::F64)),
                    ("dims".to_string(), Val::Tensor(whole)),
                ]))
            }
            ModalityKind::Video | ModalityKind::Series => Ok(Val::Tensor(whole)),
        }
    }

    /// Checks the rate-changing transforms of a modality's pipeline
    /// against its declared rate: `bin(20ms)` makes 50 Hz, `resample(r)`
    /// makes `r`.
    fn check_transforms(&mut self, m: &ModalityItem, dims: &[Dim]) -> Res<()> {
        let Some(rate) = dims.iter().find_map(|d| d.rate) else {
            return Ok(());
        };
        for t in &m.transforms {
            let ExprKind::Call { callee, args } = &t.kind else {
                continue;
            };
            let ExprKind::Path(p) = &callee.kind else {
                continue;
            };
            let (Some(f), Some(arg)) = (p.last(), args.first()) else {
                continue;
            };
            if f.name != "bin" && f.name != "resample" {
                continue;
            }
            let made = match (f.name.as_str(), self.eval(&arg.value)?) {
                ("bin", Val::Const(Value::Quantity(q)))
                    if q.dim == Dimension::TIME && q.value > 0.0 =>
                {
                    1.0 / q.value
                }
                ("resample", Val::Const(Value::Quantity(q))) if q.dim == Dimension::RATE => q.value,
                _ => continue,
            };
            if (made - rate).abs() > 1e-9 * rate.max(made) {
                let loc = self.loc(t.span);
                let decl = self.loc(m.ty.span);
                let short = crate::ir::types::quantity::short;
                self.report_with(
                    Code::E0212,
                    loc,
                    format!(
                        "`{}` makes samples at {}Hz, but `{}` is declared at {}Hz",
                        self.text(t.span),
                        short(made),
                        m.name.name,
                        short(rate)
                    ),
                    "this step sets the rate",
                    "make the pipeline's last rate-changing step produce the declared rate",
                    vec![(decl, "the declared rate".to_string())],
                );
                return Err(());
            }
        }
        Ok(())
    }

    fn tokenizer(&mut self, t: &TokenizerItem) -> Res<Val> {
        let scope = self.new_scope(0, &t.name.name, "tokenizer", 1);
        self.frame_mut().scope = scope;
        let v = self.named_application(&t.value, &t.name.name)?;
        match v {
            Val::Tensor(mut tv) => {
                let seq = Size::symbol("seq");
                if let [i] = tv.ty.find(&seq).as_slice() {
                    let size = tv.ty.dims[*i].size_or_name();
                    tv.parts = Some(Rc::new(vec![(t.name.name.clone(), size)]));
                    Ok(Val::Tensor(tv))
                } else {
                    let loc = self.loc(t.value.span);
                    self.report(
                        Code::E0213,
                        loc,
                        format!("a tokenizer must return `[..., seq, d]`, but `{}` returns `{}`", t.name.name, tv.ty),
                        "no `seq` dim",
                        "end the tokenizer module with `reshape[(...) -> seq]` so the model can concatenate its tokens",
                    );
                    Err(())
                }
            }
            other => Ok(other),
        }
    }

    /// `Module(hyper)(inputs)`: the instance takes the item's name, so its
    /// parameters are `name.w` rather than `name.module.w`.
    fn named_application(&mut self, value: &Expr, name: &str) -> Res<Val> {
        if let ExprKind::Call { callee, args } = &value.kind {
            if let ExprKind::Call { .. } = &callee.kind {
                if let Val::Instance(i) = self.eval(callee)? {
                    self.instances[i].name = Some(name.to_string());
                    self.instances[i].parent_scope = 0;
                    let scope = self.frame().scope;
                    self.instances[i].scope = Some(scope);
                    let vals = self.eval_args(args)?;
                    return self.apply(i, vals, value.span);
                }
            }
        }
        self.eval(value)
    }

    fn model(&mut self, m: &ModelItem) -> Res<Val> {
        let scope = self.new_scope(0, &m.name.name, "model", 1);
        self.frame_mut().scope = scope;
        // A model's parameters take their defaults (the runtime may
        // override them from the command line, with values of the same
        // types).
        for p in m.params.iter().flat_map(|l| &l.params) {
            let Some(default) = &p.default else {
                let loc = self.loc(p.name.span);
                self.report(
                    Code::E0217,
                    loc,
                    format!(
                        "the model parameter `{}` needs a default to be checked",
                        p.name.name
                    ),
                    "no default",
                    "give model parameters defaults: `model brain(depth: int = 4)`",
                );
                return Err(());
            };
            let mut v = self.eval(default)?;
            if let Some(ty) = &p.ty {
                let loc = self.loc(default.span);
                v = self.match_type(ty, v, loc, &format!("`{}`", p.name.name))?;
            }
            self.bind(&p.name.name, v);
        }
        let saved = std::mem::take(&mut self.predicts);
        let result = self.run_body(&m.body);
        let predicts = std::mem::replace(&mut self.predicts, saved);
        result?;
        for (name, v) in &predicts {
            if let Val::Tensor(t) = v {
                if let Some(src) = t.src {
                    self.graph.outputs.push(Output {
                        model: m.name.name.clone(),
                        name: name.clone(),
                        value: src,
                        ty: t.ty.clone(),
                    });
                }
            }
        }
        Ok(Val::Record(predicts))
    }

    /// The mask of the model's masked tokenizer as a value of the graph:
    /// a `token_mask` node over the batch and the dims `mask_tokens` drew
    /// (`[batch, T, N]`, or `[batch, N]` for whole neurons), true where a
    /// token was masked. `None` when no `mask_tokens` ran.
    ///
    /// The node names its `mask_tokens` in the attribute `of` rather than
    /// taking its output as an input: the draw is a pure function of the
    /// run's seed, the step, the micro-batch and the sample, so the stage
    /// that computes the loss draws the same mask again instead of
    /// receiving the tokens' activations from the first stage.
    fn token_mask(&mut self) -> Option<TVal> {
        let (i, node, axes) =
            self.graph
                .nodes
                .iter()
                .enumerate()
                .find_map(|(i, n)| match &n.op {
                    Op::MaskTokens { axes, .. } => Some((i, n, axes)),
                    _ => None,
                })?;
        let batch = node.out.dims.first()?.clone();
        let mut dims = vec![batch];
        for &d in axes {
            dims.push(node.out.dims.get(d)?.clone());
        }
        let scope = node.scope;
        self.graph.nodes.push(crate::ir::Node {
            op: Op::TokenMask { of: i },
            scope,
            inputs: Vec::new(),
            out: Tensor::new(DType::Bool, dims.clone()),
            flops: Size::constant(0),
        });
        Some(TVal {
            ty: Tensor::new(DType::Bool, dims),
            src: Some(ValueRef::Node(self.graph.nodes.len() - 1)),
            parts: None,
        })
    }

    /// A loss or metric compares its first two tensors, the prediction
    /// and the target, over the same steps: a dim in time that one has and
    /// the other lacks would be broadcast, comparing one value per window
    /// with every step (legal elementwise, never what is meant).
    fn same_times(&mut self, kind: ObjectiveKind, args: &[super::call::ArgVal]) -> Res<()> {
        let tensors: Vec<(&TVal, crate::base::Loc)> = args
            .iter()
            .filter_map(|a| match &a.val {
                Val::Tensor(t) => Some((t, a.loc)),
                _ => None,
            })
            .take(2)
            .collect();
        let [(pred, pl), (target, _)] = tensors.as_slice() else {
            return Ok(());
        };
        let missing = |a: &TVal, b: &TVal| {
            a.ty.dims
                .iter()
                .find(|d| d.rate.is_some() && !b.ty.dims.iter().any(|e| e.name == d.name))
                .cloned()
        };
        let (dim, has, lacks) = match (missing(target, pred), missing(pred, target)) {
            (Some(d), _) => (d, "the target", "the prediction"),
            (None, Some(d)) => (d, "the prediction", "the target"),
            (None, None) => return Ok(()),
        };
        let help = if has == "the target" {
            format!("predict one value per step of {} (a per-step readout), or compare with the target reduced over it (`mean[{}](...)`)", dim.describe(), dim.name)
        } else {
            format!(
                "reduce the prediction over {} (`mean[{}](...)`), or predict the target's steps",
                dim.describe(),
                dim.name
            )
        };
        self.report(
            Code::E0211,
            *pl,
            format!(
                "{has} of this {} has {} but {lacks} does not: `{}` against `{}` would compare one value per window with every step",
                kind.name(),
                dim.describe(),
                pred.ty,
                target.ty
            ),
            &format!("{lacks} has no {}", dim.describe()),
            &help,
        );
        Err(())
    }

    /// Whether the function called reads its prediction as a log-rate: the
    /// standard library's `poisson_nll`, unless given `log_input: false`.
    fn reads_log_rate(&mut self, callee: &Expr, args: &[super::call::ArgVal]) -> bool {
        let Ok(Val::Callable(super::Callee::Fn(m, i))) = self.eval(callee) else {
            return false;
        };
        let program = self.consts.program;
        let module = program.module(m);
        let is_poisson = matches!(&module.key, crate::resolve::ModuleKey::Std(k) if k == "losses")
            && module
                .ast
                .as_ref()
                .and_then(|a| a.items.get(i))
                .is_some_and(
                    |it| matches!(&it.kind, ItemKind::Fn(f) if f.name.name == "poisson_nll"),
                );
        let linear = args.iter().enumerate().any(|(j, a)| {
            let named = a.name.as_deref() == Some("log_input") || (a.name.is_none() && j == 3);
            named && matches!(a.val, Val::Const(Value::Bool(false)))
        });
        is_poisson && !linear
    }

    fn objective(&mut self, kind: ObjectiveKind, o: &ObjectiveItem) -> Res<()> {
        let root = self.consts.program.root;
        // The block's keys and their kinds are checked with the other
        // settings (`check/settings.rs`); here, what they ask of the model.
        let setting = |name: &str| {
            o.config.as_ref().and_then(|c| {
                c.entries.iter().find_map(|en| match &en.kind {
                    EntryKind::Setting { key, value } if key.name == name => Some(value),
                    _ => None,
                })
            })
        };
        let masked_only =
            setting("masked_only").is_some_and(|v| matches!(v.kind, ExprKind::Bool(true)));
        // `masked_only: true` passes the recorded mask of the masked
        // tokenizer as the function's `mask`, so the graph computes the
        // objective on the masked positions and the runtime needs no rule
        // of its own.
        let mask = if masked_only { self.token_mask() } else { None };
        // After an earlier error the masked tokenizer may be what failed.
        if let (true, None, Some(v), false) =
            (masked_only, &mask, setting("masked_only"), self.failed)
        {
            let loc = self.loc(v.span);
            self.report(
                Code::E0217,
                loc,
                format!("`masked_only: true` scores the entries a tokenizer hid, but no tokenizer of this model masks any: the {} would be computed on nothing", kind.name()),
                "no masked tokenizer",
                "give the tokenizer a mask ratio (`UnitValues(d: d, mask: 0.5)`), or remove `masked_only` to score every entry",
            );
            return Err(());
        }
        let weight = match (kind, setting("weight")) {
            (ObjectiveKind::Loss, Some(w)) => {
                match self.in_root_frame(root, |e| e.eval(w))? {
                    Val::Const(Value::Float(f)) => Some((f, w.span)),
                    Val::Const(Value::Size(n)) => n.as_const().map(|n| (n as f64, w.span)),
                    // Not a number: reported with the block's settings.
                    _ => None,
                }
            }
            _ => None,
        };
        let mut log_rate = false;
        let v = self.in_root_frame(root, |e| match &o.value.kind {
            // A call of a function by name: its arguments are evaluated
            // here, to be compared and given the mask.
            ExprKind::Call { callee, args } if matches!(callee.kind, ExprKind::Path(_)) => {
                let mut args = e.eval_args(args)?;
                e.same_times(kind, &args)?;
                log_rate = e.reads_log_rate(callee, &args);
                if let Some(mask) = mask {
                    let loc = e.loc(o.value.span);
                    args.push(super::call::ArgVal {
                        name: Some("mask".to_string()),
                        val: Val::Tensor(mask),
                        loc,
                    });
                }
                e.call_with(callee, args, o.value.span)
            }
            _ => e.eval(&o.value),
        })?;
        // `weight:` scales the term in the graph, so every runtime sums
        // weighted terms without a rule of its own.
        let v = match (weight, v) {
            (Some((w, span)), Val::Tensor(t)) if w != 1.0 => {
                let at = o.value.span;
                self.elementwise(
                    crate::ir::Elementwise::Mul,
                    &[(Val::Tensor(t), at), (Val::Const(Value::Float(w)), span)],
                    at,
                )?
            }
            (_, v) => v,
        };
        let name = match (&o.label, &o.value.kind) {
            (Some(l), _) => l.name.clone(),
            (None, ExprKind::Call { callee, .. }) => self.text(callee.span),
            (None, _) => kind.name().to_string(),
        };
        let Val::Tensor(t) = v else {
            let loc = self.loc(o.value.span);
            self.report(
                Code::E0218,
                loc,
                format!(
                    "a {} must be a tensor, but this is {}",
                    kind.name(),
                    v.describe()
                ),
                "not a tensor",
                "call a loss or metric function on the model's predictions",
            );
            return Err(());
        };
        // A metric may be one value per unit (`[N]`), not per sample or
        // per time step.
        let per_unit = |d: &Dim| {
            d.rate.is_none() && d.name != Size::symbol("batch") && d.name != Size::symbol("seq")
        };
        let ok = t.ty.dims.is_empty()
            || (kind == ObjectiveKind::Metric && t.ty.dims.len() == 1 && per_unit(&t.ty.dims[0]));
        if !ok {
            let loc = self.loc(o.value.span);
            let help = if kind == ObjectiveKind::Loss {
                "a loss is one number per step: reduce it, for example with `mean(...)`"
            } else {
                "a metric is one number, or one per neuron (`[N]`)"
            };
            self.report(
                Code::E0218,
                loc,
                format!(
                    "a {} must be {}, but this is `{}`",
                    kind.name(),
                    if kind == ObjectiveKind::Loss {
                        "a scalar `[]`"
                    } else {
                        "a scalar or one value per unit"
                    },
                    t.ty
                ),
                "wrong shape",
                help,
            );
            return Err(());
        }
        if let Some(src) = t.src {
            self.graph.objectives.push(Objective {
                kind,
                name,
                value: src,
                ty: t.ty.clone(),
                masked_only,
                log_rate,
            });
        }
        Ok(())
    }
}
