//! What the data side must read, taken once from a checked experiment.
//!
//! [`DataSpec::from_program`] walks the root file's `data` and `modality`
//! items with the typed IR beside them and writes down, as plain values,
//! everything the loader needs: each source (synthetic, `.npy` or NWB, with
//! its path made absolute against the experiment's directory), how its
//! recordings are cut into windows and split, and for each modality the
//! model reads its kind, its per-sample dims with sizes and rates (from the
//! IR, where the checker bound the data-bound ones it could), where its
//! values come from, the `select` stages that keep some positions of a dim,
//! and its other transforms compiled into a [`Pipeline`].
//!
//! Nothing here reads a file: a spec can be built, inspected and tested
//! without the data, and every refusal is a [`DataError`] that names the
//! item.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::dataset::loader::DataError;
use crate::dataset::transform::Pipeline;
use crate::dataset::windows::SplitRule;
use crate::ir::types::quantity::Dimension;
use crate::ir::types::Value;
use crate::ir::Graph;
use crate::resolve::Program;
use crate::syntax::ast::{
    ConfigBlock, DataItem, EntryKind, Expr, ExprKind, ItemKind, ModalityItem,
};

mod modality;
use modality::Context;

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
        neurons: i64,
        seed: i64,
    },
    /// `npy(path, axes: [...], rate: r)`: one array, one session.
    Npy {
        path: PathBuf,
        axes: Option<Vec<Axis>>,
        /// Samples per second along the time axis, when given.
        rate: Option<f64>,
    },
    /// `nwb(path)`: an NWB (HDF5) file, one session.
    Nwb { path: PathBuf, rate: Option<f64> },
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

