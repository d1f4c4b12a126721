//! Quick fixes: every diagnostic whose help says "did you mean `X`?"
//! offers to replace the text its primary label marks with `X`.

use super::Analysis;
use crate::base::{FileId, Span};
use crate::diagnostics::Diagnostic;

/// A replacement that fixes a diagnostic.
#[derive(Clone, Debug, PartialEq)]
pub struct Fix {
    pub title: String,
    pub span: Span,
    pub replacement: String,
    /// The diagnostic it fixes.
    pub diagnostic: Diagnostic,
}

/// The fixes for diagnostics of `file` whose primary span meets `range`.
pub fn quick_fixes(a: &Analysis, file: FileId, range: Span) -> Vec<Fix> {
    let text = a.text(file);
    let mut out = Vec::new();
    for d in &a.artifacts.diagnostics {
        let Some(label) = d.primary_label() else {
            continue;
        };
        let meets = label.span.start <= range.end && range.start <= label.span.end;
        if label.file != file || !meets {
            continue;
        }
        let Some(suggestion) = d.help.as_deref().and_then(suggested) else {
            continue;
        };
        let written = text.get(label.span.range()).unwrap_or("");
        // A path suggestion (`nn::Linear`) for a label on one segment
        // replaces that segment only.
        let replacement = if suggestion.contains("::") && !written.contains("::") {
            suggestion.rsplit("::").next().unwrap_or(suggestion)
        } else {
            suggestion
        };
        if replacement == written || replacement.is_empty() {
            continue;
        }
        out.push(Fix {
            title: format!("replace `{written}` with `{replacement}`"),
            span: label.span,
            replacement: replacement.to_string(),
            diagnostic: d.clone(),
        });
    }
    out
}

/// `X` from a help that says "did you mean `X`?".
pub fn suggested(help: &str) -> Option<&str> {
    let rest = &help[help.find("did you mean `")? + "did you mean `".len()..];
    let end = rest.find('`')?;
    Some(&rest[..end])
}
