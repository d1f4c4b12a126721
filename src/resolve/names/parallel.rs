//! Names in the `parallel` block: mesh axes are defined by its `mesh { ... }`
//! entry; a mapping's left side names logical dims (the planner's builtin
//! ones or the file's own `dim`s) and its right side names mesh axes.

use super::super::builtins;
use super::super::suggest;
use super::Walker;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::resolve::Binding;
use crate::syntax::ast::*;

impl Walker<'_> {
    /// The parallel block: `mesh { axis: size }` defines mesh axes;
    /// mappings send logical dims (builtin or the file's dims) to them.
    pub(super) fn parallel(&mut self, c: &ConfigBlock) {
        let mut axes: Vec<String> = Vec::new();
        for e in &c.entries {
            if let EntryKind::Block { key, block } = &e.kind {
                if key.name == "mesh" {
                    for a in &block.entries {
                        if let EntryKind::Setting { key, .. } = &a.kind {
                            axes.push(key.name.clone());
                        }
                    }
                }
            }
        }
        let mut keys: Vec<&Ident> = Vec::new();
        let mut mapped: Vec<&Ident> = Vec::new();
        for e in &c.entries {
            match &e.kind {
                EntryKind::Setting { key, value } => {
                    self.expr(value);
                    self.check_repeat(&mut keys, key);
                }
                EntryKind::Block { key, block } => {
                    self.config(block);
                    self.check_repeat(&mut keys, key);
                }
                EntryKind::Mapping { keys: dims, target } => {
                    for d in dims {
                        self.logical_dim(d);
                        if let Some(prev) = mapped.iter().find(|m| m.name == d.name) {
                            self.diags.push(
                                Diagnostic::new(
                                    Code::E0108,
                                    format!("`{}` is mapped twice", d.name),
                                )
                                .primary(self.file, d.span, "mapped again here")
                                .secondary(self.file, prev.span, "first mapped here")
                                .help("a logical dim maps to one mesh axis or one tuple of axes"),
                            );
                        } else {
                            mapped.push(d);
                        }
                    }
                    self.mesh_target(target, &axes);
                }
            }
        }
    }

    fn logical_dim(&mut self, d: &Ident) {
        if builtins::LOGICAL_DIMS.contains(&d.name.as_str()) {
            return;
        }
        let module = self.program.module(self.module);
        if let Some(item) = module.defined(&d.name) {
            if matches!(item.kind, ItemKind::Dim(_)) {
                return;
            }
        }
        let dims = module.scope.iter().filter_map(|(n, b)| match b {
            Binding::Item { .. } => module
                .defined(n)
                .filter(|i| matches!(i.kind, ItemKind::Dim(_)))
                .map(|_| n.as_str()),
            _ => None,
        });
        let candidates: Vec<&str> = builtins::LOGICAL_DIMS.iter().copied().chain(dims).collect();
        let mut diag = Diagnostic::new(
            Code::E0105,
            format!("unknown logical dimension `{}`", d.name),
        )
        .primary(self.file, d.span, "cannot be mapped onto the mesh");
        diag = match suggest::closest(&d.name, candidates.iter().copied()) {
            Some(s) => diag.help(format!("did you mean `{s}`?")),
            None => diag.help(format!(
                "mappable dims are {} and the file's own `dim`s",
                builtins::LOGICAL_DIMS.join(", ")
            )),
        };
        self.diags.push(diag);
    }

    fn mesh_target(&mut self, target: &Expr, axes: &[String]) {
        // A target is one axis name, or a parenthesised tuple of them.
        let items: Vec<&Expr> = match &target.kind {
            ExprKind::Tuple(xs) if !xs.is_empty() => xs.iter().collect(),
            ExprKind::Paren(x) => vec![x.as_ref()],
            _ => vec![target],
        };
        let mut names: Vec<&Ident> = Vec::new();
        for x in items {
            match &x.kind {
                ExprKind::Path(p) if p.len() == 1 => names.push(&p[0]),
                _ => self.bad_target(x.span),
            }
        }
        for n in names {
            if axes.contains(&n.name) {
                continue;
            }
            let mut diag = Diagnostic::new(Code::E0105, format!("unknown mesh axis `{}`", n.name))
                .primary(self.file, n.span, "not an axis of the mesh");
            diag = if axes.is_empty() {
                diag.help("declare the mesh first: `mesh { node: 8, gpu: 8 }`")
            } else {
                match suggest::closest(&n.name, axes.iter().map(String::as_str)) {
                    Some(s) => diag.help(format!(
                        "did you mean `{s}`? the mesh has {}",
                        axes.join(", ")
                    )),
                    None => diag.help(format!("the mesh has {}", axes.join(", "))),
                }
            };
            self.diags.push(diag);
        }
    }

    fn bad_target(&mut self, at: Span) {
        self.diags.push(
            Diagnostic::new(Code::E0105, "a mapping's target must name mesh axes")
                .primary(self.file, at, "not a mesh axis")
                .help("write `dim -> axis` or `dim -> (axis, axis)`"),
        );
    }
}
