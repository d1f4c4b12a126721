//! Series read from `.npy` files on demand, one window at a time.
//!
//! A study of many sessions is larger than a machine's memory (64 sessions
//! of 200 cells for an hour at 30 Hz are 5.5 GB), so a modality read from
//! `.npy` files whose transforms act on each sample alone (`log1p`,
//! `zscore`, `clip`, `standardize`, arithmetic) is not read into memory:
//! [`LazySeries`] keeps the open file and what to do to its values (the
//! source's `select`, then each step a derived modality adds), and
//! [`LazySeries::read`] produces any stretch of samples through exactly the
//! code the whole-file path runs ([`super::files::npy_raw`],
//! [`super::sources::select`], the fitted [`Pipeline`]), so both paths give
//! the same values. Transforms that look across time (`smooth`, `dff`,
//! `resample`) need their neighbours and read the session whole.
//!
//! Reads are positional (`pread`), not a memory map: the pages of a mapped
//! file count in the process's resident set until the kernel reclaims them,
//! so a map would make peak RSS grow with the data after all; `pread` goes
//! through the same page cache and leaves only the window in the process.
//! A file stored time-major is one read per window; a ROI-major file
//! (suite2p's `[N, T]`) is one short read per row.
//!
//! Opening still looks at every value once, in bounded chunks
//! ([`LazySeries::chunks`]): the non-finite check and `zscore`'s statistics
//! must see the data, and an error should come before training, not at
//! step 40,000.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::array::{Array, NpyFile};
use super::files::{npy_layout, npy_raw, Slab};
use super::sources::{select, Chan, Stream};
use super::{Error, ErrorKind};
use crate::dataset::transform::stages::Stage;
use crate::dataset::transform::Pipeline;
use crate::ir::data::{Axis, ModalitySpec};
use crate::ir::transform::Transform;

/// Bytes of a file read per chunk when scanning it whole.
const CHUNK_BYTES: usize = 4 << 20;

/// Whether transforms act on each sample alone, so that any stretch of a
/// session can be transformed without its neighbours.
pub fn pointwise(transforms: &[Transform]) -> bool {
    transforms.iter().all(|t| match t {
        Transform::Elementwise(_)
        | Transform::ZScore
        | Transform::Standardize { .. }
        | Transform::Clip { .. } => true,
        Transform::Resample { .. }
        | Transform::Bin { .. }
        | Transform::Smooth { .. }
        | Transform::Dff { .. } => false,
    })
}

/// Whether fitted stages act on each sample alone.
fn pointwise_stages(stages: &[Stage]) -> bool {
    stages.iter().all(|s| match s {
        Stage::Elementwise(_)
        | Stage::ZScore { .. }
        | Stage::Standardize { .. }
        | Stage::Clip { .. } => true,
        Stage::Resample { .. } | Stage::Bin { .. } | Stage::Smooth { .. } | Stage::Dff { .. } => {
            false
        }
    })
}

/// What is done to a lazy series' values after the source's own `select`.
#[derive(Clone, Debug)]
enum Step {
    /// A derived modality's `select` stages.
    Select(Box<ModalitySpec>, Vec<(String, Vec<bool>)>),
    /// A modality's fitted transforms.
    Apply(Pipeline),
}

/// One session of a modality read from a `.npy` file on demand.
#[derive(Clone, Debug)]
pub struct LazySeries {
    file: Arc<FileHandle>,
    axes: Option<Vec<Axis>>,
    source_rate: Option<f64>,
    /// The modality the file is read as, and its `select` masks.
    source: Box<ModalitySpec>,
    keep: Vec<(String, Vec<bool>)>,
    time_axis: usize,
    steps: Vec<Step>,
    /// The rate and channel axes of what [`LazySeries::read`] gives.
    pub rate: f64,
    pub chan: Vec<Chan>,
}

/// An open file, shared by the modalities derived from one another.
enum FileHandle {
    Npy(NpyFile),
    /// An NWB series: the file, the series, and how messages name its
    /// channel axes.
    #[cfg(feature = "nwb")]
    Nwb {
        file: super::nwb::Nwb,
        path: std::path::PathBuf,
        series: super::nwb::SeriesHeader,
        chan: Vec<Chan>,
    },
}

impl FileHandle {
    fn path(&self) -> &Path {
        match self {
            FileHandle::Npy(f) => &f.path,
            #[cfg(feature = "nwb")]
            FileHandle::Nwb { path, .. } => path,
        }
    }

    /// The file's shape and its element size in bytes, as read.
    fn shape_and_size(&self) -> (&[usize], usize) {
        match self {
            FileHandle::Npy(f) => (&f.shape, f.size),
            #[cfg(feature = "nwb")]
            FileHandle::Nwb { series, .. } => (&series.shape, 8),
        }
    }
}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.path().display(), self.shape_and_size().0)
    }
}

