//! `enigma export RUN_DIR`: a run directory built with the checkpoint
//! store's API (the front end cannot train without libtorch) is exported,
//! and the weights are read back with the real PyTorch loader,
//! `safetensors.torch.load_file`, and compared value for value with the
//! checkpoint; the JSON description is checked against the checkpoint and
//! the experiment; and every way the input can be missing or damaged ends
//! with status 2 and a message naming the file.

#[path = "common/python.rs"]
mod python;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use enigma::base::host::HostTensor;
use enigma::run::checkpoint::{Checkpoint, CheckpointDir, I64Tensor};
use serde_json::Value;

fn enigma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enigma"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run enigma")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enigma-export-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tensor of `shape` whose values differ from tensor to tensor (`salt`)
/// and from element to element, with fractions f32 holds exactly.
fn tensor(shape: &[usize], salt: f32) -> HostTensor {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| salt + i as f32 / 8.0 - 1.5).collect();
    HostTensor::new(shape.to_vec(), data).unwrap()
}

/// The checkpoint of a quickstart-like run at `step`: two layers of a
/// repeated block, two sessions with their own unit tables (3 and 5
/// neurons), a shared weight, the optimiser's moments and step count.
fn checkpoint(step: u64) -> Checkpoint {
    let weights = [
        ("brain.transformer.blocks.layer.attn.q_proj.w#0", vec![4, 4]),
        ("brain.transformer.blocks.layer.attn.q_proj.w#1", vec![4, 4]),
        ("brain.transformer.blocks.layer.ln_1.weight#0", vec![4]),
        ("brain.transformer.blocks.layer.ln_1.weight#1", vec![4]),
        ("brain.transformer.ln_f.weight", vec![4]),
        ("nt.unit@0", vec![3, 4]),
        ("nt.unit@1", vec![5, 4]),
        ("vt.pos", vec![3, 4, 4]),
    ];
    let mut tensors = BTreeMap::new();
    for (i, (name, shape)) in weights.iter().enumerate() {
        let salt = i as f32 + step as f32;
        tensors.insert(name.to_string(), tensor(shape, salt));
        for moment in ["optim.m", "optim.v"] {
            tensors.insert(format!("{moment}/{name}"), tensor(shape, -salt));
        }
    }
    Checkpoint {
        step,
        tensors,
        ints: BTreeMap::from([("optim.t".to_string(), I64Tensor::scalar(step as i64))]),
        metadata: BTreeMap::from([("seed".to_string(), "7".to_string())]),
    }
}

/// A run directory as `enigma run` leaves it: the experiment's copy and
/// path, and checkpoints of steps 10 and 20.
fn run_dir(name: &str) -> PathBuf {
    let dir = scratch(name);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.enigma");
    fs::copy(&example, dir.join("experiment.enigma")).unwrap();
    fs::write(
        dir.join("experiment.path"),
        format!("{}\n", example.display()),
    )
    .unwrap();
    let ckpts = CheckpointDir::new(dir.join("checkpoints"), 5);
    for step in [10, 20] {
        ckpts.save(&checkpoint(step)).unwrap();
    }
    dir
}

