//! Where the real recordings are: `$ENIGMA_REAL_DATA`, else
//! `../shared/data/real/` beside the repository. `dev.sh` sets the variable
//! for a clone made elsewhere (it looks beside the repository the clone
//! came from). A test that needs the files and cannot find them says so on
//! stderr and returns; `dev.sh` prints whether they were found, so a run
//! without them is never silent.

use std::path::{Path, PathBuf};

/// The directory of the real recordings, if this machine has them.
pub fn real_data() -> Option<PathBuf> {
    let dir = match std::env::var_os("ENIGMA_REAL_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real"),
    };
    if dir.join("README.md").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: the real recordings are not at {} (set ENIGMA_REAL_DATA)",
            dir.display()
        );
        None
    }
}

/// A copy of `examples/<name>.enigma` in a fresh directory under `tmp`
/// whose data paths point at the real recordings of this machine (the
/// example names them relative to the repository), with that directory;
/// `None`, said on stderr, when the recordings are not here.
#[allow(dead_code)]
pub fn real_example(name: &str, tmp: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = real_data()?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.enigma"));
    let text = std::fs::read_to_string(&src).ok()?;
    let text = text.replace("../../shared/data/real/", &format!("{}/", dir.display()));
    let out = std::env::temp_dir().join(format!("enigma-{tmp}-{}", std::process::id()));
    std::fs::create_dir_all(&out).ok()?;
    let path = out.join(format!("{name}.enigma"));
    std::fs::write(&path, text).ok()?;
    Some((path, dir))
}
