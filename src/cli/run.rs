//! `enigma run FILE`: check, bind the data's sizes, plan, and hand the
//! experiment to the runtime (`run::session`).
//!
//! An experiment with errors stops here with `check`'s diagnostics, and
//! one whose data the runtime cannot read with E0221 diagnostics; what the
//! runtime then does (the run directory, signals, training, the recovery
//! report) is `run::session`'s.

use std::path::{Path, PathBuf};

use super::output::Output;
use super::{EXIT_DIAGNOSTICS, EXIT_OK, EXIT_USAGE};
use crate::driver::{compile_with, Goal, Options};
use crate::plan::report::Options as PlanOptions;
use crate::resolve::{Options as ResolveOptions, Stdlib};
use crate::run::launch::World;
use crate::run::session::{DeviceChoice, Outcome, Request as RunRequest, Trainer};
use crate::source::FsLoader;

/// Exit status of a run stopped by SIGINT or SIGTERM after it saved a
/// checkpoint (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

/// The device flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

impl From<DeviceArg> for DeviceChoice {
    fn from(d: DeviceArg) -> DeviceChoice {
        match d {
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
        }
    }
}

pub struct Request<'a> {
    pub file: &'a Path,
    pub stdlib: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub resume: bool,
    pub device: Option<DeviceArg>,
    pub steps: Option<u64>,
    pub quiet: bool,
    pub log_every: Option<u64>,
    pub no_baselines: bool,
    pub init_from: Option<PathBuf>,
    pub freeze_shared: bool,
    /// `--set KEY=VALUE` overrides.
    pub set: Vec<crate::driver::Override>,
}

pub fn run(out: &Output, trainer: &dyn Trainer, req: Request) -> i32 {
    let world = match World::from_env() {
        Ok(w) => w,
        Err(e) => {
            out.error(&e, &Default::default());
            return EXIT_USAGE;
        }
    };
    // Every rank compiles the same file to the same diagnostics; the
    // leader shows them, the others only exit with the same status.
    let loud = out;
    let quiet_rank = Output::quiet();
    let out = if world.is_leader() { out } else { &quiet_rank };
    let options = Options {
        resolve: ResolveOptions {
            stdlib: req.stdlib.clone().map(Stdlib::Dir).unwrap_or_default(),
        },
        // The mesh must have as many ranks as the job has processes
        // (E0301), checked before any process trains.
        goal: Goal::Plan(PlanOptions {
            world: Some(world.size),
            ..PlanOptions::default()
        }),
        record_types: false,
    };
    let a = match compile_with(&FsLoader, req.file, &options, &req.set) {
        Ok(a) => a,
        Err(e) => {
            out.fatal(&format!("{}: {e}", req.file.display()));
            return EXIT_USAGE;
        }
    };
    out.diagnostics(&a.diagnostics, &a.program.sources);
    let Some(x) = &a.experiment else {
        out.summary("not run: the experiment has errors");
        return EXIT_DIAGNOSTICS;
    };
    // Data the runtime cannot read is shown at the items that ask for it,
    // before any failure it causes later (a size only that data gives).
    if let Err(problems) = &x.data {
        out.diagnostics(problems, &a.program.sources);
        out.summary("not run: the runtime cannot read the experiment's data");
        return EXIT_DIAGNOSTICS;
    }
    if let Some(e) = &a.error {
        out.error(e, &a.program.sources);
        return EXIT_USAGE;
    }
    if let Some(p) = &a.planned {
        out.diagnostics(&p.diagnostics, &a.program.sources);
    }
    if a.has_errors() {
        out.summary("not run: the layout has errors");
        return EXIT_DIAGNOSTICS;
    }
    let Some(planned) = &a.planned else {
        out.fatal(&format!(
            "{}: the experiment was not planned",
            req.file.display()
        ));
        return EXIT_USAGE;
    };
    let request = RunRequest {
        out: req.out.clone(),
        resume: req.resume,
        device: req.device.map(DeviceChoice::from),
        steps: req.steps,
        quiet: req.quiet,
        log_every: req.log_every,
        no_baselines: req.no_baselines,
        init_from: req.init_from.clone(),
        freeze_shared: req.freeze_shared,
        resolved: Some(
            a.program
                .sources
                .get(a.program.root_module().file)
                .text
                .clone(),
        ),
        overrides: req.set.iter().map(|o| o.as_str().to_string()).collect(),
        world,
    };
    match trainer.train(x, planned, a.dataset, &request) {
        Ok(Outcome::Finished) => EXIT_OK,
        Ok(Outcome::Interrupted) => EXIT_INTERRUPTED,
        Err(e) => {
            // Every rank's failure reaches the user, its rank named.
            loud.error(&e, &a.program.sources);
            EXIT_USAGE
        }
    }
}
