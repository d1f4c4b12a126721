//! A read-only copy of the embedded standard library on disk, so that
//! editors can open its files (go to definition into `std::nn`).
//!
//! The directory's name carries a hash of the library's text, so a newer
//! `enigma` writes a fresh copy beside an older one rather than changing
//! files an editor may have open; files are written once and made
//! read-only.

use std::path::{Path, PathBuf};

use crate::base::fnv::Fnv1a;
use crate::resolve::stdlib::EMBEDDED;

/// Writes the library (when missing) and returns its directory, or `None`
/// when no cache directory is writable (the server then reads the
/// embedded copy and go to definition cannot open library files).
pub fn materialize() -> Option<PathBuf> {
    let mut h = Fnv1a::new();
    for (name, text) in EMBEDDED {
        h.str(name);
        h.str(text);
    }
    let base = cache_dir()?;
    let dir = base.join(format!("stdlib-{:016x}", h.finish()));
    std::fs::create_dir_all(&dir).ok()?;
    for (name, text) in EMBEDDED {
        let path = dir.join(format!("{name}.enigma"));
        if std::fs::read_to_string(&path).ok().as_deref() == Some(*text) {
            continue;
        }
        write_read_only(&path, text).ok()?;
    }
    Some(dir)
}

fn write_read_only(path: &Path, text: &str) -> std::io::Result<()> {
    // Write beside it and rename, so a reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    let mut perms = std::fs::metadata(&tmp)?.permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&tmp, perms)?;
    std::fs::rename(&tmp, path)
}

/// `$XDG_CACHE_HOME/enigma`, `$HOME/.cache/enigma`, or the temporary
/// directory.
fn cache_dir() -> Option<PathBuf> {
    let from_env = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = from_env("XDG_CACHE_HOME")
        .or_else(|| from_env("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    Some(base.join("enigma"))
}
