//! The data loader end to end: the example experiments over the synthetic
//! source and the real recordings shipped in `examples/data/`, and the
//! errors a user meets when a file is missing, damaged, laid out other than
//! declared, or holds NaN.
//!
//! Expected values are computed here from the files or the simulation
//! directly (a minimal `.npy` reader, libhdf5 for NWB), not through the
//! loader.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use enigma::dataset::loader::{Dataset, Loader, Position};
use enigma::diagnostics::{Error, ErrorKind};
use enigma::ir::data::DataSpec;
use enigma::ir::data::Split;

#[path = "common/real.rs"]
mod real_data;

#[path = "common/npy.rs"]
mod npy;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[path = "common/checked.rs"]
mod checked;

/// Checks `path` and takes its data spec.
fn spec_of(path: &Path) -> DataSpec {
    checked::experiment(path)
        .data
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn open_example(name: &str) -> Result<Dataset, Error> {
    Dataset::open(&spec_of(
        &root().join("examples").join(format!("{name}.enigma")),
    ))
}

/// The quick start's dataset, built once for all the tests that read it
/// (simulating two sessions takes seconds in a debug build).
fn quickstart() -> Arc<Dataset> {
    static DS: OnceLock<Arc<Dataset>> = OnceLock::new();
    DS.get_or_init(|| Arc::new(open_example("quickstart").unwrap_or_else(|e| panic!("{e}"))))
        .clone()
}

/// The noise-free truth of the simulated response, through the same
/// `log1p(max(x, 0))`, in the batch's layout; inputs without a truth have
/// none.
#[test]
fn the_clean_response_is_the_truth_through_the_modality_transforms() {
    let ds = quickstart();
    let ids: Vec<usize> = (0..3).collect();
    let b = ds.batch(Split::Val, &ids).unwrap();
    let clean = ds
        .clean_batch(2, Split::Val, &ids)
        .unwrap()
        .expect("a truth");
    assert_eq!(clean.shape, b.inputs[2].shape);
    let truth = &ds
        .simulation(0)
        .unwrap()
        .session(b.session)
        .unwrap()
        .truth()
        .calcium;
    for (k, &id) in ids.iter().enumerate() {
        let w = ds.window(Split::Val, id).unwrap();
        let r0 = (w.start * 8.0).round() as usize;
        let got = &clean.data[k * 512..(k + 1) * 512];
        let want = &truth[r0 * 32..(r0 + 16) * 32];
        assert!(got
            .iter()
            .zip(want)
            .all(|(&g, &x)| (g - x.max(0.0).ln_1p()).abs() < 1e-6));
    }
    // The recorded response is the truth plus noise: close, not equal.
    assert_ne!(clean.data, b.inputs[2].data);
    // The running speed on the response's grid: sample j of a window is the
    // mean of the frames that start inside it; the gains are the truth's.
    let run = ds.running(2, Split::Val, &ids).expect("a simulated speed");
    assert_eq!(run.speed.len(), 3 * 16);
    let session = ds.simulation(0).unwrap().session(b.session).unwrap();
    let w = ds.window(Split::Val, ids[1]).unwrap();
    let (a, z) = (
        ((w.start + 5.0 / 8.0) * 30.0).ceil() as usize,
        ((w.start + 6.0 / 8.0) * 30.0).ceil() as usize,
    );
    let want = (a..z)
        .map(|f| f64::from(session.behavior()[f * 4]))
        .sum::<f64>()
        / (z - a) as f64;
    assert!((run.speed[16 + 5] - want).abs() < 1e-9);
    let gains: Vec<f64> = session.truth().neurons.iter().map(|n| n.run_gain).collect();
    assert_eq!(run.gains, gains);
    assert!(ds.running(0, Split::Val, &ids).is_none());
    assert!(ds.clean_batch(0, Split::Val, &ids).unwrap().is_none());
    assert!(ds.clean_batch(1, Split::Val, &ids).unwrap().is_none());
}

#[test]
fn quickstart_loads_two_sessions_with_the_declared_shapes_and_values() {
    let ds = quickstart();
    assert_eq!(ds.sessions().len(), 2);
    for s in ds.sessions() {
        assert_eq!(s.duration, 600.0);
        assert_eq!(s.dims.get("N"), Some(&32));
    }
    let plan = ds.epoch_batches(Split::Train, 16, 7, 0);
    let t = std::time::Instant::now();
    let b = ds.batch(Split::Train, &plan[0]).unwrap();
    eprintln!("a batch of 16 quick-start windows took {:?}", t.elapsed());
    let shapes: Vec<&[usize]> = b.inputs.iter().map(|x| x.shape.as_slice()).collect();
    assert_eq!(
        shapes,
        [&[16, 60, 1, 36, 64][..], &[16, 60, 4], &[16, 16, 32]]
    );
    // Every value is the simulation's, transformed as declared.
    let sim = ds.simulation(0).expect("the synthetic source");
    let session = sim.session(b.session).unwrap();
    let mut frames = vec![0.0f32; 60 * 36 * 64];
    for (k, &id) in b.windows.iter().enumerate() {
        let w = ds.window(Split::Train, id).unwrap();
        assert_eq!(w.session, b.session);
        let f0 = (w.start * 30.0).round() as usize;
        session.video(f0, 60, &mut frames).unwrap();
        let video = &b.inputs[0].data[k * frames.len()..(k + 1) * frames.len()];
        assert!(video
            .iter()
            .zip(&frames)
            .all(|(&got, &x)| got == (x - 0.5) / 0.25));
        let behavior = &b.inputs[1].data[k * 240..(k + 1) * 240];
        assert_eq!(behavior, &session.behavior()[f0 * 4..(f0 + 60) * 4]);
        let r0 = (w.start * 8.0).round() as usize;
        let response = &b.inputs[2].data[k * 512..(k + 1) * 512];
        let want = &session.response()[r0 * 32..(r0 + 16) * 32];
        assert!(response
            .iter()
            .zip(want)
            .all(|(&got, &x)| (got - x.max(0.0).ln_1p()).abs() < 1e-6));
    }
    // A batch never mixes sessions.
    let other = (0..ds.len(Split::Train))
        .find(|&i| ds.window(Split::Train, i).unwrap().session != b.session)
        .unwrap();
    let e = ds.batch(Split::Train, &[plan[0][0], other]).unwrap_err();
    assert!(e.to_string().contains("windows of one session"), "{e}");
}

#[test]
fn quickstart_splits_are_disjoint_in_time() {
    let ds = quickstart();
    // 600 s by time 0.8 / 0.1 / 0.1, 2 s windows every second.
    assert_eq!(ds.len(Split::Train), 2 * 479);
    assert_eq!(ds.len(Split::Val), 2 * 59);
    assert_eq!(ds.len(Split::Test), 2 * 59);
    for s in 0..2 {
        let spans = |split| {
            ds.windows(split)
                .iter()
                .filter(|w| w.session == s)
                .map(|w| (w.start, w.start + 2.0))
                .collect::<Vec<_>>()
        };
        let (train, val, test) = (spans(Split::Train), spans(Split::Val), spans(Split::Test));
        let overlap = |a: &[(f64, f64)], b: &[(f64, f64)]| {
            a.iter().any(|x| b.iter().any(|y| x.0 < y.1 && y.0 < x.1))
        };
        assert!(!overlap(&train, &val) && !overlap(&train, &test) && !overlap(&val, &test));
        assert!([&train, &val, &test].iter().all(|v| v
            .iter()
            .all(|&(a, b)| a >= 0.0 && b <= 600.0 && (a * 2.0).fract() == 0.0)));
    }
}

#[test]
fn quickstart_stream_resumes_exactly_from_a_position() {
    let ds = quickstart();
    let per_epoch = ds.epoch_batches(Split::Train, 16, 7, 0).len();
    // 479 windows per session make 29 batches of 16 each.
    assert_eq!(per_epoch, 58);
    let from = Position {
        epoch: 0,
        index: 55,
    };
    let mut loader = Loader::start(ds.clone(), 16, 7, from, 2);
    let run: Vec<_> = (0..5).map(|_| loader.next().unwrap()).collect();
    drop(loader);
    assert_eq!(run[2].0, Position { epoch: 1, index: 0 });
    assert_eq!(
        run[3].1.windows,
        ds.epoch_batches(Split::Train, 16, 7, 1)[0]
    );
    // Restarting from the position stored after batch 0 (or 2) gives the
    // batches the uninterrupted stream gave next.
    for cut in [0, 2] {
        let mut again = Loader::start(ds.clone(), 16, 7, run[cut].0, 1);
        for want in &run[cut + 1..] {
            assert_eq!(&again.next().unwrap(), want);
        }
    }
}

/// A `.npy` file's shape and values, read here without the loader.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'fortran_order': False"));
    let inner = &header[header.find("'shape': (").unwrap() + 10..];
    let shape: Vec<usize> = inner[..inner.find(')').unwrap()]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data = &bytes[10 + len..];
    let values = if header.contains("'<f4'") {
        data.chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect()
    } else {
        assert!(header.contains("'<f8'"));
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    (shape, values)
}

#[test]
fn suite2p_calcium_loads_the_real_recording_with_its_cells_selected() {
    let (path, real) = real_data::real_example("suite2p_calcium", "loader-suite2p");
    let ds = Dataset::open(&spec_of(&path)).unwrap_or_else(|e| panic!("{e}"));
    // The dataset holds the data in memory; the copied example can go.
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    let (ishape, iscell) = read_npy(&real.join("iscell.npy"));
    let cells: Vec<usize> = (0..ishape[0])
        .filter(|&r| iscell[r * ishape[1]] > 0.5)
        .collect();
    assert_eq!(ds.sessions().len(), 1);
    assert_eq!(ds.sessions()[0].dims.get("N"), Some(&cells.len()));
    let b = ds.batch(Split::Val, &[0, 3]).unwrap();
    assert_eq!(b.inputs[0].shape, [2, 20, cells.len()]);
    assert_eq!(b.inputs[1].shape, [2, 20, cells.len()]);
    // `activity` is each cell's deconvolved trace averaged to 10 Hz (three
    // 30 Hz frames per step); `fluor` the same of F, z-scored with the
    // statistics of the training stretch only.
    let (shape, spks) = read_npy(&real.join("spks.npy"));
    let (_, f) = read_npy(&real.join("F.npy"));
    let frames = shape[1];
    let at10 = |v: &[f64], row: usize, k: usize| {
        (0..3).map(|j| v[row * frames + 3 * k + j]).sum::<f64>() / 3.0
    };
    let train_end = ds
        .windows(Split::Train)
        .iter()
        .map(|w| w.start + 2.0)
        .fold(0.0, f64::max);
    let steps = (train_end * 10.0).round() as usize;
    let n = cells.len();
    for (c, &row) in cells.iter().enumerate() {
        let xs: Vec<f64> = (0..steps).map(|k| at10(&f, row, k)).collect();
        let mean = xs.iter().sum::<f64>() / steps as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (steps - 1) as f64).sqrt();
        for (k, &id) in b.windows.iter().enumerate() {
            let s0 = (ds.window(Split::Val, id).unwrap().start * 10.0).round() as usize;
            for t in 0..20 {
                let at = (k * 20 + t) * n + c;
                let act = f64::from(b.inputs[1].data[at]);
                assert!((act - at10(&spks, row, s0 + t)).abs() < 1e-3 * act.abs().max(1.0));
                let z = (at10(&f, row, s0 + t) - mean) / sd;
                assert!((f64::from(b.inputs[0].data[at]) - z).abs() < 1e-3, "{z}");
            }
        }
    }
}

