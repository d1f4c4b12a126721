//! A really trained model, exported: the quickstart trains for two steps
//! (four windows each), its checkpoint holds the optimiser's step count as
//! the I64 scalar `optim.t` = 2 (read back by the real PyTorch loader as
//! `torch.int64`), and `enigma export` writes weights that
//! `safetensors.torch.load_file` loads under the dotted names, equal value
//! for value to the checkpoint's, without the optimiser's state.

#[path = "../../../tests/common/python.rs"]
mod python;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use enigma::run::checkpoint::{load, I64Tensor};
use enigma::run::export::dotted_name;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The quickstart with batches of 4 windows and no evaluation in the two
/// steps it is run for.
fn experiment(dir: &Path) -> PathBuf {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.enigma"),
    )
    .unwrap();
    let short = src.replace("batch: 16", "batch: 4");
    assert_ne!(short, src, "the quickstart's batch line changed");
    let path = dir.join("tiny.enigma");
    std::fs::write(&path, short).unwrap();
    path
}

/// Runs `python -c script args...` and parses what it prints as JSON.
fn python_json(python: &Path, script: &str, args: &[&Path]) -> serde_json::Value {
    let o = Command::new(python)
        .args(["-c", script])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_trained_quickstart_exports_weights_pytorch_loads() {
    let dir = scratch("trained");
    let exp = experiment(&dir);
    let run = dir.join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_enigma-run"))
        .args(["run", "--quiet", "--no-baselines", "--steps", "2", "--out"])
        .arg(&run)
        .arg(&exp)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let ckpt_path = run.join("checkpoints/step-00000002.safetensors");
    let ckpt = load(&ckpt_path).unwrap();
    // Two optimiser steps, stored as one I64, not as f32 halves.
    assert_eq!(ckpt.ints["optim.t"], I64Tensor::scalar(2));
    assert!(!ckpt.tensors.contains_key("optim.t"));

    let out = dir.join("model.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_enigma-run"))
        .arg("export")
        .arg(&run)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let desc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    assert_eq!(desc["checkpoint"]["step"], 2);
    assert_eq!(desc.get("model_error"), None, "{desc}");
    assert_eq!(
        desc["model"]["session_dims"],
        serde_json::json!([{"N": 32}, {"N": 32}])
    );

    // The weights as the export should name them, from the checkpoint.
    let weights: BTreeMap<String, &enigma::base::host::HostTensor> = ckpt
        .tensors
        .iter()
        .filter(|(n, _)| !n.starts_with("optim."))
        .map(|(n, t)| (dotted_name(n).unwrap(), t))
        .collect();
    let params: usize = weights.values().map(|t| t.numel()).sum();
    assert_eq!(params, 159_040, "the quickstart's parameter count");
    assert!(weights.contains_key("brain.transformer.blocks.1.attn.q_proj.w"));
    assert!(weights.contains_key("nt.unit.1"));

    let Some(python) = python::python_with(&["safetensors.torch"]) else {
        return;
    };
    let read = r#"
import json, sys
import torch
from safetensors.torch import load_file
ckpt = load_file(sys.argv[1])
t = ckpt["optim.t"]
out = {"t": [str(t.dtype), list(t.shape), t.item()], "weights": {}}
for name, w in load_file(sys.argv[2]).items():
    out["weights"][name] = [str(w.dtype), list(w.shape), w.flatten().view(torch.int32).tolist()]
print(json.dumps(out))
"#;
    let v = python_json(&python, read, &[&ckpt_path, &out]);
    assert_eq!(v["t"], serde_json::json!(["torch.int64", [], 2]));
    let loaded = v["weights"].as_object().unwrap();
    assert_eq!(
        loaded.keys().collect::<Vec<_>>(),
        weights.keys().collect::<Vec<_>>()
    );
    for (name, t) in &weights {
        let w = &loaded[name.as_str()];
        assert_eq!(w[0], "torch.float32", "{name}");
        assert_eq!(w[1], serde_json::json!(t.shape), "{name}");
        // Bit patterns, so that no decimal round trip stands between them.
        let values: Vec<u32> = w[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap() as u32)
            .collect();
        let exact: Vec<u32> = t.data.iter().map(|x| x.to_bits()).collect();
        assert_eq!(values, exact, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
