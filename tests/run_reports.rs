//! What `enigma run` shows the user: the metrics log, held-out
//! correlations with their chance level, and the plots, through the public
//! API of `enigma::run::{metrics, plots}`.

use std::fs;
use std::path::{Path, PathBuf};

use enigma::run::metrics::{
    mean, median, read_records, CorrAccumulator, CorrError, MetricsErrorKind, MetricsLog, Record,
    RecordKind, WindowedCorr,
};
use enigma::run::plots::plot_run;

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enigma-reports-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small deterministic generator of standard normal values (xorshift64*
/// and Box-Muller), so the statistical tests never flake.
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (bits as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

// ---- the metrics log ----

fn sample_records() -> Vec<Record> {
    vec![
        Record::train(100)
            .with("loss", 0.53)
            .with("lr", 0.0029)
            .with("grad_norm", 1.2)
            .with("steps_per_s", 3.1)
            .at(1_796_680_000.25),
        Record::eval(100, "val")
            .with("loss", 0.6)
            .with("corr", 0.41)
            .with("corr_chance", 0.01)
            .at(1_796_680_001.5),
        Record::event(100, "checkpoint saved").at(1_796_680_001.75),
    ]
}

#[test]
fn records_round_trip_through_the_log_as_flat_json() {
    let dir = scratch("round-trip");
    let path = dir.join("metrics.jsonl");
    let mut log = MetricsLog::create(&path).unwrap();
    for record in sample_records() {
        log.write(&record).unwrap();
    }
    // Each line is flushed as it is written: no drop is needed to read it.
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        r#"{"step":100,"kind":"train","time":1796680000.25,"grad_norm":1.2,"loss":0.53,"lr":0.0029,"steps_per_s":3.1}"#
    );
    assert_eq!(
        lines[1],
        r#"{"step":100,"kind":"eval","time":1796680001.5,"split":"val","corr":0.41,"corr_chance":0.01,"loss":0.6}"#
    );
    assert_eq!(
        lines[2],
        r#"{"step":100,"kind":"event","time":1796680001.75,"note":"checkpoint saved"}"#
    );
    assert_eq!(read_records(&path).unwrap(), sample_records());
}

#[test]
fn a_record_without_a_time_is_stamped_when_written() {
    let dir = scratch("stamp");
    let path = dir.join("metrics.jsonl");
    let mut log = MetricsLog::create(&path).unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    log.write(&Record::train(1).with("loss", 1.0)).unwrap();
    let back = read_records(&path).unwrap();
    let time = back[0].time.unwrap();
    assert!(time >= before && time < before + 60.0, "{time} vs {before}");
}

#[test]
fn non_finite_values_are_written_as_null_and_read_back_as_nan() {
    let dir = scratch("non-finite");
    let path = dir.join("metrics.jsonl");
    let mut log = MetricsLog::create(&path).unwrap();
    let record = Record::train(7)
        .with("loss", f64::NAN)
        .with("grad_norm", f64::INFINITY)
        .with("lr", 1e-3);
    log.write(&record).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    // Every line must be valid JSON for any reader, not just ours.
    let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert!(value["loss"].is_null() && value["grad_norm"].is_null());
    assert_eq!(value["lr"].as_f64(), Some(1e-3));
    let back = read_records(&path).unwrap();
    assert!(back[0].get("loss").unwrap().is_nan());
    assert!(back[0].get("grad_norm").unwrap().is_nan());
    assert_eq!(back[0].get("lr"), Some(1e-3));
}

#[test]
fn create_truncates_and_append_continues() {
    let dir = scratch("truncate");
    let path = dir.join("metrics.jsonl");
    let mut log = MetricsLog::create(&path).unwrap();
    log.write(&Record::train(1).with("loss", 1.0)).unwrap();
    drop(log);
    let mut log = MetricsLog::append(&path).unwrap();
    log.write(&Record::train(2).with("loss", 0.9)).unwrap();
    drop(log);
    assert_eq!(read_records(&path).unwrap().len(), 2);
    MetricsLog::create(&path).unwrap();
    assert!(read_records(&path).unwrap().is_empty());
}

#[test]
fn resume_drops_records_after_the_checkpoint_so_none_is_duplicated() {
    let dir = scratch("resume");
    let path = dir.join("metrics.jsonl");
    let mut log = MetricsLog::create(&path).unwrap();
    for step in (10..=50).step_by(10) {
        log.write(&Record::train(step).with("loss", 1.0 / step as f64))
            .unwrap();
    }
    log.write(&Record::event(30, "checkpoint saved")).unwrap();
    drop(log);

    // The run stopped at 50 but its last checkpoint was at step 30.
    let mut log = MetricsLog::resume(&path, 30).unwrap();
    for step in (40..=60).step_by(10) {
        log.write(&Record::train(step).with("loss", 0.5)).unwrap();
    }
    drop(log);
    let records = read_records(&path).unwrap();
    let steps: Vec<u64> = records.iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![10, 20, 30, 30, 40, 50, 60]);
    assert_eq!(records[3].kind, RecordKind::Event);
    // The resumed run's values replaced the stopped run's.
    assert_eq!(records[4].get("loss"), Some(0.5));
    assert!(!dir.join("metrics.jsonl.tmp").exists());
}

