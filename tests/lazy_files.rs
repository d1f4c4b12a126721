//! Series left in their `.npy` files and read a window at a time: the
//! values are the ones a whole read gives, a bad value deep in a big file
//! is named at its place, and peak memory does not grow with the number
//! of sessions.

use std::path::{Path, PathBuf};
use std::process::Command;

use enigma::dataset::loader::Dataset;
use enigma::diagnostics::ErrorKind;
use enigma::ir::data::{DataSpec, Split};

#[path = "common/npy.rs"]
mod npy;

#[path = "common/checked.rs"]
mod checked;

/// A fresh folder for one test.
fn folder(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enigma-it-lazy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn spec(path: &Path) -> DataSpec {
    checked::experiment(path)
        .data
        .unwrap_or_else(|e| panic!("{e:?}"))
}

/// A cell's trace: a slow wave of its own phase and offset, with a
/// deterministic jitter, so every statistic differs between cells.
fn value(session: usize, cell: usize, sample: usize) -> f32 {
    let t = sample as f32;
    let jitter = ((sample * 7919 + cell * 104_729 + session * 13) % 1000) as f32 / 1000.0;
    10.0 * session as f32 + cell as f32 + (t / 9.0 + cell as f32).sin() + jitter
}

/// `[n, t]` ROI-major values of `session`, row-major.
fn traces(session: usize, n: usize, t: usize) -> Vec<f32> {
    (0..n * t).map(|i| value(session, i / t, i % t)).collect()
}

/// Every training, validation and test batch of `ds`, flattened.
fn all_values(ds: &Dataset) -> Vec<(Split, usize, Vec<f32>)> {
    let mut out = Vec::new();
    for split in [Split::Train, Split::Val, Split::Test] {
        for ids in ds.epoch_batches(split, 4, 7, 0) {
            let b = ds.batch(split, &ids).unwrap();
            out.push((split, b.session, b.inputs[0].data.clone()));
        }
    }
    out
}

const BLOCK: &str =
    "{\n  window: T\n  stride: 1s\n  split: by_time(train: 0.6, val: 0.2, test: 0.2)\n}\n";

#[test]
fn a_file_read_a_window_at_a_time_gives_what_a_whole_read_gives() {
    // A Fortran-order file is read whole; the same matrix in C order is
    // read lazily. Through `select`, `zscore` (fitted per session, in
    // chunks on the lazy side) and an elementwise stage, every batch of
    // every split must agree.
    let d = folder("agree");
    let (n, t) = (5, 1200);
    std::fs::create_dir_all(d.join("c")).unwrap();
    std::fs::create_dir_all(d.join("f")).unwrap();
    for s in 0..2 {
        let v = traces(s, n, t);
        npy::write_f32(&d.join(format!("c/s{s}.npy")), &[n, t], &v);
        npy::write_f32_fortran(&d.join(format!("f/s{s}.npy")), [n, t], &v);
    }
    npy::write_f32(&d.join("keep.npy"), &[n], &[1.0, 0.0, 1.0, 1.0, 0.0]);
    let text = |dir: &str| {
        format!(
            "dim T = 2s\ndim N per session\n\
             data k = npy(\"keep.npy\", axes: [N])\n\
             data f = npy(\"{dir}/*.npy\", axes: [N, T], rate: 20Hz) {BLOCK}\
             modality x: series<f32>[T @ 20Hz, N] from f | select(N, where: k > 0.5) | zscore() | 0.5 * x + 1\n"
        )
    };
    std::fs::write(d.join("c.enigma"), text("c")).unwrap();
    std::fs::write(d.join("f.enigma"), text("f")).unwrap();
    let lazy = Dataset::open(&spec(&d.join("c.enigma"))).unwrap();
    let whole = Dataset::open(&spec(&d.join("f.enigma"))).unwrap();
    assert_eq!(lazy.sessions(), whole.sessions());
    assert_eq!(lazy.sessions()[0].dims.get("N"), Some(&3));
    let (a, b) = (all_values(&lazy), all_values(&whole));
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 10, "{} batches", a.len());
    for ((split, session, x), (_, _, y)) in a.iter().zip(&b) {
        assert_eq!(x.len(), y.len());
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            assert!(
                (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                "{split:?} session {session} value {i}: lazy {p}, whole {q}"
            );
        }
    }
    // The statistics really were fitted: a zscored training window has
    // values on both sides of 1 (= 0.5 * 0 + 1).
    let (_, _, first) = &a[0];
    assert!(first.iter().any(|v| *v < 1.0) && first.iter().any(|v| *v > 1.0));
}

