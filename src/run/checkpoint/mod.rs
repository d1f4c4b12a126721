//! Checkpoints: the state `enigma run` saves every so many steps and
//! resumes from.
//!
//! # Format
//!
//! A checkpoint directory holds one file per checkpoint,
//! `step-00000200.safetensors`, zero-padded to 8 digits so that names sort
//! by step (larger steps get more digits; [`CheckpointDir::list`] sorts by
//! the number, not the name). Each file is a plain safetensors file: every
//! tensor in its own dtype under its name (any UTF-8 name, such as
//! `brain.transformer.blocks.layer.attn.q_proj.w#0` or `optim.m/...`):
//! little-endian F32 for the weights and the optimiser's moments
//! ([`Checkpoint::tensors`]), little-endian I64 for integer state such as
//! the optimiser's step count `optim.t` ([`Checkpoint::ints`]). The user's
//! string metadata sits in safetensors' `__metadata__` map next to three
//! reserved keys: `enigma.format` (the marker, [`FORMAT`]), `enigma.step`,
//! and `enigma.hash`, a 64-bit FNV-1a hash of the metadata and of every
//! tensor's name, dtype, shape and bytes. Loading recomputes the hash, so a
//! bit flip or a truncation is an error naming the file, never a silently
//! different model. Files of the previous format, [`FORMAT_V1`] (F32 only,
//! `optim.t` as two f32 halves), still load: decoding gives their `optim.t`
//! as the I64 scalar it stands for. `docs/checkpoints.md` has the details.
//!
//! # Atomicity
//!
//! [`CheckpointDir::save`] writes the bytes to `step-….safetensors.tmp`,
//! syncs that file, renames it to its final name and then syncs the
//! directory. A crash before the rename leaves at most a `.tmp` file, which
//! [`CheckpointDir::list`] and [`CheckpointDir::latest`] ignore and the next
//! successful save removes; the final name never refers to a partial file,
//! because the data reached the disk (file sync) before the name did
//! (rename), and rename replaces a name atomically. The directory sync makes
//! the rename itself durable before older checkpoints are pruned, so at
//! every instant the previous checkpoint is intact on disk: a crash, a full
//! disk or a failed rename can lose the checkpoint being written but never
//! damage one written before. Pruning keeps the newest `keep` checkpoints
//! and never removes the file just written.
//!
//! One process writes a directory at a time; readers may run alongside it.
//!
//! # Jobs of several processes
//!
//! A job writes a step *directory* instead of a file: one shard per rank
//! and a manifest written last ([`sharded`]). [`CheckpointDir::list`] and
//! [`CheckpointDir::latest`] treat a published step directory like a file,
//! and [`load`] assembles its shards into the same [`Checkpoint`].

mod format;
pub mod sharded;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use format::{FORMAT, FORMAT_KEY, FORMAT_V1, HASH_KEY, RESERVED_PREFIX, STEP_KEY};

use crate::base::host::{HostTensor, ShapeError};

/// The state of a run at one step: named tensors, each in its own dtype,
/// and string metadata.
///
/// The tensors are kept in one map per dtype rather than in one map of a
/// tagged type, so that the weights and moments, which are nearly all of a
/// checkpoint, stay plain [`HostTensor`]s that the runtime uploads without
/// a conversion or a match; a name is in at most one of the maps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// The training step the state is from.
    pub step: u64,
    /// The F32 tensors by name: parameter paths, the optimiser's moments
    /// and anything else the runtime stores as floats.
    pub tensors: BTreeMap<String, HostTensor>,
    /// The I64 tensors by name: integer state that f32 cannot hold
    /// exactly, such as the optimiser's step count `optim.t`.
    pub ints: BTreeMap<String, I64Tensor>,
    /// Free-form metadata; keys may not start with [`RESERVED_PREFIX`].
    pub metadata: BTreeMap<String, String>,
}

/// A dense, row-major `i64` tensor in host memory: a checkpoint's integer
/// state (the optimiser's step count `optim.t` is one of shape `[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct I64Tensor {
    /// The size of each axis, outermost first; empty for a scalar.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<i64>,
}

impl I64Tensor {
    /// A tensor of `shape` holding `data`, which must have exactly as many
    /// values as the shape has elements.
    pub fn new(shape: Vec<usize>, data: Vec<i64>) -> Result<I64Tensor, ShapeError> {
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if numel != Some(data.len()) {
            return Err(ShapeError {
                shape,
                len: data.len(),
            });
        }
        Ok(I64Tensor { shape, data })
    }

