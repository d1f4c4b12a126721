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
use crate::source::files::{self, Layout};
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
    /// Files of one format, one per session, as the patterns expand.
    Files(Vec<PathBuf>, DataFormat),
    /// suite2p plane folders, one per session; a field is the folder's
    /// `FIELD.npy`, ROI-major.
    Suite2p(Vec<PathBuf>),
    /// `synthetic.mouse_v1(...)`: its literal neuron count and frame size
    /// (`None` where an argument is not a literal).
    MouseV1 {
        neurons: Option<i64>,
        frame: (Option<i64>, Option<i64>),
    },
}

impl Source<'_> {
    /// The file each session reads for `field`, with its format.
    fn files(&self, field: &[String]) -> Vec<(PathBuf, DataFormat)> {
        match &self.kind {
            SourceKind::Files(files, format) => {
                files.iter().map(|f| (f.clone(), *format)).collect()
            }
            SourceKind::Suite2p(planes) => match field {
                [f] => planes
                    .iter()
                    .map(|p| (p.join(format!("{f}.npy")), DataFormat::Npy))
                    .collect(),
                _ => Vec::new(),
            },
            SourceKind::MouseV1 { .. } => Vec::new(),
        }
    }

    /// How messages name session `s`'s file: by its path and session when
    /// the item has several, else by the item.
    fn file_label(&self, path: &Path, s: usize, of: usize) -> FileLabel {
        if of > 1 {
            let named = format!("session {s}'s file `{}`", path.display());
            FileLabel {
                file: named.clone(),
                item: named.clone(),
                nwb: named,
            }
        } else {
            let name = &self.item.name.name;
            FileLabel {
                file: format!("`{name}`'s file"),
                item: format!("`{name}`"),
                nwb: "the NWB file".to_string(),
            }
        }
    }
}

/// How messages name one file of a data item.
struct FileLabel {
    /// As "the file": "`fluo`'s file", "session 1's file `…/F.npy`".
    file: String,
    /// As what has axes: "`fluo`", or the session's file.
    item: String,
    /// As the NWB file that lacks a dataset.
    nwb: String,
}

/// One binding of a data-bound dim, with where it came from.
pub(super) struct Binding {
    size: i64,
    what: String,
    at: Span,
}

/// The headers read so far, by file, so a file serving two modalities is
/// probed once.
type Headers = BTreeMap<PathBuf, Option<DataHeader>>;

/// Probes `path` once, reporting a file that cannot be read (W0201) or is
/// not what it claims (E0219) at `span`.
fn header<'h>(
    c: &mut Consts,
    file: FileId,
    loader: &dyn SourceLoader,
    headers: &'h mut Headers,
    path: &Path,
    format: DataFormat,
    span: Span,
) -> Option<&'h DataHeader> {
    if !headers.contains_key(path) {
        let got = match loader.probe(path, format) {
            Ok(h) => Some(h),
            Err(e) => {
                let diag = if matches!(e.kind, ProbeErrorKind::Io | ProbeErrorKind::Unsupported) {
                    Diagnostic::new(Code::W0201, format!("cannot read `{}`: {}", path.display(), e.message))
                        .primary(file, span, "not checked against this file")
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
                    .primary(file, span, "unreadable data file")
                    .help("point the source at the right file, or re-export it")
                };
                c.diags.push(diag);
                None
            }
        };
        headers.insert(path.to_path_buf(), got);
    }
    headers.get(path).and_then(Option::as_ref)
}

