//! Many processes, end to end, under `mpirun` on the CPU: the quickstart
//! trained for 20 steps in one process and under data parallelism with
//! ZeRO 0 to 3 and hybrid sharding gives the same loss at every step
//! (1e-4 relative; the largest difference is printed); a run whose rank is
//! killed resumes bit-identically from its sharded checkpoint, which also
//! consolidates into one file and resumes in one process; a killed, panicking or hung rank ends
//! the whole job within a minute with the rank named; SIGINT to `enigma
//! run --nproc` checkpoints every rank and exits 130; a job whose size is
//! not the mesh's is refused before training (E0301).
//!
//! The processes share the machine's two cores (`--oversubscribe`, one
//! thread each), so the tests take turns.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use enigma::run::metrics::{read_records, RecordKind};

/// The quickstart laid out as `layout` (the lines of a `parallel` block
/// after its mesh), evaluated on one batch, checkpointed every
/// `checkpoint` steps.
fn experiment(dir: &Path, name: &str, layout: &str, checkpoint: u64) -> PathBuf {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.enigma"),
    )
    .unwrap();
    assert!(src.contains("  mesh { dp: 1 }\n  batch -> dp\n"));
    let src = src
        .replace("  mesh { dp: 1 }\n  batch -> dp\n", layout)
        .replace("batches: 4", "batches: 1")
        .replace(
            "checkpoint { every: 200, keep: 2 }",
            &format!("checkpoint {{ every: {checkpoint}, keep: 2 }}"),
        );
    let path = dir.join(format!("{name}.enigma"));
    std::fs::write(&path, src).unwrap();
    path
}

const DP2: &str = "  mesh { dp: 2 }\n  batch -> dp\n";

#[test]
fn data_parallel_and_zero_train_as_one_process_does() {
    let _turn = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("equal");
    let one = experiment(&dir, "one", "  mesh { dp: 1 }\n  batch -> dp\n", 200);
    let out = Command::new(runtime())
        .args(["run", "--quiet", "--steps", "20", "--out"])
        .arg(dir.join("one"))
        .arg(&one)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reference = losses(&dir.join("one"));
    assert_eq!(reference.len(), 20);
    let eval = |run: &Path| {
        read_records(&run.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .find(|r| r.kind == RecordKind::Eval)
            .map(|r| r.values["loss"])
    };
    let layouts = [
        ("zero0", 2, format!("{DP2}  zero: 0\n")),
        ("zero1", 2, format!("{DP2}  zero: 1\n")),
        ("zero2", 2, format!("{DP2}  zero: 2\n")),
        ("zero3", 2, format!("{DP2}  zero: 3\n")),
        (
            "hybrid",
            4,
            "  mesh { node: 2, gpu: 2 }\n  batch -> (node, gpu)\n  zero: 2\n  zero_scope: \"gpu\"\n"
                .to_string(),
        ),
    ];
    for (name, n, layout) in &layouts {
        let exp = experiment(&dir, name, layout, 200);
        let run = dir.join(name);
        let args = [
            "--steps",
            "20",
            "--out",
            run.to_str().unwrap(),
            exp.to_str().unwrap(),
        ];
        let (out, _) = if *name == "zero0" {
            // The same job, started by `--nproc` rather than by hand.
            let t = Instant::now();
            let out = Command::new(runtime())
                .args(["run", "--quiet", "--nproc", "2"])
                .args(args)
                .output()
                .unwrap();
            (out, t.elapsed())
        } else {
            mpirun(*n, &args, &[])
        };
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let d = largest_difference(&reference, &losses(&run));
        println!("{name} ({n} processes): largest relative loss difference over 20 steps {d:.2e}");
        assert!(d < 1e-4, "{name}: {d}");
        // Evaluation sees the one-process batches on every rank.
        let (a, b) = (eval(&dir.join("one")).unwrap(), eval(&run).unwrap());
        assert!((a - b).abs() / a < 1e-4, "{name}: eval loss {a} vs {b}");
        // The checkpoint is a shard per rank holding state of its own (both
        // ranks' slices under ZeRO, one copy of the whole without it) and a
        // manifest; it loads as the whole state.
        let ckpt = run.join("checkpoints/step-00000020");
        assert!(ckpt.join("manifest.json").is_file(), "{name}");
        let shards = std::fs::read_dir(&ckpt)
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.to_str().unwrap().ends_with(".safetensors")
            })
            .count();
        let writers = if *name == "zero0" { 1 } else { 2 };
        assert_eq!(shards, writers, "{name}: shard files");
        let c = enigma::run::checkpoint::load(&ckpt).unwrap();
        assert_eq!(
            c.tensors["vt.proj.w"].shape,
            vec![64, 768],
            "{name}: weights are whole in the checkpoint"
        );
        assert_eq!(c.tensors["optim.m/vt.proj.w"].shape, vec![64, 768]);
    }
}

