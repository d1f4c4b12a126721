//! Sources into recordings: each modality's values over each whole
//! session, as the source holds them, before its transforms.
//!
//! A [`Stream`] is one modality's values in one session: a time-major
//! series, the synthetic video (rendered on demand), events per unit or
//! intervals, each with its channel axes named for messages. The
//! [`Reader`] builds each source once: the simulation here, files through
//! `files.rs`. The `select` stages are applied to these raw values, since
//! every other stage works per channel and so commutes with keeping some
//! channels; [`select`] is also used on the values a derived modality
//! takes from another.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::path::PathBuf;

use super::array;
use super::files::{lane, npy_intervals, npy_raw, nwb_raw, Slab};
use super::lazy::{self, LazySeries};
use super::{Error, ErrorKind};
use crate::dataset::synthetic::{MouseV1, MouseV1Config};
use crate::ir::data::{Axis, Cond, DataSpec, ModalitySpec, Origin, SourceKind, SourceSpec};
use crate::ir::ModalityKind;
use crate::source::files::{self, Layout};
use crate::source::FsLoader;

/// One channel axis of a stream: its size and how messages name it.
#[derive(Clone, Debug, PartialEq)]
pub struct Chan {
    pub size: usize,
    pub what: String,
}

/// A modality's values over one whole session.
#[derive(Clone, Debug)]
pub enum Stream {
    /// Samples at `rate`, time-major: `samples x prod(chan)` values.
    Series {
        rate: f64,
        chan: Vec<Chan>,
        data: Vec<f32>,
    },
    /// Synthetic video, rendered per window from source `source`.
    Video {
        source: usize,
        rate: f64,
        chan: Vec<Chan>,
    },
    /// Event times per unit, in seconds from the session's start, sorted.
    Events {
        chan: Vec<Chan>,
        units: Vec<Vec<f64>>,
    },
    /// `(start, stop)` rows, in seconds from the session's start.
    Intervals {
        chan: Vec<Chan>,
        rows: Vec<(f64, f64)>,
    },
    /// A series left in its file and read a window at a time.
    Lazy(LazySeries),
}

impl Stream {
    pub fn chan(&self) -> &[Chan] {
        match self {
            Stream::Series { chan, .. }
            | Stream::Video { chan, .. }
            | Stream::Events { chan, .. }
            | Stream::Intervals { chan, .. } => chan,
            Stream::Lazy(l) => &l.chan,
        }
    }

    fn chan_mut(&mut self) -> &mut Vec<Chan> {
        match self {
            Stream::Series { chan, .. }
            | Stream::Video { chan, .. }
            | Stream::Events { chan, .. }
            | Stream::Intervals { chan, .. } => chan,
            Stream::Lazy(l) => &mut l.chan,
        }
    }

    /// The time of its last event or interval's end, in seconds; zero for
    /// sampled streams, whose length is their samples.
    pub fn last_time(&self) -> f64 {
        match self {
            Stream::Events { units, .. } => units
                .iter()
                .filter_map(|u| u.last().copied())
                .fold(0.0, f64::max),
            Stream::Intervals { rows, .. } => rows.iter().map(|r| r.1).fold(0.0, f64::max),
            Stream::Series { .. } | Stream::Video { .. } | Stream::Lazy(_) => 0.0,
        }
    }

    /// How long a sampled stream runs: its samples over its rate.
    pub fn sampled_length(&self) -> Option<f64> {
        match self {
            Stream::Series { rate, chan, data } => {
                let width: usize = chan.iter().map(|c| c.size).product();
                Some(data.len().checked_div(width).unwrap_or(0) as f64 / rate)
            }
            Stream::Lazy(l) => Some(l.samples() as f64 / l.rate),
            _ => None,
        }
    }
}

/// A modality's raw values in one session.
#[derive(Clone, Debug)]
pub struct Raw {
    pub stream: Stream,
    /// The recording's length in seconds, when the source knows it (a
    /// simulated session, the samples of a series); an NWB file's spikes
    /// and intervals know only their last time.
    pub length: Option<f64>,
}

