//! What each rank measured about itself, beside what the planner
//! estimated for it: `ranks/rank-NNNNN.json` in the run directory.
//!
//! ```json
//! {"rank": 2, "stage": 1, "coords": {"stage": 1, "tp": 0}, "device": "cpu",
//!  "steps": 20, "step_s": {"median": 0.41, "mean": 0.43},
//!  "memory": {"rss_start_bytes": 612000000, "peak_rss_bytes": 731000000,
//!             "peak_since_start": true},
//!  "estimate": {"memory_bytes": 98000000, "params_bytes": 320000, ...,
//!               "activations_bytes": 97000000, "step_s": 0.000126}}
//! ```
//!
//! Every rank writes its own file when its training ends, so a job's files
//! together give the per-rank peak memory and step time that
//! `docs/benchmarks.md` sets beside `enigma plan`'s estimates. On the CPU
//! the memory is the process's resident set, from `/proc/self/status`:
//! `VmRSS` when training starts (the weights and optimiser state placed, the
//! data opened), with the high-water mark reset then (`/proc/self/
//! clear_refs`), and the highest `VmHWM` of the training steps: read
//! before each evaluation and at the end, and reset after each evaluation,
//! so an evaluation's batch (larger than a pipeline's micro-batch) does not
//! count. The growth between the two is what training adds: activations,
//! gradients and communication buffers, which the estimate's parts of the
//! same names count (with the loader's prefetched batches and libtorch's
//! temporaries on top). The median step time leaves out the first step
//! (warm-up) when there are others.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::diagnostics::{Error, ErrorKind};
use crate::plan::cost::MemoryCost;
use crate::plan::program::{Plan, RankProgram};

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`), where Linux
/// provides it.
pub fn status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the process's resident-set high-water mark (`VmHWM`) to its
/// current size, so that a later reading is the peak since now; false
/// where Linux does not allow it.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// What one rank measured.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub device: String,
    /// Seconds of each step this run took.
    pub step_s: Vec<f64>,
    /// The resident set when training started, and its peak since then
    /// (since the process started where the peak could not be reset).
    pub rss_start: Option<u64>,
    pub peak_rss: Option<u64>,
    /// Whether the peak was reset when training started.
    pub peak_since_start: bool,
}

/// The median of `xs` without the first (warm-up) when there are others.
fn steady_median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = if xs.len() > 1 {
        xs[1..].to_vec()
    } else {
        xs.to_vec()
    };
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The path of `rank`'s record in run directory `dir`.
pub fn path(dir: &Path, rank: usize) -> PathBuf {
    dir.join("ranks").join(format!("rank-{rank:05}.json"))
}

/// Writes `program`'s record: what it measured, and the plan's estimate of
/// its memory (`memory`) and of the step time (`step_s`).
pub fn write(
    dir: &Path,
    plan: &Plan,
    program: &RankProgram,
    measured: &Measured,
    memory: Option<MemoryCost>,
    step_s: Option<f64>,
) -> Result<PathBuf, Error> {
    let coords: serde_json::Map<String, serde_json::Value> = plan
        .layout
        .mesh
        .axes()
        .iter()
        .zip(&program.coords)
        .map(|(a, &c)| (a.name.clone(), json!(c)))
        .collect();
    let n = measured.step_s.len().max(1) as f64;
    let record = json!({
        "rank": program.rank,
        "stage": program.stage,
        "coords": coords,
        "device": measured.device,
        "steps": measured.step_s.len(),
        "step_s": {
            "median": steady_median(&measured.step_s),
            "mean": measured.step_s.iter().sum::<f64>() / n,
        },
        "memory": {
            "rss_start_bytes": measured.rss_start,
            "peak_rss_bytes": measured.peak_rss,
            "peak_since_start": measured.peak_since_start,
        },
        "estimate": {
            "memory_bytes": memory.map(|m| m.total),
            "params_bytes": memory.map(|m| m.params),
            "grads_bytes": memory.map(|m| m.grads),
            "optimizer_bytes": memory.map(|m| m.optimizer),
            "activations_bytes": memory.map(|m| m.activations),
            "buffers_bytes": memory.map(|m| m.buffers),
            "step_s": step_s,
        },
    });
    let p = path(dir, program.rank);
    let io = |e: std::io::Error| Error::new(ErrorKind::Io, format!("{}: {e}", p.display()));
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(&p, format!("{record}\n")).map_err(io)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_leaves_out_the_warm_up_step() {
        assert_eq!(steady_median(&[9.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(steady_median(&[9.0, 1.0, 3.0]), Some(2.0));
        assert_eq!(steady_median(&[5.0]), Some(5.0));
        assert_eq!(steady_median(&[]), None);
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        let rss = status_bytes("VmRSS").unwrap();
        let peak = status_bytes("VmHWM").unwrap();
        assert!(rss > 0 && peak >= rss, "{rss} {peak}");
        assert_eq!(status_bytes("NoSuchField"), None);
    }
}
