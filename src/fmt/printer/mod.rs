//! The layout engine: prints items, statements and settings line by line,
//! and puts every comment of the source back.
//!
//! Comments are placed at line-level boundaries. Before a line-level
//! element (an item, statement, setting, doc line, or an element of a list
//! broken over lines) every comment that starts before it is printed on its
//! own line; after the element, a comment that followed it on the same
//! source line is appended to its line, and any comment that was inside an
//! element printed on one line is printed on the lines after it. Comments
//! therefore never disappear, and the output places them where a second run
//! leaves them, which makes formatting idempotent.

mod layout;

use super::comments::{collect, Comment};
use super::WIDTH;
use crate::base::Span;
use crate::syntax::ast::*;

pub fn print(file: &File, src: &str) -> String {
    let mut p = Printer {
        src,
        comments: collect(src),
        next: 0,
        out: String::new(),
        indent: 0,
        last_end: 0,
        fresh: true,
    };
    for d in &file.docs {
        p.begin_line(d.span.start as usize);
        p.write(&format!("//!{}", d.text.trim_end()));
        p.end_line(d.span.end as usize);
    }
    for item in &file.items {
        p.item(item);
    }
    p.flush_comments(src.len());
    let mut out = p.out;
    while out.ends_with("\n\n") {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

struct Printer<'a> {
    src: &'a str,
    comments: Vec<Comment>,
    /// The first comment not yet printed.
    next: usize,
    out: String,
    indent: usize,
    /// The source offset just past the last element or comment printed,
    /// used to carry blank lines over.
    last_end: usize,
    /// True right after an opening brace, where no blank line is kept.
    fresh: bool,
}

impl Printer<'_> {
    fn write(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn col(&self) -> usize {
        let line = match self.out.rfind('\n') {
            Some(i) => &self.out[i + 1..],
            None => &self.out[..],
        };
        line.chars().count()
    }

    fn newline(&mut self) {
        while self.out.ends_with(' ') {
            self.out.pop();
        }
        self.out.push('\n');
    }

    fn write_indent(&mut self) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
    }

    /// Whether the source between the last printed thing and `pos` holds a
    /// blank line.
    fn gap_before(&self, pos: usize) -> bool {
        let from = self.last_end.min(pos);
        let between = self.src.get(from..pos).unwrap_or("");
        let mut newlines = 0;
        for c in between.chars() {
            match c {
                '\n' => {
                    newlines += 1;
                    if newlines >= 2 {
                        return true;
                    }
                }
                c if c.is_whitespace() => {}
                // Punctuation such as `;` or `,` between elements does not
                // end the run of blank lines.
                _ => {}
            }
        }
        false
    }

    fn blank_line_if_gap(&mut self, pos: usize) {
        if !self.fresh
            && !self.out.is_empty()
            && self.gap_before(pos)
            && !self.out.ends_with("\n\n")
        {
            self.out.push('\n');
        }
    }

    /// Prints comments that start before `pos`, each on its own line.
    fn flush_comments(&mut self, pos: usize) {
        while let Some(c) = self.comments.get(self.next) {
            if c.span.start as usize >= pos {
                break;
            }
            let c = c.clone();
            self.next += 1;
            self.blank_line_if_gap(c.span.start as usize);
            self.write_indent();
            self.write(&c.text);
            self.newline();
            self.last_end = c.span.end as usize;
            self.fresh = false;
        }
    }

    /// Starts a line-level element found at source offset `pos`.
    fn begin_line(&mut self, pos: usize) {
        self.flush_comments(pos);
        self.blank_line_if_gap(pos);
        self.write_indent();
        self.fresh = false;
    }

    /// Ends a line-level element that ended at source offset `end`.
    fn end_line(&mut self, end: usize) {
        self.end_line_before(end, usize::MAX);
    }

    /// Like `end_line`, but a trailing comment is taken only if it starts
    /// before `limit`: when the next element follows on the same source line,
    /// comments inside it belong to it, not to this line.
    fn end_line_before(&mut self, end: usize, limit: usize) {
        // A comment on the same source line right after the element stays
        // at the end of its line. Comments inside the element (printed on
        // one line) are gathered first and follow on their own lines.
        let mut inside = Vec::new();
        while let Some(c) = self.comments.get(self.next) {
            if (c.span.start as usize) < end {
                inside.push(c.clone());
                self.next += 1;
            } else {
                break;
            }
        }
        let mut last = end;
        if let Some(c) = self.comments.get(self.next) {
            let between = self.src.get(end..c.span.start as usize).unwrap_or("\n");
            if !between.contains('\n') && (c.span.start as usize) < limit {
                let c = c.clone();
                self.next += 1;
                self.write(" ");
                self.write(&c.text);
                last = c.span.end as usize;
            }
        }
        self.newline();
        for c in inside {
            self.write_indent();
            self.write(&c.text);
            self.newline();
        }
        self.last_end = last;
    }

    /// Whether any unprinted comment starts inside `span`.
    fn comments_within(&self, span: Span) -> bool {
        self.comments[self.next..]
            .iter()
            .take_while(|c| c.span.start < span.end)
            .any(|c| c.span.start >= span.start)
    }

    fn fits(&self, text: &str) -> bool {
        !text.contains('\n') && self.col() + text.chars().count() <= WIDTH
    }

    fn open_block(&mut self) {
        self.write(" {");
        self.newline();
        self.indent += 1;
        self.fresh = true;
    }

    /// Closes a block whose `}` is at source offset `close`.
    fn close_block(&mut self, close: usize) {
        self.flush_comments(close);
        self.indent -= 1;
        self.write_indent();
        self.write("}");
        self.fresh = false;
    }

    fn docs(&mut self, docs: &[Doc]) {
        for d in docs {
            self.begin_line(d.span.start as usize);
            self.write(&format!("///{}", d.text.trim_end()));
            self.end_line(d.span.end as usize);
        }
    }
}
