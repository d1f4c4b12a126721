//! Which argument the user wrote is to blame for a size that fails.
//!
//! A size error usually happens far from its cause: `d / heads` fails on a
//! line of the standard library's `Transformer`, `H / h` inside `Tubelets`,
//! `N / p` inside the user's own module, while what the user can change is
//! the argument `heads: 5`, `size: [2, 16, 16]` or `p: 7` at a call. Every
//! frame therefore records, for each compile-time name it binds (an
//! argument, a default, a `let`), where its value was written: a
//! [`Setter`]. When an arithmetic error is reported, [`Elab::blame`] reads
//! the names in the failing expression and follows them back through the
//! setters, frame by frame, until it reaches text in the user's files: those
//! arguments get the primary label, and the line where the arithmetic
//! failed becomes a secondary one.
//!
//! Only compile-time values are followed (sizes, numbers, dims, lists of
//! them): a tensor argument is data, and a mismatch between tensors is
//! reported where the tensors meet.

use super::{Elab, Val};
use crate::base::Loc;
use crate::diagnostics::Code;

/// Where a compile-time name of a frame got its value.
#[derive(Clone, Debug)]
pub(crate) struct Setter {
    /// The parameter or `let` name.
    pub name: String,
    /// The text that gave the value: an argument, a default, a `let`.
    pub loc: Loc,
    /// Whether that text was evaluated in the caller's frame (an argument)
    /// rather than this one (a default or a `let`).
    pub outer: bool,
    /// The size, when the value is a dim or a whole number.
    pub size: Option<i64>,
}

/// Whether a value is known when the program is checked, so that what set
/// it is worth naming.
pub(super) fn compile_time(v: &Val) -> bool {
    match v {
        Val::Const(_) | Val::Dim(_) => true,
        Val::Tuple(items) => items.iter().all(compile_time),
        _ => false,
    }
}

/// The codes of errors in size arithmetic, whose cause is a value someone
/// chose rather than the data.
pub(super) fn blamed(code: Code) -> bool {
    matches!(
        code,
        Code::E0201 | Code::E0202 | Code::E0203 | Code::E0205 | Code::E0215
    )
}

/// The identifiers in a piece of source text, in order.
fn identifiers(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            // A name after `.` is a field, not a binding of this frame.
            let field = start > 0 && bytes[start - 1] == b'.';
            if !field {
                out.push(&text[start..i]);
            }
        } else if c.is_ascii_digit() {
            // Skip a number with its unit (`30Hz`, `2s`, `1e-3`).
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

impl Elab<'_, '_> {
    /// Records where a compile-time name of the current frame got its
    /// value.
    pub(super) fn set_by(&mut self, name: &str, v: &Val, loc: Loc, outer: bool) {
        if compile_time(v) {
            let size = match v {
                Val::Dim(d) => d.size.as_ref().and_then(|s| s.as_const()),
                Val::Const(crate::ir::types::Value::Size(s)) => s.as_const(),
                _ => None,
            };
            self.frame_mut().setters.push(Setter {
                name: name.to_string(),
                loc,
                outer,
                size,
            });
        }
    }

    /// The places in the user's files that set the values the text at
    /// `at` (in the current frame) computes with, each with the name it
    /// sets, in the order the names appear. Empty when the text uses no
    /// argument (a literal, or data).
    pub(super) fn blame(&self, at: Loc) -> Vec<(Loc, String)> {
        let text = self.consts.program.sources.get(at.file).slice(at.span);
        let top = self.frames.len() - 1;
        let names: Vec<(usize, &str)> = identifiers(text).into_iter().map(|n| (top, n)).collect();
        self.blame_names(&names, Some(at))
    }

    /// [`Elab::blame`] for sizes a primitive found wrong in tensors it was
    /// given (a number of heads, a head width): each size is traced from the
    /// one name bound to it in the innermost frame that has exactly one
    /// (`head_dim` in `Attention` when `rope` finds an odd width).
    pub(super) fn blame_sizes(&self, sizes: &[i64]) -> Vec<(Loc, String)> {
        let mut names: Vec<(usize, &str)> = Vec::new();
        for &size in sizes {
            for fi in (0..self.frames.len()).rev() {
                let mut bound: Vec<&str> = self.frames[fi]
                    .setters
                    .iter()
                    .filter(|s| s.size == Some(size))
                    .map(|s| s.name.as_str())
                    .collect();
                bound.sort_unstable();
                bound.dedup();
                match bound.as_slice() {
                    [one] => {
                        names.push((fi, *one));
                        break;
                    }
                    [] => continue,
                    // Two names of one size: which one is meant is unknown.
                    _ => break,
                }
            }
        }
        self.blame_names(&names, None)
    }

    /// [`Elab::blame`] for names of given frames.
    pub(super) fn blame_names(
        &self,
        names: &[(usize, &str)],
        at: Option<Loc>,
    ) -> Vec<(Loc, String)> {
        let mut found: Vec<(Loc, String)> = Vec::new();
        // (frame index, text to read there, the name that text sets); a
        // stack, so pushed in reverse to be read in order.
        let mut work: Vec<(usize, Loc, String)> = Vec::new();
        for (fi, name) in names.iter().rev() {
            if let Some(step) = self.step(*fi, name, at) {
                work.push(step);
            }
        }
        let mut steps = 0;
        while let Some((fi, loc, named)) = work.pop() {
            steps += 1;
            if steps > 256 {
                break;
            }
            // Text in the user's files that is an argument, a default or a
            // `let` is what the user can change: stop there.
            if !self.std_files.contains(&loc.file) {
                if !found.iter().any(|(l, _)| *l == loc) {
                    found.push((loc, named));
                }
                continue;
            }
            let text = self.consts.program.sources.get(loc.file).slice(loc.span);
            let next: Vec<_> = identifiers(text)
                .into_iter()
                .filter_map(|name| self.step(fi, name, Some(loc)))
                .collect();
            work.extend(next.into_iter().rev());
        }
        found
    }

    /// Where `name`, read in frame `fi`, got its value, and the frame that
    /// text was evaluated in.
    fn step(&self, fi: usize, name: &str, from: Option<Loc>) -> Option<(usize, Loc, String)> {
        let s = self.frames[fi]
            .setters
            .iter()
            .rev()
            .find(|s| s.name == name)?;
        if Some(s.loc) == from {
            return None;
        }
        let target = if s.outer { fi.checked_sub(1)? } else { fi };
        Some((target, s.loc, s.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::identifiers;

    #[test]
    fn identifiers_skip_numbers_units_and_fields() {
        assert_eq!(identifiers("d / heads"), vec!["d", "heads"]);
        assert_eq!(identifiers("size[1] * 2s + 30Hz"), vec!["size"]);
        assert_eq!(identifiers("cfg.width + 1e-3"), vec!["cfg"]);
        assert_eq!(identifiers("T / t"), vec!["T", "t"]);
    }
}
