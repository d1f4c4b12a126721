//! Training examples from recordings: windows of the declared length,
//! split into train, validation and test, and the order an epoch visits
//! them in.
//!
//! A `data` block's `window: T`, `stride: 1s` and `split: by_time(...)` or
//! `split: by_session(...)` become a [`WindowSpec`]; given each session's
//! duration, [`windows`] lists every window of every split. By time, each
//! session's timeline is cut into contiguous blocks in the split's
//! fractions (train first), and a window never straddles two blocks, so no
//! sample of the validation or test data is seen in training. By session,
//! whole sessions go to each split.
//!
//! Window starts lie on a *grid*: a duration in which every modality of the
//! source has a whole number of samples (half a second for 30 Hz video and
//! 8 Hz responses), so a window is the same samples for each modality.
//!
//! [`epoch_order`] is the order an epoch visits a split's windows: a
//! Fisher-Yates shuffle driven by SplitMix64 from the seed and the epoch
//! number, so the loader's position (epoch, index) is all a checkpoint
//! needs to resume exactly, on any machine.

use std::fmt;

use crate::ir::data::{Split, SplitRule};

/// A source's window settings, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowSpec {
    pub length: f64,
    pub stride: f64,
    /// Window starts are multiples of this.
    pub grid: f64,
    pub rule: SplitRule,
}

/// One example: a session and where its window starts, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub session: usize,
    pub start: f64,
}

/// The windows of each split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Splits {
    pub train: Vec<Window>,
    pub val: Vec<Window>,
    pub test: Vec<Window>,
}

impl Splits {
    pub fn get(&self, split: Split) -> &[Window] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }

    fn get_mut(&mut self, split: Split) -> &mut Vec<Window> {
        match split {
            Split::Train => &mut self.train,
            Split::Val => &mut self.val,
            Split::Test => &mut self.test,
        }
    }
}

/// Why windows cannot be made.
#[derive(Clone, Debug, PartialEq)]
pub enum WindowError {
    /// A length, stride or grid that is not a positive number of seconds,
    /// or that the grid does not divide.
    Setting(String),
    /// Fractions that are negative or do not add up to 1.
    Fractions([f64; 3]),
    /// A split with a share of the data gets no window.
    Empty(Split),
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::Setting(m) => f.write_str(m),
            WindowError::Fractions([a, b, c]) => write!(
                f,
                "split fractions must be at least 0 and add up to 1, but train {a} + val {b} + test {c} = {}",
                a + b + c
            ),
            WindowError::Empty(s) => write!(
                f,
                "the {s:?} split has a share of the data but no whole window fits in it; use shorter windows or a larger share"
            ),
        }
    }
}

impl std::error::Error for WindowError {}

const SPLITS: [Split; 3] = [Split::Train, Split::Val, Split::Test];

/// Whether `x` is a whole multiple of `unit` (to a part in a million).
fn multiple(x: f64, unit: f64) -> bool {
    let r = x / unit;
    (r - r.round()).abs() < 1e-6
}

/// Every window of every split, given each session's duration in seconds.
pub fn windows(durations: &[f64], spec: &WindowSpec) -> Result<Splits, WindowError> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(WindowError::Setting(format!(
                "the {name} must be a positive duration, not {v} s"
            )))
        }
    };
    positive("window", spec.length)?;
    positive("stride", spec.stride)?;
    positive("grid", spec.grid)?;
    for (name, v) in [("window", spec.length), ("stride", spec.stride)] {
        if !multiple(v, spec.grid) {
            return Err(WindowError::Setting(format!(
                "the {name} ({v} s) is not a whole number of samples of every modality (multiples of {} s)",
                spec.grid
            )));
        }
    }
    let fractions = match spec.rule {
        SplitRule::ByTime(f) | SplitRule::BySession(f) => f,
    };
    if fractions.iter().any(|f| !(f.is_finite() && *f >= 0.0))
        || (fractions.iter().sum::<f64>() - 1.0).abs() > 1e-6
    {
        return Err(WindowError::Fractions(fractions));
    }
    let mut out = Splits::default();
    // Blocks of time: (session, split, start, end).
    let mut blocks: Vec<(usize, Split, f64, f64)> = Vec::new();
    match spec.rule {
        SplitRule::ByTime(f) => {
            for (session, &d) in durations.iter().enumerate() {
                let mut at = 0.0;
                for (k, split) in SPLITS.iter().enumerate() {
                    // Boundaries on the grid, so that the blocks tile the
                    // session without sharing a sample.
                    let end = if k == 2 {
                        d
                    } else {
                        let cut: f64 = f[..=k].iter().sum::<f64>() * d;
                        (cut / spec.grid).floor() * spec.grid
                    };
                    blocks.push((session, *split, at, end));
                    at = end;
                }
            }
        }
        SplitRule::BySession(f) => {
            for (session, split) in assign_sessions(durations.len(), f).into_iter().enumerate() {
                blocks.push((session, split, 0.0, durations[session]));
            }
        }
    }
    for (session, split, start, end) in blocks {
        let mut k = 0u64;
        loop {
            let s = start + k as f64 * spec.stride;
            if s + spec.length > end + 1e-9 {
                break;
            }
            out.get_mut(split).push(Window { session, start: s });
            k += 1;
        }
    }
    for (split, f) in SPLITS.iter().zip(fractions) {
        if f > 0.0 && out.get(*split).is_empty() {
            return Err(WindowError::Empty(*split));
        }
    }
    Ok(out)
}

