//! The settings schema: the one list of settings the checker checks and the
//! editor offers.
//!
//! Every setting of the `train`, `parallel` and `data` blocks (and of the
//! `train` block's `checkpoint` and `eval` sub-blocks) is a [`Setting`]
//! here: its key, the [`Kind`] of value it takes, whether it is required,
//! and a sentence or three for a user saying what it does, its default and
//! its unit. The checker (`settings.rs`, and the data block's unknown-key
//! message in `data/`) reads these tables, and a language server reads the
//! same ones for hover text and completions, so the two cannot drift. The
//! language reference (`docs/language.md`, sections 8, 17 and 18) documents
//! the same settings.
//!
//! ```
//! use enigma::check::schema;
//!
//! let every = schema::lookup(&["train", "checkpoint", "every"]).unwrap();
//! assert_eq!(every.key, "every");
//! assert!(schema::block("parallel").unwrap().iter().any(|s| s.key == "mesh"));
//! ```

use crate::resolve::builtins;

/// What a setting's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number of at least 1.
    Positive,
    /// A whole number in `0..=max`.
    UpTo(i64),
    /// A number greater than zero.
    PositiveNumber,
    /// `true` or `false`.
    Bool,
    /// A size in bytes (`80GB`).
    Bytes,
    /// A duration greater than zero (`300s`, `5min`).
    Duration,
    /// A data window or stride: a duration (`2s`, or the time dim `T`) for
    /// recordings in time, or a whole number of samples (`1`, a dim such as
    /// `span`) for data that is not (token streams, images).
    Extent,
    /// One of these symbols (`bf16`, `val`).
    Symbol(&'static [&'static str]),
    /// A call of one of these builtins: `adamw(lr: 3e-4)`.
    Call(&'static [&'static str]),
    /// A string (`"gpu"`).
    Str,
    /// A nested block with its own settings: `checkpoint { every: 500 }`.
    Block(&'static [Setting]),
    /// `mesh { axis: size, ... }`: any axis names, sizes of at least 1.
    Mesh,
    /// A data split: a call of `by_time` or `by_session` with the fractions
    /// of `train`, `val` and `test`.
    Split,
    /// The name of a modality of the file (an intervals modality, for
    /// `within`).
    ModalityName,
}

/// The callees a [`Kind::Split`] may be.
const SPLITS: &[&str] = &["by_time", "by_session"];

impl Kind {
    /// What a value of this kind is, for messages: "a whole number of at
    /// least 1", "one of `f32`, `bf16` or `f16`".
    pub fn describe(&self) -> String {
        match *self {
            Kind::Positive => "a whole number of at least 1".to_string(),
            Kind::UpTo(max) => format!("a whole number from 0 to {max}"),
            Kind::PositiveNumber => "a number greater than 0".to_string(),
            Kind::Bool => "`true` or `false`".to_string(),
            Kind::Bytes => "a size in bytes, such as `80GB`".to_string(),
            Kind::Duration => "a duration, such as `300s`".to_string(),
            Kind::Extent => {
                "a duration, such as `2s` or the time dim `T`, or a whole number of samples for data not in time"
                    .to_string()
            }
            Kind::Symbol(s) | Kind::Call(s) if s.len() == 2 => format!("either {}", list(s)),
            Kind::Symbol(s) | Kind::Call(s) => format!("one of {}", list(s)),
            Kind::Str => "a string".to_string(),
            Kind::Block(_) | Kind::Mesh => "a block `{ ... }`".to_string(),
            Kind::Split => {
                "a split, such as `by_time(train: 0.8, val: 0.1, test: 0.1)` or `by_session(...)`"
                    .to_string()
            }
            Kind::ModalityName => "the name of an intervals modality, such as `epochs`".to_string(),
        }
    }

