//! Joining a CUDA job: the NCCL communicator ([`super::nccl`]), with its
//! unique ids exchanged over MPI when the launcher is `mpirun` or `srun`,
//! and over a TCP rendezvous at `MASTER_ADDR:MASTER_PORT` under
//! torchrun-style launchers.
//!
//! Under MPI the MPI world stays up beside NCCL until the run ends (it was
//! the bootstrap, and finalizing it early would make a failing rank's exit
//! look like a clean one); tensors travel over NCCL only.

use std::path::Path;
use std::time::Duration;

use tch::Tensor;

use super::mpi::MpiComm;
use super::nccl::{self, Bootstrap, NcclComm, TcpBootstrap};
use super::{watchdog, CommError, Communicator};
use enigma::diagnostics::{Error, ErrorKind};
use enigma::plan::program::Plan;
use enigma::run::session::Job;

/// How long the TCP rendezvous waits for every rank to arrive.
const RENDEZVOUS: Duration = Duration::from_secs(300);

/// The NCCL communicator of this process for CUDA device `device`.
pub fn connect(
    job: &Job<'_>,
    plan: &Plan,
    device: usize,
    settings: watchdog::Settings,
) -> Result<Box<dyn Communicator>, Error> {
    let comm = |what: &str, e: CommError| Error::new(ErrorKind::Comm, format!("{what}: {e}"));
    // cudarc finds NCCL only through LD_LIBRARY_PATH as the process
    // starts; this re-executes the program with it set when needed, before
    // MPI or any connection exists (the run starts over from its
    // beginning, which costs milliseconds).
    nccl::reexec_if_needed(Path::new(env!("ENIGMA_LIBTORCH_LIB")))
        .map_err(|e| comm("loading NCCL", e))?;
    let w = job.world;
    if w.launcher.has_mpi() {
        let mut mpi = MpiComm::init(&plan.groups).map_err(|e| comm("starting MPI", e))?;
        let nccl = NcclComm::new(w.rank, w.size, &plan.groups, device, &mut mpi)
            .map_err(|e| comm("starting NCCL", e))?;
        return Ok(Box::new(watchdog::Watched::new(
            WithMpi { nccl, mpi },
            settings,
        )));
    }
    let Some((addr, port)) = w.master.clone() else {
        return Err(Error::new(
            ErrorKind::Launch,
            format!(
                "{} CUDA processes started by {} need MASTER_ADDR and MASTER_PORT for NCCL's rendezvous",
                w.size,
                w.launcher.as_str()
            ),
        ));
    };
    let mut boot = TcpBootstrap::connect(&addr, port, w.rank, w.size, RENDEZVOUS)
        .map_err(|e| comm("the NCCL rendezvous", e))?;
    let nccl = NcclComm::new(w.rank, w.size, &plan.groups, device, &mut boot)
        .map_err(|e| comm("starting NCCL", e))?;
    Ok(Box::new(watchdog::Watched::new(nccl, settings)))
}

impl Bootstrap for MpiComm {
    fn all_gather_bytes(&mut self, mine: &[u8]) -> Result<Vec<Vec<u8>>, CommError> {
        self.all_gather_blobs(mine)
    }
}

/// NCCL for the tensors, MPI kept until the end; dropped in that order.
struct WithMpi {
    nccl: NcclComm,
    mpi: MpiComm,
}

impl Communicator for WithMpi {
    fn rank(&self) -> usize {
        self.nccl.rank()
    }
    fn size(&self) -> usize {
        self.nccl.size()
    }
    fn transport(&self) -> &'static str {
        "nccl"
    }
    fn world(&self) -> usize {
        self.nccl.world()
    }
    fn group_rank(&self, group: usize) -> Result<(usize, usize), CommError> {
        self.nccl.group_rank(group)
    }
    fn all_reduce(&mut self, group: usize, t: &mut Tensor) -> Result<(), CommError> {
        self.nccl.all_reduce(group, t)
    }
    fn all_gather(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError> {
        self.nccl.all_gather(group, input, output)
    }
    fn reduce_scatter(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError> {
        self.nccl.reduce_scatter(group, input, output)
    }
    fn broadcast(&mut self, group: usize, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        self.nccl.broadcast(group, t, root)
    }
    fn send(&mut self, t: &Tensor, peer: usize) -> Result<(), CommError> {
        self.nccl.send(t, peer)
    }
    fn recv(&mut self, t: &mut Tensor, peer: usize) -> Result<(), CommError> {
        self.nccl.recv(t, peer)
    }
    fn exchange(
        &mut self,
        sends: &[(&Tensor, usize)],
        recvs: &mut [(&mut Tensor, usize)],
    ) -> Result<(), CommError> {
        self.nccl.exchange(sends, recvs)
    }
    fn barrier(&mut self, group: usize) -> Result<(), CommError> {
        self.nccl.barrier(group)
    }
    fn finish(&mut self) {
        self.nccl.finish();
        self.mpi.finish();
    }
}
