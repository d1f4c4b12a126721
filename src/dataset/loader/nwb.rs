//! The values of an NWB (HDF5) file: spike times, intervals tables and
//! time series.
//!
//! NWB stores a ragged column as a flat data array plus an index of
//! cumulative end positions: unit `i`'s spikes are
//! `spike_times[index[i-1] .. index[i]]`. An intervals table is a group
//! with `start_time` and `stop_time` columns. A time series is a group
//! with a `data` dataset, time first, and either `starting_time` (with a
//! `rate` attribute) or `timestamps`. [`crate::source::probe::nwb`] lists these
//! from the metadata at check time; here they are read. Every value is
//! checked to be finite, and every inconsistency between the columns is a
//! [`Error`] naming the file and the dataset, never a panic.

use std::path::Path;

use hdf5_metno::{File, Hyperslab, Selection, SliceOrIndex};

use super::{Error, ErrorKind};

/// An opened NWB file, with its path for messages.
pub struct Nwb {
    file: File,
    path: std::path::PathBuf,
}

impl Nwb {
    pub fn open(path: &Path) -> Result<Nwb, Error> {
        hdf5_metno::silence_errors(true);
        // The standard library's message for a missing file is plainer than
        // libhdf5's.
        std::fs::metadata(path).map_err(|e| Error::io(path, &e))?;
        let file = File::open(path).map_err(|e| {
            Error::new(
                ErrorKind::DataFormat,
                format!("not a readable NWB (HDF5) file: {e}"),
            )
            .file(path)
        })?;
        Ok(Nwb {
            file,
            path: path.to_path_buf(),
        })
    }

    fn error(&self, kind: ErrorKind, message: String) -> Error {
        Error::new(kind, message).file(&self.path)
    }

    /// Whether the file holds dataset `dataset`.
    pub fn has(&self, dataset: &str) -> bool {
        self.file.link_exists(dataset) && self.file.dataset(dataset).is_ok()
    }

    /// A whole dataset as `f64`, with its shape.
    fn read(&self, dataset: &str) -> Result<(Vec<usize>, Vec<f64>), Error> {
        let read = || -> hdf5_metno::Result<(Vec<usize>, Vec<f64>)> {
            let d = self.file.dataset(dataset)?;
            Ok((d.shape(), d.read_raw::<f64>()?))
        };
        read().map_err(|e| {
            let kind = if self.file.link_exists(dataset) {
                ErrorKind::DataFormat
            } else {
                ErrorKind::DataShape
            };
            self.error(kind, format!("cannot read `{dataset}`: {e}"))
        })
    }

    /// Spike times per unit from a ragged column such as
    /// `units/spike_times` (with `units/spike_times_index`); a column
    /// without an index is one unit.
    pub fn events(&self, dataset: &str) -> Result<Vec<Vec<f64>>, Error> {
        let (_, times) = self.read(dataset)?;
        if let Some((i, &t)) = times.iter().enumerate().find(|(_, t)| !t.is_finite()) {
            return Err(self.error(
                ErrorKind::DataNonFinite,
                format!(
                    "element {i} of `{dataset}` is {}",
                    super::array::non_finite_name(t)
                ),
            ));
        }
        let index_name = format!("{dataset}_index");
        if !self.has(&index_name) {
            return Ok(vec![times]);
        }
        let (_, ends) = self.read(&index_name)?;
        let mut units = Vec::with_capacity(ends.len());
        let mut from = 0usize;
        for (u, &end) in ends.iter().enumerate() {
            let to = end as usize;
            if end.fract() != 0.0 || end < 0.0 || to < from || to > times.len() {
                return Err(self.error(
                    ErrorKind::DataFormat,
                    format!(
                        "`{index_name}` is not a ragged index into `{dataset}` ({} values): entry {u} is {end} after {from}",
                        times.len()
                    ),
                ));
            }
            let mut unit = times.get(from..to).unwrap_or_default().to_vec();
            // Spike times are stored sorted; sorting again costs little and
            // makes the windows' binary searches right for any writer.
            unit.sort_by(f64::total_cmp);
            units.push(unit);
            from = to;
        }
        Ok(units)
    }

