//! Where the real recordings are: `examples/data/` in this repository,
//! where they are shipped (see its README for their origin), unless
//! `$ENIGMA_REAL_DATA` names another directory holding the same files.
//!
//! The recordings are part of the repository, so a test never skips for
//! want of them: a missing file is a broken checkout and fails the test
//! that needs it, with the path it looked at. `tests/shipped_data.rs`
//! checks that the shipped copies are intact.

use std::path::{Path, PathBuf};

/// The directory of the real recordings.
///
/// # Panics
///
/// When the directory does not hold `F.npy`, so that a broken checkout or
/// a wrong `$ENIGMA_REAL_DATA` fails loudly instead of passing silently.
pub fn real_data() -> PathBuf {
    let dir = match std::env::var_os("ENIGMA_REAL_DATA") {
        Some(d) => PathBuf::from(d),
        // The repository's root: this package's directory, or the one above
        // a workspace member (`crates/enigma-torch`) that includes this file.
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|p| p.join("examples/data"))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data")),
    };
    assert!(
        dir.join("F.npy").is_file(),
        "the real recordings are not in {} (they are shipped in examples/data/; \
         ENIGMA_REAL_DATA overrides the directory)",
        dir.display()
    );
    dir
}

/// A copy of `examples/<name>.enigma` in a fresh directory under the
/// system's temporary directory (named after `tmp`), whose data paths point
/// at the real recordings, with the recordings' directory. The callers
/// delete the copy's directory when they are done, which is why the
/// example is never used in place.
///
/// # Panics
///
/// When the example cannot be read or copied, or names no file of
/// `data/` (the rewrite below would then silently test nothing).
#[allow(dead_code)]
pub fn real_example(name: &str, tmp: &str) -> (PathBuf, PathBuf) {
    let dir = real_data();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.enigma"));
    let text = std::fs::read_to_string(&src)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
    // The example names its files relative to itself (`"data/F.npy"`); the
    // copy lives elsewhere, so its paths become absolute.
    assert!(
        text.contains("(\"data/"),
        "{} no longer reads `data/...`: update tests/common/real.rs",
        src.display()
    );
    let text = text.replace("(\"data/", &format!("(\"{}/", dir.display()));
    let out = std::env::temp_dir().join(format!("enigma-{tmp}-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let path = out.join(format!("{name}.enigma"));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, dir)
}
