//! The training progress on standard error: step out of total, loss,
//! learning rate, steps per second and the time left.
//!
//! On a terminal it is a bar. Without one (Slurm, `nohup`, CI) a bar would
//! draw nothing, so one plain line is printed every `every` steps instead,
//! which a log file keeps:
//!
//! ```text
//! step 200/2000 · loss 0.5312 · lr 2.90e-03 · 3.10 steps/s · eta 9:40
//! ```
//!
//! `--quiet` shows neither. The bar is a thin layer over an indicatif
//! [`ProgressBar`]. Throughput and the
//! estimate of the time left are computed here from the steps taken since
//! this process started (not since step zero), so a resumed run reports
//! its own speed rather than an average that counts the earlier run's
//! steps as instantaneous.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The layout of the bar; the message carries the metrics.
const TEMPLATE: &str = "[{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}";

/// How the progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// A bar redrawn in place (standard error is a terminal).
    Bar,
    /// A plain line every `every` steps and at the last step.
    Lines { every: u64 },
    /// Nothing (`--quiet`).
    Quiet,
}

impl Display {
    /// The display for a run of `total` steps: a bar on a terminal, else
    /// lines every `every` steps (by default about twenty lines a run, at
    /// least every 100 steps), nothing when `quiet`.
    pub fn choose(quiet: bool, terminal: bool, every: Option<u64>, total: u64) -> Display {
        match (quiet, terminal) {
            (true, _) => Display::Quiet,
            (false, true) => Display::Bar,
            (false, false) => Display::Lines {
                every: every.unwrap_or((total / 20).clamp(1, 100)).max(1),
            },
        }
    }
}

/// The progress of a training run.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    display: Display,
    start_step: u64,
    started: Instant,
}

impl Progress {
    /// A bar for a run of `total_steps` that starts (or resumes) at
    /// `start_step`, shown as `display` says. Without a bar nothing is
    /// drawn, but the position and the message are still tracked.
    pub fn new(total_steps: u64, start_step: u64, display: Display) -> Progress {
        let target = if display == Display::Bar {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total_steps), target);
        // The template is a constant, so it cannot fail to parse; falling
        // back to the default style keeps this free of panics regardless.
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_position(start_step);
        Progress {
            bar,
            display,
            start_step,
            started: Instant::now(),
        }
    }

    /// Moves the bar to `step` (the number of steps completed) and shows
    /// the latest loss and learning rate with the throughput and the time
    /// left.
    pub fn update(&self, step: u64, loss: f64, lr: f64) {
        self.bar.set_position(step);
        let rate = self.steps_per_second(step);
        let total = self.bar.length().unwrap_or(step);
        let mut message = format!("loss {loss:.4} · lr {lr:.2e}");
        if let Some(rate) = rate {
            message.push_str(&format!(" · {rate:.2} steps/s"));
            let left = total.saturating_sub(step) as f64 / rate;
            // `try_from` refuses what `from_secs_f64` would panic on: a
            // time left too long for a `Duration` at a near-zero rate.
            if let Ok(left) = Duration::try_from_secs_f64(left) {
                message.push_str(&format!(" · eta {}", clock(left)));
            }
        }
        self.bar.set_message(message);
        if let Display::Lines { every } = self.display {
            if step.is_multiple_of(every) || step == total {
                self.println(&format!("step {step}/{total} · {}", self.bar.message()));
            }
        }
    }

    /// Prints `msg` on its own line unless the run is quiet: an
    /// evaluation's result, a checkpoint.
    pub fn note(&self, msg: &str) {
        if self.display != Display::Quiet {
            self.println(msg);
        }
    }

    /// Steps per second since this process started, once it has taken at
    /// least one step.
    fn steps_per_second(&self, step: u64) -> Option<f64> {
        let taken = step.checked_sub(self.start_step).filter(|&n| n > 0)?;
        let secs = self.started.elapsed().as_secs_f64();
        (secs > 0.0).then(|| taken as f64 / secs)
    }

    /// Prints `msg` on its own line above the bar (an evaluation result, a
    /// checkpoint). When the bar is hidden the line still goes to standard
    /// error, so logs of runs without a terminal keep it; a `--quiet` run
    /// should not call this.
    pub fn println(&self, msg: &str) {
        self.bar.suspend(|| {
            // A closed standard error is not worth stopping training for.
            let _ = writeln!(std::io::stderr(), "{msg}");
        });
    }

    /// The step the bar shows.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// The metrics text shown after the bar.
    pub fn message(&self) -> String {
        self.bar.message()
    }

    /// Stops the bar and leaves it drawn where it is. indicatif's own
    /// `finish` would jump to the total, which misreports a run stopped
    /// early by a signal; `abandon` keeps the real position.
    pub fn finish(&self) {
        self.bar.abandon();
    }
}

/// `h:mm:ss`, or `m:ss` under an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_bar_tracks_position_and_metrics() {
        let progress = Progress::new(1000, 200, Display::Quiet);
        assert_eq!(progress.position(), 200);
        std::thread::sleep(Duration::from_millis(5));
        progress.update(250, 0.5312, 2.9e-3);
        assert_eq!(progress.position(), 250);
        let message = progress.message();
        assert!(message.contains("loss 0.5312"), "{message}");
        assert!(
            message.contains("steps/s") && message.contains("eta"),
            "{message}"
        );
        progress.finish();
        assert_eq!(progress.position(), 250);
    }

    #[test]
    fn no_rate_before_the_first_step_of_this_process() {
        let progress = Progress::new(10, 4, Display::Quiet);
        progress.update(4, 1.0, 1e-3);
        assert!(!progress.message().contains("steps/s"));
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(clock(Duration::from_secs(65)), "1:05");
    }

    #[test]
    fn lines_come_every_n_steps_and_at_the_end_unless_quiet() {
        assert_eq!(Display::choose(true, false, None, 2000), Display::Quiet);
        assert_eq!(Display::choose(false, true, Some(5), 2000), Display::Bar);
        assert_eq!(
            Display::choose(false, false, None, 2000),
            Display::Lines { every: 100 }
        );
        assert_eq!(
            Display::choose(false, false, None, 60),
            Display::Lines { every: 3 }
        );
        assert_eq!(
            Display::choose(false, false, Some(0), 60),
            Display::Lines { every: 1 }
        );
    }
}