/// Checks the root file's modalities against their sources; returns the
/// sizes of the data-bound dims the sources determine: those every session
/// agrees on. A dim declared `per session` may differ between sessions
/// (each file its own cells) and then stays for the data to give. Also
/// returns the number of sessions of the file source with the most, when a
/// file source could be expanded here.
pub(super) fn check_sources(
    c: &mut Consts,
    loader: &dyn SourceLoader,
) -> (Vec<(String, i64)>, Option<i64>) {
    let program = c.program;
    let root = program.root_module();
    let Some(ast) = &root.ast else {
        return (Vec::new(), None);
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
    let per_session: Vec<&str> = ast
        .items
        .iter()
        .filter_map(|i| match &i.kind {
            ItemKind::Dim(d) if d.per_session.is_some() => Some(d.name.name.as_str()),
            _ => None,
        })
        .collect();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    for item in &ast.items {
        let ItemKind::Data(d) = &item.kind else {
            continue;
        };
        let Some(src) = source(c, file, d, &base, loader) else {
            continue;
        };
        sources.insert(d.name.name.clone(), src);
    }
    let mut headers = Headers::new();
    // Bindings per session: each session's files bind its dims.
    let mut bound: Vec<BTreeMap<String, Binding>> = Vec::new();
    let grow = |b: &mut Vec<BTreeMap<String, Binding>>, n: usize| {
        while b.len() < n {
            b.push(BTreeMap::new());
        }
    };
    // The raw axes of every file first, so two files can be compared.
    for src in sources.values() {
        let (SourceKind::Files(files, DataFormat::Npy), Some((axes, span))) =
            (&src.kind, &src.axes)
        else {
            continue;
        };
        grow(&mut bound, files.len());
        for (s, f) in files.iter().enumerate() {
            if let Some(DataHeader::Array(h)) = header(
                c,
                file,
                loader,
                &mut headers,
                f,
                DataFormat::Npy,
                src.path_span,
            )
            .cloned()
            {
                let label = src.file_label(f, s, files.len());
                check_axes(c, file, &label, src, &h, axes, *span, &mut bound[s]);
            }
        }
    }
    let mut modal: Vec<BTreeMap<String, Binding>> = Vec::new();
    for item in &ast.items {
        let ItemKind::Modality(m) = &item.kind else {
            continue;
        };
        let Some((data, field)) = origin(&m.source) else {
            continue;
        };
        let Some(src) = sources.get(&data) else {
            continue;
        };
        let dims = declared(c, m);
        let selected: Vec<String> = selected_dims(m);
        if let SourceKind::MouseV1 { neurons, frame } = &src.kind {
            grow(&mut modal, 1);
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
                &mut modal[0],
            );
            continue;
        }
        let files = src.files(&field);
        grow(&mut modal, files.len());
        let mut rate_checked = false;
        for (s, (f, format)) in files.iter().enumerate() {
            let label = src.file_label(f, s, files.len());
            match header(c, file, loader, &mut headers, f, *format, src.path_span).cloned() {
                Some(DataHeader::Array(h)) => {
                    let ctx = ArrayCtx {
                        src,
                        label: &label,
                        suite2p: matches!(src.kind, SourceKind::Suite2p(_)),
                    };
                    modality_vs_array(c, file, m, &ctx, &h, &dims, &selected, &mut modal[s]);
                    if !rate_checked {
                        rate_checked = true;
                        let rate = src.rate.and_then(|r| match c.eval(r) {
                            Ok(Value::Quantity(q))
                                if q.dim == crate::ir::types::Dimension::RATE =>
                            {
                                Some(q.value)
                            }
                            _ => None,
                        });
                        if let Some(want) = rate {
                            super::provided::modality_vs_rate(c, file, m, &data, want);
                        }
                    }
                }
                Some(DataHeader::Nwb(sets)) => {
                    modality_vs_nwb(c, file, m, &field, &label, &sets, &dims, &mut modal[s]);
                }
                None => {}
            }
        }
    }
    let sessions = sources
        .values()
        .filter_map(|s| match &s.kind {
            SourceKind::Files(f, _) | SourceKind::Suite2p(f) => Some(f.len() as i64),
            SourceKind::MouseV1 { .. } => None,
        })
        .max();
    (agreed(c, file, &modal, &per_session), sessions)
}

