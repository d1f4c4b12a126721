//! Transforms compiled from real modality declarations (through the
//! checker, by the test fixtures) and applied to small signals with known
//! answers.

use super::stages::{Events, Series};
use super::*;
use crate::diagnostics::Diagnostic;
use crate::ir::data::DataSpec;

/// The data specification of `body` (with dims and a source in front), or
/// every problem with it.
fn spec_of(body: &str) -> Result<DataSpec, Vec<Diagnostic>> {
    crate::testing::data_spec_of(&format!(
        "dim T = 2s\ndim N per session\ndim span = 100\ndim scale = 4\n\
         data v1 = synthetic.mouse_v1(sessions: 1, neurons: 4, seed: 1) {{ window: T }}\n{body}"
    ))
}

/// The pipeline of the one modality of `body`.
fn one(body: &str) -> Pipeline {
    let spec = spec_of(body).unwrap_or_else(|e| panic!("{e:?}"));
    Pipeline::new(&spec.modalities[0].transforms)
}

fn series(rate: f64, channels: usize, data: Vec<f32>) -> Signal {
    Signal::Series(Series {
        rate,
        channels,
        data,
    })
}

fn data(s: Signal) -> Vec<f32> {
    match s {
        Signal::Series(s) => s.data,
        Signal::Events(_) => panic!("a series"),
    }
}

#[test]
fn elementwise_stages_compute_what_they_say() {
    let p = one("modality video: video<f32>[T @ 30Hz, 1, 36, 64] from v1.video | (x - 0.5) / 0.25");
    let out = data(p.apply(series(30.0, 1, vec![0.5, 0.75, 0.0, 1.0])).unwrap());
    assert_eq!(out, [0.0, 1.0, -2.0, 2.0]);
    let p = one("modality r: series<f32>[T @ 8Hz, N] from v1.response | log1p(max(x, 0))");
    let out = data(p.apply(series(8.0, 2, vec![-1.0, 0.0, 1.0, 3.0])).unwrap());
    assert_eq!(out, [0.0, 0.0, 2f32.ln(), 4f32.ln()]);
    // Named constants fold; `if`, comparisons and clamp work per element.
    let p = one(
        "modality r: series<f32>[T @ 8Hz, N] from v1.response | x * scale | clamp(x, min: 0, max: 10) | if x > 5 { x - 5 } else { -x }",
    );
    let out = data(p.apply(series(8.0, 1, vec![-1.0, 1.0, 2.0, 4.0])).unwrap());
    assert_eq!(out, [0.0, -4.0, 3.0, 5.0]);
}

#[test]
fn what_is_not_elementwise_is_refused_at_compile_time() {
    for bad in [
        "modality a: series<f32>[T @ 8Hz, N] from v1.response | softmax(x)",
        "modality b: series<f32>[T @ 8Hz, N] from v1.response | resample(0Hz)",
        "modality c: series<f32>[T @ 8Hz, N] from v1.response | x[0]",
    ] {
        assert!(spec_of(bad).is_err(), "{bad} compiles");
    }
}

#[test]
fn zscore_uses_training_statistics() {
    let mut p = one("modality r: series<f32>[T @ 8Hz, N] from v1.response | zscore()");
    // Not fitted: a clear error, not a silent identity.
    let err = p.apply(series(8.0, 1, vec![1.0, 2.0])).unwrap_err();
    assert_eq!(err.stage, "zscore");
    // Channel 0 has mean 2 and std 1; channel 1 is constant (centred only).
    p.fit(&series(8.0, 2, vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0]))
        .unwrap();
    let out = data(p.apply(series(8.0, 2, vec![4.0, 6.0])).unwrap());
    assert_eq!(out, [2.0, 1.0]);
    let err = p.apply(series(8.0, 3, vec![1.0, 2.0, 3.0])).unwrap_err();
    assert!(err.message.contains("2 channels"), "{err}");
}

#[test]
fn bin_counts_events_per_unit_and_resample_keeps_the_mean() {
    let p = one("modality s: series<f32>[T @ 40Hz, N] from v1.spikes | bin(25ms)");
    let events = Signal::Events(Events {
        start: 10.0,
        duration: 0.1,
        units: vec![vec![10.0, 10.01, 10.06], vec![10.099, 10.2]],
    });
    let out = match p.apply(events).unwrap() {
        Signal::Series(s) => s,
        _ => panic!("a series"),
    };
    assert_eq!(out.rate, 40.0);
    // 4 bins x 2 units; the event at 10.2 s is outside the window.
    assert_eq!(out.data, [2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    // 30 Hz to 8 Hz and back up: lengths follow the duration, and a
    // constant stays constant.
    let down = one("modality r: series<f32>[T @ 8Hz, N] from v1.response | resample(8Hz)");
    let out = data(down.apply(series(30.0, 1, vec![2.0; 60])).unwrap());
    assert_eq!(out, vec![2.0; 16]);
    let ramp: Vec<f32> = (0..60).map(|i| i as f32).collect();
    let out = data(down.apply(series(30.0, 1, ramp)).unwrap());
    assert!(out.windows(2).all(|w| w[1] > w[0]), "{out:?}");
    let up = one("modality r: series<f32>[T @ 30Hz, N] from v1.response | resample(30Hz)");
    let out = data(up.apply(series(8.0, 1, vec![1.0; 16])).unwrap());
    assert_eq!(out.len(), 60);
    assert!(out.iter().all(|v| (v - 1.0).abs() < 1e-6));
}

#[test]
fn dff_divides_by_a_running_low_baseline() {
    let p = one("modality r: series<f32>[T @ 8Hz, N] from v1.response | dff(baseline: 10s)");
    // F = 100 everywhere with one transient of 150: dF/F is 0 outside and
    // 0.5 at the transient (the baseline ignores it).
    let mut f = vec![100.0f32; 160];
    f[80] = 150.0;
    let out = data(p.apply(series(8.0, 1, f)).unwrap());
    assert!((out[80] - 0.5).abs() < 1e-6, "{}", out[80]);
    assert!(out
        .iter()
        .enumerate()
        .all(|(i, v)| i == 80 || v.abs() < 1e-6));
    // A slow drift is removed: F rising linearly gives small dF/F.
    let drift: Vec<f32> = (0..400).map(|i| 100.0 + i as f32 * 0.1).collect();
    let out = data(p.apply(series(8.0, 1, drift)).unwrap());
    assert!(out.iter().all(|v| v.abs() < 0.05), "{out:?}");
}

#[test]
fn smooth_standardize_and_clip() {
    let p = one(
        "modality r: series<f32>[T @ 8Hz, N] from v1.response | smooth(375ms) | standardize(mean: 1, std: 2) | clip(low: -1, high: 1)",
    );
    // 375 ms at 8 Hz is 3 samples: [0, 3, 0, 0] averages to [1.5, 1, 1, 0].
    let out = data(p.apply(series(8.0, 1, vec![0.0, 3.0, 0.0, 0.0])).unwrap());
    assert_eq!(out, [0.25, 0.0, 0.0, -0.5]);
    let out = data(
        p.apply(series(8.0, 1, vec![30.0, 30.0, -30.0, -30.0]))
            .unwrap(),
    );
    assert_eq!(out, [1.0, 1.0, -1.0, -1.0]);
    // Events reach only `bin`.
    let events = Signal::Events(Events {
        start: 0.0,
        duration: 1.0,
        units: vec![],
    });
    assert!(p.apply(events).is_err());
}
