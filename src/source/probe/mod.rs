//! Headers of data files, read at compile time.
//!
//! `enigma check` compares the shape a modality declares with the shape of
//! the file it names, so a mistake such as frames-by-ROIs against
//! ROIs-by-frames is reported before a job is queued. This module reads only
//! the *headers* of those files, never their data: [`npy`] parses the
//! header of a NumPy `.npy` file from a bounded prefix of its bytes, and
//! `nwb` (behind the `nwb` cargo feature, which links libhdf5) lists the
//! datasets of an NWB (HDF5) file with their types and shapes. The run-time
//! dataset reads the data after these headers with the same parsers.
//!
//! All file access goes through [`crate::source::SourceLoader::probe`], so
//! the core keeps its one I/O door; the functions here are pure (`npy`) or
//! take a path on the real file system (`nwb`, since libhdf5 opens files
//! itself). Every failure is a [`ProbeError`], never a panic.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub mod npy;
#[cfg(feature = "nwb")]
pub mod nwb;

/// The element type and shape of one array: a whole `.npy` file or one
/// dataset of an NWB file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArrayHeader {
    /// The element type as enigma spells it: `f16`, `f32`, `f64`, `i8` to
    /// `i64`, `u8` to `u64` or `bool`. Datasets of an NWB file can also hold
    /// types no model consumes; those are named `string`, `reference`,
    /// `enum`, `compound`, `array`, `vlen` or `opaque` so they can still be
    /// listed and reported.
    pub dtype: String,
    /// The size of each axis, outermost first; empty for a scalar.
    pub shape: Vec<u64>,
    /// Whether the elements are stored column-major (`.npy` only; HDF5 is
    /// always row-major).
    pub fortran_order: bool,
    /// Whether multi-byte elements are stored big-endian.
    pub big_endian: bool,
}

impl ArrayHeader {
    /// The number of elements (1 for a scalar), or `None` if it does not fit
    /// in a `u64`.
    pub fn element_count(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |count, &dim| count.checked_mul(dim))
    }
}

/// The formats whose headers the compiler can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataFormat {
    /// A NumPy `.npy` file: one array.
    Npy,
    /// A Neurodata Without Borders file (HDF5): many named datasets.
    Nwb,
}

impl DataFormat {
    /// The format a file name's extension suggests (`.npy`, `.nwb`, case
    /// insensitive), if any.
    pub fn from_path(path: &Path) -> Option<DataFormat> {
        let ext = path.extension()?.to_str()?;
        if ext.eq_ignore_ascii_case("npy") {
            Some(DataFormat::Npy)
        } else if ext.eq_ignore_ascii_case("nwb") {
            Some(DataFormat::Nwb)
        } else {
            None
        }
    }

    /// The format's usual name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Npy => "npy",
            DataFormat::Nwb => "NWB",
        }
    }
}

/// What a probe found in a data file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataHeader {
    /// A `.npy` file holds one array.
    Array(ArrayHeader),
    /// An NWB file holds datasets, keyed by their slash-separated path
    /// without the leading slash (`units/spike_times`).
    Nwb(BTreeMap<String, ArrayHeader>),
}

/// Why a header could not be read, so a caller can pick a diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeErrorKind {
    /// The file could not be opened or read.
    Io,
    /// The file does not start with the `.npy` magic string.
    NotNpy,
    /// The file ends inside its `.npy` preamble or header.
    Truncated,
    /// A `.npy` format version other than 1.0, 2.0 or 3.0.
    UnsupportedVersion,
    /// The `.npy` header is longer than the compiler is willing to read.
    HeaderTooLong,
    /// The `.npy` header dictionary is malformed or lacks a key.
    BadHeader,
    /// The element type has no enigma equivalent (structured, object,
    /// string, complex, ...).
    UnsupportedDtype,
    /// The shape's element or byte count does not fit in 64 bits.
    ShapeOverflow,
    /// The file is shorter than its header says the data is.
    DataTooShort,
    /// The file is not an HDF5 file.
    NotHdf5,
    /// libhdf5 reported an error while reading the file's structure.
    Hdf5,
    /// This build or this loader cannot read the format at all.
    Unsupported,
}

/// A header that could not be read: what went wrong, and in which file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeError {
    pub kind: ProbeErrorKind,
    /// The file, when known. The pure parsers leave it empty and the loader
    /// fills it in, since only the loader knows the path.
    pub path: Option<PathBuf>,
    /// A sentence for humans, without the path.
    pub message: String,
}

impl ProbeError {
    pub fn new(kind: ProbeErrorKind, message: impl Into<String>) -> ProbeError {
        ProbeError {
            kind,
            path: None,
            message: message.into(),
        }
    }

    /// The same error, attributed to `path` (unless it already names one).
    pub fn at(mut self, path: &Path) -> ProbeError {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }

    /// An I/O failure while reading `path`.
    pub fn io(path: &Path, error: &std::io::Error) -> ProbeError {
        ProbeError::new(ProbeErrorKind::Io, format!("cannot read the file: {error}")).at(path)
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ProbeError {}