/// The keep-masks of a modality's `select` stages, by dim name, per
/// session: one entry serves every session (a condition on one file or on
/// a simulation), several give each session its own (each file its cells).
#[derive(Clone, Debug, Default)]
pub struct Masks(Vec<(String, Vec<Vec<bool>>)>);

impl Masks {
    /// Session `s`'s masks.
    pub fn session(&self, s: usize) -> Result<Vec<(String, Vec<bool>)>, Error> {
        self.0
            .iter()
            .map(|(dim, per)| {
                let mask = if per.len() == 1 { per.first() } else { per.get(s) };
                mask.map(|k| (dim.clone(), k.clone())).ok_or_else(|| {
                    Error::new(
                        ErrorKind::DataShape,
                        format!(
                            "the `where:` condition of `select({dim}, ...)` has {} sessions, but the data has a session {s}",
                            per.len()
                        ),
                    )
                })
            })
            .collect()
    }
}

/// Reads sources, keeping each simulation built once and each file
/// source's sessions expanded once.
pub struct Reader<'a> {
    spec: &'a DataSpec,
    synthetic: BTreeMap<usize, Arc<MouseV1>>,
    sessions: BTreeMap<usize, Vec<PathBuf>>,
}

impl<'a> Reader<'a> {
    pub fn new(spec: &'a DataSpec) -> Reader<'a> {
        Reader {
            spec,
            synthetic: BTreeMap::new(),
            sessions: BTreeMap::new(),
        }
    }

    /// The simulated sources built so far, by source index.
    pub fn synthetic(&self) -> &BTreeMap<usize, Arc<MouseV1>> {
        &self.synthetic
    }

    pub fn into_synthetic(self) -> BTreeMap<usize, Arc<MouseV1>> {
        self.synthetic
    }

    fn source(&self, i: usize) -> Result<&'a SourceSpec, Error> {
        self.spec
            .sources
            .get(i)
            .ok_or_else(|| Error::spec(format!("no data item {i}")))
    }

    fn mouse(&mut self, i: usize) -> Result<Arc<MouseV1>, Error> {
        if let Some(m) = self.synthetic.get(&i) {
            return Ok(m.clone());
        }
        let src = self.source(i)?;
        let SourceKind::Synthetic {
            sessions,
            ref neurons,
            seed,
            frame,
        } = src.kind
        else {
            return Err(Error::spec("not a synthetic source").data(&src.name));
        };
        let first = neurons.first().copied().unwrap_or(0);
        let built = MouseV1Config::from_ints(sessions, first, seed)
            .and_then(|c| c.with_frame(frame))
            .and_then(|c| {
                if neurons.len() > 1 {
                    c.with_session_neurons(neurons)
                } else {
                    Ok(c)
                }
            })
            .and_then(MouseV1::new)
            .map_err(|e| Error::spec(e.to_string()).data(&src.name))?;
        let built = Arc::new(built);
        self.synthetic.insert(i, built.clone());
        Ok(built)
    }

    /// The sessions of file source `i`: its files, or its suite2p plane
    /// folders, as its patterns expand on this machine.
    pub fn sessions_of(&mut self, i: usize) -> Result<Vec<PathBuf>, Error> {
        if let Some(found) = self.sessions.get(&i) {
            return Ok(found.clone());
        }
        let src = self.source(i)?;
        let layout = match &src.kind {
            SourceKind::Npy { .. } => Layout::Files("npy"),
            SourceKind::Nwb { .. } => Layout::Files("nwb"),
            SourceKind::Suite2p { .. } => Layout::Suite2p,
            SourceKind::Synthetic { .. } => return Ok(Vec::new()),
        };
        let found = files::expand(src.kind.paths(), layout, &FsLoader).map_err(|e| {
            Error::new(ErrorKind::DataIo, format!("cannot read the files: {e}"))
                .file(&e.pattern)
                .data(&src.name)
        })?;
        self.sessions.insert(i, found.clone());
        Ok(found)
    }