#[test]
fn a_run_whose_rank_was_killed_resumes_bit_identically() {
    let _turn = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("resume");
    let exp = experiment(&dir, "z1", &format!("{DP2}  zero: 1\n"), 4);
    let whole = dir.join("whole");
    let (out, _) = mpirun(
        2,
        &[
            "--steps",
            "8",
            "--out",
            whole.to_str().unwrap(),
            exp.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let cut = dir.join("cut");
    let args = [
        "--steps",
        "8",
        "--out",
        cut.to_str().unwrap(),
        exp.to_str().unwrap(),
    ];
    let (out, _) = mpirun(2, &args, &[("ENIGMA_FAULT", "kill@1:7")]);
    assert!(!out.status.success());
    assert!(cut
        .join("checkpoints/step-00000004/manifest.json")
        .is_file());
    let mut resumed = vec!["--resume"];
    resumed.extend(args);
    let (out, _) = mpirun(2, &resumed, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(losses(&whole), losses(&cut), "losses differ after resuming");

    // The job's checkpoint as one file of whole tensors.
    let out = Command::new(runtime())
        .args(["checkpoint", "consolidate"])
        .arg(&whole)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let one = enigma::run::checkpoint::load(&whole.join("consolidated/step-00000008.safetensors"))
        .unwrap();
    let sharded = enigma::run::checkpoint::load(&whole.join("checkpoints/step-00000008")).unwrap();
    assert_eq!(one, sharded);
    assert_eq!(one.tensors["optim.m/vt.proj.w"].shape, vec![64, 768]);

    // Resharding on load: the 2-rank ZeRO-1 checkpoint of step 8 resumed
    // by one process trains steps 9 to 12 as the 2-rank job does.
    let longer = dir.join("longer");
    let (out, _) = mpirun(
        2,
        &[
            "--steps",
            "12",
            "--out",
            longer.to_str().unwrap(),
            exp.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let single = experiment(&dir, "one", "  mesh { dp: 1 }\n  batch -> dp\n", 4);
    let out = Command::new(runtime())
        .args(["run", "--quiet", "--resume", "--steps", "12", "--out"])
        .arg(&whole)
        .arg(&single)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let d = largest_difference(&losses(&longer), &losses(&whole));
    println!("resumed by one process from a 2-rank ZeRO-1 checkpoint: largest relative difference {d:.2e}");
    assert!(d < 1e-4, "{d}");
}

/// Runs the 2-rank quickstart with `fault` (at step 3), checks the job
/// ended with a failure within a minute of it, and returns its stderr and
/// run directory.
fn failing_job(name: &str, fault: &str, layout: &str) -> (String, PathBuf) {
    let dir = scratch(name);
    let exp = experiment(&dir, name, layout, 200);
    let run = dir.join("run");
    let (out, took) = mpirun(
        2,
        &["--out", run.to_str().unwrap(), exp.to_str().unwrap()],
        &[("ENIGMA_FAULT", fault)],
    );
    let ended = SystemTime::now();
    assert!(!out.status.success(), "{name}: the job succeeded");
    // Rank 0 logged step 2 just before the fault: the time from then to
    // the job's end is how long the failure took to end it (the job's
    // start-up, which a loaded machine stretches, is not counted).
    let logged = std::fs::metadata(run.join("metrics.jsonl"))
        .and_then(|m| m.modified())
        .unwrap();
    let after = ended.duration_since(logged).unwrap_or_default();
    println!(
        "{name}: the job ended {:.1} s after the step before the fault ({:.1} s in all)",
        after.as_secs_f64(),
        took.as_secs_f64()
    );
    assert!(after < Duration::from_secs(60), "{name}: took {after:?}");
    (stderr(&out), run)
}

#[test]
fn a_killed_rank_ends_the_job_and_is_named() {
    let _turn = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let (err, _) = failing_job("killed", "kill@1:3", DP2);
    assert!(err.contains("rank 1") && err.contains("signal 9"), "{err}");
}

#[test]
fn a_panicking_rank_ends_the_job_naming_rank_host_and_step() {
    let _turn = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let (err, run) = failing_job("panic", "panic@1:3", DP2);
    let host = enigma::run::launch::hostname();
    assert!(
        err.contains(&format!("rank 1 on {host}, step 3: panicked")),
        "{err}"
    );
    let record = std::fs::read_to_string(run.join("failures/rank-1.txt")).unwrap();
    assert!(record.contains("step 3: panicked"), "{record}");
}

#[test]
fn a_hung_rank_is_named_by_the_collective_timeout() {
    let _turn = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let layout = format!("{DP2}  collective_timeout: 5s\n");
    let (err, run) = failing_job("hang", "hang@1:3", &layout);
    assert!(err.contains("E0508"), "{err}");
    assert!(err.contains("did not complete within 5 s"), "{err}");
    assert!(err.contains("ranks that did not arrive: 1"), "{err}");
    assert!(run.join("failures/rank-0.txt").is_file());
}

#[test]
fn a_job_of_the_wrong_size_stops_before_training() {
    let _turn = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("world");
    let exp = experiment(&dir, "dp2", DP2, 200);
    let run = dir.join("run");
    // One process for a mesh of two.
    let out = Command::new(runtime())
        .args(["run", "--quiet", "--out"])
        .arg(&run)
        .arg(&exp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("E0301"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--nproc 2"), "{}", stderr(&out));
    assert!(!run.join("metrics.jsonl").exists());
}

#[test]
fn sigint_to_the_launcher_checkpoints_every_rank_and_exits_130() {
    let _turn = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("sigint");
    let exp = experiment(&dir, "dp2", DP2, 200);
    let run = dir.join("run");
    let mut child = Command::new(runtime())
        .args(["run", "--quiet", "--nproc", "2", "--out"])
        .arg(&run)
        .arg(&exp)
        .spawn()
        .unwrap();
    // Wait for two logged steps, then interrupt the launcher only.
    let started = Instant::now();
    while losses_so_far(&run) < 2 {
        assert!(started.elapsed() < Duration::from_secs(120), "no steps");
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130));
    let records = read_records(&run.join("metrics.jsonl")).unwrap();
    let last = records.last().unwrap();
    assert_eq!(
        last.note.as_deref(),
        Some("stopped by a signal after checkpointing")
    );
    let ckpt = run
        .join("checkpoints")
        .join(format!("step-{:08}", last.step))
        .join("manifest.json");
    assert!(ckpt.is_file(), "no checkpoint at step {}", last.step);
}

/// Training records logged so far (0 before the log exists).
fn losses_so_far(run: &Path) -> usize {
    read_records(&run.join("metrics.jsonl"))
        .map(|r| r.iter().filter(|r| r.kind == RecordKind::Train).count())
        .unwrap_or(0)
}
