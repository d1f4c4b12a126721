//! `enigma init [--template NAME] [--data PATH] [--force] DIR`: writes a
//! commented experiment that checks and trains as written, so a new user
//! starts from something that works and changes it a step at a time.
//!
//! There are three templates, embedded in the binary (`templates/`):
//! `video` (simulated mouse V1: video, behaviour and calcium responses),
//! `calcium` (suite2p output) and `spikes` (sorted units in NWB files).
//! `video` is the default because it is the only one that needs no data
//! files: `enigma init DIR && enigma run DIR/DIR.enigma` trains with
//! nothing else to fetch.
//!
//! The file is `DIR/<name>.enigma`, named after the folder as `cargo new`
//! names a package, so that `enigma run` (whose run directory is
//! `runs/<file stem>`) keeps the runs of different experiments apart.
//!
//! # Data
//!
//! The templates that read files name a folder, `data`, beside the
//! experiment (paths are relative to the `.enigma` file, as in the
//! repository's examples), so the experiment folder is self-contained.
//! Nothing is ever copied: recordings are large, and a second copy goes
//! stale when the first is re-processed. So:
//!
//! - without `--data`, the experiment names `data` and `init` says which
//!   files to put there (and where the sample recordings that ship with
//!   enigma are, when this binary was built from a checkout that still
//!   exists);
//! - `--data PATH` names existing files where they are: the path is
//!   written relative to DIR when it lies inside DIR, else absolute, so
//!   the experiment runs from any working directory.
//!
//! No sample data is embedded in the binary: the sample recordings are a
//! few megabytes, which every installation would carry for one first run.
//!
//! # Checked before it is written
//!
//! The text is checked in memory against the data before anything is
//! written (the root file is served from memory, every other file from the
//! disk), so `init` never leaves a file that does not check: a template
//! with errors, or `--data` files that do not fit the template (a wrong
//! shape, the wrong kind of file), are reported as `enigma check` reports
//! them, with exit status 1, and nothing is written. Data that is not there
//! yet (warning W0201) is expected without `--data` and is replaced by the
//! instructions; with `--data` it is printed, since the path then names
//! something unreadable.
//!
//! An existing experiment file is never overwritten without `--force`;
//! other files in DIR (a `data` folder, notes) are left alone either way.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::output::{count, plural, Output};
use super::{UsageError, EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::diagnostics::{Code, Diagnostic, Severity};
use crate::driver::{compile, Options};
use crate::source::probe::{DataFormat, DataHeader, ProbeError};
use crate::source::{FsLoader, SourceLoader};

/// The experiments `enigma init` can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Simulated mouse V1 (video, behaviour, calcium responses); reads no
    /// files, so it runs as written. The default.
    Video,
    /// Two-photon calcium imaging from suite2p output (`F.npy`, `spks.npy`,
    /// `iscell.npy`).
    Calcium,
    /// Spike counts of sorted units from NWB files.
    Spikes,
}

/// A template that reads files: where its text names them, and what the
/// folder must hold, for the instructions.
struct DataSlot {
    /// The path argument as the template writes it, quotes included; it
    /// occurs exactly once in the template (a unit test checks).
    literal: &'static str,
    /// Whether `--data` may name a single file rather than a folder.
    file_allowed: bool,
    /// What the folder must hold, in a sentence.
    needs: &'static str,
    /// The files of the sample recording (`examples/data/`) this template
    /// reads.
    sample: &'static [&'static str],
}

