//! The synthetic mouse V1 (`synthetic.mouse_v1`) from the outside: it is
//! deterministic, has the declared shapes and ranges, refuses bad
//! configurations with errors, and, the point of it, its known truth can be
//! recovered from what a model sees. Recovery is measured against chance,
//! stated in each test; the thresholds and the values measured when they
//! were set are in `docs/synthetic.md`.
//!
//! The recovery tests share one 300 s session of 24 neurons, built once;
//! sizes are kept small so that the file runs in seconds in a debug build.

use std::sync::OnceLock;

use enigma::dataset::synthetic::{
    CellKind, MouseV1, MouseV1Config, Session, SyntheticError, SyntheticErrorKind,
};

/// The session the recovery tests analyse.
fn recording() -> &'static Session {
    static V1: OnceLock<MouseV1> = OnceLock::new();
    let v1 = V1.get_or_init(|| {
        let mut config = MouseV1Config::new(1, 24, 1);
        config.duration_s = 300.0;
        MouseV1::new(config).expect("a valid configuration")
    });
    v1.session(0).expect("one session")
}

fn small(sessions: usize, neurons: usize, seed: u64, duration_s: f64) -> MouseV1 {
    let mut config = MouseV1Config::new(sessions, neurons, seed);
    config.duration_s = duration_s;
    MouseV1::new(config).expect("a valid configuration")
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn frame(s: &Session, t: usize) -> Vec<f32> {
    let (h, w) = s.frame_size();
    let mut out = vec![0.0; h * w];
    s.video_frame(t, &mut out)
        .expect("a frame inside the session");
    out
}

#[test]
fn the_same_config_gives_the_same_bits_and_another_seed_does_not() {
    let (a, b, c) = (
        small(2, 6, 7, 30.0),
        small(2, 6, 7, 30.0),
        small(2, 6, 8, 30.0),
    );
    for s in 0..2 {
        let (sa, sb, sc) = (
            a.session(s).unwrap(),
            b.session(s).unwrap(),
            c.session(s).unwrap(),
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(sa.behavior()), bits(sb.behavior()));
        assert_eq!(bits(sa.response()), bits(sb.response()));
        assert_eq!(bits(&sa.truth().rf), bits(&sb.truth().rf));
        assert_eq!(bits(&sa.truth().rates), bits(&sb.truth().rates));
        for i in 0..6 {
            assert_eq!(sa.spikes(i), sb.spikes(i));
        }
        for t in [0, 450, 899] {
            assert_eq!(bits(&frame(sa, t)), bits(&frame(sb, t)));
        }
        assert_ne!(sa.behavior(), sc.behavior());
        assert_ne!(sa.response(), sc.response());
        assert_ne!(sa.truth().rf, sc.truth().rf);
        assert_ne!(sa.segments(), sc.segments());
    }
}

#[test]
fn sessions_have_their_own_neurons_stimulus_and_behaviour() {
    let v1 = small(2, 6, 7, 30.0);
    let (s0, s1) = (v1.session(0).unwrap(), v1.session(1).unwrap());
    assert_ne!(s0.truth().rf, s1.truth().rf);
    assert_ne!(s0.truth().neurons, s1.truth().neurons);
    assert_ne!(s0.behavior(), s1.behavior());
    assert_ne!(s0.segments(), s1.segments());
    assert!(v1.session(2).is_none());
}

#[test]
fn more_neurons_or_sessions_extend_without_changing_the_rest() {
    // Every neuron and session has its own streams, so growing the
    // population keeps what was there bit for bit.
    let (few, more) = (small(1, 3, 11, 30.0), small(2, 6, 11, 30.0));
    let (a, b) = (few.session(0).unwrap(), more.session(0).unwrap());
    assert_eq!(a.behavior(), b.behavior());
    assert_eq!(a.segments(), b.segments());
    for i in 0..3 {
        assert_eq!(a.spikes(i), b.spikes(i));
        assert_eq!(a.truth().neurons[i], b.truth().neurons[i]);
        for j in 0..a.response_samples() {
            assert_eq!(a.response()[j * 3 + i], b.response()[j * 6 + i]);
        }
    }
}

#[test]
fn shapes_counts_and_ranges() {
    let default = MouseV1Config::new(2, 32, 7);
    assert_eq!(default.frames(), Some(18_000));
    assert_eq!(default.response_samples(), Some(4_800));

    let v1 = small(2, 5, 3, 60.0);
    assert_eq!(v1.sessions(), 2);
    let s = v1.session(1).unwrap();
    let (frames, samples, n) = (s.frames(), s.response_samples(), s.neurons());
    assert_eq!((frames, samples, n), (1800, 480, 5));
    assert_eq!(s.frame_size(), (36, 64));
    assert_eq!(s.behavior().len(), frames * 4);
    assert_eq!(s.response().len(), samples * n);
    let truth = s.truth();
    assert_eq!(truth.rf.len(), n * 36 * 64);
    assert_eq!(truth.rf_quadrature.len(), n * 36 * 64);
    assert_eq!(truth.rates.len(), frames * n);
    assert_eq!(truth.calcium.len(), samples * n);
    assert_eq!(truth.neurons.len(), n);

    // The whole video, read in windows: values in [0, 1], mean near 0.5.
    let mut window = vec![0.0f32; 60 * 36 * 64];
    let (mut sum, mut count) = (0.0f64, 0.0f64);
    for start in (0..frames).step_by(60) {
        s.video(start, 60, &mut window).unwrap();
        assert!(window.iter().all(|v| (0.0..=1.0).contains(v)));
        sum += window.iter().map(|&v| f64::from(v)).sum::<f64>();
        count += window.len() as f64;
    }
    let mean = sum / count;
    assert!((mean - 0.5).abs() < 0.03, "mean luminance {mean}");

    for row in s.behavior().chunks_exact(4) {
        assert!(row[0] >= 0.0 && row[0] < 100.0, "running speed {}", row[0]);
        assert!(row[1] > 0.0 && row[1] < 5.0, "pupil {}", row[1]);
        assert!(row[2].abs() < 45.0 && row[3].abs() < 45.0, "eye {row:?}");
    }
    assert!(s.response().iter().all(|v| v.is_finite()));
    assert!(truth.rates.iter().all(|&r| r > 0.0 && r <= 200.0));

    // Spikes: sorted, inside the session, and as many as the rates say
    // (Poisson: within 5 SDs of the integrated rate).
    for i in 0..n {
        let spikes = s.spikes(i).unwrap();
        assert!(spikes.windows(2).all(|w| w[0] <= w[1]));
        assert!(spikes.iter().all(|&t| (0.0..60.0).contains(&t)));
        let expected: f64 = (0..frames)
            .map(|t| f64::from(truth.rates[t * n + i]) / 30.0)
            .sum();
        let got = spikes.len() as f64;
        assert!(
            (got - expected).abs() < 5.0 * expected.sqrt(),
            "{got} vs {expected}"
        );
    }
    assert!(s.spikes(n).is_none());
    assert_eq!(truth.rf(4), Some(&truth.rf[4 * 36 * 64..]));
    assert!(truth.rf(n).is_none() && truth.rf_quadrature(usize::MAX).is_none());
}

/// The 2 x 2 block average of a frame, centred on grey.
fn halve(frame: &[f32], h: usize, w: usize) -> Vec<f64> {
    let mut out = vec![0.0; (h / 2) * (w / 2)];
    for r in 0..h {
        for c in 0..w {
            out[(r / 2) * (w / 2) + c / 2] += 0.25 * (f64::from(frame[r * w + c]) - 0.5);
        }
    }
    out
}

/// Solves `a x = b` for a symmetric positive definite `a` (`p x p`, only
/// its lower triangle is read) and `k` right-hand sides (`b` is `p x k`).
fn cholesky_solve(a: &mut [f64], p: usize, b: &mut [f64], k: usize) {
    for j in 0..p {
        let d = (a[j * p + j] - (0..j).map(|m| a[j * p + m].powi(2)).sum::<f64>()).sqrt();
        a[j * p + j] = d;
        for i in j + 1..p {
            let s = a[i * p + j] - (0..j).map(|m| a[i * p + m] * a[j * p + m]).sum::<f64>();
            a[i * p + j] = s / d;
        }
    }
    for col in 0..k {
        for i in 0..p {
            let s = b[i * k + col] - (0..i).map(|m| a[i * p + m] * b[m * k + col]).sum::<f64>();
            b[i * k + col] = s / a[i * p + i];
        }
        for i in (0..p).rev() {
            let s = b[i * k + col]
                - (i + 1..p)
                    .map(|m| a[m * p + i] * b[m * k + col])
                    .sum::<f64>();
            b[i * k + col] = s / a[i * p + i];
        }
    }
}

#[test]
fn receptive_fields_are_recovered_by_ridge_regression_on_spikes() {
    // The estimate: ridge regression of each neuron's spike count per frame
    // on the video at 2 x 2 pixels, averaged over lags of 2 to 5 frames
    // (67-167 ms; the true latencies are 2-4 frames). The stimulus
    // covariance is estimated on every 8th frame, the cross-covariance on
    // all of them. Chance: the correlation of neuron i's estimate with the
    // true field of another neuron j (shuffled pairings).
    let s = recording();
    let ((h, w), frames, n) = (s.frame_size(), s.frames(), s.neurons());
    let p = (h / 2) * (w / 2);
    let small: Vec<Vec<f64>> = (0..frames).map(|t| halve(&frame(s, t), h, w)).collect();
    let lagged: Vec<Vec<f64>> = (0..frames)
        .map(|t| {
            let mut x = vec![0.0; p];
            for lag in (2..=5).filter(|&l| l <= t) {
                x.iter_mut()
                    .zip(&small[t - lag])
                    .for_each(|(a, b)| *a += 0.25 * b);
            }
            x
        })
        .collect();
    let mut cov = vec![0.0; p * p];
    for x in lagged.iter().step_by(8) {
        for i in 0..p {
            let row = &mut cov[i * p..i * p + i + 1];
            row.iter_mut()
                .zip(&x[..=i])
                .for_each(|(c, xj)| *c += 8.0 * x[i] * xj);
        }
    }
    let ridge = (0..p).map(|i| cov[i * p + i]).sum::<f64>() / p as f64 * 3.0;
    (0..p).for_each(|i| cov[i * p + i] += ridge);
    // The cross-covariance sum_t (count_t - mean) x_t, as the sum over
    // spikes of their frame's x minus the mean count times sum_t x_t.
    let mut total = vec![0.0; p];
    for x in &lagged {
        total.iter_mut().zip(x).for_each(|(a, b)| *a += b);
    }
    let mut cross = vec![0.0; p * n];
    for i in 0..n {
        let spikes = s.spikes(i).unwrap();
        let mean = spikes.len() as f64 / frames as f64;
        for (j, t) in total.iter().enumerate() {
            cross[j * n + i] = -mean * t;
        }
        for &t in spikes {
            let x = &lagged[((t * 30.0) as usize).min(frames - 1)];
            x.iter()
                .enumerate()
                .for_each(|(j, v)| cross[j * n + i] += v);
        }
    }
    cholesky_solve(&mut cov, p, &mut cross, n);

    let truth = s.truth();
    let true_rf: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let rf = &truth.rf[i * h * w..(i + 1) * h * w];
            halve(&rf.iter().map(|v| v + 0.5).collect::<Vec<_>>(), h, w)
        })
        .collect();
    let (mut matched, mut shuffled, mut complex) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let estimate: Vec<f64> = (0..p).map(|j| cross[j * n + i]).collect();
        let r = corr(&estimate, &true_rf[i]);
        match truth.neurons[i].kind {
            CellKind::Simple => matched.push(r),
            // A complex cell's response does not depend on the sign of
            // the stimulus, so its linear estimate is close to nothing.
            CellKind::Complex => complex.push(r),
        }
        for (_, other) in true_rf.iter().enumerate().filter(|&(j, _)| j != i) {
            shuffled.push(corr(&estimate, other).abs());
        }
    }
    let chance = quantile(shuffled.clone(), 0.95);
    let above = matched.iter().filter(|&&r| r > chance.max(0.35)).count();
    eprintln!(
        "simple cells: median r {:.3}, min {:.3}; complex: {complex:.2?}; shuffled |r|: median {:.3}, 95th percentile {chance:.3}; {above} of {} above",
        median(matched.clone()),
        matched.iter().cloned().fold(1.0, f64::min),
        median(shuffled),
        matched.len()
    );
    assert!(matched.len() >= 12, "{} simple cells", matched.len());
    assert!(
        above * 10 >= matched.len() * 8,
        "{above} of {}",
        matched.len()
    );
    assert!(median(matched) > 0.5);
    if !complex.is_empty() {
        assert!(median(complex.iter().map(|r| r.abs()).collect()) < 0.2);
    }
}

