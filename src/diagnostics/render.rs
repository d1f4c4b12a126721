//! Rendering diagnostics for people (through miette) and for tools (JSON).
//!
//! The terminal form shows the source with labelled spans; labels in another
//! file than the primary one (a stdlib definition, an imported module) are
//! rendered as related reports over their own file. The JSON form is one
//! object per line with byte and line/column ranges, which is what editor
//! integrations read.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use super::{Diagnostic, Label, Severity};
use crate::base::FileId;
use crate::source::SourceMap;

/// How the terminal rendering should look.
#[derive(Clone, Copy, Debug)]
pub struct HumanStyle {
    pub color: bool,
    pub width: usize,
}

impl Default for HumanStyle {
    fn default() -> Self {
        HumanStyle {
            color: false,
            width: 100,
        }
    }
}

/// Renders one diagnostic as text with source excerpts.
pub fn human(diag: &Diagnostic, sources: &SourceMap, style: HumanStyle) -> String {
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_links(false)
        .without_syntax_highlighting();
    let report = Report::build(diag, sources);
    let mut out = String::new();
    if has_long_line(diag, sources) {
        // miette prints whole source lines; for a line of thousands of
        // characters (generated or garbage input) show a window instead.
        out = compact(diag, sources);
    } else if handler.render_report(&mut out, &report).is_err() {
        // Rendering into a String cannot fail on I/O; if miette rejects a
        // span, fall back to a plain line so the diagnostic is never lost.
        out = plain(diag, sources);
    }
    for note in &diag.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}

/// Lines longer than this are shown as a window around the label.
const LONG_LINE: usize = 400;

fn has_long_line(diag: &Diagnostic, sources: &SourceMap) -> bool {
    diag.labels.iter().any(|l| {
        let text = &sources.get(l.file).text;
        let at = (l.span.start as usize).min(text.len());
        let start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let end = text[at..].find('\n').map(|i| at + i).unwrap_or(text.len());
        end - start > LONG_LINE
    })
}

