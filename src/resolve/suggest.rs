//! "Did you mean ...?" suggestions for misspelt names.

/// The candidate closest to `name` by edit distance, if it is close enough
/// to be a plausible typo: at most one edit for short names, about a third
/// of the length for longer ones.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    let limit = (len / 3).max(1);
    let mut best: Option<(usize, usize, &str)> = None;
    for c in candidates {
        if c == name || c.is_empty() {
            continue;
        }
        // One- and two-letter names are too short for an edit to mean a
        // typo (`y` is one edit from every other letter); only a case slip
        // is suggested for them.
        if len <= 2 && !c.eq_ignore_ascii_case(name) {
            continue;
        }
        let d = distance(name, c);
        if d > limit {
            continue;
        }
        // Among equally close names, prefer the one sharing the longest
        // prefix (`vall` -> `val`, not `all`), then the alphabetically first.
        let prefix = name
            .chars()
            .zip(c.chars())
            .take_while(|(a, b)| a == b)
            .count();
        let better = match best {
            None => true,
            Some((bd, bp, bc)) => {
                (d, std::cmp::Reverse(prefix), c) < (bd, std::cmp::Reverse(bp), bc)
            }
        };
        if better {
            best = Some((d, prefix, c));
        }
    }
    best.map(|(_, _, c)| c)
}

/// Edit distance over characters (optimal string alignment): insertions,
/// deletions, substitutions and swaps of adjacent characters each count one,
/// so `stpes` is one edit from `steps`.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let sub = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * w + j - 1] + sub)
                .min(d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = best;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("Linear", "Linear"), 0);
        assert_eq!(distance("Linera", "Linear"), 1);
        assert_eq!(distance("stpes", "steps"), 1);
    }

    #[test]
    fn closest_finds_typos_but_not_strangers() {
        let names = ["Linear", "LayerNorm", "Transformer"];
        assert_eq!(closest("Lineer", names), Some("Linear"));
        assert_eq!(closest("Transfromer", names), Some("Transformer"));
        assert_eq!(closest("Conv", names), None);
    }

    #[test]
    fn short_names_get_case_suggestions_only() {
        assert_eq!(closest("y", ["n", "T", "d"]), None);
        assert_eq!(closest("t", ["n", "T", "d"]), Some("T"));
    }

    #[test]
    fn ties_prefer_a_shared_prefix() {
        assert_eq!(closest("vall", ["all", "val"]), Some("val"));
    }
}