    /// A scalar (shape `[]`) holding `value`.
    pub fn scalar(value: i64) -> I64Tensor {
        I64Tensor {
            shape: Vec::new(),
            data: vec![value],
        }
    }

    /// The one value of a tensor with exactly one element (shape `[]`,
    /// `[1]`, `[1, 1]`, ...), or `None`.
    pub fn single(&self) -> Option<i64> {
        match self.data.as_slice() {
            [v] if self.shape.iter().all(|&d| d == 1) => Some(*v),
            _ => None,
        }
    }
}

/// The newest checkpoint that loaded and verified, and the newer files that
/// did not, so the caller can warn about them.
#[derive(Debug)]
pub struct Latest {
    pub path: PathBuf,
    pub checkpoint: Checkpoint,
    /// Files newer than `path` that failed to load, newest first.
    pub skipped: Vec<(PathBuf, CheckpointError)>,
}

/// What went wrong with a checkpoint file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointErrorKind {
    /// The file does not exist.
    NotFound,
    /// The disk (or the quota) is full.
    StorageFull,
    /// Another I/O failure: permissions, a failed rename or sync, ...
    Io,
    /// Not a safetensors file, or one whose length disagrees with its header
    /// (truncated).
    Format,
    /// A safetensors file without the checkpoint marker, or of a format
    /// version this build does not read.
    NotCheckpoint,
    /// A tensor of a dtype the format does not hold (F32 and I64 since
    /// `checkpoint-2`, F32 in `checkpoint-1`), whose shape does not match
    /// its data, or (in a `checkpoint-1` file) an `optim.t` that is not a
    /// step count.
    Tensor,
    /// The content hash disagrees, the step is malformed, or the file's step
    /// is not the one its name says: the file is damaged.
    Corrupt,
    /// A checkpoint that cannot be saved as given (reserved metadata key,
    /// shape and data that disagree, a name in both tensor maps).
    Invalid,
    /// The checkpoint was saved, but an older one (or a stale `.tmp` file)
    /// could not be removed.
    Prune,
    /// The directory holds checkpoints, but none of them loads.
    NoneUsable,
}

/// A failure to save, list or load a checkpoint. It names the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointError {
    pub kind: CheckpointErrorKind,
    /// The file (or directory) concerned.
    pub path: PathBuf,
    /// What went wrong, in words.
    pub message: String,
}

