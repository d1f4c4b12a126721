//! Scanning trivia (comments) in raw source, shared by the pre-scan, the
//! parser's span trimming and the formatter's comment recovery.

/// The offset just past the `*/` that closes the block comment opening at
/// `start` (where `bytes[start..]` begins with `/*`), honouring nesting; or
/// `None` when the file ends first.
pub fn block_comment_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut level = 0usize;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            level += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            level = level.saturating_sub(1);
            i += 2;
            if level == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_comments_close_at_the_matching_end() {
        let s = b"/* a /* b */ c */ d";
        assert_eq!(block_comment_end(s, 0), Some(17));
        assert_eq!(block_comment_end(b"/* open /* inner */", 0), None);
    }
}
