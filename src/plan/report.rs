//! `enigma plan`'s core: plan a checked experiment, validate the plan, and
//! summarise it for people.
//!
//! [`plan_experiment`] lowers the experiment for every rank of its mesh,
//! verifies the programs (`verify.rs`: a failure there is a planner bug,
//! reported as an error rather than a diagnostic), estimates memory and
//! time (`cost/`) and turns what the user can fix into diagnostics with
//! spans (`validate.rs`). [`summary`] is the human table; the CLI prints
//! it, or the YAML, JSON or DOT of `emit/`.

use std::fmt::Write;

use super::cost::{estimate, Cluster, Estimate};
use super::layout::Layout;
use super::lower::{lower, LowerError};
use super::program::{GroupKind, Instr, Plan};
use super::search::{search, Candidate};
use super::{validate, verify};
use crate::diagnostics::{Diagnostic, Error};
use crate::ir::layout::PipelineSchedule;
use crate::ir::stats::thousands;
use crate::ir::Experiment;

/// What to plan for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The number of processes of the job, when known.
    pub world: Option<usize>,
    pub cluster: Cluster,
    /// Also rank alternative layouts of the same number of ranks.
    pub search: bool,
}

/// The outcome of planning one experiment.
#[derive(Debug, Default)]
pub struct Planned {
    pub diagnostics: Vec<Diagnostic>,
    pub layout: Option<Layout>,
    pub plan: Option<Plan>,
    pub estimate: Option<Estimate>,
    /// Layouts that fit, fastest first (with `search`, or to suggest a fix
    /// for E0302).
    pub candidates: Vec<Candidate>,
    /// The cluster the estimates are for.
    pub cluster: Cluster,
}

/// Plans an experiment. `Err` is a planner bug (E0900): a plan that fails
/// its own verification, or a layout the checker accepted that the planner
/// cannot read.
pub fn plan_experiment(x: &Experiment, options: &Options) -> Result<Planned, Error> {
    let mut out = Planned {
        cluster: options.cluster.clone(),
        ..Planned::default()
    };
    let g = &x.graph;
    let spec = &x.parallel;
    let layout = Layout::of(spec)
        .map_err(|e| Error::internal(format!("cannot read the parallel block: {e}")))?;
    let ranks = layout.mesh.size();
    if let Some(world) = options.world {
        if let Some(d) = validate::world_size(spec, ranks, world) {
            out.diagnostics.push(d);
            out.layout = Some(layout);
            return Ok(out);
        }
    }
    let plan = match lower(g, &layout, None) {
        Ok(p) => p,
        Err(LowerError::Unsupported(what)) => {
            let setting = if what.contains("interleaved") {
                "pipeline_schedule"
            } else {
                ""
            };
            out.diagnostics
                .push(validate::unsupported(spec, &what, setting));
            return Ok(out);
        }
        // The checker reports a batch that does not divide (E0210) and
        // sizes the data does not bind; anything else is the planner's.
        Err(e) => return Err(Error::internal(format!("cannot lower the experiment: {e}"))),
    };
    verify::verify(&plan)
        .map_err(|e| Error::internal(format!("the plan fails its own verification: {e}")))?;
    let est = estimate(g, &plan, &options.cluster);
    if options.search || !est.fits {
        out.candidates = search(g, &layout, ranks, &options.cluster);
    }
    if !est.fits {
        if let Some(worst) = est
            .stages
            .iter()
            .max_by(|a, b| a.memory.total.total_cmp(&b.memory.total))
        {
            let m = &worst.memory;
            let gb = |b: f64| format!("{:.2} GB", b / 1e9);
            let breakdown = format!(
                "weights {}, gradients {}, optimizer state {}, activations {}, buffers {}",
                gb(m.params),
                gb(m.grads),
                gb(m.optimizer),
                gb(m.activations),
                gb(m.buffers)
            );
            let fix = out.candidates.first().map(|c| {
                format!(
                    "{} fits ({:.1} GB per GPU, {:.0} ms per step); `enigma plan --search` lists more",
                    c.describe(),
                    c.memory / 1e9,
                    c.step_s * 1e3
                )
            });
            out.diagnostics.push(validate::memory(
                spec,
                worst.rank,
                m.total,
                layout.device_memory,
                &breakdown,
                fix,
            ));
        }
    }
    if let Ok(group) = layout.mesh.group(0, &layout.tensor) {
        out.diagnostics.extend(validate::tensor_span(
            spec,
            &group,
            options.cluster.gpus_per_node,
        ));
    }
    let compute: Vec<f64> = est.stages.iter().map(|s| s.compute_s).collect();
    out.diagnostics.extend(validate::balance(spec, &compute));
    out.layout = Some(layout);
    out.plan = Some(plan);
    out.estimate = Some(est);
    Ok(out)
}

fn plural(n: usize, word: &str) -> String {
    match (n, word.ends_with('h')) {
        (1, _) => format!("1 {word}"),
        (_, true) => format!("{n} {word}es"),
        _ => format!("{n} {word}s"),
    }
}

/// A duration in the unit that shows it best: `3.37 s`, `54.5 ms`, `812 us`.
fn seconds(t: f64) -> String {
    if t >= 1.0 {
        format!("{t:.2} s")
    } else if t >= 1e-3 {
        format!("{:.1} ms", t * 1e3)
    } else {
        format!("{:.0} us", t * 1e6)
    }
}

fn gb(b: f64) -> String {
    format!("{:.2}", b / 1e9)
}