#[test]
fn resume_of_a_missing_log_starts_an_empty_one() {
    let dir = scratch("resume-missing");
    let path = dir.join("metrics.jsonl");
    let mut log = MetricsLog::resume(&path, 5).unwrap();
    log.write(&Record::train(6)).unwrap();
    assert_eq!(read_records(&path).unwrap().len(), 1);
}

#[test]
fn resume_drops_a_torn_last_line_but_refuses_a_malformed_one_inside() {
    let dir = scratch("resume-torn");
    let path = dir.join("metrics.jsonl");
    let good = "{\"step\":1,\"kind\":\"train\",\"loss\":2.0}\n";
    fs::write(&path, format!("{good}{{\"step\":2,\"ki")).unwrap();
    MetricsLog::resume(&path, 10).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), good);

    let broken = format!("{good}not json\n{good}");
    fs::write(&path, &broken).unwrap();
    let error = MetricsLog::resume(&path, 10).unwrap_err();
    assert_eq!(error.line, Some(2));
    // A refused resume leaves the log as it was.
    assert_eq!(fs::read_to_string(&path).unwrap(), broken);
}

#[test]
fn read_records_names_the_file_and_line_of_a_malformed_record() {
    let dir = scratch("malformed");
    let path = dir.join("metrics.jsonl");
    let lines = [
        r#"{"step":1,"kind":"train","loss":1.0}"#,
        "",
        r#"{"step":2,"kind":"train","loss":0.9}"#,
        r#"{"step":3,"kind":"sideways"}"#,
    ];
    fs::write(&path, lines.join("\n")).unwrap();
    let error = read_records(&path).unwrap_err();
    assert_eq!(error.line, Some(4));
    assert!(matches!(error.kind, MetricsErrorKind::Malformed(_)));
    let shown = error.to_string();
    assert!(shown.contains("metrics.jsonl:4"), "{shown}");
    assert!(shown.contains("sideways"), "{shown}");

    for bad in [
        r#"{"kind":"train"}"#,
        r#"{"step":-1,"kind":"train"}"#,
        r#"{"step":1,"kind":"eval","x":[1]}"#,
    ] {
        fs::write(&path, bad).unwrap();
        assert_eq!(read_records(&path).unwrap_err().line, Some(1), "{bad}");
    }
    let missing = read_records(&dir.join("absent.jsonl")).unwrap_err();
    assert!(matches!(missing.kind, MetricsErrorKind::Io(_)));
    assert!(missing.to_string().contains("absent.jsonl"));
}

