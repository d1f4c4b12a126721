//! The checkpoint store through its public API: round trips, keep-K
//! pruning, resuming past damaged files, stale temporary files, and the
//! errors for files that are not checkpoints.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use enigma::base::host::HostTensor;
use enigma::run::checkpoint::{load, Checkpoint, CheckpointDir, CheckpointErrorKind, I64Tensor};

/// A fresh directory under the system temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "enigma-checkpoint-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tensor(shape: Vec<usize>, data: Vec<f32>) -> HostTensor {
    HostTensor::new(shape, data).unwrap()
}

/// A small checkpoint whose values depend on `step`.
fn checkpoint(step: u64) -> Checkpoint {
    let s = step as f32;
    let tensors = BTreeMap::from([
        (
            "brain.transformer.blocks.layer.attn.q_proj.w#0".to_string(),
            tensor(vec![2, 3], (0..6).map(|i| i as f32 * s).collect()),
        ),
        (
            "adam.m/brain.readout.w".to_string(),
            tensor(vec![4], vec![s, -s, 0.5, -0.0]),
        ),
    ]);
    let metadata = BTreeMap::from([("loader.position".to_string(), format!("{}", step * 32))]);
    Checkpoint {
        step,
        tensors,
        ints: BTreeMap::from([("optim.t".to_string(), I64Tensor::scalar(step as i64))]),
        metadata,
    }
}

/// Every tensor as its name, shape and f32 bit patterns, so that NaN
/// payloads and the sign of zero are compared too.
fn bits(c: &Checkpoint) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    c.tensors
        .iter()
        .map(|(name, t)| {
            let data = t.data.iter().map(|v| v.to_bits()).collect();
            (name.clone(), t.shape.clone(), data)
        })
        .collect()
}

