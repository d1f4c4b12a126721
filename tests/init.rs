//! `enigma init`: every template is written, checks, plans and is already
//! in the canonical layout; an existing experiment is never overwritten
//! without `--force`; bad requests are clear errors with status 2.
//!
//! The `calcium` and `spikes` templates are checked against the sample
//! recordings: `examples/data/` in this repository, else the folder
//! `$ENIGMA_REAL_DATA` names. Without either those checks say so on stderr
//! and stop; the `video` template reads no files and is always checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn enigma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enigma"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the enigma binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh, empty folder for one test; `init` itself creates DIR below it.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enigma-init-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the scratch folder can be made");
    dir
}

fn text(p: &Path) -> String {
    p.to_str().expect("test paths are UTF-8").to_string()
}

/// The sample recordings, if this checkout or machine has them.
fn sample_data() -> Option<PathBuf> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let from_env = std::env::var_os("ENIGMA_REAL_DATA").map(PathBuf::from);
    let found = std::iter::once(shipped)
        .chain(from_env)
        .find(|d| d.join("F.npy").is_file() && d.join("A8604-211122.nwb").is_file());
    if found.is_none() {
        eprintln!(
            "skipped: no sample recordings in examples/data/ or $ENIGMA_REAL_DATA, so the \
             calcium and spikes templates are not checked against data"
        );
    }
    found
}

/// Asserts that a command exited with `code`, showing its stderr if not.
fn assert_status(out: &Output, code: i32, what: &str) {
    assert_eq!(out.status.code(), Some(code), "{what}:\n{}", stderr(out));
}

/// `enigma check`, `enigma plan` and `enigma fmt --check` of a written
/// experiment. `clean`: the check must report no warnings either.
fn assert_checks(file: &Path, clean: bool) {
    let f = text(file);
    let out = enigma(&["check", &f]);
    assert_status(&out, 0, "check");
    if clean {
        assert!(stderr(&out).contains("no problems"), "{}", stderr(&out));
    }
    let out = enigma(&["fmt", "--check", &f]);
    assert_status(&out, 0, "the template is formatted");
}