/// The ranks of `v` (0 for the smallest; ties in index order).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    for (rank, &i) in order.iter().enumerate() {
        out[i] = rank as f64;
    }
    out
}

#[test]
fn responses_follow_running_with_the_sign_of_the_true_gain() {
    // The rank (Spearman) correlation of each neuron's response with the
    // running speed averaged over the same 125 ms bins. Ranks, because a
    // complex cell's drive is heavy-tailed: a few strong grating segments
    // can outweigh its gain in a Pearson correlation over 300 s. Chance:
    // the same correlation with the speed trace shifted circularly by half
    // the session, which keeps its slowness.
    let s = recording();
    let (samples, n) = (s.response_samples(), s.neurons());
    let speed: Vec<f64> = (0..samples)
        .map(|j| {
            let (a, b) = ((j * 30).div_ceil(8), ((j + 1) * 30).div_ceil(8));
            (a..b).map(|f| f64::from(s.behavior()[f * 4])).sum::<f64>() / (b - a) as f64
        })
        .collect();
    let speed = ranks(&speed);
    let mut shifted = speed.clone();
    shifted.rotate_left(samples / 2);
    let (mut large, mut null) = (Vec::new(), Vec::new());
    for (i, neuron) in s.truth().neurons.iter().enumerate() {
        let response: Vec<f64> = (0..samples)
            .map(|j| f64::from(s.response()[j * n + i]))
            .collect();
        let response = ranks(&response);
        let r = corr(&response, &speed);
        null.push(corr(&response, &shifted).abs());
        if neuron.run_gain.abs() >= 0.5 {
            assert_eq!(
                r.signum(),
                neuron.run_gain.signum(),
                "neuron {i}: r {r:.3}, {neuron:?}"
            );
            large.push(r.abs());
        }
    }
    eprintln!(
        "gains of 0.5 or more: {} neurons, median |rho| {:.3}, min {:.3}; shifted speed: median |rho| {:.3}",
        large.len(),
        median(large.clone()),
        large.iter().cloned().fold(1.0, f64::min),
        median(null.clone())
    );
    assert!(large.len() >= 8);
    assert!(median(large) > 2.0 * median(null));
}