#[cfg(feature = "nwb")]
#[test]
fn nwb_spikes_counts_match_the_spikes_inside_each_window() {
    let (path, real) = real_data::real_example("nwb_spikes", "loader-nwb");
    let ds = Dataset::open(&spec_of(&path)).unwrap_or_else(|e| panic!("{e}"));
    // The dataset holds the data in memory; the copied example can go.
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    let file = hdf5_metno::File::open(real.join("A8604-211122.nwb")).unwrap();
    let times: Vec<f64> = file
        .dataset("units/spike_times")
        .unwrap()
        .read_raw()
        .unwrap();
    let ends: Vec<u64> = file
        .dataset("units/spike_times_index")
        .unwrap()
        .read_raw()
        .unwrap();
    let stop: Vec<f64> = file
        .dataset("intervals/epochs/stop_time")
        .unwrap()
        .read_raw()
        .unwrap();
    assert_eq!(ds.sessions()[0].dims.get("N"), Some(&ends.len()));
    let unit_of = |i: usize| ends.iter().position(|&e| i < e as usize).unwrap();
    let plan = ds.epoch_batches(Split::Train, 32, 1, 0);
    let mut total = 0;
    for ids in plan.iter().take(3) {
        let b = ds.batch(Split::Train, ids).unwrap();
        let (spikes, counts, epochs) = (&b.inputs[0], &b.inputs[1], &b.inputs[2]);
        assert_eq!(counts.shape, [32, 100, 3]);
        for (k, &id) in ids.iter().enumerate() {
            let start = ds.window(Split::Train, id).unwrap().start;
            assert!(start >= 0.0 && start + 2.0 <= stop[0]);
            let mut want = [0usize; 3];
            for (i, &t) in times.iter().enumerate() {
                if t >= start && t < start + 2.0 {
                    want[unit_of(i)] += 1;
                }
            }
            for (u, &w) in want.iter().enumerate() {
                let got: f32 = (0..100).map(|t| counts.data[(k * 100 + t) * 3 + u]).sum();
                assert_eq!(got as usize, w, "window at {start} s, unit {u}");
            }
            let e = spikes.shape[1];
            let real = (0..e)
                .filter(|&j| spikes.data[(k * e + j) * 2] >= 0.0)
                .count();
            assert_eq!(real, want.iter().sum::<usize>());
            total += real;
            assert_eq!(epochs.shape, [32, 1, 2]);
            assert!((f64::from(epochs.data[k * 2]) + start).abs() < 1e-3);
            assert!((f64::from(epochs.data[k * 2 + 1]) - (stop[0] - start)).abs() < 1e-3);
        }
    }
    // About 6.5 spikes per second per unit: thousands in 96 windows.
    assert!(total > 1000, "{total}");
}

