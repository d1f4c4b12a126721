//! Tensor and pipeline parallelism across processes, end to end under
//! `mpirun` on the CPU: every layout of `examples/parallel/` (tensor
//! parallel with and without sequence parallelism, two pipeline stages
//! under 1F1B and GPipe, tensor x pipeline, data x tensor with ZeRO 1,
//! data x pipeline with activation checkpointing) trains 20 steps with the
//! loss of the one-process run at every step (1e-4 relative; the largest
//! difference is printed), the same gradient norm and the same evaluation;
//! every rank records its peak memory and step time beside the plan's
//! estimate; a checkpoint saved under tensor parallelism consolidates into
//! the one-process tensors and resumes under a pipeline as if the run had
//! not stopped.
//!
//! The model is the quickstart's with grouped-query attention, small
//! enough for four processes to share two cores (`--oversubscribe`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use enigma::run::metrics::RecordKind;

/// Each example layout and the processes it takes.
const LAYOUTS: &[(&str, usize)] = &[
    ("tp2", 2),
    ("tp2_sequence_parallel", 2),
    ("pp2_1f1b", 2),
    ("pp2_gpipe", 2),
    ("tp2_pp2", 4),
    ("dp2_tp2_zero1", 4),
    ("dp2_pp2_checkpointed", 4),
];

const TOLERANCE: f64 = 1e-4;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/parallel")
}

/// An example's text from its first item (after the doc comment) to its
/// `parallel` block, and the block.
fn split(src: &str) -> (&str, &str) {
    let start = src
        .find("\nuse ")
        .expect("an example imports the standard library");
    let block = src
        .find("\nparallel {")
        .expect("an example has a parallel block");
    (&src[start..block], &src[block..])
}

/// `name`'s example as the tests run it: evaluated on one batch,
/// checkpointed every 10 steps; with `layout` as its parallel block when
/// given (the one-process reference).
fn experiment(dir: &Path, name: &str, layout: Option<&str>) -> PathBuf {
    let src = std::fs::read_to_string(examples().join(format!("{name}.enigma"))).unwrap();
    let mut src = src.replace("batches: 4", "batches: 1").replace(
        "checkpoint { every: 100, keep: 2 }",
        "checkpoint { every: 10, keep: 2 }",
    );
    if let Some(layout) = layout {
        let (_, block) = split(&src);
        src = src.replace(block, layout);
    }
    let path = dir.join(format!("{name}.enigma"));
    std::fs::write(&path, src).unwrap();
    path
}

/// The one-process run every layout is compared with: 20 steps.
fn reference(dir: &Path) -> PathBuf {
    let one = experiment(
        dir,
        "tp2",
        Some("\nparallel {\n  mesh { dp: 1 }\n  batch -> dp\n}\n"),
    );
    let run = dir.join("one");
    let out = Command::new(runtime())
        .args(["run", "--quiet", "--steps", "20", "--out"])
        .arg(&run)
        .arg(&one)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    run
}

/// The largest relative difference of field `field` of the records of
/// `kind` between two runs.
fn field_difference(a: &Path, b: &Path, kind: RecordKind, field: &str) -> f64 {
    let (ra, rb) = (records(a, kind), records(b, kind));
    assert_eq!(
        ra.len(),
        rb.len(),
        "{field}: {} vs {} records",
        ra.len(),
        rb.len()
    );
    assert!(!ra.is_empty(), "{field}: no records");
    ra.iter()
        .zip(&rb)
        .map(|(x, y)| {
            assert_eq!(x.step, y.step);
            let (u, v) = (x.values[field], y.values[field]);
            (u - v).abs() / u.abs().max(1e-3)
        })
        .fold(0.0, f64::max)
}

#[test]
fn the_examples_differ_only_in_their_parallel_block() {
    let names: Vec<String> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".enigma"))
        .collect();
    let mut listed: Vec<String> = LAYOUTS.iter().map(|(n, _)| format!("{n}.enigma")).collect();
    let mut found = names.clone();
    listed.sort();
    found.sort();
    assert_eq!(found, listed, "every example layout is tested below");
    let model = |n: &str| {
        let src = std::fs::read_to_string(examples().join(n)).unwrap();
        split(&src).0.to_string()
    };
    let first = model(&names[0]);
    for n in &names {
        assert_eq!(model(n), first, "{n} trains another model");
    }
}