    /// The `(start, stop)` rows of an intervals table such as
    /// `intervals/epochs`.
    pub fn intervals(&self, group: &str) -> Result<Vec<(f64, f64)>, Error> {
        let (_, start) = self.read(&format!("{group}/start_time"))?;
        let (_, stop) = self.read(&format!("{group}/stop_time"))?;
        if start.len() != stop.len() {
            return Err(self.error(
                ErrorKind::DataFormat,
                format!(
                    "`{group}` has {} start times but {} stop times",
                    start.len(),
                    stop.len()
                ),
            ));
        }
        let mut rows = Vec::with_capacity(start.len());
        for (k, (&a, &b)) in start.iter().zip(&stop).enumerate() {
            if !a.is_finite() || !b.is_finite() {
                let v = if a.is_finite() { b } else { a };
                return Err(self.error(
                    ErrorKind::DataNonFinite,
                    format!(
                        "interval {k} of `{group}` has a time that is {}",
                        super::array::non_finite_name(v)
                    ),
                ));
            }
            if b < a {
                return Err(self.error(
                    ErrorKind::DataFormat,
                    format!("interval {k} of `{group}` stops ({b} s) before it starts ({a} s)"),
                ));
            }
            rows.push((a, b));
        }
        Ok(rows)
    }

    /// What a time series is, without its values: its `data` dataset, its
    /// shape (time first), its rate and its start. `path` is its group
    /// (holding `data`) or its `data` dataset; `rate` is used when the file
    /// records none.
    pub fn series_header(&self, path: &str, rate: Option<f64>) -> Result<SeriesHeader, Error> {
        let group = if self.has(&format!("{path}/data")) {
            path.to_string()
        } else {
            path.rsplit_once('/')
                .map(|(g, _)| g)
                .unwrap_or("")
                .to_string()
        };
        let data_name = if group == path {
            format!("{path}/data")
        } else {
            path.to_string()
        };
        let shape = self
            .file
            .dataset(&data_name)
            .map(|d| d.shape())
            .map_err(|e| {
                let kind = if self.file.link_exists(&data_name) {
                    ErrorKind::DataFormat
                } else {
                    ErrorKind::DataShape
                };
                self.error(kind, format!("cannot read `{data_name}`: {e}"))
            })?;
        if shape.is_empty() {
            return Err(self.error(
                ErrorKind::DataShape,
                format!("`{data_name}` is a scalar, not a series"),
            ));
        }
        let prefix = if group.is_empty() {
            String::new()
        } else {
            format!("{group}/")
        };
        let starting = format!("{prefix}starting_time");
        let stamps = format!("{prefix}timestamps");
        let (start, found) = if self.has(&starting) {
            let (_, t0) = self.read(&starting)?;
            let r = self
                .file
                .dataset(&starting)
                .and_then(|d| d.attr("rate"))
                .and_then(|a| a.read_scalar::<f64>())
                .ok();
            (t0.first().copied().unwrap_or(0.0), r)
        } else if self.has(&stamps) {
            let (_, t) = self.read(&stamps)?;
            (t.first().copied().unwrap_or(0.0), regular_rate(&t))
        } else {
            (0.0, None)
        };
        let rate = found.or(rate).filter(|r| r.is_finite() && *r > 0.0).ok_or_else(|| {
            self.error(
                ErrorKind::Spec,
                format!(
                    "`{data_name}` records no sampling rate (no `starting_time` with a `rate`, no regular `timestamps`); give one with `nwb(path, rate: ...)`"
                ),
            )
        })?;
        Ok(SeriesHeader {
            data: data_name,
            shape,
            rate,
            start,
        })
    }

    /// Samples `a..b` of a series, time-major, read as one hyperslab (only
    /// those rows leave the file); a value that is not finite is an error
    /// naming its sample in the whole series.
    pub fn series_rows(&self, h: &SeriesHeader, a: usize, b: usize) -> Result<Vec<f32>, Error> {
        let width: usize = h.shape[1..].iter().product();
        if a >= b {
            return Ok(Vec::new());
        }
        let read = || -> hdf5_metno::Result<Vec<f64>> {
            let d = self.file.dataset(&h.data)?;
            let slab: Vec<SliceOrIndex> = std::iter::once(SliceOrIndex::from(a..b))
                .chain(h.shape[1..].iter().map(|&n| SliceOrIndex::from(0..n)))
                .collect();
            let values =
                d.read_slice::<f64, _, ndarray::IxDyn>(Selection::from(Hyperslab::from(slab)))?;
            Ok(values.iter().copied().collect())
        };
        let values = read().map_err(|e| {
            self.error(
                ErrorKind::DataFormat,
                format!("cannot read `{}`: {e}", h.data),
            )
        })?;
        if values.len() != (b - a) * width {
            return Err(self.error(
                ErrorKind::DataFormat,
                format!(
                    "`{}` gave {} values for samples {a} to {b} of shape {:?}",
                    h.data,
                    values.len(),
                    h.shape
                ),
            ));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let (t, c) = (a + i / width.max(1), i % width.max(1));
            return Err(self.error(
                ErrorKind::DataNonFinite,
                format!(
                    "sample {t}, channel {c} of `{}` is {}",
                    h.data,
                    super::array::non_finite_name(values[i])
                ),
            ));
        }
        Ok(values.iter().map(|&v| v as f32).collect())
    }
}

