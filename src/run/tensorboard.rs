//! TensorBoard event files: a run's scalars and histograms where
//! TensorBoard, `wandb sync --sync-tensorboard` and MLflow's importers read
//! them.
//!
//! An event file is a sequence of TFRecords, each holding one serialised
//! `tensorflow.Event` protocol buffer:
//!
//! ```text
//! u64 length (little endian) | u32 masked crc32c(length bytes) | data | u32 masked crc32c(data)
//! ```
//!
//! The messages are declared below as prost messages with the field
//! numbers of TensorFlow's `event.proto` and `summary.proto` (only the
//! fields we write), so no `protoc` runs at build time; `crc32c` computes
//! the checksums. The first event of a file names the format version
//! (`brain.Event:2`), as TensorBoard expects.
//!
//! A resumed run writes a new file that starts with a `SessionLog` of
//! status `START` at its first step: TensorBoard then drops the events the
//! stopped run wrote after the checkpoint it resumed from (its "orphaned
//! data" purge), just as `MetricsLog::resume` drops those lines from
//! `metrics.jsonl`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

/// What TensorBoard calls this file format.
const FILE_VERSION: &str = "brain.Event:2";

/// `tensorflow.Event`: one record of an event file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// The payload of an [`Event`] (the `what` oneof).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    // Tag 6 is the deprecated `log_message`; `session_log` is 7.
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.Summary`: the values of one step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: one tagged scalar or histogram.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(oneof = "Value", tags = "2, 5")]
    pub value: Option<Value>,
}

/// The `value` oneof of [`SummaryValue`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "5")]
    Histo(HistogramProto),
}

/// `tensorflow.HistogramProto`: bucket `i` counts the values in
/// `(bucket_limit[i - 1], bucket_limit[i]]`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramProto {
    #[prost(double, tag = "1")]
    pub min: f64,
    #[prost(double, tag = "2")]
    pub max: f64,
    #[prost(double, tag = "3")]
    pub num: f64,
    #[prost(double, tag = "4")]
    pub sum: f64,
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// `tensorflow.SessionLog`: here only `START`, written by a resumed run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// 1 is `START`.
    #[prost(int32, tag = "1")]
    pub status: i32,
    #[prost(string, tag = "3")]
    pub msg: String,
}

/// `SessionLog.SessionStatus.START`.
const SESSION_START: i32 = 1;

/// The checksum TFRecords carry: CRC-32C rotated and offset, so that a
/// checksum of data containing checksums stays well distributed.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `data` framed as one TFRecord.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The seconds since the Unix epoch now, as every record stamps them.
pub fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The edges of the correlation histograms: 40 buckets of 0.05 over
/// [-1, 1], the same at every evaluation so that TensorBoard's
/// distributions line up.
fn correlation_limits() -> Vec<f64> {
    (1..=40).map(|k| -1.0 + 0.05 * f64::from(k)).collect()
}

/// The histogram of `values` (non-finite ones left out) over `limits`,
/// whose last edge is raised to hold the largest value.
pub fn histogram(values: &[f64], limits: &[f64]) -> HistogramProto {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let mut bucket_limit = limits.to_vec();
    let mut bucket = vec![0.0; bucket_limit.len()];
    let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if let Some(last) = bucket_limit.last_mut() {
        *last = last.max(max);
    }
    let last = bucket.len().saturating_sub(1);
    for &v in &finite {
        // The first edge at or above the value; the last edge holds the
        // maximum, so every value finds one.
        let i = bucket_limit.partition_point(|&edge| edge < v);
        if let Some(b) = bucket.get_mut(i.min(last)) {
            *b += 1.0;
        }
    }
    HistogramProto {
        min: finite.iter().copied().fold(f64::INFINITY, f64::min),
        max,
        num: finite.len() as f64,
        sum: finite.iter().sum(),
        sum_squares: finite.iter().map(|v| v * v).sum(),
        bucket_limit,
        bucket,
    }
}

/// An open event file in a run directory, one flushed record per write.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: File,
}

impl EventWriter {
    /// A new event file in `dir`. `resumed_after` is the step of the
    /// checkpoint a resumed run starts from: the file then begins with a
    /// `START` at the next step, which tells TensorBoard to drop what the
    /// stopped run logged after that checkpoint.
    pub fn create(dir: &Path, resumed_after: Option<u64>) -> io::Result<EventWriter> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // TensorBoard reads every file whose name contains `tfevents`, in
        // name order: the seconds first (the convention), then the
        // microseconds, so that two files of one second still sort in the
        // order they were made.
        let name = format!(
            "events.out.tfevents.{:010}.{}.{}.{:06}",
            now.as_secs(),
            host_name(),
            std::process::id(),
            now.subsec_micros()
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut writer = EventWriter { path, file };
        let start = resumed_after.map_or(0, |s| s + 1);
        writer.write(&Event {
            wall_time: wall_time(),
            step: to_i64(start),
            what: Some(What::FileVersion(FILE_VERSION.to_string())),
        })?;
        if resumed_after.is_some() {
            writer.write(&Event {
                wall_time: wall_time(),
                step: to_i64(start),
                what: Some(What::SessionLog(SessionLog {
                    status: SESSION_START,
                    msg: "resumed from a checkpoint".to_string(),
                })),
            })?;
        }
        Ok(writer)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One event with a scalar per `(tag, value)`, at `step` and `wall`
    /// seconds since the epoch.
    pub fn scalars(&mut self, step: u64, wall: f64, values: &[(String, f64)]) -> io::Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let value = values
            .iter()
            .map(|(tag, v)| SummaryValue {
                tag: tag.clone(),
                // TensorBoard's scalars are 32-bit floats.
                value: Some(Value::SimpleValue(*v as f32)),
            })
            .collect();
        self.summary(step, wall, Summary { value })
    }

    /// A histogram of correlations under `tag` (40 buckets over [-1, 1]).
    pub fn correlations(
        &mut self,
        step: u64,
        wall: f64,
        tag: &str,
        values: &[f64],
    ) -> io::Result<()> {
        let histo = histogram(values, &correlation_limits());
        let value = vec![SummaryValue {
            tag: tag.to_string(),
            value: Some(Value::Histo(histo)),
        }];
        self.summary(step, wall, Summary { value })
    }

    fn summary(&mut self, step: u64, wall: f64, summary: Summary) -> io::Result<()> {
        self.write(&Event {
            wall_time: wall,
            step: to_i64(step),
            what: Some(What::Summary(summary)),
        })
    }

    fn write(&mut self, event: &Event) -> io::Result<()> {
        // One write per record, so a crash leaves whole records and at
        // most one torn one at the end, which TensorBoard skips.
        self.file.write_all(&frame(&event.encode_to_vec()))?;
        self.file.flush()
    }
}

fn to_i64(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

/// The machine's name, as TensorBoard's own writers put in file names;
/// `localhost` where the kernel does not say.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// Reads back the events of a file this module wrote, checking every
/// length and checksum: the tests' cross-check of the framing (the real
/// reader, TensorBoard's, is run by `tests/tensorboard.rs`).
pub fn read_events(path: &Path) -> io::Result<Vec<Event>> {
    let bytes = std::fs::read(path)?;
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )
    };
    let mut events = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let head = bytes
            .get(at..at + 12)
            .ok_or_else(|| bad(format!("a record header is cut short at byte {at}")))?;
        let (len_bytes, crc_bytes) = head.split_at(8);
        let crc = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
        if masked_crc(len_bytes) != crc {
            return Err(bad(format!(
                "the length checksum at byte {at} does not match"
            )));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(len_bytes);
        let len = usize::try_from(u64::from_le_bytes(len8))
            .map_err(|_| bad(format!("the record at byte {at} is too long")))?;
        let body = at + 12;
        let data = bytes
            .get(body..body + len)
            .ok_or_else(|| bad(format!("the record at byte {at} is cut short")))?;
        let tail = bytes
            .get(body + len..body + len + 4)
            .ok_or_else(|| bad(format!("the record at byte {at} has no checksum")))?;
        if masked_crc(data).to_le_bytes() != tail {
            return Err(bad(format!(
                "the data checksum of the record at byte {at} does not match"
            )));
        }
        events.push(Event::decode(data).map_err(|e| bad(format!("record at byte {at}: {e}")))?);
        at = body + len + 4;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_tensorflow() {
        // The CRC-32C standard check value fixes the polynomial (a plain
        // CRC-32 gives 0xcbf43926), and TensorFlow's `crc32c::Mask` is a
        // rotation right by 15 plus a constant.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // ((0xe3069283 >> 15) | (0xe3069283 << 17)) + 0xa282ead8, mod 2^32.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn histograms_count_every_finite_value_once() {
        let h = histogram(
            &[-1.0, -0.99, 0.0, 0.5, 1.0, f64::NAN],
            &correlation_limits(),
        );
        assert_eq!(h.num, 5.0);
        assert_eq!(h.bucket.iter().sum::<f64>(), 5.0);
        assert_eq!(h.min, -1.0);
        assert_eq!(h.max, 1.0);
        // -1.0 is at the first edge's left, in the first bucket with -0.99.
        assert_eq!(h.bucket[0], 2.0);
        assert_eq!(h.bucket[39], 1.0);
    }

    #[test]
    fn events_read_back_with_their_steps_and_values() {
        let dir = std::env::temp_dir().join(format!("enigma-tb-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = EventWriter::create(&dir, Some(4)).unwrap();
        w.scalars(5, 1.5, &[("train/loss".to_string(), 0.25)])
            .unwrap();
        let events = read_events(w.path()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0].what,
            Some(What::FileVersion(FILE_VERSION.to_string()))
        );
        assert!(matches!(
            events[1].what,
            Some(What::SessionLog(SessionLog { status: 1, .. }))
        ));
        assert_eq!(events[1].step, 5);
        let Some(What::Summary(s)) = &events[2].what else {
            panic!("not a summary: {:?}", events[2]);
        };
        assert_eq!(s.value[0].tag, "train/loss");
        assert_eq!(s.value[0].value, Some(Value::SimpleValue(0.25)));
        assert_eq!(events[2].wall_time, 1.5);
    }
}
