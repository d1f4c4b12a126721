//! Loader tests on small experiments: `.enigma` text and `.npy` files
//! written to a fresh directory, checked, opened and batched, with every
//! expected value computed from how the file was written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::ir::data::DataSpec;

/// A fresh directory for one test.
pub(crate) fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-loader-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a C-order `.npy` file of `descr` (`<f4` or `<f8`).
pub(crate) fn npy(path: &Path, descr: &str, shape: &[usize], values: &[f64]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut data = Vec::new();
    for v in values {
        if descr == "<f4" {
            data.extend((*v as f32).to_le_bytes());
        } else {
            data.extend(v.to_le_bytes());
        }
    }
    let out = super::array::npy_bytes(descr, false, &shape, &data);
    std::fs::write(path, out).unwrap();
}

/// Checks `text` as `d/main.enigma` and builds its spec.
fn spec(d: &Path, text: &str) -> DataSpec {
    crate::testing::data_spec(d, text)
}

/// `[3, 40]` values `100 n + t` (ROI-major, like suite2p) at 10 Hz.
fn traces(d: &Path) {
    let v: Vec<f64> = (0..3)
        .flat_map(|n| (0..40).map(move |t| f64::from(100 * n + t)))
        .collect();
    npy(&d.join("f.npy"), "<f4", &[3, 40], &v);
}

const HEAD: &str = "dim T = 1s\ndim N per session\n\
    data f = npy(\"f.npy\", axes: [N, T], rate: 10Hz) {\n  window: T\n  stride: 500ms\n  split: by_time(train: 0.5, val: 0.25, test: 0.25)\n}\n";

#[test]
fn npy_axes_are_permuted_and_values_land_where_declared() {
    let d = dir("permute");
    traces(&d);
    let s = spec(
        &d,
        &format!(
            "{HEAD}modality x: series<f32>[T @ 10Hz, N] from f\nmodality y: series<f32>[N, T @ 10Hz] from f | x * 2\n"
        ),
    );
    let ds = Dataset::open(&s).unwrap();
    // 4 s: train [0, 2) holds starts 0, 0.5, 1; val and test one each.
    assert_eq!(
        (
            ds.len(Split::Train),
            ds.len(Split::Val),
            ds.len(Split::Test)
        ),
        (3, 1, 1)
    );
    assert_eq!(ds.sessions()[0].dims.get("N"), Some(&3));
    let b = ds.batch(Split::Train, &[1, 2]).unwrap();
    assert_eq!(b.inputs[0].shape, [2, 10, 3]);
    assert_eq!(b.inputs[1].shape, [2, 3, 10]);
    for (k, start) in [(0, 5), (1, 10)] {
        for t in 0..10 {
            for n in 0..3 {
                let want = (100 * n + start + t) as f32;
                assert_eq!(b.inputs[0].data[(k * 10 + t) * 3 + n], want);
                assert_eq!(b.inputs[1].data[(k * 3 + n) * 10 + t], 2.0 * want);
            }
        }
    }
    let v = ds.batch(Split::Val, &[0]).unwrap();
    assert_eq!(v.inputs[0].data[0], 20.0);
    // Windows of another split or past the end are errors, not panics.
    let e = ds.batch(Split::Val, &[1]).unwrap_err();
    assert!(e.to_string().contains("Val window 1"), "{e}");
}

#[test]
fn select_keeps_cells_and_zscore_sees_only_the_training_split() {
    let d = dir("select");
    // Rows 0 and 2 are cells; row 1 holds a NaN, which is never seen.
    // The last half (validation and test) is offset by 1000.
    let mut v = Vec::new();
    for n in 0..3 {
        for t in 0..40 {
            let base = f64::from((t % 4) + 10 * n);
            v.push(if n == 1 && t == 7 {
                f64::NAN
            } else if t >= 20 {
                base + 1000.0
            } else {
                base
            });
        }
    }
    npy(&d.join("f.npy"), "<f8", &[3, 40], &v);
    npy(
        &d.join("cells.npy"),
        "<f8",
        &[3, 2],
        &[1.0, 0.9, 0.0, 0.2, 1.0, 0.7],
    );
    let s = spec(
        &d,
        &format!(
            "{HEAD}data cells = npy(\"cells.npy\", axes: [N, 2])\n\
             modality x: series<f32>[T @ 10Hz, N] from f | select(N, where: cells[.., 0] > 0.5) | zscore()\n"
        ),
    );
    let ds = Dataset::open(&s).unwrap();
    assert_eq!(ds.sessions()[0].dims.get("N"), Some(&2));
    let mean = |split: Split, ids: &[usize]| {
        let b = ds.batch(split, ids).unwrap();
        assert_eq!(b.inputs[0].shape[2], 2);
        b.inputs[0].data.iter().map(|&x| f64::from(x)).sum::<f64>() / b.inputs[0].numel() as f64
    };
    // Windows 0 and 2 tile the training stretch [0, 2) exactly.
    assert!(mean(Split::Train, &[0, 2]).abs() < 1e-5);
    // Statistics from validation data would have pulled this near zero.
    assert!(mean(Split::Val, &[0]) > 100.0);
}