#[test]
fn calcium_decays_with_the_true_time_constant() {
    // Regressing each response on the neuron's spike counts per bin at lags
    // 0 to 31 (4 s, four of the longest time constants, so that slow rate
    // changes do not leak into the kernel) gives the calcium impulse
    // response; from lag 1 on it decays by e^{-bin / tau} per bin (lag 0 is
    // smaller: a spike counts only from its own time to the bin's end).
    // Chance is not the question here: the estimate is compared with the
    // true tau of each neuron, which spans 0.4 to 1 s.
    let s = recording();
    let (samples, n, lags) = (s.response_samples(), s.neurons(), 32);
    let mut errors = Vec::new();
    for (i, neuron) in s.truth().neurons.iter().enumerate() {
        let mut counts = vec![0.0; samples];
        for &t in s.spikes(i).unwrap() {
            counts[((t * 8.0) as usize).min(samples - 1)] += 1.0;
        }
        let p = lags + 1;
        let (mut a, mut b) = (vec![0.0; p * p], vec![0.0; p]);
        for j in lags..samples {
            let x: Vec<f64> = std::iter::once(1.0)
                .chain((0..lags).map(|l| counts[j - l]))
                .collect();
            let y = f64::from(s.response()[j * n + i]);
            for u in 0..p {
                b[u] += x[u] * y;
                (0..p).for_each(|v| a[u * p + v] += x[u] * x[v]);
            }
        }
        cholesky_solve(&mut a, p, &mut b, 1);
        // The kernel is h_1 q^(l-1) from lag 1 with q = e^{-bin/tau}, so
        // sum(h_2..h_9) / sum(h_1..h_8) = q: a ratio of sums, which the
        // noise in single lags barely moves.
        let h = &b[1..];
        let q = h[2..=9].iter().sum::<f64>() / h[1..=8].iter().sum::<f64>();
        let tau = -0.125 / q.ln();
        errors.push((tau - neuron.tau_s).abs() / neuron.tau_s);
    }
    let worst = errors.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "tau relative error: median {:.3}, worst {worst:.3}",
        median(errors.clone())
    );
    assert!(median(errors) < 0.08);
    assert!(worst < 0.25);
}

