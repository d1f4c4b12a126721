//! Navigation: go to definition, find references, rename and the outline
//! of a file (document symbols).
//!
//! Definitions come from the resolver's record of every use
//! ([`crate::resolve::NameRef`]), followed through imports to the item's
//! own file, including the standard library's. References are every use
//! that leads to the same definition site, plus the `use` names that
//! import it; rename edits exactly those, and refuses builtins, the
//! read-only standard library and names that are not identifiers.

use super::{Analysis, DefKind, Target};
use crate::base::{FileId, Span};

use crate::syntax::ast::ItemKind;

/// A place in a loaded file.
pub type Place = (FileId, Span);

/// Where the name at `offset` is defined.
pub fn definition(a: &Analysis, file: FileId, offset: usize) -> Option<Place> {
    match a.target_at(file, offset)?.1 {
        Target::Def(site) => Some((site.file, site.span)),
        Target::Builtin(_) => None,
    }
}

/// Every place that names what the name at `offset` names, in file and
/// position order; with `declaration`, the definition itself too.
pub fn references(a: &Analysis, file: FileId, offset: usize, declaration: bool) -> Vec<Place> {
    let Some((_, target)) = a.target_at(file, offset) else {
        return Vec::new();
    };
    let mut out = references_to(a, &target);
    if let (Target::Def(site), true) = (&target, declaration) {
        out.push((site.file, site.span));
    }
    out.sort_by_key(|(f, s)| (*f, s.start));
    out.dedup();
    out
}

/// The uses of a target (never its definition).
pub fn references_to(a: &Analysis, target: &Target) -> Vec<Place> {
    let program = a.program();
    let mut out = Vec::new();
    for r in &program.refs {
        let same = match (target, &r.target) {
            (Target::Builtin(name), crate::resolve::RefTarget::Builtin(n)) => name == n,
            (Target::Def(site), t) => program.definition(r.file, t) == Some(*site),
            _ => false,
        };
        if same {
            out.push((r.file, r.span));
        }
    }
    if let Target::Def(site) = target {
        let is_param = a.def(*site).is_some_and(|d| d.kind == DefKind::Param);
        // `use` names that import the definition, and for a parameter the
        // named arguments that give it.
        for (id, _) in program.sources.iter() {
            let Some(ix) = a.index(id) else { continue };
            let args = ix
                .calls
                .iter()
                .flat_map(|c| c.args.iter().filter_map(|(_, n)| n.as_ref()))
                .filter(|_| is_param);
            let names = ix.use_names.iter().map(|(n, _)| n);
            for name in names.chain(args) {
                let found = a.target_at(id, name.span.start as usize);
                if matches!(found, Some((_, Target::Def(s))) if s == *site) {
                    out.push((id, name.span));
                }
            }
        }
    }
    out
}

/// Why a rename cannot be done, in a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenameError(pub String);

/// The places to replace with `new_name` to rename what is at `offset`.
pub fn rename(
    a: &Analysis,
    file: FileId,
    offset: usize,
    new_name: &str,
) -> Result<Vec<Place>, RenameError> {
    if !is_identifier(new_name) {
        return Err(RenameError(format!(
            "`{new_name}` is not a name: names are a letter or `_` followed by letters, digits and `_`, and not a keyword"
        )));
    }
    let Some((_, target)) = a.target_at(file, offset) else {
        return Err(RenameError("there is no name here to rename".to_string()));
    };
    let site = match target {
        Target::Builtin(name) => {
            return Err(RenameError(format!(
                "`{name}` is a builtin and cannot be renamed"
            )))
        }
        Target::Def(site) => site,
    };
    if a.is_stdlib(site.file) {
        return Err(RenameError(
            "this name is defined in the standard library, which is read-only".to_string(),
        ));
    }
    let old = a.text(site.file).get(site.span.range()).unwrap_or("");
    let mut places = references(a, file, offset, true);
    // An aliased import (`use m::{Enc as E}`) keeps its alias: only the
    // places spelt like the definition are renamed.
    places.retain(|(f, s)| a.text(*f).get(s.range()) == Some(old) && !a.is_stdlib(*f));
    Ok(places)
}

/// Whether `s` can be a name: an identifier that is not a keyword.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !crate::syntax::RESERVED.contains(&s)
}

/// One entry of a file's outline.
#[derive(Clone, Debug, PartialEq)]
pub struct Symbol {
    pub name: String,
    /// The signature, shown beside the name.
    pub detail: String,
    /// What it is; `None` for a `train` or `parallel` block.
    pub kind: Option<DefKind>,
    /// The whole item.
    pub span: Span,
    /// The name.
    pub selection: Span,
    pub children: Vec<Symbol>,
}

/// The outline of a file: its items, with their parameters and the names
/// their bodies bind.
pub fn symbols(a: &Analysis, file: FileId) -> Vec<Symbol> {
    let program = a.program();
    let Some(ast) = program
        .module_of(file)
        .and_then(|m| program.module(m).ast.as_ref())
    else {
        return Vec::new();
    };
    let Some(ix) = a.index(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in ast.items.iter().enumerate() {
        let defs: Vec<_> = ix.defs.iter().filter(|d| d.item == i).collect();
        let children = defs
            .iter()
            .filter(|d| !d.kind.is_item())
            .map(|d| Symbol {
                name: d.name.clone(),
                detail: d.signature.clone(),
                kind: Some(d.kind),
                span: d.span,
                selection: d.span,
                children: Vec::new(),
            })
            .collect();
        if let Some(d) = defs.iter().find(|d| d.kind.is_item()) {
            out.push(Symbol {
                name: d.name.clone(),
                detail: d.signature.clone(),
                kind: Some(d.kind),
                span: item.span,
                selection: d.span,
                children,
            });
        } else if let ItemKind::Train(_) | ItemKind::Parallel(_) = &item.kind {
            let word = item.kind.keyword();
            out.push(Symbol {
                name: word.to_string(),
                detail: format!("{word} {{ ... }}"),
                kind: None,
                span: item.span,
                selection: Span::new(
                    item.span.start as usize,
                    item.span.start as usize + word.len(),
                ),
                children,
            });
        }
    }
    out
}