/// The four kinds of modality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModalityKind {
    Video,
    Series,
    Events,
    Intervals,
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
    /// The other stages, compiled, unfitted.
    pub pipeline: Pipeline,
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
    /// `item[.., 0] > 0.5`: data item `source` indexed by `index` (one
    /// `None` for the free axis, a position for every other axis),
    /// compared with `value`.
    Compare {
        source: usize,
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

/// A number a setting evaluates to, in base units, with its dimension.
fn quantity(program: &Program, e: &Expr) -> Option<(f64, Dimension)> {
    match crate::check::constant(program, e) {
        Value::Size(s) => s.as_const().map(|n| (n as f64, Dimension::COUNT)),
        Value::Float(f) => Some((f, Dimension::COUNT)),
        Value::Quantity(q) => Some((q.value, q.dim)),
        _ => None,
    }
}

fn duration(program: &Program, e: &Expr) -> Option<f64> {
    quantity(program, e)
        .filter(|(v, d)| *d == Dimension::TIME && v.is_finite() && *v > 0.0)
        .map(|(v, _)| v)
}

fn rate(program: &Program, e: &Expr) -> Option<f64> {
    quantity(program, e)
        .filter(|(v, d)| *d == Dimension::RATE && v.is_finite() && *v > 0.0)
        .map(|(v, _)| v)
}

/// A whole, non-negative number.
fn whole(program: &Program, e: &Expr) -> Option<usize> {
    quantity(program, e)
        .filter(|(v, d)| *d == Dimension::COUNT && *v >= 0.0 && v.fract() == 0.0)
        .and_then(|(v, _)| usize::try_from(v as u64).ok())
}

/// `a.b.c` as `["a", "b", "c"]`.
fn dotted(e: &Expr) -> Option<Vec<String>> {
    match &e.kind {
        ExprKind::Path(p) => Some(p.iter().map(|i| i.name.clone()).collect()),
        ExprKind::Field { base, name } => {
            let mut out = dotted(base)?;
            out.push(name.name.clone());
            Some(out)
        }
        _ => None,
    }
}

impl DataSpec {
    /// Reads the data side of a checked experiment: `graph` is the IR the
    /// checker returned for `program`, `base_dir` the directory of the
    /// `.enigma` file, against which data paths are resolved.
    pub fn from_program(
        program: &Program,
        graph: &Graph,
        base_dir: &Path,
    ) -> Result<DataSpec, DataError> {
        let Some(ast) = program.root_module().ast.as_ref() else {
            return Err(DataError::spec("the experiment did not parse"));
        };
        let mut per_session = BTreeSet::new();
        let mut time_dims = BTreeSet::new();
        for item in &ast.items {
            if let ItemKind::Dim(d) = &item.kind {
                if d.per_session.is_some() {
                    per_session.insert(d.name.name.clone());
                }
                if d.value
                    .as_ref()
                    .and_then(|v| duration(program, v))
                    .is_some()
                {
                    time_dims.insert(d.name.name.clone());
                }
            }
        }
        let mut sources = Vec::new();
        for item in &ast.items {
            if let ItemKind::Data(d) = &item.kind {
                sources.push(source(program, d, base_dir).map_err(|e| e.data(&d.name.name))?);
            }
        }
        let items: Vec<&ModalityItem> = ast
            .items
            .iter()
            .filter_map(|i| match &i.kind {
                ItemKind::Modality(m) => Some(m),
                _ => None,
            })
            .collect();
        let names: BTreeMap<&str, usize> = items
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.name.as_str(), i))
            .collect();
        let context = Context {
            program,
            graph,
            sources: &sources,
            modalities: &names,
            per_session: &per_session,
            time_dims: &time_dims,
        };
        let modalities = items
            .iter()
            .map(|m| context.modality(m).map_err(|e| e.modality(&m.name.name)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut inputs = Vec::with_capacity(graph.inputs.len());
        for input in &graph.inputs {
            match names.get(input.name.as_str()) {
                Some(&i) => inputs.push(i),
                None => {
                    return Err(DataError::spec(format!(
                        "the model reads `{}`, which is not a modality of the root file",
                        input.name
                    )))
                }
            }
        }
        Ok(DataSpec {
            base_dir: base_dir.to_path_buf(),
            sources,
            modalities,
            inputs,
        })
    }

    /// The index of the source named `name`.
    pub fn source_index(&self, name: &str) -> Option<usize> {
        self.sources.iter().position(|s| s.name == name)
    }

    /// The index of the modality named `name`.
    pub fn modality_index(&self, name: &str) -> Option<usize> {
        self.modalities.iter().position(|m| m.name == name)
    }
}

/// One `data` item as a [`SourceSpec`].
fn source(program: &Program, d: &DataItem, base: &Path) -> Result<SourceSpec, DataError> {
    let ExprKind::Call { callee, args } = &d.source.kind else {
        return Err(DataError::spec(
            "a data source is a call such as `npy(\"F.npy\")` or `synthetic.mouse_v1(...)`",
        ));
    };
    let callee = dotted(callee).unwrap_or_default();
    let named = |key: &str| {
        args.iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
            .map(|a| &a.value)
    };
    let path = || -> Result<PathBuf, DataError> {
        match args
            .iter()
            .find(|a| a.name.is_none())
            .map(|a| &a.value.kind)
        {
            Some(ExprKind::Str(p)) => Ok(base.join(p)),
            _ => Err(DataError::spec(
                "the first argument must be the file's path, a string",
            )),
        }
    };
    let given_rate = |key: &str| -> Result<Option<f64>, DataError> {
        named(key)
            .map(|e| {
                rate(program, e).ok_or_else(|| {
                    DataError::spec(format!("`{key}:` must be a positive rate such as `30Hz`"))
                })
            })
            .transpose()
    };
    let kind = match callee.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["synthetic", "mouse_v1"] => {
            let int = |key: &str, default: i64| -> Result<i64, DataError> {
                match named(key) {
                    None => Ok(default),
                    Some(e) => match crate::check::constant(program, e) {
                        Value::Size(s) => s.as_const().ok_or_else(|| {
                            DataError::spec(format!("`{key}:` must be a whole number"))
                        }),
                        _ => Err(DataError::spec(format!("`{key}:` must be a whole number"))),
                    },
                }
            };
            SourceKind::Synthetic {
                sessions: int("sessions", 1)?,
                neurons: int("neurons", 32)?,
                seed: int("seed", 0)?,
            }
        }
        ["npy"] => {
            let axes = match named("axes") {
                None => None,
                Some(Expr {
                    kind: ExprKind::List(items),
                    ..
                }) => Some(
                    items
                        .iter()
                        .map(|e| match &e.kind {
                            ExprKind::Path(p) if p.len() == 1 => Ok(Axis::Dim(p[0].name.clone())),
                            _ => whole(program, e).map(Axis::Size).ok_or_else(|| {
                                DataError::spec(
                                    "`axes:` lists the file's axes as dim names or sizes, such as `[N, T]`",
                                )
                            }),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Some(_) => {
                    return Err(DataError::spec(
                        "`axes:` must be a list such as `[N, T]`",
                    ))
                }
            };
            SourceKind::Npy {
                path: path()?,
                axes,
                rate: given_rate("rate")?,
            }
        }
        ["nwb"] => SourceKind::Nwb {
            path: path()?,
            rate: given_rate("rate")?,
        },
        ["suite2p"] => {
            return Err(DataError::spec(
                "the `suite2p` source is not read yet; declare its files as `npy` items (see examples/suite2p_calcium.enigma)",
            ))
        }
        _ => {
            return Err(DataError::spec(format!(
                "unknown data source `{}`; the sources are `synthetic.mouse_v1`, `npy` and `nwb`",
                callee.join(".")
            )))
        }
    };
    let window = match &d.config {
        Some(block) => window_settings(program, block)?,
        None => None,
    };
    Ok(SourceSpec {
        name: d.name.name.clone(),
        kind,
        window,
    })
}

/// The `window`, `stride`, `split` and `within` settings of a data block.
fn window_settings(
    program: &Program,
    block: &ConfigBlock,
) -> Result<Option<WindowSettings>, DataError> {
    let mut length = None;
    let mut stride = None;
    let mut rule = None;
    let mut within = None;
    for entry in &block.entries {
        let EntryKind::Setting { key, value } = &entry.kind else {
            return Err(DataError::spec(
                "a data block holds `key: value` settings only",
            ));
        };
        match key.name.as_str() {
            "window" | "stride" => {
                let v = duration(program, value).ok_or_else(|| {
                    DataError::spec(format!(
                        "`{}:` must be a positive duration such as `2s`",
                        key.name
                    ))
                })?;
                if key.name == "window" {
                    length = Some(v);
                } else {
                    stride = Some(v);
                }
            }
            "split" => rule = Some(split_rule(program, value)?),
            "within" => match dotted(value).as_deref() {
                Some([name]) => within = Some(name.clone()),
                _ => {
                    return Err(DataError::spec(
                        "`within:` names an intervals modality, such as `within: epochs`",
                    ))
                }
            },
            other => {
                return Err(DataError::spec(format!(
                    "unknown setting `{other}` (a data block takes `window`, `stride`, `split` and `within`)"
                )))
            }
        }
    }
    let Some(length) = length else {
        if stride.is_some() || rule.is_some() || within.is_some() {
            return Err(DataError::spec(
                "`stride`, `split` and `within` need a `window:` length",
            ));
        }
        return Ok(None);
    };
    Ok(Some(WindowSettings {
        length,
        stride: stride.unwrap_or(length),
        rule: rule.unwrap_or(SplitRule::ByTime([0.8, 0.1, 0.1])),
        within,
    }))
}

/// `by_time(train: 0.8, val: 0.1, test: 0.1)` or `by_session(...)`.
fn split_rule(program: &Program, e: &Expr) -> Result<SplitRule, DataError> {
    let bad = || {
        DataError::spec(
            "`split:` is `by_time(train: f, val: f, test: f)` or `by_session(...)` with fractions",
        )
    };
    let ExprKind::Call { callee, args } = &e.kind else {
        return Err(bad());
    };
    let mut fractions = [0.0; 3];
    for a in args {
        let Some(name) = &a.name else {
            return Err(bad());
        };
        let slot = match name.name.as_str() {
            "train" => 0,
            "val" => 1,
            "test" => 2,
            _ => return Err(bad()),
        };
        fractions[slot] = match quantity(program, &a.value) {
            Some((v, d)) if d == Dimension::COUNT => v,
            _ => return Err(bad()),
        };
    }
    match dotted(callee).as_deref() {
        Some([f]) if f == "by_time" => Ok(SplitRule::ByTime(fractions)),
        Some([f]) if f == "by_session" => Ok(SplitRule::BySession(fractions)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
