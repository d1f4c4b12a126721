//! The command-line interface: argument parsing and dispatch.
//!
//! Each subcommand lives in its own file and is a thin layer over the
//! driver (`crate::driver`): it loads files through
//! [`crate::source::FsLoader`], and prints diagnostics with
//! [`output::Output`]. Exit codes are the same everywhere: 0 clean
//! (warnings allowed), 1 diagnostics, 2 usage or I/O error.
//!
//! Two programs share this interface. `enigma` links no runtime, so the
//! front-end commands start in milliseconds; its `run` hands the whole
//! command line to `enigma-run` beside it (`delegate.rs`), which links
//! libtorch and runs [`main_with`] with its trainer.

mod baseline;
mod check;
mod checkpoint;
mod delegate;
mod eval;
mod explain;
mod export;
mod fmt;
mod init;
mod lsp;
mod nproc;
mod output;
mod plan;
mod predict;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::run::session::Trainer;

/// Exit status: no errors (warnings may have been printed).
pub const EXIT_OK: i32 = 0;
/// Exit status: the input has errors (diagnostics were printed).
pub const EXIT_DIAGNOSTICS: i32 = 1;
/// Exit status: bad usage, a file could not be read or written, or an
/// error after checking (the data, the planner, the runtime).
pub const EXIT_USAGE: i32 = 2;

/// A command line that cannot be carried out, in a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

#[derive(Parser, Debug)]
#[command(
    name = "enigma",
    version = version(),
    about = "Compile and run multimodal neuroscience foundation-model experiments",
    long_about = None,
)]
pub struct Cli {
    /// How to print diagnostics: `human` (with source excerpts, on stderr)
    /// or `json` (one object per line, on stdout).
    #[arg(long, global = true, value_enum, default_value_t = ErrorFormat::Human)]
    pub error_format: ErrorFormat,

