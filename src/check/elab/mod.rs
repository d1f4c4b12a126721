//! Elaboration: running the model at compile time on tensor *types*.
//!
//! The elaborator is an interpreter whose tensors are types (dtype and
//! named dims with sizes) instead of data. It evaluates hyperparameters,
//! `if` on hyperparameters, module instantiation and application, `fn`
//! calls and `repeat` exactly as the runtime will, and applies each
//! primitive's shape rule (`prims/`). What it produces is the typed IR
//! (`crate::ir::Graph`), and what goes wrong is a diagnostic at the place
//! the user wrote: an error inside a standard-library module is reported at
//! the user's call site, with a note pointing into the library.
//!
//! - `mod.rs`: values, frames, name lookup and reporting;
//! - `expr.rs`: expressions, operators, indexing and fields;
//! - `call.rs`: calls, argument binding, signature matching and bodies;
//! - `items.rs`: top-level items (modalities, tokenizers, models, losses);
//! - `prims/`: the shape rule of every primitive.
//!
//! Every function that can fail returns `Res<T>`; `Err(())` means the
//! problem has been reported, so callers just stop.

mod blame;
mod call;
mod choices;
mod expr;
mod items;
mod prims;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::consts::Consts;
use crate::base::FileId;
use crate::base::Loc;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::types::tensor::Mismatch;
use crate::ir::types::Value;
use crate::ir::types::{Dim, Size, Tensor};
use crate::ir::{Graph, Scope, ValueRef};
use crate::resolve::{ModuleId, ModuleKey};

pub(super) use items::elaborate;

pub(super) type Res<T> = Result<T, ()>;

/// A tensor value: its type, the IR value it is, and, for token sequences,
/// which tokenizer produced which stretch of `seq`.
#[derive(Clone, Debug)]
pub(super) struct TVal {
    pub ty: Tensor,
    pub src: Option<ValueRef>,
    pub parts: Option<Rc<Vec<(String, Size)>>>,
}

