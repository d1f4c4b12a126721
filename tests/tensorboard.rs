//! The TensorBoard event files a run writes, read back by TensorBoard's own
//! reader (`tests/common/read_tensorboard.py`, the venv's `tensorboard`):
//! every scalar at its step with the wall time `metrics.jsonl` gives it,
//! the per-neuron correlations as histograms, and a resumed run's files
//! giving each step once, with the resumed run's values.
//!
//! The whole-run path (a real `enigma run` writing these through its
//! trainer) is tested in `crates/enigma-torch/tests/logs.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use enigma::run::logs::RunLogs;
use enigma::run::metrics::{read_records, Record, RecordKind};

#[path = "common/python.rs"]
mod python;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-tb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What TensorBoard's reader finds in `dir`.
fn tensorboard_view(python: &Path, dir: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/read_tensorboard.py");
    let out = Command::new(python).arg(script).arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn steps_of(view: &serde_json::Value, tag: &str) -> Vec<u64> {
    view["scalars"][tag]
        .as_array()
        .unwrap_or_else(|| panic!("no scalar `{tag}` in {view}"))
        .iter()
        .map(|e| e[0].as_u64().unwrap())
        .collect()
}

#[test]
fn tensorboard_reads_every_scalar_and_histogram_with_the_jsonl_wall_times() {
    let Some(python) = python::python_with(&["tensorboard"]) else {
        return;
    };
    let dir = scratch("read");
    let mut logs = RunLogs::open(&dir, None).unwrap();
    for step in 1..=6u64 {
        logs.write(
            Record::train(step)
                .with("loss", 1.0 / step as f64)
                .with("lr", 1e-3)
                .with("grad_norm", 0.5),
        )
        .unwrap();
        if step % 3 == 0 {
            logs.write(
                Record::eval(step, "val")
                    .with("loss", 0.9)
                    .with("corr", 0.25),
            )
            .unwrap();
            logs.correlations(step, "val", &[0.1, 0.2, 0.3, f64::NAN])
                .unwrap();
        }
    }
    // The plots were drawn at the evaluations, before the run ended.
    assert!(
        logs.plots().iter().any(|p| p.ends_with("loss.svg")),
        "{:?}",
        logs.plots()
    );
    drop(logs);
    let view = tensorboard_view(&python, &dir);
    assert_eq!(steps_of(&view, "train/loss"), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(steps_of(&view, "train/grad_norm"), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(steps_of(&view, "val/corr"), vec![3, 6]);
    // Values and wall times are those of metrics.jsonl (TensorBoard keeps
    // scalars as 32-bit floats, wall times as doubles).
    let records = read_records(&dir.join("metrics.jsonl")).unwrap();
    let train: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .collect();
    for (event, record) in view["scalars"]["train/loss"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&train)
    {
        assert_eq!(event[1].as_f64(), record.time, "step {}", record.step);
        assert_eq!(
            event[2].as_f64(),
            record.get("loss").map(|v| v as f32 as f64)
        );
    }
    let histograms = view["histograms"]["val/corr_per_neuron"]
        .as_array()
        .unwrap();
    assert_eq!(histograms.len(), 2);
    // Three finite correlations; the NaN is left out.
    assert_eq!(histograms[0][1].as_f64(), Some(3.0));
    assert!((histograms[0][2].as_f64().unwrap() - 0.6).abs() < 1e-9);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resumed_run_shows_each_step_once_with_the_resumed_values() {
    let Some(python) = python::python_with(&["tensorboard"]) else {
        return;
    };
    let dir = scratch("resume");
    let mut logs = RunLogs::open(&dir, None).unwrap();
    for step in 1..=6u64 {
        logs.write(Record::train(step).with("loss", 1.0)).unwrap();
    }
    drop(logs);
    // The run stopped after step 6 and resumes from its checkpoint of
    // step 4: steps 5 and 6 are taken again, with other losses.
    let mut logs = RunLogs::open(&dir, Some(4)).unwrap();
    for step in 5..=8u64 {
        logs.write(Record::train(step).with("loss", 2.0)).unwrap();
    }
    drop(logs);
    let view = tensorboard_view(&python, &dir);
    assert_eq!(steps_of(&view, "train/loss"), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let losses: Vec<f64> = view["scalars"]["train/loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[2].as_f64().unwrap())
        .collect();
    assert_eq!(losses, vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
    std::fs::remove_dir_all(&dir).unwrap();
}
