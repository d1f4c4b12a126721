//! Fault injection for the checkpoint directory: a full disk, a failed
//! rename or removal, and the order of the calls `save` makes.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A fresh directory under the system temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "enigma-checkpoint-unit-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The real file system, with a disk that holds `budget` more bytes: a
/// write past it stores what fits, then fails as a full disk does.
#[derive(Debug)]
struct FullDisk {
    budget: AtomicU64,
}

impl Fs for FullDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealFs.create_dir_all(dir)
    }
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let left = self.budget.load(Ordering::SeqCst);
        let len = bytes.len() as u64;
        if len <= left {
            self.budget.store(left - len, Ordering::SeqCst);
            return RealFs.write_synced(path, bytes);
        }
        self.budget.store(0, Ordering::SeqCst);
        RealFs.write_synced(path, &bytes[..left as usize])?;
        Err(io::Error::from_raw_os_error(28))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealFs.remove(path)
    }
}

/// The real file system, recording every call, with renames or
/// removals that fail once their switch is on. Clones share the state,
/// so a test keeps one to steer the one the directory owns.
#[derive(Clone, Debug, Default)]
struct Faulty(Arc<FaultyState>);

#[derive(Debug, Default)]
struct FaultyState {
    calls: Mutex<Vec<String>>,
    fail_rename: AtomicBool,
    fail_remove: AtomicBool,
}

impl Faulty {
    fn log(&self, call: String) {
        self.0.calls.lock().unwrap().push(call);
    }
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn denied() -> io::Error {
    io::Error::from(io::ErrorKind::PermissionDenied)
}

impl Fs for Faulty {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealFs.create_dir_all(dir)
    }
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.log(format!("write {}", name(path)));
        RealFs.write_synced(path, bytes)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.log(format!("rename {} {}", name(from), name(to)));
        if self.0.fail_rename.load(Ordering::SeqCst) {
            return Err(denied());
        }
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.log("sync_dir".to_string());
        RealFs.sync_dir(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.log(format!("remove {}", name(path)));
        if self.0.fail_remove.load(Ordering::SeqCst) {
            return Err(denied());
        }
        RealFs.remove(path)
    }
}

fn checkpoint(step: u64) -> Checkpoint {
    let w = HostTensor {
        shape: vec![2, 3],
        data: (0..6).map(|i| (i * step) as f32 - 0.5).collect(),
    };
    let m = HostTensor {
        shape: vec![6],
        data: vec![f32::from_bits(0x7fc0_0001), -0.0, 1e-45, 0.0, 1.0, -1.0],
    };
    Checkpoint {
        step,
        tensors: BTreeMap::from([("w".to_string(), w), ("optim.m/w".to_string(), m)]),
        // The step count as the runtime stores it, past what f32 holds.
        ints: BTreeMap::from([(
            "optim.t".to_string(),
            I64Tensor::scalar((1 << 53) + step as i64),
        )]),
        metadata: BTreeMap::from([("run".to_string(), "unit".to_string())]),
    }
}

/// Every tensor as its name, shape and bit patterns (f32 widened), so
/// that NaN payloads and the sign of zero are compared too.
fn bits(c: &Checkpoint) -> Vec<(String, Vec<usize>, Vec<u64>)> {
    let floats = c.tensors.iter().map(|(n, t)| {
        let data = t.data.iter().map(|v| u64::from(v.to_bits())).collect();
        (format!("F32 {n}"), t.shape.clone(), data)
    });
    let ints = c.ints.iter().map(|(n, t)| {
        let data = t.data.iter().map(|&v| v as u64).collect();
        (format!("I64 {n}"), t.shape.clone(), data)
    });
    floats.chain(ints).collect()
}

fn steps(dir: &CheckpointDir) -> Vec<u64> {
    dir.list().unwrap().into_iter().map(|(s, _)| s).collect()
}

#[test]
fn a_full_disk_loses_only_the_checkpoint_being_written() {
    let tmp = TempDir::new("full");
    let size = format::encode(&checkpoint(1), Path::new("x"))
        .unwrap()
        .len() as u64;
    // Room for two checkpoints and half of a third.
    let budget = AtomicU64::new(2 * size + size / 2);
    let dir = CheckpointDir::with_fs(&tmp.0, 5, Box::new(FullDisk { budget }));
    dir.save(&checkpoint(1)).unwrap();
    let second = dir.save(&checkpoint(2)).unwrap();
    let before = fs::read(&second).unwrap();

    let e = dir.save(&checkpoint(3)).unwrap_err();
    assert_eq!(e.kind, CheckpointErrorKind::StorageFull);
    assert_eq!(e.path, tmp_path(&dir.path_for(3)));
    let text = e.to_string();
    assert!(text.contains("step-00000003.safetensors.tmp"), "{text}");
    assert!(text.to_lowercase().contains("no space left"), "{text}");

    assert!(!dir.path_for(3).exists());
    assert!(!tmp_path(&dir.path_for(3)).exists());
    assert_eq!(fs::read(&second).unwrap(), before);
    assert_eq!(bits(&load(&second).unwrap()), bits(&checkpoint(2)));
    assert_eq!(steps(&dir), [1, 2]);
    assert_eq!(dir.latest().unwrap().unwrap().checkpoint.step, 2);
}

