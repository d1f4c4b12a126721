//! What a training run writes as it goes, on the leader: each record to
//! `metrics.jsonl` and to a TensorBoard event file with the same wall
//! time, per-neuron correlations as histograms, and the plots redrawn
//! after every evaluation, so a run watched from TensorBoard, from the
//! JSONL or from the SVG files shows the same figures while it trains.
//!
//! TensorBoard's tags are `train/<key>` for the training records (`loss`,
//! `lr`, `grad_norm`, `steps_per_s`, `windows_per_s`, `step_s`) and
//! `<split>/<key>` for the evaluations (`val/loss`, `val/corr`,
//! `val/corr_chance`), with the histogram `<split>/corr_per_neuron`.
//! Events (checkpoints, skipped steps) stay in the JSONL only.

use std::path::{Path, PathBuf};

use super::metrics::{read_records, MetricsLog, Record, RecordKind};
use super::tensorboard::{wall_time, EventWriter};
use crate::diagnostics::{Error, ErrorKind};

/// The open logs of a run directory.
#[derive(Debug)]
pub struct RunLogs {
    dir: PathBuf,
    metrics: MetricsLog,
    events: EventWriter,
    plots: Vec<PathBuf>,
}

impl RunLogs {
    /// The logs of a run in `dir`: new ones, or, for a run resumed from
    /// the checkpoint of step `resumed_after`, the JSONL cut back to that
    /// step and a new event file that tells TensorBoard to do the same.
    pub fn open(dir: &Path, resumed_after: Option<u64>) -> Result<RunLogs, Error> {
        let path = dir.join("metrics.jsonl");
        let metrics = match resumed_after {
            Some(step) => MetricsLog::resume(&path, step),
            None => MetricsLog::create(&path),
        }
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        let events = EventWriter::create(dir, resumed_after).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "{}: cannot create a TensorBoard event file: {e}",
                    dir.display()
                ),
            )
        })?;
        Ok(RunLogs {
            dir: dir.to_path_buf(),
            metrics,
            events,
            plots: Vec::new(),
        })
    }

    /// Writes `record` (stamped with the wall time now, unless it has
    /// one) to both logs; after an evaluation the plots are redrawn.
    pub fn write(&mut self, record: Record) -> Result<(), Error> {
        let record = match record.time {
            Some(_) => record,
            None => record.at(wall_time()),
        };
        let time = record.time.unwrap_or_default();
        self.metrics
            .write(&record)
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        self.events
            .scalars(record.step, time, &scalars(&record))
            .map_err(|e| self.io(e))?;
        if record.kind == RecordKind::Eval {
            self.refresh_plots()?;
        }
        Ok(())
    }

    /// The per-neuron correlations of an evaluation of `split` at `step`,
    /// as a TensorBoard histogram.
    pub fn correlations(&mut self, step: u64, split: &str, values: &[f64]) -> Result<(), Error> {
        if values.is_empty() {
            return Ok(());
        }
        let tag = format!("{split}/corr_per_neuron");
        self.events
            .correlations(step, wall_time(), &tag, values)
            .map_err(|e| self.io(e))
    }

    /// Redraws the plots from everything `metrics.jsonl` holds.
    pub fn refresh_plots(&mut self) -> Result<(), Error> {
        let records = read_records(self.metrics.path())
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        self.plots = super::plots::plot_run(&records, &self.dir)
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        Ok(())
    }

    /// The plots drawn last.
    pub fn plots(&self) -> &[PathBuf] {
        &self.plots
    }

    /// The event file being written.
    pub fn events_path(&self) -> &Path {
        self.events.path()
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::new(
            ErrorKind::Io,
            format!("{}: {e}", self.events.path().display()),
        )
    }
}

/// The TensorBoard scalars of a record: every numeric field, tagged by
/// what it measures (`train/loss`, `val/corr`); none for events.
pub fn scalars(record: &Record) -> Vec<(String, f64)> {
    let group = match record.kind {
        RecordKind::Train => "train",
        RecordKind::Eval => record.label("split").unwrap_or("eval"),
        RecordKind::Event => return Vec::new(),
    };
    record
        .values
        .iter()
        .map(|(key, v)| (format!("{group}/{key}"), *v))
        .collect()
}

/// One line for an evaluation record, as standard error shows it:
/// `step 200 · val: loss 0.6012 · corr 0.412 (chance 0.013)`.
pub fn describe_eval(record: &Record) -> String {
    let split = record.label("split").unwrap_or("eval");
    let mut line = format!("step {} · {split}:", record.step);
    if let Some(loss) = record.get("loss") {
        line.push_str(&format!(" loss {loss:.4}"));
    }
    if let Some(corr) = record.get("corr") {
        line.push_str(&format!(" · corr {corr:.3}"));
        if let Some(chance) = record.get("corr_chance") {
            line.push_str(&format!(" (chance {chance:.3})"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_tagged_by_kind_and_split() {
        let train = Record::train(3).with("loss", 0.5).with("lr", 1e-3);
        assert_eq!(
            scalars(&train),
            vec![
                ("train/loss".to_string(), 0.5),
                ("train/lr".to_string(), 1e-3)
            ]
        );
        let eval = Record::eval(3, "val").with("corr", 0.25);
        assert_eq!(scalars(&eval), vec![("val/corr".to_string(), 0.25)]);
        assert!(scalars(&Record::event(3, "checkpoint saved")).is_empty());
        assert_eq!(
            describe_eval(&eval.with("loss", 0.75).with("corr_chance", 0.01)),
            "step 3 · val: loss 0.7500 · corr 0.250 (chance 0.010)"
        );
    }

    #[test]
    fn a_resumed_log_drops_what_came_after_its_checkpoint_and_stamps_time() {
        let dir = std::env::temp_dir().join(format!("enigma-logs-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut logs = RunLogs::open(&dir, None).unwrap();
        for step in 1..=4 {
            logs.write(Record::train(step).with("loss", 1.0)).unwrap();
        }
        drop(logs);
        let mut logs = RunLogs::open(&dir, Some(2)).unwrap();
        logs.write(Record::train(3).with("loss", 0.5)).unwrap();
        let records = read_records(&dir.join("metrics.jsonl")).unwrap();
        let event_files = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains("tfevents"))
            })
            .count();
        std::fs::remove_dir_all(&dir).unwrap();
        let steps: Vec<u64> = records.iter().map(|r| r.step).collect();
        assert_eq!(steps, vec![1, 2, 3]);
        assert!(records.iter().all(|r| r.time.is_some_and(|t| t > 1.6e9)));
        assert_eq!(event_files, 2);
    }
}
