//! The built-in baselines (`enigma baseline`, `run::baseline`) on data
//! whose structure is known: units that share one slow latent signal, so
//! that the other units at the same step predict a hidden entry well, a
//! unit's own neighbouring steps predict it less well, and its mean not at
//! all. And on the real suite2p recording, through the command line.

#[path = "common/checked.rs"]
mod checked;
#[path = "common/npy.rs"]
mod npy;
#[path = "common/real.rs"]
mod real_data;

use std::path::{Path, PathBuf};

use enigma::dataset::loader::Dataset;
use enigma::run::baseline::{baselines, Method, Report};

/// Steps of the recording (10 Hz) and its units.
const STEPS: usize = 3000;
const UNITS: usize = 6;

/// A directory holding `act.npy`: `[T, N]`, each unit a gain times a slow
/// latent plus an offset and a little noise (a fixed pseudo-random
/// sequence, so the figures are the same on every machine).
fn recording(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enigma-baselines-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut latent = 0.0f64;
    let mut values = Vec::with_capacity(STEPS * UNITS);
    for _ in 0..STEPS {
        // An AR(1) latent with a time constant of about 10 steps.
        latent = 0.9 * latent + noise();
        for u in 0..UNITS {
            let gain = 1.0 + u as f64 * 0.3;
            values.push((gain * latent + u as f64 + 0.05 * noise()) as f32);
        }
    }
    npy::write_f32(&dir.join("act.npy"), &[STEPS, UNITS], &values);
    dir
}

/// An experiment over the recording whose model is scored on the entries
/// its masked tokenizer hides.
fn experiment(dir: &Path, mask: &str) -> PathBuf {
    let text = format!(
        "use std::nn::{{Transformer}}
use std::tokenize::{{UnitValues}}
use std::readout::{{PerUnit}}
use std::losses::{{mse}}

dim T = 4s
dim N per session
dim d = 16

data rec = npy(\"act.npy\", axes: [T, N], rate: 10Hz) {{
  window: T
  stride: 2s
  split: by_time(train: 0.6, val: 0.2, test: 0.2)
}}

modality act: series<f32>[T @ 10Hz, N] from rec

tokenizer ut = UnitValues(d: d, {mask})(act)

model m {{
  let h = Transformer(layers: 1, d: d, heads: 2)(ut)
  predict act = PerUnit(d: d)(h, act)
}}

loss mse(m.act, act) {{ masked_only: true }}

train {{
  optimizer: adamw(lr: 1e-3)
  steps: 10
  batch: 8
  eval {{ every: 10, batches: 3 }}
}}
"
    );
    let path = dir.join("main.enigma");
    std::fs::write(&path, text).unwrap();
    path
}

fn report(path: &Path) -> Report {
    let x = checked::experiment(path);
    let ds = Dataset::open(x.data.as_ref().unwrap()).unwrap();
    baselines(&x, &ds).unwrap()
}

fn row<'r>(r: &'r Report, name: &str) -> &'r enigma::run::baseline::Row {
    r.rows
        .iter()
        .find(|row| row.name == name)
        .unwrap_or_else(|| panic!("no `{name}` in {:?}", r.rows))
}

