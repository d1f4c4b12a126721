//! Conversions between the compiler's byte offsets and file paths and the
//! protocol's positions and URIs.
//!
//! The protocol counts columns in UTF-16 code units (its default, and the
//! one encoding every client supports), the compiler in bytes; a
//! [`LineIndex`] converts both ways for one text. URIs are `file://` URIs
//! with percent-encoding; anything else is not a file this server reads.

use std::path::{Path, PathBuf};

use lsp_types::{Position, Range, Uri};

use crate::base::Span;

/// Line starts of a text, for offset <-> position conversion.
#[derive(Clone, Debug)]
pub struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub fn new(text: &'t str) -> LineIndex<'t> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The protocol position of a byte offset (clamped to the text).
    pub fn position(&self, offset: usize) -> Position {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let character: usize = self.text[start..offset].chars().map(char::len_utf16).sum();
        Position {
            line: line as u32,
            character: character as u32,
        }
    }

    /// The byte offset of a protocol position. A line past the end gives
    /// the end of the text; a column past the end of its line gives the
    /// end of that line (as the protocol asks).
    pub fn offset(&self, p: Position) -> usize {
        let Some(&start) = self.starts.get(p.line as usize) else {
            return self.text.len();
        };
        let end = self
            .starts
            .get(p.line as usize + 1)
            .map_or(self.text.len(), |e| e.saturating_sub(1));
        let mut units = 0usize;
        for (i, c) in self.text[start..end].char_indices() {
            if units >= p.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }

    pub fn range(&self, span: Span) -> Range {
        Range {
            start: self.position(span.start as usize),
            end: self.position(span.end as usize),
        }
    }

    pub fn span(&self, r: Range) -> Span {
        let (a, b) = (self.offset(r.start), self.offset(r.end));
        Span::new(a.min(b), a.max(b))
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The path a `file://` URI names, or `None` for other schemes.
pub fn uri_to_path(uri: &Uri) -> Option<PathBuf> {
    let rest = uri.0.strip_prefix("file://")?;
    // `file:///home/x` has an empty authority; `file://localhost/...` too.
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let bytes = percent_decode(rest)?;
    let s = String::from_utf8(bytes).ok()?;
    Some(PathBuf::from(s))
}

/// The `file://` URI of an absolute path.
pub fn path_to_uri(path: &Path) -> Uri {
    let mut out = String::from("file://");
    for &b in path.to_string_lossy().as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"/-_.~".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Uri(out)
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        // `é` is 2 bytes and 1 UTF-16 unit; `𝛼` is 4 bytes and 2 units.
        let text = "ab\né𝛼x\n";
        let ix = LineIndex::new(text);
        let x = text.find('x').unwrap_or(0);
        assert_eq!(
            ix.position(x),
            Position {
                line: 1,
                character: 3
            }
        );
        assert_eq!(
            ix.offset(Position {
                line: 1,
                character: 3
            }),
            x
        );
        assert_eq!(
            ix.offset(Position {
                line: 0,
                character: 99
            }),
            2
        );
        assert_eq!(
            ix.offset(Position {
                line: 9,
                character: 0
            }),
            text.len()
        );
    }

    #[test]
    fn uris_round_trip_with_escapes() {
        let p = Path::new("/tmp/my dir/ä.enigma");
        let uri = path_to_uri(p);
        assert_eq!(uri.0, "file:///tmp/my%20dir/%C3%A4.enigma");
        assert_eq!(uri_to_path(&uri).as_deref(), Some(p));
        assert_eq!(uri_to_path(&Uri("untitled:1".to_string())), None);
    }
}
