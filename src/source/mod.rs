//! Source files and the one trait through which the compiler reads them.
//!
//! The core never touches the file system directly: it asks a
//! [`SourceLoader`] for bytes. The CLI uses [`FsLoader`]; tests and the
//! language server can use [`MemoryLoader`] to check unsaved buffers. Loaded
//! files live in a [`SourceMap`] and are named by a [`FileId`], which is what
//! diagnostics carry beside their spans.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub mod files;
pub mod probe;
pub mod synthetic;

use probe::{npy, DataFormat, DataHeader, ProbeError, ProbeErrorKind};

use crate::base::{FileId, Span};

/// The one door between the compiler core and the outside world.
pub trait SourceLoader {
    /// Reads a whole file as bytes. UTF-8 validation is the caller's job so
    /// that invalid text becomes a diagnostic with a position.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Whether `path` names an existing file (used to resolve imports).
    fn is_file(&self, path: &Path) -> bool;

    /// A canonical name for the file, so one file reached by two paths (or
    /// through a symbolic-link loop) is loaded once.
    fn canonical(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }

    /// Reads at most `max` bytes from the start of a file. Data files can be
    /// many gigabytes and only their header is wanted, so loaders backed by
    /// storage should override this default, which reads the whole file.
    fn read_prefix(&self, path: &Path, max: usize) -> io::Result<Vec<u8>> {
        let mut bytes = self.read(path)?;
        bytes.truncate(max);
        Ok(bytes)
    }

    /// The length of a file in bytes, when it is cheap to know. It lets a
    /// probe notice a data file cut short after its header.
    fn len(&self, _path: &Path) -> Option<u64> {
        None
    }

    /// The entries of a directory: each name, and whether it is a
    /// directory. A data item may name a folder or a glob of many files
    /// ([`files`]); listing goes through here so the checker and the loader
    /// see the same sessions. The default lists nothing.
    fn list_dir(&self, _dir: &Path) -> io::Result<Vec<(String, bool)>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this loader cannot list directories",
        ))
    }

    /// Reads the header of a data file (never its data): the element type
    /// and shape of a `.npy` array, or every dataset of an NWB file.
    ///
    /// The default reads `.npy` headers through [`read_prefix`] and
    /// [`len`](SourceLoader::len), and cannot read NWB files, which libhdf5
    /// must open by name; [`FsLoader`] can, when built with the `nwb`
    /// feature.
    ///
    /// [`read_prefix`]: SourceLoader::read_prefix
    fn probe(&self, path: &Path, format: DataFormat) -> Result<DataHeader, ProbeError> {
        match format {
            DataFormat::Npy => probe_npy(self, path).map(DataHeader::Array),
            DataFormat::Nwb => Err(nwb_unsupported(path)),
        }
    }
}

/// Reads a `.npy` header through a loader's bounded read.
fn probe_npy<L: SourceLoader + ?Sized>(
    loader: &L,
    path: &Path,
) -> Result<crate::source::probe::ArrayHeader, ProbeError> {
    // Headers numpy writes are a few hundred bytes (it refuses to read
    // more than 10,000 by default), so a small first read almost always
    // holds the whole header; only a longer one costs a second read, of up
    // to the limit the parser accepts.
    const FIRST_READ: usize = 16 * 1024;
    let read = |max| {
        loader
            .read_prefix(path, max)
            .map_err(|e| ProbeError::io(path, &e))
    };
    let mut prefix = read(FIRST_READ)?;
    if prefix.len() == FIRST_READ {
        if let Err(e) = npy::parse(&prefix) {
            if e.kind == ProbeErrorKind::Truncated {
                prefix = read(npy::PREFIX_LEN)?;
            }
        }
    }
    npy::probe(&prefix, loader.len(path)).map_err(|e| e.at(path))
}

/// The answer of a loader that cannot read NWB files.
fn nwb_unsupported(path: &Path) -> ProbeError {
    // With the feature on, only a loader without a real file system (such
    // as `MemoryLoader`) gets here, so the message names the actual cause.
    let message = if cfg!(feature = "nwb") {
        "reading NWB files needs a loader backed by the file system, since libhdf5 opens files by name"
    } else {
        "reading NWB files needs the `nwb` feature (this enigma was built without libhdf5)"
    };
    ProbeError::new(ProbeErrorKind::Unsupported, message).at(path)
}

/// Reads from the real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsLoader;

impl SourceLoader for FsLoader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }

    fn read_prefix(&self, path: &Path, max: usize) -> io::Result<Vec<u8>> {
        use std::io::Read;
        // `take` stops the read at `max` bytes, so probing a multi-gigabyte
        // array reads only its header.
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(max as u64)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            // `metadata` follows symbolic links, so a linked session folder
            // is a folder.
            let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
            if let Some(name) = entry.file_name().to_str() {
                out.push((name.to_string(), is_dir));
            }
        }
        out.sort();
        Ok(out)
    }

    fn len(&self, path: &Path) -> Option<u64> {
        std::fs::metadata(path)
            .ok()
            .filter(|meta| meta.is_file())
            .map(|meta| meta.len())
    }

    fn probe(&self, path: &Path, format: DataFormat) -> Result<DataHeader, ProbeError> {
        match format {
            DataFormat::Npy => probe_npy(self, path).map(DataHeader::Array),
            #[cfg(feature = "nwb")]
            DataFormat::Nwb => probe::nwb::probe(path).map(DataHeader::Nwb),
            #[cfg(not(feature = "nwb"))]
            DataFormat::Nwb => Err(nwb_unsupported(path)),
        }
    }
}

/// An in-memory file system, for tests and editor buffers.
#[derive(Clone, Debug, Default)]
pub struct MemoryLoader {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemoryLoader {
    pub fn new() -> MemoryLoader {
        MemoryLoader::default()
    }

    pub fn insert(&mut self, path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), bytes.into());
    }
}

impl SourceLoader for MemoryLoader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn is_file(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<(String, bool)>> {
        let mut out: Vec<(String, bool)> = Vec::new();
        for path in self.files.keys() {
            let Ok(rest) = path.strip_prefix(dir) else {
                continue;
            };
            let mut parts = rest.components();
            let Some(first) = parts.next() else {
                continue;
            };
            let name = first.as_os_str().to_string_lossy().to_string();
            let entry = (name, parts.next().is_some());
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
        if out.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such folder"));
        }
        out.sort();
        Ok(out)
    }
}

/// One loaded file: its display name and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name shown to users: a path as given, or `<stdlib>/nn.enigma`.
    pub name: String,
    /// Where the file lives on disk, when it does (the stdlib is embedded).
    pub path: Option<PathBuf>,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, path: Option<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name: name.into(),
            path,
            text,
            line_starts,
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, col + 1)
    }

    pub fn slice(&self, span: Span) -> &str {
        self.text.get(span.range()).unwrap_or("")
    }
}

/// Every file loaded during one compilation.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId((self.files.len() - 1) as u32)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }
}
