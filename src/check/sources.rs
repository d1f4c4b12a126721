//! Modalities against their data: the shapes the files really have.
//!
//! Where a source is known at compile time, its header is read (never its
//! data) through [`SourceLoader::probe`] and compared with the modalities
//! drawn from it:
//!
//! - an `npy(path, axes: [N, T])` file must have as many axes as `axes`
//!   names (or, without `axes:`, as the modality has dims, in the same
//!   order); each axis named by a constant must have that size; an axis
//!   named by a dim only data binds (`N`) binds it; the time axis is the
//!   recording's length and is not compared with the window. Two files
//!   that disagree on a dim's size are an error that says which axis of
//!   which file, and suggests the transposition when that would agree.
//! - an `nwb(path)` file must hold the dataset a modality names
//!   (`rec.units.spike_times` is `units/spike_times`); the number of units
//!   binds the modality's unit dim, the number of intervals its count.
//! - `synthetic.mouse_v1(neurons: 512)` binds the neuron dim of the
//!   modalities drawn from its `response`.
//!
//! A file that cannot be read is a warning (W0201): the experiment may be
//! checked on a machine without the data. A file that can be read but is
//! not what it claims is an error (E0219). Dims bound here flow into the
//! elaboration, so parameter counts and FLOPs become numbers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::consts::Consts;
use crate::base::FileId;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::types::Value;
use crate::source::probe::{ArrayHeader, DataFormat, DataHeader, ProbeErrorKind};
use crate::source::SourceLoader;
use crate::syntax::ast::*;

/// What an axis of a file is called in the experiment.
#[derive(Clone, Debug, PartialEq)]
enum Axis {
    /// A dim name (`N`, `T`).
    Name(String),
    /// A literal size (`2`).
    Size(i64),
}

/// A data item whose source is known at compile time.
struct Source<'a> {
    item: &'a DataItem,
    kind: SourceKind,
    path_span: Span,
    axes: Option<(Vec<Axis>, Span)>,
    /// The `rate:` a file source gives, for files that do not record one.
    rate: Option<&'a Expr>,
}

enum SourceKind {
    File(PathBuf, DataFormat),
    /// `synthetic.mouse_v1(...)`: its literal neuron count and frame size
    /// (`None` where an argument is not a literal).
    MouseV1 {
        neurons: Option<i64>,
        frame: (Option<i64>, Option<i64>),
    },
}

/// One binding of a data-bound dim, with where it came from.
pub(super) struct Binding {
    size: i64,
    what: String,
    at: Span,
}

