//! Unit tests of the simulator's parts: the deterministic math against the
//! platform's, the generator's known values, the stimulus kinds, the
//! behaviour's statistics, and the exactness of spike and calcium sampling.

use super::behavior;
use super::neurons::{bin_calcium, spike_train};
use super::stimulus::{SegmentKind, Stimulus};
use super::*;
use crate::base::rng::{cos_turns, derive, exp, floor, ln, mix64, sin_turns, softplus, SplitMix64};

#[test]
fn splitmix64_matches_the_reference_sequence() {
    // The first outputs of the reference C implementation seeded with 0
    // (Vigna's splitmix64.c), so the generator is the published one.
    let mut rng = SplitMix64::new(0);
    assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    assert_ne!(derive(1, 2), derive(2, 1));
    assert_ne!(mix64(1), mix64(2));
}

#[test]
fn math_agrees_with_the_platform() {
    let mut rng = SplitMix64::new(42);
    for _ in 0..20_000 {
        let x = rng.range(-50.0, 50.0);
        let rel = (exp(x) - x.exp()).abs() / x.exp();
        assert!(rel < 1e-14, "exp({x}): {} vs {}", exp(x), x.exp());
        let y = rng.log_range(1e-300, 1e300);
        assert!(
            (ln(y) - y.ln()).abs() < 1e-13 * y.ln().abs().max(1.0),
            "ln({y})"
        );
        let t = rng.range(-1e3, 1e3);
        let angle = (t - t.floor()) * std::f64::consts::TAU;
        assert!((cos_turns(t) - angle.cos()).abs() < 1e-12, "cos({t} turns)");
        assert!((sin_turns(t) - angle.sin()).abs() < 1e-12, "sin({t} turns)");
    }
    for x in [
        -2.5,
        -2.0,
        -0.0,
        0.0,
        0.3,
        7.0,
        -1e-300,
        1e17,
        -1e17,
        4.5e15 + 0.5,
    ] {
        assert_eq!(floor(x), x.floor(), "floor({x})");
    }
    assert!(floor(f64::NAN).is_nan());
    assert_eq!(ln(1.0), 0.0);
    assert_eq!(exp(0.0), 1.0);
    assert!(ln(0.0) == f64::NEG_INFINITY && ln(-1.0).is_nan());
    assert!((ln(f64::MIN_POSITIVE / 8.0) - (f64::MIN_POSITIVE / 8.0).ln()).abs() < 1e-12);
    assert!(exp(1e6).is_finite() && exp(-1e6) > 0.0);
    assert!((softplus(0.0) - std::f64::consts::LN_2).abs() < 1e-15);
    assert_eq!(softplus(100.0), 100.0);
}

#[test]
fn draws_have_the_right_moments() {
    let mut rng = SplitMix64::new(7);
    let n = 200_000;
    let normals: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let mean = normals.iter().sum::<f64>() / n as f64;
    let var = normals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(
        mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
        "{mean} {var}"
    );
    let exps = (0..n).map(|_| rng.exp1()).sum::<f64>() / n as f64;
    assert!((exps - 1.0).abs() < 0.01, "{exps}");
    assert!((0..1000).all(|_| rng.below(7) < 7));
    assert_eq!(rng.below(0), 0);
}

fn stimulus(seed: u64, frames: usize) -> Stimulus {
    Stimulus::new(seed, frames, 30, 36, 64)
}

#[test]
fn segments_tile_the_session() {
    let s = stimulus(3, 30 * 600);
    let segs = s.segments();
    assert_eq!(segs[0].start, 0);
    for pair in segs.windows(2) {
        assert_eq!(pair[0].start + pair[0].len, pair[1].start);
    }
    let last = &segs[segs.len() - 1];
    assert_eq!(last.start + last.len, 30 * 600);
    assert!(segs.iter().all(|s| (1..=150).contains(&s.len)));
    // Every kind occurs in ten minutes.
    let has = |f: fn(&SegmentKind) -> bool| segs.iter().any(|s| f(&s.kind));
    assert!(has(|k| matches!(k, SegmentKind::Grey)));
    assert!(has(|k| matches!(k, SegmentKind::Grating { .. })));
    assert!(has(|k| matches!(k, SegmentKind::SparseNoise { .. })));
    assert!(has(|k| matches!(k, SegmentKind::PinkNoise { .. })));
    assert!(s.segment_at(30 * 600).is_none());
    let mut out = vec![0.0; 36 * 64];
    assert!(!s.render(30 * 600, &mut out));
    assert!(!s.render(0, &mut out[1..]));
}

