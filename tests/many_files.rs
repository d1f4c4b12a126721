//! Sources of many files, one session each: lists, globs, DANDI-style
//! folders and suite2p roots, checked by `enigma check` and opened by the
//! loader, with each session's own cell count and a disagreeing session
//! named by its file.

use std::path::{Path, PathBuf};

use enigma::dataset::loader::Dataset;
use enigma::diagnostics::{Code, ErrorKind};
use enigma::ir::data::DataSpec;

#[path = "common/npy.rs"]
mod npy;

#[path = "common/checked.rs"]
mod checked;

/// A fresh folder for one test.
fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-it-many-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a `[n, t]` ROI-major recording whose value at (cell, sample) is
/// `1000 * session + 10 * cell + sample % 10`.
fn traces(path: &Path, session: usize, n: usize, t: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let values: Vec<f32> = (0..n * t)
        .map(|i| (1000 * session + 10 * (i / t) + (i % t) % 10) as f32)
        .collect();
    npy::write_f32(path, &[n, t], &values);
}

/// The first E0219 `enigma check` reports for `text` as `d/main.enigma`.
fn first_e0219(d: &Path, text: &str) -> enigma::diagnostics::Diagnostic {
    std::fs::write(d.join("main.enigma"), text).unwrap();
    let a = checked::checked(&d.join("main.enigma"));
    a.diagnostics
        .iter()
        .find(|x| x.code == Code::E0219)
        .cloned()
        .unwrap_or_else(|| panic!("{:?}", a.diagnostics))
}

fn spec(path: &Path) -> DataSpec {
    checked::experiment(path)
        .data
        .unwrap_or_else(|e| panic!("{e:?}"))
}

const HEAD: &str = "dim T = 1s\ndim N per session\n";

fn block() -> &'static str {
    "{\n  window: T\n  split: by_time(train: 0.5, val: 0.25, test: 0.25)\n}\n"
}

#[test]
fn a_glob_of_npy_files_is_one_session_per_file_in_path_order() {
    let d = folder("glob");
    traces(&d.join("ses-b/F.npy"), 1, 4, 80);
    traces(&d.join("ses-a/F.npy"), 0, 3, 40);
    traces(&d.join("other/F.npy"), 9, 2, 40);
    let text = format!(
        "{HEAD}data f = npy(\"ses-*/F.npy\", axes: [N, T], rate: 10Hz) {}\
         modality x: series<f32>[T @ 10Hz, N] from f\n",
        block()
    );
    std::fs::write(d.join("main.enigma"), text).unwrap();
    let a = checked::checked(&d.join("main.enigma"));
    assert!(a.diagnostics.is_empty(), "{:?}", a.diagnostics);
    let ds = Dataset::open(&spec(&d.join("main.enigma"))).unwrap();
    let sessions = ds.sessions();
    assert_eq!(sessions.len(), 2);
    // ses-a first: 3 cells over 4 s, then ses-b: 4 cells over 8 s.
    assert_eq!(sessions[0].dims.get("N"), Some(&3));
    assert_eq!(sessions[1].dims.get("N"), Some(&4));
    assert!((sessions[0].duration - 4.0).abs() < 1e-9);
    assert!((sessions[1].duration - 8.0).abs() < 1e-9);
}

#[test]
fn a_list_reads_its_files_in_list_order() {
    let d = folder("list");
    traces(&d.join("a.npy"), 0, 3, 40);
    traces(&d.join("b.npy"), 1, 3, 60);
    let text = format!(
        "{HEAD}data f = npy([\"b.npy\", \"a.npy\"], axes: [N, T], rate: 10Hz) {}\
         modality x: series<f32>[T @ 10Hz, N] from f\n",
        block()
    );
    std::fs::write(d.join("main.enigma"), text).unwrap();
    let ds = Dataset::open(&spec(&d.join("main.enigma"))).unwrap();
    let durations: Vec<f64> = ds.sessions().iter().map(|s| s.duration).collect();
    assert_eq!(durations, [6.0, 4.0]);
}

#[test]
fn a_suite2p_root_is_its_planes_each_with_its_own_cells() {
    let d = folder("suite2p");
    let root = d.join("s2p/suite2p");
    for (p, (n, cells)) in [(5usize, 2usize), (4, 3)].into_iter().enumerate() {
        let plane = root.join(format!("plane{p}"));
        traces(&plane.join("F.npy"), p, n, 60);
        traces(&plane.join("spks.npy"), p, n, 60);
        // The first `cells` ROIs are cells.
        let iscell: Vec<f32> = (0..n)
            .flat_map(|i| [if i < cells { 1.0 } else { 0.0 }, 0.5])
            .collect();
        npy::write_f32(&plane.join("iscell.npy"), &[n, 2], &iscell);
    }
    // suite2p's `combined` folder repeats the planes' cells: not a session.
    traces(&root.join("combined/F.npy"), 7, 9, 60);
    let text = format!(
        "{HEAD}data p = suite2p(\"s2p\", rate: 10Hz) {}\
         modality x: series<f32>[T @ 10Hz, N] from p.F | select(N, where: p.iscell[.., 0] > 0.5)\n",
        block()
    );
    std::fs::write(d.join("main.enigma"), text).unwrap();
    let a = checked::checked(&d.join("main.enigma"));
    assert!(a.diagnostics.is_empty(), "{:?}", a.diagnostics);
    let ds = Dataset::open(&spec(&d.join("main.enigma"))).unwrap();
    let n: Vec<Option<&usize>> = ds.sessions().iter().map(|s| s.dims.get("N")).collect();
    assert_eq!(n, [Some(&2), Some(&3)]);
}

