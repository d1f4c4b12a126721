//! Plots of a run, drawn from its metrics records as SVG.
//!
//! [`plot_run`] writes `loss.svg` (the training loss against step, with
//! the validation loss as points when the run evaluated) and, when there
//! are validation correlations, `val_corr.svg` (the mean correlation
//! against step, with the chance level measured on the same data). The SVG
//! backend writes labels as `<text>` elements, so no fonts are read and
//! the plots look the same on every machine.
//!
//! Values that are NaN or infinite (a diverged step) are left out of the
//! lines, since they have no place on an axis. Points are drawn in step
//! order whatever the order of the records.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::metrics::{Record, RecordKind};

/// The size of every plot, in pixels.
const SIZE: (u32, u32) = (900, 540);
/// The split whose evaluations are plotted.
const VAL: &str = "val";

/// A plot that could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotError {
    /// The file (or the output directory) concerned.
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write plot {}: {}",
            self.path.display(),
            self.message
        )
    }
}

impl std::error::Error for PlotError {}

/// One line on a plot: its legend name, points and how it is drawn.
struct Line {
    name: &'static str,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    /// Whether each point gets a marker (for sparse series such as
    /// evaluations).
    markers: bool,
}

/// What one plot shows.
struct Chart<'a> {
    title: &'a str,
    y_desc: &'a str,
    lines: Vec<Line>,
}

/// Writes the plots of `records` into `out_dir` (created if missing) and
/// returns the files written.
///
/// `loss.svg` is written when there is at least one finite loss, training
/// or validation; its y axis is logarithmic when every loss is positive.
/// `val_corr.svg` is written when some validation record has a `corr`
/// value, with a `corr_chance` line when those records have one.
/// Evaluation records count as validation when their `split` label is
/// `val` or when they have no split.
pub fn plot_run(records: &[Record], out_dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    fs::create_dir_all(out_dir).map_err(|e| PlotError {
        path: out_dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut written = Vec::new();

    let train_loss = series(records, RecordKind::Train, "loss");
    let val_loss = series(records, RecordKind::Eval, "loss");
    if !train_loss.is_empty() || !val_loss.is_empty() {
        let path = out_dir.join("loss.svg");
        let log = train_loss.iter().chain(&val_loss).all(|&(_, y)| y > 0.0);
        let chart = Chart {
            title: "Training loss",
            y_desc: if log { "loss (log scale)" } else { "loss" },
            lines: vec![
                Line {
                    name: "train",
                    points: train_loss,
                    color: RGBColor(31, 119, 180),
                    markers: false,
                },
                Line {
                    name: "validation",
                    points: val_loss,
                    color: RGBColor(214, 39, 40),
                    markers: true,
                },
            ],
        };
        draw(&path, &chart, log)?;
        written.push(path);
    }

    let corr = series(records, RecordKind::Eval, "corr");
    if !corr.is_empty() {
        let path = out_dir.join("val_corr.svg");
        let chart = Chart {
            title: "Validation correlation",
            y_desc: "mean correlation (r)",
            lines: vec![
                Line {
                    name: "model",
                    points: corr,
                    color: RGBColor(44, 160, 44),
                    markers: true,
                },
                Line {
                    name: "chance",
                    points: series(records, RecordKind::Eval, "corr_chance"),
                    color: RGBColor(127, 127, 127),
                    markers: false,
                },
            ],
        };
        draw(&path, &chart, false)?;
        written.push(path);
    }
    Ok(written)
}

/// The finite `(step, value)` points of `key` in records of `kind`
/// (validation only, for evaluations), sorted by step.
fn series(records: &[Record], kind: RecordKind, key: &str) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = records
        .iter()
        .filter(|r| r.kind == kind)
        .filter(|r| kind != RecordKind::Eval || r.label("split").is_none_or(|s| s == VAL))
        .filter_map(|r| Some((r.step as f64, r.get(key)?)))
        .filter(|(_, y)| y.is_finite())
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// The range that `values` span, widened by a margin so no point sits on
/// the frame, and made non-empty when every value is the same.
fn padded(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return if log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        // A margin of a fixed ratio looks the same at every magnitude.
        return (lo / 1.25, hi * 1.25);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad, hi + pad)
}

/// Draws `chart` into `path`, with a logarithmic y axis when `log`.
fn draw(path: &Path, chart: &Chart, log: bool) -> Result<(), PlotError> {
    let points = || chart.lines.iter().flat_map(|l| l.points.iter());
    let (x0, x1) = padded(points().map(|p| p.0), false);
    let (y0, y1) = padded(points().map(|p| p.1), log);
    if log {
        draw_with(path, chart, x0..x1, (y0..y1).log_scale())
    } else {
        draw_with(path, chart, x0..x1, y0..y1)
    }
}

/// Draws `chart` with the given y coordinate (linear or logarithmic); the
/// two kinds of axis are different types, hence the generic function.
fn draw_with<Y>(path: &Path, chart: &Chart, x: std::ops::Range<f64>, y: Y) -> Result<(), PlotError>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let fail = |e: &dyn std::fmt::Display| PlotError {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut context = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(|e| fail(&e))?;
    context
        .configure_mesh()
        .x_desc("step")
        .y_desc(chart.y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| fail(&e))?;
    let mut legend = false;
    for line in chart.lines.iter().filter(|l| !l.points.is_empty()) {
        let color = line.color;
        let series = LineSeries::new(line.points.iter().copied(), color.stroke_width(2))
            .point_size(if line.markers { 3 } else { 0 });
        context
            .draw_series(series)
            .map_err(|e| fail(&e))?
            .label(line.name)
            .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 20, py)], color));
        legend = true;
    }
    if legend {
        context
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_sorts_by_step_and_drops_non_finite_and_test_split_values() {
        let records = vec![
            Record::eval(20, "val").with("loss", 0.5),
            Record::eval(10, "val").with("loss", 0.7),
            Record::eval(15, "test").with("loss", 0.1),
            Record::eval(30, "val").with("loss", f64::NAN),
            Record::train(10).with("loss", 9.0),
        ];
        let points = series(&records, RecordKind::Eval, "loss");
        assert_eq!(points, vec![(10.0, 0.7), (20.0, 0.5)]);
    }

    #[test]
    fn padded_ranges_are_never_empty() {
        let (lo, hi) = padded([2.0, 2.0].into_iter(), false);
        assert!(lo < 2.0 && hi > 2.0);
        let (lo, hi) = padded([0.5, 4.0].into_iter(), true);
        assert!(lo > 0.0 && lo < 0.5 && hi > 4.0);
    }
}
