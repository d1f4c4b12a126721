//! Resolve: from one root file to a program whose every name is known.
//!
//! [`load`] reads the root file through a [`SourceLoader`], follows `use`
//! items to the standard library and the user's own files (detecting
//! missing modules and import cycles), builds each module's file scope
//! (reporting duplicate definitions and missing imported items), then walks
//! every body, type and setting to resolve each name against locals, the
//! file scope and the builtins. All errors found are reported, not just the
//! first; the result carries the loaded sources so diagnostics can be
//! rendered.

pub mod builtins;
mod loader;
mod names;
mod scope;
pub mod stdlib;
mod suggest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use stdlib::Stdlib;
pub use suggest::closest;

use crate::base::{FileId, Span};
use crate::diagnostics::Diagnostic;
use crate::source::{SourceLoader, SourceMap};
use crate::syntax::ast;

/// Identifies a loaded module within a [`Program`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId(pub u32);

/// Where a module came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModuleKey {
    /// `std::nn` is `Std("nn")`; `std::a::b` is `Std("a/b")`.
    Std(String),
    /// A user file, by its path as resolved from the importing file.
    File(PathBuf),
}

impl ModuleKey {
    /// How the module is named in messages: `std::nn` or the file path.
    pub fn display(&self) -> String {
        match self {
            ModuleKey::Std(name) => format!("std::{}", name.replace('/', "::")),
            ModuleKey::File(p) => p.display().to_string(),
        }
    }
}

/// What a name in a module's file scope stands for.
#[derive(Clone, Debug, PartialEq)]
pub enum Binding {
    /// The `index`-th item of this module's AST.
    Item { index: usize, span: Span },
    /// An item of another module, imported by a `use` at `span`.
    Import {
        module: ModuleId,
        name: String,
        span: Span,
    },
    /// A whole module, bound by `use std::nn` (as `nn`) at `span`.
    Module { module: ModuleId, span: Span },
    /// A name whose import failed (already reported); uses of it are not
    /// reported again.
    Unresolved { span: Span },
}

impl Binding {
    pub fn span(&self) -> Span {
        match self {
            Binding::Item { span, .. }
            | Binding::Import { span, .. }
            | Binding::Module { span, .. }
            | Binding::Unresolved { span } => *span,
        }
    }
}

/// One loaded source file and its file scope.
#[derive(Clone, Debug)]
pub struct Module {
    pub key: ModuleKey,
    /// How messages name the module: `std::nn`, or the file's path as
    /// reached from the root file.
    pub name: String,
    pub file: FileId,
    /// `None` when the file failed to read or parse (its diagnostics are in
    /// the program's list).
    pub ast: Option<ast::File>,
    /// The names the file defines or imports.
    pub scope: BTreeMap<String, Binding>,
    /// What each `use` item that could be located refers to.
    pub uses: Vec<ResolvedUse>,
}

/// A located `use` item: the module it names and, for `use a::b` where `b`
/// is an item of `a`, that the last path segment is an item name.
#[derive(Clone, Debug)]
pub struct ResolvedUse {
    /// Index of the `use` item in the module's AST.
    pub item: usize,
    pub module: ModuleId,
    pub last_is_item: bool,
}

impl Module {
    /// The item defining `name` in this module, if it is defined here (not
    /// merely imported). Once the file scope is built this is a map lookup;
    /// before (while scopes are being built, when imports are checked
    /// against their target) it scans the AST.
    pub fn defined(&self, name: &str) -> Option<&ast::Item> {
        let items = &self.ast.as_ref()?.items;
        if self.scope.is_empty() {
            return items
                .iter()
                .find(|i| i.kind.defined_name().is_some_and(|n| n.name == name));
        }
        match self.scope.get(name)? {
            Binding::Item { index, .. } => items.get(*index),
            _ => None,
        }
    }

    /// Whether an item of this module that failed to parse would define
    /// `name` (its syntax error is reported; importing it is not another
    /// error).
    /// An item whose name could not be read (text before the first item,
    /// a whole file too large to parse) may define anything but a block.
    pub fn broken(&self, name: &str) -> bool {
        self.ast.as_ref().is_some_and(|f| {
            f.broken.iter().any(|b| match &b.name {
                Some(n) => n.name == name,
                None => !matches!(b.keyword, Some("train" | "parallel")),
            })
        })
    }

    /// Whether a `use` item of this module failed to parse: any name may
    /// have come from it.
    pub fn broken_use(&self) -> bool {
        self.ast
            .as_ref()
            .is_some_and(|f| f.broken.iter().any(|b| b.keyword == Some("use")))
    }