/// Checks the root file's modalities against their sources; returns the
/// sizes of the data-bound dims the sources determine.
pub(super) fn check_sources(c: &mut Consts, loader: &dyn SourceLoader) -> Vec<(String, i64)> {
    let program = c.program;
    let root = program.root_module();
    let Some(ast) = &root.ast else {
        return Vec::new();
    };
    let file = root.file;
    let base = program
        .sources
        .get(file)
        .path
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut sources: BTreeMap<String, (Source, Option<DataHeader>)> = BTreeMap::new();
    for item in &ast.items {
        let ItemKind::Data(d) = &item.kind else {
            continue;
        };
        let Some(src) = source(d, &base) else {
            continue;
        };
        let header = match &src.kind {
            SourceKind::File(path, format) => match loader.probe(path, *format) {
                Ok(h) => Some(h),
                Err(e) => {
                    let diag = if matches!(e.kind, ProbeErrorKind::Io | ProbeErrorKind::Unsupported)
                    {
                        Diagnostic::new(Code::W0201, format!("cannot read `{}`: {}", path.display(), e.message))
                            .primary(file, src.path_span, "not checked against this file")
                            .help("the modalities drawn from it are checked once the file is readable here; run `enigma check` where the data lives to compare shapes")
                    } else {
                        Diagnostic::new(
                            Code::E0219,
                            format!(
                                "`{}` is not a valid {} file: {}",
                                path.display(),
                                format.name(),
                                e.message
                            ),
                        )
                        .primary(file, src.path_span, "unreadable data file")
                        .help("point the source at the right file, or re-export it")
                    };
                    c.diags.push(diag);
                    None
                }
            },
            SourceKind::MouseV1 { .. } => None,
        };
        sources.insert(d.name.name.clone(), (src, header));
    }
    let mut bound: BTreeMap<String, Binding> = BTreeMap::new();
    // The raw axes of every file first, so two files can be compared.
    for (name, (src, header)) in &sources {
        if let (Some(DataHeader::Array(h)), Some((axes, span))) = (header, &src.axes) {
            check_axes(c, file, name, src, h, axes, *span, &mut bound);
        }
    }
    let _ = &bound;
    let mut modal: BTreeMap<String, Binding> = BTreeMap::new();
    for item in &ast.items {
        let ItemKind::Modality(m) = &item.kind else {
            continue;
        };
        let Some((data, field)) = origin(&m.source) else {
            continue;
        };
        let Some((src, header)) = sources.get(&data) else {
            continue;
        };
        let dims = declared(c, m);
        let selected: Vec<String> = selected_dims(m);
        match (&src.kind, header) {
            (SourceKind::MouseV1 { neurons, frame }, _) => {
                let name = field.join(".");
                let provided = crate::source::synthetic::mouse_v1_field(&name, *neurons, *frame);
                super::provided::modality_vs_field(
                    c,
                    file,
                    m,
                    &data,
                    &name,
                    provided,
                    &crate::source::synthetic::FIELDS,
                    &mut modal,
                );
            }
            (_, Some(DataHeader::Array(h))) => {
                modality_vs_array(c, file, m, src, h, &dims, &selected, &mut modal);
                let rate = src.rate.and_then(|r| match c.eval(r) {
                    Ok(Value::Quantity(q)) if q.dim == crate::ir::types::Dimension::RATE => {
                        Some(q.value)
                    }
                    _ => None,
                });
                if let Some(want) = rate {
                    super::provided::modality_vs_rate(c, file, m, &data, want);
                }
            }
            (_, Some(DataHeader::Nwb(sets))) => {
                modality_vs_nwb(c, file, m, &field, sets, &dims, &mut modal);
            }
            _ => {}
        }
    }
    modal.into_iter().map(|(k, b)| (k, b.size)).collect()
}

/// How a modality names one of its dims.
#[derive(Clone, Debug, PartialEq)]
enum DimRef {
    /// The window's time dim (a duration, or a dim with a rate).
    Time,
    /// A size known now.
    Const(i64),
    /// A dim only data binds.
    Symbol(String),
    Other,
}

fn declared(c: &mut Consts, m: &ModalityItem) -> Vec<(DimRef, Span)> {
    let TypeKind::Named { shape: Some(s), .. } = &m.ty.kind else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for sd in &s.dims {
        let ShapeDimKind::Dim { size, rate } = &sd.kind else {
            continue;
        };
        let r = if rate.is_some() {
            DimRef::Time
        } else {
            match c.eval(size) {
                Ok(Value::Size(v)) => match (v.as_const(), v.symbols().as_slice()) {
                    (Some(k), _) => DimRef::Const(k),
                    (None, [one]) if v == crate::ir::types::Size::symbol(one) => {
                        DimRef::Symbol(one.to_string())
                    }
                    _ => DimRef::Other,
                },
                Ok(Value::Quantity(_)) => DimRef::Time,
                _ => DimRef::Other,
            }
        };
        out.push((r, sd.span));
    }
    out
}