    /// The symbols or callee names a value may be (empty otherwise).
    pub fn values(&self) -> &'static [&'static str] {
        match *self {
            Kind::Symbol(s) | Kind::Call(s) => s,
            Kind::Split => SPLITS,
            _ => &[],
        }
    }

    /// The settings of a nested block (empty for any other kind, a `mesh`
    /// included: its axis names are the user's).
    pub fn fields(&self) -> &'static [Setting] {
        match *self {
            Kind::Block(fields) => fields,
            _ => &[],
        }
    }
}

/// One setting of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The key, as written before the `:` (or before `{` for a block).
    pub key: &'static str,
    /// What its value must be.
    pub kind: Kind,
    /// Whether the block must have it (E0209 when absent).
    pub required: bool,
    /// One to three sentences for a user: what the setting does, its
    /// default when absent, and its unit.
    pub doc: &'static str,
}

const fn field(key: &'static str, kind: Kind, doc: &'static str) -> Setting {
    Setting {
        key,
        kind,
        required: false,
        doc,
    }
}

const fn required(key: &'static str, kind: Kind, doc: &'static str) -> Setting {
    Setting {
        key,
        kind,
        required: true,
        doc,
    }
}

/// The settings of `train { checkpoint { ... } }`.
pub const CHECKPOINT: &[Setting] = &[
    field(
        "every",
        Kind::Positive,
        "Saves a checkpoint every this many optimiser steps; one is saved at the end of training \
         too. When absent, a checkpoint is saved only at the end.",
    ),
    field(
        "keep",
        Kind::Positive,
        "How many of the newest checkpoints to keep; older ones are removed after each save. \
         1 when absent.",
    ),
];

/// The settings of `train { eval { ... } }`.
pub const EVAL: &[Setting] = &[
    field(
        "every",
        Kind::Positive,
        "Evaluates the metrics every this many optimiser steps, and at the end of training. \
         When absent, only at the end.",
    ),
    field(
        "split",
        Kind::Symbol(&["val", "test"]),
        "The split evaluated on: `val` (the default) or `test`.",
    ),
    field(
        "batches",
        Kind::Positive,
        "How many batches of the split each evaluation runs, the first ones in order, 1 when \
         absent. An evaluation batch holds `batch / accumulate` windows.",
    ),
];