/// What something callable is.
#[derive(Clone, Debug)]
pub(super) enum Callee {
    Prim(&'static str),
    Fn(ModuleId, usize),
    Module(ModuleId, usize),
    Init(String),
    /// A data source, data function, optimiser or schedule: not part of
    /// the model.
    Other,
}

/// A compile-time value.
#[derive(Clone, Debug)]
pub(super) enum Val {
    /// A compile-time scalar (a size, a number, a quantity, a boolean, a
    /// string or a symbol): the IR's one [`Value`]. Lists of values are
    /// [`Val::Tuple`]s here, since their items may be tensors or modules.
    Const(Value),
    Dim(Dim),
    Tensor(TVal),
    Tuple(Vec<Val>),
    Callable(Callee),
    Instance(usize),
    /// Named fields: a model's predictions, an events modality.
    Record(Vec<(String, Val)>),
    /// A whole module bound by `use std::nn`.
    Namespace(ModuleId),
    /// An initialiser with its arguments evaluated.
    Init(crate::ir::Init),
    /// Something that exists only at run time (a data source).
    Opaque,
}

impl Val {
    /// What the value is, for messages: `a tensor f32[batch, T, N]`.
    pub fn describe(&self) -> String {
        match self {
            Val::Const(Value::Size(s)) => format!("the integer `{s}`"),
            Val::Const(Value::Float(f)) => {
                format!("the number `{}`", crate::ir::types::quantity::short(*f))
            }
            Val::Const(Value::Quantity(q)) => format!("`{q}`"),
            Val::Const(Value::Bool(b)) => format!("`{b}`"),
            Val::Const(Value::Str(s)) => format!("the string \"{s}\""),
            Val::Const(Value::Symbol(s)) => format!("`{s}`"),
            // `expr::from_value` never makes these two; they read as the
            // IR's value does.
            Val::Const(v @ (Value::List(_) | Value::Opaque)) => v.describe(),
            Val::Dim(d) => format!("the dim {}", d.describe()),
            Val::Tensor(t) => format!("a tensor `{}`", t.ty),
            Val::Tuple(v) => format!("a tuple of {}", v.len()),
            Val::Callable(Callee::Module(..)) => "a module".to_string(),
            Val::Callable(_) => "a function".to_string(),
            Val::Instance(_) => "a module instance".to_string(),
            Val::Record(_) => "a record".to_string(),
            Val::Namespace(_) => "a module namespace".to_string(),
            Val::Init(i) => format!("the initialiser `{}`", i.name()),
            Val::Opaque => "a run-time value".to_string(),
        }
    }
}

/// A module instance: a module with its hyperparameters, or a `repeat` /
/// `sequential` of instances.
#[derive(Clone, Debug)]
pub(super) struct Instance {
    pub kind: InstKind,
    /// The name the instance was bound to, or its module's name.
    pub name: Option<String>,
    pub parent_scope: usize,
    /// Its IR scope, made on first application.
    pub scope: Option<usize>,
    /// Parameters made by its body, by name.
    pub params: HashMap<String, TVal>,
    /// Instances its body made, by order of creation, so a second
    /// application reuses them (and their parameters).
    pub children: Vec<usize>,
    pub created_at: Loc,
    /// The input type of its first application (a `repeat` checks that
    /// its body maps it to itself).
    pub applied: bool,
}

#[derive(Clone, Debug)]
pub(super) enum InstKind {
    Module {
        module: ModuleId,
        item: usize,
        hyper: Vec<(String, Val)>,
        /// Where the hyperparameters got their values ([`blame`]).
        setters: Vec<blame::Setter>,
    },
    Repeat {
        count: i64,
        inner: usize,
    },
    Sequential(Vec<usize>),
}

/// One activation record: whose names are visible and where new nodes,
/// parameters and instances go.
pub(super) struct Frame {
    pub module: ModuleId,
    pub locals: Vec<(String, Val)>,
    pub scope: usize,
    /// The instance whose body runs, if any.
    pub instance: Option<usize>,
    /// Instances made so far in this body run (indexes `children`).
    pub made: usize,
    /// Where this frame was called from, for errors inside libraries.
    pub call_site: Option<Loc>,
    /// What was called, for messages: `Linear`.
    pub callee: String,
    /// Anonymous argument dims the signature named, with their originals.
    pub renamed: Vec<(Size, Dim)>,
    /// Where this frame's compile-time names got their values ([`blame`]).
    pub setters: Vec<blame::Setter>,
}

impl Frame {
    /// A fresh frame over `module`'s names, making nodes in `scope`.
    pub fn new(
        module: ModuleId,
        scope: usize,
        instance: Option<usize>,
        call_site: Option<Loc>,
        callee: &str,
    ) -> Frame {
        Frame {
            module,
            locals: Vec::new(),
            scope,
            instance,
            made: 0,
            call_site,
            callee: callee.to_string(),
            renamed: Vec::new(),
            setters: Vec::new(),
        }
    }
}

pub(super) struct Elab<'c, 'p> {
    pub consts: &'c mut Consts<'p>,
    pub graph: Graph,
    pub frames: Vec<Frame>,
    pub instances: Vec<Instance>,
    /// Top-level items already evaluated, by (module, name).
    pub items: HashMap<(ModuleId, String), Res<Val>>,
    pub in_progress: HashSet<(ModuleId, String)>,
    /// Sizes of data-bound dims learned from the data sources.
    pub bound: HashMap<String, i64>,
    /// Dims bound per session.
    pub per_session: HashSet<String>,
    std_files: HashSet<FileId>,
    /// The tokenizer items, by name, for `h[tok]`.
    pub tokenizers: HashSet<String>,
    /// Set once an error has been reported.
    pub failed: bool,
    /// Parameters by (scope, name), so a reapplied instance reuses them.
    pub params_by_scope: HashMap<(usize, String), TVal>,
    /// The `predict` outputs of the model being elaborated.
    pub predicts: Vec<(String, Val)>,
    /// Top-level dims that are durations (`dim T = 2s`), in seconds.
    pub duration_dims: HashMap<String, f64>,
    /// Values whose dim order was chosen by an elementwise operation
    /// between operands of equal rank that hold different dims (`a + b`
    /// orders like `a`, `b + a` like `b`): where, so that a later error
    /// about a dim's position can point at the operand order.
    pub ordered_by: HashMap<crate::ir::ValueRef, Loc>,
}

impl<'c, 'p> Elab<'c, 'p> {
    pub fn new(consts: &'c mut Consts<'p>) -> Self {
        let std_files = consts
            .program
            .modules
            .iter()
            .filter(|m| matches!(m.key, ModuleKey::Std(_)))
            .map(|m| m.file)
            .collect();
        let mut graph = Graph {
            batch: 1,
            float_bytes: 4,
            ..Graph::default()
        };
        graph.scopes.push(Scope {
            path: String::new(),
            module: "experiment".to_string(),
            parent: None,
            repeat: 1,
            hyper: Vec::new(),
            carry: None,
        });
        let root = consts.program.root;
        Elab {
            consts,
            graph,
            frames: vec![Frame::new(root, 0, None, None, "")],
            instances: Vec::new(),
            items: HashMap::new(),
            in_progress: HashSet::new(),
            bound: HashMap::new(),
            per_session: HashSet::new(),
            std_files,
            tokenizers: HashSet::new(),
            failed: false,
            params_by_scope: HashMap::new(),
            predicts: Vec::new(),
            duration_dims: HashMap::new(),
            ordered_by: HashMap::new(),
        }
    }