#[test]
fn every_layout_trains_as_one_process_does() {
    let _turn = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("layouts");
    let one = reference(&dir);
    assert_eq!(losses(&one).len(), 20);
    for &(name, world) in LAYOUTS {
        let exp = experiment(&dir, name, None);
        let run = dir.join(name);
        let (out, took) = mpirun(
            world,
            &[
                "--steps",
                "20",
                "--out",
                run.to_str().unwrap(),
                exp.to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let d = largest_difference(&losses(&one), &losses(&run));
        let g = field_difference(&one, &run, RecordKind::Train, "grad_norm");
        let e = field_difference(&one, &run, RecordKind::Eval, "loss");
        let c = field_difference(&one, &run, RecordKind::Eval, "corr");
        println!(
            "{name} on {world} processes ({:.0} s): loss {d:.2e}, gradient norm {g:.2e}, evaluation loss {e:.2e}, correlation {c:.2e} (largest relative differences)",
            took.as_secs_f64()
        );
        assert!(d < TOLERANCE, "{name}: loss differs by {d:.2e}");
        assert!(g < TOLERANCE, "{name}: gradient norm differs by {g:.2e}");
        assert!(e < TOLERANCE, "{name}: evaluation loss differs by {e:.2e}");
        assert!(c < TOLERANCE, "{name}: correlation differs by {c:.2e}");
        // Every rank measured itself beside the plan's estimate.
        for rank in 0..world {
            let p = enigma::run::ranks::path(&run, rank);
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("{name}: {}: {e}", p.display()));
            let r: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(r["rank"], rank);
            assert_eq!(r["steps"], 20);
            assert!(r["step_s"]["median"].as_f64().unwrap() > 0.0, "{text}");
            assert!(
                r["memory"]["peak_rss_bytes"].as_u64().unwrap() > 0,
                "{text}"
            );
            assert!(
                r["estimate"]["memory_bytes"].as_f64().unwrap() > 0.0,
                "{text}"
            );
        }
    }
}

#[test]
fn a_tensor_parallel_checkpoint_resumes_under_a_pipeline() {
    let _turn = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("reshard");
    let one = reference(&dir);
    // Ten steps under tensor parallelism, checkpointed at step 10.
    let run = dir.join("run");
    let tp = experiment(&dir, "tp2", None);
    let (out, _) = mpirun(
        2,
        &[
            "--steps",
            "10",
            "--out",
            run.to_str().unwrap(),
            tp.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Its shards consolidate into the tensors one process holds at step 10.
    let out = Command::new(runtime())
        .args(["checkpoint", "consolidate", "--step", "10"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sharded =
        enigma::run::checkpoint::load(&run.join("consolidated/step-00000010.safetensors")).unwrap();
    let whole =
        enigma::run::checkpoint::load(&one.join("checkpoints/step-00000010.safetensors")).unwrap();
    let names: Vec<&String> = sharded.tensors.keys().collect();
    assert_eq!(names, whole.tensors.keys().collect::<Vec<_>>());
    // A parameter whose gradient stayed at the level of rounding (Adam's
    // second moment below 1e-20: the key projection's bias, to which
    // attention's softmax is invariant) moves by Adam's normalised noise,
    // which differs with the order of any sum; it is compared in shape
    // only.
    let noise = |name: &str| -> bool {
        let param = name
            .strip_prefix("optim.m/")
            .or_else(|| name.strip_prefix("optim.v/"))
            .unwrap_or(name);
        whole
            .tensors
            .get(&format!("optim.v/{param}"))
            .is_some_and(|v| v.data.iter().all(|&x| x < 1e-20))
    };
    let mut worst = 0f64;
    let mut skipped = 0;
    for (name, t) in &whole.tensors {
        let s = &sharded.tensors[name];
        assert_eq!(s.shape, t.shape, "{name}");
        if noise(name) {
            skipped += 1;
            continue;
        }
        let scale = t.data.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
        for (a, b) in t.data.iter().zip(&s.data) {
            worst = worst.max(((a - b).abs() / scale) as f64);
        }
    }
    assert!(
        skipped < whole.tensors.len() / 10,
        "{skipped} tensors without a gradient"
    );
    println!("tensor-parallel checkpoint against one process: largest difference {worst:.2e} of each tensor's largest value ({skipped} of {} tensors with a gradient at rounding level compared in shape only)", whole.tensors.len());
    assert!(worst < TOLERANCE, "{worst}");
    // Resumed under a two-stage pipeline, steps 11 to 20 follow the
    // uninterrupted one-process run.
    let pp = experiment(&dir, "pp2_1f1b", None);
    let (out, _) = mpirun(
        2,
        &[
            "--resume",
            "--steps",
            "20",
            "--out",
            run.to_str().unwrap(),
            pp.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let resumed = losses(&run);
    assert_eq!(resumed.len(), 20, "{resumed:?}");
    let d = largest_difference(&losses(&one), &resumed);
    println!("saved under tp 2, resumed under pp 2: largest relative loss difference {d:.2e}");
    assert!(d < TOLERANCE, "{d}");
}