    /// The file session `s` of source `i` reads for `field`, for messages
    /// (`None` for a simulated source).
    pub fn session_file(&mut self, i: usize, field: &[String], s: usize) -> Option<PathBuf> {
        let suite2p = matches!(self.source(i).ok()?.kind, SourceKind::Suite2p { .. });
        let at = self.sessions_of(i).ok()?.get(s)?.clone();
        Some(match (suite2p, field) {
            (true, [f]) => at.join(format!("{f}.npy")),
            _ => at,
        })
    }

    /// The frame rate suite2p recorded for plane `s` of source `i`, from
    /// its `ops.npy` when it has one.
    fn plane_rate(&mut self, i: usize, s: usize) -> Result<Option<f64>, Error> {
        let name = self.source(i)?.name.clone();
        let Some(plane) = self.sessions_of(i)?.get(s).cloned() else {
            return Ok(None);
        };
        let ops = plane.join("ops.npy");
        if !ops.is_file() {
            return Ok(None);
        }
        super::ops::ops_rate(&ops).map_err(|e| e.data(&name).session(s))
    }

    /// The keep-masks of a modality's `select` stages.
    pub fn masks(&mut self, m: &ModalitySpec) -> Result<Masks, Error> {
        let mut out = Vec::new();
        for s in &m.select {
            let keep = self.cond(&s.cond)?;
            // A model over no cells has nothing to learn or predict; say
            // so here rather than train on empty tensors.
            for (session, k) in keep.iter().enumerate() {
                if !k.iter().any(|&k| k) {
                    let e = Error::new(
                        ErrorKind::DataShape,
                        format!(
                            "`select({}, where: ...)` keeps none of the {} positions of `{}`",
                            s.dim,
                            k.len(),
                            s.dim
                        ),
                    );
                    return Err(if keep.len() > 1 {
                        e.session(session)
                    } else {
                        e
                    });
                }
            }
            out.push((s.dim.clone(), keep));
        }
        Ok(Masks(out))
    }

    /// A condition's value per session (one entry when it holds for every
    /// session alike).
    fn cond(&mut self, c: &Cond) -> Result<Vec<Vec<bool>>, Error> {
        let both = |a: Vec<Vec<bool>>, b: Vec<Vec<bool>>, f: fn(bool, bool) -> bool| {
            let n = a.len().max(b.len());
            if a.len() != b.len() && a.len() != 1 && b.len() != 1 {
                return Err(Error::new(
                    ErrorKind::DataShape,
                    format!(
                        "the parts of a `where:` condition have {} and {} sessions",
                        a.len(),
                        b.len()
                    ),
                ));
            }
            (0..n)
                .map(|s| {
                    let x = &a[s.min(a.len() - 1)];
                    let y = &b[s.min(b.len() - 1)];
                    if x.len() != y.len() {
                        return Err(Error::new(
                            ErrorKind::DataShape,
                            format!(
                                "the parts of a `where:` condition have {} and {} positions",
                                x.len(),
                                y.len()
                            ),
                        ));
                    }
                    Ok(x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect())
                })
                .collect()
        };
        match c {
            Cond::And(a, b) => both(self.cond(a)?, self.cond(b)?, |x, y| x && y),
            Cond::Or(a, b) => both(self.cond(a)?, self.cond(b)?, |x, y| x || y),
            Cond::Not(a) => Ok(self
                .cond(a)?
                .into_iter()
                .map(|k| k.into_iter().map(|x| !x).collect())
                .collect()),
            Cond::Compare {
                source,
                field,
                index,
                op,
                value,
            } => {
                let src = self.source(*source)?;
                let ok = matches!(
                    (&src.kind, field.as_slice()),
                    (SourceKind::Npy { .. }, []) | (SourceKind::Suite2p { .. }, [_])
                );
                if !ok {
                    return Err(Error::spec(
                        "a `where:` condition reads an `npy` item or a suite2p folder's array (`plane.iscell[.., 0]`)",
                    )
                    .data(&src.name));
                }
                let mut out = Vec::new();
                for s in 0..self.sessions_of(*source)?.len() {
                    let Some(path) = self.session_file(*source, field, s) else {
                        continue;
                    };
                    let a = array::read_npy::<f64>(&path).map_err(|e| e.data(&src.name))?;
                    let lane = lane(&a, index).map_err(|e| e.file(&path).data(&src.name))?;
                    out.push(lane.into_iter().map(|v| op.holds(v, *value)).collect());
                }
                Ok(out)
            }
        }
    }

