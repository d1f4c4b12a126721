//! `enigma fmt [--check] FILE...`: rewrite files in the canonical layout.
//!
//! A file that does not parse is reported and left untouched. Files are
//! replaced atomically (write a temporary file beside it, then rename), so
//! an interrupted run never leaves a half-written source file.

use std::path::{Path, PathBuf};

use super::output::{plural, Output};
use super::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::source::{SourceFile, SourceMap};
use crate::{fmt, syntax};

pub fn run(out: &Output, files: &[PathBuf], check: bool) -> i32 {
    let mut status = EXIT_OK;
    let mut changed = 0;
    for path in files {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                out.fatal(&format!("cannot read {}: {e}", path.display()));
                status = EXIT_USAGE;
                continue;
            }
        };
        let mut sources = SourceMap::new();
        let file = sources.add(SourceFile::new(
            path.display().to_string(),
            Some(path.clone()),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
        let formatted = syntax::decode(&bytes, file)
            .map_err(|d| vec![d])
            .and_then(|text| fmt::format(text, file).map(|f| (text, f)));
        let (text, formatted) = match formatted {
            Ok(pair) => pair,
            Err(diags) => {
                out.diagnostics(&diags, &sources);
                status = status.max(EXIT_DIAGNOSTICS);
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        changed += 1;
        if check {
            let line = first_difference(text, &formatted);
            out.summary(&format!(
                "{}: not formatted (first difference at line {line})",
                path.display()
            ));
            status = status.max(EXIT_DIAGNOSTICS);
        } else if let Err(e) = write_atomically(path, &formatted) {
            out.fatal(&format!("cannot write {}: {e}", path.display()));
            status = EXIT_USAGE;
        }
    }
    let total = plural(files.len(), "file");
    if check {
        if changed == 0 {
            out.summary(&format!("{total} already formatted"));
        } else {
            out.summary(&format!("{} of {total} would be reformatted", changed));
        }
    } else {
        out.summary(&format!("formatted {total}: {} changed", changed));
    }
    status
}

fn first_difference(a: &str, b: &str) -> usize {
    a.lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.lines().count().min(b.lines().count()))
        + 1
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    // Write through a symbolic link to the file it names: renaming over the
    // link itself would replace the link with a copy.
    let resolved = std::fs::canonicalize(path)?;
    let path = resolved.as_path();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let tmp = match dir {
        Some(d) => d.join(format!(".{name}.fmt-tmp")),
        None => PathBuf::from(format!(".{name}.fmt-tmp")),
    };
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        // Keep the original file's permissions.
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
