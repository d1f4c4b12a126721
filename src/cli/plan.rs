//! `enigma plan FILE`: check an experiment, lower it to every rank's
//! program, and print the plan: a summary table for people, or the whole
//! per-rank graphs as YAML or JSON, or Graphviz DOT of the mesh and the
//! pipeline schedule. `--search` adds the fastest layouts that fit.

use std::path::Path;

use super::output::Output;
use super::{UsageError, EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::driver::{compile_with, Goal, Options};
use crate::plan::cost::{Cluster, Link};
use crate::plan::report::{summary, Options as PlanOptions};
use crate::resolve::{Options as ResolveOptions, Stdlib};
use crate::source::FsLoader;

/// What `enigma plan --emit` prints instead of the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanEmit {
    /// Every rank's program, as YAML.
    Yaml,
    /// Every rank's program, as JSON.
    Json,
    /// The mesh and the pipeline schedule, as Graphviz DOT.
    Dot,
}

/// The cluster the estimates assume, as the command line sets it.
#[derive(clap::Args, Clone, Debug)]
pub struct ClusterArgs {
    /// GPUs per node: groups within a node use NVLink, others the network.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub gpus_per_node: usize,
    /// Dense bf16 peak of one GPU, in TFLOP/s (H100 SXM: 989).
    #[arg(long, value_name = "TFLOPS", default_value_t = 989.0)]
    pub peak_tflops: f64,
    /// The fraction of peak that compute runs at.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.5)]
    pub efficiency: f64,
    /// NVLink bandwidth per GPU and direction, in GB/s.
    #[arg(long, value_name = "GB/S", default_value_t = 450.0)]
    pub nvlink_bandwidth: f64,
    /// NVLink latency per message, in microseconds.
    #[arg(long, value_name = "US", default_value_t = 3.0)]
    pub nvlink_latency: f64,
    /// Network (InfiniBand) bandwidth per GPU and direction, in GB/s.
    #[arg(long, value_name = "GB/S", default_value_t = 50.0)]
    pub network_bandwidth: f64,
    /// Network latency per message, in microseconds.
    #[arg(long, value_name = "US", default_value_t = 10.0)]
    pub network_latency: f64,
}

impl ClusterArgs {
    fn cluster(&self) -> Result<Cluster, UsageError> {
        let positive = [
            ("--gpus-per-node", self.gpus_per_node as f64),
            ("--peak-tflops", self.peak_tflops),
            ("--efficiency", self.efficiency),
            ("--nvlink-bandwidth", self.nvlink_bandwidth),
            ("--network-bandwidth", self.network_bandwidth),
        ];
        if let Some((name, v)) = positive.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(UsageError(format!(
                "{name} must be a positive number, not {v}"
            )));
        }
        if self.efficiency > 1.0 {
            return Err(UsageError(format!(
                "--efficiency is a fraction of peak (at most 1), not {}",
                self.efficiency
            )));
        }
        let latencies = [self.nvlink_latency, self.network_latency];
        if latencies.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(UsageError(
                "latencies must be zero or more microseconds".to_string(),
            ));
        }
        Ok(Cluster {
            gpus_per_node: self.gpus_per_node,
            peak_flops: self.peak_tflops * 1e12,
            efficiency: self.efficiency,
            nvlink: Link {
                bandwidth: self.nvlink_bandwidth * 1e9,
                latency: self.nvlink_latency * 1e-6,
            },
            network: Link {
                bandwidth: self.network_bandwidth * 1e9,
                latency: self.network_latency * 1e-6,
            },
            ..Cluster::default()
        })
    }
}

pub struct Request<'a> {
    pub file: &'a Path,
    pub stdlib: Option<std::path::PathBuf>,
    pub world: Option<usize>,
    pub emit: Option<PlanEmit>,
    pub search: bool,
    pub cluster: &'a ClusterArgs,
    /// `--set KEY=VALUE` overrides.
    pub set: &'a [crate::driver::Override],
}

pub fn run(out: &Output, req: Request) -> i32 {
    let cluster = match req.cluster.cluster() {
        Ok(c) => c,
        Err(UsageError(e)) => {
            out.fatal(&e);
            return EXIT_USAGE;
        }
    };
    let options = Options {
        resolve: ResolveOptions {
            stdlib: req.stdlib.map(Stdlib::Dir).unwrap_or_default(),
        },
        goal: Goal::Plan(PlanOptions {
            world: req.world,
            cluster,
            search: req.search,
        }),
        record_types: false,
    };
    let a = match compile_with(&FsLoader, req.file, &options, req.set) {
        Ok(a) => a,
        Err(e) => {
            out.fatal(&e.to_string());
            return EXIT_USAGE;
        }
    };
    out.diagnostics(&a.diagnostics, &a.program.sources);
    let Some(x) = &a.experiment else {
        out.summary("not planned: the experiment has errors");
        return EXIT_DIAGNOSTICS;
    };
    // A parameter sized by what only the data gives (`N` behind a
    // `select`) is placed once the data is read; `enigma run` does the same.
    let mut sizes: Vec<String> = x
        .sized_from_data
        .iter()
        .map(|(n, v)| format!("{n} = {v}"))
        .collect();
    // Sizes that differ between sessions, as their range.
    let mut names: Vec<&str> = x
        .session_sizes
        .iter()
        .flatten()
        .map(|(n, _)| n.as_str())
        .collect();
    names.dedup();
    for name in names {
        let of = x.session_sizes.iter().flatten().filter(|(n, _)| n == name);
        let (lo, hi) = of.fold((i64::MAX, i64::MIN), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
        sizes.push(format!(
            "{name} = {lo} to {hi} over {} sessions (the plan counts session 0's)",
            x.session_sizes.len()
        ));
    }
    if !sizes.is_empty() {
        out.summary(&format!("sized from the data: {}", sizes.join(", ")));
    }
    if let Some(e) = &a.error {
        out.error(e, &a.program.sources);
        return EXIT_USAGE;
    }
    if let Some(p) = &a.planned {
        out.diagnostics(&p.diagnostics, &a.program.sources);
    }
    if a.has_errors() {
        out.summary("not planned: the layout has errors");
        return EXIT_DIAGNOSTICS;
    }
    let Some(plan) = a.planned.as_ref().and_then(|p| p.plan.as_ref()) else {
        return EXIT_DIAGNOSTICS;
    };
    let g = &x.graph;
    let text = match req.emit {
        None => Ok(a.planned.as_ref().map(summary).unwrap_or_default()),
        Some(PlanEmit::Yaml) => crate::plan::emit::to_yaml(g, plan),
        Some(PlanEmit::Json) => crate::plan::emit::to_json(g, plan),
        Some(PlanEmit::Dot) => Ok(crate::plan::emit::to_dot(g, plan)),
    };
    match text {
        Ok(text) => {
            print!("{text}");
            EXIT_OK
        }
        Err(e) => {
            out.error(&e, &a.program.sources);
            EXIT_USAGE
        }
    }
}