impl LazySeries {
    /// Opens `path` as modality `m`'s values, checking its layout against
    /// the declaration as the whole-file path does; `None` when the file
    /// is in Fortran order, which has no contiguous time stretches and is
    /// read whole. Returns the series and its length in seconds.
    pub fn open(
        path: &Path,
        axes: Option<&[Axis]>,
        rate: Option<f64>,
        m: &ModalitySpec,
        keep: &[(String, Vec<bool>)],
    ) -> Result<Option<(LazySeries, f64)>, Error> {
        let file = NpyFile::open(path)?;
        if file.fortran {
            return Ok(None);
        }
        let (time_axis, _) = npy_layout(&file.shape, path, axes, m)?;
        let mut lazy = LazySeries {
            file: Arc::new(FileHandle::Npy(file)),
            axes: axes.map(<[Axis]>::to_vec),
            source_rate: rate,
            source: Box::new(m.clone()),
            keep: keep.to_vec(),
            time_axis,
            steps: Vec::new(),
            rate: 0.0,
            chan: Vec::new(),
        };
        // An empty stretch runs every check on the layout and gives the
        // rate and the channels after `select`.
        let Stream::Series { rate, chan, .. } = lazy.raw(0, 0)? else {
            return Err(Error::internal("a file's values are not a series"));
        };
        lazy.rate = rate;
        lazy.chan = chan;
        let length = lazy.samples() as f64 / rate;
        Ok(Some((lazy, length)))
    }

    /// Series `series` of the open NWB file `file` as modality `m`'s
    /// values (time first, as NWB stores them), and its length in seconds.
    #[cfg(feature = "nwb")]
    pub fn open_nwb(
        file: super::nwb::Nwb,
        path: &Path,
        series: super::nwb::SeriesHeader,
        chan: Vec<Chan>,
        m: &ModalitySpec,
        keep: &[(String, Vec<bool>)],
    ) -> Result<(LazySeries, f64), Error> {
        let rate = series.rate;
        let mut lazy = LazySeries {
            file: Arc::new(FileHandle::Nwb {
                file,
                path: path.to_path_buf(),
                series,
                chan,
            }),
            axes: None,
            source_rate: Some(rate),
            source: Box::new(m.clone()),
            keep: keep.to_vec(),
            time_axis: 0,
            steps: Vec::new(),
            rate,
            chan: Vec::new(),
        };
        lazy.chan = lazy.raw(0, 0)?.chan().to_vec();
        let length = lazy.samples() as f64 / rate;
        Ok((lazy, length))
    }

    /// The session's samples.
    pub fn samples(&self) -> usize {
        let (shape, _) = self.file.shape_and_size();
        shape.get(self.time_axis).copied().unwrap_or(0)
    }

    /// Values per sample of what [`LazySeries::read`] gives.
    pub fn width(&self) -> usize {
        self.chan.iter().map(|c| c.size).product()
    }

    /// Stretches of at most a few megabytes covering samples `a..b`.
    pub fn chunks(&self, a: usize, b: usize) -> impl Iterator<Item = (usize, usize)> {
        let (shape, size) = self.file.shape_and_size();
        let row: usize = shape.iter().product::<usize>() / self.samples().max(1);
        let step = (CHUNK_BYTES / (row * size).max(1)).max(1);
        (a..b).step_by(step).map(move |i| (i, (i + step).min(b)))
    }

    /// Samples `a..b` of an `.npy` file, in the file's own layout.
    fn slab(&self, f: &NpyFile, a: usize, b: usize) -> Result<Array<f32>, Error> {
        let t = self.samples();
        let outer: usize = f.shape[..self.time_axis].iter().product();
        let inner: usize = f.shape[self.time_axis + 1..].iter().product();
        let run = (b - a) * inner;
        let mut bytes = vec![0u8; run * f.size];
        let mut data = Vec::with_capacity(outer * run);
        for o in 0..outer {
            let at = f.data_offset + ((o * t + a) * inner * f.size) as u64;
            f.file
                .read_exact_at(&mut bytes, at)
                .map_err(|e| Error::io(&f.path, &e))?;
            data.extend(bytes.chunks_exact(f.size).map(|v| (f.decode)(v) as f32));
        }
        let mut shape = f.shape.clone();
        shape[self.time_axis] = b - a;
        Ok(Array { shape, data })
    }

