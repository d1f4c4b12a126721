//! Batches: windows of one session assembled into the model's inputs, and
//! the order in which an epoch visits them.
//!
//! Everything was read, transformed and checked when the dataset opened,
//! so assembling a batch is copying: a series window is one contiguous
//! slice of its session (values are stored time-major), a synthetic video
//! window is rendered from its frame indices and transformed on the spot,
//! events are found by binary search in each unit's sorted times. The
//! layouts of events and intervals as tensors are in `docs/data.md`.

use std::collections::BTreeMap;

use super::array::{self, Array};
use super::sources::Stream;
use super::{Dataset, Error, ErrorKind};
use crate::base::host::HostTensor;
use crate::dataset::transform::stages::Series;
use crate::dataset::transform::Signal;
use crate::dataset::windows::{epoch_order, Window};
use crate::ir::data::Split;

/// The inputs of one step: windows of one session.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub session: usize,
    /// The windows' ids in their split, in batch order.
    pub windows: Vec<usize>,
    /// One tensor per input of the IR, `inputs[i]` for `graph.inputs[i]`,
    /// of shape `[B, <the input's dims after batch>]`.
    pub inputs: Vec<HostTensor>,
}

/// A batch tensor before its permutation: the storage shape, the
/// permutation to the declared order, and the values.
pub(super) type Layout = ((Vec<usize>, Vec<usize>), Vec<f32>);

/// The padding unit of an events tensor: no unit has this index.
pub const NO_UNIT: f32 = -1.0;

