//! A run's metrics: the `metrics.jsonl` log and held-out correlations.
//!
//! The log holds one flat JSON object per line, for example
//!
//! ```text
//! {"step":100,"kind":"train","time":1796680000.25,"grad_norm":1.2,"loss":0.53,"lr":0.0029,"step_s":0.31,"steps_per_s":3.1}
//! {"step":100,"kind":"eval","time":1796680001.5,"split":"val","corr":0.41,"corr_chance":0.01,"loss":0.6}
//! {"step":100,"kind":"event","time":1796680001.75,"note":"checkpoint saved"}
//! ```
//!
//! `step` and `kind` come first, then `time` (the wall time, seconds since
//! the Unix epoch, which [`MetricsLog::write`] stamps on a record that has
//! none), then the string labels, then the numeric values (each group
//! sorted by key), then `note`. JSON has no NaN or
//! infinity, so a non-finite value is written as `null` and read back as
//! NaN: a diverged loss stays visible in the log and the file stays valid.
//!
//! Held-out correlations are in `corr.rs`, re-exported here.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use super::corr::{mean, median, CorrAccumulator, CorrError, WindowedCorr};

/// The keys a record writes itself; labels and values may not use them.
const RESERVED: [&str; 4] = ["step", "kind", "time", "note"];

/// What a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A training step's loss, learning rate and throughput.
    Train,
    /// An evaluation on a held-out split.
    Eval,
    /// Something that happened: a checkpoint, a resume, a stop.
    Event,
}

impl RecordKind {
    /// The name written in the `kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Train => "train",
            RecordKind::Eval => "eval",
            RecordKind::Event => "event",
        }
    }

    fn parse(text: &str) -> Option<RecordKind> {
        match text {
            "train" => Some(RecordKind::Train),
            "eval" => Some(RecordKind::Eval),
            "event" => Some(RecordKind::Event),
            _ => None,
        }
    }
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The optimiser step the record belongs to.
    pub step: u64,
    pub kind: RecordKind,
    /// When it was written, in seconds since the Unix epoch (absent only
    /// in logs of versions before it was added, and before writing).
    pub time: Option<f64>,
    /// Numeric fields such as `loss`, `lr` or `corr`.
    pub values: BTreeMap<String, f64>,
    /// String fields such as `split`; JSON strings other than `note`.
    pub labels: BTreeMap<String, String>,
    /// Free text, mostly for events.
    pub note: Option<String>,
}

impl Record {
    /// An empty record of `kind` at `step`.
    pub fn new(step: u64, kind: RecordKind) -> Record {
        Record {
            step,
            kind,
            time: None,
            values: BTreeMap::new(),
            labels: BTreeMap::new(),
            note: None,
        }
    }

    /// An empty training record.
    pub fn train(step: u64) -> Record {
        Record::new(step, RecordKind::Train)
    }

    /// An empty evaluation record on `split` (`"val"`, `"test"`).
    pub fn eval(step: u64, split: &str) -> Record {
        Record::new(step, RecordKind::Eval).with_label("split", split)
    }

    /// An event described by `note`.
    pub fn event(step: u64, note: &str) -> Record {
        let mut record = Record::new(step, RecordKind::Event);
        record.note = Some(note.to_string());
        record
    }

    /// The record stamped with the wall time `time` (seconds since the
    /// Unix epoch).
    pub fn at(mut self, time: f64) -> Record {
        self.time = Some(time);
        self
    }

    /// The record with the numeric field `key` set to `value`.
    pub fn with(mut self, key: &str, value: f64) -> Record {
        self.values.insert(key.to_string(), value);
        self
    }

    /// The record with the string field `key` set to `value`.
    pub fn with_label(mut self, key: &str, value: &str) -> Record {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// The numeric field `key`, if present.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied()
    }