/// `npy("F.npy", axes: [N, T])`, `nwb("rec.nwb")`, `synthetic.mouse_v1(..)`.
fn source<'a>(d: &'a DataItem, base: &Path) -> Option<Source<'a>> {
    let ExprKind::Call { callee, args } = &d.source.kind else {
        return None;
    };
    let names: Vec<String> = match origin(callee) {
        Some((first, rest)) => std::iter::once(first).chain(rest).collect(),
        None => return None,
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match names.as_slice() {
        ["npy"] | ["nwb"] => {
            let first = args.iter().find(|a| a.name.is_none())?;
            let ExprKind::Str(path) = &first.value.kind else {
                return None;
            };
            let format = if names[0] == "npy" {
                DataFormat::Npy
            } else {
                DataFormat::Nwb
            };
            let axes = args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "axes"))
                .and_then(|a| {
                    let ExprKind::List(items) = &a.value.kind else {
                        return None;
                    };
                    let axes = items
                        .iter()
                        .map(|e| match &e.kind {
                            ExprKind::Path(p) if p.len() == 1 => {
                                Some(Axis::Name(p[0].name.clone()))
                            }
                            ExprKind::Number(n) if n.is_int => Some(Axis::Size(n.value as i64)),
                            _ => None,
                        })
                        .collect::<Option<Vec<Axis>>>()?;
                    Some((axes, a.value.span))
                });
            let rate = args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "rate"))
                .map(|a| &a.value);
            Some(Source {
                item: d,
                kind: SourceKind::File(base.join(path), format),
                path_span: first.value.span,
                axes,
                rate,
            })
        }
        ["synthetic", "mouse_v1"] => {
            // Absent, the default; not a literal, unknown here.
            let int = |key: &str, default: i64| match args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
            {
                None => Some(default),
                Some(a) => match &a.value.kind {
                    ExprKind::Number(v) if v.is_int => Some(v.value as i64),
                    _ => None,
                },
            };
            let (h, w) = crate::source::synthetic::FRAME;
            Some(Source {
                item: d,
                kind: SourceKind::MouseV1 {
                    neurons: int("neurons", crate::source::synthetic::DEFAULT_NEURONS),
                    frame: (int("height", h as i64), int("width", w as i64)),
                },
                path_span: d.source.span,
                axes: None,
                rate: None,
            })
        }
        _ => None,
    }
}

/// `from rec.units.spike_times` as ("rec", ["units", "spike_times"]).
fn origin(e: &Expr) -> Option<(String, Vec<String>)> {
    let mut fields = Vec::new();
    let mut at = e;
    loop {
        match &at.kind {
            ExprKind::Field { base, name } => {
                fields.push(name.name.clone());
                at = base;
            }
            ExprKind::Path(p) => {
                let mut names = p.iter().map(|i| i.name.clone());
                let first = names.next()?;
                let mut rest: Vec<String> = names.collect();
                fields.reverse();
                rest.extend(fields);
                return Some((first, rest));
            }
            _ => return None,
        }
    }
}