fn steps(dir: &CheckpointDir) -> Vec<u64> {
    dir.list()
        .unwrap()
        .into_iter()
        .map(|(step, _)| step)
        .collect()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_checkpoint_round_trips_bit_for_bit() {
    let tmp = TempDir::new("round-trip");
    let dir = CheckpointDir::new(tmp.path().join("nested/ckpt"), 3);
    let odd = [
        f32::from_bits(0x7fc0_1234), // a quiet NaN with a payload
        f32::from_bits(0xff80_0001), // a signalling NaN, negative
        -0.0,
        0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(1), // the smallest subnormal
        f32::MAX,
    ];
    let mut ckpt = checkpoint(200);
    ckpt.tensors.insert(
        "adam.v/μ naïve ✓".to_string(),
        tensor(vec![2, 4], odd.to_vec()),
    );
    ckpt.tensors
        .insert("rng.scalar".to_string(), tensor(vec![], vec![42.0]));
    ckpt.tensors
        .insert("empty".to_string(), tensor(vec![0, 3], vec![]));
    // Integers past f32's 24-bit mantissa, both extremes, and an empty one.
    ckpt.ints.insert(
        "counts".to_string(),
        I64Tensor::new(vec![3], vec![i64::MIN, (1 << 53) + 1, i64::MAX]).unwrap(),
    );
    ckpt.ints
        .insert("none".to_string(), I64Tensor::new(vec![0], vec![]).unwrap());
    ckpt.metadata.insert(
        "note".to_string(),
        "ünïcode, \"quotes\" and\nnewlines".to_string(),
    );

    let path = dir.save(&ckpt).unwrap();
    assert_eq!(
        path,
        tmp.path().join("nested/ckpt/step-00000200.safetensors")
    );
    assert_eq!(path, dir.path_for(200));

    let back = load(&path).unwrap();
    assert_eq!(back.step, 200);
    assert_eq!(back.metadata, ckpt.metadata);
    assert_eq!(bits(&back), bits(&ckpt));
    assert_eq!(back.ints, ckpt.ints);
    let latest = dir.latest().unwrap().unwrap();
    assert_eq!(latest.path, path);
    assert!(latest.skipped.is_empty());
    assert_eq!(bits(&latest.checkpoint), bits(&ckpt));
}

#[test]
fn pruning_keeps_exactly_the_newest_k() {
    let tmp = TempDir::new("keep");
    let dir = CheckpointDir::new(tmp.path(), 3);
    let expected: [&[u64]; 6] = [
        &[100],
        &[100, 200],
        &[100, 200, 300],
        &[200, 300, 400],
        &[300, 400, 500],
        &[400, 500, 600],
    ];
    for (step, kept) in (1..=6).map(|i| i * 100).zip(expected) {
        dir.save(&checkpoint(step)).unwrap();
        assert_eq!(steps(&dir), kept, "after saving step {step}");
    }
    assert_eq!(
        file_names(tmp.path()),
        [
            "step-00000400.safetensors",
            "step-00000500.safetensors",
            "step-00000600.safetensors"
        ]
    );
}

#[test]
fn keep_zero_still_keeps_the_checkpoint_just_written() {
    let tmp = TempDir::new("keep-zero");
    let dir = CheckpointDir::new(tmp.path(), 0);
    assert_eq!(dir.keep(), 1);
    dir.save(&checkpoint(1)).unwrap();
    dir.save(&checkpoint(2)).unwrap();
    assert_eq!(steps(&dir), [2]);
}

#[test]
fn steps_sort_by_number_past_eight_digits() {
    let tmp = TempDir::new("digits");
    let dir = CheckpointDir::new(tmp.path(), 5);
    for step in [123_456_789, 99_999_999, 7] {
        dir.save(&checkpoint(step)).unwrap();
    }
    assert_eq!(steps(&dir), [7, 99_999_999, 123_456_789]);
    let latest = dir.latest().unwrap().unwrap();
    assert_eq!(latest.checkpoint.step, 123_456_789);
    assert!(latest.path.ends_with("step-123456789.safetensors"));
}

#[test]
fn latest_skips_a_truncated_newest_checkpoint() {
    let tmp = TempDir::new("truncated");
    let dir = CheckpointDir::new(tmp.path(), 5);
    for step in [100, 200, 300] {
        dir.save(&checkpoint(step)).unwrap();
    }
    let newest = dir.path_for(300);
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();

    let latest = dir.latest().unwrap().unwrap();
    assert_eq!(latest.path, dir.path_for(200));
    assert_eq!(bits(&latest.checkpoint), bits(&checkpoint(200)));
    assert_eq!(latest.skipped.len(), 1);
    let (path, e) = &latest.skipped[0];
    assert_eq!(path, &newest);
    assert_eq!(e.kind, CheckpointErrorKind::Format);
    assert!(e.to_string().contains("step-00000300.safetensors"), "{e}");
    assert!(e.message.contains("truncated"), "{e}");
}

#[test]
fn latest_skips_a_bit_flipped_newest_checkpoint() {
    let tmp = TempDir::new("flipped");
    let dir = CheckpointDir::new(tmp.path(), 5);
    for step in [100, 200, 300] {
        dir.save(&checkpoint(step)).unwrap();
    }
    let newest = dir.path_for(300);
    let mut bytes = fs::read(&newest).unwrap();
    // A byte inside the tensor data, at the end of the file: the header
    // still parses, so only the content hash can tell.
    let last = bytes.len() - 3;
    bytes[last] ^= 0x10;
    fs::write(&newest, &bytes).unwrap();

    let latest = dir.latest().unwrap().unwrap();
    assert_eq!(latest.checkpoint.step, 200);
    assert_eq!(latest.skipped.len(), 1);
    let (path, e) = &latest.skipped[0];
    assert_eq!(path, &newest);
    assert_eq!(e.kind, CheckpointErrorKind::Corrupt);
    assert!(e.message.contains("hash"), "{e}");
    assert_eq!(
        load(&newest).unwrap_err().kind,
        CheckpointErrorKind::Corrupt
    );
}

#[test]
fn latest_skips_every_damaged_file_newest_first() {
    let tmp = TempDir::new("two-damaged");
    let dir = CheckpointDir::new(tmp.path(), 5);
    for step in [100, 200, 300] {
        dir.save(&checkpoint(step)).unwrap();
    }
    fs::write(dir.path_for(300), b"").unwrap();
    // A good file under the wrong name is damaged too: resuming from it
    // would restart at the wrong step.
    fs::copy(dir.path_for(100), dir.path_for(200)).unwrap();

    let latest = dir.latest().unwrap().unwrap();
    assert_eq!(latest.checkpoint.step, 100);
    let skipped: Vec<_> = latest
        .skipped
        .iter()
        .map(|(p, e)| (p.clone(), e.kind))
        .collect();
    assert_eq!(
        skipped,
        [
            (dir.path_for(300), CheckpointErrorKind::Format),
            (dir.path_for(200), CheckpointErrorKind::Corrupt),
        ]
    );
    assert!(latest.skipped[1].1.message.contains("named for step 200"));
}

#[test]
fn a_directory_of_only_damaged_checkpoints_is_an_error() {
    let tmp = TempDir::new("all-damaged");
    let dir = CheckpointDir::new(tmp.path(), 5);
    dir.save(&checkpoint(100)).unwrap();
    fs::write(dir.path_for(100), b"not a checkpoint at all").unwrap();
    let e = dir.latest().unwrap_err();
    assert_eq!(e.kind, CheckpointErrorKind::NoneUsable);
    assert_eq!(e.path, tmp.path());
    assert!(e.message.contains("step-00000100.safetensors"), "{e}");
}

#[test]
fn an_empty_or_missing_directory_has_no_latest() {
    let tmp = TempDir::new("empty");
    let missing = CheckpointDir::new(tmp.path().join("never-made"), 3);
    assert!(missing.list().unwrap().is_empty());
    assert!(missing.latest().unwrap().is_none());
    fs::create_dir_all(tmp.path()).unwrap();
    fs::write(tmp.path().join("notes.txt"), "unrelated").unwrap();
    let empty = CheckpointDir::new(tmp.path(), 3);
    assert!(empty.latest().unwrap().is_none());
}

#[test]
fn a_stale_tmp_file_is_ignored_then_removed() {
    let tmp = TempDir::new("stale");
    let dir = CheckpointDir::new(tmp.path(), 3);
    dir.save(&checkpoint(100)).unwrap();
    // What a crash in the middle of writing step 200 leaves behind.
    let stale = tmp.path().join("step-00000200.safetensors.tmp");
    fs::write(&stale, b"half a checkpoint").unwrap();
    // Files that only look similar are not the store's to remove.
    fs::write(tmp.path().join("other.tmp"), b"keep me").unwrap();

    assert_eq!(steps(&dir), [100]);
    let latest = dir.latest().unwrap().unwrap();
    assert_eq!(latest.checkpoint.step, 100);
    assert!(latest.skipped.is_empty());
    assert!(stale.exists());

    dir.save(&checkpoint(300)).unwrap();
    assert!(!stale.exists());
    assert_eq!(
        file_names(tmp.path()),
        [
            "other.tmp",
            "step-00000100.safetensors",
            "step-00000300.safetensors"
        ]
    );
}

#[test]
fn saving_a_reserved_metadata_key_fails_and_writes_nothing() {
    let tmp = TempDir::new("reserved");
    let dir = CheckpointDir::new(tmp.path(), 3);
    let mut ckpt = checkpoint(100);
    ckpt.metadata
        .insert("enigma.hash".to_string(), "fnv1a64:0".to_string());
    let e = dir.save(&ckpt).unwrap_err();
    assert_eq!(e.kind, CheckpointErrorKind::Invalid);
    assert!(e.message.contains("`enigma.hash` is reserved"), "{e}");
    assert!(!tmp.path().exists());
}

#[test]
fn loading_a_missing_file_says_so() {
    let tmp = TempDir::new("missing");
    let path = tmp.path().join("step-00000100.safetensors");
    let e = load(&path).unwrap_err();
    assert_eq!(e.kind, CheckpointErrorKind::NotFound);
    assert_eq!(e.path, path);
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("could not read"), "{text}");
}

