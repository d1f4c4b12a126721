//! What an experiment says about its data, as the checker read it: each
//! source (synthetic, `.npy` or NWB, with its path made absolute against
//! the experiment's directory), how its recordings are cut into windows and
//! split, and for each modality the model reads its kind, its per-sample
//! dims with sizes and rates, where its values come from, the `select`
//! stages that keep some positions of a dim, and its other transforms
//! ([`super::transform`]).
//!
//! The checker builds it; the run-time dataset reads it and nothing else
//! of the experiment. Nothing here reads a file.

use std::path::PathBuf;

use super::graph::ModalityKind;
use super::transform::Transform;

/// The three splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// The split as the language and the metrics log name it.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// How recordings are divided between the splits, in the fractions given
/// (train, val, test).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SplitRule {
    ByTime([f64; 3]),
    BySession([f64; 3]),
}

/// Everything the loader reads, for one experiment.
#[derive(Clone, Debug)]
pub struct DataSpec {
    /// The directory relative paths were resolved against.
    pub base_dir: PathBuf,
    /// Every `data` item, in file order.
    pub sources: Vec<SourceSpec>,
    /// Every modality a model input needs: the inputs themselves, and the
    /// modalities they derive from or draw windows within.
    pub modalities: Vec<ModalitySpec>,
    /// For each input of the IR (`graph.inputs[i]`), its modality's index
    /// in `modalities`.
    pub inputs: Vec<usize>,
}

impl DataSpec {
    /// The index of the source named `name`.
    pub fn source_index(&self, name: &str) -> Option<usize> {
        self.sources.iter().position(|s| s.name == name)
    }

    /// The index of the modality named `name`.
    pub fn modality_index(&self, name: &str) -> Option<usize> {
        self.modalities.iter().position(|m| m.name == name)
    }
}

/// One `data` item.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub kind: SourceKind,
    /// Its `window:` block, when it has one; an item without one is read
    /// whole (a table such as suite2p's `iscell`).
    pub window: Option<WindowSettings>,
}

/// Where a data item's values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    /// `synthetic.mouse_v1(sessions:, neurons:, seed:)`.
    Synthetic {
        sessions: i64,
        /// One neuron count for every session, or one per session
        /// (`neurons: [40, 56, 72]`).
        neurons: Vec<i64>,
        seed: i64,
        /// The video's frame height and width, pixels.
        frame: (i64, i64),
    },
    /// `npy(path, axes: [...], rate: r)`: one array per session.
    Npy {
        /// The patterns written, made absolute: files, folders or globs,
        /// which `source::files::expand` turns into one file per session.
        paths: Vec<PathBuf>,
        axes: Option<Vec<Axis>>,
        /// Samples per second along the time axis, when given.
        rate: Option<f64>,
    },
    /// `nwb(path)`: NWB (HDF5) files, one per session; a folder is every
    /// `.nwb` file below it (the DANDI layout).
    Nwb {
        paths: Vec<PathBuf>,
        rate: Option<f64>,
    },
    /// `suite2p(dir, rate: r)`: suite2p plane folders, one per session;
    /// the fields are the folder's arrays (`F`, `Fneu`, `spks`, `iscell`),
    /// ROI-major as suite2p writes them.
    Suite2p {
        paths: Vec<PathBuf>,
        rate: Option<f64>,
    },
}

impl SourceKind {
    /// The patterns a file source was given; none for a simulated one.
    pub fn paths(&self) -> &[PathBuf] {
        match self {
            SourceKind::Npy { paths, .. }
            | SourceKind::Nwb { paths, .. }
            | SourceKind::Suite2p { paths, .. } => paths,
            SourceKind::Synthetic { .. } => &[],
        }
    }
}

/// How `axes:` names one axis of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axis {
    /// A dim's name (`N`, `T`).
    Dim(String),
    /// A literal size (`2`).
    Size(usize),
}

/// A data item's `window`, `stride`, `split` and `within` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowSettings {
    /// Seconds.
    pub length: f64,
    /// Seconds between window starts; the window length when not given.
    pub stride: f64,
    /// `by_time(0.8, 0.1, 0.1)` when not given.
    pub rule: SplitRule,
    /// An intervals modality: windows are drawn only inside its intervals.
    pub within: Option<String>,
}

/// One dim of a modality's per-sample shape (after `batch`).
#[derive(Clone, Debug, PartialEq)]
pub struct DimSpec {
    /// The dim's name, or its size as written for an anonymous one (`36`).
    pub name: String,
    /// The size when the checker knew it; `None` for a dim the data binds
    /// (`N` behind a `select`) and for the window of events.
    pub size: Option<usize>,
    /// Samples per second of a sampled time dim.
    pub rate: Option<f64>,
    /// Whether this is the window's time dim.
    pub time: bool,
    /// Whether the dim is declared `per session`.
    pub per_session: bool,
}

/// Where a modality's values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// A field of a data item: `v1.video` is `(v1, ["video"])`,
    /// `rec.units.spike_times` is `(rec, ["units", "spike_times"])`, and a
    /// whole `.npy` item has no field.
    Source { source: usize, field: Vec<String> },
    /// Another modality (`from spikes | bin(20ms)`), by index.
    Modality(usize),
}

/// One modality.
#[derive(Clone, Debug)]
pub struct ModalitySpec {
    pub name: String,
    pub kind: ModalityKind,
    /// Its index among the IR's inputs, when the model reads it.
    pub input: Option<usize>,
    /// The per-sample dims, in declared order.
    pub dims: Vec<DimSpec>,
    /// The declared rate of the time dim, for sampled kinds.
    pub rate: Option<f64>,
    pub origin: Origin,
    /// `select(D, where: ...)` stages; they keep positions of a dim and
    /// commute with every other stage, which all work per channel.
    pub select: Vec<Select>,
    /// The other stages, in order.
    pub transforms: Vec<Transform>,
}

/// `select(N, where: cond)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Select {
    pub dim: String,
    pub cond: Cond,
}

/// A condition on the positions of the selected dim.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// `item[.., 0] > 0.5`: data item `source` (its `field`, for a
    /// suite2p folder's `iscell`) indexed by `index` (one `None` for the
    /// free axis, a position for every other axis), compared with `value`.
    Compare {
        source: usize,
        field: Vec<String>,
        index: Vec<Option<usize>>,
        op: CompareOp,
        value: f64,
    },
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

/// A comparison of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CompareOp {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CompareOp::Lt => a < b,
            CompareOp::Le => a <= b,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a >= b,
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
        }
    }
}

impl ModalitySpec {
    /// The declared dims other than time, which the data's channel axes
    /// must match.
    pub fn channel_dims(&self) -> impl Iterator<Item = &DimSpec> {
        self.dims.iter().filter(|d| !d.time)
    }

    /// Whether a dim of this modality is bound per session, so its
    /// statistics are fitted per session.
    pub fn per_session(&self) -> bool {
        self.dims.iter().any(|d| d.per_session)
    }
}