    /// The raw values of source-drawn modality `m` in every session.
    pub fn read(&mut self, m: &ModalitySpec, masks: &Masks) -> Result<Vec<Raw>, Error> {
        let Origin::Source { source, field } = &m.origin else {
            return Err(Error::spec("derived modalities are read from others"));
        };
        let src = self.source(*source)?;
        if let SourceKind::Synthetic { .. } = src.kind {
            return self.synthetic_raws(*source, src, m, field, masks);
        }
        match (&src.kind, field.as_slice()) {
            (SourceKind::Npy { .. }, [_, ..]) => {
                return Err(Error::spec(format!(
                    "an `npy` item is one array; read it as `from {}`, without a field",
                    src.name
                )))
            }
            (SourceKind::Suite2p { .. }, [f]) if SUITE2P_FIELDS.contains(&f.as_str()) => {}
            (SourceKind::Suite2p { .. }, _) => {
                return Err(Error::spec(format!(
                    "a suite2p folder's fields are {}; read one as `from {}.F`",
                    SUITE2P_FIELDS.join(", "),
                    src.name
                )))
            }
            _ => {}
        }
        // A build that cannot read NWB says so before looking for files.
        #[cfg(not(feature = "nwb"))]
        if let SourceKind::Nwb { paths, rate } = &src.kind {
            let first = paths.first().cloned().unwrap_or_default();
            return nwb_raw(&first, field, *rate, m, &[]).map(|r| vec![r]);
        }
        let count = self.sessions_of(*source)?.len();
        let mut out = Vec::with_capacity(count);
        for s in 0..count {
            let Some(path) = self.session_file(*source, field, s) else {
                continue;
            };
            let keep = masks.session(s).map_err(|e| e.file(&path))?;
            let raw = match &src.kind {
                SourceKind::Npy { axes, rate, .. } => {
                    if m.kind == ModalityKind::Intervals {
                        let a = array::read_npy::<f32>(&path)?;
                        npy_intervals(&a, &path, m, &keep)
                    } else {
                        npy_series(&path, axes.as_deref(), *rate, m, &keep)
                    }
                }
                SourceKind::Suite2p { rate, .. } => {
                    // The item's `rate:` wins over the plane's `ops.npy`.
                    let rate = match rate {
                        Some(r) => Some(*r),
                        None => self.plane_rate(*source, s)?,
                    };
                    npy_series(&path, Some(&suite2p_axes(m)), rate, m, &keep)
                }
                SourceKind::Nwb { rate, .. } => nwb_raw(&path, field, *rate, m, &keep),
                SourceKind::Synthetic { .. } => continue,
            };
            out.push(raw.map_err(|e| if count > 1 { e.session(s) } else { e })?);
        }
        Ok(out)
    }

