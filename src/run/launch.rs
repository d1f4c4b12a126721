//! Who this process is in its job: the rank, the world size and the local
//! rank, read from what the launcher put in the environment.
//!
//! `enigma run FILE` is the same command as one process, under `mpirun`
//! or `srun`, and under torchrun-style launchers; each names the process
//! with its own variables (docs/running.md, "Many processes"):
//!
//! | launcher | rank | world | local rank |
//! | --- | --- | --- | --- |
//! | OpenMPI `mpirun` | `OMPI_COMM_WORLD_RANK` | `OMPI_COMM_WORLD_SIZE` | `OMPI_COMM_WORLD_LOCAL_RANK` |
//! | PMIx (OpenMPI under `srun --mpi=pmix`) | `PMIX_RANK` | `SLURM_STEP_NUM_TASKS`, `SLURM_NTASKS` | `SLURM_LOCALID` |
//! | Slurm `srun` | `SLURM_PROCID` | `SLURM_STEP_NUM_TASKS`, `SLURM_NTASKS` | `SLURM_LOCALID` |
//! | torchrun and the like | `RANK` | `WORLD_SIZE` | `LOCAL_RANK` (with `MASTER_ADDR`, `MASTER_PORT`) |
//!
//! The first launcher whose rank variable is set wins, in that order: an
//! MPI job started inside a Slurm allocation carries both, and MPI's own
//! numbering is the one its communicator uses. Slurm's variables count
//! only inside a job step (`SLURM_STEP_ID` set by `srun`), because the
//! batch script itself carries `SLURM_PROCID=0` and the allocation's task
//! count, and a lone process there must not wait for 63 others.
//!
//! Reading the environment is the only input, passed as a function so the
//! rules are tested without touching the process's variables.

use std::fmt;

use crate::diagnostics::{Error, ErrorKind};

/// What started the processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// No launcher: one process.
    Single,
    /// OpenMPI's `mpirun` (or `mpiexec`).
    Mpi,
    /// OpenMPI processes started by a PMIx server other than `mpirun`.
    Pmix,
    /// Slurm's `srun`.
    Slurm,
    /// torchrun or anything else setting `RANK` and `WORLD_SIZE`.
    Torchrun,
}

impl Launcher {
    pub fn as_str(self) -> &'static str {
        match self {
            Launcher::Single => "one process",
            Launcher::Mpi => "mpirun",
            Launcher::Pmix => "PMIx",
            Launcher::Slurm => "srun",
            Launcher::Torchrun => "torchrun-style variables",
        }
    }

    /// Whether an MPI world exists for these processes: the CPU
    /// communicator needs one.
    pub fn has_mpi(self) -> bool {
        matches!(self, Launcher::Mpi | Launcher::Pmix | Launcher::Slurm)
    }
}

/// This process's place in the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// The rank among the processes of this node: the GPU it drives.
    pub local_rank: usize,
    pub launcher: Launcher,
    /// `MASTER_ADDR` and `MASTER_PORT`, when set: where rank 0 listens for
    /// the NCCL rendezvous without MPI.
    pub master: Option<(String, u16)>,
    /// This machine's name, for messages.
    pub host: String,
}

impl World {
    /// One process, on this host.
    pub fn single() -> World {
        World {
            rank: 0,
            size: 1,
            local_rank: 0,
            launcher: Launcher::Single,
            master: None,
            host: hostname(),
        }
    }

    /// Whether this process writes the run directory's shared files and
    /// prints progress.
    pub fn is_leader(&self) -> bool {
        self.rank == 0
    }

    /// Reads the launcher's variables from the process environment.
    pub fn from_env() -> Result<World, Error> {
        World::detect(&|k| std::env::var(k).ok())
    }

