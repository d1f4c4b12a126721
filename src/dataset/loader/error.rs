//! What can go wrong between a data file and a batch, and where.
//!
//! Every failure of the data side is one [`DataError`]: a kind a caller can
//! branch on, the places it concerns (file, data item or modality, session,
//! window, position in the file) and a sentence for humans. Its `Display`
//! puts the places first, so a message reads like
//! `../data/F.npy: modality `fluor`: row 12, column 40 is NaN ...`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::ir::data::Split;

/// The broad reason, for callers that react differently to each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataErrorKind {
    /// The experiment asks for something the loader cannot do: a source
    /// without a window, an unknown field, a transform it cannot compile.
    Spec,
    /// A file could not be opened or read.
    Io,
    /// A file is not what its extension says, or is damaged.
    Format,
    /// A file's shape disagrees with the modality that reads it.
    Shape,
    /// A value the model would see is NaN or infinite.
    NonFinite,
    /// A transform failed on the data.
    Transform,
    /// No windows can be cut, or a window id is out of range.
    Window,
    /// This build cannot read the format (NWB without the `nwb` feature).
    Unsupported,
    /// The background loader stopped.
    Stopped,
}

/// A failure of the data side, with the places it concerns.
#[derive(Clone, Debug, PartialEq)]
pub struct DataError {
    pub kind: DataErrorKind,
    /// The file, when one is involved.
    pub file: Option<PathBuf>,
    /// The data item or modality, as "data `v1`" or "modality `fluor`".
    pub item: Option<String>,
    pub session: Option<usize>,
    /// The split and the window's id within it.
    pub window: Option<(Split, usize)>,
    /// A sentence without the places above.
    pub message: String,
}

impl DataError {
    pub fn new(kind: DataErrorKind, message: impl Into<String>) -> DataError {
        DataError {
            kind,
            file: None,
            item: None,
            session: None,
            window: None,
            message: message.into(),
        }
    }

    /// The same error, naming `file` (unless it already names one).
    pub fn file(mut self, file: &Path) -> DataError {
        if self.file.is_none() {
            self.file = Some(file.to_path_buf());
        }
        self
    }

    /// The same error, naming modality `name` (unless it names an item).
    pub fn modality(mut self, name: &str) -> DataError {
        if self.item.is_none() {
            self.item = Some(format!("modality `{name}`"));
        }
        self
    }

    /// The same error, naming data item `name` (unless it names an item).
    pub fn data(mut self, name: &str) -> DataError {
        if self.item.is_none() {
            self.item = Some(format!("data `{name}`"));
        }
        self
    }

    pub fn session(mut self, session: usize) -> DataError {
        if self.session.is_none() {
            self.session = Some(session);
        }
        self
    }

    pub fn window(mut self, split: Split, id: usize) -> DataError {
        if self.window.is_none() {
            self.window = Some((split, id));
        }
        self
    }

    /// An experiment the loader cannot serve.
    pub fn spec(message: impl Into<String>) -> DataError {
        DataError::new(DataErrorKind::Spec, message)
    }

    /// A failure to open or read `path`.
    pub fn io(path: &Path, error: &std::io::Error) -> DataError {
        DataError::new(DataErrorKind::Io, format!("cannot read the file: {error}")).file(path)
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(item) = &self.item {
            write!(f, "{item}: ")?;
        }
        match (self.session, self.window) {
            (Some(s), Some((split, w))) => write!(f, "session {s}, {split:?} window {w}: ")?,
            (Some(s), None) => write!(f, "session {s}: ")?,
            (None, Some((split, w))) => write!(f, "{split:?} window {w}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DataError {}

impl From<crate::source::probe::ProbeError> for DataError {
    fn from(e: crate::source::probe::ProbeError) -> DataError {
        use crate::source::probe::ProbeErrorKind as K;
        let kind = match e.kind {
            K::Io => DataErrorKind::Io,
            K::Unsupported => DataErrorKind::Unsupported,
            _ => DataErrorKind::Format,
        };
        let mut out = DataError::new(kind, e.message);
        out.file = e.path;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_every_place_given() {
        let e = DataError::new(DataErrorKind::NonFinite, "row 3, column 4 is NaN")
            .file(Path::new("a/F.npy"))
            .modality("fluor")
            .session(1);
        assert_eq!(
            e.to_string(),
            "a/F.npy: modality `fluor`: session 1: row 3, column 4 is NaN"
        );
        let e = DataError::spec("no window").window(Split::Val, 7);
        assert_eq!(e.to_string(), "Val window 7: no window");
        // The first place given wins, so inner code can be specific.
        let e = DataError::spec("x").data("iscell").modality("fluor");
        assert_eq!(e.item.as_deref(), Some("data `iscell`"));
    }
}
