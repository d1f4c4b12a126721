//! IDE analysis: what an editor asks about a program, answered from the
//! driver's artifacts with no protocol in sight.
//!
//! An [`Analysis`] is one run of the driver (parse, resolve, check, with
//! the checker recording the type of every expression) over one root file,
//! plus a [`FileIndex`] of each file it loaded. Every query takes a file
//! and a byte offset and returns plain data (spans, strings); the language
//! server (`crate::lsp`) converts those to protocol types, and tests call
//! the queries directly.
//!
//! - `index.rs`: what each file defines, calls and sets;
//! - `hover.rs`: types, signatures, setting docs, code explanations;
//! - `navigate.rs`: definition, references, rename, document symbols;
//! - `complete.rs`: completion and signature help;
//! - `tokens.rs`: semantic tokens and inlay hints;
//! - `fixes.rs`: quick fixes from the diagnostics' "did you mean" helps.
//!
//! Nothing here caches across analyses: a new analysis replaces the old
//! one, so memory follows the open files, not the length of the session.

pub mod complete;
pub mod fixes;
pub mod hover;
pub mod index;
pub mod navigate;
pub mod tokens;

use std::path::{Path, PathBuf};

pub use index::{Def, DefKind, FileIndex};

use crate::base::{FileId, Span};
use crate::driver::{compile, Artifacts, Goal, Options};
use crate::resolve::{DefSite, NameRef, Options as ResolveOptions, Program, RefTarget, RootError};
use crate::source::SourceLoader;
use crate::syntax::ast::{ItemKind, UseImports};

/// One analysis of one root file.
#[derive(Debug)]
pub struct Analysis {
    pub artifacts: Artifacts,
    /// The index of each loaded file, by [`FileId`].
    indexes: Vec<FileIndex>,
    /// Each loaded file's canonical path, by [`FileId`] (the standard
    /// library's too, when it was read from disk): what `file_at` compares,
    /// resolved once rather than on every request.
    paths: Vec<Option<PathBuf>>,
}

/// What a name at a position stands for.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Something defined in a source file.
    Def(DefSite),
    /// A builtin (primitive, initialiser, optimiser, dtype...).
    Builtin(String),
}

impl Analysis {
    /// Runs the driver (check only, recording types) on `path`.
    pub fn new(
        loader: &dyn SourceLoader,
        path: &Path,
        resolve: ResolveOptions,
    ) -> Result<Analysis, RootError> {
        let options = Options {
            resolve,
            goal: Goal::Check,
            record_types: true,
        };
        let artifacts = compile(loader, path, &options)?;
        let program = &artifacts.program;
        let mut indexes = vec![FileIndex::default(); program.sources.iter().count()];
        for m in &program.modules {
            if let (Some(ast), Some(slot)) = (&m.ast, indexes.get_mut(m.file.0 as usize)) {
                *slot = FileIndex::new(ast);
            }
        }
        let paths = program
            .sources
            .iter()
            .map(|(_, f)| f.path.as_deref().map(canonical))
            .collect();
        Ok(Analysis {
            artifacts,
            indexes,
            paths,
        })
    }

    pub fn program(&self) -> &Program {
        &self.artifacts.program
    }

    /// The root file of the analysis.
    pub fn root(&self) -> FileId {
        self.program().root_module().file
    }

    /// The file loaded from `path` (compared after canonicalising both).
    pub fn file_at(&self, path: &Path) -> Option<FileId> {
        let want = canonical(path);
        let i = self.paths.iter().position(|p| p.as_ref() == Some(&want))?;
        Some(FileId(i as u32))
    }

    /// The text of a loaded file.
    pub fn text(&self, file: FileId) -> &str {
        &self.program().sources.get(file).text
    }

    pub fn index(&self, file: FileId) -> Option<&FileIndex> {
        self.indexes.get(file.0 as usize)
    }

    /// The resolved use of a name at `offset`.
    pub fn ref_at(&self, file: FileId, offset: usize) -> Option<&NameRef> {
        self.program()
            .refs
            .iter()
            .find(|r| r.file == file && index::contains(r.span, offset))
    }