    /// The string field `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The record as one line of JSON, without the newline.
    ///
    /// Fails when a label or value uses a reserved key (`step`, `kind`,
    /// `note`) or when a key is both a label and a value, since either
    /// would write a duplicate key that readers resolve differently.
    pub fn to_json_line(&self) -> Result<String, RecordError> {
        let mut line = format!(
            "{{\"step\":{},\"kind\":\"{}\"",
            self.step,
            self.kind.as_str()
        );
        if let Some(time) = self.time {
            let json = serde_json::Number::from_f64(time).map_or(Value::Null, Value::Number);
            push_field(&mut line, "time", &json);
        }
        for (key, text) in &self.labels {
            check_key(key)?;
            if self.values.contains_key(key) {
                return Err(RecordError(format!("`{key}` is both a label and a value")));
            }
            push_field(&mut line, key, &Value::String(text.clone()));
        }
        for (key, value) in &self.values {
            check_key(key)?;
            // `from_f64` is `None` exactly for NaN and the infinities.
            let json = serde_json::Number::from_f64(*value).map_or(Value::Null, Value::Number);
            push_field(&mut line, key, &json);
        }
        if let Some(note) = &self.note {
            push_field(&mut line, "note", &Value::String(note.clone()));
        }
        line.push('}');
        Ok(line)
    }

    /// Parses one line written by [`Record::to_json_line`]; `null` values
    /// read back as NaN.
    pub fn from_json_line(line: &str) -> Result<Record, RecordError> {
        let bad = |m: String| RecordError(m);
        let value: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(bad("expected a JSON object".to_string()));
        };
        let step = match map.get("step") {
            Some(v) => v
                .as_u64()
                .ok_or_else(|| bad("`step` is not a non-negative integer".to_string()))?,
            None => return Err(bad("missing `step`".to_string())),
        };
        let kind = match map.get("kind").and_then(Value::as_str) {
            Some(text) => {
                RecordKind::parse(text).ok_or_else(|| bad(format!("unknown kind `{text}`")))?
            }
            None => return Err(bad("missing or non-string `kind`".to_string())),
        };
        let mut record = Record::new(step, kind);
        for (key, field) in map {
            match (key.as_str(), field) {
                ("step" | "kind", _) => {}
                ("time", Value::Number(n)) => record.time = n.as_f64(),
                ("time", Value::Null) => {}
                ("time", _) => return Err(bad("`time` is not a number".to_string())),
                ("note", Value::String(text)) => record.note = Some(text),
                ("note", Value::Null) => {}
                (_, Value::Number(n)) => {
                    let v = n
                        .as_f64()
                        .ok_or_else(|| bad(format!("`{key}` is not a number")))?;
                    record.values.insert(key, v);
                }
                (_, Value::Null) => {
                    record.values.insert(key, f64::NAN);
                }
                ("note", _) => return Err(bad("`note` is not a string".to_string())),
                (_, Value::String(text)) => {
                    record.labels.insert(key, text);
                }
                (_, _) => return Err(bad(format!("`{key}` is neither a number nor a string"))),
            }
        }
        Ok(record)
    }
}

fn check_key(key: &str) -> Result<(), RecordError> {
    if RESERVED.contains(&key) {
        return Err(RecordError(format!("`{key}` is reserved")));
    }
    Ok(())
}

/// Why a record cannot be written or a line is not a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError(pub String);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

fn push_field(line: &mut String, key: &str, value: &Value) {
    line.push(',');
    line.push_str(&Value::String(key.to_string()).to_string());
    line.push(':');
    line.push_str(&value.to_string());
}

/// What went wrong with a metrics file.
#[derive(Debug)]
pub enum MetricsErrorKind {
    Io(io::Error),
    /// A line that is not a record.
    Malformed(String),
    /// A record that cannot be written (a reserved or duplicate key).
    Invalid(String),
}

/// A failure reading or writing a metrics file, with the file and, for a
/// malformed line, its 1-based line number.
#[derive(Debug)]
pub struct MetricsError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub kind: MetricsErrorKind,
}

