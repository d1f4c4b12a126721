//! `enigma run` end to end on a small copy of the quickstart: a run killed
//! with SIGKILL and resumed ends bit-identical to an uninterrupted one, and
//! a finished run reports its held-out neurons in `recovery.json`; a
//! SIGINT finishes the step, checkpoints and exits 130; an experiment with
//! errors stops at compile time; a missing GPU is an error; an earlier
//! run's checkpoints are not overwritten. On a tiny `.npy` experiment: a
//! NaN loss is skipped or stops the run, naming the step and the op that
//! made it; a disk that fills up while checkpointing loses no earlier
//! checkpoint, and the run resumes once there is room.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use enigma::run::checkpoint::load;
use enigma::run::metrics::{read_records, RecordKind};

#[path = "../../../tests/common/npy.rs"]
mod npy;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_enigma-run"))
}

/// `enigma run --quiet [extra] --out OUT EXP`, waited for.
fn run(out: &Path, exp: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["run", "--quiet"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .arg(exp)
        .output()
        .unwrap()
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
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.enigma"),
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
    let st = run(&a, &exp, &[]).status;
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

    let st = run(&b, &exp, &["--resume"]).status;
    assert!(st.success());
    let fa = load(&a.join("checkpoints/step-00000012.safetensors")).unwrap();
    let fb = load(&b.join("checkpoints/step-00000012.safetensors")).unwrap();
    assert_eq!(fa.tensors.len(), fb.tensors.len());
    for (name, ta) in &fa.tensors {
        let tb = &fb.tensors[name];
        let bits = |t: &enigma::base::host::HostTensor| {
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
    // A finished run on the simulation reports its held-out neurons: each
    // of the 32 neurons of both sessions, with the figures in range.
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("recovery.json")).unwrap()).unwrap();
    assert_eq!(rec["neurons"], 64);
    assert_eq!(rec["sessions"], 2);
    assert!((rec["chance"].as_f64().unwrap() - 1.0 / 32.0).abs() < 1e-12);
    for key in ["corr_truth", "corr_data", "ceiling", "corr_specific"] {
        let v = rec[key].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&v), "{key} = {v}");
    }
    // The data is the truth plus measurement noise: highly correlated.
    assert!(rec["ceiling"].as_f64().unwrap() > 0.5);
    // And it writes the baselines, scored as its evaluation was.
    let table = std::fs::read_to_string(a.join("baselines.txt")).unwrap();
    assert!(
        table.contains("val corr") && table.contains("test corr"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("unit mean")), "{table}");
    assert!(table.contains("best baseline on validation"), "{table}");
    // The checkpoint scores on the test split with one command, and on
    // the validation split as the run's own last evaluation did.
    let eval = |split: &str| {
        let out = bin()
            .args(["eval", "--split", split])
            .arg(&a)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let test = eval("test");
    assert!(
        test.contains("at step 12, test split") && test.contains("correlation"),
        "{test}"
    );
    assert!(
        test.contains("best baseline (chosen on validation)"),
        "{test}"
    );
    let val = eval("val");
    let last = read_records(&a.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .rfind(|r| r.kind == RecordKind::Eval)
        .unwrap();
    let loss = last.values["loss"];
    assert!(val.contains(&format!("loss {loss:.4}")), "{val} vs {loss}");
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

    // What `check` accepts but the loader cannot read is refused by `run`
    // with the check-time code, before anything is written.
    let unread = d.join("unread.enigma");
    std::fs::write(
        &unread,
        std::fs::read_to_string(&exp)
            .unwrap()
            .replacen("synthetic.mouse_v1(", "suite2p(", 1),
    )
    .unwrap();
    let o = run(&d.join("u"), &unread, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("E0221")
            && err.contains("not run: the runtime cannot read the experiment's data"),
        "{err}"
    );
    assert!(!d.join("u").exists());

    // A run directory with checkpoints is not overwritten.
    let out = d.join("r");
    assert!(run(&out, &exp, &[]).status.success());
    let before = std::fs::read(newest(&out).unwrap()).unwrap();
    let o = run(&out, &exp, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    assert_eq!(std::fs::read(newest(&out).unwrap()).unwrap(), before);

    if !tch::Cuda::is_available() {
        let o = run(&d.join("g"), &exp, &["--device", "cuda"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("CUDA device was asked for"));
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Three traces over 40 s at 10 Hz, positive except for one second in the
/// training split; the model takes their square root, so a batch holding
/// that second has a NaN loss and every other batch trains.
fn nan_experiment(dir: &Path, policy: &str) -> PathBuf {
    let mut v = Vec::new();
    for n in 0..3 {
        for t in 0..400 {
            let x = 1.5 + (t as f32 / 10.0 * (n + 1) as f32 * 0.7).sin();
            v.push(if (100..110).contains(&t) { -1.0 } else { x });
        }
    }
    npy::write_f32(&dir.join("f.npy"), &[3, 400], &v);
    let text = format!(
        "use std::tokenize::{{UnitValues}}\nuse std::readout::{{PerUnit}}\nuse std::losses::{{mse}}\n\
         dim T = 1s\ndim N per session\ndim d = 8\n\
         data f = npy(\"f.npy\", axes: [N, T], rate: 10Hz) {{\n  window: T\n  split: by_time(train: 0.8, val: 0.1, test: 0.1)\n}}\n\
         modality x: series<f32>[T @ 10Hz, N] from f\n\
         tokenizer xt = UnitValues(d: d, mask: 0.25)(x)\n\
         model m {{\n  predict x = PerUnit(d: d)(xt, x) * sqrt(x)\n}}\n\
         loss mse(m.x, x)\n\
         train {{\n  optimizer: adamw(lr: 1e-3)\n  steps: 16\n  batch: 4\n  on_nonfinite: {policy}\n  checkpoint {{ every: 1, keep: 20 }}\n}}\n"
    );
    let path = dir.join(format!("{policy}.enigma"));
    std::fs::write(&path, text).unwrap();
    path
}

fn checkpoint_bits(dir: &Path, step: u64) -> Vec<(String, Vec<u32>)> {
    let c = load(&dir.join(format!("checkpoints/step-{step:08}.safetensors"))).unwrap();
    c.tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.data.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// `on_nonfinite: skip` goes past a NaN loss, logging the step and the op
/// that made the NaN, and leaves the weights and optimiser state as they
/// were; `stop` ends the run at that step with the same diagnosis, and the
/// checkpoint before it stays whole.
#[test]
fn a_nan_loss_is_skipped_or_stops_the_run_naming_step_and_op() {
    let d = scratch("nan");
    let skip = nan_experiment(&d, "skip");
    let out = d.join("skip");
    let o = run(&out, &skip, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records = read_records(&out.join("metrics.jsonl")).unwrap();
    let skipped: Vec<u64> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Train && r.values.contains_key("skipped"))
        .map(|r| r.step)
        .collect();
    let trained = records
        .iter()
        .filter(|r| r.kind == RecordKind::Train && !r.values.contains_key("skipped"))
        .count();
    // The bad second lies in one window of the 32 in training: each epoch
    // of 8 batches meets it once.
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(trained, 14);
    let k = skipped[0];
    let event = records
        .iter()
        .find(|r| r.step == k && r.kind == RecordKind::Event)
        .and_then(|r| r.note.clone())
        .unwrap();
    assert!(
        event.contains("NaN") && event.contains("`sqrt`") && event.contains("in `m`"),
        "{event}"
    );
    if k > 1 {
        assert_eq!(checkpoint_bits(&out, k), checkpoint_bits(&out, k - 1));
    }

    let stop = nan_experiment(&d, "stop");
    let out = d.join("stop");
    let o = run(&out, &stop, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("step {k}:"))
            && err.contains("`sqrt`")
            && err.contains("on_nonfinite: stop"),
        "{err}"
    );
    // Training stopped there: the newest checkpoint is the step before,
    // and it loads.
    if k > 1 {
        let last = newest(&out).unwrap();
        assert!(
            last.ends_with(format!("step-{:08}.safetensors", k - 1)),
            "{last:?}"
        );
        load(&last).unwrap();
    } else {
        assert!(newest(&out).is_none());
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A tmpfs of `size` mounted at `dir` while it lives; `None`, said on
/// stderr, where this process may not mount (mounting needs root and
/// CAP_SYS_ADMIN; the unit tests of `run::checkpoint` inject the same
/// failure through its `Fs` trait and run everywhere).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "skipped: cannot mount a tmpfs at {} here (needs root)",
                dir.display()
            );
        }
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A disk that fills up mid-run: the checkpoint being written fails with
/// an error naming it and the step, no temporary file is left, every
/// checkpoint already there still loads, and once there is room again
/// `--resume` finishes the run from the last of them.
#[test]
fn a_full_disk_while_checkpointing_loses_no_earlier_work() {
    let d = scratch("full");
    let exp = nan_experiment(&d, "skip");
    let text = std::fs::read_to_string(&exp).unwrap();
    std::fs::write(
        &exp,
        text.replace("steps: 16", "steps: 400")
            .replace("keep: 20", "keep: 2"),
    )
    .unwrap();
    // 40 KiB: the plan, the experiment, two checkpoints of about 3 KB and
    // a growing metrics log fill it after about a hundred steps.
    let Some(disk) = Tmpfs::mount(&d.join("disk"), "40k") else {
        return;
    };
    let out = d.join("disk/run");
    let o = run(&out, &exp, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    let names: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    assert!(
        !names.is_empty(),
        "the disk filled before the first checkpoint"
    );
    for n in &names {
        load(&out.join("checkpoints").join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    }
    if err.contains("checkpoint") {
        assert!(err.contains("the previous checkpoint is intact"), "{err}");
    }

    disk.resize("4m");
    let o = run(&out, &exp, &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let steps: Vec<u64> = read_records(&out.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, (1..=400).collect::<Vec<_>>());
    drop(disk);
    let _ = std::fs::remove_dir_all(&d);
}

/// Whatever `check` accepts, `run` runs: the quickstart trains with Lion,
/// and its loss falls.
#[test]
fn lion_trains_the_quickstart() {
    let d = scratch("lion");
    let exp = experiment(&d, 12);
    let src = std::fs::read_to_string(&exp).unwrap();
    let lion = src.replace(
        "optimizer: adamw(lr: 3e-3, betas: (0.9, 0.95), weight_decay: 0.05)",
        "optimizer: lion(lr: 3e-4, weight_decay: 0.1)",
    );
    assert_ne!(lion, src, "the quickstart's optimizer line changed");
    std::fs::write(&exp, lion).unwrap();
    let out = d.join("run");
    let o = run(&out, &exp, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let losses: Vec<f64> = read_records(&out.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r.kind == RecordKind::Train)
        .filter_map(|r| r.values.get("loss").copied())
        .collect();
    assert_eq!(losses.len(), 12);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let head: f64 = losses[..3].iter().sum();
    let tail: f64 = losses[9..].iter().sum();
    assert!(tail < head, "{losses:?}");
    let _ = std::fs::remove_dir_all(&d);
}