#[test]
fn a_bad_value_past_the_first_chunk_is_named_at_its_place_in_the_file() {
    // 100 cells of 4 bytes are 400 bytes a sample, so a 4 MiB chunk holds
    // 10,485 samples and sample 11,000 lies in the second.
    let d = folder("nan");
    let (n, t) = (100, 12_000);
    let mut v = traces(0, n, t);
    v[37 * t + 11_000] = f32::NAN;
    npy::write_f32(&d.join("big.npy"), &[n, t], &v);
    std::fs::write(
        d.join("main.enigma"),
        format!(
            "dim T = 1s\ndim N = {n}\n\
             data f = npy(\"big.npy\", axes: [N, T], rate: 20Hz) {BLOCK}\
             modality x: series<f32>[T @ 20Hz, N] from f | zscore()\n"
        ),
    )
    .unwrap();
    let e = Dataset::open(&spec(&d.join("main.enigma"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DataNonFinite, "{e}");
    let text = e.to_string();
    assert!(text.contains("row 37, column 11000"), "{text}");
    assert!(text.contains("big.npy"), "{text}");
}

/// Sessions of 64 cells, 15 minutes each at 20 Hz: 4.6 MB a session.
const CELLS: usize = 64;
const SAMPLES: usize = 20 * 900;

/// Writes `sessions` sessions into a fresh folder with an experiment that
/// reads them all.
fn study(sessions: usize) -> PathBuf {
    let d = folder(&format!("rss-{sessions}"));
    let row: Vec<f32> = (0..SAMPLES).map(|i| (i as f32 / 7.0).sin()).collect();
    for s in 0..sessions {
        let v: Vec<f32> = (0..CELLS)
            .flat_map(|c| row.iter().map(move |x| x + (c + s) as f32))
            .collect();
        npy::write_f32(&d.join(format!("ses-{s:02}.npy")), &[CELLS, SAMPLES], &v);
    }
    std::fs::write(
        d.join("main.enigma"),
        format!(
            "dim T = 2s\ndim N = {CELLS}\n\
             data f = npy(\"ses-*.npy\", axes: [N, T], rate: 20Hz) {BLOCK}\
             modality x: series<f32>[T @ 20Hz, N] from f | zscore() | clip(low: -5, high: 5)\n"
        ),
    )
    .unwrap();
    d
}

/// Runs the child below on `dir` in a process of its own and returns its
/// peak resident set, in KiB.
fn peak_rss(dir: &Path) -> u64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "open_and_read_a_study_then_report_peak_memory",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ENIGMA_LAZY_STUDY", dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split("VmHWM_KIB ").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {stdout}"))
}

#[test]
fn peak_memory_does_not_grow_with_the_number_of_sessions() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc/self/status on this system to read peak memory from");
        return;
    }
    let (few, many) = (2, 16);
    let session_bytes = (CELLS * SAMPLES * 4) as u64;
    let small = peak_rss(&study(few));
    let large = peak_rss(&study(many));
    let grew = large.saturating_sub(small) * 1024;
    let data_grew = (many - few) as u64 * session_bytes;
    eprintln!("peak RSS: {small} KiB for {few} sessions, {large} KiB for {many}");
    // Read whole, the 14 extra sessions would cost their 64 MB at least
    // (and twice that while transformed); lazily, only their windows'
    // bookkeeping.
    assert!(
        grew * 8 < data_grew,
        "peak RSS grew by {} KiB from {few} to {many} sessions ({small} to {large} KiB), against {} KiB more data",
        grew / 1024,
        data_grew / 1024
    );
}