    pub fn frame(&self) -> &Frame {
        // The root frame is never popped.
        &self.frames[self.frames.len() - 1]
    }

    pub fn frame_mut(&mut self) -> &mut Frame {
        let n = self.frames.len() - 1;
        &mut self.frames[n]
    }

    pub fn module(&self) -> ModuleId {
        self.frame().module
    }

    pub fn file(&self) -> FileId {
        self.consts.program.module(self.module()).file
    }

    /// A location in the current frame's file.
    pub fn loc(&self, span: Span) -> Loc {
        Loc {
            file: self.file(),
            span,
        }
    }

    /// The source text at a span of the current file.
    pub fn text(&self, span: Span) -> String {
        self.consts
            .program
            .sources
            .get(self.file())
            .slice(span)
            .to_string()
    }

    /// Records what `span` evaluated to, when the editor asked for types.
    /// Only tensors, dims and compile-time values are worth showing.
    pub fn note_type(&mut self, span: Span, kind: super::FactKind, v: &Val) {
        if self.consts.facts.is_none() {
            return;
        }
        let text = match v {
            Val::Tensor(t) => t.ty.describe(),
            Val::Dim(d) => format!("dim {}", d.describe()),
            Val::Const(_) => v.describe(),
            _ => return,
        };
        let file = self.file();
        if let Some(facts) = &mut self.consts.facts {
            facts.push(super::TypeFact {
                file,
                span,
                kind,
                text,
            });
        }
    }

    pub fn bind(&mut self, name: &str, v: Val) {
        self.frame_mut().locals.push((name.to_string(), v));
    }

    /// Reports an error at `primary`. When that place is inside the
    /// standard library, the error is reported at the innermost call from
    /// the user's own code, and the library place becomes a note.
    pub fn report(&mut self, code: Code, primary: Loc, message: String, label: &str, help: &str) {
        self.report_with(code, primary, message, label, help, Vec::new());
    }

    pub fn report_with(
        &mut self,
        code: Code,
        primary: Loc,
        message: String,
        label: &str,
        help: &str,
        notes: Vec<(Loc, String)>,
    ) {
        // Arithmetic that fails on a value an argument set is reported at
        // that argument: it is what the user wrote and can change. When the
        // failing text names no argument (a tensor), the places its sizes
        // were made (the notes in this frame's file) may.
        let mut culprits = Vec::new();
        if blame::blamed(code) {
            culprits = self.blame(primary);
            let file = self.file();
            for (l, _) in &notes {
                if culprits.is_empty() && l.file == file {
                    culprits = self.blame(*l);
                }
            }
        }
        self.emit(code, primary, message, label, help, notes, culprits);
    }

    /// Reports an error whose cause a primitive has already traced to the
    /// arguments that set it ([`Elab::blame_names`]).
    pub fn report_blaming(
        &mut self,
        code: Code,
        primary: Loc,
        message: String,
        label: &str,
        help: &str,
        culprits: Vec<(Loc, String)>,
    ) {
        self.emit(code, primary, message, label, help, Vec::new(), culprits);
    }

