//! The driver on small experiments written to a fresh directory: binding
//! the sizes only the data gives, and planning.

use std::path::{Path, PathBuf};

use super::*;
use crate::plan::report::Options as PlanOptions;
use crate::source::FsLoader;

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-driver-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}

/// A C-order little-endian `.npy` file of `f8` or `f4` values.
fn npy(path: &Path, descr: &str, shape: &[usize], values: &[f64]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in values {
        if descr == "<f4" {
            bytes.extend((*v as f32).to_le_bytes());
        } else {
            bytes.extend(v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
}

fn plan_options() -> Options {
    Options {
        resolve: Default::default(),
        goal: Goal::Plan(PlanOptions::default()),
        record_types: false,
    }
}

/// Six ROIs over 4 s at 10 Hz, of which the classifier column marks
/// `cells` as cells; a per-cell embedding and readout sized by them.
fn experiment(name: &str, cells: &[f64]) -> PathBuf {
    let d = dir(name);
    let v: Vec<f64> = (0..6 * 40).map(|i| f64::from(i % 7)).collect();
    npy(&d.join("f.npy"), "<f4", &[6, 40], &v);
    let table: Vec<f64> = cells.iter().flat_map(|&c| [c, 0.5]).collect();
    npy(&d.join("cells.npy"), "<f8", &[6, 2], &table);
    let text = "use std::tokenize::{UnitValues}\nuse std::readout::{PerUnit}\nuse std::losses::{mse}\n\
        dim T = 1s\ndim N per session\ndim d = 8\n\
        data f = npy(\"f.npy\", axes: [N, T], rate: 10Hz) {\n  window: T\n  stride: 500ms\n  split: by_time(train: 0.5, val: 0.25, test: 0.25)\n}\n\
        data cells = npy(\"cells.npy\", axes: [N, 2])\n\
        modality x: series<f32>[T @ 10Hz, N] from f | select(N, where: cells[.., 0] > 0.5)\n\
        tokenizer xt = UnitValues(d: d, mask: 0.25)(x)\n\
        model m {\n  predict x = PerUnit(d: d)(xt, x)\n}\n\
        loss mse(m.x, x)\n";
    let path = d.join("main.enigma");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn the_cells_a_select_keeps_size_the_parameters() {
    let path = experiment("bind-select", &[1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
    // Checking alone cannot count the cells: the embedding is `[N, d]`.
    let checked = compile(&FsLoader, &path, &Options::check()).unwrap_or_else(|e| panic!("{e}"));
    let x = checked
        .experiment
        .unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
    let open = x.graph.unsized_params();
    assert!(
        open.iter().any(|(p, s)| p == "xt.unit" && s == "N"),
        "{open:?}"
    );
    // Planning binds them from the data first.
    let a = compile(&FsLoader, &path, &plan_options()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.error, None);
    let x = a
        .experiment
        .unwrap_or_else(|| panic!("{:?}", a.diagnostics));
    assert_eq!(x.sized_from_data, [("N".to_string(), 4)]);
    assert!(x.graph.unsized_params().is_empty());
    let unit = x.graph.params.iter().find(|p| p.path == "xt.unit");
    let sizes: Vec<Option<i64>> = unit
        .map(|u| {
            u.ty.dims
                .iter()
                .map(|d| d.size_or_name().as_const())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(sizes, [Some(4), Some(8)]);
    assert!(a.planned.is_some_and(|p| p.plan.is_some()));
    // The dataset opened to count them comes back for the run to read.
    let ds = a
        .dataset
        .unwrap_or_else(|| panic!("the dataset that was opened"));
    assert_eq!(ds.sessions()[0].dims.get("N"), Some(&4));
}

#[test]
fn a_select_that_keeps_nothing_is_an_error_not_an_empty_model() {
    let path = experiment("bind-none", &[0.0; 6]);
    let a = compile(&FsLoader, &path, &plan_options()).unwrap_or_else(|e| panic!("{e}"));
    let e = a.error.unwrap_or_else(|| panic!("bound")).to_string();
    assert!(e.contains("keeps none of the 6 positions of `N`"), "{e}");
    assert!(e.contains("modality `x`") && e.contains("xt.unit"), "{e}");
    assert!(a.planned.is_none());
}

#[test]
fn an_experiment_with_every_size_known_reads_no_data() {
    let path = crate::testing::example_path("quickstart.enigma");
    let a = compile(&FsLoader, &path, &plan_options()).unwrap_or_else(|e| panic!("{e}"));
    let x = a
        .experiment
        .unwrap_or_else(|| panic!("{:?}", a.diagnostics));
    assert!(a.dataset.is_none() && x.sized_from_data.is_empty());
    assert!(a.planned.is_some_and(|p| p.plan.is_some()));
}

#[test]
fn checking_stops_before_planning_when_there_are_errors() {
    let d = dir("errors");
    let path = d.join("main.enigma");
    std::fs::write(
        &path,
        "dim T = 2s\nmodality x: series<f32>[T @ 7Hz] from nowhere\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let a = compile(&FsLoader, &path, &plan_options()).unwrap_or_else(|e| panic!("{e}"));
    assert!(a.has_errors());
    assert!(a.experiment.is_none() && a.planned.is_none());
}

/// Two files, one session each, with 3 and 5 cells: each session's tables
/// are sized by its own cells.
#[test]
fn sessions_with_their_own_cells_get_their_own_graphs() {
    let d = dir("per-session");
    for (name, n) in [("a", 3usize), ("b", 5)] {
        let v: Vec<f64> = (0..n * 40).map(|i| f64::from((i % 7) as u8)).collect();
        npy(&d.join(format!("{name}.npy")), "<f4", &[n, 40], &v);
    }
    let text = "use std::tokenize::{UnitValues}\nuse std::readout::{PerUnit}\nuse std::losses::{mse}\n\
        dim T = 1s\ndim N per session\ndim d = 8\n\
        data f = npy([\"a.npy\", \"b.npy\"], axes: [N, T], rate: 10Hz) {\n  window: T\n  split: by_time(train: 0.5, val: 0.25, test: 0.25)\n}\n\
        modality x: series<f32>[T @ 10Hz, N] from f\n\
        tokenizer xt = UnitValues(d: d, mask: 0.25)(x)\n\
        model m {\n  predict x = PerUnit(d: d)(xt, x)\n}\n\
        loss mse(m.x, x)\n";
    let path = d.join("main.enigma");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    // The files disagree on `N`, so checking leaves it to the data.
    let checked = compile(&FsLoader, &path, &Options::check()).unwrap_or_else(|e| panic!("{e}"));
    let x = checked
        .experiment
        .unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
    assert_eq!(x.graph.sessions, Some(2));
    assert!(!x.graph.unsized_params().is_empty());
    let a = compile(&FsLoader, &path, &plan_options()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.error, None);
    let x = a
        .experiment
        .unwrap_or_else(|| panic!("{:?}", a.diagnostics));
    assert_eq!(x.session_graphs.len(), 2);
    assert_eq!(
        x.session_sizes,
        [vec![("N".to_string(), 3)], vec![("N".to_string(), 5)]]
    );
    let unit_rows = |s: usize| {
        x.graph_of(s)
            .params
            .iter()
            .find(|p| p.path == "xt.unit")
            .and_then(|p| p.ty.dims.first().and_then(|d| d.size_or_name().as_const()))
    };
    assert_eq!((unit_rows(0), unit_rows(1)), (Some(3), Some(5)));
    // Session 0's graph is the one the plan places, once per session; the
    // memory figures count each session's own rows: 3 + 5, not 2 x 3.
    assert_eq!(x.graph.params.len(), x.graph_of(1).params.len());
    assert_eq!(x.graph.session_totals, [("N".to_string(), 8)]);
    let plan = a
        .planned
        .and_then(|p| p.plan)
        .unwrap_or_else(|| panic!("not planned"));
    let unit = x
        .graph
        .params
        .iter()
        .position(|p| p.path == "xt.unit")
        .unwrap_or_else(|| panic!("no xt.unit"));
    let placed = plan
        .placements
        .iter()
        .find(|p| p.param == unit)
        .unwrap_or_else(|| panic!("xt.unit not placed"));
    assert_eq!((placed.shape.clone(), placed.copies), (vec![3, 8], 2));
    let elements = crate::plan::memory::all_copies(&x.graph, placed, 3 * 8);
    assert_eq!(elements, 64.0);
}