/// Sessions to splits by the largest-remainder method, in session order,
/// with at least one session for every split that has a share when there
/// are enough sessions.
fn assign_sessions(n: usize, f: [f64; 3]) -> Vec<Split> {
    let mut counts: Vec<usize> = f.iter().map(|x| (x * n as f64).floor() as usize).collect();
    let mut rest: Vec<(usize, f64)> = f
        .iter()
        .enumerate()
        .map(|(k, x)| (k, x * n as f64 - counts[k] as f64))
        .collect();
    rest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut left = n.saturating_sub(counts.iter().sum());
    for (k, _) in rest {
        if left == 0 {
            break;
        }
        counts[k] += 1;
        left -= 1;
    }
    for k in 0..3 {
        if f[k] > 0.0 && counts[k] == 0 {
            if let Some(big) = (0..3).filter(|&j| counts[j] > 1).max_by_key(|&j| counts[j]) {
                counts[big] -= 1;
                counts[k] += 1;
            }
        }
    }
    SPLITS
        .iter()
        .zip(counts)
        .flat_map(|(s, c)| std::iter::repeat_n(*s, c))
        .collect()
}

/// SplitMix64: a tiny generator whose output is fixed by its definition
/// (Steele, Lea and Flood 2014), so shuffles never change with a crate.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The order in which epoch `epoch` visits `n` windows.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut state = seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // Multiply-shift maps 64 random bits onto 0..=i without a modulo's
        // bias worth mentioning at these sizes.
        let j = ((u128::from(splitmix(&mut state)) * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rule: SplitRule) -> WindowSpec {
        WindowSpec {
            length: 2.0,
            stride: 1.0,
            grid: 0.5,
            rule,
        }
    }

    #[test]
    fn by_time_cuts_each_session_into_blocks_no_window_straddles() {
        let s = windows(&[100.0, 60.0], &spec(SplitRule::ByTime([0.8, 0.1, 0.1]))).unwrap();
        // Session 0: train [0, 80) holds starts 0..=78, val [80, 90) 80..=88,
        // test [90, 100) 90..=98; session 1: [0, 48), [48, 54), [54, 60).
        assert_eq!(s.train.len(), 79 + 47);
        assert_eq!(s.val.len(), 9 + 5);
        assert_eq!(s.test.len(), 9 + 5);
        let inside = |w: &Window, lo: f64, hi: f64| w.start >= lo && w.start + 2.0 <= hi;
        assert!(s
            .val
            .iter()
            .filter(|w| w.session == 0)
            .all(|w| inside(w, 80.0, 90.0)));
        assert!(s
            .train
            .iter()
            .filter(|w| w.session == 1)
            .all(|w| inside(w, 0.0, 48.0)));
        // Every start is on the grid.
        assert!(s.train.iter().all(|w| multiple(w.start, 0.5)));
    }

    #[test]
    fn by_session_gives_whole_sessions_and_every_split_one() {
        assert_eq!(
            assign_sessions(2, [0.8, 0.2, 0.0]),
            [Split::Train, Split::Val]
        );
        assert_eq!(
            assign_sessions(10, [0.8, 0.1, 0.1]),
            [[Split::Train; 8].as_slice(), &[Split::Val], &[Split::Test]].concat()
        );
        let s = windows(
            &[10.0, 10.0, 10.0],
            &spec(SplitRule::BySession([0.6, 0.4, 0.0])),
        )
        .unwrap();
        assert!(s.train.iter().all(|w| w.session < 2));
        assert!(s.val.iter().all(|w| w.session == 2));
        assert!(s.test.is_empty());
    }

    #[test]
    fn bad_settings_are_errors() {
        let mut bad = spec(SplitRule::ByTime([0.8, 0.1, 0.2]));
        assert!(matches!(
            windows(&[10.0], &bad),
            Err(WindowError::Fractions(_))
        ));
        bad.rule = SplitRule::ByTime([0.8, 0.2, 0.0]);
        bad.length = 0.3;
        assert!(matches!(
            windows(&[10.0], &bad),
            Err(WindowError::Setting(_))
        ));
        bad.length = f64::NAN;
        assert!(matches!(
            windows(&[10.0], &bad),
            Err(WindowError::Setting(_))
        ));
        // 2 s of validation in a 10 s session cannot hold a 4 s window.
        bad.length = 4.0;
        let err = windows(&[10.0], &bad).unwrap_err();
        assert_eq!(err, WindowError::Empty(Split::Val));
        assert!(err.to_string().contains("no whole window"));
    }

    #[test]
    fn epochs_shuffle_deterministically_and_differently() {
        let a = epoch_order(100, 7, 0);
        assert_eq!(a, epoch_order(100, 7, 0));
        assert_ne!(a, epoch_order(100, 7, 1));
        assert_ne!(a, epoch_order(100, 8, 0));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        assert!(epoch_order(0, 1, 0).is_empty());
    }

    /// The generator is SplitMix64 as published: from state 0 its first
    /// outputs are the reference implementation's.
    #[test]
    fn splitmix_matches_the_reference() {
        let mut state = 0;
        assert_eq!(splitmix(&mut state), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix(&mut state), 0x6E78_9E6A_A1B9_65F4);
    }
}