fn assert_plans(file: &Path) {
    let out = enigma(&["plan", &text(file)]);
    assert_status(&out, 0, "plan");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("mesh: dp 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_default_template_reads_no_files_and_checks() {
    let root = scratch("video");
    let dir = root.join("first-run");
    let out = enigma(&["init", &text(&dir)]);
    assert_status(&out, 0, "init");
    let err = stderr(&out);
    let file = dir.join("first-run.enigma");
    assert!(err.contains("template `video`"), "{err}");
    assert!(err.contains("enigma run first-run.enigma"), "{err}");
    assert!(file.is_file());
    assert_checks(&file, true);
    assert_plans(&file);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn file_templates_without_data_say_what_to_put_where() {
    let root = scratch("nodata");
    for (template, needs) in [("calcium", "iscell.npy"), ("spikes", "NWB files")] {
        let dir = root.join(template);
        let out = enigma(&["init", "--template", template, &text(&dir)]);
        assert_status(&out, 0, template);
        let err = stderr(&out);
        assert!(err.contains("its data is not there yet"), "{err}");
        assert!(err.contains(needs), "{err}");
        assert!(err.contains(&text(&dir.join("data"))), "{err}");
        // Missing data is a warning (W0201), never an error: the
        // experiment itself is sound.
        assert_checks(&dir.join(format!("{template}.enigma")), false);
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn file_templates_check_and_plan_against_the_sample_data() {
    let Some(data) = sample_data() else { return };
    let root = scratch("data");
    for template in ["calcium", "spikes"] {
        let dir = root.join(template);
        let out = enigma(&[
            "init",
            "--template",
            template,
            "--data",
            &text(&data),
            &text(&dir),
        ]);
        assert_status(&out, 0, template);
        let file = dir.join(format!("{template}.enigma"));
        let written = std::fs::read_to_string(&file).expect("the experiment was written");
        let canonical = std::fs::canonicalize(&data).expect("the data folder resolves");
        assert!(written.contains(&text(&canonical)), "{written}");
        // Reading NWB needs libhdf5 (the `nwb` feature); without it the
        // file is unchecked against its data (a warning), not wrong.
        let clean = template == "calcium" || cfg!(feature = "nwb");
        assert_checks(&file, clean);
        if clean {
            assert_plans(&file);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn data_inside_the_folder_is_named_relative_to_it() {
    let Some(data) = sample_data() else { return };
    let root = scratch("inside");
    let dir = root.join("exp");
    let rec = dir.join("recordings");
    std::fs::create_dir_all(&rec).expect("made");
    for f in ["F.npy", "spks.npy", "iscell.npy"] {
        std::fs::copy(data.join(f), rec.join(f)).expect("copied");
    }
    let out = enigma(&[
        "init",
        "--template",
        "calcium",
        "--data",
        &text(&rec),
        &text(&dir),
    ]);
    assert_status(&out, 0, "init");
    let written = std::fs::read_to_string(dir.join("exp.enigma")).expect("written");
    assert!(written.contains("suite2p(\"recordings\""), "{written}");
    assert_checks(&dir.join("exp.enigma"), true);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_existing_experiment_is_kept_unless_forced() {
    let root = scratch("force");
    let dir = root.join("exp");
    assert_status(&enigma(&["init", &text(&dir)]), 0, "first init");
    let file = dir.join("exp.enigma");
    std::fs::write(&file, "// my edits\n").expect("written");
    let out = enigma(&["init", "--template", "calcium", &text(&dir)]);
    assert_status(&out, 2, "second init");
    let err = stderr(&out);
    assert!(err.contains("already exists"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("// my edits\n")
    );
    let out = enigma(&["init", "--force", &text(&dir)]);
    assert_status(&out, 0, "forced init");
    let written = std::fs::read_to_string(&file).expect("written");
    assert!(written.contains("synthetic.mouse_v1"), "{written}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_unknown_template_lists_the_templates() {
    let root = scratch("unknown");
    let out = enigma(&["init", "--template", "widefield", &text(&root.join("x"))]);
    assert_status(&out, 2, "unknown template");
    let err = stderr(&out);
    for name in ["widefield", "video", "calcium", "spikes"] {
        assert!(err.contains(name), "{err}");
    }
    assert!(!root.join("x").exists(), "nothing is created");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_requests_are_clear_errors() {
    let root = scratch("bad");
    // --data that does not exist.
    let missing = root.join("nowhere");
    let out = enigma(&[
        "init",
        "--template",
        "spikes",
        "--data",
        &text(&missing),
        &text(&root.join("a")),
    ]);
    assert_status(&out, 2, "missing --data");
    assert!(
        stderr(&out).contains("no such file or folder"),
        "{}",
        stderr(&out)
    );
    // --data for a template that reads no files.
    let out = enigma(&["init", "--data", &text(&root), &text(&root.join("b"))]);
    assert_status(&out, 2, "--data with video");
    assert!(stderr(&out).contains("takes no --data"), "{}", stderr(&out));
    // A file where the folder should be.
    let file = root.join("c");
    std::fs::write(&file, "").expect("written");
    let out = enigma(&["init", &text(&file)]);
    assert_status(&out, 2, "DIR is a file");
    assert!(stderr(&out).contains("not a folder"), "{}", stderr(&out));
    // The calcium template reads a folder, not a file.
    let out = enigma(&[
        "init",
        "--template",
        "calcium",
        "--data",
        &text(&file),
        &text(&root.join("d")),
    ]);
    assert_status(&out, 2, "calcium --data FILE");
    assert!(stderr(&out).contains("is a file"), "{}", stderr(&out));
    for name in ["a", "b", "d"] {
        assert!(!root.join(name).exists(), "{name}: nothing is created");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn data_that_does_not_fit_is_reported_and_nothing_is_written() {
    let root = scratch("misfit");
    let data = root.join("not-suite2p");
    std::fs::create_dir_all(&data).expect("made");
    for f in ["F.npy", "spks.npy", "iscell.npy"] {
        std::fs::write(data.join(f), "not an array\n").expect("written");
    }
    let dir = root.join("exp");
    let out = enigma(&[
        "init",
        "--template",
        "calcium",
        "--data",
        &text(&data),
        &text(&dir),
    ]);
    assert_status(&out, 1, "init with unreadable arrays");
    let err = stderr(&out);
    assert!(err.contains("not a valid npy file"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!dir.exists(), "nothing is created");
    let _ = std::fs::remove_dir_all(&root);
}