#[cfg(not(feature = "nwb"))]
#[test]
fn nwb_sources_need_the_nwb_feature() {
    let spec = spec_of(&root().join("examples/nwb_spikes.enigma"));
    let e = Dataset::open(&spec).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.to_string().contains("A8604-211122.nwb") && e.to_string().contains("`nwb` feature"));
}

/// A fresh directory holding `main.enigma` with `text`.
fn experiment(name: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-it-loader-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("main.enigma"), text).unwrap();
    d
}

const TRACES: &str = "dim T = 1s\ndim N per session\n\
    data traces = npy(\"traces.npy\", axes: [N, T], rate: 10Hz) {\n  window: T\n  split: by_time(train: 0.5, val: 0.5)\n}\n\
    modality x: series<f32>[T @ 10Hz, N] from traces\n";

/// Checks the experiment against a good `[3, 40]` file, then puts `bytes`
/// in its place (the data changed, or was checked elsewhere) and opens it.
fn open_after_replacing(name: &str, replace: impl FnOnce(&Path)) -> Error {
    let d = experiment(name, TRACES);
    let file = d.join("traces.npy");
    npy::write_f32(&file, &[3, 40], &vec![1.0; 120]);
    let spec = spec_of(&d.join("main.enigma"));
    replace(&file);
    Dataset::open(&spec).unwrap_err()
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let e = open_after_replacing("missing", |f| std::fs::remove_file(f).unwrap());
    assert_eq!(e.kind, ErrorKind::DataIo);
    let text = e.to_string();
    assert!(
        text.contains("traces.npy") && text.contains("cannot read the file"),
        "{text}"
    );
}

