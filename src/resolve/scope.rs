//! Building each module's file scope from its items and imports.
//!
//! A file scope maps every name the file defines or imports to a
//! [`Binding`]. Two bindings of one name are a duplicate definition
//! (E0104), reported at the second with a label at the first; importing a
//! name the target module does not define is E0102. A file may hold at most
//! one `train` and one `parallel` block.

use std::collections::BTreeMap;

use super::{suggest, Binding, ModuleId, Program};
use crate::base::FileId;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::ast;

pub(super) fn build_scopes(program: &mut Program) {
    for i in 0..program.modules.len() {
        let id = ModuleId(i as u32);
        let (scope, diags) = build_one(program, id);
        program.modules[i].scope = scope;
        program.diagnostics.extend(diags);
    }
}

fn build_one(program: &Program, id: ModuleId) -> (BTreeMap<String, Binding>, Vec<Diagnostic>) {
    let module = program.module(id);
    let file = module.file;
    let mut scope: BTreeMap<String, Binding> = BTreeMap::new();
    let mut diags = Vec::new();
    let Some(ast) = &module.ast else {
        return (scope, diags);
    };

    let mut bind =
        |name: &ast::Ident, binding: Binding, what: &str, diags: &mut Vec<Diagnostic>| {
            if name.name.is_empty() {
                return;
            }
            if let Some(previous) = scope.get(&name.name) {
                diags.push(duplicate(
                    file,
                    &name.name,
                    name.span,
                    previous.span(),
                    what,
                ));
            } else {
                scope.insert(name.name.clone(), binding);
            }
        };

    // Definitions first, so that a clash between an import and a definition
    // is reported at the import regardless of order in the file.
    for (index, item) in ast.items.iter().enumerate() {
        if let Some(name) = item.kind.defined_name() {
            let binding = Binding::Item {
                index,
                span: name.span,
            };
            bind(name, binding, item.kind.keyword(), &mut diags);
        }
    }

    for resolved in &module.uses {
        let Some(ast::Item {
            kind: ast::ItemKind::Use(u),
            ..
        }) = ast.items.get(resolved.item)
        else {
            continue;
        };
        let target = program.module(resolved.module);
        // A file importing itself is an import cycle (reported); binding its
        // own names again would only add duplicate-definition noise.
        if resolved.module == id {
            continue;
        }
        // A module that failed to parse has had its errors reported; its
        // names cannot be checked, so they are bound as unresolved.
        if target.ast.is_none() {
            let locals = u.locals();
            for l in locals {
                bind(
                    l,
                    Binding::Unresolved { span: l.span },
                    "import",
                    &mut diags,
                );
            }
            continue;
        }
        match &u.imports {
            ast::UseImports::Group(names) => {
                for n in names {
                    if target.defined(&n.name.name).is_none() && !target.broken(&n.name.name) {
                        diags.push(missing_item(file, &n.name, target));
                        let span = n.local().span;
                        bind(
                            n.local(),
                            Binding::Unresolved { span },
                            "import",
                            &mut diags,
                        );
                        continue;
                    }
                    let binding = Binding::Import {
                        module: resolved.module,
                        name: n.name.name.clone(),
                        span: n.local().span,
                    };
                    bind(n.local(), binding, "import", &mut diags);
                }
            }
            ast::UseImports::Single { alias } => {
                let Some(last) = u.path.last() else { continue };
                let local = alias.as_ref().unwrap_or(last);
                if resolved.last_is_item {
                    if target.defined(&last.name).is_none() && !target.broken(&last.name) {
                        diags.push(missing_item(file, last, target));
                        let span = local.span;
                        bind(local, Binding::Unresolved { span }, "import", &mut diags);
                        continue;
                    }
                    let binding = Binding::Import {
                        module: resolved.module,
                        name: last.name.clone(),
                        span: local.span,
                    };
                    bind(local, binding, "import", &mut diags);
                } else {
                    let binding = Binding::Module {
                        module: resolved.module,
                        span: local.span,
                    };
                    bind(local, binding, "import", &mut diags);
                }
            }
        }
    }

    // Names defined by items that failed to parse (their syntax errors are
    // reported) are bound as unresolved, so their uses are not reported
    // as unknown too.
    for b in &ast.broken {
        if let Some(name) = &b.name {
            if !scope.contains_key(&name.name) {
                scope.insert(name.name.clone(), Binding::Unresolved { span: name.span });
            }
        }
    }

    // Names imported by a `use` whose module was not found (E0101, already
    // reported) are bound as unresolved so their uses are not reported too.
    for (index, item) in ast.items.iter().enumerate() {
        let ast::ItemKind::Use(u) = &item.kind else {
            continue;
        };
        if module.uses.iter().any(|r| r.item == index) {
            continue;
        }
        let locals = u.locals();
        for l in locals {
            if !scope.contains_key(&l.name) {
                scope.insert(l.name.clone(), Binding::Unresolved { span: l.span });
            }
        }
    }

    // At most one train and one parallel block per file.
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for item in &ast.items {
        let kw = match item.kind {
            ast::ItemKind::Train(_) => "train",
            ast::ItemKind::Parallel(_) => "parallel",
            _ => continue,
        };
        let at = Span::new(
            item.span.start as usize,
            item.span.start as usize + kw.len(),
        );
        match seen.iter().find(|(k, _)| *k == kw) {
            Some((_, first)) => diags.push(
                Diagnostic::new(Code::E0104, format!("a second `{kw}` block"))
                    .primary(file, at, format!("another `{kw}` block"))
                    .secondary(file, *first, "the first is here")
                    .help(format!("an experiment has one `{kw}` block; merge the two")),
            ),
            None => seen.push((kw, at)),
        }
    }
    (scope, diags)
}

pub(super) fn duplicate(
    file: FileId,
    name: &str,
    at: Span,
    previous: Span,
    what: &str,
) -> Diagnostic {
    Diagnostic::new(Code::E0104, format!("`{name}` is defined more than once"))
        .primary(file, at, format!("this {what} redefines `{name}`"))
        .secondary(file, previous, "first defined here")
        .help(if what == "import" {
            "give one of them another name, or import it under an alias with `as`"
        } else {
            "give one of them another name"
        })
}

fn missing_item(file: FileId, name: &ast::Ident, target: &super::Module) -> Diagnostic {
    let mut diag = Diagnostic::new(
        Code::E0102,
        format!("module `{}` has no item `{}`", target.name, name.name),
    )
    .primary(file, name.span, "not defined there");
    if let Some(s) = suggest::closest(&name.name, target.defined_names()) {
        diag = diag.help(format!("did you mean `{s}`?"));
    } else {
        let mut names: Vec<&str> = target.defined_names().collect();
        names.truncate(12);
        if !names.is_empty() {
            diag = diag.help(format!("it defines: {}", names.join(", ")));
        }
    }
    diag
}