#[test]
fn a_nan_the_model_would_see_names_file_modality_and_position() {
    let d = dir("nan");
    let mut v: Vec<f64> = (0..120).map(f64::from).collect();
    v[40 + 7] = f64::NAN;
    npy(&d.join("f.npy"), "<f4", &[3, 40], &v);
    let s = spec(
        &d,
        &format!("{HEAD}modality x: series<f32>[T @ 10Hz, N] from f\n"),
    );
    let e = Dataset::open(&s).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DataNonFinite);
    let text = e.to_string();
    assert!(
        text.contains("f.npy") && text.contains("modality `x`"),
        "{text}"
    );
    assert!(text.contains("row 1, column 7 is NaN"), "{text}");
}

#[test]
fn transforms_that_make_non_finite_values_are_caught_at_open() {
    let d = dir("log");
    traces(&d);
    let s = spec(
        &d,
        &format!("{HEAD}modality x: series<f32>[T @ 10Hz, N] from f | log(x - 50)\n"),
    );
    let e = Dataset::open(&s).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DataNonFinite);
    assert!(e.to_string().contains("after its transforms"), "{e}");
}

#[test]
fn a_resample_makes_the_declared_rate() {
    let d = dir("rates");
    traces(&d);
    let head = HEAD.replace("500ms", "1s");
    // Without the resample, `enigma check` refuses the 5 Hz declaration of
    // a 10 Hz file (E0212, tests/ui/e0212_npy_rate_differs).
    // With the resample the declaration holds.
    let s = spec(
        &d,
        &format!("{head}modality x: series<f32>[T @ 5Hz, N] from f | resample(5Hz)\n"),
    );
    let ds = Dataset::open(&s).unwrap();
    let b = ds.batch(Split::Train, &[0]).unwrap();
    assert_eq!(b.inputs[0].shape, [1, 5, 3]);
    assert_eq!(b.inputs[0].data[..3], [0.5, 100.5, 200.5]);
}

#[test]
fn intervals_from_a_table_restrict_the_windows() {
    let d = dir("within");
    traces(&d);
    npy(&d.join("ep.npy"), "<f8", &[2, 2], &[0.4, 1.9, 2.0, 4.0]);
    let s = spec(
        &d,
        "dim T = 1s\ndim N per session\ndim K\n\
         data f = npy(\"f.npy\", axes: [N, T], rate: 10Hz) {\n  window: T\n  stride: 500ms\n  within: ep\n  split: by_time(train: 0.5, val: 0.25, test: 0.25)\n}\n\
         data table = npy(\"ep.npy\", axes: [K, 2])\n\
         modality x: series<f32>[T @ 10Hz, N] from f\nmodality ep: intervals<f64>[K] from table\n",
    );
    let ds = Dataset::open(&s).unwrap();
    // Train starts 0, 0.5, 1.0: only 0.5 lies inside [0.4, 1.9].
    let starts: Vec<f64> = ds.windows(Split::Train).iter().map(|w| w.start).collect();
    assert_eq!(starts, [0.5]);
    let b = ds.batch(Split::Test, &[0]).unwrap();
    // The intervals, relative to the window at 3 s.
    assert_eq!(b.inputs[1].shape, [1, 2, 2]);
    let want = [-2.6, -1.1, -1.0, 1.0];
    assert!(b.inputs[1]
        .data
        .iter()
        .zip(want)
        .all(|(a, b)| (a - b).abs() < 1e-6));
}

#[test]
fn the_window_grid_is_the_common_sample_period() {
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
    assert!(close(open::grid_of(&[30.0, 8.0]), 0.5));
    assert!(close(open::grid_of(&[30.0, 10.0]), 0.1));
    assert!(close(open::grid_of(&[50.0]), 0.02));
    assert!(close(open::grid_of(&[7.5, 30.0]), 2.0 / 15.0));
    assert!(close(open::grid_of(&[]), 0.001));
    assert_eq!(open::grid_of(&[std::f64::consts::PI]), None);
}