/// Every tensor of a safetensors file as `safetensors.torch.load_file`
/// gives it: name to dtype, shape and the bit patterns of the values (bits,
/// so that no decimal round trip stands between the two sides).
fn load_with_torch(python: &Path, file: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u32>)> {
    let script = r#"
import json, sys
import torch
from safetensors.torch import load_file
out = {}
for name, t in load_file(sys.argv[1]).items():
    out[name] = [str(t.dtype), list(t.shape), t.flatten().view(torch.int32).tolist()]
print(json.dumps(out))
"#;
    let o = Command::new(python)
        .args(["-c", script])
        .arg(file)
        .output()
        .expect("run python");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut out = BTreeMap::new();
    for (name, t) in v.as_object().unwrap() {
        let dtype = t[0].as_str().unwrap().to_string();
        let shape = t[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let data = t[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap() as u32)
            .collect();
        out.insert(name.clone(), (dtype, shape, data));
    }
    out
}

#[test]
fn the_newest_checkpoint_exports_under_dotted_names_that_pytorch_loads() {
    let dir = run_dir("newest");
    let out = dir.join("export/model.safetensors");
    let o = enigma(&[
        "export",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("8 tensors"), "{}", stderr(&o));
    assert!(stderr(&o).contains("step 20"), "{}", stderr(&o));

    // The description: every tensor with its original name, and the model.
    let desc: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("export/model.json")).unwrap()).unwrap();
    assert_eq!(desc["format"], "enigma-export-1");
    assert_eq!(desc["names"]["scheme"], "enigma-names-1");
    assert_eq!(desc["checkpoint"]["step"], 20);
    let expected = checkpoint(20);
    let entries = desc["tensors"].as_array().unwrap();
    assert_eq!(entries.len(), 8);
    let entry = |name: &str| {
        entries
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {entries:?}"))
    };
    let q1 = entry("brain.transformer.blocks.1.attn.q_proj.w");
    assert_eq!(
        q1["original"],
        "brain.transformer.blocks.layer.attn.q_proj.w#1"
    );
    assert_eq!(q1["param"], "brain.transformer.blocks.layer.attn.q_proj.w");
    assert_eq!(q1["layer"], 1);
    assert_eq!(q1["session"], Value::Null);
    assert_eq!(q1["dtype"], "F32");
    assert_eq!(q1["shape"], serde_json::json!([4, 4]));
    let unit = entry("nt.unit.1");
    assert_eq!(unit["original"], "nt.unit@1");
    assert_eq!(unit["session"], 1);
    assert_eq!(unit["shape"], serde_json::json!([5, 4]));
    assert!(entries
        .iter()
        .all(|e| !e["original"].as_str().unwrap().starts_with("optim.")));

    let model = &desc["model"];
    assert_eq!(desc.get("model_error"), None, "{desc}");
    assert_eq!(model["sessions"], 2);
    assert_eq!(model["dims"]["d"]["value"], "64");
    assert_eq!(model["dims"]["T"]["value"], "2s");
    assert_eq!(model["dims"]["N"]["per_session"], true);
    // The sessions' neuron counts, read off their unit tables.
    assert_eq!(
        model["session_dims"],
        serde_json::json!([{"N": 3}, {"N": 5}])
    );
    let transformer = model["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == "Transformer")
        .unwrap();
    assert_eq!(transformer["hyper"]["layers"], 2);
    assert_eq!(transformer["hyper"]["heads"], 4);
    assert_eq!(transformer["hyper"]["mlp"], "gelu");
    assert_eq!(model["data"][0]["kind"], "synthetic");
    assert_eq!(model["data"][0]["sessions"], 2);

    let Some(python) = python::python_with(&["safetensors.torch"]) else {
        return;
    };
    let loaded = load_with_torch(&python, &out);
    let names: Vec<&String> = loaded.keys().collect();
    let mut want: Vec<String> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(names, want.iter().collect::<Vec<_>>());
    for e in entries {
        let (dtype, shape, data) = &loaded[e["name"].as_str().unwrap()];
        let original = &expected.tensors[e["original"].as_str().unwrap()];
        assert_eq!(dtype, "torch.float32");
        assert_eq!(shape, &original.shape);
        let exact: Vec<u32> = original.data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(data, &exact, "{}", e["name"]);
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_step_or_a_file_picks_another_checkpoint() {
    let dir = run_dir("pick");
    let out = dir.join("ten.safetensors");
    let o = enigma(&[
        "export",
        dir.to_str().unwrap(),
        "--step",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let desc: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("ten.json")).unwrap()).unwrap();
    assert_eq!(desc["checkpoint"]["step"], 10);

    let file = dir.join("checkpoints/step-00000010.safetensors");
    let o = enigma(&[
        "export",
        dir.to_str().unwrap(),
        "--checkpoint",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The default place is the run directory.
    assert!(dir.join("model.safetensors").is_file());
    assert!(dir.join("model.json").is_file());

    let o = enigma(&["export", dir.to_str().unwrap(), "--step", "15"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("has no checkpoint of step 15"),
        "{}",
        stderr(&o)
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn missing_or_damaged_input_is_an_error_naming_the_file() {
    let dir = scratch("errors");
    let missing = dir.join("no-such-run");
    let o = enigma(&["export", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no such run directory"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("no-such-run"), "{}", stderr(&o));

    let empty = dir.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let o = enigma(&["export", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("holds no checkpoint"), "{}", stderr(&o));

    // A run whose only checkpoint is damaged: none loads.
    let damaged = run_dir("damaged");
    let ckpts = damaged.join("checkpoints");
    fs::remove_file(ckpts.join("step-00000010.safetensors")).unwrap();
    let newest = ckpts.join("step-00000020.safetensors");
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..bytes.len() - 5]).unwrap();
    let o = enigma(&["export", damaged.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("step-00000020.safetensors"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(!damaged.join("model.safetensors").exists());

    let o = enigma(&[
        "export",
        damaged.to_str().unwrap(),
        "--checkpoint",
        newest.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("step-00000020.safetensors"),
        "{}",
        stderr(&o)
    );

    let o = enigma(&[
        "export",
        damaged.to_str().unwrap(),
        "--out",
        damaged.join("x.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("another extension"), "{}", stderr(&o));
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_dir_all(&damaged);
}
