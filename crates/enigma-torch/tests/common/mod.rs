//! What the multi-process tests share: `mpirun` of the runtime, a turn on
//! the machine, scratch directories, and the losses of a run compared step
//! by step.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use enigma::run::metrics::{read_records, RecordKind};

/// One job at a time: they would only slow each other down.
pub static MACHINE: Mutex<()> = Mutex::new(());

pub fn runtime() -> &'static str {
    env!("CARGO_BIN_EXE_enigma-run")
}

pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `mpirun -n N enigma-run run --quiet ARGS`, with `env`, waited for.
pub fn mpirun(n: usize, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let mut c = Command::new("mpirun");
    c.args(["-n", &n.to_string(), "--oversubscribe", "--bind-to", "none"]);
    if is_root() {
        c.arg("--allow-run-as-root");
    }
    c.args(["-x", "OMP_NUM_THREADS=1"]);
    for (k, v) in env {
        c.args(["-x", &format!("{k}={v}")]);
    }
    c.arg(runtime()).args(["run", "--quiet"]).args(args);
    let t = Instant::now();
    let out = c
        .output()
        .expect("mpirun (OpenMPI, installed by dev.sh) is needed");
    (out, t.elapsed())
}

pub fn losses(run: &Path) -> Vec<(u64, f64)> {
    read_records(&run.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .map(|r| (r.step, r.values["loss"]))
        .collect()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The largest relative difference between two runs' losses, step by step.
pub fn largest_difference(a: &[(u64, f64)], b: &[(u64, f64)]) -> f64 {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    a.iter()
        .zip(b)
        .map(|((sa, la), (sb, lb))| {
            assert_eq!(sa, sb);
            (la - lb).abs() / la.abs().max(1e-12)
        })
        .fold(0.0, f64::max)
}

/// The records of `kind` of a run, by step.
pub fn records(run: &Path, kind: RecordKind) -> Vec<enigma::run::metrics::Record> {
    read_records(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == kind)
        .collect()
}
