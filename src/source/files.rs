//! Many files as one source: the sessions a file source names.
//!
//! A foundation model learns from many recordings, so a data item may name
//! many files, one session each. What the user writes is a list of
//! *patterns*; each pattern is
//!
//! - a file, which is one session;
//! - a glob (`sessions/*/F.npy`, `sub-*/*.nwb`, `**/*.nwb`), whose matches
//!   are sessions in path order: `*` and `?` match within one path
//!   component, `**` any number of directories;
//! - a directory, which holds sessions in a known layout: every file with
//!   the source's extension below it, in path order (the DANDI layout
//!   `sub-*/sub-*_ses-*.nwb` is one instance), or for suite2p every plane
//!   folder (a folder holding `F.npy`) below it, skipping suite2p's
//!   `combined` folder, which repeats the planes' cells.
//!
//! The sessions of a pattern list are the sessions of each pattern in list
//! order; a path matched twice is one session. A pattern that matches
//! nothing is an error naming it, so a typo never silently drops data.
//!
//! Every directory is listed through [`SourceLoader::list_dir`], so the
//! checker and the run-time loader see the same sessions through the one
//! I/O door and tests can use an in-memory tree.

use std::path::{Component, Path, PathBuf};

use super::SourceLoader;

/// What a directory pattern holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Data files with this extension (`npy`, `nwb`), each one session.
    Files(&'static str),
    /// suite2p output: plane folders (`F.npy`, `spks.npy`, `iscell.npy`,
    /// `ops.npy`), each one session.
    Suite2p,
}

/// Why a pattern names no session.
#[derive(Clone, Debug, PartialEq)]
pub struct FilesError {
    pub pattern: PathBuf,
    pub message: String,
}

