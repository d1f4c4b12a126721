//! Sessions with their own cells, end to end through `enigma run`: two
//! files of 3 and 5 cells train one model whose per-session tables have
//! each session's size, and `enigma eval` scores the checkpoint on the
//! test split of both; a new session is fitted few-shot on a pretrained
//! model; and the real suite2p recording, split into two files, trains as
//! two sessions.

use std::path::{Path, PathBuf};
use std::process::Command;

use enigma::run::checkpoint::load;

#[path = "../../../tests/common/npy.rs"]
mod npy;
#[path = "../../../tests/common/real.rs"]
mod real_data;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-sessions-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Two ROI-major recordings of `cells` cells over 8 s at 10 Hz, one file
/// each, and an experiment over both.
fn experiment(dir: &Path) -> PathBuf {
    for (s, cells) in [3usize, 5].into_iter().enumerate() {
        let t = 80;
        let values: Vec<f32> = (0..cells * t)
            .map(|i| ((i % t) as f32 * 0.3 + (i / t) as f32 + s as f32).sin() + 1.5)
            .collect();
        npy::write_f32(&dir.join(format!("ses-{s}.npy")), &[cells, t], &values);
    }
    let text = "use std::tokenize::{UnitValues}\nuse std::readout::{PerUnit}\nuse std::losses::{mse}\nuse std::metrics::{corr}\n\
        dim T = 1s\ndim N per session\ndim d = 8\n\
        data f = npy(\"ses-*.npy\", axes: [N, T], rate: 10Hz) {\n  window: T\n  stride: 500ms\n  split: by_time(train: 0.5, val: 0.25, test: 0.25)\n}\n\
        modality x: series<f32>[T @ 10Hz, N] from f\n\
        tokenizer xt = UnitValues(d: d, mask: 0.25)(x)\n\
        model m {\n  predict x = PerUnit(d: d)(xt, x)\n}\n\
        loss mse(m.x, x) { masked_only: true }\n\
        metric corr(m.x, x)\n\
        train {\n  optimizer: adamw(lr: 1e-3)\n  steps: 4\n  batch: 2\n  checkpoint { every: 4, keep: 1 }\n  eval { every: 2, split: val, batches: 1 }\n}\n";
    let path = dir.join("main.enigma");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn each_session_trains_its_own_tables_at_its_own_size() {
    let dir = scratch("own");
    let exp = experiment(&dir);
    let out = dir.join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_enigma-run"))
        .args(["run", "--quiet", "--out"])
        .arg(&out)
        .arg(&exp)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let c = load(&out.join("checkpoints/step-00000004.safetensors")).unwrap();
    let rows = |name: &str| c.tensors.get(name).map(|t| t.shape.clone());
    assert_eq!(
        rows("xt.unit@0"),
        Some(vec![3, 8]),
        "{:?}",
        c.tensors.keys()
    );
    assert_eq!(rows("xt.unit@1"), Some(vec![5, 8]));
    let e = Command::new(env!("CARGO_BIN_EXE_enigma-run"))
        .args(["eval", "--split", "test"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&e.stdout).to_string() + &String::from_utf8_lossy(&e.stderr);
    assert!(e.status.success(), "{text}");
    assert!(text.contains("corr"), "{text}");
}

/// Runs `enigma-run` with `args`, returning whether it succeeded and what
/// it printed.
fn enigma_run(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_enigma-run"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    (o.status.success(), text)
}

#[test]
fn a_new_session_fits_only_its_own_tables_on_a_pretrained_model() {
    let dir = scratch("few-shot");
    let exp = experiment(&dir);
    let pretrained = dir.join("pretrained");
    let (ok, text) = enigma_run(&[
        "run".as_ref(),
        "--quiet".as_ref(),
        "--out".as_ref(),
        pretrained.as_os_str(),
        exp.as_os_str(),
    ]);
    assert!(ok, "{text}");
    // A new session of 4 cells, in a file of its own.
    let values: Vec<f32> = (0..4 * 80)
        .map(|i| ((i % 80) as f32 * 0.2).cos() + 2.0)
        .collect();
    npy::write_f32(&dir.join("new-0.npy"), &[4, 80], &values);
    let text = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("ses-*.npy", "new-*.npy");
    let new_exp = dir.join("new.enigma");
    std::fs::write(&new_exp, text).unwrap();
    // Freezing needs weights to keep.
    let alone = dir.join("alone");
    let (ok, text) = enigma_run(&[
        "run".as_ref(),
        "--quiet".as_ref(),
        "--freeze-shared".as_ref(),
        "--out".as_ref(),
        alone.as_os_str(),
        new_exp.as_os_str(),
    ]);
    assert!(!ok && text.contains("--init-from"), "{text}");

    let fitted = dir.join("fitted");
    let (ok, text) = enigma_run(&[
        "run".as_ref(),
        "--quiet".as_ref(),
        "--init-from".as_ref(),
        pretrained.as_os_str(),
        "--freeze-shared".as_ref(),
        "--out".as_ref(),
        fitted.as_os_str(),
        new_exp.as_os_str(),
    ]);
    assert!(ok, "{text}");
    let before = load(&pretrained.join("checkpoints/step-00000004.safetensors")).unwrap();
    let after = load(&fitted.join("checkpoints/step-00000004.safetensors")).unwrap();
    // Every shared weight is the pretrained one, bit for bit, and its
    // optimiser moments never moved.
    let shared: Vec<&String> = before
        .tensors
        .keys()
        .filter(|k| !k.contains('@') && !k.starts_with("optim.") && after.tensors.contains_key(*k))
        .collect();
    assert!(shared.len() >= 3, "{:?}", before.tensors.keys());
    for name in &shared {
        assert_eq!(
            before.tensors[*name], after.tensors[*name],
            "`{name}` moved"
        );
        let m = &after.tensors[&format!("optim.m/{name}")];
        assert!(m.data.iter().all(|v| *v == 0.0), "`{name}` was updated");
    }
    // The new session's own tables were trained.
    let table = &after.tensors["optim.m/xt.unit"];
    assert_eq!(after.tensors["xt.unit"].shape, vec![4, 8]);
    assert!(
        table.data.iter().any(|v| *v != 0.0),
        "the unit table was not trained"
    );
}

#[test]
fn the_real_recording_split_into_two_files_trains_as_two_sessions() {
    let real = real_data::real_data();
    // Two sessions of one animal as they would be stored: each array's
    // first and second half in time, in a folder per session.
    let dir = scratch("real-halves");
    for name in ["F", "spks"] {
        let a =
            enigma::dataset::loader::read_npy::<f32>(&real.join(format!("{name}.npy"))).unwrap();
        let [n, t] = a.shape[..] else {
            panic!("{name}.npy is {:?}", a.shape)
        };
        for (half, (lo, hi)) in [("a", (0, t / 2)), ("b", (t / 2, t))] {
            let part: Vec<f32> = (0..n)
                .flat_map(|r| a.data[r * t + lo..r * t + hi].iter().copied())
                .collect();
            std::fs::create_dir_all(dir.join(half)).unwrap();
            npy::write_f32(
                &dir.join(format!("{half}/{name}.npy")),
                &[n, hi - lo],
                &part,
            );
        }
    }
    std::fs::copy(real.join("iscell.npy"), dir.join("iscell.npy")).unwrap();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/suite2p_calcium.enigma");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("\"data/F.npy\"", "\"*/F.npy\"")
        .replace("\"data/spks.npy\"", "\"*/spks.npy\"")
        .replace("\"data/iscell.npy\"", "\"iscell.npy\"")
        .replace("steps: 500", "steps: 6")
        .replace("warmup_cosine(warmup: 50)", "warmup_cosine(warmup: 2)")
        .replace(
            "checkpoint { every: 250, keep: 2 }",
            "checkpoint { every: 6, keep: 1 }",
        )
        .replace(
            "eval { every: 50, split: val, batches: 1 }",
            "eval { every: 6, split: val, batches: 1 }",
        );
    assert!(
        !text.contains("\"data/") && text.contains("steps: 6"),
        "the example changed"
    );
    let exp = dir.join("halves.enigma");
    std::fs::write(&exp, text).unwrap();
    let out = dir.join("run");
    let (ok, text) = enigma_run(&[
        "run".as_ref(),
        "--quiet".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        exp.as_os_str(),
    ]);
    assert!(ok, "{text}");
    let c = load(&out.join("checkpoints/step-00000006.safetensors")).unwrap();
    // Each half has its own tables over the 20 cells `iscell` keeps.
    for s in 0..2 {
        let w = c
            .tensors
            .get(&format!("ft.w_unit@{s}"))
            .map(|t| t.shape.clone());
        assert_eq!(w, Some(vec![20, 32]), "{:?}", c.tensors.keys());
    }
    let (ok, text) = enigma_run(&[
        "eval".as_ref(),
        "--split".as_ref(),
        "test".as_ref(),
        out.as_os_str(),
    ]);
    assert!(ok && text.contains("correlation"), "{text}");
}