#[test]
fn record_lines_refuse_reserved_and_duplicate_keys() {
    let line = Record::train(3).with("loss", 0.5).to_json_line().unwrap();
    assert_eq!(line, r#"{"step":3,"kind":"train","loss":0.5}"#);
    assert!(Record::train(3).with("step", 1.0).to_json_line().is_err());
    assert!(Record::train(3)
        .with_label("note", "x")
        .to_json_line()
        .is_err());
    let both = Record::eval(3, "val").with("split", 1.0);
    assert!(both
        .to_json_line()
        .unwrap_err()
        .to_string()
        .contains("split"));
}

#[test]
fn writing_a_reserved_key_is_an_error_not_a_duplicate_key() {
    let dir = scratch("reserved");
    let path = dir.join("metrics.jsonl");
    let mut log = MetricsLog::create(&path).unwrap();
    let error = log.write(&Record::train(1).with("kind", 1.0)).unwrap_err();
    assert!(matches!(error.kind, MetricsErrorKind::Invalid(_)));
    assert_eq!(fs::read_to_string(&path).unwrap(), "");
}

// ---- correlations ----

#[test]
fn perfectly_correlated_and_anticorrelated_neurons() {
    // Two neurons: the first predicted up to an affine map, the second
    // predicted with the sign flipped.
    let mut rng = Normal(1);
    let signal = rng.vec(500);
    let mut pred = Vec::new();
    let mut target = Vec::new();
    for &s in &signal {
        pred.extend([s, s]);
        target.extend([3.0 * s + 2.0, -0.5 * s + 1.0]);
    }
    let mut acc = CorrAccumulator::new(2);
    acc.add(&pred, &target, None).unwrap();
    let r = acc.finish();
    assert!((r[0].unwrap() - 1.0).abs() < 1e-9, "{r:?}");
    assert!((r[1].unwrap() + 1.0).abs() < 1e-9, "{r:?}");
    assert_eq!(acc.counts(), vec![500, 500]);
}

#[test]
fn independent_signals_have_a_small_correlation() {
    let mut rng = Normal(2);
    let neurons = 4;
    let pred = rng.vec(20_000 * neurons);
    let target = rng.vec(20_000 * neurons);
    let mut acc = CorrAccumulator::new(neurons);
    // Pooling across calls must equal one call over everything.
    acc.add(&pred[..8000], &target[..8000], None).unwrap();
    acc.add(&pred[8000..], &target[8000..], None).unwrap();
    for r in acc.finish() {
        // The standard error at n = 20000 is about 0.007.
        assert!(r.unwrap().abs() < 0.03, "{r:?}");
    }
}

#[test]
fn the_mask_excludes_entries_from_the_correlation() {
    let mut rng = Normal(3);
    let n = 300;
    let target = rng.vec(n);
    let pred: Vec<f32> = target.iter().map(|t| 2.0 * t).collect();
    let mask: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
    let mut clean = CorrAccumulator::new(1);
    clean.add(&pred, &target, Some(&mask)).unwrap();
    assert_eq!(clean.counts(), vec![200]);

    // Corrupting an unselected entry changes nothing ...
    let mut corrupted = pred.clone();
    corrupted[0] = 1e6;
    let mut masked = CorrAccumulator::new(1);
    masked.add(&corrupted, &target, Some(&mask)).unwrap();
    assert_eq!(masked.finish(), clean.finish());
    assert!((clean.finish()[0].unwrap() - 1.0).abs() < 1e-9);

    // ... while the same corruption without the mask ruins r.
    let mut unmasked = CorrAccumulator::new(1);
    unmasked.add(&corrupted, &target, None).unwrap();
    assert!(unmasked.finish()[0].unwrap() < 0.5);
}

#[test]
fn merging_equals_adding_everything_to_one_accumulator() {
    // Data-parallel ranks each see part of the held-out set.
    let pred: Vec<f32> = (0..60).map(|i| ((i * 7) % 11) as f32).collect();
    let target: Vec<f32> = (0..60).map(|i| ((i * 5) % 13) as f32).collect();
    let mut whole = CorrAccumulator::new(3);
    whole.add(&pred, &target, None).unwrap();
    let mut left = CorrAccumulator::new(3);
    left.add(&pred[..21], &target[..21], None).unwrap();
    let mut right = CorrAccumulator::new(3);
    right.add(&pred[21..], &target[21..], None).unwrap();
    left.merge(&right).unwrap();
    assert_eq!(left.counts(), whole.counts());
    for (a, b) in left.finish().iter().zip(whole.finish()) {
        assert!((a.unwrap() - b.unwrap()).abs() < 1e-12, "{a:?} {b:?}");
    }
    assert_eq!(
        left.merge(&CorrAccumulator::new(2)),
        Err(CorrError::Neurons { left: 3, right: 2 })
    );
}

#[test]
fn too_few_entries_zero_variance_and_non_finite_values() {
    let mut acc = CorrAccumulator::new(3);
    // Neuron 0: two entries; neuron 1: constant prediction; neuron 2: fine
    // apart from a NaN that must be skipped rather than poison the sum.
    let pred = [
        1.0,
        5.0,
        1.0,
        2.0,
        5.0,
        2.0,
        f32::NAN,
        5.0,
        3.0,
        f32::NAN,
        5.0,
        4.0,
    ];
    let target = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0];
    acc.add(&pred, &target, None).unwrap();
    let r = acc.finish();
    assert_eq!(r[0], None);
    assert_eq!(r[1], None);
    assert!((r[2].unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(acc.non_finite(), 2);
    assert_eq!(CorrAccumulator::new(2).finish(), vec![None, None]);
}

#[test]
fn shapes_that_do_not_fit_are_errors() {
    let mut acc = CorrAccumulator::new(3);
    assert_eq!(
        acc.add(&[0.0; 6], &[0.0; 3], None),
        Err(CorrError::Lengths { pred: 6, target: 3 })
    );
    assert_eq!(
        acc.add(&[0.0; 4], &[0.0; 4], None),
        Err(CorrError::NotRows { len: 4, neurons: 3 })
    );
    assert!(matches!(
        acc.add(&[0.0; 6], &[0.0; 6], Some(&[true; 5])),
        Err(CorrError::Mask { mask: 5, values: 6 })
    ));
    assert_eq!(acc.counts(), vec![0, 0, 0]);
    assert!(WindowedCorr::new(3, 0).is_err());
    let mut windows = WindowedCorr::new(3, 1).unwrap();
    assert!(windows.add_window(&[0.0; 6], &[0.0; 6], None, 3).is_err());
    windows.add_window(&[0.0; 6], &[0.0; 6], None, 2).unwrap();
    let error = windows
        .add_window(&[0.0; 9], &[0.0; 9], None, 3)
        .unwrap_err();
    assert!(error.to_string().contains("window"), "{error}");
}

/// `windows` independent windows of `steps` steps: targets are fresh noise
/// per window and predictions the targets plus a little noise.
fn independent_windows(windows: usize, steps: usize, neurons: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut rng = Normal(4);
    (0..windows)
        .map(|_| {
            let target = rng.vec(steps * neurons);
            let pred = target.iter().map(|t| t + 0.3 * rng.next()).collect();
            (pred, target)
        })
        .collect()
}

#[test]
fn chance_is_near_zero_for_independent_windows_while_matched_is_high() {
    let (steps, neurons) = (20, 5);
    let data = independent_windows(200, steps, neurons);
    let mut corr = WindowedCorr::new(neurons, 1).unwrap();
    for (pred, target) in &data {
        corr.add_window(pred, target, None, steps).unwrap();
    }
    assert_eq!(corr.windows(), 200);
    let matched = corr.finish();
    let chance = corr.finish_shifted();
    assert!(mean(&matched).unwrap() > 0.9, "{matched:?}");
    for r in &chance {
        assert!(r.unwrap().abs() < 0.06, "{chance:?}");
    }
}

#[test]
fn chance_keeps_what_windows_share() {
    // Every window repeats one stimulus response: a model that predicts the
    // shared response is no better than chance, and the null must say so.
    let (steps, neurons) = (30, 2);
    let mut rng = Normal(5);
    let shared = rng.vec(steps * neurons);
    let mut corr = WindowedCorr::new(neurons, 3).unwrap();
    for _ in 0..40 {
        let target: Vec<f32> = shared.iter().map(|s| s + 0.2 * rng.next()).collect();
        corr.add_window(&shared, &target, None, steps).unwrap();
    }
    let matched = mean(&corr.finish()).unwrap();
    let chance = mean(&corr.finish_shifted()).unwrap();
    assert!(
        chance > 0.9 && (matched - chance).abs() < 0.02,
        "{matched} {chance}"
    );
}

/// The chance correlation computed by hand: prediction `i` against target
/// `(i + shift) mod n`, masks intersected.
fn shifted_by_hand(
    data: &[(Vec<f32>, Vec<f32>)],
    masks: &[Vec<bool>],
    neurons: usize,
    shift: usize,
) -> Vec<Option<f64>> {
    let n = data.len();
    let mut acc = CorrAccumulator::new(neurons);
    for i in 0..n {
        let j = (i + shift) % n;
        let mask: Vec<bool> = masks[i]
            .iter()
            .zip(&masks[j])
            .map(|(a, b)| *a && *b)
            .collect();
        acc.add(&data[i].0, &data[j].1, Some(&mask)).unwrap();
    }
    acc.finish()
}

#[test]
fn streamed_shifted_pairs_equal_the_pairs_made_by_hand() {
    let (steps, neurons) = (6, 3);
    for (windows, shift) in [(9, 1), (9, 4), (5, 7), (3, 2), (12, 12)] {
        let data = independent_windows(windows, steps, neurons);
        let masks: Vec<Vec<bool>> = (0..windows)
            .map(|w| (0..steps * neurons).map(|e| (e + w) % 4 != 0).collect())
            .collect();
        let mut corr = WindowedCorr::new(neurons, shift).unwrap();
        for ((pred, target), mask) in data.iter().zip(&masks) {
            corr.add_window(pred, target, Some(mask), steps).unwrap();
        }
        let streamed = corr.finish_shifted();
        if shift % windows == 0 {
            // Every window would meet itself: no chance level exists.
            assert_eq!(streamed, vec![None; neurons]);
            continue;
        }
        let expected = shifted_by_hand(&data, &masks, neurons, shift);
        for (a, b) in streamed.iter().zip(&expected) {
            assert!(
                (a.unwrap() - b.unwrap()).abs() < 1e-12,
                "{windows} {shift}: {a:?} {b:?}"
            );
        }
        // Asking twice gives the same answer: finishing does not consume.
        assert_eq!(corr.finish_shifted(), streamed);
    }
    let mut one = WindowedCorr::new(2, 1).unwrap();
    one.add_window(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 4.0], None, 2)
        .unwrap();
    assert_eq!(one.finish_shifted(), vec![None, None]);
}

#[test]
fn mean_and_median_ignore_undefined_neurons() {
    let rs = [Some(0.1), None, Some(0.5), Some(0.3), None];
    assert!((mean(&rs).unwrap() - 0.3).abs() < 1e-12);
    assert_eq!(median(&rs), Some(0.3));
    assert_eq!(median(&[Some(0.9), Some(0.1)]), Some(0.5));
    assert_eq!(mean(&[None]), None);
    assert_eq!(median(&[]), None);
}

// ---- plots ----

/// The number of points in each `<polyline>` of an SVG document.
fn polyline_lengths(svg: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|tag| {
            let start = tag.find("points=\"")? + "points=\"".len();
            let end = start + tag[start..].find('"')?;
            Some(tag[start..end].split_whitespace().count())
        })
        .collect()
}

