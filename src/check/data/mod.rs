//! The data side of a checked experiment, read once into the IR's
//! [`DataSpec`]: each `data` item (synthetic, `.npy` or NWB, with its path
//! made absolute against the experiment's directory), how its recordings
//! are cut into windows and split, and for each modality its kind, its
//! per-sample dims with sizes and rates (from the graph, where the checker
//! bound the data-bound ones it could), where its values come from, its
//! `select` stages and its other transforms compiled (`transform.rs`).
//!
//! Nothing here reads a file. What the runtime cannot read (an unknown
//! source, a series without a sampled time dim, a transform that is not
//! elementwise) is a diagnostic E0221 at the item: `enigma check` accepts
//! such an experiment (its model and layout are sound), and `enigma run`
//! stops with these diagnostics before any work.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::base::{FileId, Span};
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::data::{Axis, DataSpec, SourceKind, SourceSpec, SplitRule, WindowSettings};
use crate::ir::types::{Dimension, Value};
use crate::ir::Graph;
use crate::resolve::Program;
use crate::syntax::ast::{
    ConfigBlock, DataItem, EntryKind, Expr, ExprKind, ItemKind, ModalityItem,
};

mod modality;
mod transform;
use modality::Context;

/// Why an item cannot be read, and where, when a part of it is to blame.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Problem {
    pub message: String,
    pub at: Option<Span>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            at: None,
        }
    }

    /// The same problem, placed at `span` (unless it is placed already).
    pub fn at(mut self, span: Span) -> Problem {
        self.at.get_or_insert(span);
        self
    }

    fn diagnostic(self, file: FileId, what: &str, item: Span) -> Diagnostic {
        Diagnostic::new(Code::E0221, format!("{what}: {}", self.message))
            .primary(
                file,
                self.at.unwrap_or(item),
                "the runtime cannot read this",
            )
            .help("docs/data.md lists the sources, settings and transforms `enigma run` reads")
    }
}