impl Template {
    fn name(self) -> &'static str {
        match self {
            Template::Video => "video",
            Template::Calcium => "calcium",
            Template::Spikes => "spikes",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Template::Video => include_str!("templates/video.enigma"),
            Template::Calcium => include_str!("templates/calcium.enigma"),
            Template::Spikes => include_str!("templates/spikes.enigma"),
        }
    }

    fn data(self) -> Option<DataSlot> {
        match self {
            Template::Video => None,
            Template::Calcium => Some(DataSlot {
                literal: "suite2p(\"data\"",
                file_allowed: false,
                needs: "suite2p's `F.npy`, `spks.npy` and `iscell.npy` (one plane \
                        folder, or a folder of plane folders)",
                sample: &["F.npy", "spks.npy", "iscell.npy"],
            }),
            Template::Spikes => Some(DataSlot {
                literal: "nwb(\"data\"",
                file_allowed: true,
                needs: "NWB files with sorted units (`units/spike_times`) and an \
                        epochs table, one session per file",
                sample: &["A8604-211122.nwb"],
            }),
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub struct Request {
    pub dir: PathBuf,
    pub template: Template,
    pub data: Option<PathBuf>,
    pub force: bool,
}

pub fn run(out: &Output, request: Request) -> i32 {
    match init(out, &request) {
        Ok(status) => status,
        Err(UsageError(message)) => {
            out.fatal(&message);
            EXIT_USAGE
        }
    }
}

fn init(out: &Output, request: &Request) -> Result<i32, UsageError> {
    let dir = &request.dir;
    if dir.exists() && !dir.is_dir() {
        return Err(UsageError(format!(
            "{} exists and is not a folder; `enigma init` writes into a folder",
            dir.display()
        )));
    }
    let name = experiment_name(dir)?;
    let file = dir.join(format!("{name}.enigma"));
    // Checked first so that a refusal costs nothing and says only this.
    if file.exists() && !request.force {
        return Err(UsageError(format!(
            "{} already exists; pass --force to overwrite it (nothing was written)",
            file.display()
        )));
    }

    let template = request.template;
    let slot = template.data();
    let text = match (&slot, &request.data) {
        (None, Some(_)) => {
            return Err(UsageError(format!(
                "the `{}` template reads no files, so it takes no --data; \
                 `--template calcium` and `--template spikes` read recordings",
                template.name()
            )))
        }
        (_, None) => template.text().to_string(),
        (Some(slot), Some(data)) => {
            let path = data_path(dir, data, slot)?;
            let with = slot.literal.replacen("\"data\"", &quote(&path)?, 1);
            template.text().replacen(slot.literal, &with, 1)
        }
    };

    // Check the text where it will live, before writing it.
    let pending = PendingLoader {
        root: FsLoader.canonical(&file),
        text: text.clone(),
    };
    let a = compile(&pending, &file, &Options::check()).map_err(|e| UsageError(e.to_string()))?;
    let data_missing = a
        .diagnostics
        .iter()
        .any(|d| d.code == Code::W0201 && d.severity == Severity::Warning);
    // Without --data, unread data is the expected state of a new folder and
    // the instructions below replace the warnings.
    let shown: Vec<Diagnostic> = a
        .diagnostics
        .iter()
        .filter(|d| request.data.is_some() || slot.is_none() || d.code != Code::W0201)
        .cloned()
        .collect();
    out.diagnostics(&shown, &a.program.sources);
    let (errors, warnings) = count(&shown);
    if errors > 0 {
        // The templates check as shipped (tests/init.rs), so errors come
        // from the files --data names, or from data already in DIR/data.
        let source = match &request.data {
            Some(data) => format!("with the files at {}", data.display()),
            None => format!("with the files in {}", dir.join("data").display()),
        };
        out.summary(&format!(
            "the `{}` template does not check {source} ({}); nothing was written",
            template.name(),
            plural(errors, "error")
        ));
        return Ok(EXIT_DIAGNOSTICS);
    }

    std::fs::create_dir_all(dir)
        .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(&file, &text)
        .map_err(|e| UsageError(format!("cannot write {}: {e}", file.display())))?;

    let awaiting_data = data_missing && request.data.is_none();
    let checked = match (awaiting_data, warnings) {
        (true, _) => "its data is not there yet.".to_string(),
        (false, 0) => "checked: no problems".to_string(),
        (false, w) => format!("checked: {}", plural(w, "warning")),
    };
    eprintln!(
        "wrote {} (template `{}`); {checked}",
        file.display(),
        template.name()
    );
    if let (Some(slot), true) = (&slot, awaiting_data) {
        eprintln!("{}", instructions(dir, slot, template));
    }
    let run_hint = match (template, awaiting_data) {
        (Template::Video, _) => "trains on the CPU in under a minute",
        (_, false) => "trains on the CPU",
        (_, true) => "once the data is there",
    };
    eprintln!("next:");
    // `cd .` would be noise when DIR is where the user already is.
    let here = std::env::current_dir().and_then(std::fs::canonicalize).ok();
    if std::fs::canonicalize(dir).ok() != here {
        eprintln!("  cd {}", shell_word(dir));
    }
    eprintln!("  enigma check {name}.enigma    # names, units, every tensor's shape");
    eprintln!("  enigma run {name}.enigma      # {run_hint}; writes runs/{name}/");
    Ok(EXIT_OK)
}

/// The experiment's name: DIR's last component (of the absolute path, so
/// `enigma init .` is named after the current folder), with characters
/// other than letters, digits, `-` and `_` replaced by `_`.
fn experiment_name(dir: &Path) -> Result<String, UsageError> {
    let absolute = std::path::absolute(dir)
        .map_err(|e| UsageError(format!("cannot resolve {}: {e}", dir.display())))?;
    // `absolute` keeps `..` components; the name is that of the folder
    // they lead to, so normalise them away first.
    let mut parts: Vec<Component> = Vec::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir => {}
            other => parts.push(other),
        }
    }
    let last = match parts.last() {
        Some(Component::Normal(s)) => s.to_string_lossy().into_owned(),
        _ => String::new(),
    };
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(if name.trim_matches('_').is_empty() {
        "experiment".to_string()
    } else {
        name
    })
}

