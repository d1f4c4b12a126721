//! What a real `enigma run` leaves for the people watching it: the
//! quickstart shortened from the command line (`--set`), trained with
//! standard error piped (as under Slurm or nohup), prints a plain progress
//! line every `--log-every` steps and every evaluation; writes TensorBoard
//! event files that TensorBoard's own reader reads, with the scalars and
//! histograms of the run; stamps every `metrics.jsonl` record with its wall
//! time; keeps the resolved experiment and the overrides in the run
//! directory; `enigma eval` checks the same, overridden, experiment; and
//! `enigma predict` writes every window's predictions, which numpy reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use enigma::run::metrics::{read_records, RecordKind};

#[path = "../../../tests/common/python.rs"]
mod python;

const SETS: [&str; 8] = [
    "train.steps=8",
    "train.batch=4",
    "train.schedule=warmup_cosine(warmup: 2)",
    "train.eval.every=4",
    "train.eval.batches=1",
    "train.checkpoint.every=4",
    "d=32",
    "data.v1.stride=2s",
];

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-logs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.enigma")
}

#[test]
fn a_run_without_a_terminal_logs_lines_tensorboard_and_its_overrides() {
    let d = scratch("run");
    let out = d.join("run");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_enigma-run"));
    cmd.args(["run", "--no-baselines", "--log-every", "2", "--out"])
        .arg(&out)
        .arg(quickstart());
    for s in SETS {
        cmd.args(["--set", s]);
    }
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");

    // Plain lines: every second step, the last, and each evaluation.
    for line in [
        "step 2/8 · loss",
        "step 4/8 · loss",
        "step 8/8 · loss",
        "step 4 · val: loss",
        "step 8 · val: loss",
    ] {
        assert!(err.contains(line), "no `{line}` in:\n{err}");
    }
    assert!(!err.contains("step 3/8"), "{err}");
    assert!(err.contains("steps/s"), "{err}");

    // The run directory keeps the experiment as it ran.
    let resolved = std::fs::read_to_string(out.join("experiment.enigma")).unwrap();
    assert!(
        resolved.contains("steps: 8\n") && resolved.contains("dim d = 32\n"),
        "{resolved}"
    );
    let kept = std::fs::read_to_string(out.join("overrides.txt")).unwrap();
    assert_eq!(kept.lines().collect::<Vec<_>>(), SETS.to_vec());

    // Every JSONL record has its wall time, in order.
    let records = read_records(&out.join("metrics.jsonl")).unwrap();
    let times: Vec<f64> = records.iter().map(|r| r.time.unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let train: Vec<u64> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .map(|r| r.step)
        .collect();
    assert_eq!(train, (1..=8).collect::<Vec<_>>());
    for plot in ["loss.svg", "val_corr.svg"] {
        assert!(out.join(plot).is_file(), "no {plot}");
    }

    // TensorBoard's reader sees the run's scalars and histograms.
    if let Some(py) = python::python_with(&["tensorboard"]) {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/common/read_tensorboard.py");
        let o = Command::new(py).arg(script).arg(&out).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let view: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let steps = |tag: &str| -> Vec<u64> {
            view["scalars"][tag]
                .as_array()
                .unwrap_or_else(|| panic!("no `{tag}` in {view}"))
                .iter()
                .map(|e| e[0].as_u64().unwrap())
                .collect()
        };
        for tag in [
            "train/loss",
            "train/lr",
            "train/grad_norm",
            "train/windows_per_s",
        ] {
            assert_eq!(steps(tag), (1..=8).collect::<Vec<_>>(), "{tag}");
        }
        assert_eq!(steps("val/corr"), vec![4, 8]);
        assert_eq!(steps("val/loss"), vec![4, 8]);
        let h = view["histograms"]["val/corr_per_neuron"]
            .as_array()
            .unwrap();
        assert_eq!(h.len(), 2);
        assert!(h[0][1].as_f64().unwrap() > 0.0, "{h:?}");
    }

    // `enigma eval` checks the overridden experiment (with the file's
    // `d = 64` the checkpoint would not fit).
    let o = Command::new(env!("CARGO_BIN_EXE_enigma-run"))
        .args(["eval", "--split", "val"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // `enigma predict` writes every validation window's predictions, which
    // numpy reads with the shapes and windows the JSON lists.
    let preds = d.join("out/preds.npy");
    let o = Command::new(env!("CARGO_BIN_EXE_enigma-run"))
        .args(["predict", "--split", "val", "--out"])
        .arg(&preds)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/preds.json")).unwrap()).unwrap();
    assert_eq!(meta["split"], "val");
    assert_eq!(meta["step"], 8);
    assert_eq!(meta["prediction"], "response");
    let parts = meta["parts"].as_array().unwrap();
    // The quickstart's two sessions have 32 neurons each: one set of files.
    assert_eq!(parts.len(), 1, "{meta}");
    let shape: Vec<u64> = parts[0]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let windows = parts[0]["windows"].as_array().unwrap();
    assert_eq!(shape[0] as usize, windows.len());
    assert_eq!(&shape[1..], &[16, 32]);
    assert!(windows.iter().all(|w| w["start_s"].as_f64().is_some()));
    if let Some(py) = python::python_with(&["numpy"]) {
        let check = "import numpy as np, sys; p = np.load(sys.argv[1] + '.npy'); t = np.load(sys.argv[1] + '.target.npy'); m = np.load(sys.argv[1] + '.mask.npy'); \
assert p.dtype == np.float32 and m.dtype == np.bool_, (p.dtype, m.dtype); assert p.shape == t.shape == m.shape, (p.shape, t.shape, m.shape); \
assert (p >= 0).all() and np.isfinite(p).all(); assert 0 < m.mean() < 1, m.mean(); print(list(p.shape))";
        let o = Command::new(py)
            .args(["-c", check])
            .arg(d.join("out/preds"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let printed = String::from_utf8_lossy(&o.stdout);
        assert_eq!(printed.trim(), format!("{shape:?}"));
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_bad_override_stops_the_run_before_training_pointing_at_the_argument() {
    let d = scratch("bad");
    let o = Command::new(env!("CARGO_BIN_EXE_enigma-run"))
        .args(["run", "--set", "train.steps=0", "--out"])
        .arg(d.join("run"))
        .arg(quickstart())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("E0208") && err.contains("command line:1:19"),
        "{err}"
    );
    assert!(!d.join("run/metrics.jsonl").exists());
    std::fs::remove_dir_all(&d).unwrap();
}