#[test]
fn other_units_predict_a_hidden_entry_better_than_its_own_past_and_its_mean() {
    let dir = recording("entries");
    let r = report(&experiment(&dir, "mask: 0.25"));
    let (mean, smooth, ridge) = (
        row(&r, "unit mean"),
        row(&r, "smoothing"),
        row(&r, "ridge, same step"),
    );
    // The evaluation is the run's: 3 batches of 8 windows of each split.
    assert_eq!((r.batch, r.batches), (8, 3));
    assert_eq!(ridge.val.windows, 24);
    // A constant per unit has no correlation within a session.
    assert_eq!(mean.val.corr, None);
    let corr = |s: &enigma::run::eval::Scores| s.corr.unwrap();
    assert!(corr(&ridge.val) > 0.95, "{r:?}");
    assert!(corr(&ridge.test) > 0.95, "{r:?}");
    assert!(
        corr(&smooth.val) > 0.5 && corr(&smooth.val) < corr(&ridge.val),
        "{r:?}"
    );
    // Each window against a distant window's target: near zero.
    assert!(ridge.val.chance.unwrap().abs() < 0.5, "{r:?}");
    // The loss is the experiment's (mse on the hidden entries) and orders
    // the baselines as the correlation does.
    assert!(
        ridge.val.loss < smooth.val.loss && smooth.val.loss < mean.val.loss,
        "{r:?}"
    );
    // The setting was chosen on validation among the grid.
    assert!(matches!(ridge.method, Method::Ridge { lags: 0, .. }));
    assert!(
        r.best().is_some_and(|b| b.name.starts_with("ridge")),
        "{r:?}"
    );
    // Seeded masks: the same figures again.
    assert_eq!(report(&experiment(&dir, "mask: 0.25")), r);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn whole_unit_masks_leave_no_own_values_to_smooth() {
    let dir = recording("units");
    let r = report(&experiment(&dir, "mask: 0.34, whole_units: true"));
    assert!(r.rows.iter().all(|row| row.name != "smoothing"), "{r:?}");
    let why = r
        .skipped
        .iter()
        .find(|(name, _)| *name == "smoothing")
        .map(|(_, why)| why.as_str());
    assert!(
        why.is_some_and(|w| w.contains("whole units")),
        "{:?}",
        r.skipped
    );
    // Two of six units hidden: the other four still carry the latent.
    assert!(
        row(&r, "ridge, same step").val.corr.unwrap() > 0.95,
        "{r:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory holding `stim.npy` (`[T, 3]`, three independent AR(1)
/// stimulus channels) and `act.npy` (`[T, N]`, each unit following one
/// channel one step late, plus noise): the stimulus predicts a hidden unit,
/// the other units only through the channel they share.
fn driven(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enigma-baselines-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut channel = [0.0f64; 3];
    let (mut stim, mut act) = (Vec::new(), Vec::new());
    for _ in 0..STEPS {
        let last = channel;
        for c in &mut channel {
            *c = 0.5 * *c + noise();
        }
        stim.extend(channel.iter().map(|&c| c as f32));
        for u in 0..UNITS {
            act.push((2.0 * last[u % 3] + 0.1 * noise()) as f32);
        }
    }
    npy::write_f32(&dir.join("stim.npy"), &[STEPS, 3], &stim);
    npy::write_f32(&dir.join("act.npy"), &[STEPS, UNITS], &act);
    dir
}

#[test]
fn a_stimulus_predicts_the_units_it_drives_through_its_own_baseline() {
    let dir = driven("stimulus");
    let text = "use std::nn::{Transformer}
use std::tokenize::{UnitValues, ScalarSteps}
use std::readout::{PerUnit}
use std::losses::{mse}

dim T = 4s
dim N per session
dim d = 16

data rec = npy(\"act.npy\", axes: [T, N], rate: 10Hz) {
  window: T
  stride: 2s
  split: by_time(train: 0.6, val: 0.2, test: 0.2)
}
data st = npy(\"stim.npy\", axes: [T, 3], rate: 10Hz) {
  window: T
  stride: 2s
  split: by_time(train: 0.6, val: 0.2, test: 0.2)
}

modality act: series<f32>[T @ 10Hz, N] from rec
modality stim: series<f32>[T @ 10Hz, 3] from st

tokenizer ut = UnitValues(d: d, mask: 0.34, whole_units: true)(act)
tokenizer stt = ScalarSteps(d: d)(stim)

model m {
  let h = Transformer(layers: 1, d: d, heads: 2)(concat[seq](stt, ut))
  predict act = PerUnit(d: d)(h[ut], act)
}

loss mse(m.act, act) { masked_only: true }

train {
  optimizer: adamw(lr: 1e-3)
  steps: 10
  batch: 8
  eval { every: 10, batches: 3 }
}
";
    let path = dir.join("main.enigma");
    std::fs::write(&path, text).unwrap();
    let r = report(&path);
    let stim = row(&r, "stimulus/behavior");
    assert!(matches!(stim.method, Method::Covariates { .. }));
    let corr = |s: &enigma::run::eval::Scores| s.corr.unwrap();
    // The driving channel one step back explains all but the noise.
    assert!(corr(&stim.val) > 0.95, "{r:?}");
    assert!(corr(&stim.test) > 0.95, "{r:?}");
    assert!(stim.val.loss < row(&r, "unit mean").val.loss, "{r:?}");
    // The other units follow the same channels at the same lag, so the
    // ridge from them does well too, but never knows the fresh noise of
    // the channel a hidden unit alone follows; the stimulus is best.
    assert_eq!(r.best().map(|b| b.name), Some("stimulus/behavior"), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_stimulus_or_behaviour_its_baseline_says_why_not() {
    let dir = recording("nostim");
    let r = report(&experiment(&dir, "mask: 0.25"));
    let why = r
        .skipped
        .iter()
        .find(|(name, _)| *name == "stimulus/behavior")
        .map(|(_, why)| why.as_str());
    assert!(
        why.is_some_and(|w| w.contains("no stimulus or behaviour")),
        "{:?}",
        r.skipped
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_prints_the_table_for_the_real_calcium_recording() {
    let (path, _) = real_data::real_example("suite2p_calcium", "baseline-suite2p");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enigma"))
        .args(["baseline", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("val corr") && text.contains("test corr"),
        "{text}"
    );
    for name in ["unit mean", "ridge, same step", "ridge, one lag"] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
    }
    // suite2p hides whole cells, so there is nothing of their own to smooth.
    assert!(text.contains("smoothing: not applicable"), "{text}");
    assert!(
        text.contains("best baseline on validation: ridge"),
        "{text}"
    );
}