/// The trimmed contents of every `<text>` element of an SVG document.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|tag| {
            let start = tag.find('>')? + 1;
            let end = tag.find("</text>")?;
            Some(tag.get(start..end)?.trim().to_string())
        })
        .collect()
}

fn has_text(svg: &str, text: &str) -> bool {
    texts(svg).iter().any(|t| t == text)
}

fn read_svg(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    assert!(
        text.trim_start().starts_with("<svg"),
        "{}",
        &text[..text.len().min(80)]
    );
    assert!(text.trim_end().ends_with("</svg>"));
    text
}

fn run_records(train_steps: u64, eval_every: u64) -> Vec<Record> {
    let mut records = Vec::new();
    for step in 1..=train_steps {
        records.push(
            Record::train(step)
                .with("loss", 2.0 / (step as f64).sqrt())
                .with("lr", 1e-3),
        );
        if step % eval_every == 0 {
            records.push(
                Record::eval(step, "val")
                    .with("loss", 2.2 / (step as f64).sqrt())
                    .with("corr", 0.4 - 0.3 / step as f64)
                    .with("corr_chance", 0.01),
            );
            records.push(Record::event(step, "checkpoint saved"));
        }
    }
    records
}

#[test]
fn plots_show_every_training_and_evaluation_point() {
    let dir = scratch("plots");
    let records = run_records(57, 10);
    let written = plot_run(&records, &dir).unwrap();
    assert_eq!(
        written,
        vec![dir.join("loss.svg"), dir.join("val_corr.svg")]
    );

    let loss = read_svg(&dir.join("loss.svg"));
    assert!(has_text(&loss, "step") && has_text(&loss, "loss (log scale)"));
    assert!(has_text(&loss, "Training loss") && has_text(&loss, "validation"));
    let lengths = polyline_lengths(&loss);
    assert!(lengths.contains(&57), "{lengths:?}");
    assert!(lengths.contains(&5), "{lengths:?}");
    // The validation points are also drawn as markers.
    assert!(loss.matches("<circle").count() >= 5);

    let corr = read_svg(&dir.join("val_corr.svg"));
    assert!(has_text(&corr, "mean correlation (r)") && has_text(&corr, "step"));
    assert!(has_text(&corr, "Validation correlation") && has_text(&corr, "chance"));
    assert_eq!(
        polyline_lengths(&corr).iter().filter(|&&n| n == 5).count(),
        2
    );
}

