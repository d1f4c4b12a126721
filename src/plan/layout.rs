//! The layout a `parallel` block describes, as the planner uses it.
//!
//! The block has been checked by then (`check::settings` for its schema,
//! `check::layout` for divisibility against the model), so reading it here
//! only gathers what it says: the mesh, which axes carry data, tensor and
//! pipeline parallelism, and the ZeRO, micro-batch, schedule and memory
//! settings. An experiment without a `parallel` block runs on one rank.

use std::collections::BTreeMap;

use super::mesh::{Axis, Mesh, MeshError};
use crate::ir::types::Value;
use crate::resolve::Program;
use crate::syntax::ast::*;

/// The pipeline schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    OneFOneB,
    GPipe,
    Interleaved,
}

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
    pub schedule: Schedule,
    pub checkpoint_activations: bool,
    pub sequence_parallel: bool,
    /// Bytes of one device's memory (default: an H100's 80 GB).
    pub device_memory: f64,
    /// Bytes per gradient all-reduce bucket (default 25 MB).
    pub bucket: f64,
}

/// Logical dims whose splitting is tensor parallelism.
const TENSOR_DIMS: &[&str] = &["heads", "kv_heads", "ffn", "vocab"];

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
            schedule: Schedule::OneFOneB,
            checkpoint_activations: false,
            sequence_parallel: false,
            device_memory: 80e9,
            bucket: 25e6,
        }
    }

    /// The layout of the root file's `parallel` block, or one rank when
    /// there is none. `value` evaluates a setting's expression.
    pub fn of(program: &Program) -> Result<Layout, MeshError> {
        let Some(ast) = program.root_module().ast.as_ref() else {
            return Ok(Layout::single());
        };
        let block = ast.items.iter().find_map(|i| match &i.kind {
            ItemKind::Parallel(b) => Some(b),
            _ => None,
        });
        let mut layout = match block {
            Some(b) => Layout::from_block(b, &mut |e| crate::check::constant(program, e))?,
            None => Layout::single(),
        };
        let train = ast.items.iter().find_map(|i| match &i.kind {
            ItemKind::Train(b) => Some(b),
            _ => None,
        });
        for entry in train.iter().flat_map(|b| &b.entries) {
            if let EntryKind::Setting { key, value } = &entry.kind {
                if key.name == "accumulate" {
                    let v = crate::check::constant(program, value);
                    layout.accumulate = whole(&v)
                        .and_then(|a| usize::try_from(a).ok())
                        .unwrap_or(1)
                        .max(1);
                }
            }
        }
        Ok(layout)
    }

    /// Micro-batches per rank per optimizer step.
    pub fn steps_per_update(&self) -> usize {
        self.microbatches.saturating_mul(self.accumulate).max(1)
    }

    /// The layout a checked `parallel` block describes.
    pub fn from_block(
        block: &ConfigBlock,
        value: &mut dyn FnMut(&Expr) -> Value,
    ) -> Result<Layout, MeshError> {
        let mut l = Layout::single();
        let mut axes = Vec::new();
        let mut zero_scope: Option<String> = None;
        for entry in &block.entries {
            match &entry.kind {
                EntryKind::Block { key, block } if key.name == "mesh" => {
                    for e in &block.entries {
                        if let EntryKind::Setting { key, value: v } = &e.kind {
                            let size = whole(&value(v)).unwrap_or(1);
                            axes.push(Axis {
                                name: key.name.clone(),
                                size: usize::try_from(size).unwrap_or(1),
                            });
                        }
                    }
                }
                EntryKind::Mapping { keys, target } => {
                    let to = target_axes(target);
                    for k in keys {
                        l.mapped.insert(k.name.clone(), to.clone());
                    }
                }
                EntryKind::Setting { key, value: v } => {
                    let v = value(v);
                    match key.name.as_str() {
                        "zero" => {
                            l.zero = whole(&v).and_then(|z| u8::try_from(z).ok()).unwrap_or(0)
                        }
                        "microbatches" => {
                            l.microbatches = whole(&v)
                                .and_then(|m| usize::try_from(m).ok())
                                .unwrap_or(1)
                                .max(1)
                        }
                        "checkpoint_activations" => {
                            l.checkpoint_activations = v == Value::Bool(true)
                        }
                        "sequence_parallel" => l.sequence_parallel = v == Value::Bool(true),
                        "device_memory" => l.device_memory = bytes(&v).unwrap_or(l.device_memory),
                        "bucket" => l.bucket = bytes(&v).unwrap_or(l.bucket),
                        "zero_scope" => {
                            if let Value::Str(s) = v {
                                zero_scope = Some(s);
                            }
                        }
                        "pipeline_schedule" => {
                            l.schedule = match v {
                                Value::Symbol(s) if s == "gpipe" => Schedule::GPipe,
                                Value::Symbol(s) if s == "interleaved" => Schedule::Interleaved,
                                _ => Schedule::OneFOneB,
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        l.mesh = Mesh::new(axes)?;
        // Collect each kind of parallelism's axes, in mesh order.
        let order: Vec<String> = l.mesh.axes().iter().map(|a| a.name.clone()).collect();
        let collect = |dims: &[&str]| -> Vec<String> {
            order
                .iter()
                .filter(|a| {
                    dims.iter()
                        .any(|d| l.mapped.get(*d).is_some_and(|to| to.contains(a)))
                })
                .cloned()
                .collect()
        };
        l.data = collect(&["batch"]);
        l.tensor = collect(TENSOR_DIMS);
        l.pipeline = collect(&["layers"]);
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

fn whole(v: &Value) -> Option<i64> {
    match v {
        Value::Size(s) => s.as_const(),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<f64> {
    match v {
        Value::Quantity(q) if q.dim == crate::ir::types::quantity::Dimension::BYTES => {
            Some(q.value)
        }
        _ => None,
    }
}

/// The mesh axes of a mapping's target: `gpu` or `(node, gpu)`.
pub(crate) fn target_axes(e: &Expr) -> Vec<String> {
    match &e.kind {
        ExprKind::Path(p) => p.iter().map(|i| i.name.clone()).take(1).collect(),
        ExprKind::Paren(inner) => target_axes(inner),
        ExprKind::Tuple(items) => items.iter().flat_map(target_axes).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::Options;
    use crate::source::FsLoader;

    fn layout(example: &str) -> Layout {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(example);
        let program = crate::resolve::load(&FsLoader, &path, &Options::default()).unwrap();
        Layout::of(&program).unwrap()
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
