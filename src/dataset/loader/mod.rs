//! The data loader: from an experiment's [`DataSpec`] to batches of the
//! model's inputs.
//!
//! [`Dataset::open`] (`open.rs`) reads every source (`sources.rs` for the
//! simulation and the raw streams, `files.rs` with `array.rs` and `nwb.rs`
//! for files), applies the `select` stages, cuts each session into
//! windows and splits them (the parent's `windows.rs`), fits each
//! modality's transforms on the training windows only and applies them to
//! whole sessions (`fit.rs`), and checks what the files hold against the
//! declared shapes and rates and for values that are not finite. A series
//! from an `.npy` file or an NWB series whose transforms act on one sample
//! alone is not read into memory: it stays in its file and is read a
//! window at a time through the same code (`lazy.rs`), so peak memory does
//! not grow with the data; opening still scans it once, in chunks, for the
//! checks and `zscore`'s statistics. After opening, nothing can fail on
//! the files' contents (a file read lazily that is changed or removed
//! during training is an error naming it): [`Dataset::batch`] (`batch.rs`) copies or reads
//! windows (the synthetic video is rendered per window), and
//! [`Dataset::epoch_batches`] is the seeded order of an epoch. [`Loader`]
//! (`prefetch.rs`) assembles the coming batches on a background thread;
//! its [`Position`] is all a checkpoint needs to resume the stream exactly.
//!
//! The conventions (events and intervals as tensors, the NaN policy, what
//! is fitted where) are in `docs/data.md`.

mod array;
pub(crate) use array::npy_bytes;
mod batch;
mod error;
mod files;
mod fit;
mod lazy;
#[cfg(feature = "nwb")]
mod nwb;
mod open;
mod ops;
mod prefetch;
mod sources;
mod truth;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use array::{read_npy, Array, Element};
pub use batch::{Batch, NO_UNIT};
pub use prefetch::{Loader, Position};
pub use truth::Running;

use crate::dataset::synthetic::MouseV1;
use crate::dataset::transform::Pipeline;
use crate::dataset::windows::{Splits, Window};
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::Split;
use crate::ir::data::{DataSpec, WindowSettings};
use sources::Stream;

/// What the data says about one session.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionInfo {
    /// The length windows are cut from, in seconds.
    pub duration: f64,
    /// The size of every dim the data bound in this session (`N` = 20), the
    /// declared constants included; per-session parameters are sized by it.
    pub dims: BTreeMap<String, usize>,
}

/// Every source read, transformed and cut into windows.
pub struct Dataset {
    spec: DataSpec,
    settings: WindowSettings,
    splits: Splits,
    sessions: Vec<SessionInfo>,
    /// `[modality][session]`: the transformed values of the modalities in
    /// use (`None` for the others).
    streams: Vec<Vec<Option<Stream>>>,
    /// `[modality][session]`: the fitted transforms, applied per window to
    /// the synthetic video (already applied to every other stream).
    pipelines: Vec<Vec<Pipeline>>,
    /// The simulated sources, by source index, for rendering video.
    synthetic: BTreeMap<usize, Arc<MouseV1>>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("sessions", &self.sessions)
            .field("train", &self.splits.train.len())
            .field("val", &self.splits.val.len())
            .field("test", &self.splits.test.len())
            .finish()
    }
}

impl Dataset {
    /// The spec it was opened from.
    pub fn spec(&self) -> &DataSpec {
        &self.spec
    }

    /// The window, stride, split and `within` settings in force.
    pub fn settings(&self) -> &WindowSettings {
        &self.settings
    }

    /// The number of windows in `split`.
    pub fn len(&self, split: Split) -> usize {
        self.splits.get(split).len()
    }

    /// The windows of `split`; a window's id is its index here.
    pub fn windows(&self, split: Split) -> &[Window] {
        self.splits.get(split)
    }

    /// Window `id` of `split`.
    pub fn window(&self, split: Split, id: usize) -> Option<Window> {
        self.splits.get(split).get(id).copied()
    }

    /// Every session, in order; batches never mix them.
    pub fn sessions(&self) -> &[SessionInfo] {
        &self.sessions
    }

    /// The simulation behind synthetic data item `source` (an index into
    /// the spec's sources), with its ground truth, when it is one.
    pub fn simulation(&self, source: usize) -> Option<&MouseV1> {
        self.synthetic.get(&source).map(|m| m.as_ref())
    }
}

/// Renders frames `start..` of simulated source `source`'s session
/// `session` into `out`, as many whole frames as it holds.
fn render(
    synthetic: &BTreeMap<usize, Arc<MouseV1>>,
    source: usize,
    session: usize,
    start: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let s = synthetic
        .get(&source)
        .and_then(|m| m.session(session))
        .ok_or_else(|| Error::spec("the simulated video's source was not built"))?;
    let (h, w) = s.frame_size();
    let len = out.len() / (h * w).max(1);
    s.video(start, len, out)
        .map_err(|e| Error::new(ErrorKind::Window, e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests;