    /// Samples `a..b` as the source gives them, before any step.
    fn raw(&self, a: usize, b: usize) -> Result<Stream, Error> {
        let t = self.samples();
        if a > b || b > t {
            return Err(Error::new(
                ErrorKind::Window,
                format!("samples {a} to {b} lie outside the recording's {t}"),
            )
            .file(self.file.path()));
        }
        match self.file.as_ref() {
            FileHandle::Npy(f) => {
                let slab = self.slab(f, a, b)?;
                let whole = Slab {
                    shape: &f.shape,
                    start: a,
                };
                let raw = npy_raw(
                    &slab,
                    whole,
                    &f.path,
                    self.axes.as_deref(),
                    self.source_rate,
                    &self.source,
                    &self.keep,
                )?;
                Ok(raw.stream)
            }
            #[cfg(feature = "nwb")]
            FileHandle::Nwb {
                file,
                path,
                series,
                chan,
            } => {
                let mut stream = Stream::Series {
                    rate: series.rate,
                    chan: chan.clone(),
                    data: file.series_rows(series, a, b)?,
                };
                select(&mut stream, &self.source, &self.keep).map_err(|e| e.file(path))?;
                Ok(stream)
            }
        }
    }

    /// Samples `a..b` after every step, time-major.
    pub fn read(&self, a: usize, b: usize) -> Result<Vec<f32>, Error> {
        let mut stream = self.raw(a, b)?;
        for step in &self.steps {
            match step {
                Step::Select(m, keep) => select(&mut stream, m, keep)?,
                Step::Apply(p) => stream = super::fit::transform(stream, p, 0.0)?,
            }
        }
        match stream {
            Stream::Series { data, .. } => Ok(data),
            _ => Err(Error::internal("a file's values are not a series")),
        }
    }

    /// Keeps the positions of a derived modality's selected dims.
    pub fn select(&mut self, m: &ModalitySpec, keep: &[(String, Vec<bool>)]) -> Result<(), Error> {
        let mut shape = Stream::Series {
            rate: self.rate,
            chan: std::mem::take(&mut self.chan),
            data: Vec::new(),
        };
        let done = select(&mut shape, m, keep);
        self.chan = shape.chan().to_vec();
        done?;
        self.steps
            .push(Step::Select(Box::new(m.clone()), keep.to_vec()));
        Ok(())
    }

    /// Adds fitted transforms that act on each sample alone; `false` (and
    /// nothing added) for any other, which need the session whole.
    pub fn then(&mut self, pipeline: &Pipeline) -> bool {
        if !pointwise_stages(&pipeline.stages) {
            return false;
        }
        if !pipeline.stages.is_empty() {
            self.steps.push(Step::Apply(pipeline.clone()));
        }
        true
    }

    /// Whether a step may make a finite value infinite or NaN: an
    /// elementwise program (`log` of zero), or `standardize` by a zero
    /// deviation. `zscore` divides by a positive deviation and `clip`
    /// bounds, so neither can, and a series with only those needs no
    /// second look after its source's check.
    pub fn may_make_non_finite(&self) -> bool {
        self.steps.iter().any(|s| match s {
            Step::Apply(p) => p.stages.iter().any(|stage| match stage {
                Stage::Elementwise(_) => true,
                Stage::Standardize { std, .. } => *std == 0.0 || !std.is_finite(),
                _ => false,
            }),
            Step::Select(..) => false,
        })
    }

    /// The whole session in memory, for transforms that need it.
    pub fn load(&self) -> Result<Stream, Error> {
        Ok(Stream::Series {
            rate: self.rate,
            chan: self.chan.clone(),
            data: self.read(0, self.samples())?,
        })
    }

    /// Checks that every value the source gives is finite (the error names
    /// the position in the file), scanning it in chunks.
    pub fn check_source(&self) -> Result<(), Error> {
        for (a, b) in self.chunks(0, self.samples()) {
            self.raw(a, b)?;
        }
        Ok(())
    }

    /// Samples `a..b` through a pipeline's first `stages` stages after
    /// every step so far, for fitting the next stage.
    pub fn read_through(
        &self,
        a: usize,
        b: usize,
        pipeline: &Pipeline,
        stages: usize,
    ) -> Result<Vec<f32>, Error> {
        let data = self.read(a, b)?;
        let prefix = Pipeline {
            stages: pipeline.stages[..stages.min(pipeline.stages.len())].to_vec(),
        };
        let stream = Stream::Series {
            rate: self.rate,
            chan: self.chan.clone(),
            data,
        };
        match super::fit::transform(stream, &prefix, 0.0)? {
            Stream::Series { data, .. } => Ok(data),
            _ => Err(Error::internal("a file's values are not a series")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transforms_of_one_sample_are_pointwise() {
        assert!(pointwise(&[
            Transform::ZScore,
            Transform::Clip {
                low: 0.0,
                high: 1.0
            }
        ]));
        assert!(!pointwise(&[
            Transform::ZScore,
            Transform::Smooth { width: 0.1 }
        ]));
        assert!(!pointwise(&[Transform::Dff { baseline: 10.0 }]));
    }
}