    /// When to use colour in human output.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ErrorFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// What `enigma check --emit` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The typed IR as YAML.
    Ir,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a new experiment from a commented template into DIR (created
    /// when missing): `DIR/<DIR name>.enigma`, checked before it is
    /// written. The default template, `video`, reads no files and trains
    /// as written.
    Init {
        /// The folder to write the experiment into.
        dir: PathBuf,
        /// Which experiment to start from.
        #[arg(long, value_enum, default_value_t = init::Template::Video)]
        template: init::Template,
        /// Existing recordings for the `calcium` or `spikes` template, named
        /// where they are (nothing is copied); without it the experiment
        /// reads `DIR/data/`.
        #[arg(long, value_name = "PATH")]
        data: Option<PathBuf>,
        /// Overwrite an existing experiment file.
        #[arg(long)]
        force: bool,
    },
    /// Check FILEs: syntax, names, values and settings, and the shapes of
    /// every tensor through the model.
    Check {
        /// `.enigma` files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Read the standard library from this directory instead of the
        /// copy built into the binary.
        #[arg(long, value_name = "DIR")]
        stdlib: Option<PathBuf>,
        /// Print parameters per module, FLOPs per training step and
        /// activation memory per sample.
        #[arg(long)]
        stats: bool,
        /// Print the typed IR of the model to stdout.
        #[arg(long, value_enum, value_name = "FORMAT")]
        emit: Option<Emit>,
        /// Change a setting as if written in the file: `train.steps=2000`,
        /// `train.lr=1e-4`, `parallel.zero=2`, `data.NAME.window=4s`,
        /// `dim.d=128` (repeatable; see `enigma explain E0110`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<crate::driver::Override>,
    },
    /// Lower FILE to every rank's program and print the plan: where each
    /// parameter lives, memory and time per pipeline stage, and the
    /// communication of every rank.
    Plan {
        /// The `.enigma` file to plan.
        file: PathBuf,
        /// The number of processes of the job; the mesh must have as many
        /// ranks.
        #[arg(long, value_name = "N")]
        world: Option<usize>,
        /// Print every rank's program (`yaml`, `json`) or the mesh and the
        /// pipeline schedule (`dot`) instead of the summary.
        #[arg(long, value_enum, value_name = "FORMAT")]
        emit: Option<plan::PlanEmit>,
        /// Also rank the layouts of the same number of ranks that fit in
        /// memory, fastest first.
        #[arg(long)]
        search: bool,
        /// Change a setting as if written in the file: `train.steps=2000`,
        /// `train.lr=1e-4`, `parallel.zero=2`, `data.NAME.window=4s`,
        /// `dim.d=128` (repeatable; see `enigma explain E0110`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<crate::driver::Override>,
        /// Read the standard library from this directory instead of the
        /// copy built into the binary.
        #[arg(long, value_name = "DIR")]
        stdlib: Option<PathBuf>,
        #[command(flatten)]
        cluster: plan::ClusterArgs,
    },
    /// Train an experiment on one process (CPU, or one GPU with
    /// `--device cuda`), writing metrics, plots and checkpoints to a run
    /// directory.
    Run {
        /// The `.enigma` experiment to train.
        file: PathBuf,
        /// The run directory (default: `runs/<file stem>`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Continue the run in the run directory from its newest good
        /// checkpoint.
        #[arg(long)]
        resume: bool,
        /// Where to train (default: the experiment's `device`, else the
        /// CPU). Asking for a GPU that is not there is an error.
        #[arg(long, value_enum)]
        device: Option<run::DeviceArg>,
        /// Stop after this many steps (the schedule still spans the
        /// experiment's steps); checkpoints as at the end of a run.
        #[arg(long, value_name = "N")]
        steps: Option<u64>,
        /// No progress bar, no progress lines and no summary lines.
        #[arg(long)]
        quiet: bool,
        /// When standard error is not a terminal (Slurm, nohup, CI), print
        /// one progress line every N steps (default: about twenty lines a
        /// run, at least one every 100 steps); every evaluation's result is
        /// printed too.
        #[arg(long, value_name = "N")]
        log_every: Option<u64>,
        /// Do not fit the built-in baselines at the end (their ridge
        /// regression reads every training window, which on a large study
        /// can take longer than a short run); `enigma baseline` fits them
        /// later.
        #[arg(long)]
        no_baselines: bool,
        /// Start from the shared weights (all but the per-session tables)
        /// of the newest checkpoint in this run directory, a run of the
        /// same model on other sessions: the start of a few-shot fit of new
        /// sessions. The per-session tables and the optimiser start fresh.
        #[arg(long, value_name = "RUN_DIR")]
        init_from: Option<PathBuf>,
        /// Change a setting as if written in the file: `train.steps=2000`,
        /// `train.lr=1e-4`, `parallel.zero=2`, `data.NAME.window=4s`,
        /// `dim.d=128` (repeatable; see `enigma explain E0110`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<crate::driver::Override>,
        /// Train only the per-session tables (unit embeddings, read-out
        /// weights), keeping the shared weights as `--init-from` loaded
        /// them (give it again with `--resume`).
        #[arg(long)]
        freeze_shared: bool,
        /// Read the standard library from this directory instead of the
        /// copy built into the binary.
        #[arg(long, value_name = "DIR")]
        stdlib: Option<PathBuf>,
        /// Start N local processes (through `mpirun` when it is on the
        /// PATH) and supervise them; the mesh must have N ranks. Under a
        /// launcher (`mpirun`, `srun`, torchrun) leave it out.
        #[arg(long, value_name = "N")]
        nproc: Option<usize>,
    },
    /// Write a run's predictions for every window of a split (`.npy`, with
    /// the recorded values, the mask of held-out entries and a JSON of the
    /// windows' sessions and start times).
    Predict {
        /// The run directory (`enigma run --out`, default `runs/<stem>`).
        run_dir: PathBuf,
        /// The predictions' file; the others are named after it
        /// (`preds.target.npy`, `preds.mask.npy`, `preds.json`).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The split to predict.
        #[arg(long, value_enum, default_value = "test")]
        split: eval::SplitArg,
        /// Where to run the model (default: the experiment's `device`).
        #[arg(long, value_enum)]
        device: Option<run::DeviceArg>,
        /// Read the standard library from this directory instead of the
        /// copy built into the binary.
        #[arg(long, value_name = "DIR")]
        stdlib: Option<PathBuf>,
    },
    /// Score a run's newest checkpoint on a split with the run's own
    /// evaluation (the run's windows, masks, loss and correlation), beside
    /// the best built-in baseline on the same windows.
    Eval {
        /// The run directory (`enigma run --out`, default `runs/<stem>`).
        run_dir: PathBuf,
        /// The split to score.
        #[arg(long, value_enum, default_value = "test")]
        split: eval::SplitArg,
        /// Every window of the split, not only the run's `eval.batches`.
        #[arg(long)]
        all: bool,
        /// Where to evaluate (default: the experiment's `device`).
        #[arg(long, value_enum)]
        device: Option<run::DeviceArg>,
        /// Read the standard library from this directory instead of the
        /// copy built into the binary.
        #[arg(long, value_name = "DIR")]
        stdlib: Option<PathBuf>,
    },
    /// Fit the built-in baselines (each unit's mean, smoothing of its own
    /// visible values, ridge regression from the visible units, a linear
    /// model of the stimulus and behaviour) on FILE's training windows and
    /// score them on the validation and test splits exactly as `enigma run`
    /// evaluates the model.
    Baseline {
        /// The `.enigma` experiment.
        file: PathBuf,
        /// Read the standard library from this directory instead of the
        /// copy built into the binary.
        #[arg(long, value_name = "DIR")]
        stdlib: Option<PathBuf>,
    },
    /// Rewrite FILEs in the canonical layout, keeping every comment.
    Fmt {
        /// Do not write; exit with 1 if any file is not formatted.
        #[arg(long)]
        check: bool,
        /// `.enigma` files to format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the language server on stdin and stdout (for editors): live
    /// diagnostics, hover, completion, navigation, rename, formatting.
    Lsp {
        /// Accepted and ignored: stdio is the server's only transport, and
        /// clients such as vscode-languageclient pass this flag.
        #[arg(long)]
        stdio: bool,
    },
    /// Explain a diagnostic code such as E0105, or list all codes.
    Explain {
        /// The code to explain; omit it to list every code.
        code: Option<String>,
    },
    /// Work with a run's checkpoints.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Write a run's trained weights (its newest good checkpoint) as a
    /// safetensors file with PyTorch-style dotted names
    /// (`blocks.layer.w#0` becomes `blocks.0.w`, `unit@1` becomes
    /// `unit.1`), and a JSON description beside it: every tensor's name,
    /// original name, shape and dtype, and the model's configuration.
    Export {
        /// The run directory (with `checkpoints/`).
        run_dir: PathBuf,
        /// The safetensors file to write (default:
        /// RUN_DIR/model.safetensors); the description is `<stem>.json`
        /// beside it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Export this checkpoint file (or a job's step directory) rather
        /// than the run's newest.
        #[arg(long, value_name = "FILE", conflicts_with = "step")]
        checkpoint: Option<PathBuf>,
        /// Export this step's checkpoint rather than the newest.
        #[arg(long, value_name = "N")]
        step: Option<u64>,
        /// Read the standard library from this directory instead of the
        /// copy built into the binary (to describe the model).
        #[arg(long, value_name = "DIR")]
        stdlib: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CheckpointCommand {
    /// Write a run's newest checkpoint (a job's shards assembled) as one
    /// safetensors file of whole tensors.
    Consolidate {
        /// The run directory (with `checkpoints/`).
        run_dir: PathBuf,
        /// The directory to write `step-XXXXXXXX.safetensors` into
        /// (default: RUN_DIR/consolidated).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// This step's checkpoint rather than the newest.
        #[arg(long, value_name = "N")]
        step: Option<u64>,
    },
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Runs the front end on the process arguments and returns the exit
/// status; `run` is handed to the runtime program beside this one.
pub fn main() -> i32 {
    main_with(std::env::args_os(), None)
}

/// Runs the CLI on the given arguments and returns the exit status. With a
/// `trainer`, `run` trains in this process; without one it is handed,
/// arguments unchanged, to the runtime program (`enigma-run`).
pub fn main_with<I, T>(args: I, trainer: Option<&dyn Trainer>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with status 0 and
            // usage errors to stderr with status 2, as we want.
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    let out = output::Output::new(cli.error_format, cli.color);
    match cli.command {
        Command::Check {
            files,
            stdlib,
            stats,
            emit,
            set,
        } => check::run(&out, &files, stdlib, check::Report { stats, emit }, &set),
        Command::Plan {
            file,
            world,
            emit,
            search,
            stdlib,
            cluster,
            set,
        } => plan::run(
            &out,
            plan::Request {
                file: &file,
                stdlib,
                world,
                emit,
                search,
                cluster: &cluster,
                set: &set,
            },
        ),
        Command::Run {
            file,
            out: dir,
            resume,
            device,
            steps,
            quiet,
            log_every,
            no_baselines,
            init_from,
            freeze_shared,
            stdlib,
            nproc,
            set,
        } => match (nproc, trainer) {
            (Some(n), _) => start_processes(&out, n, &args, trainer.is_some()),
            (None, None) => delegate::delegate(&args),
            (None, Some(trainer)) => run::run(
                &out,
                trainer,
                run::Request {
                    file: &file,
                    stdlib,
                    out: dir,
                    resume,
                    device,
                    steps,
                    quiet,
                    log_every,
                    no_baselines,
                    init_from,
                    freeze_shared,
                    set,
                },
            ),
        },
        Command::Baseline { file, stdlib } => baseline::run(&out, &file, stdlib),
        Command::Eval {
            run_dir,
            split,
            all,
            device,
            stdlib,
        } => match trainer {
            None => delegate::delegate(&args),
            Some(trainer) => eval::run(
                &out,
                trainer,
                eval::Request {
                    run_dir,
                    split,
                    all,
                    device,
                    stdlib,
                },
            ),
        },
        Command::Predict {
            run_dir,
            out: file,
            split,
            device,
            stdlib,
        } => match trainer {
            None => delegate::delegate(&args),
            Some(trainer) => predict::run(
                &out,
                trainer,
                predict::Request {
                    run_dir,
                    split,
                    out: file,
                    device,
                    stdlib,
                },
            ),
        },
        Command::Init {
            dir,
            template,
            data,
            force,
        } => init::run(
            &out,
            init::Request {
                dir,
                template,
                data,
                force,
            },
        ),
        Command::Fmt { check, files } => fmt::run(&out, &files, check),
        Command::Explain { code } => explain::run(code.as_deref()),
        Command::Lsp { .. } => lsp::run(&out),
        Command::Checkpoint(CheckpointCommand::Consolidate {
            run_dir,
            out: dir,
            step,
        }) => checkpoint::consolidate(&out, &run_dir, dir, step),
        Command::Export {
            run_dir,
            out: file,
            checkpoint,
            step,
            stdlib,
        } => export::run(
            &out,
            export::Request {
                run_dir,
                out: file,
                checkpoint,
                step,
                stdlib,
            },
        ),
    }
}

/// `run --nproc N`: starts the job's processes, unless this process is
/// already one of a launched job of N (then `--nproc` is a no-op that
/// would otherwise recurse).
fn start_processes(
    out: &output::Output,
    n: usize,
    args: &[std::ffi::OsString],
    in_runtime: bool,
) -> i32 {
    let world = match crate::run::launch::World::from_env() {
        Ok(w) => w,
        Err(e) => {
            out.error(&e, &Default::default());
            return EXIT_USAGE;
        }
    };
    if world.size > 1 {
        eprintln!(
            "error: --nproc {n} inside a job already started by {} ({}); leave --nproc out under a launcher",
            world.launcher.as_str(),
            world
        );
        return EXIT_USAGE;
    }
    let program = if in_runtime {
        std::env::current_exe().map_err(|e| format!("cannot locate this program: {e}"))
    } else {
        delegate::runtime().map_err(|UsageError(e)| e)
    };
    match program {
        Ok(p) => nproc::launch(n, &p, &nproc::strip_nproc(args)),
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}