/// Dims whose size a transform changes (`select(N, where: ...)`), so the
/// file's size does not bind them.
fn selected_dims(m: &ModalityItem) -> Vec<String> {
    m.transforms
        .iter()
        .filter_map(|t| match &t.kind {
            ExprKind::Call { callee, args } => {
                match (&callee.kind, args.first().map(|a| &a.value.kind)) {
                    (ExprKind::Path(f), Some(ExprKind::Path(d)))
                        if f.last().is_some_and(|n| n.name == "select") =>
                    {
                        d.first().map(|i| i.name.clone())
                    }
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn check_axes(
    c: &mut Consts,
    file: FileId,
    name: &str,
    src: &Source,
    h: &ArrayHeader,
    axes: &[Axis],
    span: Span,
    bound: &mut BTreeMap<String, Binding>,
) {
    if axes.len() != h.shape.len() {
        c.diags.push(
            Diagnostic::new(
                Code::E0219,
                format!(
                    "`axes:` names {} axes, but `{name}`'s file has {} (shape {})",
                    axes.len(),
                    h.shape.len(),
                    crate::source::probe::npy::shape_text(&h.shape)
                ),
            )
            .primary(file, span, "wrong number of axes")
            .secondary(file, src.path_span, "the file")
            .help("name every axis of the file, outermost first"),
        );
        return;
    }
    for (i, (a, &size)) in axes.iter().zip(&h.shape).enumerate() {
        match a {
            Axis::Size(k) if *k as u64 != size => {
                c.diags.push(
                    Diagnostic::new(Code::E0219, format!("axis {i} of `{name}`'s file has {size} positions, but `axes:` says {k}"))
                        .primary(file, span, "does not match the file")
                        .help("write the size the file has, or a dim name to bind it"),
                );
            }
            Axis::Name(n) => {
                let what = format!(
                    "axis {i} of `{name}` (shape {})",
                    crate::source::probe::npy::shape_text(&h.shape)
                );
                if let Ok(Value::Size(v)) = c.item_value(c.program.root, n) {
                    if let Some(k) = v.as_const() {
                        if k as u64 != size {
                            c.diags.push(
                                Diagnostic::new(
                                    Code::E0219,
                                    format!("`{n}` is {k}, but {what} has {size}"),
                                )
                                .primary(file, span, "does not match the file")
                                .help(transposed_hint(axes, h)),
                            );
                        }
                        continue;
                    }
                    if v.symbols().len() == 1 {
                        let help = format!(
                            "a dim has one size in every file, so one of these files lists its axes in the wrong order; a file of ROIs x frames is `axes: [{n}, T]`"
                        );
                        bind(c, file, bound, n, size as i64, what, span, &help);
                    }
                }
            }
            _ => {}
        }
    }
}

fn transposed_hint(axes: &[Axis], h: &ArrayHeader) -> String {
    if axes.len() == 2 {
        let names: Vec<String> = axes
            .iter()
            .rev()
            .map(|a| match a {
                Axis::Name(n) => n.clone(),
                Axis::Size(k) => k.to_string(),
            })
            .collect();
        format!(
            "the file's shape is {}; if its axes are the other way round, write `axes: [{}]`",
            crate::source::probe::npy::shape_text(&h.shape),
            names.join(", ")
        )
    } else {
        format!(
            "the file's shape is {}; list its axes in the file's order",
            crate::source::probe::npy::shape_text(&h.shape)
        )
    }
}

/// Binds data-bound dim `n` to `size`, or reports that an earlier
/// binding gave it another size (with `help` saying what to check).
#[allow(clippy::too_many_arguments)]
pub(super) fn bind(
    c: &mut Consts,
    file: FileId,
    bound: &mut BTreeMap<String, Binding>,
    n: &str,
    size: i64,
    what: String,
    span: Span,
    help: &str,
) {
    match bound.get(n) {
        Some(b) if b.size != size => {
            c.diags.push(
                Diagnostic::new(
                    Code::E0219,
                    format!(
                        "`{n}` is {} from {}, but {size} from {what}",
                        b.size, b.what
                    ),
                )
                .primary(file, span, format!("`{n}` = {size} here"))
                .secondary(file, b.at, format!("`{n}` = {} here", b.size))
                .help(help),
            );
        }
        Some(_) => {}
        None => {
            bound.insert(
                n.to_string(),
                Binding {
                    size,
                    what,
                    at: span,
                },
            );
        }
    }
}

/// Help for two modalities that disagree on a dim.
pub(super) const SHARED_DIM: &str =
    "modalities that share a dim must agree on its size; check which file has which layout";

#[allow(clippy::too_many_arguments)]
fn modality_vs_array(
    c: &mut Consts,
    file: FileId,
    m: &ModalityItem,
    src: &Source,
    h: &ArrayHeader,
    dims: &[(DimRef, Span)],
    selected: &[String],
    bound: &mut BTreeMap<String, Binding>,
) {
    let data = &src.item.name.name;
    let shape = crate::source::probe::npy::shape_text(&h.shape);
    // The element kind: integer ids cannot come from a float file.
    let declared = match &m.ty.kind {
        TypeKind::Named { args, .. } => args.first().and_then(|a| match &a.kind {
            TypeKind::Named { name, .. } => crate::ir::types::DType::parse(&name.name),
            _ => None,
        }),
        _ => None,
    };
    let file_float = h.dtype.starts_with('f');
    if let Some(d) = declared {
        if d.is_int() && file_float || d.is_float() && !file_float && h.dtype != "bool" {
            c.diags.push(
                Diagnostic::new(Code::E0219, format!("`{}` is declared `{}`, but `{data}`'s file holds `{}`", m.name.name, d.as_str(), h.dtype))
                    .primary(file, m.ty.span, "declared element type")
                    .secondary(file, src.path_span, format!("a `{}` array of shape {shape}", h.dtype))
                    .help("declare the dtype the file holds (integers convert to any integer type, floats to any float type)"),
            );
            return;
        }
    }
    // Which file axis each declared dim reads.
    let pairs: Vec<(usize, &(DimRef, Span))> = match &src.axes {
        Some((axes, _)) => {
            let mut pairs = Vec::new();
            for d in dims {
                let name = match &d.0 {
                    DimRef::Symbol(s) => Some(s.clone()),
                    _ => None,
                };
                if let Some(i) =
                    name.and_then(|n| axes.iter().position(|a| *a == Axis::Name(n.clone())))
                {
                    pairs.push((i, d));
                }
            }
            pairs
        }
        None => {
            if dims.len() != h.shape.len() {
                c.diags.push(
                    Diagnostic::new(Code::E0219, format!("`{}` has {} dims, but `{data}`'s file has {} axes (shape {shape})", m.name.name, dims.len(), h.shape.len()))
                        .primary(file, m.ty.span, "declared shape")
                        .secondary(file, src.path_span, format!("shape {shape}"))
                        .help("declare the file's axes (`axes: [...]` on the data item) or reshape the file"),
                );
                return;
            }
            dims.iter().enumerate().collect()
        }
    };
    for (i, (d, span)) in pairs {
        let size = h.shape[i] as i64;
        match d {
            DimRef::Const(k) if *k != size => {
                let mut diag = Diagnostic::new(Code::E0219, format!("`{}` declares {k} here, but axis {i} of `{data}`'s file has {size} (shape {shape})", m.name.name))
                    .primary(file, *span, format!("{k} declared"))
                    .secondary(file, src.path_span, format!("shape {shape}"));
                diag = if h.shape.iter().any(|&s| s as i64 == *k) {
                    diag.help("the file has an axis of that size elsewhere: its axes are in another order; say which with `axes: [...]` on the data item")
                } else {
                    diag.help("declare the size the file has")
                };
                c.diags.push(diag);
            }
            DimRef::Symbol(s) if !selected.contains(s) => {
                bind(
                    c,
                    file,
                    bound,
                    s,
                    size,
                    format!("axis {i} of `{data}` (shape {shape})"),
                    *span,
                    SHARED_DIM,
                );
            }
            _ => {}
        }
    }
}

fn modality_vs_nwb(
    c: &mut Consts,
    file: FileId,
    m: &ModalityItem,
    field: &[String],
    sets: &BTreeMap<String, ArrayHeader>,
    dims: &[(DimRef, Span)],
    bound: &mut BTreeMap<String, Binding>,
) {
    let path = field.join("/");
    let exists =
        sets.contains_key(&path) || sets.keys().any(|k| k.starts_with(&format!("{path}/")));
    if !exists {
        let mut groups: Vec<&str> = sets.keys().filter_map(|k| k.split('/').next()).collect();
        groups.dedup();
        c.diags.push(
            Diagnostic::new(Code::E0219, format!("the NWB file has no `{path}`"))
                .primary(file, m.source.span, "not in the file")
                .help(format!(
                    "the file's top-level groups are: {}",
                    groups.join(", ")
                )),
        );
        return;
    }
    let kind = match &m.ty.kind {
        TypeKind::Named { name, .. } => name.name.as_str(),
        _ => "",
    };
    // Ragged unit columns: the index has one entry per unit.
    let count = match kind {
        "events" => sets.get(&format!("{path}_index")).or_else(|| {
            let group = path.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            sets.get(&format!("{group}/id"))
        }),
        "intervals" => sets.get(&format!("{path}/start_time")),
        _ => None,
    };
    let (Some(h), Some((DimRef::Symbol(s), span))) = (count, dims.last()) else {
        return;
    };
    if let Some(&n) = h.shape.first() {
        bind(
            c,
            file,
            bound,
            s,
            n as i64,
            format!("`{path}` ({n})"),
            *span,
            SHARED_DIM,
        );
    }
}
