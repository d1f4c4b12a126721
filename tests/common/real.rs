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
