//! Loading the module graph: reading files, following `use` items, and
//! detecting missing modules and import cycles.
//!
//! Modules are loaded depth-first. The stack of modules being loaded is
//! kept with the `use` that led to each, so when a `use` names a module
//! already on the stack, the cycle can be reported with a label on every
//! `use` that forms it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::stdlib::{self, Stdlib};
use super::{Module, ModuleId, ModuleKey, Options, Program, ResolvedUse, RootError};
use crate::base::{FileId, Span};
use crate::diagnostics::{Code, Diagnostic};
use crate::source::{SourceFile, SourceLoader, SourceMap};
use crate::syntax::{self, ast};

pub(super) struct Loader<'a> {
    fs: &'a dyn SourceLoader,
    stdlib: &'a Stdlib,
    sources: SourceMap,
    modules: Vec<Module>,
    by_key: HashMap<ModuleKey, ModuleId>,
    /// Modules being loaded, each with the span of the `use` (in that
    /// module) currently being followed.
    stack: Vec<(ModuleId, Span)>,
    diagnostics: Vec<Diagnostic>,
}

/// What a `use` path names once resolved.
pub(super) enum Target {
    /// The whole path names a module.
    Module(Located),
    /// All but the last segment name a module; the last is an item of it.
    Item(Located),
}

/// A module found on disk or in the stdlib: its identity, and for files the
/// path as reached from the importing file (what users see in messages).
pub(super) struct Located {
    key: ModuleKey,
    shown: Option<PathBuf>,
}

