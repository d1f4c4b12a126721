//! The layout the experiment's `parallel` block describes, as the planner
//! uses it.
//!
//! The checker has evaluated the block into a [`ParallelSpec`] (and checked
//! its schema and its divisibility against the model), so this only
//! gathers what it says: the mesh, which axes carry data, tensor and
//! pipeline parallelism, and the ZeRO, micro-batch, schedule and memory
//! settings. An experiment without a `parallel` block runs on one rank.

use std::collections::BTreeMap;

use super::mesh::{Axis, Mesh, MeshError};
use crate::ir::layout::ParallelSpec;
use crate::ir::layout::PipelineSchedule;

/// What the planner needs from the `parallel` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub mesh: Mesh,
    /// Logical dims by the mesh axes they are split over.
    pub mapped: BTreeMap<String, Vec<String>>,
    /// Axes of data parallelism (`batch -> ...`).
    pub data: Vec<String>,
    /// Axes of tensor parallelism (`heads`, `kv_heads`, `ffn`, `vocab`).
    pub tensor: Vec<String>,
    /// Axes of pipeline parallelism (`layers -> ...`).
    pub pipeline: Vec<String>,
    /// ZeRO stage 0 to 3.
    pub zero: u8,
    /// The data-parallel axes ZeRO shards over (all of them unless
    /// `zero_scope` names one).
    pub zero_axes: Vec<String>,
    pub microbatches: usize,
    /// Gradient accumulation (`accumulate` of the `train` block): rounds of
    /// `microbatches` per optimizer step.
    pub accumulate: usize,
    pub schedule: PipelineSchedule,
    pub checkpoint_activations: bool,
    pub sequence_parallel: bool,
    /// Bytes of one device's memory (default: an H100's 80 GB).
    pub device_memory: f64,
    /// Bytes per gradient all-reduce bucket (default 25 MB).
    pub bucket: f64,
}

/// Logical dims whose splitting is tensor parallelism.
use crate::ir::split::TENSOR_DIMS;

impl Layout {
    /// One rank: no parallelism.
    pub fn single() -> Layout {
        Layout {
            mesh: Mesh::single(),
            mapped: BTreeMap::new(),
            data: Vec::new(),
            tensor: Vec::new(),
            pipeline: Vec::new(),
            zero: 0,
            zero_axes: Vec::new(),
            microbatches: 1,
            accumulate: 1,
            schedule: PipelineSchedule::OneFOneB,
            checkpoint_activations: false,
            sequence_parallel: false,
            device_memory: 80e9,
            bucket: 25e6,
        }
    }

    /// Micro-batches per rank per optimizer step.
    pub fn steps_per_update(&self) -> usize {
        self.microbatches.saturating_mul(self.accumulate).max(1)
    }

    /// The layout a checked `parallel` block describes.
    pub fn of(spec: &ParallelSpec) -> Result<Layout, MeshError> {
        let mut l = Layout::single();
        let axes = spec
            .mesh
            .iter()
            .map(|a| Axis {
                name: a.name.clone(),
                size: a.size,
            })
            .collect();
        l.mapped = spec.mapped();
        l.zero = spec.zero;
        l.microbatches = spec.microbatches.max(1);
        l.accumulate = spec.accumulate.max(1);
        l.schedule = spec.schedule;
        l.checkpoint_activations = spec.checkpoint_activations;
        l.sequence_parallel = spec.sequence_parallel;
        l.device_memory = spec.device_memory;
        l.bucket = spec.bucket;
        let zero_scope = spec.zero_scope.clone();
        l.mesh = Mesh::new(axes)?;
        // Each kind of parallelism's axes, in mesh order, by the rule the
        // checker used.
        l.data = spec.axes_for(&["batch"]);
        l.tensor = spec.axes_for(TENSOR_DIMS);
        l.pipeline = spec.axes_for(&["layers"]);
        l.zero_axes = match zero_scope {
            Some(s) if l.data.contains(&s) => vec![s],
            _ => l.data.clone(),
        };
        for a in l.data.iter().chain(&l.tensor).chain(&l.pipeline) {
            l.mesh.degree(std::slice::from_ref(a))?;
        }
        Ok(l)
    }

    /// The data-parallel degree.
    pub fn data_degree(&self) -> usize {
        self.mesh.degree(&self.data).unwrap_or(1)
    }

    /// The tensor-parallel degree.
    pub fn tensor_degree(&self) -> usize {
        self.mesh.degree(&self.tensor).unwrap_or(1)
    }

    /// The number of pipeline stages.
    pub fn stages(&self) -> usize {
        self.mesh.degree(&self.pipeline).unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(example: &str) -> Layout {
        Layout::of(&crate::testing::example(example).parallel).unwrap()
    }

    #[test]
    fn enigma_1b_is_hybrid_sharded_data_parallel() {
        let l = layout("enigma_1b.enigma");
        assert_eq!(l.mesh.size(), 64);
        assert_eq!(l.data, ["node", "gpu"]);
        assert_eq!(l.data_degree(), 64);
        assert_eq!((l.tensor_degree(), l.stages()), (1, 1));
        assert_eq!(l.zero, 3);
        assert_eq!(l.zero_axes, ["gpu"]);
        assert!(l.checkpoint_activations);
        assert_eq!(l.device_memory, 80e9);
        assert_eq!(l.bucket, 25e6);
    }

    #[test]
    fn data_parallel_layouts() {
        let l = layout("quickstart.enigma");
        assert_eq!((l.mesh.size(), l.data_degree()), (1, 1));
        let l = layout("gpt2_small.enigma");
        assert_eq!(l.data, ["gpu"]);
        assert_eq!(l.data_degree(), 8);
        assert_eq!(l.zero, 1);
        assert_eq!(l.zero_axes, ["gpu"]);
        assert_eq!((l.accumulate, l.steps_per_update()), (4, 4));
        assert_eq!(Layout::single().mesh.size(), 1);
    }
}