    /// What the name at `offset` stands for, and the span of that name
    /// as written at `offset`: a use, a definition, or a `use` import.
    pub fn target_at(&self, file: FileId, offset: usize) -> Option<(Span, Target)> {
        if let Some(r) = self.ref_at(file, offset) {
            let target = match &r.target {
                RefTarget::Builtin(name) => Target::Builtin(name.clone()),
                t => Target::Def(self.program().definition(file, t)?),
            };
            return Some((r.span, target));
        }
        let ix = self.index(file)?;
        if let Some(d) = ix.def_containing(offset) {
            return Some((d.span, Target::Def(DefSite { file, span: d.span })));
        }
        if let Some(found) = self.argument_at(file, offset) {
            return Some(found);
        }
        let (name, item) = ix
            .use_names
            .iter()
            .find(|(n, _)| index::contains(n.span, offset))?;
        Some((
            name.span,
            Target::Def(self.import_target(file, *item, &name.name)?),
        ))
    }

    /// A named argument (`d_in:` in `Linear(d_in: 64)`) stands for the
    /// callee's parameter of that name.
    fn argument_at(&self, file: FileId, offset: usize) -> Option<(Span, Target)> {
        let ix = self.index(file)?;
        let (call, name) = ix.calls.iter().find_map(|c| {
            c.args.iter().find_map(|(_, n)| {
                n.as_ref()
                    .filter(|n| index::contains(n.span, offset))
                    .map(|n| (c, n))
            })
        })?;
        let callee = call.callee.last()?;
        let site = match self
            .ref_at(file, callee.span.start as usize)?
            .target
            .clone()
        {
            RefTarget::Builtin(_) => return None,
            t => self.program().definition(file, &t)?,
        };
        let def = self.def(site)?;
        let param = self
            .index(site.file)?
            .defs
            .iter()
            .find(|p| p.kind == DefKind::Param && p.item == def.item && p.name == name.name)?;
        Some((
            name.span,
            Target::Def(DefSite {
                file: site.file,
                span: param.span,
            }),
        ))
    }

    /// Where an imported name is defined, from the `use` item that imports it.
    fn import_target(&self, file: FileId, item: usize, name: &str) -> Option<DefSite> {
        let program = self.program();
        let module = program.module(program.module_of(file)?);
        let used = module.uses.iter().find(|u| u.item == item)?;
        let ast = module.ast.as_ref()?;
        let is_module_import = match &ast.items.get(item)?.kind {
            ItemKind::Use(u) => {
                matches!(u.imports, UseImports::Single { .. }) && !used.last_is_item
            }
            _ => false,
        };
        if is_module_import {
            let file = program.module(used.module).file;
            return Some(DefSite {
                file,
                span: Span::new(0, 0),
            });
        }
        let target = program.module(used.module);
        let def = target.defined(name)?;
        let span = def.kind.defined_name().map_or(def.span, |n| n.span);
        Some(DefSite {
            file: target.file,
            span,
        })
    }

    /// The definition (with its kind and signature) at a site.
    pub fn def(&self, site: DefSite) -> Option<&Def> {
        self.index(site.file)?.def_at(site.span)
    }

    /// Whether a file is part of the standard library (read-only).
    pub fn is_stdlib(&self, file: FileId) -> bool {
        self.program()
            .modules
            .iter()
            .any(|m| m.file == file && matches!(m.key, crate::resolve::ModuleKey::Std(_)))
    }
}

/// A path with its links and `..` resolved, or as given when it does not
/// exist (an unsaved buffer).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The identifier around `offset` in `text` and its span: what a cursor
/// in (or just after) a name touches.
pub fn word_at(text: &str, offset: usize) -> Option<(Span, &str)> {
    let bytes = text.as_bytes();
    let offset = offset.min(bytes.len());
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut start = offset;
    while start > 0 && is_word(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = offset;
    while end < bytes.len() && is_word(bytes[end]) {
        end += 1;
    }
    (start < end).then(|| (Span::new(start, end), &text[start..end]))
}

#[cfg(test)]
mod tests;