impl<'a> Loader<'a> {
    pub fn new(fs: &'a dyn SourceLoader, options: &'a Options) -> Loader<'a> {
        Loader {
            fs,
            stdlib: &options.stdlib,
            sources: SourceMap::new(),
            modules: Vec::new(),
            by_key: HashMap::new(),
            stack: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    pub fn load_root(mut self, path: &Path) -> Result<Program, RootError> {
        let bytes = self.fs.read(path).map_err(|error| RootError {
            path: path.to_path_buf(),
            error,
        })?;
        let key = ModuleKey::File(self.fs.canonical(path));
        let root = self.add_module(key, path.display().to_string(), Some(path), &bytes);
        self.follow_imports(root);
        Ok(Program {
            sources: self.sources,
            modules: self.modules,
            root,
            diagnostics: self.diagnostics,
            refs: Vec::new(),
        })
    }

    /// Registers a module from its bytes: decodes, parses, records errors.
    fn add_module(
        &mut self,
        key: ModuleKey,
        name: String,
        path: Option<&Path>,
        bytes: &[u8],
    ) -> ModuleId {
        let id = ModuleId(self.modules.len() as u32);
        // The file is registered before decoding so that diagnostics about
        // it can name it; undecodable text is replaced lossily for display.
        let text = String::from_utf8_lossy(bytes).into_owned();
        let file = self
            .sources
            .add(SourceFile::new(name, path.map(Path::to_path_buf), text));
        let ast = match syntax::decode(bytes, file) {
            Err(d) => {
                self.diagnostics.push(d);
                None
            }
            // The parser recovers per item: the items that parse are kept
            // and resolved, so one syntax error does not hide the rest of
            // the file's diagnostics (the checker still runs only on a
            // program without errors).
            Ok(text) => {
                let (ast, ds) = syntax::parse_recovering(text, file);
                self.diagnostics.extend(ds);
                Some(ast)
            }
        };
        let shown = match &key {
            ModuleKey::Std(_) => key.display(),
            ModuleKey::File(_) => self.sources.get(file).name.clone(),
        };
        self.modules.push(Module {
            name: shown,
            key: key.clone(),
            file,
            ast,
            scope: Default::default(),
            uses: Vec::new(),
        });
        self.by_key.insert(key, id);
        id
    }

    fn follow_imports(&mut self, id: ModuleId) {
        let module = &self.modules[id.0 as usize];
        let file = module.file;
        let from = self.sources.get(file).path.clone();
        let uses: Vec<(usize, ast::UseItem)> = module
            .ast
            .iter()
            .flat_map(|f| f.items.iter().enumerate())
            .filter_map(|(index, i)| match &i.kind {
                ast::ItemKind::Use(u) => Some((index, u.clone())),
                _ => None,
            })
            .collect();
        for (index, u) in uses {
            let Some(target) = self.locate(from.as_deref(), &u) else {
                self.report_missing(file, from.as_deref(), &u);
                continue;
            };
            let (located, last_is_item) = match target {
                Target::Module(l) => (l, false),
                Target::Item(l) => (l, true),
            };
            let target_key = located.key;
            let use_span = path_span(&u.path);
            let target = match self.by_key.get(&target_key) {
                Some(&existing) => {
                    if existing == id {
                        self.report_cycle(self.stack.len(), id, use_span);
                    } else if let Some(pos) = self.stack.iter().position(|(m, _)| *m == existing) {
                        self.report_cycle(pos, id, use_span);
                    }
                    existing
                }
                None => {
                    let Some((name, path, bytes)) =
                        self.read_module(&target_key, located.shown.as_deref())
                    else {
                        self.report_missing(file, from.as_deref(), &u);
                        continue;
                    };
                    let child = self.add_module(target_key, name, path.as_deref(), &bytes);
                    self.stack.push((id, use_span));
                    self.follow_imports(child);
                    self.stack.pop();
                    child
                }
            };
            self.modules[id.0 as usize].uses.push(ResolvedUse {
                item: index,
                module: target,
                last_is_item,
            });
        }
    }

    /// Decides what a `use` path names, without reading anything but
    /// existence checks.
    fn locate(&self, from: Option<&Path>, u: &ast::UseItem) -> Option<Target> {
        let segs: Vec<&str> = u.path.iter().map(|i| i.name.as_str()).collect();
        let group = matches!(u.imports, ast::UseImports::Group(_));
        let as_module = |segs: &[&str]| self.module_key(from, segs);
        if group {
            return as_module(&segs).map(Target::Module);
        }
        // `use a::b` names module `a::b` when it exists, else item `b` of
        // module `a`.
        if let Some(k) = as_module(&segs) {
            return Some(Target::Module(k));
        }
        if segs.len() >= 2 {
            if let Some(k) = as_module(&segs[..segs.len() - 1]) {
                return Some(Target::Item(k));
            }
        }
        None
    }

    /// The module named by `segs`, if such a module exists.
    fn module_key(&self, from: Option<&Path>, segs: &[&str]) -> Option<Located> {
        match segs {
            [] => None,
            ["std"] => None,
            ["std", rest @ ..] => {
                let name = rest.join("/");
                let exists = match self.stdlib {
                    Stdlib::Embedded => stdlib::embedded(&name).is_some(),
                    Stdlib::Dir(dir) => self.fs.is_file(&dir.join(format!("{name}.enigma"))),
                };
                exists.then_some(Located {
                    key: ModuleKey::Std(name),
                    shown: None,
                })
            }
            _ => {
                let path = relative_path(from, segs);
                self.fs.is_file(&path).then(|| Located {
                    key: ModuleKey::File(self.fs.canonical(&path)),
                    shown: Some(path),
                })
            }
        }
    }

    fn read_module(
        &self,
        key: &ModuleKey,
        shown: Option<&Path>,
    ) -> Option<(String, Option<PathBuf>, Vec<u8>)> {
        match key {
            ModuleKey::Std(name) => match self.stdlib {
                Stdlib::Embedded => stdlib::embedded(name)
                    .map(|s| (format!("<std>/{name}.enigma"), None, s.as_bytes().to_vec())),
                Stdlib::Dir(dir) => {
                    let path = dir.join(format!("{name}.enigma"));
                    let bytes = self.fs.read(&path).ok()?;
                    Some((path.display().to_string(), Some(path), bytes))
                }
            },
            ModuleKey::File(path) => {
                let shown = shown.unwrap_or(path).to_path_buf();
                let bytes = self.fs.read(&shown).ok()?;
                Some((shown.display().to_string(), Some(shown), bytes))
            }
        }
    }

    fn report_missing(&mut self, file: FileId, from: Option<&Path>, u: &ast::UseItem) {
        let segs: Vec<&str> = u.path.iter().map(|i| i.name.as_str()).collect();
        let shown = segs.join("::");
        let mut diag = Diagnostic::new(Code::E0101, format!("module `{shown}` not found")).primary(
            file,
            path_span(&u.path),
            "no such module",
        );
        match segs.as_slice() {
            ["std"] => {
                diag = diag.help(format!(
                    "name a standard module: {}",
                    std_names(self.stdlib, self.fs).join(", ")
                ))
            }
            ["std", rest @ ..] => {
                let names = std_names(self.stdlib, self.fs);
                let wanted = rest.join("::");
                let bare: Vec<&str> = names
                    .iter()
                    .map(|n| n.trim_start_matches("std::"))
                    .collect();
                let hint = match super::closest(&wanted, bare.iter().copied()) {
                    Some(s) => format!("did you mean `std::{s}`? "),
                    None => String::new(),
                };
                diag = diag.help(format!(
                    "{hint}the standard modules are: {}",
                    names.join(", ")
                ));
            }
            _ => {
                // Both readings of the path were tried: the whole path as a
                // module, and (without braces) all but the last segment.
                let mut tried = vec![relative_path(from, &segs).display().to_string()];
                if matches!(u.imports, ast::UseImports::Single { .. }) && segs.len() >= 2 {
                    tried.push(
                        relative_path(from, &segs[..segs.len() - 1])
                            .display()
                            .to_string(),
                    );
                }
                diag = diag.help(format!(
                    "looked for {}; user modules are `.enigma` files relative to the importing file, standard ones start with `std::`",
                    tried.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(" and ")
                ));
            }
        }
        self.diagnostics.push(diag);
    }

    fn report_cycle(&mut self, start: usize, current: ModuleId, closing: Span) {
        let chain: Vec<(ModuleId, Span)> = self.stack[start..]
            .iter()
            .copied()
            .chain(std::iter::once((current, closing)))
            .collect();
        let names: Vec<String> = chain
            .iter()
            .map(|(m, _)| self.modules[m.0 as usize].name.clone())
            .collect();
        let first = names.first().cloned().unwrap_or_default();
        let cycle = format!("{} -> {first}", names.join(" -> "));
        let file = self.modules[current.0 as usize].file;
        let mut diag = Diagnostic::new(Code::E0103, format!("import cycle: {cycle}")).primary(
            file,
            closing,
            "this import closes the cycle",
        );
        for (m, span) in &chain[..chain.len() - 1] {
            diag = diag.secondary(self.modules[m.0 as usize].file, *span, "imported here");
        }
        self.diagnostics.push(diag.help(
            "modules may not import each other in a circle; move the shared definitions into a third module that both import",
        ));
    }
}

/// The span covering a whole `use` path.
fn path_span(path: &[ast::Ident]) -> Span {
    match (path.first(), path.last()) {
        (Some(a), Some(b)) => a.span.to(b.span),
        _ => Span::default(),
    }
}

/// `a::b` imported from `dir/x.enigma` is `dir/a/b.enigma`. Embedded
/// standard modules have no directory and resolve user paths against the
/// working directory.
fn relative_path(from: Option<&Path>, segs: &[&str]) -> PathBuf {
    let base = from
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut path = base;
    for s in segs {
        path.push(s);
    }
    path.set_extension("enigma");
    path
}

fn std_names(stdlib: &Stdlib, fs: &dyn SourceLoader) -> Vec<String> {
    match stdlib {
        Stdlib::Embedded => stdlib::EMBEDDED
            .iter()
            .map(|(n, _)| format!("std::{n}"))
            .collect(),
        Stdlib::Dir(dir) => {
            // Listing a directory is the one read that bypasses the loader;
            // it only feeds a help message.
            let _ = fs;
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let p = e.path();
                    if p.extension()? != "enigma" {
                        return None;
                    }
                    Some(format!("std::{}", p.file_stem()?.to_string_lossy()))
                })
                .collect();
            names.sort();
            names
        }
    }
}