/// A layout in one line: `dp 64 (node, gpu) x tp 1 x pp 1, ZeRO-3 over gpu`.
pub fn describe_layout(l: &Layout) -> String {
    let axes = |a: &[String]| {
        if a.is_empty() {
            String::new()
        } else {
            format!(" ({})", a.join(", "))
        }
    };
    let mut s = format!(
        "dp {}{} x tp {}{} x pp {}{}",
        l.data_degree(),
        axes(&l.data),
        l.tensor_degree(),
        axes(&l.tensor),
        l.stages(),
        axes(&l.pipeline)
    );
    if l.sequence_parallel && l.tensor_degree() > 1 {
        s.push_str(", sequence parallel");
    }
    if l.zero > 0 {
        let _ = write!(s, ", ZeRO-{} over {}", l.zero, l.zero_axes.join(", "));
    }
    s
}

/// The human summary of a plan: the layout, a table with a row per
/// pipeline stage (its ranks, parameters, memory, time and
/// communication), the step estimate and, after a search, the ranking.
pub fn summary(planned: &Planned) -> String {
    let mut s = String::new();
    let (Some(plan), Some(est)) = (&planned.plan, &planned.estimate) else {
        return s;
    };
    let l = &plan.layout;
    let mesh: Vec<String> = l
        .mesh
        .axes()
        .iter()
        .map(|a| format!("{} {}", a.name, a.size))
        .collect();
    let _ = writeln!(
        s,
        "mesh: {} = {}",
        if mesh.is_empty() {
            "none".to_string()
        } else {
            mesh.join(" x ")
        },
        plural(l.mesh.size(), "rank")
    );
    let _ = writeln!(s, "layout: {}", describe_layout(l));
    let schedule = match l.schedule {
        PipelineSchedule::GPipe => "GPipe",
        _ => "1F1B",
    };
    let _ = writeln!(
        s,
        "batch: {} samples per step = {} per micro-batch x {} x {}; {} schedule{}",
        est.global_batch,
        plan.micro_batch,
        plural(plan.microbatches, "micro-batch"),
        plural(l.data_degree(), "replica"),
        schedule,
        if l.checkpoint_activations {
            ", activation checkpointing"
        } else {
            ""
        }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "stage  ranks  params/rank     weights  grads  optim  activ  buffers   total GB   compute  exposed comm  bubble  (ms)"
    );
    for row in &est.stages {
        let ranks = plan.ranks.iter().filter(|r| r.stage == row.stage).count();
        let params: i64 = plan
            .rank(row.rank)
            .map(|p| {
                p.params
                    .iter()
                    .map(|lp| lp.numel() * plan.placements[lp.placement].copies)
                    .sum()
            })
            .unwrap_or(0);
        let m = &row.memory;
        let _ = writeln!(
            s,
            "{:>5}  {:>5}  {:>13}  {:>8}  {:>5}  {:>5}  {:>5}  {:>7}  {:>9}  {:>8.1}  {:>12.1}  {:>6.1}",
            row.stage,
            ranks,
            thousands(params),
            gb(m.params),
            gb(m.grads),
            gb(m.optimizer),
            gb(m.activations),
            gb(m.buffers),
            gb(m.total),
            row.compute_s * 1e3,
            row.comm_exposed_s * 1e3,
            row.bubble_s * 1e3
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "communication per rank per step:");
    for row in &est.stages {
        let mut parts: Vec<String> = row
            .comm_bytes
            .iter()
            .map(|(k, b)| format!("{} {} GB", kind(*k), gb(*b)))
            .collect();
        if row.p2p_bytes > 0.0 {
            parts.push(format!("pipeline {} GB", gb(row.p2p_bytes)));
        }
        let ops = plan.rank(row.rank).map_or(0, |p| p.ops.len());
        let collectives = plan.rank(row.rank).map_or(0, |p| {
            p.ops
                .iter()
                .filter(|o| matches!(o, Instr::Collective(_)))
                .count()
        });
        let _ = writeln!(
            s,
            "  stage {}: {} ({} ops, {} collectives)",
            row.stage,
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            },
            ops,
            collectives
        );
    }
    let _ = writeln!(s);
    let peak = est
        .stages
        .iter()
        .map(|r| r.memory.total)
        .fold(0.0, f64::max);
    let _ = writeln!(
        s,
        "memory: peak {} GB of {} GB per device: {}",
        gb(peak),
        gb(l.device_memory),
        if est.fits { "fits" } else { "does not fit" }
    );
    let _ = writeln!(
        s,
        "step: {}; {} tokens/s ({} tokens per sample); MFU {:.1}%",
        seconds(est.step_s),
        thousands(est.tokens_per_s.round() as i64),
        est.tokens_per_sample,
        est.mfu * 100.0
    );
    let _ = writeln!(
        s,
        "  MFU = model FLOPs per step ({:.3e}: 3 x forward FLOPs x {} samples, recomputation not counted) / (step time x {} x {:.0} TFLOP/s peak)",
        est.model_flops,
        est.global_batch,
        plural(l.mesh.size(), "GPU"),
        planned.cluster.peak_flops / 1e12
    );
    for n in &est.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    if !planned.candidates.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "layouts of {} ranks that fit, fastest first:",
            l.mesh.size()
        );
        let _ = writeln!(s, "  #  {:<52}  step ms  memory GB  MFU", "layout");
        for (i, c) in planned.candidates.iter().take(5).enumerate() {
            let _ = writeln!(
                s,
                "{:>3}  {:<52}  {:>7.1}  {:>9.2}  {:>4.1}%",
                i + 1,
                c.describe(),
                c.step_s * 1e3,
                c.memory / 1e9,
                c.mfu * 100.0
            );
        }
        if let Some(why) = planned.candidates.first().and_then(|c| c.why.clone()) {
            let _ = writeln!(s, "  why #1: {why}");
        }
    }
    s
}

fn kind(k: GroupKind) -> &'static str {
    k.as_str()
}