/// The settings of the `train` block.
pub const TRAIN: &[Setting] = &[
    required(
        "optimizer",
        Kind::Call(builtins::OPTIMIZERS),
        "The optimiser and its arguments, such as `adamw(lr: 3e-4)`: `adamw` and `adam` take \
         `lr`, `betas`, `eps` and `weight_decay`, `sgd` takes `lr`, `momentum` and \
         `weight_decay`, and `lion` takes `lr`, `betas` and `weight_decay`. Required; an \
         argument left out takes PyTorch's default (`lr` is 1e-3, or 1e-4 for `lion`).",
    ),
    field(
        "schedule",
        Kind::Call(builtins::SCHEDULES),
        "How the learning rate changes over the `steps`, as a factor of the optimiser's `lr`: \
         `constant()`, `linear_warmup(warmup)`, `warmup_cosine(warmup, min_ratio)`, \
         `warmup_linear(warmup, min_ratio)`, `cosine(min_ratio)` or `step_decay(every, gamma)`, \
         with `warmup` and `every` in steps. When absent, the learning rate is constant.",
    ),
    required(
        "steps",
        Kind::Positive,
        "The number of optimiser steps to train for. Required.",
    ),
    required(
        "batch",
        Kind::Positive,
        "The global batch: windows per optimiser step, summed over all data-parallel replicas, \
         micro-batches and accumulation steps. Required; it must divide evenly by the \
         data-parallel degree times `microbatches` times `accumulate`.",
    ),
    field(
        "precision",
        Kind::Symbol(&["f32", "bf16", "f16"]),
        "The compute precision: `f32` (the default), `bf16` or `f16`. Parameters and optimiser \
         state stay f32, and a run on the CPU computes in f32.",
    ),
    field(
        "clip",
        Kind::PositiveNumber,
        "Clips the global gradient norm to this value before each optimiser step. When absent, \
         gradients are not clipped.",
    ),
    field(
        "accumulate",
        Kind::Positive,
        "How many micro-steps' gradients are accumulated into each optimiser step, 1 when \
         absent. The per-device batch is `batch` divided by the data-parallel degree, \
         `microbatches` and `accumulate`.",
    ),
    field(
        "on_nonfinite",
        Kind::Symbol(&["stop", "skip"]),
        "What happens when the loss or a gradient is not finite: `stop` (the default) ends the \
         run with E0503 without updating the weights, and `skip` skips the step and trains on.",
    ),
    field(
        "seed",
        Kind::UpTo(i64::MAX),
        "The seed of the run's randomness (initialisation, token masks, dropout and the \
         loader's order), 0 when absent. The same seed gives the same weights on every machine.",
    ),
    field(
        "device",
        Kind::Symbol(&["cpu", "cuda"]),
        "Where the run computes: `cpu` (the default) or `cuda`. `enigma run --device` \
         overrides it.",
    ),
    field(
        "checkpoint",
        Kind::Block(CHECKPOINT),
        "When the run saves checkpoints: `checkpoint { every: 500, keep: 3 }` saves every 500 \
         steps and keeps the newest 3. When absent, a checkpoint is saved at the end of \
         training and only the newest is kept.",
    ),
    field(
        "eval",
        Kind::Block(EVAL),
        "Evaluates the metrics during training: `eval { every: 200, split: val, batches: 8 }` \
         runs 8 batches of the `val` split every 200 steps and at the end. When absent, the \
         run does not evaluate.",
    ),
];

/// The settings of the `parallel` block (besides its mappings, `dims ->
/// axes`).
pub const PARALLEL: &[Setting] = &[
    required(
        "mesh",
        Kind::Mesh,
        "The device mesh: `mesh { node: 8, gpu: 8 }` names its axes, slowest first, and their \
         sizes, whose product is the number of processes. Required; the last axis is the \
         fastest (inside a node), and mappings such as `batch -> gpu` split logical dims over \
         these axes.",
    ),
    field(
        "zero",
        Kind::UpTo(3),
        "The ZeRO stage, 0 to 3: shard the optimiser state (1), also the gradients (2), also \
         the parameters (3) across the data-parallel axes. 0 (no sharding) when absent.",
    ),
    field(
        "zero_scope",
        Kind::Str,
        "A data-parallel mesh axis, as a string such as `\"gpu\"`, to shard ZeRO state over \
         while replicating it across the other data-parallel axes (hybrid sharding). When \
         absent, ZeRO shards over every data-parallel axis.",
    ),
    field(
        "microbatches",
        Kind::Positive,
        "Micro-batches per step in the pipeline, 1 when absent. The global `batch` must divide \
         by them.",
    ),
    field(
        "pipeline_schedule",
        Kind::Symbol(&["one_f_one_b", "gpipe", "interleaved"]),
        "The pipeline schedule: `one_f_one_b` (the default), `gpipe` or `interleaved`. \
         `interleaved` cannot be lowered yet (E0303).",
    ),
    field(
        "checkpoint_activations",
        Kind::Bool,
        "Recomputes activations in the backward pass instead of storing them. `false` when \
         absent.",
    ),
    field(
        "sequence_parallel",
        Kind::Bool,
        "Splits the sequence dim of the activations outside attention and MLP across the \
         tensor-parallel axis. `false` when absent.",
    ),
    field(
        "device_memory",
        Kind::Bytes,
        "The memory of one device in bytes (`80GB`), for the planner's memory check (E0302). \
         80GB, an H100's, when absent.",
    ),
    field(
        "bucket",
        Kind::Bytes,
        "The size in bytes (`25MB`) of the buckets gradients are grouped into for their \
         all-reduce. 25MB when absent.",
    ),
    field(
        "collective_timeout",
        Kind::Duration,
        "How long a collective may wait, a duration, before the job ends naming the ranks \
         that did not arrive (E0508). 300s when absent.",
    ),
];