impl CheckpointError {
    fn new(kind: CheckpointErrorKind, path: &Path, message: impl Into<String>) -> CheckpointError {
        CheckpointError {
            kind,
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// An I/O failure, with `context` saying what was being done.
    fn io(context: &str, path: &Path, err: &io::Error) -> CheckpointError {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => CheckpointErrorKind::NotFound,
            io::ErrorKind::StorageFull => CheckpointErrorKind::StorageFull,
            _ => CheckpointErrorKind::Io,
        };
        CheckpointError::new(kind, path, format!("{context}: {err}"))
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "checkpoint {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for CheckpointError {}

/// The file-system calls [`CheckpointDir::save`] makes, behind a trait so
/// that tests can make them fail (a full disk, a failed rename).
pub(crate) trait Fs: fmt::Debug + Send + Sync {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates or truncates `path`, writes all of `bytes` and syncs the
    /// file's data and metadata to the device.
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (a rename, a removal) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug)]
pub(crate) struct RealFs;

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = File::create(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    #[cfg(unix)]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match File::open(dir)?.sync_all() {
            // Some file systems cannot sync a directory and say so with
            // EINVAL; there the rename is as durable as they make it.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Directories cannot be opened as files here; the rename is as durable
    /// as the platform makes it.
    #[cfg(not(unix))]
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
}

/// A directory of checkpoints that keeps the newest `keep`.
#[derive(Debug)]
pub struct CheckpointDir {
    dir: PathBuf,
    keep: usize,
    fs: Box<dyn Fs>,
}

impl CheckpointDir {
    /// The checkpoints in `dir`, keeping the newest `keep` when saving. A
    /// `keep` of 0 is taken as 1: the checkpoint just written always stays.
    /// The directory is created by the first save.
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> CheckpointDir {
        CheckpointDir::with_fs(dir, keep, Box::new(RealFs))
    }

    /// Like [`CheckpointDir::new`], with `fs` for the calls `save` makes.
    pub(crate) fn with_fs(dir: impl Into<PathBuf>, keep: usize, fs: Box<dyn Fs>) -> CheckpointDir {
        CheckpointDir {
            dir: dir.into(),
            keep: keep.max(1),
            fs,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn keep(&self) -> usize {
        self.keep
    }

    /// Where the checkpoint of `step` is (or would be) saved.
    pub fn path_for(&self, step: u64) -> PathBuf {
        self.dir.join(file_name(step))
    }

    /// Saves `ckpt` atomically (see the module documentation), then removes
    /// stale `.tmp` files and the checkpoints beyond the newest `keep`.
    /// Returns the path of the new file. Whatever the error, every earlier
    /// checkpoint is as it was. An error before the rename (encoding,
    /// writing, renaming) leaves no new file under the final name; after it,
    /// a failed directory sync ([`CheckpointErrorKind::Io`] naming the new
    /// file) or a failed removal ([`CheckpointErrorKind::Prune`]) leaves the
    /// new checkpoint in place.
    pub fn save(&self, ckpt: &Checkpoint) -> Result<PathBuf, CheckpointError> {
        let path = self.path_for(ckpt.step);
        let tmp = tmp_path(&path);
        let bytes = format::encode(ckpt, &path)?;
        self.fs.create_dir_all(&self.dir).map_err(|e| {
            CheckpointError::io("could not create the checkpoint directory", &self.dir, &e)
        })?;
        if let Err(e) = self.fs.write_synced(&tmp, &bytes) {
            // The partial file is useless and, with a full disk the likely
            // cause, worth its space now. If removing it fails as well, the
            // next successful save removes it; nothing reads `.tmp` files.
            let _ = self.fs.remove(&tmp);
            let context = format!(
                "could not write step {} ({} bytes) before renaming it to {}",
                ckpt.step,
                bytes.len(),
                file_name(ckpt.step)
            );
            return Err(CheckpointError::io(&context, &tmp, &e));
        }
        if let Err(e) = self.fs.rename(&tmp, &path) {
            let _ = self.fs.remove(&tmp);
            let context = format!("could not rename to {}", file_name(ckpt.step));
            return Err(CheckpointError::io(&context, &tmp, &e));
        }
        // Until the directory is synced the rename may not survive a crash,
        // so nothing older may be pruned before that.
        self.fs.sync_dir(&self.dir).map_err(|e| {
            let context = "the checkpoint was renamed into place, but syncing its directory \
                           failed, so it may not survive a crash";
            CheckpointError::io(context, &path, &e)
        })?;
        self.prune(&path)?;
        Ok(path)
    }

    /// Removes stale `.tmp` files and the checkpoints beyond the newest
    /// `keep`, except `written`. Every removal is tried; the first failure
    /// is reported.
    fn prune(&self, written: &Path) -> Result<(), CheckpointError> {
        let found = scan(&self.dir).map_err(|e| CheckpointError {
            kind: CheckpointErrorKind::Prune,
            ..e
        })?;
        let excess = found.finished.len().saturating_sub(self.keep);
        let old = found.finished.iter().take(excess).map(|(_, p)| p);
        // A job's step directory without a manifest, older than the
        // checkpoint just published, was left by a crash: no rank writes it
        // any more.
        let written_step = found
            .finished
            .iter()
            .find(|(_, p)| p == written)
            .map(|(s, _)| *s);
        let abandoned = found
            .unpublished
            .iter()
            .filter(|(s, _)| written_step.is_some_and(|w| *s < w))
            .map(|(_, p)| p);
        let mut first_error = None;
        for path in found.stale.iter().chain(old).chain(abandoned) {
            if path == written {
                continue;
            }
            let removed = if path.is_dir() {
                fs::remove_dir_all(path)
            } else {
                self.fs.remove(path)
            };
            match removed {
                // Someone else removed it first: the outcome is the same.
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    let context = format!(
                        "the new checkpoint {} was saved, but this file could not be removed",
                        written.display()
                    );
                    let error = CheckpointError::io(&context, path, &e);
                    first_error.get_or_insert(CheckpointError {
                        kind: CheckpointErrorKind::Prune,
                        ..error
                    });
                }
                _ => {}
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Rank 0 of a job, once every rank has written its shard of `step`
    /// (`sharded::write_shard`) and they have met at a barrier: writes the
    /// manifest that makes the step a checkpoint, then prunes as
    /// [`CheckpointDir::save`] does. Returns the step directory.
    pub fn publish_sharded(
        &self,
        step: u64,
        world: usize,
        metadata: &BTreeMap<String, String>,
    ) -> Result<PathBuf, CheckpointError> {
        if let Some(key) = metadata.keys().find(|k| k.starts_with(RESERVED_PREFIX)) {
            return Err(CheckpointError::new(
                CheckpointErrorKind::Invalid,
                &self.dir,
                format!("metadata key `{key}` is reserved"),
            ));
        }
        let dir = sharded::publish(&self.dir, step, world, metadata)?;
        self.prune(&dir)?;
        Ok(dir)
    }

    /// The finished checkpoints, by step ascending: single files
    /// `step-<digits>.safetensors`, and a job's step directories
    /// `step-<digits>/` with their manifest. `.tmp` files, step directories
    /// without a manifest and other names are ignored; a directory that
    /// does not exist holds no checkpoints.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        Ok(scan(&self.dir)?.finished)
    }

    /// The newest checkpoint that loads and verifies, with the newer ones
    /// that did not in [`Latest::skipped`]. `Ok(None)` when the directory
    /// holds no checkpoint; an error of kind
    /// [`CheckpointErrorKind::NoneUsable`] when it holds some but none loads,
    /// since starting over silently would lose the run.
    pub fn latest(&self) -> Result<Option<Latest>, CheckpointError> {
        let mut skipped = Vec::new();
        for (step, path) in self.list()?.into_iter().rev() {
            let loaded = load(&path).and_then(|checkpoint| {
                if checkpoint.step == step {
                    Ok(checkpoint)
                } else {
                    let message = format!(
                        "the file is named for step {step} but holds step {}",
                        checkpoint.step
                    );
                    Err(CheckpointError::new(
                        CheckpointErrorKind::Corrupt,
                        &path,
                        message,
                    ))
                }
            });
            match loaded {
                Ok(checkpoint) => {
                    return Ok(Some(Latest {
                        path,
                        checkpoint,
                        skipped,
                    }))
                }
                Err(e) => skipped.push((path, e)),
            }
        }
        if skipped.is_empty() {
            return Ok(None);
        }
        let reasons: Vec<String> = skipped
            .iter()
            .map(|(path, e)| format!("{}: {}", path.display(), e.message))
            .collect();
        let message = format!(
            "none of the {} checkpoints here loads; {}",
            skipped.len(),
            reasons.join("; ")
        );
        Err(CheckpointError::new(
            CheckpointErrorKind::NoneUsable,
            &self.dir,
            message,
        ))
    }
}

/// Reads and verifies the checkpoint at `path`: one file, or a job's step
/// directory (its shards assembled into whole tensors).
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    if path.is_dir() {
        return sharded::load_dir(path);
    }
    let bytes = fs::read(path).map_err(|e| CheckpointError::io("could not read", path, &e))?;
    format::decode(&bytes, path)
}

/// The file name of the checkpoint of `step`.
fn file_name(step: u64) -> String {
    format!("step-{step:08}.safetensors")
}

/// The temporary file a checkpoint is written to before its rename.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// The step of a job's checkpoint directory name (`step-00000200`).
fn parse_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?;
    if digits.len() < 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = digits.parse().ok()?;
    (format!("step-{step:08}") == name).then_some(step)
}

/// The step of a checkpoint file name. Only the exact names
/// [`file_name`] makes count, so two files never claim one step.
fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?.strip_suffix(".safetensors")?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = digits.parse().ok()?;
    (file_name(step) == name).then_some(step)
}

/// What a checkpoint directory holds.
#[derive(Default)]
struct Scan {
    /// Finished checkpoints, by step ascending.
    finished: Vec<(u64, PathBuf)>,
    /// `.tmp` files of checkpoints, left by a crash or a failed save.
    stale: Vec<PathBuf>,
    /// Step directories of a job without a manifest: being written, or
    /// left by a crash.
    unpublished: Vec<(u64, PathBuf)>,
}

fn scan(dir: &Path) -> Result<Scan, CheckpointError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Scan::default()),
        Err(e) => return Err(CheckpointError::io("could not list", dir, &e)),
    };
    let mut found = Scan::default();
    for entry in entries {
        let entry = entry.map_err(|e| CheckpointError::io("could not list", dir, &e))?;
        let name = entry.file_name();
        // Checkpoint names are ASCII, so a name that is not UTF-8 is not ours.
        let Some(name) = name.to_str() else { continue };
        if let Some(step) = parse_name(name) {
            found.finished.push((step, entry.path()));
        } else if name.strip_suffix(".tmp").and_then(parse_name).is_some() {
            found.stale.push(entry.path());
        } else if let Some(step) = parse_dir_name(name).filter(|_| entry.path().is_dir()) {
            // A job's sharded checkpoint counts once its manifest is there.
            if sharded::is_published(&entry.path()) {
                found.finished.push((step, entry.path()));
            } else {
                found.unpublished.push((step, entry.path()));
            }
        }
    }
    found.finished.sort();
    Ok(found)
}

#[cfg(test)]
mod tests;