#[test]
fn save_writes_syncs_renames_syncs_the_directory_then_prunes() {
    let tmp = TempDir::new("order");
    let fs = Faulty::default();
    let dir = CheckpointDir::with_fs(&tmp.0, 1, Box::new(fs.clone()));
    dir.save(&checkpoint(1)).unwrap();
    dir.save(&checkpoint(2)).unwrap();
    let calls = fs.0.calls.lock().unwrap().clone();
    let one = "step-00000001.safetensors";
    let two = "step-00000002.safetensors";
    let expected = [
        format!("write {one}.tmp"),
        format!("rename {one}.tmp {one}"),
        "sync_dir".to_string(),
        format!("write {two}.tmp"),
        format!("rename {two}.tmp {two}"),
        "sync_dir".to_string(),
        format!("remove {one}"),
    ];
    assert_eq!(calls, expected);
    assert_eq!(steps(&dir), [2]);
}

#[test]
fn a_failed_rename_leaves_the_previous_checkpoint_and_no_new_file() {
    let tmp = TempDir::new("rename");
    let fs = Faulty::default();
    let dir = CheckpointDir::with_fs(&tmp.0, 3, Box::new(fs.clone()));
    dir.save(&checkpoint(1)).unwrap();
    fs.0.fail_rename.store(true, Ordering::SeqCst);
    let e = dir.save(&checkpoint(2)).unwrap_err();
    assert_eq!(e.kind, CheckpointErrorKind::Io);
    assert_eq!(e.path, tmp_path(&dir.path_for(2)));
    assert!(e.message.contains("could not rename"), "{e}");
    assert!(!dir.path_for(2).exists());
    assert!(!tmp_path(&dir.path_for(2)).exists());
    assert_eq!(steps(&dir), [1]);
}

#[test]
fn a_failed_prune_is_reported_but_the_new_checkpoint_stands() {
    let tmp = TempDir::new("prune");
    let fs = Faulty::default();
    let dir = CheckpointDir::with_fs(&tmp.0, 1, Box::new(fs.clone()));
    dir.save(&checkpoint(1)).unwrap();
    fs.0.fail_remove.store(true, Ordering::SeqCst);
    let e = dir.save(&checkpoint(2)).unwrap_err();
    assert_eq!(e.kind, CheckpointErrorKind::Prune);
    assert_eq!(e.path, dir.path_for(1));
    assert!(
        e.message.contains("step-00000002.safetensors was saved"),
        "{e}"
    );
    assert_eq!(steps(&dir), [1, 2]);
    assert_eq!(bits(&load(&dir.path_for(2)).unwrap()), bits(&checkpoint(2)));
}

#[test]
fn only_canonical_names_are_checkpoints() {
    assert_eq!(parse_name("step-00000200.safetensors"), Some(200));
    assert_eq!(parse_name("step-123456789.safetensors"), Some(123_456_789));
    for name in [
        "step-200.safetensors",
        "step-000000200.safetensors",
        "step-+0000200.safetensors",
        "step-0000020a.safetensors",
        "step-00000200.safetensors.tmp",
        "step-.safetensors",
        "model.safetensors",
    ] {
        assert_eq!(parse_name(name), None, "{name}");
    }
}

#[test]
fn the_step_count_survives_save_latest_and_consolidation_exactly() {
    let tmp = TempDir::new("count");
    let dir = CheckpointDir::new(&tmp.0, 2);
    let path = dir.save(&checkpoint(9)).unwrap();
    let back = load(&path).unwrap();
    // Bit patterns, since the moments hold a NaN (never equal to itself).
    assert_eq!(bits(&back), bits(&checkpoint(9)));
    assert_eq!(back.ints["optim.t"].single(), Some((1 << 53) + 9));
    // A sharded copy (one rank's whole state) assembles to the same.
    let parts: Vec<sharded::Part> = back
        .tensors
        .iter()
        .map(|(n, t)| sharded::Part::whole(n, t))
        .collect();
    let jobs = tmp.0.join("job");
    sharded::write_shard_state(&jobs, 9, 0, &parts, &back.ints).unwrap();
    let published = CheckpointDir::new(&jobs, 2)
        .publish_sharded(9, 1, &back.metadata)
        .unwrap();
    let assembled = load(&published).unwrap();
    assert_eq!(bits(&assembled), bits(&checkpoint(9)));
    assert_eq!(assembled.metadata, checkpoint(9).metadata);
}

#[test]
fn i64_tensor_new_checks_the_element_count() {
    assert_eq!(
        I64Tensor::new(vec![2], vec![1, 2]).unwrap().data,
        vec![1, 2]
    );
    let e = I64Tensor::new(vec![2, 2], vec![1]).unwrap_err();
    assert_eq!(e.len, 1);
    assert!(I64Tensor::new(vec![usize::MAX, 2], vec![]).is_err());
    assert_eq!(I64Tensor::scalar(-3).single(), Some(-3));
    assert_eq!(
        I64Tensor::new(vec![1, 1], vec![4]).unwrap().single(),
        Some(4)
    );
    assert_eq!(I64Tensor::new(vec![2], vec![4, 5]).unwrap().single(), None);
}