    fn synthetic_raws(
        &mut self,
        index: usize,
        src: &SourceSpec,
        m: &ModalitySpec,
        field: &[String],
        masks: &Masks,
    ) -> Result<Vec<Raw>, Error> {
        let mouse = self.mouse(index)?;
        let config = mouse.config();
        let (fr, rr) = (
            f64::from(config.frame_rate),
            f64::from(config.response_rate),
        );
        let field = match field {
            [f] => f.as_str(),
            _ => "",
        };
        let mut out = Vec::new();
        for s in 0..mouse.sessions() {
            let Some(session) = mouse.session(s) else {
                break;
            };
            let n = session.neurons();
            let neurons = || vec![chan(n, format!("the neurons of `{}.{field}`", src.name))];
            let stream = match field {
                "video" => {
                    let (h, w) = session.frame_size();
                    Stream::Video {
                        source: index,
                        rate: fr,
                        chan: vec![
                            chan(1, "the channel of `video`".into()),
                            chan(h, "the frame height".into()),
                            chan(w, "the frame width".into()),
                        ],
                    }
                }
                "behavior" => Stream::Series {
                    rate: fr,
                    chan: vec![chan(4, "the behaviour columns".into())],
                    data: session.behavior().to_vec(),
                },
                "response" => Stream::Series {
                    rate: rr,
                    chan: neurons(),
                    data: session.response().to_vec(),
                },
                "spikes" => Stream::Events {
                    chan: neurons(),
                    units: (0..n)
                        .map(|i| session.spikes(i).unwrap_or_default().to_vec())
                        .collect(),
                },
                _ => {
                    return Err(Error::spec(format!(
                        "`{}` has no field `{field}`; its fields are video, behavior, response and spikes",
                        src.name
                    )))
                }
            };
            let mut raw = Raw {
                stream,
                length: Some(config.duration_s),
            };
            select(&mut raw.stream, m, &masks.session(s)?)?;
            check_finite(&raw.stream, "").map_err(|e| e.modality(&m.name).session(s))?;
            out.push(raw);
        }
        Ok(out)
    }
}

/// A series from a `.npy` file: left in the file and read per window when
/// its transforms act on each sample alone (`lazy.rs`), read whole when
/// they look across time or the file is in Fortran order.
fn npy_series(
    path: &std::path::Path,
    axes: Option<&[Axis]>,
    rate: Option<f64>,
    m: &ModalitySpec,
    keep: &[(String, Vec<bool>)],
) -> Result<Raw, Error> {
    if lazy::pointwise(&m.transforms) {
        if let Some((series, length)) = LazySeries::open(path, axes, rate, m, keep)? {
            series.check_source()?;
            return Ok(Raw {
                stream: Stream::Lazy(series),
                length: Some(length),
            });
        }
    }
    let a = array::read_npy::<f32>(path)?;
    let whole = Slab {
        shape: &a.shape,
        start: 0,
    };
    npy_raw(&a, whole, path, axes, rate, m, keep)
}

/// The arrays a suite2p plane folder holds, each `FIELD.npy`.
pub const SUITE2P_FIELDS: [&str; 4] = ["F", "Fneu", "spks", "iscell"];

/// A suite2p array's axes as the modality names them: ROI-major, so its
/// one dim besides time first, then time (`[N, T]`); a table without a
/// time dim (`iscell`, `[N, 2]`) is read in its own order.
fn suite2p_axes(m: &ModalitySpec) -> Vec<Axis> {
    let time = m.dims.iter().find(|d| d.time);
    let other = m.dims.iter().filter(|d| !d.time);
    match time {
        Some(t) => other
            .map(|d| Axis::Dim(d.name.clone()))
            .chain(std::iter::once(Axis::Dim(t.name.clone())))
            .collect(),
        None => m.dims.iter().map(|d| Axis::Dim(d.name.clone())).collect(),
    }
}

pub fn chan(size: usize, what: String) -> Chan {
    Chan { size, what }
}

/// The index of the declared channel dim named `dim`.
pub fn chan_index(m: &ModalitySpec, dim: &str) -> Option<usize> {
    m.channel_dims().position(|d| d.name == dim)
}

