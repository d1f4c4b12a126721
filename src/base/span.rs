//! Places in source text: byte spans, file ids, and the two together.
//!
//! A [`Span`] is a half-open byte range `start..end` within one file. Which
//! file it belongs to is carried beside it (a [`FileId`], numbering the
//! loaded files of a source map), so AST nodes stay small and
//! files can be parsed independently. A [`Loc`] is the pair, for values
//! that outlive the AST (a dim's origin, a setting in the experiment) and
//! must still point at what the user wrote.

use serde::Serialize;

/// A half-open byte range `start..end` in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        // Files are limited to a few megabytes before parsing (see
        // `syntax::MAX_SOURCE_BYTES`), so offsets always fit in 32 bits.
        Span {
            start: start.min(u32::MAX as usize) as u32,
            end: end.min(u32::MAX as usize) as u32,
        }
    }

    /// An empty span at `offset`, for "expected something here" labels.
    pub fn point(offset: usize) -> Span {
        Span::new(offset, offset)
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Whether `other` lies within this span.
    pub fn contains(self, other: Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Identifies a loaded source file (an index into the source map).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A span in a known file: where something was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: FileId,
    pub span: Span,
}