/// A number a setting evaluates to, in base units, with its dimension.
fn quantity(program: &Program, e: &Expr) -> Option<(f64, Dimension)> {
    match super::constant(program, e) {
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

/// Reads the data side of a checked experiment: `graph` is its model, and
/// relative paths resolve against `base_dir`, the directory of the
/// `.enigma` file. Every item that cannot be read is one diagnostic.
pub(super) fn data_spec(
    program: &Program,
    graph: &Graph,
    base_dir: &Path,
) -> Result<DataSpec, Vec<Diagnostic>> {
    let root = program.root_module();
    let file = root.file;
    let Some(ast) = root.ast.as_ref() else {
        return Ok(DataSpec {
            base_dir: base_dir.to_path_buf(),
            sources: Vec::new(),
            modalities: Vec::new(),
            inputs: Vec::new(),
        });
    };
    let mut problems = Vec::new();
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
            match source(program, d, base_dir) {
                Ok(s) => sources.push(s),
                Err(p) => {
                    let what = format!("data `{}`", d.name.name);
                    problems.push(p.diagnostic(file, &what, d.name.span));
                    // Later items refer to sources by position: keep one
                    // in its place.
                    sources.push(SourceSpec {
                        name: d.name.name.clone(),
                        kind: SourceKind::Synthetic {
                            sessions: 0,
                            neurons: Vec::new(),
                            seed: 0,
                            frame: (0, 0),
                        },
                        window: None,
                    });
                }
            }
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
    let mut modalities = Vec::with_capacity(items.len());
    for m in &items {
        match context.modality(m) {
            Ok(spec) => modalities.push(spec),
            Err(p) => {
                let what = format!("modality `{}`", m.name.name);
                problems.push(p.diagnostic(file, &what, m.name.span));
            }
        }
    }
    let mut inputs = Vec::with_capacity(graph.inputs.len());
    for input in &graph.inputs {
        match names.get(input.name.as_str()) {
            Some(&i) => inputs.push(i),
            None => problems.push(
                Diagnostic::new(
                    Code::E0221,
                    format!(
                        "the model reads `{}`, which is not a modality of the root file",
                        input.name
                    ),
                )
                .primary(
                    file,
                    Span::default(),
                    "the runtime feeds modalities of this file",
                )
                .help("declare the modality in the experiment's own file"),
            ),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(DataSpec {
        base_dir: base_dir.to_path_buf(),
        sources,
        modalities,
        inputs,
    })
}

/// One `data` item as a [`SourceSpec`].
fn source(program: &Program, d: &DataItem, base: &Path) -> Result<SourceSpec, Problem> {
    let ExprKind::Call {
        callee: callee_expr,
        args,
    } = &d.source.kind
    else {
        return Err(Problem::new(
            "a data source is a call such as `npy(\"F.npy\")` or `synthetic.mouse_v1(...)`",
        )
        .at(d.source.span));
    };
    let callee = dotted(callee_expr).unwrap_or_default();
    let named = |key: &str| {
        args.iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
            .map(|a| &a.value)
    };
    // The first argument: one path, or a list of them; each may be a file,
    // a folder or a glob (`source::files`).
    let paths = || -> Result<Vec<PathBuf>, Problem> {
        let bad = || {
            Problem::new(
                "the first argument must be the files' path, a string (a file, a folder or a glob such as `\"sessions/*/F.npy\"`), or a list of them",
            )
            .at(d.source.span)
        };
        let first = args.iter().find(|a| a.name.is_none()).ok_or_else(bad)?;
        match &first.value.kind {
            ExprKind::Str(p) => Ok(vec![base.join(p)]),
            ExprKind::List(items) if !items.is_empty() => items
                .iter()
                .map(|e| match &e.kind {
                    ExprKind::Str(p) => Ok(base.join(p)),
                    _ => Err(bad()),
                })
                .collect(),
            _ => Err(bad()),
        }
    };
    let given_rate = |key: &str| -> Result<Option<f64>, Problem> {
        named(key)
            .map(|e| {
                rate(program, e).ok_or_else(|| {
                    Problem::new(format!("`{key}:` must be a positive rate such as `30Hz`"))
                        .at(e.span)
                })
            })
            .transpose()
    };
    let kind = match callee.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["synthetic", "mouse_v1"] => {
            let int = |key: &str, default: i64| -> Result<i64, Problem> {
                match named(key) {
                    None => Ok(default),
                    Some(e) => match super::constant(program, e) {
                        Value::Size(s) => s.as_const().ok_or_else(|| {
                            Problem::new(format!("`{key}:` must be a whole number"))
                        }),
                        _ => Err(Problem::new(format!("`{key}:` must be a whole number"))),
                    },
                }
            };
            let sessions = int("sessions", 1)?;
            // One count, or a list with one per session.
            let neurons = match named("neurons") {
                Some(Expr {
                    kind: ExprKind::List(items),
                    span,
                    ..
                }) => {
                    let counts = items
                        .iter()
                        .map(|e| {
                            whole(program, e).map(|v| v as i64).ok_or_else(|| {
                                Problem::new("`neurons:` lists whole numbers, one per session")
                                    .at(e.span)
                            })
                        })
                        .collect::<Result<Vec<i64>, _>>()?;
                    if counts.len() as i64 != sessions {
                        return Err(Problem::new(format!(
                            "`neurons:` lists {} counts for {sessions} sessions; give one per session, or one number for all",
                            counts.len()
                        ))
                        .at(*span));
                    }
                    counts
                }
                _ => vec![int("neurons", crate::source::synthetic::DEFAULT_NEURONS)?],
            };
            SourceKind::Synthetic {
                sessions,
                neurons,
                seed: int("seed", 0)?,
                frame: (
                    int("height", crate::source::synthetic::FRAME.0 as i64)?,
                    int("width", crate::source::synthetic::FRAME.1 as i64)?,
                ),
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
                                Problem::new(
                                    "`axes:` lists the file's axes as dim names or sizes, such as `[N, T]`",
                                )
                            }),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Some(_) => {
                    return Err(Problem::new(
                        "`axes:` must be a list such as `[N, T]`",
                    ))
                }
            };
            SourceKind::Npy {
                paths: paths()?,
                axes,
                rate: given_rate("rate")?,
            }
        }
        ["nwb"] => SourceKind::Nwb {
            paths: paths()?,
            rate: given_rate("rate")?,
        },
        ["suite2p"] => SourceKind::Suite2p {
            paths: paths()?,
            rate: given_rate("rate")?,
        },
        _ => {
            return Err(Problem::new(format!(
                "unknown data source `{}`; the sources are `synthetic.mouse_v1`, `npy`, `nwb` and `suite2p`",
                callee.join(".")
            ))
            .at(callee_expr.span))
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

/// The `window`, `stride`, `split` and `within` settings of a data block
/// (`schema::DATA`).
fn window_settings(
    program: &Program,
    block: &ConfigBlock,
) -> Result<Option<WindowSettings>, Problem> {
    let mut length = None;
    let mut stride = None;
    let mut rule = None;
    let mut within = None;
    for entry in &block.entries {
        let EntryKind::Setting { key, value } = &entry.kind else {
            return Err(
                Problem::new("a data block holds `key: value` settings only").at(entry.span),
            );
        };
        match key.name.as_str() {
            "window" | "stride" => {
                let v = duration(program, value).ok_or_else(|| {
                    Problem::new(format!(
                        "`{}:` must be a positive duration such as `2s`",
                        key.name
                    ))
                    .at(value.span)
                })?;
                if key.name == "window" {
                    length = Some(v);
                } else {
                    stride = Some(v);
                }
            }
            "split" => rule = Some(split_rule(program, value).map_err(|p| p.at(value.span))?),
            "within" => match dotted(value).as_deref() {
                Some([name]) => within = Some(name.clone()),
                _ => {
                    return Err(Problem::new(
                        "`within:` names an intervals modality, such as `within: epochs`",
                    ))
                }
            },
            // The keys the message names are the schema's, so the two
            // agree (`schema::tests` checks each is taken above).
            other => {
                let keys: Vec<&str> = super::schema::DATA.iter().map(|s| s.key).collect();
                return Err(Problem::new(format!(
                    "unknown setting `{other}` (a data block takes {})",
                    super::schema::all(&keys)
                ))
                .at(key.span));
            }
        }
    }
    let Some(length) = length else {
        if stride.is_some() || rule.is_some() || within.is_some() {
            return Err(Problem::new(
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
fn split_rule(program: &Program, e: &Expr) -> Result<SplitRule, Problem> {
    let bad = || {
        Problem::new(
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
