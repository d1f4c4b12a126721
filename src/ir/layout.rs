//! What the `parallel` block says, as the checker read it: the device
//! mesh, which logical dims map to which mesh axes, and the ZeRO,
//! micro-batch, schedule and memory settings, each with the place the user
//! wrote it, so that the planner's diagnostics point at the right line.
//!
//! An experiment without a `parallel` block has one rank: an empty mesh
//! and the defaults below. The planner turns this into its
//! `plan::Layout` (which axes carry data, tensor and pipeline parallelism).

use crate::base::Loc;

/// The pipeline schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipelineSchedule {
    OneFOneB,
    GPipe,
    Interleaved,
}

/// One axis of `mesh { name: size }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshAxis {
    pub name: String,
    pub size: usize,
}

/// `heads, ffn -> gpu` or `batch -> (node, gpu)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    /// The logical dims on the left, each with its place.
    pub dims: Vec<(String, Loc)>,
    /// The mesh axes they are split over, in the order written.
    pub axes: Vec<String>,
    /// The whole mapping entry.
    pub at: Loc,
    /// The target (`(node, gpu)`).
    pub target: Loc,
}

/// Where the parts of the layout were written.
#[derive(Clone, Debug, PartialEq)]
pub struct LayoutPlaces {
    /// The `parallel` item; without one, the `train` item (or the start of
    /// the root file).
    pub block: Loc,
    /// The `mesh { ... }` entry.
    pub mesh: Option<Loc>,
    /// Each `key: value` setting of the block.
    pub settings: Vec<(String, Loc)>,
}

impl LayoutPlaces {
    /// Where setting `name` was written.
    pub fn setting(&self, name: &str) -> Option<Loc> {
        self.settings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, at)| *at)
    }
}

/// The `parallel` block, with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ParallelSpec {
    /// The mesh axes, slowest first; empty for one rank.
    pub mesh: Vec<MeshAxis>,
    pub mappings: Vec<Mapping>,
    /// ZeRO stage 0 to 3.
    pub zero: u8,
    /// The data-parallel axis ZeRO shards over, when `zero_scope` names one.
    pub zero_scope: Option<String>,
    pub microbatches: usize,
    /// Gradient accumulation (`accumulate` of the `train` block): rounds of
    /// `microbatches` per optimiser step.
    pub accumulate: usize,
    pub schedule: PipelineSchedule,
    pub checkpoint_activations: bool,
    pub sequence_parallel: bool,
    /// Bytes of one device's memory (default: an H100's 80 GB).
    pub device_memory: f64,
    /// Bytes per gradient all-reduce bucket (default 25 MB).
    pub bucket: f64,
    /// Seconds a collective may take before the runtime ends the job and
    /// names the ranks that did not arrive (default 300 s).
    pub collective_timeout: f64,
    pub places: LayoutPlaces,
}

impl ParallelSpec {
    /// One rank and every default, for an experiment written at `block`.
    pub fn single(block: Loc) -> ParallelSpec {
        ParallelSpec {
            mesh: Vec::new(),
            mappings: Vec::new(),
            zero: 0,
            zero_scope: None,
            microbatches: 1,
            accumulate: 1,
            schedule: PipelineSchedule::OneFOneB,
            checkpoint_activations: false,
            sequence_parallel: false,
            device_memory: 80e9,
            bucket: 25e6,
            collective_timeout: 300.0,
            places: LayoutPlaces {
                block,
                mesh: None,
                settings: Vec::new(),
            },
        }
    }

    /// The mesh axes logical dim `dim` is split over.
    pub fn axes_of(&self, dim: &str) -> Option<&[String]> {
        self.mappings
            .iter()
            .find(|m| m.dims.iter().any(|(d, _)| d == dim))
            .map(|m| m.axes.as_slice())
    }

    /// Each mapped logical dim's axes (a later mapping of the same dim
    /// wins, as in the planner's layout).
    pub fn mapped(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out = std::collections::BTreeMap::new();
        for m in &self.mappings {
            for (d, _) in &m.dims {
                out.insert(d.clone(), m.axes.clone());
            }
        }
        out
    }

    /// The mesh axes that any of `dims` is mapped to, in mesh order:
    /// `&["batch"]` gives the data-parallel axes,
    /// [`TENSOR_DIMS`](super::split::TENSOR_DIMS) the tensor-parallel ones.
    pub fn axes_for(&self, dims: &[&str]) -> Vec<String> {
        let mapped = self.mapped();
        self.mesh
            .iter()
            .map(|a| &a.name)
            .filter(|a| {
                dims.iter()
                    .any(|d| mapped.get(*d).is_some_and(|to| to.contains(a)))
            })
            .cloned()
            .collect()
    }

    /// The number of ranks over `axes`: the product of their sizes, `None`
    /// when an axis is not in the mesh or the product overflows.
    pub fn degree(&self, axes: &[String]) -> Option<usize> {
        axes.iter().try_fold(1usize, |d, a| {
            let axis = self.mesh.iter().find(|x| &x.name == a)?;
            d.checked_mul(axis.size)
        })
    }

    /// Where the mapping of logical dim `dim` was written.
    pub fn mapping_of(&self, dim: &str) -> Option<Loc> {
        self.mappings
            .iter()
            .find(|m| m.dims.iter().any(|(d, _)| d == dim))
            .map(|m| m.at)
    }
}