#[test]
fn a_corrupt_npy_is_an_error_naming_the_file_and_the_damage() {
    let e = open_after_replacing("corrupt", |f| {
        let mut bytes = std::fs::read(f).unwrap();
        bytes.truncate(bytes.len() - 100);
        std::fs::write(f, bytes).unwrap();
    });
    assert_eq!(e.kind, ErrorKind::DataFormat);
    let text = e.to_string();
    assert!(
        text.contains("traces.npy") && text.contains("holds only 380 bytes"),
        "{text}"
    );
    let e = open_after_replacing("garbage", |f| {
        std::fs::write(f, b"PK\x03\x04 a zip").unwrap()
    });
    let text = e.to_string();
    assert!(
        text.contains("traces.npy") && text.contains("not an npy file"),
        "{text}"
    );
}

#[test]
fn a_file_laid_out_other_than_declared_is_an_error_naming_axis_and_sizes() {
    // Frames by ROIs where `axes: [N, T]` promises ROIs by frames.
    let e = open_after_replacing("swapped", |f| npy::write_f32(f, &[40, 3], &vec![1.0; 120]));
    assert_eq!(e.kind, ErrorKind::DataShape);
    let text = e.to_string();
    assert!(
        text.contains("traces.npy") && text.contains("modality `x`"),
        "{text}"
    );
    assert!(
        text.contains("axis 0 of the file (shape [40, 3]) has 40 positions, but the modality declares `N` as 3"),
        "{text}"
    );
    assert!(text.contains("another order"), "{text}");
}

#[test]
fn nan_in_a_data_file_is_an_error_naming_file_modality_and_position() {
    let e = open_after_replacing("nan", |f| {
        let mut v = vec![1.0f32; 120];
        v[2 * 40 + 5] = f32::NAN;
        npy::write_f32(f, &[3, 40], &v);
    });
    assert_eq!(e.kind, ErrorKind::DataNonFinite);
    let text = e.to_string();
    assert!(
        text.contains("traces.npy: modality `x`: the value at row 2, column 5 is NaN"),
        "{text}"
    );
}
