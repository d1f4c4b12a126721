//! "Did you mean ...?" suggestions for misspelt names.

/// The candidate closest to `name` by edit distance, if it is close enough
/// to be a plausible typo: at most one edit for short names, about a third
/// of the length for longer ones.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == name || c.is_empty() {
            continue;
        }
        let d = distance(name, c);
        let better = match best {
            None => true,
            // Ties go to the alphabetically first name, so output is stable.
            Some((bd, bc)) => d < bd || (d == bd && c < bc),
        };
        if d <= limit && better {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over characters, case-insensitive substitutions
/// counted as half-free (a case change alone costs one edit).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = if ca == cb { 0 } else { 1 };
            cur[j + 1] = (prev[j] + sub).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("Linear", "Linear"), 0);
        assert_eq!(distance("Linera", "Linear"), 2);
    }

    #[test]
    fn closest_finds_typos_but_not_strangers() {
        let names = ["Linear", "LayerNorm", "Transformer"];
        assert_eq!(closest("Lineer", names), Some("Linear"));
        assert_eq!(closest("Transfromer", names), Some("Transformer"));
        assert_eq!(closest("Conv", names), None);
    }
}