#[test]
fn loading_a_file_that_is_not_safetensors_says_so() {
    let tmp = TempDir::new("not-safetensors");
    fs::create_dir_all(tmp.path()).unwrap();
    let text_file = tmp.path().join("notes.safetensors");
    fs::write(&text_file, "this is a text file, not a checkpoint\n").unwrap();
    let e = load(&text_file).unwrap_err();
    assert_eq!(e.kind, CheckpointErrorKind::Format);
    assert!(e.to_string().contains("notes.safetensors"), "{e}");
    assert!(e.message.contains("not a safetensors file"), "{e}");

    let empty = tmp.path().join("empty.safetensors");
    fs::write(&empty, b"").unwrap();
    let e = load(&empty).unwrap_err();
    assert_eq!(e.kind, CheckpointErrorKind::Format);
    assert!(e.message.contains("0 bytes"), "{e}");
}

#[test]
fn a_plain_safetensors_file_is_not_a_checkpoint() {
    let tmp = TempDir::new("plain");
    fs::create_dir_all(tmp.path()).unwrap();
    let path = tmp.path().join("model.safetensors");
    // An 8-byte length, a JSON header without `enigma.format`, the data.
    let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&1.0f32.to_le_bytes());
    fs::write(&path, bytes).unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.kind, CheckpointErrorKind::NotCheckpoint);
    assert!(e.message.contains("enigma.format"), "{e}");
}