    /// Names this module defines, for suggestions.
    pub fn defined_names(&self) -> impl Iterator<Item = &str> {
        self.ast
            .iter()
            .flat_map(|f| &f.items)
            .filter_map(|i| i.kind.defined_name())
            .map(|n| n.name.as_str())
    }
}

/// The root file, every module it reaches, and what was found wrong.
#[derive(Debug)]
pub struct Program {
    pub sources: SourceMap,
    pub modules: Vec<Module>,
    pub root: ModuleId,
    pub diagnostics: Vec<Diagnostic>,
    /// Every name use the walk resolved, in walking order: what go to
    /// definition, find references and rename read.
    pub refs: Vec<NameRef>,
}

/// One use of a name and what it resolved to.
#[derive(Clone, Debug, PartialEq)]
pub struct NameRef {
    /// The file and span of the name as written at the use.
    pub file: FileId,
    pub span: Span,
    pub target: RefTarget,
}

/// What a used name stands for.
#[derive(Clone, Debug, PartialEq)]
pub enum RefTarget {
    /// A parameter, a `let` or `param` binding, a generic dim or the
    /// transform element `x`, defined at this span of the same file.
    Local(Span),
    /// A name of `module`'s file scope (an item it defines or imports, or
    /// an imported module); [`Program::definition`] follows imports.
    Scope { module: ModuleId, name: String },
    /// `nn::Linear`: the item `name` of another module.
    Item { module: ModuleId, name: String },
    /// A builtin function, primitive, type or constant.
    Builtin(String),
}

/// Where something is defined: a file and the span of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefSite {
    pub file: FileId,
    pub span: Span,
}

impl Program {
    pub fn module(&self, id: ModuleId) -> &Module {
        &self.modules[id.0 as usize]
    }

    pub fn root_module(&self) -> &Module {
        self.module(self.root)
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.is_error())
    }

    /// Where a resolved use is defined, following imports to the item's own
    /// module (at most one hop per `use`, and a bounded number in all, so
    /// a cycle of re-exports cannot loop). Builtins have no site.
    pub fn definition(&self, file: FileId, target: &RefTarget) -> Option<DefSite> {
        match target {
            RefTarget::Local(span) => Some(DefSite { file, span: *span }),
            RefTarget::Builtin(_) => None,
            RefTarget::Scope { module, name } => self.scope_definition(*module, name),
            RefTarget::Item { module, name } => self.scope_definition(*module, name),
        }
    }

    /// The definition of `name` as `module`'s file scope sees it.
    pub fn scope_definition(&self, module: ModuleId, name: &str) -> Option<DefSite> {
        let (mut module, mut name) = (module, name.to_string());
        for _ in 0..self.modules.len() + 1 {
            let m = self.modules.get(module.0 as usize)?;
            match m.scope.get(&name)? {
                Binding::Item { index, .. } => {
                    let item = m.ast.as_ref()?.items.get(*index)?;
                    let span = item.kind.defined_name().map_or(item.span, |n| n.span);
                    return Some(DefSite { file: m.file, span });
                }
                Binding::Import {
                    module: target,
                    name: imported,
                    ..
                } => {
                    module = *target;
                    name = imported.clone();
                }
                Binding::Module { module: target, .. } => {
                    let file = self.modules.get(target.0 as usize)?.file;
                    return Some(DefSite {
                        file,
                        span: Span::new(0, 0),
                    });
                }
                Binding::Unresolved { .. } => return None,
            }
        }
        None
    }

    /// The module loaded from `file`, if any.
    pub fn module_of(&self, file: FileId) -> Option<ModuleId> {
        self.modules
            .iter()
            .position(|m| m.file == file)
            .map(|i| ModuleId(i as u32))
    }
}

/// Options for loading a program.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub stdlib: Stdlib,
}

/// Why loading could not even start.
#[derive(Debug)]
pub struct RootError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl std::fmt::Display for RootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.error)
    }
}

/// Loads and resolves the program rooted at `path`. Failing to read the
/// root file itself is an I/O error for the caller (the CLI exits with 2);
/// everything else is a diagnostic in the returned program.
pub fn load(
    loader: &dyn SourceLoader,
    path: &Path,
    options: &Options,
) -> Result<Program, RootError> {
    let mut program = loader::Loader::new(loader, options).load_root(path)?;
    scope::build_scopes(&mut program);
    names::resolve_names(&mut program);
    crate::diagnostics::sort(&mut program.diagnostics);
    Ok(program)
}