#[test]
fn frames_are_a_function_of_their_index() {
    let s = stimulus(11, 3000);
    let (mut a, mut b) = (vec![0.0; 36 * 64], vec![0.0; 36 * 64]);
    for t in [0, 17, 1234, 2999] {
        assert!(s.render(t, &mut a));
        assert!(s.render(2999 - t, &mut b));
        assert!(s.render(t, &mut b));
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn pink_noise_has_unit_scale() {
    // Rendered at a contrast small enough that nothing is clipped, the
    // pixel SD is the contrast: PINK_SD normalises the octave sum.
    let s = stimulus(5, 30);
    let contrast = 0.01;
    let mut frame = vec![0.0f32; 36 * 64];
    let (mut sum, mut sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for key in 0..200 {
        for position in [0.0, 0.25, 0.5, 1.7] {
            s.pink_noise(key, position, contrast, &mut frame);
            for v in &frame {
                let z = (f64::from(*v) - 0.5) / contrast;
                sum += z;
                sq += z * z;
                n += 1.0;
            }
        }
    }
    let sd = (sq / n - (sum / n).powi(2)).sqrt();
    assert!((sd - 1.0).abs() < 0.05, "pink-noise SD {sd}");
    assert!((sum / n).abs() < 0.1, "pink-noise mean {}", sum / n);
}

#[test]
fn gratings_and_sparse_noise_look_right() {
    let s = stimulus(9, 30 * 600);
    let mut frame = vec![0.0f32; 36 * 64];
    for seg in s.segments() {
        assert!(s.render(seg.start, &mut frame));
        match seg.kind {
            SegmentKind::Grey => assert!(frame.iter().all(|&v| v == 0.5)),
            SegmentKind::Grating { contrast, .. } => {
                let (lo, hi) = frame
                    .iter()
                    .fold((1.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                assert!(f64::from(hi - lo) <= contrast + 1e-6);
                assert!(f64::from(lo) >= 0.5 - 0.5 * contrast - 1e-6);
            }
            SegmentKind::SparseNoise { .. } => {
                assert!(frame.iter().all(|&v| v == 0.0 || v == 0.5 || v == 1.0));
                assert!(frame.iter().any(|&v| v != 0.5));
            }
            SegmentKind::PinkNoise { .. } => {}
        }
    }
}

#[test]
fn behaviour_has_bouts_and_couplings() {
    let mut rng = SplitMix64::new(13);
    let frames = 30 * 3600;
    let b = behavior::simulate(&mut rng, frames, 30);
    assert_eq!(b.len(), frames * 4);
    let col = |c: usize| -> Vec<f64> { b.chunks_exact(4).map(|r| f64::from(r[c])).collect() };
    let (speed, pupil, x) = (col(0), col(1), col(2));
    assert!(speed.iter().all(|&v| v >= 0.0) && pupil.iter().all(|&p| p >= 0.2));
    // About a third of the time running (mean bouts 8 s of every 28 s).
    let running = speed.iter().filter(|&&v| v > 2.0).count() as f64 / frames as f64;
    assert!((0.15..0.5).contains(&running), "running fraction {running}");
    assert!(speed.iter().cloned().fold(0.0, f64::max) > 20.0);
    let r = corr(&speed, &pupil);
    assert!(r > 0.4, "pupil-speed correlation {r}");
    // The eye moves, and its position is at most weakly tied to running.
    let sd_x = (x.iter().map(|v| v * v).sum::<f64>() / frames as f64).sqrt();
    assert!((0.5..10.0).contains(&sd_x), "eye SD {sd_x}");
    assert!(corr(&speed, &x).abs() < 0.2);
}

pub(super) fn corr(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn spike_counts_are_poisson() {
    // A constant 12 Hz over 2000 s: the count's mean and variance are both
    // the integrated rate (24,000) within a few SDs (SD 155).
    let mut rng = SplitMix64::new(21);
    let spikes = spike_train(&mut rng, std::iter::repeat_n(12.0, 60_000), 1.0 / 30.0);
    let n = spikes.len() as f64;
    assert!((n - 24_000.0).abs() < 800.0, "{n} spikes");
    assert!(spikes.windows(2).all(|w| w[0] <= w[1]));
    assert!(spikes.iter().all(|&t| (0.0..=2000.0).contains(&t)));
    // Counts in 1 s windows: Fano factor near 1.
    let mut counts = vec![0.0f64; 2000];
    for &t in &spikes {
        counts[(t as usize).min(1999)] += 1.0;
    }
    let mean = counts.iter().sum::<f64>() / 2000.0;
    let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / 2000.0;
    assert!(
        (var / mean - 1.0).abs() < 0.15,
        "Fano factor {}",
        var / mean
    );
    // A zero rate gives no spikes and no division by zero.
    let none = spike_train(&mut rng, std::iter::repeat_n(0.0, 100), 1.0 / 30.0);
    assert!(none.is_empty());
}

#[test]
fn calcium_bins_are_exact_averages() {
    // One spike at 0.3 s, tau 0.5 s, bins of 0.125 s: compare with a fine
    // numerical average of a e^{-(t - 0.3)/tau}.
    let (tau, a, bin) = (0.5, 0.2, 0.125);
    let out = bin_calcium(&[0.3], tau, a, bin, 16);
    for (j, &got) in out.iter().enumerate() {
        let steps = 100_000;
        let mut sum = 0.0;
        for k in 0..steps {
            let t = (j as f64 + (k as f64 + 0.5) / steps as f64) * bin;
            if t >= 0.3 {
                sum += a * (-(t - 0.3) / tau).exp();
            }
        }
        let want = sum / steps as f64;
        assert!((got - want).abs() < 1e-6, "bin {j}: {got} vs {want}");
    }
    // From the third bin on, each bin is the previous times e^{-bin/tau}.
    let ratio = out[5] / out[4];
    assert!((ratio - (-bin / tau).exp()).abs() < 1e-12);
}

#[test]
fn configs_are_validated() {
    let ok = MouseV1Config::new(2, 32, 7);
    assert!(ok.validate().is_ok());
    assert_eq!(
        (ok.frames(), ok.response_samples()),
        (Some(18_000), Some(4_800))
    );
    let kind = |c: MouseV1Config| c.validate().map_err(|e| e.kind);
    let with = |f: fn(&mut MouseV1Config)| {
        let mut c = ok.clone();
        f(&mut c);
        c
    };
    use SyntheticErrorKind::*;
    assert_eq!(kind(with(|c| c.sessions = 0)), Err(InvalidConfig));
    assert_eq!(kind(with(|c| c.neurons = 0)), Err(InvalidConfig));
    assert_eq!(kind(with(|c| c.duration_s = f64::NAN)), Err(InvalidConfig));
    assert_eq!(kind(with(|c| c.duration_s = -1.0)), Err(InvalidConfig));
    assert_eq!(kind(with(|c| c.duration_s = 0.3)), Err(InvalidConfig));
    assert_eq!(kind(with(|c| c.duration_s = 1e300)), Err(InvalidConfig));
    assert_eq!(kind(with(|c| c.frame_rate = 0)), Err(InvalidConfig));
    assert_eq!(kind(with(|c| c.height = 4)), Err(InvalidConfig));
    assert_eq!(kind(with(|c| c.neurons = usize::MAX)), Err(TooLarge));
    assert_eq!(kind(with(|c| c.sessions = usize::MAX)), Err(TooLarge));
    assert!(kind(with(|c| c.duration_s = 0.5)).is_ok());
    assert!(MouseV1Config::from_ints(-1, 3, 0).is_err());
    assert!(MouseV1Config::from_ints(1, -3, 0).is_err());
    assert!(MouseV1Config::from_ints(1, 3, -5).is_ok());
}

#[test]
fn sessions_may_have_their_own_neuron_counts() {
    let config = MouseV1Config {
        duration_s: 4.0,
        ..MouseV1Config::new(3, 8, 5)
    }
    .with_session_neurons(&[4, 6, 5])
    .unwrap();
    assert_eq!(config.neurons, 6);
    let mouse = MouseV1::new(config).unwrap();
    let counts: Vec<usize> = (0..3)
        .filter_map(|s| mouse.session(s).map(|x| x.neurons()))
        .collect();
    assert_eq!(counts, [4, 6, 5]);
    let wrong = MouseV1Config::new(2, 8, 5).with_session_neurons(&[4, 6, 5]);
    assert!(wrong.is_err());
    assert!(MouseV1Config::new(2, 8, 5)
        .with_session_neurons(&[4, 0])
        .is_err());
}
