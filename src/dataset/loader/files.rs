//! File sources: a `.npy` array or an NWB file's datasets as a modality's
//! raw values.
//!
//! A `.npy` file's axes are named by the data item's `axes:` (or are the
//! modality's dims in order); the one named by the modality's time dim is
//! time, and the others are matched to the declared dims by name, then in
//! order. The array is checked for values that are not finite where the
//! model will see them (positions a `select` drops are not checked), then
//! permuted to time first. An NWB field names a ragged spike-time column,
//! an intervals table or a time series (`nwb.rs`). `where:` conditions read
//! one lane of an array (`iscell[.., 0]`).

use std::path::Path;

use super::array::{self, Array};
use super::sources::{chan, chan_index, select, Chan, Raw, Stream};
use super::{Error, ErrorKind};
use crate::ir::data::{Axis, ModalitySpec};
use crate::ir::transform::Transform;
#[cfg(feature = "nwb")]
use crate::ir::ModalityKind;

/// The 1-D lane of `a` that `index` picks (one free axis).
pub fn lane(a: &Array<f64>, index: &[Option<usize>]) -> Result<Vec<f64>, Error> {
    let shape_err = |m: String| Error::new(ErrorKind::DataShape, m);
    let index: Vec<Option<usize>> = if index.is_empty() && a.shape.len() == 1 {
        vec![None]
    } else {
        index.to_vec()
    };
    if index.len() != a.shape.len() || index.iter().filter(|i| i.is_none()).count() != 1 {
        return Err(shape_err(format!(
            "a `where:` condition must index every axis of the array (shape {:?}) with one `..`",
            a.shape
        )));
    }
    let strides = array::strides(&a.shape);
    let mut base = 0;
    let mut free = (0, 0, 0);
    for (k, (i, &d)) in index.iter().zip(&a.shape).enumerate() {
        match i {
            Some(i) if *i >= d => {
                return Err(shape_err(format!(
                    "position {i} of axis {k} is past the array's {d} (shape {:?})",
                    a.shape
                )))
            }
            Some(i) => base += i * strides[k],
            None => free = (k, d, strides[k]),
        }
    }
    let (axis, len, stride) = free;
    let mut out = Vec::with_capacity(len);
    for j in 0..len {
        let v = a.data.get(base + j * stride).copied().unwrap_or(f64::NAN);
        if !v.is_finite() {
            let mut at: Vec<usize> = index.iter().map(|i| i.unwrap_or(0)).collect();
            at[axis] = j;
            return Err(Error::new(
                ErrorKind::DataNonFinite,
                format!(
                    "{} is {}, so the condition cannot say whether to keep it",
                    array::position_text(&at),
                    array::non_finite_name(v)
                ),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

/// The source rate of a file that does not record one: the rate given on
/// the item, or the modality's declared rate when no stage changes it.
fn source_rate(given: Option<f64>, m: &ModalitySpec) -> Result<f64, Error> {
    if let Some(r) = given {
        return Ok(r);
    }
    let changes = m
        .transforms
        .iter()
        .any(|t| matches!(t, Transform::Resample { .. } | Transform::Bin { .. }));
    match m.rate {
        Some(r) if !changes => Ok(r),
        _ => Err(Error::spec(
            "an npy file does not record its sampling rate (nor does a suite2p plane without an `fs` in its `ops.npy`), and the modality's transforms change the rate, so it cannot be inferred from the declared one; give it on the data item, as in `npy(\"...\", axes: [N, T], rate: 30Hz)`",
        )),
    }
}

/// Which axis of a file of `shape` is time, and which file axis each of
/// modality `m`'s channel dims reads, in declared order: named by `axes:`,
/// or the modality's dims in order.
pub fn npy_layout(
    shape: &[usize],
    path: &Path,
    axes: Option<&[Axis]>,
    m: &ModalitySpec,
) -> Result<(usize, Vec<usize>), Error> {
    let shape_err = |msg: String| Error::new(ErrorKind::DataShape, msg).file(path);
    let shape_text = format!("{shape:?}");
    // What each file axis is called: `axes:`, or the modality's dims in order.
    let names: Vec<Option<String>> = match axes {
        Some(axes) => {
            if axes.len() != shape.len() {
                return Err(shape_err(format!(
                    "`axes:` names {} axes, but the file has {} (shape {shape_text})",
                    axes.len(),
                    shape.len()
                )));
            }
            axes.iter()
                .map(|x| match x {
                    Axis::Dim(n) => Some(n.clone()),
                    Axis::Size(_) => None,
                })
                .collect()
        }
        None => {
            if m.dims.len() != shape.len() {
                return Err(shape_err(format!(
                    "`{}` declares {} dims, but the file has {} axes (shape {shape_text}); name the file's axes with `axes: [...]`",
                    m.name,
                    m.dims.len(),
                    shape.len()
                )));
            }
            m.dims.iter().map(|d| Some(d.name.clone())).collect()
        }
    };
    let time_name = m.dims.iter().find(|d| d.time).map(|d| d.name.clone());
    let Some(time) = names.iter().position(|n| n.is_some() && *n == time_name) else {
        return Err(shape_err(format!(
            "the file (shape {shape_text}) has no time axis `{}`; say which axis is time with `axes: [...]`",
            time_name.unwrap_or_default()
        )));
    };
    // Declared dims by name first, then the rest in order.
    let channel: Vec<&crate::ir::data::DimSpec> = m.channel_dims().collect();
    let mut taken = vec![false; names.len()];
    taken[time] = true;
    let mut order: Vec<Option<usize>> = channel
        .iter()
        .map(|d| {
            let k = names
                .iter()
                .position(|n| n.as_deref() == Some(d.name.as_str()))?;
            (!std::mem::replace(&mut taken[k], true)).then_some(k)
        })
        .collect();
    for slot in order.iter_mut().filter(|s| s.is_none()) {
        *slot = taken.iter().position(|t| !t);
        if let Some(k) = *slot {
            taken[k] = true;
        }
    }
    let order: Option<Vec<usize>> = order.into_iter().collect();
    let order = match order {
        Some(o) if taken.iter().all(|t| *t) => o,
        _ => {
            return Err(shape_err(format!(
            "`{}` has {} dims besides time, but the file has {} other axes (shape {shape_text})",
            m.name,
            channel.len(),
            shape.len() - 1
        )))
        }
    };
    Ok((time, order))
}

/// Where an array lies in its file: the whole file's shape and the file
/// sample its first time step is (a slab of a file read lazily), so that
/// messages speak of the file.
#[derive(Clone, Copy, Debug)]
pub struct Slab<'a> {
    pub shape: &'a [usize],
    pub start: usize,
}

/// A `.npy` array as modality `m`'s raw values: time first, then the
/// declared dims, with the selections applied.
pub fn npy_raw(
    a: &Array<f32>,
    slab: Slab,
    path: &Path,
    axes: Option<&[Axis]>,
    rate: Option<f64>,
    m: &ModalitySpec,
    masks: &[(String, Vec<bool>)],
) -> Result<Raw, Error> {
    let shape_err = |msg: String| Error::new(ErrorKind::DataShape, msg).file(path);
    let shape_text = format!("{:?}", slab.shape);
    let (time, order) = npy_layout(&a.shape, path, axes, m)?;
    // Positions the model never sees (dropped by `select`) are not checked.
    let mut keep_axes: Vec<Option<&Vec<bool>>> = vec![None; a.shape.len()];
    for (dim, mask) in masks {
        if let Some(j) = chan_index(m, dim) {
            keep_axes[order[j]] = Some(mask);
        }
    }
    let keep = |axis: usize, i: usize| {
        keep_axes[axis].is_none_or(|mask| mask.get(i).copied().unwrap_or(true))
    };
    if let Some((mut at, v)) = array::first_non_finite(a, &keep) {
        if let Some(t) = at.get_mut(time) {
            *t += slab.start;
        }
        return Err(Error::new(
            ErrorKind::DataNonFinite,
            format!(
                "the value at {} is {} (file shape {shape_text})",
                array::position_text(&at),
                array::non_finite_name(v)
            ),
        )
        .file(path));
    }
    let perm: Vec<usize> = std::iter::once(time).chain(order.iter().copied()).collect();
    let data = array::permute(a, &perm)
        .ok_or_else(|| {
            shape_err(format!(
                "the file's values do not fill its shape {shape_text}"
            ))
        })?
        .data;
    let chan = order
        .iter()
        .map(|&k| Chan {
            size: a.shape[k],
            what: format!("axis {k} of the file (shape {shape_text})"),
        })
        .collect();
    let rate = source_rate(rate, m).map_err(|e| e.file(path))?;
    let mut stream = Stream::Series { rate, chan, data };
    let length = stream.sampled_length();
    select(&mut stream, m, masks).map_err(|e| e.file(path))?;
    Ok(Raw { stream, length })
}

/// A `[K, 2]` array of `(start, stop)` rows, in seconds, as intervals.
pub fn npy_intervals(
    a: &Array<f32>,
    path: &Path,
    m: &ModalitySpec,
    masks: &[(String, Vec<bool>)],
) -> Result<Raw, Error> {
    let err = |kind, msg: String| Error::new(kind, msg).file(path);
    let [k, 2] = a.shape[..] else {
        return Err(err(
            ErrorKind::DataShape,
            format!(
                "intervals are stored as rows of (start, stop), shape [K, 2], but the file has shape {:?}",
                a.shape
            ),
        ));
    };
    let mut rows = Vec::with_capacity(k);
    for (i, row) in a.data.chunks_exact(2).enumerate() {
        let (start, stop) = (f64::from(row[0]), f64::from(row[1]));
        if let Some(v) = [start, stop].into_iter().find(|v| !v.is_finite()) {
            return Err(err(
                ErrorKind::DataNonFinite,
                format!("row {i} is {}", array::non_finite_name(v)),
            ));
        }
        if stop < start {
            return Err(err(
                ErrorKind::DataFormat,
                format!("row {i} stops ({stop} s) before it starts ({start} s)"),
            ));
        }
        rows.push((start, stop));
    }
    let chan = vec![chan(
        k,
        format!("the rows of the file (shape {:?})", a.shape),
    )];
    let mut stream = Stream::Intervals { chan, rows };
    select(&mut stream, m, masks).map_err(|e| e.file(path))?;
    Ok(Raw {
        stream,
        length: None,
    })
}

#[cfg(feature = "nwb")]
pub fn nwb_raw(
    path: &Path,
    field: &[String],
    rate: Option<f64>,
    m: &ModalitySpec,
    masks: &[(String, Vec<bool>)],
) -> Result<Raw, Error> {
    let n = super::nwb::Nwb::open(path)?;
    let name = field.join("/");
    let stream = match m.kind {
        ModalityKind::Events => {
            let dataset = if n.has(&name) {
                name.clone()
            } else {
                format!("{name}/spike_times")
            };
            let units = n.events(&dataset)?;
            let chan = vec![chan(units.len(), format!("the units of `{dataset}`"))];
            Stream::Events { chan, units }
        }
        ModalityKind::Intervals => {
            let group = if n.has(&format!("{name}/start_time")) {
                name.clone()
            } else {
                format!("intervals/{name}")
            };
            let rows = n.intervals(&group)?;
            let chan = vec![chan(rows.len(), format!("the rows of `{group}`"))];
            Stream::Intervals { chan, rows }
        }
        ModalityKind::Series | ModalityKind::Video => {
            let h = n.series_header(&name, rate)?;
            if h.start.abs() * h.rate > 0.5 {
                return Err(Error::new(
                    ErrorKind::Spec,
                    format!(
                        "`{name}` starts at {} s; series that start after the session are not read yet",
                        h.start
                    ),
                )
                .file(path));
            }
            let chan: Vec<Chan> = h.shape[1..]
                .iter()
                .enumerate()
                .map(|(k, &size)| Chan {
                    size,
                    what: format!("axis {} of `{name}`", k + 1),
                })
                .collect();
            // Transforms of one sample at a time leave the series in the
            // file, read a window at a time (`lazy.rs`).
            if super::lazy::pointwise(&m.transforms) {
                let (series, length) =
                    super::lazy::LazySeries::open_nwb(n, path, h, chan, m, masks)?;
                series.check_source()?;
                return Ok(Raw {
                    stream: Stream::Lazy(series),
                    length: Some(length),
                });
            }
            let samples = h.shape.first().copied().unwrap_or(0);
            Stream::Series {
                rate: h.rate,
                chan,
                data: n.series_rows(&h, 0, samples)?,
            }
        }
    };
    let mut stream = stream;
    let length = stream.sampled_length();
    select(&mut stream, m, masks).map_err(|e| e.file(path))?;
    Ok(Raw { stream, length })
}

#[cfg(not(feature = "nwb"))]
pub fn nwb_raw(
    path: &Path,
    _field: &[String],
    _rate: Option<f64>,
    _m: &ModalitySpec,
    _masks: &[(String, Vec<bool>)],
) -> Result<Raw, Error> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "this build of enigma cannot read NWB files: rebuild it with the `nwb` feature (it links libhdf5)",
    )
    .file(path))
}