    /// Pushes the diagnostic: at the last culprit when there is one, else
    /// at the user's call when `primary` is inside the standard library,
    /// else at `primary`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit(
        &mut self,
        code: Code,
        primary: Loc,
        message: String,
        label: &str,
        help: &str,
        notes: Vec<(Loc, String)>,
        mut culprits: Vec<(Loc, String)>,
    ) {
        self.failed = true;
        let in_std = self.std_files.contains(&primary.file);
        // The user's call that reached the standard library, if the error
        // happened inside it.
        let user_site = if in_std {
            self.frames
                .iter()
                .rev()
                .filter_map(|f| f.call_site.map(|s| (s, f.callee.clone())))
                .find(|(s, _)| !self.std_files.contains(&s.file))
        } else {
            None
        };
        let mut labels: Vec<(Loc, String)> = Vec::new();
        let at = if let Some((culprit, name)) = culprits.pop() {
            let inside = if in_std {
                format!("{label} (inside the standard library)")
            } else {
                label.to_string()
            };
            labels.push((primary, inside));
            // The call is named in the primary label when the argument is
            // part of it, so the two labels do not overlap.
            let mut set_here = format!("`{name}` is set here");
            if let Some((site, callee)) = &user_site {
                if site.file == culprit.file && site.span.contains(culprit.span) {
                    set_here = format!("{set_here}, in this use of `{callee}`");
                } else {
                    labels.push((*site, format!("in this use of `{callee}`")));
                }
            }
            labels.extend(
                culprits
                    .into_iter()
                    .map(|(l, n)| (l, format!("`{n}` is set here"))),
            );
            let mut diag =
                Diagnostic::new(code, message).primary(culprit.file, culprit.span, set_here);
            for (l, m) in labels.into_iter().chain(notes) {
                if l != culprit {
                    diag = diag.secondary(l.file, l.span, m);
                }
            }
            self.consts.diags.push(diag.help(help));
            return;
        } else if let Some((site, callee)) = user_site {
            labels.push((primary, format!("{label} (inside the standard library)")));
            let mut diag = Diagnostic::new(code, message).primary(
                site.file,
                site.span,
                format!("in this use of `{callee}`"),
            );
            for (l, m) in labels.into_iter().chain(notes) {
                diag = diag.secondary(l.file, l.span, m);
            }
            self.consts.diags.push(diag.help(help));
            return;
        } else {
            primary
        };
        let mut diag = Diagnostic::new(code, message).primary(at.file, at.span, label);
        for (l, m) in notes {
            if l != at {
                diag = diag.secondary(l.file, l.span, m);
            }
        }
        self.consts.diags.push(diag.help(help));
    }

    /// Adds to the error just reported, about a dim in the wrong position
    /// of `t`, the elementwise operation that chose `t`'s order, if one
    /// did: between operands of equal rank holding different dims the left
    /// one's order is kept (docs/language.md, "Broadcasting"), so swapping
    /// them, or a `permute`, is often the fix.
    pub fn note_operand_order(&mut self, t: &TVal) {
        let Some(at) = t.src.and_then(|r| self.ordered_by.get(&r).copied()) else {
            return;
        };
        if let Some(diag) = self.consts.diags.last_mut() {
            let taken = std::mem::replace(diag, Diagnostic::new(Code::E0211, ""));
            *diag = taken
                .secondary(
                    at.file,
                    at.span,
                    format!("`{}` takes its dim order from the left operand here", t.ty),
                )
                .note(
                    "an elementwise operation between tensors of the same rank but different dims keeps the left operand's order; swap the operands or `permute` the result",
                );
        }
    }

    /// Reports two dims that must agree and do not: at the side that is
    /// the mistake when they are two sizes of one dim
    /// ([`Elab::mistaken_side`]), else as [`Elab::report_with`] does.
    #[allow(clippy::too_many_arguments)]
    pub fn report_disagreement(
        &mut self,
        code: Code,
        primary: Loc,
        message: String,
        label: &str,
        help: &str,
        notes: Vec<(Loc, String)>,
        why: Mismatch,
        (a, b): (&Dim, &Dim),
    ) {
        let culprit = (why == Mismatch::Size)
            .then(|| self.mistaken_side(a, b))
            .flatten();
        match culprit {
            Some(c) => self.emit(code, primary, message, label, help, notes, vec![c]),
            None => self.report_with(code, primary, message, label, help, notes),
        }
    }