#[test]
fn without_evaluations_only_the_loss_is_plotted_on_a_linear_axis_if_needed() {
    let dir = scratch("plots-train-only");
    let mut records: Vec<Record> = (0..12)
        .map(|s| Record::train(s).with("loss", 1.0 - 0.2 * s as f64))
        .collect();
    // A diverged step is left out of the line rather than breaking it.
    records.push(Record::train(12).with("loss", f64::NAN));
    let written = plot_run(&records, &dir).unwrap();
    assert_eq!(written, vec![dir.join("loss.svg")]);
    assert!(!dir.join("val_corr.svg").exists());
    let loss = read_svg(&dir.join("loss.svg"));
    // Losses reach below zero, so the axis cannot be logarithmic.
    assert!(has_text(&loss, "loss") && !loss.contains("log scale"));
    assert!(!has_text(&loss, "validation"));
    assert!(polyline_lengths(&loss).contains(&12));
    assert!(plot_run(&[], &dir.join("empty")).unwrap().is_empty());
}

#[test]
fn a_plot_that_cannot_be_written_names_its_path() {
    let dir = scratch("plots-error");
    let blocker = dir.join("not-a-dir");
    fs::write(&blocker, "").unwrap();
    let error = plot_run(&run_records(5, 5), &blocker).unwrap_err();
    assert_eq!(error.path, blocker);
    assert!(error.to_string().contains("not-a-dir"));
}