    /// Reads the launcher's variables through `var`.
    pub fn detect(var: &dyn Fn(&str) -> Option<String>) -> Result<World, Error> {
        let host = var("ENIGMA_HOSTNAME").unwrap_or_else(hostname);
        let master = master(var)?;
        let in_step = var("SLURM_STEP_ID").is_some() || var("SLURM_STEPID").is_some();
        let slurm_size = || var("SLURM_STEP_NUM_TASKS").or_else(|| var("SLURM_NTASKS"));
        let (launcher, rank_var, rank, size_var, size, local) =
            if let Some(r) = var("OMPI_COMM_WORLD_RANK") {
                (
                    Launcher::Mpi,
                    "OMPI_COMM_WORLD_RANK",
                    r,
                    "OMPI_COMM_WORLD_SIZE",
                    var("OMPI_COMM_WORLD_SIZE"),
                    var("OMPI_COMM_WORLD_LOCAL_RANK"),
                )
            } else if let Some(r) = var("PMIX_RANK") {
                (
                    Launcher::Pmix,
                    "PMIX_RANK",
                    r,
                    "SLURM_NTASKS",
                    slurm_size(),
                    var("SLURM_LOCALID"),
                )
            } else if let (true, Some(r)) = (in_step, var("SLURM_PROCID")) {
                (
                    Launcher::Slurm,
                    "SLURM_PROCID",
                    r,
                    "SLURM_NTASKS",
                    slurm_size(),
                    var("SLURM_LOCALID"),
                )
            } else if let Some(r) = var("RANK") {
                (
                    Launcher::Torchrun,
                    "RANK",
                    r,
                    "WORLD_SIZE",
                    var("WORLD_SIZE"),
                    var("LOCAL_RANK"),
                )
            } else {
                return Ok(World {
                    host,
                    master,
                    ..World::single()
                });
            };
        let bad = |m: String| {
            Error::new(ErrorKind::Launch, m).help(
                "launch with `mpirun -n N`, `srun`, or set RANK, WORLD_SIZE and LOCAL_RANK together; `enigma run FILE --nproc N` starts N local processes itself",
            )
        };
        let number = |name: &str, v: &str| {
            v.trim().parse::<usize>().map_err(|_| {
                bad(format!(
                    "{} sets {name}={v:?}, which is not a whole number",
                    launcher.as_str()
                ))
            })
        };
        let rank = number(rank_var, &rank)?;
        let size = match size {
            Some(s) => number(size_var, &s)?,
            None => {
                return Err(bad(format!(
                    "{} sets {rank_var}={rank} but not {size_var}, so the world size is unknown",
                    launcher.as_str()
                )))
            }
        };
        if size == 0 || rank >= size {
            return Err(bad(format!(
                "{} says rank {rank} of a world of {size}",
                launcher.as_str()
            )));
        }
        let local_rank = match local {
            Some(l) => number("the local rank", &l)?,
            None => 0,
        };
        Ok(World {
            rank,
            size,
            local_rank,
            launcher,
            master,
            host,
        })
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rank {} of {} on {}", self.rank, self.size, self.host)
    }
}

/// `MASTER_ADDR` and `MASTER_PORT`: both or neither.
fn master(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<(String, u16)>, Error> {
    match (var("MASTER_ADDR"), var("MASTER_PORT")) {
        (Some(a), Some(p)) => {
            let port = p.trim().parse::<u16>().map_err(|_| {
                Error::new(
                    ErrorKind::Launch,
                    format!("MASTER_PORT={p:?} is not a port number"),
                )
            })?;
            Ok(Some((a, port)))
        }
        _ => Ok(None),
    }
}

/// This machine's name: the kernel's, else `HOSTNAME`, else `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(vars: &[(&str, &str)]) -> Result<World, Error> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("ENIGMA_HOSTNAME".to_string(), "node7".to_string())])
            .collect();
        World::detect(&move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn no_launcher_is_one_process() {
        let w = world(&[]).unwrap();
        assert_eq!((w.rank, w.size, w.launcher), (0, 1, Launcher::Single));
        assert!(w.is_leader());
        assert_eq!(w.to_string(), "rank 0 of 1 on node7");
    }

    #[test]
    fn each_launcher_names_rank_world_and_local_rank() {
        let w = world(&[
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("PMIX_RANK", "3"),
        ])
        .unwrap();
        assert_eq!(
            (w.rank, w.size, w.local_rank, w.launcher),
            (3, 4, 1, Launcher::Mpi)
        );
        let w = world(&[
            ("SLURM_STEP_ID", "0"),
            ("SLURM_PROCID", "9"),
            ("SLURM_NTASKS", "64"),
            ("SLURM_LOCALID", "1"),
        ])
        .unwrap();
        assert_eq!(
            (w.rank, w.size, w.local_rank, w.launcher),
            (9, 64, 1, Launcher::Slurm)
        );
        let w = world(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "localhost"),
            ("MASTER_PORT", "29500"),
        ])
        .unwrap();
        assert_eq!((w.rank, w.size, w.launcher), (1, 2, Launcher::Torchrun));
        assert_eq!(w.master, Some(("localhost".to_string(), 29500)));
        assert!(!w.launcher.has_mpi() && !w.is_leader());
    }

    #[test]
    fn a_batch_script_without_srun_is_one_process() {
        // sbatch's own shell carries the allocation's task count.
        let w = world(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "64")]).unwrap();
        assert_eq!((w.size, w.launcher), (1, Launcher::Single));
        // srun's tasks carry the step's task count, which wins.
        let w = world(&[
            ("SLURM_STEPID", "2"),
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "64"),
            ("SLURM_STEP_NUM_TASKS", "8"),
        ])
        .unwrap();
        assert_eq!((w.rank, w.size), (5, 8));
    }

    #[test]
    fn inconsistent_variables_are_launch_errors_naming_them() {
        let e = world(&[("RANK", "1")]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Launch);
        assert!(e.message.contains("RANK=1 but not WORLD_SIZE"), "{e}");
        let e = world(&[("RANK", "two"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.message.contains("RANK=\"two\""), "{e}");
        let e = world(&[("RANK", "2"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.message.contains("rank 2 of a world of 2"), "{e}");
        let e = world(&[("MASTER_ADDR", "h"), ("MASTER_PORT", "x")]).unwrap_err();
        assert!(e.message.contains("MASTER_PORT"), "{e}");
    }
}