/// Keeps the positions of each selected dim where its mask holds.
pub fn select(
    stream: &mut Stream,
    m: &ModalitySpec,
    masks: &[(String, Vec<bool>)],
) -> Result<(), Error> {
    if let Stream::Lazy(l) = stream {
        return l.select(m, masks);
    }
    for (dim, mask) in masks {
        let Some(j) = chan_index(m, dim) else {
            return Err(Error::spec(format!("`select({dim}, ...)`: no such dim")));
        };
        let chans = stream.chan().to_vec();
        let Some(c) = chans.get(j) else {
            return Err(shape_mismatch_count(m, &chans));
        };
        if c.size != mask.len() {
            return Err(Error::new(
                ErrorKind::DataShape,
                format!(
                    "`select({dim}, ...)` has a condition over {} positions, but {} has {}",
                    mask.len(),
                    c.what,
                    c.size
                ),
            ));
        }
        let kept = mask.iter().filter(|k| **k).count();
        let inner: usize = chans[j + 1..].iter().map(|c| c.size).product();
        let keep_rows = |data: &[f32]| -> Vec<f32> {
            let block = c.size * inner;
            data.chunks(block.max(1))
                .flat_map(|row| {
                    row.chunks(inner.max(1))
                        .zip(mask)
                        .filter(|(_, k)| **k)
                        .flat_map(|(v, _)| v.iter().copied())
                })
                .collect()
        };
        match stream {
            Stream::Series { data, .. } => *data = keep_rows(data),
            Stream::Events { units, .. } => {
                *units = std::mem::take(units)
                    .into_iter()
                    .zip(mask)
                    .filter(|(_, k)| **k)
                    .map(|(u, _)| u)
                    .collect()
            }
            Stream::Intervals { rows, .. } => {
                *rows = std::mem::take(rows)
                    .into_iter()
                    .zip(mask)
                    .filter(|(_, k)| **k)
                    .map(|(r, _)| r)
                    .collect()
            }
            Stream::Video { .. } => {
                return Err(Error::spec("`select` does not apply to a synthetic video"))
            }
            Stream::Lazy(_) => return Err(Error::internal("a lazy series selects itself")),
        }
        let what = format!("{} after `select({dim}, ...)`", c.what);
        stream.chan_mut()[j] = Chan { size: kept, what };
    }
    Ok(())
}

/// The error for a stream whose channel axes are not as many as the
/// declared dims besides time.
pub fn shape_mismatch_count(m: &ModalitySpec, chans: &[Chan]) -> Error {
    let declared: Vec<&str> = m.channel_dims().map(|d| d.name.as_str()).collect();
    Error::new(
        ErrorKind::DataShape,
        format!(
            "declares {} dims besides time ({}), but the data has {} ({})",
            declared.len(),
            declared.join(", "),
            chans.len(),
            chans
                .iter()
                .map(|c| format!("{} of size {}", c.what, c.size))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    )
}

/// Every value of a series stream is finite: a synthetic source (the
/// simulation promises it; checking costs little and keeps the policy
/// uniform) or a stream after its transforms. `context` ends the message.
pub(super) fn check_finite(stream: &Stream, context: &str) -> Result<(), Error> {
    let first = |data: &[f32], width: usize, start: usize| {
        let width = width.max(1);
        match data.iter().position(|v| !v.is_finite()) {
            Some(i) => Err(Error::new(
                ErrorKind::DataNonFinite,
                format!(
                    "sample {}, channel {} is {}{context}",
                    start + i / width,
                    i % width,
                    array::non_finite_name(f64::from(data[i]))
                ),
            )),
            None => Ok(()),
        }
    };
    match stream {
        Stream::Series { chan, data, .. } => {
            first(data, chan.iter().map(|c| c.size).product::<usize>(), 0)
        }
        // The source's values were checked when it was opened; only
        // transforms can have made one infinite since.
        Stream::Lazy(l) if l.may_make_non_finite() => {
            for (a, b) in l.chunks(0, l.samples()) {
                first(&l.read(a, b)?, l.width(), a)?;
            }
            Ok(())
        }
        Stream::Lazy(_)
        | Stream::Video { .. }
        | Stream::Events { .. }
        | Stream::Intervals { .. } => Ok(()),
    }
}