/// The settings of a `data` item's block: how its recordings become
/// windows and splits.
pub const DATA: &[Setting] = &[
    field(
        "window",
        Kind::Extent,
        "The length of one training example, a duration (usually the time dim `T`). When \
         absent, the item is not cut into windows but read whole, and it takes no other \
         setting.",
    ),
    field(
        "stride",
        Kind::Extent,
        "The step between window starts, a duration; a stride shorter than the window \
         overlaps windows. The window's length when absent.",
    ),
    field(
        "split",
        Kind::Split,
        "How the recordings are divided into the `train`, `val` and `test` splits: \
         `by_time(train: f, val: f, test: f)` cuts each session's timeline into contiguous \
         blocks in those fractions, and `by_session(...)` sends whole sessions to each split. \
         `by_time(train: 0.8, val: 0.1, test: 0.1)` when absent.",
    ),
    field(
        "within",
        Kind::ModalityName,
        "An intervals modality, such as `epochs`: only the windows that lie entirely inside \
         one of its intervals are kept. When absent, every window is kept.",
    ),
];

/// The settings of a `loss` term's block.
pub const LOSS: &[Setting] = &[
    field(
        "masked_only",
        Kind::Bool,
        "Score only the entries the masked tokenizer hid: its recorded mask is passed as the \
         loss function's `mask` argument. Needs a tokenizer with `mask:` behind the \
         prediction. False when absent.",
    ),
    field(
        "weight",
        Kind::PositiveNumber,
        "Multiplies the term in the training objective, a number greater than zero (a \
         constant expression such as `1 / 64`). 1 when absent.",
    ),
];

/// The settings of a `metric`'s block.
pub const METRIC: &[Setting] = &[field(
    "masked_only",
    Kind::Bool,
    "Evaluate only on the entries the masked tokenizer hid (its recorded mask is passed as \
     the metric's `mask` argument). False when absent.",
)];

/// The settings of a top-level block by its keyword: "train", "parallel",
/// "data", "loss" or "metric".
pub fn block(keyword: &str) -> Option<&'static [Setting]> {
    match keyword {
        "train" => Some(TRAIN),
        "parallel" => Some(PARALLEL),
        "data" => Some(DATA),
        "loss" => Some(LOSS),
        "metric" => Some(METRIC),
        _ => None,
    }
}

/// A setting by its path from a block keyword: ["train", "checkpoint", "every"].
pub fn lookup(path: &[&str]) -> Option<&'static Setting> {
    let (keyword, keys) = path.split_first()?;
    let (last, outer) = keys.split_last()?;
    let mut fields = block(keyword)?;
    for key in outer {
        fields = fields.iter().find(|s| s.key == *key)?.kind.fields();
    }
    fields.iter().find(|s| s.key == *last)
}

/// `` `a`, `b` or `c` ``.
pub(super) fn list(names: &[&str]) -> String {
    joined(names, "or")
}

/// `` `a`, `b` and `c` ``.
pub(super) fn all(names: &[&str]) -> String {
    joined(names, "and")
}