/// The sizes every session's files agree on. Sessions that disagree on a
/// dim not declared `per session` are an error naming two of them.
fn agreed(
    c: &mut Consts,
    file: FileId,
    sessions: &[BTreeMap<String, Binding>],
    per_session: &[&str],
) -> Vec<(String, i64)> {
    let mut names: Vec<&String> = sessions.iter().flat_map(|b| b.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let mut seen = sessions
            .iter()
            .enumerate()
            .filter_map(|(s, b)| b.get(name).map(|x| (s, x)));
        let Some((_, first)) = seen.next() else {
            continue;
        };
        match seen.find(|(_, b)| b.size != first.size) {
            None => out.push((name.clone(), first.size)),
            Some(_) if per_session.contains(&name.as_str()) => {}
            Some((_, other)) => c.diags.push(
                Diagnostic::new(
                    Code::E0219,
                    format!(
                        "`{name}` is {} from {}, but {} from {}",
                        first.size, first.what, other.size, other.what
                    ),
                )
                .primary(file, other.at, format!("`{name}` differs between sessions"))
                .help(format!(
                    "declare `dim {name} per session` if each session has its own size (its own cells), or check that the files hold the same layout"
                )),
            ),
        }
    }
    out
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

/// `npy("F.npy", axes: [N, T])`, `nwb("rec.nwb")`, `suite2p("s2p")`,
/// `synthetic.mouse_v1(..)`, with a file source's patterns expanded into
/// its sessions. Patterns that name nothing readable here are a warning
/// (W0201): the data may live on another machine.
fn source<'a>(
    c: &mut Consts,
    file: FileId,
    d: &'a DataItem,
    base: &Path,
    loader: &dyn SourceLoader,
) -> Option<Source<'a>> {
    let ExprKind::Call { callee, args } = &d.source.kind else {
        return None;
    };
    let names: Vec<String> = match origin(callee) {
        Some((first, rest)) => std::iter::once(first).chain(rest).collect(),
        None => return None,
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match names.as_slice() {
        ["npy"] | ["nwb"] | ["suite2p"] => {
            let first = args.iter().find(|a| a.name.is_none())?;
            let patterns: Vec<PathBuf> = match &first.value.kind {
                ExprKind::Str(path) => vec![base.join(path)],
                ExprKind::List(items) => items
                    .iter()
                    .map(|e| match &e.kind {
                        ExprKind::Str(p) => Some(base.join(p)),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
                _ => return None,
            };
            let layout = match names[0] {
                "npy" => Layout::Files("npy"),
                "nwb" => Layout::Files("nwb"),
                _ => Layout::Suite2p,
            };
            let found = match files::expand(&patterns, layout, loader) {
                Ok(found) => found,
                Err(e) => {
                    c.diags.push(
                        Diagnostic::new(Code::W0201, format!("cannot read the data: {e}"))
                            .primary(file, first.value.span, "not checked against the data")
                            .help("the modalities drawn from it are checked once the files are readable here; run `enigma check` where the data lives to compare shapes"),
                    );
                    return None;
                }
            };
            let kind = match names[0] {
                "npy" => SourceKind::Files(found, DataFormat::Npy),
                "nwb" => SourceKind::Files(found, DataFormat::Nwb),
                _ => SourceKind::Suite2p(found),
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
                kind,
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
    label: &FileLabel,
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
                    "`axes:` names {} axes, but {} has {} (shape {})",
                    axes.len(),
                    label.file,
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
                    Diagnostic::new(
                        Code::E0219,
                        format!(
                            "axis {i} of {} has {size} positions, but `axes:` says {k}",
                            label.file
                        ),
                    )
                    .primary(file, span, "does not match the file")
                    .help("write the size the file has, or a dim name to bind it"),
                );
            }
            Axis::Name(n) => {
                let what = format!(
                    "axis {i} of {} (shape {})",
                    label.item,
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

/// The file a modality is compared with: its source, how messages name the
/// file, and whether it is a suite2p array (ROI-major, `[N, T]` or
/// `[N, 2]`, whatever `axes:` says).
struct ArrayCtx<'s, 'a> {
    src: &'s Source<'a>,
    label: &'s FileLabel,
    suite2p: bool,
}

#[allow(clippy::too_many_arguments)]
fn modality_vs_array(
    c: &mut Consts,
    file: FileId,
    m: &ModalityItem,
    ctx: &ArrayCtx,
    h: &ArrayHeader,
    dims: &[(DimRef, Span)],
    selected: &[String],
    bound: &mut BTreeMap<String, Binding>,
) {
    let src = ctx.src;
    let label = &ctx.label.file;
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
                Diagnostic::new(Code::E0219, format!("`{}` is declared `{}`, but {label} holds `{}`", m.name.name, d.as_str(), h.dtype))
                    .primary(file, m.ty.span, "declared element type")
                    .secondary(file, src.path_span, format!("a `{}` array of shape {shape}", h.dtype))
                    .help("declare the dtype the file holds (integers convert to any integer type, floats to any float type)"),
            );
            return;
        }
    }
    // Which file axis each declared dim reads.
    let pairs: Vec<(usize, &(DimRef, Span))> = match &src.axes {
        // suite2p stores each array ROI-major: the first axis is the
        // modality's one dim besides time.
        _ if ctx.suite2p => dims
            .iter()
            .filter(|d| d.0 != DimRef::Time)
            .take(1)
            .map(|d| (0, d))
            .collect(),
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
                    Diagnostic::new(Code::E0219, format!("`{}` has {} dims, but {label} has {} axes (shape {shape})", m.name.name, dims.len(), h.shape.len()))
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
                let mut diag = Diagnostic::new(Code::E0219, format!("`{}` declares {k} here, but axis {i} of {label} has {size} (shape {shape})", m.name.name))
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
                    format!("axis {i} of {} (shape {shape})", ctx.label.item),
                    *span,
                    SHARED_DIM,
                );
            }
            _ => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn modality_vs_nwb(
    c: &mut Consts,
    file: FileId,
    m: &ModalityItem,
    field: &[String],
    label: &FileLabel,
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
            Diagnostic::new(Code::E0219, format!("{} has no `{path}`", label.nwb))
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