    /// When two sizes of one dim disagree, the side that is the mistake:
    /// the data (a `modality` declaration, which the source checks, or a
    /// dim the data binds such as `dim N per session`) outranks a dim the
    /// user declared by name (`dim d = 64`), which outranks a number
    /// written at an argument (`classes: 3`, `d: 32`). The lower side, when
    /// it was set in the user's files, is returned with the name it was set
    /// by (`classes` in `classes: 3`); `None` when the two rank alike.
    pub fn mistaken_side(&self, a: &Dim, b: &Dim) -> Option<(Loc, String)> {
        let (Some(oa), Some(ob)) = (a.origin, b.origin) else {
            return None;
        };
        let real = |d: &Dim| !d.soft && !d.is_anon();
        // A signature's label (`N` in `mse`) that happens to share a real
        // dim's name is another dim meeting it, not one size set twice.
        if (a.soft && real(b)) || (b.soft && real(a)) {
            return None;
        }
        let rank = |d: &Dim, o: Loc| {
            let bound = real(d)
                && (self.per_session.contains(&d.name.to_string())
                    || self.bound.contains_key(&d.name.to_string()));
            if self.is_data_declaration(o) || bound {
                2
            } else if real(d) {
                1
            } else {
                0
            }
        };
        let other = match rank(a, oa).cmp(&rank(b, ob)) {
            std::cmp::Ordering::Greater => ob,
            std::cmp::Ordering::Less => oa,
            std::cmp::Ordering::Equal => return None,
        };
        if self.std_files.contains(&other.file) {
            return None;
        }
        let text = self.consts.program.sources.get(other.file).text.as_str();
        let before = text
            .get(..other.span.start as usize)
            .unwrap_or("")
            .trim_end();
        let name = before
            .strip_suffix(':')
            .map(|b| {
                let b = b.trim_end();
                let start = b
                    .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .map_or(0, |i| i + 1);
                b[start..].to_string()
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                self.consts
                    .program
                    .sources
                    .get(other.file)
                    .slice(other.span)
                    .to_string()
            });
        Some((other, name))
    }

    /// Whether `loc` lies in a `modality` item of the experiment's file.
    fn is_data_declaration(&self, loc: Loc) -> bool {
        let program = self.consts.program;
        let root = program.root_module();
        if root.file != loc.file {
            return false;
        }
        root.ast.as_ref().is_some_and(|ast| {
            ast.items.iter().any(|it| {
                matches!(it.kind, crate::syntax::ast::ItemKind::Modality(_))
                    && it.span.contains(loc.span)
            })
        })
    }

    /// Makes an IR scope under the current one.
    pub fn new_scope(&mut self, parent: usize, name: &str, module: &str, repeat: i64) -> usize {
        let parent_path = &self.graph.scopes[parent].path;
        let path = if parent_path.is_empty() {
            name.to_string()
        } else {
            format!("{parent_path}.{name}")
        };
        // Two anonymous instances of one module in one scope get distinct
        // paths.
        let mut unique = path.clone();
        let mut k = 1;
        while self.graph.scopes.iter().any(|s| s.path == unique) {
            unique = format!("{path}_{k}");
            k += 1;
        }
        self.graph.scopes.push(Scope {
            path: unique,
            module: module.to_string(),
            parent: Some(parent),
            repeat,
            hyper: Vec::new(),
            carry: None,
        });
        self.graph.scopes.len() - 1
    }

    /// Whether a dim name is bound per session.
    pub fn is_per_session(&self, t: &Tensor) -> bool {
        // By name: a per-session dim stays per session when the data gives
        // it a size.
        t.dims.iter().any(|d| {
            d.name
                .symbols()
                .iter()
                .chain(d.size_or_name().symbols().iter())
                .any(|s| self.per_session.contains(*s))
        })
    }
}