/// What a time series is, without its values ([`Nwb::series_header`]).
#[derive(Clone, Debug)]
pub struct SeriesHeader {
    /// The `data` dataset.
    pub data: String,
    /// Its shape, time first.
    pub shape: Vec<usize>,
    pub rate: f64,
    /// The time of the first sample, in seconds.
    pub start: f64,
}

/// The rate of timestamps that are evenly spaced to a part in a thousand.
fn regular_rate(t: &[f64]) -> Option<f64> {
    let (first, last) = (*t.first()?, *t.last()?);
    let n = t.len().checked_sub(1).filter(|&n| n > 0)?;
    let step = (last - first) / n as f64;
    let even = t
        .windows(2)
        .all(|w| ((w[1] - w[0]) - step).abs() <= 1e-3 * step.abs());
    (step > 0.0 && even).then(|| 1.0 / step)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small NWB-like file written with libhdf5, in a fresh directory.
    fn file(name: &str, build: impl FnOnce(&File) -> hdf5_metno::Result<()>) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("enigma-nwb-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.nwb");
        let f = File::create(&path).unwrap();
        build(&f).unwrap();
        path
    }

    #[test]
    fn ragged_units_intervals_and_series_read() {
        let path = file("ok", |f| {
            let units = f.create_group("units")?;
            units
                .new_dataset_builder()
                .with_data(&[0.5f64, 0.1, 2.0, 3.0, 4.0])
                .create("spike_times")?;
            units
                .new_dataset_builder()
                .with_data(&[2u16, 2, 5])
                .create("spike_times_index")?;
            let ep = f.create_group("intervals")?.create_group("epochs")?;
            ep.new_dataset_builder()
                .with_data(&[0.0f64, 10.0])
                .create("start_time")?;
            ep.new_dataset_builder()
                .with_data(&[5.0f64, 20.0])
                .create("stop_time")?;
            let ts = f.create_group("acquisition")?.create_group("speed")?;
            ts.new_dataset_builder()
                .with_data(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])
                .create("data")?;
            let st = ts
                .new_dataset_builder()
                .with_data(&[0.0f64])
                .create("starting_time")?;
            st.new_attr::<f64>().create("rate")?.write_scalar(&20.0)?;
            Ok(())
        });
        let n = Nwb::open(&path).unwrap();
        let units = n.events("units/spike_times").unwrap();
        assert_eq!(units, vec![vec![0.1, 0.5], vec![], vec![2.0, 3.0, 4.0]]);
        assert_eq!(
            n.intervals("intervals/epochs").unwrap(),
            [(0.0, 5.0), (10.0, 20.0)]
        );
        let h = n.series_header("acquisition/speed", None).unwrap();
        let data = n.series_rows(&h, 0, h.shape[0]).unwrap();
        assert_eq!(
            (h.rate, h.start, h.shape.len() - 1, data.len()),
            (20.0, 0.0, 0, 6)
        );
        let e = n.intervals("intervals/trials").unwrap_err();
        assert!(
            e.to_string().contains("f.nwb") && e.to_string().contains("intervals/trials"),
            "{e}"
        );
    }

    #[test]
    fn broken_indices_and_nan_are_errors() {
        let path = file("bad", |f| {
            let units = f.create_group("units")?;
            units
                .new_dataset_builder()
                .with_data(&[0.5f64, f64::NAN])
                .create("spike_times")?;
            units
                .new_dataset_builder()
                .with_data(&[1.0f64, 2.0])
                .create("other")?;
            units
                .new_dataset_builder()
                .with_data(&[3u8])
                .create("other_index")?;
            Ok(())
        });
        let n = Nwb::open(&path).unwrap();
        let e = n.events("units/spike_times").unwrap_err();
        assert_eq!(e.kind, ErrorKind::DataNonFinite);
        assert!(
            e.to_string()
                .contains("element 1 of `units/spike_times` is NaN"),
            "{e}"
        );
        let e = n.events("units/other").unwrap_err();
        assert!(e.to_string().contains("not a ragged index"), "{e}");
        assert!(Nwb::open(Path::new("/no/such/file.nwb")).is_err());
        assert_eq!(regular_rate(&[0.0, 0.5, 1.0]), Some(2.0));
        assert_eq!(regular_rate(&[0.0, 0.5, 2.0]), None);
    }
}
