//! Errors after checking, as values.
//!
//! The planner, the dataset and the runtime fail with one [`Error`]: a
//! kind with a stable code ([`ErrorKind::code`], a page in `docs/errors/`
//! like every diagnostic's), a sentence, and the places it concerns (the
//! file, the data item or modality, the session and window, the training
//! step, the rank, the operation and its node, the tensor and its shape).
//! Inner code names the places it knows and callers add theirs on the way
//! out; the first place given wins, so the most specific is kept.
//!
//! An error becomes a [`Diagnostic`] ([`Error::to_diagnostic`]) and is
//! rendered like any other, for the terminal or as JSON. Its `Display`
//! puts the places first: `step 12: a/F.npy: modality `fluor`: row 3 is
//! NaN`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Code, Diagnostic};

/// What kind of failure, for callers that react differently to each; each
/// has its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The experiment's data asks for something the loader cannot do.
    Spec,
    /// A data file could not be opened or read.
    DataIo,
    /// A data file is not what its extension says, or is damaged.
    DataFormat,
    /// A data file's shape disagrees with the modality that reads it.
    DataShape,
    /// A value the model would see is NaN or infinite.
    DataNonFinite,
    /// A transform failed on the data.
    Transform,
    /// No windows can be cut, or a window is out of range.
    Window,
    /// The background loader stopped.
    LoaderStopped,
    /// The runtime or this build cannot do what is asked (a multi-rank
    /// plan, an operation not implemented yet, NWB without the `nwb`
    /// feature).
    Unsupported,
    /// A tensor operation failed.
    Op,
    /// The loss or a gradient is NaN or infinite and the policy is `stop`.
    NonFinite,
    /// The device asked for is not there.
    Device,
    /// A checkpoint could not be written or read.
    Checkpoint,
    /// A checkpoint or a plan does not fit the experiment.
    Mismatch,
    /// The run directory could not be written.
    Io,
    /// A collective or transfer between ranks failed, timed out, or found
    /// another rank gone.
    Comm,
    /// The launcher's environment does not describe a job this runtime can
    /// join (a rank without a world size, CPU collectives without MPI).
    Launch,
    /// The editor's connection to the language server broke: it did not
    /// initialize, or the stream to it failed.
    Editor,
    /// A bug: a stage broke its own contract (a plan that fails its own
    /// verification).
    Internal,
}

impl ErrorKind {
    /// The stable code of this kind.
    pub fn code(self) -> Code {
        match self {
            ErrorKind::Spec => Code::E0221,
            ErrorKind::DataIo => Code::E0401,
            ErrorKind::DataFormat => Code::E0402,
            ErrorKind::DataShape => Code::E0403,
            ErrorKind::DataNonFinite => Code::E0404,
            ErrorKind::Transform => Code::E0405,
            ErrorKind::Window => Code::E0406,
            ErrorKind::LoaderStopped => Code::E0407,
            ErrorKind::Unsupported => Code::E0501,
            ErrorKind::Op => Code::E0502,
            ErrorKind::NonFinite => Code::E0503,
            ErrorKind::Device => Code::E0504,
            ErrorKind::Checkpoint => Code::E0505,
            ErrorKind::Mismatch => Code::E0506,
            ErrorKind::Io => Code::E0507,
            ErrorKind::Comm => Code::E0508,
            ErrorKind::Launch => Code::E0509,
            ErrorKind::Editor => Code::E0510,
            ErrorKind::Internal => Code::E0900,
        }
    }
}

/// One application of a graph node: the operation, the node, which copy
/// of a `repeat` body, and the module scope it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlace {
    pub op: String,
    pub node: usize,
    pub copy: usize,
    pub scope: String,
}

impl fmt::Display for NodePlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = if self.scope.is_empty() {
            "<root>"
        } else {
            &self.scope
        };
        write!(
            f,
            "`{}` (node %{}, copy {}, in `{scope}`)",
            self.op, self.node, self.copy
        )
    }
}

/// A failure of the planner, the dataset or the runtime, with its places.
///
/// The places sit behind a box so that an `Error` is five words and a
/// `Result` that may carry one stays small on the loader's hot paths.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    /// A sentence without the places below.
    pub message: String,
    pub places: Box<Places>,
}