/// The `--data` path as the experiment should name it: relative to DIR
/// when it lies inside DIR, else absolute. It must exist, and be a folder
/// unless the template reads single files.
fn data_path(dir: &Path, data: &Path, slot: &DataSlot) -> Result<String, UsageError> {
    let meta = std::fs::metadata(data).map_err(|e| {
        UsageError(format!(
            "--data {}: {}",
            data.display(),
            match e.kind() {
                io::ErrorKind::NotFound => "there is no such file or folder".to_string(),
                _ => e.to_string(),
            }
        ))
    })?;
    if !meta.is_dir() && !slot.file_allowed {
        return Err(UsageError(format!(
            "--data {} is a file; this template reads a folder holding {}",
            data.display(),
            slot.needs
        )));
    }
    let data = std::fs::canonicalize(data)
        .map_err(|e| UsageError(format!("cannot resolve --data {}: {e}", data.display())))?;
    // DIR may not exist yet; then nothing can lie inside it.
    let inside = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| data.strip_prefix(d).ok().map(Path::to_path_buf))
        .filter(|rel| !rel.as_os_str().is_empty());
    let path = inside.unwrap_or(data);
    path.to_str().map(str::to_string).ok_or_else(|| {
        UsageError(format!(
            "--data {}: the path is not valid UTF-8, which an .enigma string cannot hold",
            path.display()
        ))
    })
}

/// `path` as an `.enigma` string literal (docs/language.md, 3.7).
fn quote(path: &str) -> Result<String, UsageError> {
    let mut s = String::with_capacity(path.len() + 2);
    s.push('"');
    for c in path.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => {
                return Err(UsageError(format!(
                    "--data {path:?}: a path with control characters cannot be written in an .enigma string"
                )))
            }
            c => s.push(c),
        }
    }
    s.push('"');
    Ok(s)
}

/// What to put where, when the experiment's data folder is not there yet.
fn instructions(dir: &Path, slot: &DataSlot, template: Template) -> String {
    let mut text = format!(
        "Put {} into {}/, or name existing files with --data PATH.",
        slot.needs,
        dir.join("data").display()
    );
    // A binary built from a checkout points at the checkout's sample
    // recordings while they are still there; an installed binary whose
    // checkout is gone says nothing more.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    if slot.sample.iter().all(|f| sample.join(f).is_file()) {
        text.push_str(&format!(
            "\nThe sample recording ships with enigma:\n  enigma init --template {} --data {} \
             --force {}",
            template.name(),
            shell_word(&sample),
            shell_word(dir)
        ));
    }
    text
}

/// A path as one word of a POSIX shell command line: quoted when it holds
/// anything but the characters that never need quoting.
fn shell_word(path: &Path) -> String {
    let s = path.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The file system, except that the experiment not yet written is served
/// from memory: the checker reads it (and resolves its relative data paths)
/// exactly as it will once it is on disk.
struct PendingLoader {
    root: PathBuf,
    text: String,
}

impl PendingLoader {
    fn is_root(&self, path: &Path) -> bool {
        FsLoader.canonical(path) == self.root
    }
}

impl SourceLoader for PendingLoader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if self.is_root(path) {
            return Ok(self.text.clone().into_bytes());
        }
        FsLoader.read(path)
    }

    fn is_file(&self, path: &Path) -> bool {
        self.is_root(path) || FsLoader.is_file(path)
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        FsLoader.canonical(path)
    }

    fn read_prefix(&self, path: &Path, max: usize) -> io::Result<Vec<u8>> {
        if self.is_root(path) {
            let mut bytes = self.text.clone().into_bytes();
            bytes.truncate(max);
            return Ok(bytes);
        }
        FsLoader.read_prefix(path, max)
    }

    fn len(&self, path: &Path) -> Option<u64> {
        if self.is_root(path) {
            return Some(self.text.len() as u64);
        }
        FsLoader.len(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        FsLoader.list_dir(dir)
    }

    // Forwarded so that NWB headers are read by name through libhdf5, as
    // `enigma check` reads them; the trait's default cannot.
    fn probe(&self, path: &Path, format: DataFormat) -> Result<DataHeader, ProbeError> {
        FsLoader.probe(path, format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Template; 3] = [Template::Video, Template::Calcium, Template::Spikes];

    #[test]
    fn each_data_literal_occurs_once() {
        for t in ALL {
            if let Some(slot) = t.data() {
                assert_eq!(t.text().matches(slot.literal).count(), 1, "{}", t.name());
            }
        }
    }

    #[test]
    fn names_follow_the_folder() {
        let name = |p: &str| experiment_name(Path::new(p)).unwrap_or_default();
        assert_eq!(name("/tmp/my-v1"), "my-v1");
        assert_eq!(name("/tmp/a b/"), "a_b");
        assert_eq!(name("/tmp/x/.."), "tmp");
        assert_eq!(name("/"), "experiment");
        assert_eq!(name("/tmp/..."), "experiment");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a/b c").ok(), Some("\"a/b c\"".to_string()));
        assert_eq!(quote("a\"b\\c").ok(), Some("\"a\\\"b\\\\c\"".to_string()));
        assert!(quote("a\u{7}b").is_err());
        assert_eq!(shell_word(Path::new("runs/x-1")), "runs/x-1");
        assert_eq!(shell_word(Path::new("it's here")), "'it'\\''s here'");
    }
}