/// Not a test of its own: `peak_rss` runs it in a child process, where it
/// opens the study named by `ENIGMA_LAZY_STUDY`, reads every training
/// batch of an epoch and a validation pass, and prints its peak memory.
#[test]
#[ignore = "a child process of peak_memory_does_not_grow_with_the_number_of_sessions"]
fn open_and_read_a_study_then_report_peak_memory() {
    let dir = PathBuf::from(std::env::var_os("ENIGMA_LAZY_STUDY").expect("ENIGMA_LAZY_STUDY"));
    let ds = Dataset::open(&spec(&dir.join("main.enigma"))).unwrap();
    let mut sum = 0.0f64;
    for split in [Split::Train, Split::Val] {
        for ids in ds.epoch_batches(split, 16, 3, 0) {
            let b = ds.batch(split, &ids).unwrap();
            sum += b.inputs[0].data.iter().map(|v| f64::from(*v)).sum::<f64>();
        }
    }
    assert!(sum.is_finite());
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    println!("VmHWM_KIB {hwm}");
}

/// An NWB series read a window at a time: the values are the file's, and a
/// NaN deep in it is named at its sample.
#[cfg(feature = "nwb")]
#[test]
fn an_nwb_series_is_read_a_window_at_a_time() {
    let d = folder("nwb");
    let (t, c) = (600usize, 4usize);
    let mut values: Vec<f64> = (0..t * c)
        .map(|i| f64::from(value(0, i % c, i / c)))
        .collect();
    let write = |path: &Path, values: &[f64]| {
        let f = hdf5_metno::File::create(path).unwrap();
        let g = f
            .create_group("acquisition")
            .unwrap()
            .create_group("lfp")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&ndarray_like(values, t, c))
            .create("data")
            .unwrap();
        let s = g
            .new_dataset_builder()
            .with_data(&[0.0f64])
            .create("starting_time")
            .unwrap();
        s.new_attr::<f64>()
            .shape(())
            .create("rate")
            .unwrap()
            .write_scalar(&20.0f64)
            .unwrap();
    };
    write(&d.join("a.nwb"), &values);
    let text = "dim T = 1s\ndim C = 4\n\
        data f = nwb(\"a.nwb\") {\n  window: T\n  stride: 1s\n  split: by_time(train: 0.6, val: 0.2, test: 0.2)\n}\n\
        modality x: series<f32>[T @ 20Hz, C] from f.acquisition.lfp | 2 * x + 1\n";
    std::fs::write(d.join("main.enigma"), text).unwrap();
    let ds = Dataset::open(&spec(&d.join("main.enigma"))).unwrap();
    let w = ds.windows(Split::Val)[0];
    let b = ds.batch(Split::Val, &[0]).unwrap();
    assert_eq!(b.inputs[0].shape, [1, 20, 4]);
    let first = (w.start * 20.0).round() as usize;
    for (k, got) in b.inputs[0].data.iter().enumerate() {
        let want = 2.0 * values[(first + k / c) * c + k % c] as f32 + 1.0;
        assert!((got - want).abs() < 1e-5, "value {k}: {got} against {want}");
    }
    // The dataset keeps the file open; close it before writing it again.
    drop(ds);
    values[523 * c + 2] = f64::NAN;
    write(&d.join("a.nwb"), &values);
    let e = Dataset::open(&spec(&d.join("main.enigma"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DataNonFinite, "{e}");
    assert!(e.to_string().contains("sample 523, channel 2"), "{e}");
}

/// `values` as the `[t, c]` array hdf5 writes.
#[cfg(feature = "nwb")]
fn ndarray_like(values: &[f64], t: usize, c: usize) -> ndarray::Array2<f64> {
    ndarray::Array2::from_shape_vec((t, c), values.to_vec()).unwrap()
}