#[test]
fn invalid_configurations_and_requests_are_errors() {
    let mut bad = Vec::new();
    for (sessions, neurons) in [
        (0, 4),
        (2, 0),
        (usize::MAX, 4),
        (2, usize::MAX),
        (1 << 20, 1 << 20),
    ] {
        bad.push(MouseV1Config::new(sessions, neurons, 1));
    }
    for duration in [0.0, -600.0, f64::NAN, f64::INFINITY, 0.01, 1e300, 600.1] {
        let mut c = MouseV1Config::new(1, 4, 1);
        c.duration_s = duration;
        bad.push(c);
    }
    for (fr, rr, h, w) in [
        (0, 8, 36, 64),
        (30, 0, 36, 64),
        (30, 8, 0, 64),
        (30, 8, 36, 1 << 40),
    ] {
        let mut c = MouseV1Config::new(1, 4, 1);
        (c.frame_rate, c.response_rate, c.height, c.width) = (fr, rr, h, w);
        bad.push(c);
    }
    for config in bad {
        let err = MouseV1::new(config.clone()).expect_err("an invalid configuration");
        assert!(err.to_string().starts_with("synthetic.mouse_v1: "), "{err}");
        assert!(
            matches!(
                err.kind,
                SyntheticErrorKind::InvalidConfig | SyntheticErrorKind::TooLarge
            ),
            "{config:?}: {err}"
        );
    }
    assert!(MouseV1Config::from_ints(-2, 32, 7).is_err());
    assert_eq!(
        MouseV1Config::from_ints(2, 32, -7).map(|c| c.seed),
        Ok((-7i64) as u64)
    );

    let v1 = small(1, 2, 1, 1.0);
    let s = v1.session(0).unwrap();
    let mut out = vec![0.0f32; 36 * 64];
    let kind = |r: Result<(), SyntheticError>| r.map_err(|e| e.kind);
    assert_eq!(
        kind(s.video_frame(30, &mut out)),
        Err(SyntheticErrorKind::OutOfRange)
    );
    assert_eq!(
        kind(s.video(usize::MAX, 2, &mut out)),
        Err(SyntheticErrorKind::OutOfRange)
    );
    assert_eq!(
        kind(s.video(0, 2, &mut out)),
        Err(SyntheticErrorKind::BufferSize)
    );
    assert_eq!(
        kind(s.video_frame(29, &mut out[1..])),
        Err(SyntheticErrorKind::BufferSize)
    );
    assert!(s.video_frame(29, &mut out).is_ok());
}