/// A dataset with only windows, for the epoch plan and the loader.
fn fake(train: &[usize], val: &[usize]) -> Dataset {
    let w = |session: &usize| Window {
        session: *session,
        start: 0.0,
    };
    Dataset {
        spec: DataSpec {
            base_dir: PathBuf::new(),
            sources: Vec::new(),
            modalities: Vec::new(),
            inputs: Vec::new(),
        },
        settings: WindowSettings {
            length: 1.0,
            stride: 1.0,
            rule: crate::ir::data::SplitRule::ByTime([1.0, 0.0, 0.0]),
            within: None,
        },
        splits: Splits {
            train: train.iter().map(w).collect(),
            val: val.iter().map(w).collect(),
            test: Vec::new(),
        },
        sessions: Vec::new(),
        streams: Vec::new(),
        pipelines: Vec::new(),
        synthetic: BTreeMap::new(),
    }
}

#[test]
fn epochs_shuffle_within_sessions_into_full_batches() {
    // Session 0 has 10 windows, session 1 has 7.
    let sessions: Vec<usize> = [vec![0; 10], vec![1; 7]].concat();
    let ds = fake(&sessions, &[0, 0, 0, 1, 1]);
    let e0 = ds.epoch_batches(Split::Train, 3, 5, 0);
    assert_eq!(e0.len(), 3 + 2);
    for b in &e0 {
        assert_eq!(b.len(), 3);
        let s = sessions[b[0]];
        assert!(b.iter().all(|&i| sessions[i] == s));
    }
    let mut seen: Vec<usize> = e0.concat();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 15);
    assert_eq!(e0, ds.epoch_batches(Split::Train, 3, 5, 0));
    assert_ne!(e0, ds.epoch_batches(Split::Train, 3, 5, 1));
    assert_ne!(e0, ds.epoch_batches(Split::Train, 3, 6, 0));
    // Evaluation: in order, per session, short batches kept.
    assert_eq!(
        ds.epoch_batches(Split::Val, 2, 5, 9),
        vec![vec![0, 1], vec![2], vec![3, 4]]
    );
}

#[test]
fn the_loader_resumes_exactly_and_rolls_over_epochs() {
    let d = dir("loader");
    let v: Vec<f64> = (0..3 * 400).map(f64::from).collect();
    npy(&d.join("f.npy"), "<f4", &[3, 400], &v);
    let s = spec(
        &d,
        "dim T = 1s\ndim N per session\n\
         data f = npy(\"f.npy\", axes: [N, T], rate: 10Hz) {\n  window: T\n  stride: 500ms\n  split: by_time(train: 0.8, val: 0.2)\n}\n\
         modality x: series<f32>[T @ 10Hz, N] from f\n",
    );
    let ds = Arc::new(Dataset::open(&s).unwrap());
    // 32 s of training: 63 windows, so 7 batches of 9 per epoch.
    assert_eq!(ds.len(Split::Train), 63);
    let mut all = Loader::start(ds.clone(), 9, 42, Position::default(), 2);
    let stream: Vec<(Position, Batch)> = (0..17).map(|_| all.next().unwrap()).collect();
    assert_eq!(stream[6].0, Position { epoch: 1, index: 0 });
    assert_eq!(stream[16].0, Position { epoch: 2, index: 3 });
    let plan = ds.epoch_batches(Split::Train, 9, 42, 1);
    assert_eq!(stream[7].1.windows, plan[0]);
    // Resuming from a stored position gives the same batches.
    for cut in [0, 3, 6, 12] {
        let mut again = Loader::start(ds.clone(), 9, 42, stream[cut].0, 1);
        for want in &stream[cut + 1..] {
            assert_eq!(&again.next().unwrap(), want);
        }
    }
    // A position past the epoch (another batch size) is an error.
    let mut bad = Loader::start(ds.clone(), 9, 42, Position { epoch: 0, index: 8 }, 1);
    assert!(bad
        .next()
        .unwrap_err()
        .to_string()
        .contains("past the 7 batches"));
    assert_eq!(bad.next().unwrap_err().kind, ErrorKind::LoaderStopped);
    // No full batch at all: an error, not an endless loop.
    let mut none = Loader::start(ds.clone(), 64, 42, Position::default(), 1);
    assert_eq!(none.next().unwrap_err().kind, ErrorKind::Window);
    // Dropping a loader whose channel is full returns promptly.
    let full = Loader::start(ds, 9, 42, Position::default(), 1);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let t = std::time::Instant::now();
    drop(full);
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    drop(all);
}
