//! `enigma run` end to end on a small copy of the quickstart: a run killed
//! with SIGKILL and resumed ends bit-identical to an uninterrupted one; a
//! SIGINT finishes the step, checkpoints and exits 130; an experiment with
//! errors stops at compile time; a missing GPU is an error; an earlier
//! run's checkpoints are not overwritten.
#![cfg(feature = "torch")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use enigma::run::checkpoint::load;
use enigma::run::metrics::{read_records, RecordKind};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_enigma"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The quickstart, shortened: `steps` steps of 4 windows, a checkpoint
/// every 2 steps, evaluation every 4.
fn experiment(dir: &Path, steps: u64) -> PathBuf {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.enigma"),
    )
    .unwrap();
    let src = src
        .replace("steps: 600", &format!("steps: {steps}"))
        .replace("batch: 16", "batch: 4")
        .replace(
            "schedule: warmup_cosine(warmup: 50)",
            "schedule: warmup_cosine(warmup: 2)",
        )
        .replace(
            "checkpoint { every: 200, keep: 2 }",
            "checkpoint { every: 2, keep: 3 }",
        )
        .replace(
            "eval { every: 100, split: val, batches: 4 }",
            "eval { every: 4, split: val, batches: 1 }",
        );
    assert!(src.contains(&format!("steps: {steps}")) && src.contains("every: 2, keep: 3"));
    let path = dir.join("short.enigma");
    std::fs::write(&path, src).unwrap();
    path
}

fn newest(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("checkpoints"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    v.sort();
    v.pop()
}

#[test]
fn a_run_killed_and_resumed_ends_bit_identical() {
    let d = scratch("kill");
    let exp = experiment(&d, 12);
    let (a, b) = (d.join("a"), d.join("b"));
    let st = bin()
        .args(["run", "--quiet", "--out"])
        .arg(&a)
        .arg(&exp)
        .status()
        .unwrap();
    assert!(st.success());

    let mut child = bin()
        .args(["run", "--quiet", "--out"])
        .arg(&b)
        .arg(&exp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while newest(&b).is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let st = child.wait().unwrap();
    assert!(!st.success(), "the run finished before it was killed");
    let killed_at = newest(&b).unwrap();
    assert!(!killed_at.ends_with("step-00000012.safetensors"));

    let st = bin()
        .args(["run", "--quiet", "--resume", "--out"])
        .arg(&b)
        .arg(&exp)
        .status()
        .unwrap();
    assert!(st.success());
    let fa = load(&a.join("checkpoints/step-00000012.safetensors")).unwrap();
    let fb = load(&b.join("checkpoints/step-00000012.safetensors")).unwrap();
    assert_eq!(fa.tensors.len(), fb.tensors.len());
    for (name, ta) in &fa.tensors {
        let tb = &fb.tensors[name];
        let bits = |t: &enigma::run::host::HostTensor| {
            t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(bits(ta), bits(tb), "{name} differs after the resume");
    }
    assert_eq!(fa.metadata, fb.metadata);
    // The resumed log has each step once, in order.
    let steps: Vec<u64> = read_records(&b.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>());
    assert!(b.join("loss.svg").exists() && b.join("plan.txt").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sigint_finishes_the_step_checkpoints_and_exits_130() {
    let d = scratch("int");
    let exp = experiment(&d, 400);
    let out = d.join("r");
    let mut child = bin()
        .args(["run", "--quiet", "--out"])
        .arg(&out)
        .arg(&exp)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while newest(&out).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGINT, as Ctrl-C sends it.
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130));
    let records = read_records(&out.join("metrics.jsonl")).unwrap();
    let last_train = records
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .map(|r| r.step)
        .max()
        .unwrap();
    assert!(last_train < 400);
    // The checkpoint is of the last step trained.
    assert!(newest(&out)
        .unwrap()
        .ends_with(format!("step-{last_train:08}.safetensors")));
    assert!(records
        .iter()
        .any(|r| r.note.as_deref().is_some_and(|n| n.contains("signal"))));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn errors_stop_at_compile_time_and_bad_requests_are_refused() {
    let d = scratch("errors");
    let exp = experiment(&d, 3);
    let broken = d.join("broken.enigma");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&exp)
            .unwrap()
            .replace("Transformer(layers", "Transfromer(layers"),
    )
    .unwrap();
    let o = bin()
        .args(["run", "--out"])
        .arg(d.join("x"))
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("E0105") && err.contains("not run"), "{err}");
    assert!(
        !d.join("x").exists(),
        "nothing is written for an experiment with errors"
    );

    // A run directory with checkpoints is not overwritten.
    let out = d.join("r");
    assert!(bin()
        .args(["run", "--quiet", "--out"])
        .arg(&out)
        .arg(&exp)
        .status()
        .unwrap()
        .success());
    let before = std::fs::read(newest(&out).unwrap()).unwrap();
    let o = bin()
        .args(["run", "--quiet", "--out"])
        .arg(&out)
        .arg(&exp)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    assert_eq!(std::fs::read(newest(&out).unwrap()).unwrap(), before);

    if !tch::Cuda::is_available() {
        let o = bin()
            .args(["run", "--quiet", "--device", "cuda", "--out"])
            .arg(d.join("g"))
            .arg(&exp)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("CUDA device was asked for"));
    }
    let _ = std::fs::remove_dir_all(&d);
}
