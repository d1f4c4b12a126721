//! A Python interpreter with the packages a test reads our files back
//! with (the venv's `tensorboard`, `safetensors.torch`): the real readers,
//! not our own. `dev.sh` installs them into the torch virtualenv and puts
//! it first on `PATH` (`VIRTUAL_ENV`). Where they are missing, a test says
//! so on stderr and returns, except under CI (`CI` set), where the readers
//! must be there and their absence fails the test.

use std::path::PathBuf;
use std::process::Command;

/// A Python that imports every module of `modules`, or `None` (said on
/// stderr) where there is none outside CI.
#[allow(dead_code)]
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("VIRTUAL_ENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .into_iter()
        .chain([PathBuf::from("python3")])
        .collect();
    let imports = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    for python in &candidates {
        let ok = Command::new(python)
            .args(["-c", &imports])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python.clone());
        }
    }
    let why = format!(
        "no Python here imports {} (dev.sh installs them into the torch virtualenv)",
        modules.join(", ")
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}
