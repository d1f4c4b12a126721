//! Hover: what the thing under the cursor is, in Markdown.
//!
//! Four kinds of answer, combined when several apply:
//! - a name: its definition's signature and doc comment (a module's whole
//!   signature, a dim's size, a parameter's type), or what kind of builtin
//!   it is;
//! - an expression or binding: the type the checker found, with named
//!   dims, sizes and rates (`f32[batch, T=60@30Hz, N=7000]`); a module
//!   applied with different sizes shows each distinct type;
//! - a settings key: its documentation and allowed values, from the same
//!   schema the checker enforces;
//! - a place with a diagnostic: the explanation of its code.

use super::index::contains;
use super::{Analysis, Target};
use crate::base::{FileId, Span};
use crate::check::schema;
use crate::check::FactKind;
use crate::resolve::builtins;

/// A hover answer: the span it is about and Markdown to show.
#[derive(Clone, Debug, PartialEq)]
pub struct Hover {
    pub span: Span,
    pub markdown: String,
}

/// At most this many distinct types are listed for one place.
const MAX_TYPES: usize = 4;

/// The hover at `offset` of `file`, if anything there is worth showing.
pub fn hover(a: &Analysis, file: FileId, offset: usize) -> Option<Hover> {
    let mut sections = Vec::new();
    let mut span = None;
    if let Some((at, target)) = a.target_at(file, offset) {
        span = Some(at);
        sections.extend(name_section(a, &target));
        let kind = match &target {
            Target::Def(site) if site.file == file && site.span == at => FactKind::Binding,
            _ => FactKind::Expr,
        };
        sections.extend(types_section(a, file, at, Some(kind)));
    } else if let Some(key) = a
        .index(file)
        .and_then(|ix| ix.keys.iter().find(|k| contains(k.span, offset)))
    {
        span = Some(key.span);
        let path: Vec<&str> = key.path.iter().map(String::as_str).collect();
        sections.extend(setting_section(&path));
    } else if let Some(at) = innermost_fact(a, file, offset) {
        span = Some(at);
        sections.extend(types_section(a, file, at, None));
    }
    for d in diagnostics_at(a, file, offset) {
        span.get_or_insert(d.0);
        sections.push(d.1);
    }
    if sections.is_empty() {
        return None;
    }
    Some(Hover {
        span: span.unwrap_or(Span::point(offset)),
        markdown: sections.join("\n\n---\n\n"),
    })
}

fn name_section(a: &Analysis, target: &Target) -> Option<String> {
    match target {
        Target::Builtin(name) => {
            let kind = builtins::lookup(name).map(|k| k.describe()).unwrap_or(
                if builtins::is_type_name(name) {
                    "type"
                } else {
                    "builtin"
                },
            );
            Some(format!(
                "```enigma\n{name}\n```\nbuiltin {kind} (see the language reference, docs/language.md)"
            ))
        }
        Target::Def(site) => {
            let def = a.def(*site)?;
            let mut s = format!("```enigma\n{}\n```", def.signature);
            if !def.docs.is_empty() {
                s.push_str("\n\n");
                s.push_str(&def.docs);
            }
            if site.file != a.root() {
                s.push_str(&format!(
                    "\n\n*defined in {}*",
                    a.program().sources.get(site.file).name
                ));
            }
            Some(s)
        }
    }
}

/// The distinct types recorded at exactly `span` (of `kind`, when given).
fn types_section(a: &Analysis, file: FileId, span: Span, kind: Option<FactKind>) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut total = 0;
    for f in &a.artifacts.types {
        if f.file != file || f.span != span || kind.is_some_and(|k| k != f.kind) {
            continue;
        }
        if !seen.contains(&f.text.as_str()) {
            total += 1;
            if seen.len() < MAX_TYPES {
                seen.push(&f.text);
            }
        }
    }
    if seen.is_empty() {
        return None;
    }
    let mut s = String::from("```enigma\n");
    s.push_str(&seen.join("\n"));
    s.push_str("\n```");
    if total > seen.len() {
        s.push_str(&format!("\n\n… and {} more types", total - seen.len()));
    } else if seen.len() > 1 {
        s.push_str("\n\none type per application with different sizes");
    }
    Some(s)
}

/// The smallest expression with a recorded type around `offset`.
fn innermost_fact(a: &Analysis, file: FileId, offset: usize) -> Option<Span> {
    a.artifacts
        .types
        .iter()
        .filter(|f| f.file == file && contains(f.span, offset))
        .map(|f| f.span)
        .min_by_key(|s| s.len())
}

/// A setting's documentation, kind and allowed values.
pub fn setting_section(path: &[&str]) -> Option<String> {
    let setting = schema::lookup(path)?;
    let mut s = format!(
        "```enigma\n{}: {}\n```\n{}",
        path.join("."),
        setting.kind.describe(),
        setting.doc
    );
    if setting.required {
        s.push_str("\n\nRequired.");
    }
    let values = setting.kind.values();
    if !values.is_empty() {
        let shown: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        s.push_str(&format!("\n\nAllowed: {}", shown.join(", ")));
    }
    Some(s)
}

/// Diagnostics whose primary span covers `offset`, each with its code's
/// explanation (the first paragraph of its page).
fn diagnostics_at(a: &Analysis, file: FileId, offset: usize) -> Vec<(Span, String)> {
    let mut out = Vec::new();
    let mut codes = Vec::new();
    for d in &a.artifacts.diagnostics {
        let Some(l) = d.primary_label() else { continue };
        if l.file != file || !contains(l.span, offset) || codes.contains(&d.code) {
            continue;
        }
        codes.push(d.code);
        out.push((l.span, explain(d.code)));
    }
    out
}

/// `**E0105** unknown name` and the first paragraph of its page.
pub fn explain(code: crate::diagnostics::Code) -> String {
    let page = code.page();
    let first = page
        .split("\n\n")
        .map(str::trim)
        .find(|p| !p.is_empty() && !p.starts_with('#'))
        .unwrap_or("");
    format!(
        "**{}**: {}\n\n{}\n\n(`enigma explain {}` prints the whole page.)",
        code.as_str(),
        code.title(),
        first.replace('\n', " "),
        code.as_str()
    )
}