fn joined(names: &[&str], last_word: &str) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("{} {last_word} {last}", rest.join(", "))
        }
        _ => quoted.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Diagnostic;
    use crate::ir::data::{DataSpec, SplitRule};
    use crate::resolve::Options;
    use crate::source::MemoryLoader;
    use std::path::Path;

    /// Every setting of `settings`, nested blocks included, with its path.
    fn walk(prefix: &str, settings: &'static [Setting], out: &mut Vec<(String, &'static Setting)>) {
        for s in settings {
            let path = format!("{prefix}.{}", s.key);
            walk(&path, s.kind.fields(), out);
            out.push((path, s));
        }
    }

    fn every_setting() -> Vec<(String, &'static Setting)> {
        let mut out = Vec::new();
        for keyword in ["train", "parallel", "data"] {
            walk(keyword, block(keyword).unwrap(), &mut out);
        }
        out
    }

    #[test]
    fn every_setting_has_a_doc_of_full_sentences() {
        let all = every_setting();
        // train (12) + checkpoint (2) + eval (3), parallel (10), data (4).
        assert_eq!(all.len(), 31, "{all:?}");
        for (path, s) in all {
            let doc = s.doc.trim();
            assert!(!doc.is_empty(), "{path} has no doc");
            assert!(
                doc.ends_with('.'),
                "{path}'s doc does not end with a period: {doc}"
            );
            assert!(
                doc.starts_with(|c: char| c.is_uppercase() || c == '`'),
                "{path}'s doc does not start a sentence: {doc}"
            );
            assert!(
                !doc.contains("  "),
                "{path}'s doc has a double space: {doc}"
            );
        }
    }

    #[test]
    fn keys_are_unique_within_a_block() {
        for (path, s) in every_setting() {
            let fields = s.kind.fields();
            for (i, f) in fields.iter().enumerate() {
                assert!(
                    !fields[..i].iter().any(|g| g.key == f.key),
                    "{path}.{} twice",
                    f.key
                );
            }
        }
        for keyword in ["train", "parallel", "data"] {
            let fields = block(keyword).unwrap();
            for (i, f) in fields.iter().enumerate() {
                assert!(
                    !fields[..i].iter().any(|g| g.key == f.key),
                    "{keyword}.{}",
                    f.key
                );
            }
        }
    }

    #[test]
    fn settings_are_found_by_their_path() {
        let every = lookup(&["train", "checkpoint", "every"]).unwrap();
        assert_eq!((every.key, every.kind), ("every", Kind::Positive));
        assert_eq!(*every, CHECKPOINT[0]);
        assert_eq!(
            lookup(&["train", "eval", "split"]).unwrap().kind.values(),
            ["val", "test"]
        );
        assert!(lookup(&["parallel", "mesh"]).unwrap().required);
        assert_eq!(
            lookup(&["data", "within"]).unwrap().kind,
            Kind::ModalityName
        );
        assert_eq!(
            lookup(&["train", "optimizer"]).unwrap().kind.values(),
            builtins::OPTIMIZERS
        );
        // A block alone, a key that is not there, a path through a value.
        assert!(lookup(&[]).is_none());
        assert!(lookup(&["train"]).is_none());
        assert!(lookup(&["train", "checkpoint", "nope"]).is_none());
        assert!(lookup(&["train", "steps", "every"]).is_none());
        assert!(lookup(&["parallel", "mesh", "gpu"]).is_none());
        assert!(lookup(&["nope", "steps"]).is_none());
    }

    #[test]
    fn blocks_are_found_by_their_keyword() {
        assert_eq!(block("train"), Some(TRAIN));
        assert_eq!(block("parallel"), Some(PARALLEL));
        assert_eq!(block("data"), Some(DATA));
        assert!(block("nope").is_none());
        assert!(block("checkpoint").is_none());
    }

    #[test]
    fn kinds_say_what_they_take() {
        assert_eq!(
            Kind::Symbol(&["f32", "bf16", "f16"]).describe(),
            "one of `f32`, `bf16` or `f16`"
        );
        assert_eq!(
            Kind::Symbol(&["stop", "skip"]).describe(),
            "either `stop` or `skip`"
        );
        assert_eq!(Kind::UpTo(3).describe(), "a whole number from 0 to 3");
        assert_eq!(Kind::Split.values(), ["by_time", "by_session"]);
        assert!(Kind::Bool.values().is_empty() && Kind::Mesh.fields().is_empty());
        assert_eq!(Kind::Block(EVAL).fields(), EVAL);
        for (path, s) in every_setting() {
            assert!(!s.kind.describe().is_empty(), "{path}");
        }
    }

    /// The symbols and callees the schema offers are builtins, so a value
    /// the editor completes also resolves.
    #[test]
    fn offered_values_are_builtins() {
        for (path, s) in every_setting() {
            for v in s.kind.values() {
                let known = builtins::lookup(v).is_some() || builtins::is_type_name(v);
                assert!(known, "{path} offers `{v}`, which is not a builtin");
            }
        }
    }

    /// The data side of `text` checked in memory.
    fn data(text: &str) -> Result<DataSpec, Vec<Diagnostic>> {
        let mut loader = MemoryLoader::new();
        loader.insert("exp/main.enigma", text.to_string());
        let program =
            crate::resolve::load(&loader, Path::new("exp/main.enigma"), &Options::default())
                .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!program.has_errors(), "{:?}", program.diagnostics);
        let (diags, x) = super::super::check_program(&program, &loader, &[]);
        let x = x.unwrap_or_else(|| panic!("{diags:?}"));
        super::super::data::data_spec(&program, &x.graph, Path::new("/data/exp"))
    }

    /// A data item with `settings` in its block, and an intervals modality
    /// `ep` for `within`.
    fn data_item(settings: &str) -> String {
        format!(
            "dim T = 2s\ndim N per session\n\
             data rec = nwb(\"rec.nwb\") {{ {settings} }}\n\
             modality spikes: events<f64>[T, N] from rec.units.spike_times\n\
             modality ep: intervals<f64>[N] from rec.intervals.epochs\n"
        )
    }

    /// The data block's checker accepts every key of [`DATA`], and names
    /// exactly those keys for an unknown one.
    #[test]
    fn the_data_checker_takes_the_schema_s_keys() {
        let example = |kind: Kind| match kind {
            Kind::Duration | Kind::Extent => "T",
            Kind::Split => "by_session(train: 0.5, val: 0.5)",
            Kind::ModalityName => "ep",
            other => panic!("no example value of {other:?}"),
        };
        let settings: Vec<String> = DATA
            .iter()
            .map(|s| format!("{}: {}", s.key, example(s.kind)))
            .collect();
        let spec = data(&data_item(&settings.join(", "))).unwrap_or_else(|e| panic!("{e:?}"));
        let w = spec.sources[0].window.as_ref().unwrap();
        assert_eq!((w.length, w.stride), (2.0, 2.0));
        assert_eq!(w.rule, SplitRule::BySession([0.5, 0.5, 0.0]));
        assert_eq!(w.within.as_deref(), Some("ep"));
        // Each key on its own (beside the `window` the others need).
        for s in DATA {
            let one = match s.key {
                "window" => format!("window: {}", example(s.kind)),
                key => format!("window: T, {key}: {}", example(s.kind)),
            };
            if let Err(e) = data(&data_item(&one)) {
                panic!("`{}` is refused: {e:?}", s.key);
            }
        }
        // An unknown key is the checker's E0207, whose help lists exactly
        // the schema's keys.
        let mut loader = MemoryLoader::new();
        loader.insert("exp/main.enigma", data_item("window: T, pace: 2s"));
        let program =
            crate::resolve::load(&loader, Path::new("exp/main.enigma"), &Options::default())
                .unwrap_or_else(|e| panic!("{e:?}"));
        let (diags, _) = super::super::check_program(&program, &loader, &[]);
        let keys: Vec<&str> = DATA.iter().map(|s| s.key).collect();
        assert!(
            diags
                .iter()
                .any(|d| d.code == crate::diagnostics::Code::E0207
                    && d.help.as_deref() == Some(&format!("`data` accepts {}", list(&keys)))),
            "{diags:?}"
        );
    }
}
