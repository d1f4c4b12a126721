//! Printing diagnostics and summaries in the format the user chose.

use std::io::{IsTerminal, Write};

use super::{Color, ErrorFormat};
use crate::diagnostics::{render, Diagnostic, Severity};
use crate::source::SourceMap;

pub struct Output {
    pub format: ErrorFormat,
    color: bool,
    width: usize,
}

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
        }
    }

    /// Prints diagnostics: human text to stderr, JSON lines to stdout.
    pub fn diagnostics(&self, diags: &[Diagnostic], sources: &SourceMap) {
        match self.format {
            ErrorFormat::Human => {
                let style = render::HumanStyle {
                    color: self.color,
                    width: self.width,
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
        if self.format == ErrorFormat::Human {
            eprintln!("{line}");
        }
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