/// Where an [`Error`] happened; every field is optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Places {
    /// The file involved (a data file, a checkpoint, the run directory).
    pub file: Option<PathBuf>,
    /// The data item or modality, as "data `v1`" or "modality `fluor`".
    pub item: Option<String>,
    pub session: Option<usize>,
    /// The split (`Train`, `Val`, `Test`) and the window's id within it.
    pub window: Option<(String, usize)>,
    /// The optimiser step, counted from 1 as the metrics log counts.
    pub step: Option<u64>,
    pub rank: Option<usize>,
    /// The operation the failure happened in.
    pub node: Option<NodePlace>,
    /// The tensor involved and its shape.
    pub tensor: Option<(String, Vec<i64>)>,
    pub help: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            places: Box::default(),
        }
    }

    /// What the experiment's data asks and the loader cannot do.
    pub fn spec(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Spec, message)
    }

    /// A failure to open or read data file `path`.
    pub fn io(path: &Path, error: &std::io::Error) -> Error {
        Error::new(ErrorKind::DataIo, format!("cannot read the file: {error}")).file(path)
    }

    /// A bug: a stage broke its own contract.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    /// The same error, naming `file` (unless it already names one).
    pub fn file(mut self, file: &Path) -> Error {
        self.places.file.get_or_insert_with(|| file.to_path_buf());
        self
    }

    /// The same error, naming modality `name` (unless it names an item).
    pub fn modality(mut self, name: &str) -> Error {
        self.places
            .item
            .get_or_insert_with(|| format!("modality `{name}`"));
        self
    }

    /// The same error, naming data item `name` (unless it names an item).
    pub fn data(mut self, name: &str) -> Error {
        self.places
            .item
            .get_or_insert_with(|| format!("data `{name}`"));
        self
    }

    pub fn session(mut self, session: usize) -> Error {
        self.places.session.get_or_insert(session);
        self
    }

    /// The same error, naming window `id` of split `split` (`Val`).
    pub fn window(mut self, split: impl fmt::Debug, id: usize) -> Error {
        self.places
            .window
            .get_or_insert_with(|| (format!("{split:?}"), id));
        self
    }

    /// The same error, attributed to optimiser step `step` (unless it
    /// already names one).
    pub fn at_step(mut self, step: u64) -> Error {
        self.places.step.get_or_insert(step);
        self
    }

    pub fn rank(mut self, rank: usize) -> Error {
        self.places.rank.get_or_insert(rank);
        self
    }

    /// The same error, in the application `place` of a node.
    pub fn in_node(mut self, place: NodePlace) -> Error {
        self.places.node.get_or_insert(place);
        self
    }

    /// The same error, about tensor `name` of `shape`.
    pub fn tensor(mut self, name: &str, shape: &[i64]) -> Error {
        self.places
            .tensor
            .get_or_insert_with(|| (name.to_string(), shape.to_vec()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Error {
        self.places.help = Some(help.into());
        self
    }

    /// The error as a diagnostic: its code, the whole sentence with its
    /// places as the message, and the help. Errors after checking point
    /// at files, steps and tensors rather than at source text, so the
    /// diagnostic has no labels.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let mut d = Diagnostic::new(self.kind.code(), self.to_string());
        if let Some((name, shape)) = &self.places.tensor {
            d = d.note(format!("tensor `{name}` of shape {shape:?}"));
        }
        if let Some(h) = &self.places.help {
            d = d.help(h.clone());
        }
        d
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = self.places.rank {
            write!(f, "rank {r}: ")?;
        }
        if let Some(s) = self.places.step {
            write!(f, "step {s}: ")?;
        }
        if let Some(file) = &self.places.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(item) = &self.places.item {
            write!(f, "{item}: ")?;
        }
        match (self.places.session, &self.places.window) {
            (Some(s), Some((split, w))) => write!(f, "session {s}, {split} window {w}: ")?,
            (Some(s), None) => write!(f, "session {s}: ")?,
            (None, Some((split, w))) => write!(f, "{split} window {w}: ")?,
            (None, None) => {}
        }
        if let Some(n) = &self.places.node {
            write!(f, "{n}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_every_place_given() {
        let e = Error::new(ErrorKind::DataNonFinite, "row 3, column 4 is NaN")
            .file(Path::new("a/F.npy"))
            .modality("fluor")
            .session(1);
        assert_eq!(
            e.to_string(),
            "a/F.npy: modality `fluor`: session 1: row 3, column 4 is NaN"
        );
        #[derive(Debug)]
        enum Split {
            Val,
        }
        let e = Error::spec("no window").window(Split::Val, 7);
        assert_eq!(e.to_string(), "Val window 7: no window");
        // The first place given wins, so inner code can be specific.
        let e = Error::spec("x").data("iscell").modality("fluor");
        assert_eq!(e.places.item.as_deref(), Some("data `iscell`"));
        let e = Error::new(ErrorKind::Op, "shape mismatch")
            .in_node(NodePlace {
                op: "linear".into(),
                node: 3,
                copy: 1,
                scope: "m.layer".into(),
            })
            .at_step(12)
            .at_step(13);
        assert_eq!(
            e.to_string(),
            "step 12: `linear` (node %3, copy 1, in `m.layer`): shape mismatch"
        );
    }

    #[test]
    fn an_error_is_a_diagnostic_with_its_code() {
        let e = Error::new(ErrorKind::Device, "no CUDA device").help("run with `--device cpu`");
        let d = e.to_diagnostic();
        assert_eq!(d.code, Code::E0504);
        assert!(d.is_error() && d.labels.is_empty());
        assert_eq!(d.message, "no CUDA device");
        assert_eq!(d.help.as_deref(), Some("run with `--device cpu`"));
        // Every kind has a code with a page.
        for k in [
            ErrorKind::Spec,
            ErrorKind::DataIo,
            ErrorKind::Window,
            ErrorKind::Unsupported,
            ErrorKind::Io,
            ErrorKind::Internal,
        ] {
            assert!(!k.code().page().is_empty());
        }
    }
}