/// Seeds derived for the per-session shuffles and the batch shuffle, so
/// each is its own stream (golden-ratio increments, as SplitMix64 uses).
fn session_seed(seed: u64, session: usize) -> u64 {
    seed ^ (session as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn batch_seed(seed: u64) -> u64 {
    seed ^ 0xB5AD_4ECE_DA1C_E2A9
}

impl Dataset {
    /// Assembles windows `ids` of `split`, which must all come from one
    /// session.
    pub fn batch(&self, split: Split, ids: &[usize]) -> Result<Batch, Error> {
        self.batch_of(split, ids, None)
    }

    /// [`Dataset::batch`] with only the inputs in `only` (by index in
    /// `inputs`) assembled, the others left empty: a reader that needs two
    /// modalities does not render the video.
    pub fn batch_of(
        &self,
        split: Split,
        ids: &[usize],
        only: Option<&[usize]>,
    ) -> Result<Batch, Error> {
        let all = self.splits.get(split);
        let windows = ids
            .iter()
            .map(|&id| {
                all.get(id).copied().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Window,
                        format!("no such window: the {split:?} split has {}", all.len()),
                    )
                    .window(split, id)
                })
            })
            .collect::<Result<Vec<Window>, _>>()?;
        let Some(session) = windows.first().map(|w| w.session) else {
            return Err(Error::new(ErrorKind::Window, "a batch needs a window"));
        };
        if let Some((k, w)) = windows
            .iter()
            .enumerate()
            .find(|(_, w)| w.session != session)
        {
            return Err(Error::new(
                ErrorKind::Window,
                format!(
                    "a batch holds windows of one session, but this one is from session {} and the first from session {session}",
                    w.session
                ),
            )
            .window(split, ids[k]));
        }
        let inputs = self
            .spec
            .inputs
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                if only.is_some_and(|o| !o.contains(&i)) {
                    return Ok(HostTensor {
                        shape: vec![0],
                        data: Vec::new(),
                    });
                }
                let name = self.spec.modalities.get(m).map(|x| x.name.as_str());
                self.input(m, session, &windows)
                    .map_err(|e| e.modality(name.unwrap_or("?")).session(session))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Batch {
            session,
            windows: ids.to_vec(),
            inputs,
        })
    }

    /// Modality `m`'s tensor for `windows` of `session`.
    fn input(&self, m: usize, session: usize, windows: &[Window]) -> Result<HostTensor, Error> {
        let missing = || Error::spec("its values were not prepared");
        let spec = self.spec.modalities.get(m).ok_or_else(missing)?;
        let stream = self
            .streams
            .get(m)
            .and_then(|s| s.get(session))
            .and_then(Option::as_ref)
            .ok_or_else(missing)?;
        let b = windows.len();
        let length = self.settings.length;
        let samples = |rate: f64| (length * rate).round() as usize;
        let (shape, data) = match stream {
            Stream::Series { rate, chan, data } => self.series(spec, *rate, chan, data, windows)?,
            Stream::Lazy(l) => {
                let (t, c) = (samples(l.rate), l.width());
                let mut out = Vec::with_capacity(b * t * c);
                for w in windows {
                    let i = (w.start * l.rate).round() as usize;
                    out.extend(l.read(i, i + t)?);
                }
                let chan: Vec<usize> = l.chan.iter().map(|c| c.size).collect();
                (self.layout(spec, b, t, &chan), out)
            }
            Stream::Video { source, rate, chan } => {
                let c: usize = chan.iter().map(|c| c.size).product();
                let (t_in, t) = (samples(*rate), samples(spec.rate.unwrap_or(*rate)));
                let pipeline = self
                    .pipelines
                    .get(m)
                    .and_then(|p| p.get(session))
                    .ok_or_else(missing)?;
                let mut out = Vec::with_capacity(b * t * c);
                let mut frames = vec![0.0f32; t_in * c];
                for w in windows {
                    frames.resize(t_in * c, 0.0);
                    let i = (w.start * rate).round() as usize;
                    super::render(&self.synthetic, *source, session, i, &mut frames)?;
                    let signal = Signal::Series(Series {
                        rate: *rate,
                        channels: c,
                        data: std::mem::take(&mut frames),
                    });
                    let Signal::Series(done) = pipeline
                        .apply(signal)
                        .map_err(|e| Error::new(ErrorKind::Transform, e.to_string()))?
                    else {
                        return Err(Error::new(
                            ErrorKind::Transform,
                            "its transforms did not give frames",
                        ));
                    };
                    if done.data.len() != t * c {
                        return Err(Error::new(
                            ErrorKind::DataShape,
                            format!(
                                "its transforms gave {} values for a window of {t} frames of {c}",
                                done.data.len()
                            ),
                        ));
                    }
                    if let Some(k) = done.data.iter().position(|v| !v.is_finite()) {
                        return Err(Error::new(
                            ErrorKind::DataNonFinite,
                            format!(
                                "frame {}, pixel {} of the window at {} s is {} after its transforms",
                                k / c.max(1),
                                k % c.max(1),
                                w.start,
                                array::non_finite_name(f64::from(done.data[k]))
                            ),
                        ));
                    }
                    out.extend_from_slice(&done.data);
                    frames = done.data;
                }
                let chan: Vec<usize> = chan.iter().map(|c| c.size).collect();
                (self.layout(spec, b, t, &chan), out)
            }
            Stream::Events { units, .. } => {
                let (shape, data) = events(units, windows, length);
                let perm = (0..shape.len()).collect();
                ((shape, perm), data)
            }
            Stream::Intervals { rows, .. } => {
                let mut out = Vec::with_capacity(b * rows.len() * 2);
                for w in windows {
                    for &(a, z) in rows {
                        out.push((a - w.start) as f32);
                        out.push((z - w.start) as f32);
                    }
                }
                ((vec![b, rows.len(), 2], vec![0, 1, 2]), out)
            }
        };
        permuted(shape, data).and_then(|(shape, data)| {
            HostTensor::new(shape, data)
                .map_err(|e| Error::new(ErrorKind::DataShape, e.to_string()))
        })
    }

    /// `windows` of a time-major series (`samples x prod(chan)` values at
    /// `rate`): the storage layout and the values, before the permutation
    /// to the declared order.
    pub(super) fn series(
        &self,
        spec: &crate::ir::data::ModalitySpec,
        rate: f64,
        chan: &[super::sources::Chan],
        data: &[f32],
        windows: &[Window],
    ) -> Result<Layout, Error> {
        let t = (self.settings.length * rate).round() as usize;
        let c: usize = chan.iter().map(|c| c.size).product();
        let mut out = Vec::with_capacity(windows.len() * t * c);
        for w in windows {
            let i = (w.start * rate).round() as usize;
            out.extend_from_slice(data.get(i * c..(i + t) * c).ok_or_else(|| {
                Error::new(
                    ErrorKind::Window,
                    "a window runs past the end of the recording",
                )
            })?);
        }
        let chan: Vec<usize> = chan.iter().map(|c| c.size).collect();
        Ok((self.layout(spec, windows.len(), t, &chan), out))
    }

    /// The storage shape `[B, T, channels...]` and the permutation to the
    /// declared order, for a modality whose time dim is not first.
    fn layout(
        &self,
        spec: &crate::ir::data::ModalitySpec,
        b: usize,
        t: usize,
        chan: &[usize],
    ) -> (Vec<usize>, Vec<usize>) {
        let mut next = 0;
        let perm: Vec<usize> = std::iter::once(0)
            .chain(spec.dims.iter().map(|d| {
                if d.time {
                    1
                } else {
                    next += 1;
                    1 + next
                }
            }))
            .collect();
        let storage = std::iter::once(b)
            .chain(std::iter::once(t))
            .chain(chan.iter().copied())
            .collect();
        (storage, perm)
    }

    /// The batches of one epoch of `split`, as lists of window ids. In
    /// training, each session's windows are shuffled with
    /// [`epoch_order`], cut into full batches (the rest is dropped) and the
    /// batches shuffled; in evaluation, windows are in order, per session,
    /// and the last batch of a session may be short. The same arguments
    /// give the same batches on every machine.
    pub fn epoch_batches(
        &self,
        split: Split,
        batch_size: usize,
        seed: u64,
        epoch: u64,
    ) -> Vec<Vec<usize>> {
        let size = batch_size.max(1);
        let mut by_session: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (id, w) in self.splits.get(split).iter().enumerate() {
            by_session.entry(w.session).or_default().push(id);
        }
        let mut batches: Vec<Vec<usize>> = Vec::new();
        if split != Split::Train {
            for ids in by_session.values() {
                batches.extend(ids.chunks(size).map(<[usize]>::to_vec));
            }
            return batches;
        }
        for (s, ids) in &by_session {
            let order = epoch_order(ids.len(), session_seed(seed, *s), epoch);
            let shuffled: Vec<usize> = order.iter().filter_map(|&k| ids.get(k).copied()).collect();
            batches.extend(shuffled.chunks_exact(size).map(<[usize]>::to_vec));
        }
        let order = epoch_order(batches.len(), batch_seed(seed), epoch);
        let mut slots: Vec<Option<Vec<usize>>> = batches.into_iter().map(Some).collect();
        order
            .iter()
            .filter_map(|&k| slots.get_mut(k).and_then(Option::take))
            .collect()
    }
}