impl MetricsError {
    fn io(path: &Path, error: io::Error) -> MetricsError {
        MetricsError {
            path: path.to_path_buf(),
            line: None,
            kind: MetricsErrorKind::Io(error),
        }
    }
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        match &self.kind {
            MetricsErrorKind::Io(e) => write!(f, ": {e}"),
            MetricsErrorKind::Malformed(why) => write!(f, ": malformed metrics record: {why}"),
            MetricsErrorKind::Invalid(why) => write!(f, ": cannot write metrics record: {why}"),
        }
    }
}

impl std::error::Error for MetricsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            MetricsErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// An open `metrics.jsonl`, written one flushed line at a time.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// A new, empty log at `path`, truncating any earlier one.
    pub fn create(path: &Path) -> Result<MetricsLog, MetricsError> {
        let file = File::create(path).map_err(|e| MetricsError::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The log at `path` opened to add lines at its end (created if
    /// missing). A resumed run wants [`MetricsLog::resume`] instead.
    pub fn append(path: &Path) -> Result<MetricsLog, MetricsError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| MetricsError::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The log of a run resumed from the checkpoint at `step`: records
    /// with a larger step (written after that checkpoint by the run that
    /// stopped) are dropped so the resumed run does not duplicate them,
    /// and the log is opened for appending.
    ///
    /// The kept lines are copied verbatim to a temporary file beside the
    /// log, which is synced and renamed over it, so a crash leaves either
    /// the old log or the new one. A last line with no newline that does
    /// not parse is a write torn by a crash and is dropped; any other
    /// malformed line is an error and the log is left as it was.
    pub fn resume(path: &Path, step: u64) -> Result<MetricsLog, MetricsError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(MetricsError::io(path, e)),
        };
        let mut kept = String::with_capacity(text.len());
        for (index, line, terminated) in lines(&text) {
            match Record::from_json_line(line) {
                Ok(record) if record.step <= step => {
                    kept.push_str(line);
                    kept.push('\n');
                }
                Ok(_) => {}
                Err(_) if !terminated => {}
                Err(why) => return Err(malformed(path, index, why)),
            }
        }
        let mut tmp_name = path.as_os_str().to_os_string();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let write_tmp = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(kept.as_bytes())?;
            file.sync_all()
        };
        write_tmp().map_err(|e| MetricsError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| MetricsError::io(path, e))?;
        MetricsLog::append(path)
    }

    /// The file this log writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `record` as one line and flushes it, so that a run killed
    /// at any moment leaves every earlier record readable. The line goes
    /// out in a single write, which keeps a torn line to a crash inside
    /// that one call; lines are not synced to disk one by one.
    pub fn write(&mut self, record: &Record) -> Result<(), MetricsError> {
        let stamped;
        let record = if record.time.is_none() {
            stamped = record.clone().at(super::tensorboard::wall_time());
            &stamped
        } else {
            record
        };
        let mut line = record.to_json_line().map_err(|why| MetricsError {
            path: self.path.clone(),
            line: None,
            kind: MetricsErrorKind::Invalid(why.0),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| MetricsError::io(&self.path, e))
    }
}

/// Every record in the log at `path`, in file order; blank lines are
/// skipped and a malformed line is an error naming its line number.
pub fn read_records(path: &Path) -> Result<Vec<Record>, MetricsError> {
    let text = fs::read_to_string(path).map_err(|e| MetricsError::io(path, e))?;
    let mut records = Vec::new();
    for (index, line, _) in lines(&text) {
        records.push(Record::from_json_line(line).map_err(|why| malformed(path, index, why))?);
    }
    Ok(records)
}

/// The non-blank lines of `text` with their 1-based numbers and whether
/// each ended with a newline.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str, bool)> {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, raw)| {
            let terminated = raw.ends_with('\n');
            let line = raw.trim_end_matches(['\n', '\r']);
            (i + 1, line, terminated)
        })
        .filter(|(_, line, _)| !line.trim().is_empty())
}

fn malformed(path: &Path, line: usize, why: RecordError) -> MetricsError {
    MetricsError {
        path: path.to_path_buf(),
        line: Some(line),
        kind: MetricsErrorKind::Malformed(why.0),
    }
}
