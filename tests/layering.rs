//! Imports point down the pipeline (docs/ARCHITECTURE.md, "Imports point
//! down the pipeline"): the rule's three greps, run over the sources so
//! that a module reaching up (the runtime compiling a file, the planner
//! reading the syntax tree) fails the suite instead of waiting for a
//! reviewer to run them by hand.

use std::path::{Path, PathBuf};

/// (the modules, the paths none of their files may name).
const RULES: &[(&[&str], &[&str])] = &[
    (
        &["plan", "run", "dataset"],
        &["crate::syntax", "crate::resolve"],
    ),
    (&["ir", "plan", "run", "dataset"], &["crate::check"]),
    (
        &[
            "base",
            "source",
            "diagnostics",
            "syntax",
            "resolve",
            "ir",
            "check",
            "plan",
            "dataset",
            "run",
            "fmt",
        ],
        &["crate::driver", "crate::cli", "crate::ide", "crate::lsp"],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_from_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut scanned = 0;
    for (modules, forbidden) in RULES {
        for module in *modules {
            let mut files = Vec::new();
            let dir = src.join(module);
            if dir.is_dir() {
                rust_files(&dir, &mut files);
            }
            let single = src.join(format!("{module}.rs"));
            if single.is_file() {
                files.push(single);
            }
            assert!(!files.is_empty(), "no sources for `{module}`");
            for file in files {
                scanned += 1;
                let text = std::fs::read_to_string(&file).unwrap();
                for (n, line) in text.lines().enumerate() {
                    // Comments may name what a module must not import.
                    let code = line.split("//").next().unwrap_or("");
                    for path in *forbidden {
                        if code.contains(path) {
                            found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                        }
                    }
                }
            }
        }
    }
    assert!(scanned > 50, "only {scanned} files scanned");
    assert!(
        found.is_empty(),
        "imports pointing up the pipeline:\n{}",
        found.join("\n")
    );
}
