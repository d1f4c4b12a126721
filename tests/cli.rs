//! The `enigma` binary as users run it: exit codes, output streams, the
//! JSON diagnostic format, `fmt` in place and `--check`, `explain`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "common/npy.rs"]
mod npy;

fn enigma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enigma"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the enigma binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enigma-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn check_clean_file_exits_0() {
    let dir = scratch("clean");
    let f = write(
        &dir,
        "a.enigma",
        "dim d = 64\nmodule Id()(x: [..., d]) -> [..., d] {\n  return x\n}\n",
    );
    let out = enigma(&["check", &f]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no problems"));
}

#[test]
fn check_with_errors_exits_1_and_reports_each() {
    let dir = scratch("errors");
    let f = write(
        &dir,
        "a.enigma",
        "model m {\n  let a = foo\n  let b = bar\n  predict y = a + b\n}\n",
    );
    let out = enigma(&["check", &f]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown name `foo`"), "{err}");
    assert!(err.contains("unknown name `bar`"), "{err}");
    assert!(err.contains("E0105"));
    assert!(err.contains("2 errors"));
}

#[test]
fn warnings_alone_exit_0() {
    let dir = scratch("warn");
    let f = write(&dir, "a.enigma", "use std::nn::{Linear}\ndim d = 4\n");
    let out = enigma(&["check", &f]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("W0101"));
}

#[test]
fn missing_file_is_an_io_error_exit_2() {
    let out = enigma(&["check", "/definitely/not/here.enigma"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(enigma(&["check"]).status.code(), Some(2));
    assert_eq!(enigma(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        enigma(&["--error-format", "xml", "check", "a"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn version_and_help_exit_0() {
    let out = enigma(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("enigma 0.1.0"));
    let help = enigma(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for sub in ["check", "fmt", "explain"] {
        assert!(text.contains(sub), "help lists {sub}");
    }
}

#[test]
fn json_diagnostics_carry_code_ranges_labels_and_help() {
    let dir = scratch("json");
    let f = write(
        &dir,
        "a.enigma",
        "dim d = 64\ndim d = 32\nmodel m {\n  predict y = Lineer\n}\n",
    );
    let out = enigma(&["--error-format", "json", "check", &f]);
    assert_eq!(out.status.code(), Some(1));
    // Nothing for people on stderr in JSON mode: tools read stdout.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    let dup = &lines[0];
    assert_eq!(dup["code"], "E0104");
    assert_eq!(dup["severity"], "error");
    assert_eq!(dup["file"], f.as_str());
    assert_eq!(dup["span"]["start"], 15);
    assert_eq!(dup["span"]["end"], 16);
    assert_eq!(dup["range"]["start"]["line"], 2);
    assert_eq!(dup["range"]["start"]["column"], 5);
    let labels = dup["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[0]["primary"], true);
    assert_eq!(labels[1]["primary"], false);
    assert_eq!(labels[1]["range"]["start"]["line"], 1);
    assert!(dup["help"].is_string());
    let unknown = &lines[1];
    assert_eq!(unknown["code"], "E0105");
    assert_eq!(unknown["range"]["start"]["line"], 4);
    assert_eq!(unknown["range"]["start"]["column"], 15);
}

#[test]
fn fmt_rewrites_in_place_and_check_reports() {
    let dir = scratch("fmt");
    let messy = "dim   d=64 // width\n\n\n\nmodel m{let h=d*2\n predict y=h}\n";
    let f = write(&dir, "a.enigma", messy);
    let check = enigma(&["fmt", "--check", &f]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        messy,
        "--check never writes"
    );
    let out = enigma(&["fmt", &f]);
    assert_eq!(out.status.code(), Some(0));
    let formatted = std::fs::read_to_string(&f).unwrap();
    assert_eq!(
        formatted,
        "dim d = 64 // width\n\nmodel m {\n  let h = d * 2\n  predict y = h\n}\n"
    );
    assert_eq!(enigma(&["fmt", "--check", &f]).status.code(), Some(0));
}

#[test]
fn fmt_leaves_unparsable_files_untouched() {
    let dir = scratch("fmtbad");
    let bad = "model m { let = }\n";
    let f = write(&dir, "a.enigma", bad);
    let out = enigma(&["fmt", &f]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0001"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), bad);
}

#[test]
fn explain_prints_pages_and_rejects_unknown_codes() {
    let out = enigma(&["explain", "E0105"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("# E0105"));
    let lower = enigma(&["explain", "e0105"]);
    assert_eq!(lower.stdout, out.stdout, "codes are case-insensitive");
    let list = enigma(&["explain"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("E0001  syntax error"));
    assert_eq!(enigma(&["explain", "E9999"]).status.code(), Some(2));
}

/// `enigma explain CODE` prints the page itself, to its end: the example
/// and the `## Fix` that tests/error_pages.rs checks.
#[test]
fn explain_prints_the_whole_page_with_its_fix() {
    for code in enigma::diagnostics::Code::ALL {
        let page = std::fs::read_to_string(format!("docs/errors/{code}.md")).unwrap();
        let out = enigma(&["explain", code.as_str()]);
        assert_eq!(out.status.code(), Some(0), "{code}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), page, "{code}");
        assert!(page.contains("\n## Fix\n"), "{code} has a `## Fix` section");
    }
}

#[test]
fn consolidate_says_when_a_run_has_no_checkpoint_and_copies_one_it_has() {
    use enigma::base::host::HostTensor;
    use enigma::run::checkpoint::{load, sharded, CheckpointDir};
    let dir = scratch("consolidate");
    let out = enigma(&["checkpoint", "consolidate", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no checkpoint"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two ranks' halves of one tensor, published as a job publishes them.
    let ckpts = dir.join("checkpoints");
    let part = |start: usize, data: &[f32]| sharded::Part {
        name: "w".into(),
        shape: vec![2, 2],
        region: Vec::new(),
        start,
        data: data.to_vec(),
    };
    sharded::write_shard(&ckpts, 5, 0, &[part(0, &[1., 2.])]).unwrap();
    sharded::write_shard(&ckpts, 5, 1, &[part(2, &[3., 4.])]).unwrap();
    CheckpointDir::new(&ckpts, 2)
        .publish_sharded(5, 2, &Default::default())
        .unwrap();
    let out = enigma(&["checkpoint", "consolidate", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let one = load(&dir.join("consolidated/step-00000005.safetensors")).unwrap();
    assert_eq!(
        one.tensors["w"],
        HostTensor {
            shape: vec![2, 2],
            data: vec![1., 2., 3., 4.]
        }
    );
}

#[test]
fn user_modules_are_found_relative_to_the_importing_file() {
    let dir = scratch("modules");
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    write(
        &dir,
        "lib/blocks.enigma",
        "module Id()(x: [..., d]) -> [..., d] {\n  return x\n}\n",
    );
    let main = write(
        &dir,
        "main.enigma",
        "use lib::blocks::{Id}\nmodel m {\n  predict y = Id()(1)\n}\n",
    );
    let out = enigma(&["check", &main]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(unix)]
#[test]
fn fmt_writes_through_symbolic_links() {
    let dir = scratch("symlink");
    let real = write(&dir, "real.enigma", "dim   d=1\n");
    let link = dir.join("link.enigma");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = enigma(&["fmt", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "dim d = 1\n");
}

#[test]
fn check_stats_prints_parameters_flops_and_memory() {
    let out = enigma(&["check", "--stats", "examples/enigma_1b.enigma"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "parameters: 1,062,615,040 = 1,029,052,416 shared + 16 sessions x 2,097,664\n"
        ),
        "{text}"
    );
    assert!(text.contains("backbone"), "{text}");
    assert!(
        text.contains("compute: 7.948e16 FLOPs per training step"),
        "{text}"
    );
    assert!(text.contains("activations: "), "{text}");
}

#[test]
fn check_emit_ir_prints_yaml_on_stdout() {
    let out = enigma(&["check", "--emit", "ir", "examples/quickstart.enigma"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
    assert_eq!(doc["format"], 1);
    assert_eq!(doc["outputs"][0]["name"], "response");
    // Nothing but the IR on stdout: the summary goes to stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("checked 1 file"));
}

#[test]
fn check_with_errors_prints_no_stats() {
    let dir = scratch("stats_on_error");
    let path = write(
        &dir,
        "bad.enigma",
        "use std::nn::{Linear}\ndim d = 8\ndata s = synthetic.series(channels: 4) { window: 10 }\nmodality x: series<f32>[10, 4] from s.x\nmodel m {\n  predict y = Linear(d_in: d, d_out: 2)(x)\n}\n",
    );
    let out = enigma(&["check", "--stats", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0211"));
}

#[test]
fn plan_prints_a_summary_of_every_stage() {
    let out = enigma(&["plan", "examples/enigma_1b.enigma", "--world", "64"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("mesh: node 8 x gpu 8 = 64 ranks"),
        "{stdout}"
    );
    assert!(stdout.contains("ZeRO-3 over gpu"), "{stdout}");
    assert!(stdout.contains("1,062,615,040"), "{stdout}");
    assert!(
        stdout.contains("fits") && stdout.contains("MFU"),
        "{stdout}"
    );
}

#[test]
fn plan_refuses_a_mesh_of_another_world_size() {
    let out = enigma(&["plan", "examples/enigma_1b.enigma", "--world", "32"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("E0301") && stderr.contains("64 ranks but the world has 32"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn plan_of_an_experiment_with_errors_stops_at_check() {
    let dir = scratch("plan-errors");
    let f = write(&dir, "a.enigma", "dim d = 64 +\n");
    let out = enigma(&["plan", &f]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not planned"));
}

#[test]
fn plan_emits_json_yaml_and_dot_for_tools() {
    let file = "tests/plan/gpt2_tensor_and_pipeline.enigma";
    let json = enigma(&["plan", file, "--emit", "json"]);
    assert_eq!(json.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["format"], 1);
    assert_eq!(doc["ranks"].as_array().map(Vec::len), Some(8));
    let yaml = enigma(&["plan", file, "--emit", "yaml"]);
    assert!(String::from_utf8_lossy(&yaml.stdout).starts_with("format: 1"));
    let dot = enigma(&["plan", file, "--emit", "dot"]);
    let text = String::from_utf8_lossy(&dot.stdout);
    assert!(text.starts_with("digraph"), "{text}");
}

#[test]
fn plan_search_ranks_layouts_that_fit() {
    let out = enigma(&["plan", "examples/gpt2_small.enigma", "--search"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.contains("layouts of 8 ranks that fit, fastest first"),
        "{stdout}"
    );
    assert!(stdout.contains("why #1"), "{stdout}");
}

#[test]
fn plan_rejects_impossible_cluster_settings() {
    for args in [
        ["--efficiency", "1.5"],
        ["--gpus-per-node", "0"],
        ["--nvlink-bandwidth", "-1"],
    ] {
        let mut all = vec!["plan", "examples/gpt2_small.enigma"];
        all.extend(args);
        let out = enigma(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// A per-cell embedding sized by the cells a `select` keeps cannot be
/// placed from the headers alone: `enigma plan` reads the classifier
/// column, says what it bound, and places the parameters; a classifier
/// that keeps no cell is an error, not an empty model.
#[test]
fn plan_sizes_what_only_the_data_gives() {
    let d = scratch("plan-data");
    let f: Vec<f32> = (0..6 * 40).map(|i| (i % 7) as f32).collect();
    npy::write_f32(&d.join("f.npy"), &[6, 40], &f);
    let text = "use std::tokenize::{UnitValues}\nuse std::readout::{PerUnit}\nuse std::losses::{mse}\n\
        dim T = 1s\ndim N per session\ndim d = 8\n\
        data f = npy(\"f.npy\", axes: [N, T], rate: 10Hz) {\n  window: T\n  split: by_time(train: 0.5, val: 0.25, test: 0.25)\n}\n\
        data cells = npy(\"cells.npy\", axes: [N, 2])\n\
        modality x: series<f32>[T @ 10Hz, N] from f | select(N, where: cells[.., 0] > 0.5)\n\
        tokenizer xt = UnitValues(d: d, mask: 0.25)(x)\n\
        model m {\n  predict x = PerUnit(d: d)(xt, x)\n}\n\
        loss mse(m.x, x)\n";
    let file = write(&d, "cells.enigma", text);
    // Three of the six ROIs are cells: embeddings [3, 8] and readouts [3, 9].
    let table = [1.0, 0.9, 0.0, 0.1, 1.0, 0.8, 0.0, 0.3, 0.0, 0.2, 1.0, 0.7];
    npy::write_f32(&d.join("cells.npy"), &[6, 2], &table);
    let out = enigma(&["plan", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("sized from the data: N = 3"), "{err}");
    // `check --stats` counts 17*N + 32 parameters; the plan places them
    // with N = 3: 83 on its one rank.
    let table = String::from_utf8_lossy(&out.stdout);
    let stage: Vec<&str> = table
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(stage.get(2), Some(&"83"), "{table}");

    npy::write_f32(&d.join("cells.npy"), &[6, 2], &[0.0; 12]);
    let out = enigma(&["plan", &file]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keeps none of the 6 positions of `N`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `enigma run` replaces itself with the runtime program, passing every
/// argument unchanged; a fake runtime named by `ENIGMA_RUNTIME` records
/// what it received and sets the exit status.
#[cfg(unix)]
#[test]
fn run_hands_its_command_line_to_the_runtime_program() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("delegate");
    let seen = dir.join("seen.txt");
    let fake = dir.join("fake-enigma-run");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nexit 7\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_enigma"))
        .args(["run", "--steps", "3", "--out", "my run", "exp.enigma"])
        .env("ENIGMA_RUNTIME", &fake)
        .output()
        .unwrap();
    // The runtime's status is the command's status.
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let args = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        ["run", "--steps", "3", "--out", "my run", "exp.enigma"]
    );
}

#[test]
fn run_without_the_runtime_program_is_a_usage_error() {
    let dir = scratch("no-runtime");
    let out = Command::new(env!("CARGO_BIN_EXE_enigma"))
        .args(["run", "exp.enigma"])
        .env("ENIGMA_RUNTIME", dir.join("absent"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("runtime program") && err.contains("ENIGMA_RUNTIME"),
        "{err}"
    );
}
