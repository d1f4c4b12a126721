//! Finding ordinary comments in source text.
//!
//! The grammar skips `//` and `/* */` comments, so the AST does not hold
//! them; the formatter recovers them here, with their spans, and weaves them
//! back between the nodes it prints. Doc comments (`///`, `//!`) are part of
//! the AST and are not collected.

use crate::base::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub span: Span,
    pub text: String,
    /// Whether only whitespace precedes the comment on its line.
    pub own_line: bool,
}

impl Comment {
    pub fn is_block(&self) -> bool {
        self.text.starts_with("/*")
    }
}

/// Every ordinary comment in `text`, in order. `text` has passed the
/// parser, so strings and block comments are terminated.
pub fn collect(text: &str) -> Vec<Comment> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let start = i;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                let body = &text[start..i];
                // `///` (not `////`) and `//!` are doc comments in the AST.
                let is_doc = (body.starts_with("///") && !body.starts_with("////"))
                    || body.starts_with("//!");
                if !is_doc {
                    out.push(make(text, start, i));
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start = i;
                i = crate::syntax::trivia::block_comment_end(bytes, i).unwrap_or(bytes.len());
                out.push(make(text, start, i));
            }
            _ => i += 1,
        }
    }
    out
}

fn make(text: &str, start: usize, end: usize) -> Comment {
    let line_start = text[..start].rfind('\n').map(|p| p + 1).unwrap_or(0);
    let own_line = text[line_start..start].trim().is_empty();
    Comment {
        span: Span::new(start, end),
        text: text[start..end].trim_end().to_string(),
        own_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_line_and_nested_block_comments_but_not_docs_or_strings() {
        let src = "/// doc\n// a\nlet x = \"// no\" /* b /* c */ d */ // e\n//// f\n";
        let texts: Vec<String> = collect(src).into_iter().map(|c| c.text).collect();
        assert_eq!(texts, ["// a", "/* b /* c */ d */", "// e", "//// f"]);
    }

    #[test]
    fn own_line_is_detected() {
        let cs = collect("let a = 1 // t\n  // o\n");
        assert!(!cs[0].own_line);
        assert!(cs[1].own_line);
    }
}
