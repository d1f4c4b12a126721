//! Printing diagnostics and summaries in the format the user chose.

use std::io::{IsTerminal, Write};

use super::{Color, ErrorFormat};
use crate::diagnostics::{render, Diagnostic, Error, Severity};
use crate::source::SourceMap;

pub struct Output {
    pub format: ErrorFormat,
    color: bool,
    width: usize,
    /// Print nothing (a rank other than the leader of a job, whose
    /// diagnostics would repeat the leader's).
    silent: bool,
}

/// A width no message reaches, for text that must stay on one line.
const UNWRAPPED: usize = 1 << 16;

impl Output {
    pub fn new(format: ErrorFormat, color: Color) -> Output {
        let color = match color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100);
        Output {
            format,
            color,
            width,
            silent: false,
        }
    }

    /// An output that prints nothing.
    pub fn quiet() -> Output {
        Output {
            format: ErrorFormat::Human,
            color: false,
            width: UNWRAPPED,
            silent: true,
        }
    }

    /// Prints diagnostics: human text to stderr, JSON lines to stdout.
    pub fn diagnostics(&self, diags: &[Diagnostic], sources: &SourceMap) {
        self.print(diags, sources, self.width);
    }

    fn print(&self, diags: &[Diagnostic], sources: &SourceMap, width: usize) {
        if self.silent {
            return;
        }
        match self.format {
            ErrorFormat::Human => {
                let style = render::HumanStyle {
                    color: self.color,
                    width,
                };
                let mut err = std::io::stderr().lock();
                for d in diags {
                    let _ = write!(err, "{}", render::human(d, sources, style));
                }
            }
            ErrorFormat::Json => {
                let mut out = std::io::stdout().lock();
                for d in diags {
                    let _ = writeln!(out, "{}", render::json(d, sources));
                }
            }
        }
    }

    /// A closing line for people; tools reading JSON get none.
    pub fn summary(&self, line: &str) {
        if self.format == ErrorFormat::Human && !self.silent {
            eprintln!("{line}");
        }
    }

    /// An error after checking (the data, the planner, the runtime),
    /// rendered as a diagnostic with its code. Its message is not wrapped:
    /// it names files, steps and nodes that people search a cluster log
    /// for, and has no source excerpt to fit beside.
    pub fn error(&self, e: &Error, sources: &SourceMap) {
        self.print(&[e.to_diagnostic()], sources, UNWRAPPED);
    }

    /// An error that is not a diagnostic (I/O, usage), always on stderr.
    pub fn fatal(&self, line: &str) {
        eprintln!("error: {line}");
    }
}

/// Counts errors and warnings for summaries.
pub fn count(diags: &[Diagnostic]) -> (usize, usize) {
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    (errors, diags.len() - errors)
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