/// Puts stored values (`shape`, in storage order) in the declared order:
/// output axis `j` is stored axis `perm[j]`.
pub(super) fn permuted(
    (shape, perm): (Vec<usize>, Vec<usize>),
    data: Vec<f32>,
) -> Result<(Vec<usize>, Vec<f32>), Error> {
    if perm.iter().enumerate().all(|(j, &k)| j == k) {
        return Ok((shape, data));
    }
    let a = array::permute(&Array { shape, data }, &perm).ok_or_else(|| {
        Error::new(
            ErrorKind::DataShape,
            "the assembled values do not fill the declared shape",
        )
    })?;
    Ok((a.shape, a.data))
}

/// The events of each window as `[B, E, 2]`: `(unit, time from the
/// window's start)` in time order, padded to the longest window with
/// `(NO_UNIT, 0)`.
fn events(units: &[Vec<f64>], windows: &[Window], length: f64) -> (Vec<usize>, Vec<f32>) {
    let mut per: Vec<Vec<(f64, usize)>> = Vec::with_capacity(windows.len());
    for w in windows {
        let mut found = Vec::new();
        for (u, times) in units.iter().enumerate() {
            let lo = times.partition_point(|&t| t < w.start);
            let hi = times.partition_point(|&t| t < w.start + length);
            found.extend(
                times
                    .get(lo..hi)
                    .unwrap_or_default()
                    .iter()
                    .map(|&t| (t - w.start, u)),
            );
        }
        found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        per.push(found);
    }
    let e = per.iter().map(Vec::len).max().unwrap_or(0);
    let mut data = Vec::with_capacity(windows.len() * e * 2);
    for found in &per {
        for &(t, u) in found {
            data.push(u as f32);
            data.push(t as f32);
        }
        for _ in found.len()..e {
            data.push(NO_UNIT);
            data.push(0.0);
        }
    }
    (vec![windows.len(), e, 2], data)
}