#[test]
fn a_pattern_that_matches_nothing_is_named_by_check_and_by_run() {
    let d = folder("nothing");
    traces(&d.join("ses-a/F.npy"), 0, 3, 40);
    let text = format!(
        "{HEAD}data f = npy([\"ses-a/F.npy\", \"ses-x*/F.npy\"], axes: [N, T], rate: 10Hz) {}\
         modality x: series<f32>[T @ 10Hz, N] from f\n",
        block()
    );
    std::fs::write(d.join("main.enigma"), text).unwrap();
    let a = checked::checked(&d.join("main.enigma"));
    let warning = a
        .diagnostics
        .iter()
        .find(|x| x.code == Code::W0201)
        .expect("a warning");
    assert!(
        warning.message.contains("ses-x*/F.npy"),
        "{}",
        warning.message
    );
    let e = Dataset::open(&spec(&d.join("main.enigma"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DataIo);
    assert!(e.to_string().contains("ses-x*/F.npy"), "{e}");
}

#[test]
fn a_session_whose_file_disagrees_is_named_with_its_file() {
    let d = folder("disagree");
    traces(&d.join("ses-a/F.npy"), 0, 3, 40);
    // Stored the other way round: [T, N].
    traces(&d.join("ses-b/F.npy"), 1, 40, 3);
    let text = format!(
        "dim T = 1s\ndim N = 3\ndata f = npy(\"ses-*/F.npy\", axes: [N, T], rate: 10Hz) {}\
         modality x: series<f32>[T @ 10Hz, N] from f\n",
        block()
    );
    let e = first_e0219(&d, &text);
    assert!(
        e.message.contains("session 1") && e.message.contains("ses-b"),
        "{}",
        e.message
    );
}

#[test]
fn sessions_that_disagree_on_a_shared_dim_are_an_error_at_check() {
    let d = folder("shared");
    traces(&d.join("ses-a/F.npy"), 0, 3, 40);
    traces(&d.join("ses-b/F.npy"), 1, 4, 40);
    // `N` is not declared per session, so every file must have the same.
    let text = format!(
        "dim T = 1s\ndim N\ndata f = npy(\"ses-*/F.npy\", axes: [N, T], rate: 10Hz) {}\
         modality x: series<f32>[T @ 10Hz, N] from f\n",
        block()
    );
    let e = first_e0219(&d, &text);
    assert!(e.message.contains("ses-b"), "{}", e.message);
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains("per session")),
        "{:?}",
        e.help
    );
}

/// An `ops.npy` as NumPy writes suite2p's settings: an object array whose
/// pickle holds `{'fs': fs, ...}` (the bytes around the entry abridged).
fn ops(path: &Path, fs: f64) {
    let mut bytes =
        b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (), }\n".to_vec();
    bytes.extend(b"\x80\x04\x95\x41\x01\x00\x00\x00\x00\x00\x00}\x94(\x8c\x02fs\x94G");
    bytes.extend(fs.to_be_bytes());
    bytes.extend(b"\x8c\x07nplanes\x94K\x01u.");
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_suite2p_plane_without_a_rate_takes_fs_from_its_ops() {
    let d = folder("ops");
    let plane = d.join("s2p/plane0");
    traces(&plane.join("F.npy"), 0, 3, 120);
    let text = format!(
        "{HEAD}data p = suite2p(\"s2p\") {}\
         modality x: series<f32>[T @ 10Hz, N] from p.F | resample(10Hz)\n",
        block()
    );
    std::fs::write(d.join("main.enigma"), text).unwrap();
    // Without `ops.npy` the rate is unknown, and the error says where to
    // give it.
    let e = Dataset::open(&spec(&d.join("main.enigma"))).unwrap_err();
    assert!(e.to_string().contains("ops.npy"), "{e}");
    // 120 frames at the recorded 20 Hz are 6 s.
    ops(&plane.join("ops.npy"), 20.0);
    let ds = Dataset::open(&spec(&d.join("main.enigma"))).unwrap();
    assert!((ds.sessions()[0].duration - 6.0).abs() < 1e-9);
}