/// The quick start's source (seed 7) has the statistics `docs/synthetic.md`
/// states: firing rates of a few hertz, running a quarter of the time, and
/// responses whose correlation with the noise-free calcium (the ceiling for
/// any model of them) is high. Build time and rendering speed are measured
/// by `cargo bench --no-default-features --bench synthetic`.
#[test]
fn the_quickstart_source_has_its_documented_statistics() {
    let v1 = MouseV1::new(MouseV1Config::new(2, 32, 7)).unwrap();
    for s in (0..2).map(|k| v1.session(k).unwrap()) {
        let (n, samples) = (s.neurons(), s.response_samples());
        let spikes: usize = (0..n).map(|i| s.spikes(i).unwrap().len()).sum();
        let column = |a: &[f32], i: usize| -> Vec<f64> {
            (0..samples).map(|j| f64::from(a[j * n + i])).collect()
        };
        let ceiling: Vec<f64> = (0..n)
            .map(|i| corr(&column(s.response(), i), &column(&s.truth().calcium, i)))
            .collect();
        let mean_response =
            s.response().iter().map(|&v| f64::from(v)).sum::<f64>() / s.response().len() as f64;
        let running =
            s.behavior().chunks_exact(4).filter(|r| r[0] > 2.0).count() as f64 / s.frames() as f64;
        let rate = spikes as f64 / n as f64 / 600.0;
        // The documented figures are 6.2 Hz, 0.55-0.63 dF/F, 27-28% and a
        // median ceiling of 0.96-0.97; the bounds leave room, not doubt.
        assert!((4.0..9.0).contains(&rate), "mean rate {rate} Hz");
        assert!(
            (0.4..0.8).contains(&mean_response),
            "mean response {mean_response}"
        );
        assert!((0.2..0.35).contains(&running), "running {running}");
        assert!(median(ceiling) > 0.93);
        assert!(s.segments().len() > 100);
    }
}