/// The plain form plus, for each label, up to 60 characters either side of
/// it with a caret line, then help and notes.
fn compact(diag: &Diagnostic, sources: &SourceMap) -> String {
    let mut out = plain(diag, sources);
    for l in &diag.labels {
        let f = sources.get(l.file);
        let text = &f.text;
        let at = (l.span.start as usize).min(text.len());
        let floor = |mut i: usize| {
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let line_start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let from = floor(at.saturating_sub(60).max(line_start));
        let line_end = text[at..].find('\n').map(|i| at + i).unwrap_or(text.len());
        let to = floor((at + 60).min(line_end));
        let (line, col) = f.line_col(at);
        let excerpt: String = text[from..to]
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let caret = " ".repeat(text[from..at].chars().count());
        out.push_str(&format!(
            "  --> {}:{line}:{col}\n   | ...{excerpt}...\n   |    {caret}^ {}\n",
            f.name, l.message
        ));
    }
    if let Some(h) = &diag.help {
        out.push_str(&format!("  help: {h}\n"));
    }
    out
}

/// A one-line form: `file:line:col: error[E0105]: message`.
pub fn plain(diag: &Diagnostic, sources: &SourceMap) -> String {
    let at = diag
        .primary_label()
        .map(|l| {
            let f = sources.get(l.file);
            let (line, col) = f.line_col(l.span.start as usize);
            format!("{}:{line}:{col}: ", f.name)
        })
        .unwrap_or_default();
    format!(
        "{at}{}[{}]: {}\n",
        diag.severity.as_str(),
        diag.code,
        diag.message
    )
}

/// A miette view of a diagnostic restricted to the labels of one file.
struct Report {
    code: String,
    severity: Severity,
    message: String,
    help: Option<String>,
    source: NamedSource<String>,
    labels: Vec<LabeledSpan>,
    related: Vec<Report>,
    /// A related report: the rest of one diagnostic, in another file.
    advice: bool,
}

impl Report {
    fn build(diag: &Diagnostic, sources: &SourceMap) -> Report {
        let main_file = diag.primary_label().map(|l| l.file);
        let mut files: Vec<FileId> = Vec::new();
        for l in &diag.labels {
            if Some(l.file) != main_file && !files.contains(&l.file) {
                files.push(l.file);
            }
        }
        let related = files
            .into_iter()
            .map(|file| Report {
                code: String::new(),
                severity: diag.severity,
                // The other files' labels belong to the same diagnostic;
                // shown as advice they do not read as a second error.
                advice: true,
                message: format!(
                    "the {} above involves {}",
                    diag.severity.as_str(),
                    sources.get(file).name
                ),
                help: None,
                source: named(sources, file),
                labels: labels_in(&diag.labels, file),
                related: Vec::new(),
            })
            .collect();
        Report {
            code: diag.code.as_str().to_string(),
            severity: diag.severity,
            message: diag.message.clone(),
            help: diag.help.clone(),
            source: match main_file {
                Some(f) => named(sources, f),
                None => NamedSource::new("<none>", String::new()),
            },
            labels: main_file
                .map(|f| labels_in(&diag.labels, f))
                .unwrap_or_default(),
            related,
            advice: false,
        }
    }
}

fn named(sources: &SourceMap, file: FileId) -> NamedSource<String> {
    let f = sources.get(file);
    NamedSource::new(&f.name, f.text.clone())
}

fn labels_in(labels: &[Label], file: FileId) -> Vec<LabeledSpan> {
    labels
        .iter()
        .filter(|l| l.file == file)
        .map(|l| {
            let span = SourceSpan::new((l.span.start as usize).into(), l.span.len());
            let text = (!l.message.is_empty()).then(|| l.message.clone());
            if l.primary {
                LabeledSpan::new_primary_with_span(text, span)
            } else {
                LabeledSpan::new_with_span(text, span)
            }
        })
        .collect()
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.code.is_empty()).then(|| Box::new(&self.code) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        if self.advice {
            return Some(miette::Severity::Advice);
        }
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}

/// A position as editors count it: 1-based line and column.
#[derive(Serialize)]
struct Position {
    line: usize,
    column: usize,
}

#[derive(Serialize)]
struct JsonRange {
    start: Position,
    end: Position,
}

#[derive(Serialize)]
struct JsonSpan {
    start: u32,
    end: u32,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    file: &'a str,
    span: JsonSpan,
    range: JsonRange,
    message: &'a str,
    primary: bool,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'static str,
    severity: &'static str,
    message: &'a str,
    file: Option<&'a str>,
    span: Option<JsonSpan>,
    range: Option<JsonRange>,
    labels: Vec<JsonLabel<'a>>,
    help: Option<&'a str>,
    notes: &'a [String],
}

fn range(sources: &SourceMap, l: &Label) -> JsonRange {
    let f = sources.get(l.file);
    let (sl, sc) = f.line_col(l.span.start as usize);
    let (el, ec) = f.line_col(l.span.end as usize);
    JsonRange {
        start: Position {
            line: sl,
            column: sc,
        },
        end: Position {
            line: el,
            column: ec,
        },
    }
}

/// Renders one diagnostic as a single line of JSON.
pub fn json(diag: &Diagnostic, sources: &SourceMap) -> String {
    let primary = diag.primary_label();
    let value = JsonDiagnostic {
        code: diag.code.as_str(),
        severity: diag.severity.as_str(),
        message: &diag.message,
        file: primary.map(|l| sources.get(l.file).name.as_str()),
        span: primary.map(|l| JsonSpan {
            start: l.span.start,
            end: l.span.end,
        }),
        range: primary.map(|l| range(sources, l)),
        labels: diag
            .labels
            .iter()
            .map(|l| JsonLabel {
                file: sources.get(l.file).name.as_str(),
                span: JsonSpan {
                    start: l.span.start,
                    end: l.span.end,
                },
                range: range(sources, l),
                message: &l.message,
                primary: l.primary,
            })
            .collect(),
        help: diag.help.as_deref(),
        notes: &diag.notes,
    };
    // Serialising plain structs of strings and integers cannot fail.
    serde_json::to_string(&value).unwrap_or_default()
}