impl std::fmt::Display for FilesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` {}", self.pattern.display(), self.message)
    }
}

/// Whether a path component holds glob characters.
fn is_glob(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

/// Whether any component of `p` is a glob.
pub fn has_glob(p: &Path) -> bool {
    p.components().any(|c| match c {
        Component::Normal(s) => s.to_str().is_some_and(is_glob),
        _ => false,
    })
}

/// The sessions `patterns` name, in order, each once.
pub fn expand(
    patterns: &[PathBuf],
    layout: Layout,
    loader: &dyn SourceLoader,
) -> Result<Vec<PathBuf>, FilesError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in patterns {
        let found = expand_one(p, layout, loader)?;
        if found.is_empty() {
            let what = match layout {
                Layout::Files(ext) if has_glob(p) => format!("matches no `.{ext}` file"),
                Layout::Files(_) if loader.list_dir(p).is_err() => {
                    "does not exist: there is no such file or folder".to_string()
                }
                Layout::Files(ext) => format!("is a folder with no `.{ext}` file below it"),
                Layout::Suite2p => {
                    "holds no suite2p plane folder (a folder with `F.npy`)".to_string()
                }
            };
            return Err(FilesError {
                pattern: p.clone(),
                message: what,
            });
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

fn expand_one(
    p: &Path,
    layout: Layout,
    loader: &dyn SourceLoader,
) -> Result<Vec<PathBuf>, FilesError> {
    if has_glob(p) {
        let mut found = Vec::new();
        let (root, rest) = split_root(p);
        walk_glob(&root, &rest, loader, &mut found);
        found.sort();
        // A glob of suite2p roots names plane folders or roots holding them.
        if layout == Layout::Suite2p {
            let mut planes = Vec::new();
            for f in found {
                planes.extend(suite2p_planes(&f, loader));
            }
            return Ok(planes);
        }
        return Ok(found.into_iter().filter(|f| loader.is_file(f)).collect());
    }
    match layout {
        Layout::Suite2p => Ok(suite2p_planes(p, loader)),
        Layout::Files(_) if loader.is_file(p) => Ok(vec![p.to_path_buf()]),
        Layout::Files(ext) => {
            let mut found = Vec::new();
            files_below(p, ext, loader, &mut found, 0);
            found.sort();
            Ok(found)
        }
    }
}

/// The pattern's leading components without globs, and the rest.
fn split_root(p: &Path) -> (PathBuf, Vec<String>) {
    let mut root = PathBuf::new();
    let mut rest = Vec::new();
    for c in p.components() {
        let text = c.as_os_str().to_string_lossy().to_string();
        if rest.is_empty() && !is_glob(&text) {
            root.push(c);
        } else {
            rest.push(text);
        }
    }
    (root, rest)
}

/// How deep a directory walk goes: deeper trees are not data layouts, and
/// the bound keeps a symbolic-link loop finite.
const MAX_DEPTH: usize = 16;

fn walk_glob(dir: &Path, rest: &[String], loader: &dyn SourceLoader, out: &mut Vec<PathBuf>) {
    let Some((first, tail)) = rest.split_first() else {
        out.push(dir.to_path_buf());
        return;
    };
    if first == "**" {
        // Zero directories, then one more level of any directory.
        walk_glob(dir, tail, loader, out);
        let mut stack = vec![(dir.to_path_buf(), 0usize)];
        while let Some((d, depth)) = stack.pop() {
            if depth >= MAX_DEPTH {
                continue;
            }
            for (name, is_dir) in loader.list_dir(&d).unwrap_or_default() {
                if is_dir && !name.starts_with('.') {
                    let sub = d.join(&name);
                    walk_glob(&sub, tail, loader, out);
                    stack.push((sub, depth + 1));
                }
            }
        }
        out.sort();
        out.dedup();
        return;
    }
    if !is_glob(first) {
        walk_glob(&dir.join(first), tail, loader, out);
        return;
    }
    for (name, is_dir) in loader.list_dir(dir).unwrap_or_default() {
        if !matches(first, &name) || (!tail.is_empty() && !is_dir) {
            continue;
        }
        walk_glob(&dir.join(&name), tail, loader, out);
    }
}

/// Every file with extension `ext` below `dir`.
fn files_below(
    dir: &Path,
    ext: &str,
    loader: &dyn SourceLoader,
    out: &mut Vec<PathBuf>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    for (name, is_dir) in loader.list_dir(dir).unwrap_or_default() {
        if name.starts_with('.') {
            continue;
        }
        let path = dir.join(&name);
        if is_dir {
            files_below(&path, ext, loader, out, depth + 1);
        } else if Path::new(&name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case(ext))
        {
            out.push(path);
        }
    }
}

/// The plane folders at or below `dir`, in path order.
fn suite2p_planes(dir: &Path, loader: &dyn SourceLoader) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        if loader.is_file(&d.join("F.npy")) {
            out.push(d);
            continue;
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        for (name, is_dir) in loader.list_dir(&d).unwrap_or_default() {
            if is_dir && !name.starts_with('.') && name != "combined" {
                stack.push((d.join(name), depth + 1));
            }
        }
    }
    out.sort();
    out
}

/// Whether `name` matches the one-component glob `pattern`: `*` any run of
/// characters, `?` one, `[abc]` and `[a-z]` one of a set (`[!a]` not).
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Hidden files match only a pattern that starts with a dot, as in a
    // shell.
    if n.first() == Some(&'.') && p.first() != Some(&'.') {
        return false;
    }
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some(('*', rest)) => (0..=n.len()).any(|k| match_from(rest, &n[k..])),
        Some(('?', rest)) => !n.is_empty() && match_from(rest, &n[1..]),
        Some(('[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&c| c == ']').map(|i| i + 1) else {
                // An unclosed `[` is a literal.
                return n.first() == Some(&'[') && match_from(rest, &n[1..]);
            };
            let Some((&c, tail)) = n.split_first() else {
                return false;
            };
            let (negate, set) = match rest[..close].split_first() {
                Some(('!', set)) => (true, set),
                _ => (false, &rest[..close]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && match_from(&rest[close + 1..], tail)
        }
        Some((&c, rest)) => n.first() == Some(&c) && match_from(rest, &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemoryLoader;

    fn tree(files: &[&str]) -> MemoryLoader {
        let mut m = MemoryLoader::new();
        for f in files {
            m.insert(*f, Vec::new());
        }
        m
    }

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn globs_match_within_a_component() {
        assert!(matches("*.nwb", "sub-1_ses-2.nwb"));
        assert!(!matches("*.nwb", "a.npy"));
        assert!(matches("sub-?", "sub-7"));
        assert!(!matches("sub-?", "sub-17"));
        assert!(matches("plane[0-2]", "plane1"));
        assert!(!matches("plane[!0]", "plane0"));
        assert!(!matches("*", ".hidden"));
    }

    #[test]
    fn a_dandi_folder_is_its_nwb_files_in_path_order() {
        let m = tree(&[
            "/d/sub-2/sub-2_ses-1.nwb",
            "/d/sub-1/sub-1_ses-2.nwb",
            "/d/sub-1/sub-1_ses-1.nwb",
            "/d/dataset_description.json",
        ]);
        let got = expand(&paths(&["/d"]), Layout::Files("nwb"), &m).unwrap();
        assert_eq!(
            got,
            paths(&[
                "/d/sub-1/sub-1_ses-1.nwb",
                "/d/sub-1/sub-1_ses-2.nwb",
                "/d/sub-2/sub-2_ses-1.nwb"
            ])
        );
        let glob = expand(&paths(&["/d/sub-*/*_ses-1.nwb"]), Layout::Files("nwb"), &m).unwrap();
        assert_eq!(
            glob,
            paths(&["/d/sub-1/sub-1_ses-1.nwb", "/d/sub-2/sub-2_ses-1.nwb"])
        );
        let deep = expand(&paths(&["/d/**/*.nwb"]), Layout::Files("nwb"), &m).unwrap();
        assert_eq!(deep.len(), 3);
    }

    #[test]
    fn a_list_keeps_its_order_and_names_each_file_once() {
        let m = tree(&["/a.npy", "/b.npy"]);
        let got = expand(
            &paths(&["/b.npy", "/a.npy", "/b.npy"]),
            Layout::Files("npy"),
            &m,
        );
        assert_eq!(got.unwrap(), paths(&["/b.npy", "/a.npy"]));
    }

    #[test]
    fn a_pattern_that_matches_nothing_is_named() {
        let m = tree(&["/a.npy"]);
        let e = expand(&paths(&["/a.npy", "/x*/F.npy"]), Layout::Files("npy"), &m).unwrap_err();
        assert_eq!(e.pattern, PathBuf::from("/x*/F.npy"));
        assert!(e.message.contains("matches no `.npy` file"), "{e}");
    }

    #[test]
    fn suite2p_roots_are_their_plane_folders_without_combined() {
        let m = tree(&[
            "/s/suite2p/plane0/F.npy",
            "/s/suite2p/plane0/iscell.npy",
            "/s/suite2p/plane1/F.npy",
            "/s/suite2p/combined/F.npy",
            "/t/F.npy",
        ]);
        let got = expand(&paths(&["/s", "/t"]), Layout::Suite2p, &m).unwrap();
        assert_eq!(
            got,
            paths(&["/s/suite2p/plane0", "/s/suite2p/plane1", "/t"])
        );
        let e = expand(&paths(&["/u"]), Layout::Suite2p, &m).unwrap_err();
        assert!(e.message.contains("plane folder"), "{e}");
    }
}
