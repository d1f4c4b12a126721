//! The communicator: collectives and point-to-point transfers between the
//! ranks of a job, over the process groups the plan names, behind one
//! trait with two real implementations:
//!
//! - [`mpi::MpiComm`] (OpenMPI through the `mpi` crate) for CPU tensors;
//! - [`nccl::NcclComm`] (NCCL through `cudarc`, loading the `libnccl.so.2`
//!   that libtorch itself loads) for CUDA tensors.
//!
//! The backend never talks to MPI or NCCL directly: it executes the plan's
//! `Instr::Collective`s by calling this trait with the plan's group ids, so
//! a new transport is one more implementation, not a new code path.
//!
//! Conventions shared by every implementation:
//!
//! - Groups are the plan's [`Group`]s, named by their index in
//!   `Plan::groups`; a rank may only use the groups it belongs to. The id
//!   one past the last ([`Communicator::world`]) is every rank.
//! - Reductions sum; averaging is the caller's business (it knows what a
//!   gradient is).
//! - `all_gather` and `reduce_scatter` exchange equal parts: the caller pads
//!   (`zero.rs` lays buckets out rank-major with padded parts).
//! - Tensors are contiguous, f32 or bf16, on the device the communicator
//!   serves; anything else is an error, not a silent copy.
//! - Every failure is a [`CommError`] naming the operation and the group;
//!   a collective that does not complete is found by the watchdog
//!   (`watchdog.rs`), not here.

pub mod cuda;
pub mod mpi;
pub mod nccl;
pub mod watchdog;

use std::fmt;

use tch::{Device, Tensor};

use enigma::diagnostics::{Error, ErrorKind};
use enigma::plan::program::{Group, Plan};
use enigma::run::session::Job;

/// A failed communication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommError {
    pub message: String,
}

impl CommError {
    pub fn new(message: impl Into<String>) -> CommError {
        CommError {
            message: message.into(),
        }
    }
}

impl fmt::Display for CommError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommError {}

/// Collectives and transfers among the ranks of one job.
pub trait Communicator {
    /// This process's rank in the world.
    fn rank(&self) -> usize;

    /// The number of ranks in the world.
    fn size(&self) -> usize;

    /// What carries the data, for messages and the run directory: `mpi`,
    /// `nccl`.
    fn transport(&self) -> &'static str;

    /// The id that names the whole world as a group: one past the plan's
    /// groups.
    fn world(&self) -> usize;

    /// This rank's position in group `group` and the group's size.
    fn group_rank(&self, group: usize) -> Result<(usize, usize), CommError>;

    /// Sums `t` in place over the ranks of `group`.
    fn all_reduce(&mut self, group: usize, t: &mut Tensor) -> Result<(), CommError>;

    /// Concatenates every rank's `input` (equal sizes) into `output`, in
    /// group order: `output` has `group size x input` elements.
    fn all_gather(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError>;

    /// Sums `input` over the group and leaves part `i` (of `group size`
    /// equal parts) in `output` on the rank at position `i`.
    fn reduce_scatter(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError>;

    /// Copies `t` of the rank at position `root` of the group to every
    /// other rank of it.
    fn broadcast(&mut self, group: usize, t: &mut Tensor, root: usize) -> Result<(), CommError>;

    /// Sends `t` to world rank `peer`.
    fn send(&mut self, t: &Tensor, peer: usize) -> Result<(), CommError>;

    /// Receives into `t` from world rank `peer`.
    fn recv(&mut self, t: &mut Tensor, peer: usize) -> Result<(), CommError>;

    /// Posts every send of `sends` (tensor, world rank) and every receive
    /// of `recvs`, then waits for all of them (NCCL's group semantics): two
    /// neighbouring pipeline stages exchanging activations one way and
    /// gradients the other never wait on each other, whatever the sizes.
    fn exchange(
        &mut self,
        sends: &[(&Tensor, usize)],
        recvs: &mut [(&mut Tensor, usize)],
    ) -> Result<(), CommError>;

    /// Waits until every rank of the group has arrived.
    fn barrier(&mut self, group: usize) -> Result<(), CommError>;

    /// The run ended well on this rank: shut down cleanly when dropped
    /// (which may wait for the other ranks). Without it, dropping leaves
    /// the transport as it is, so a failing rank exits at once.
    fn finish(&mut self);
}

/// Joins this process to the job `job` describes, for the groups of
/// `plan`, with the transport of `device`: MPI for the CPU, NCCL for CUDA.
/// Every operation is watched for the job's collective timeout.
pub fn connect(job: &Job<'_>, plan: &Plan, device: Device) -> Result<Box<dyn Communicator>, Error> {
    let w = job.world;
    let settings = watchdog::Settings {
        timeout: job.collective_timeout,
        heartbeats: Some(job.run_dir.join(".ranks")),
        groups: plan.groups.clone(),
        world: w.size,
    };
    let launch = |m: String| Error::new(ErrorKind::Launch, m);
    match device {
        Device::Cpu => {
            if !w.launcher.has_mpi() {
                return Err(launch(format!(
                    "{} processes on the CPU exchange tensors over MPI, but this one was started by {} (no MPI world to join)",
                    w.size,
                    w.launcher.as_str()
                ))
                .help("start CPU jobs with `mpirun -n N`, `srun`, or `enigma run FILE --nproc N`; torchrun-style variables serve CUDA jobs (NCCL)"));
            }
            let c = mpi::MpiComm::init(&plan.groups)
                .map_err(|e| Error::new(ErrorKind::Comm, format!("starting MPI: {e}")))?;
            if (c.rank(), c.size()) != (w.rank, w.size) {
                return Err(launch(format!(
                    "{} says rank {} of {}, but MPI says rank {} of {}",
                    w.launcher.as_str(),
                    w.rank,
                    w.size,
                    c.rank(),
                    c.size()
                )));
            }
            Ok(Box::new(watchdog::Watched::new(c, settings)))
        }
        Device::Cuda(i) => cuda::connect(job, plan, i, settings),
        other => Err(Error::new(
            ErrorKind::Device,
            format!("no communicator for tensors on {other:?}"),
        )),
    }
}

/// The groups of `groups` that `rank` belongs to, as `(id, position,
/// size)`; shared by the implementations to build their sub-communicators.
pub fn memberships(groups: &[Group], rank: usize) -> Vec<(usize, usize, usize)> {
    groups
        .iter()
        .enumerate()
        .filter_map(|(id, g)| {
            let pos = g.ranks.iter().position(|&r| r == rank)?;
            Some((id, pos, g.ranks.len()))
        })
        .collect()
}

/// The partitions of the world the groups form: groups with the same kind
/// and axes split the world into disjoint sets, and a sub-communicator is
/// made for each partition with one collective call on every rank, so the
/// ranks must agree on the order. Returns, per partition, the ids of its
/// groups.
pub fn partitions(groups: &[Group]) -> Vec<Vec<usize>> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for (id, g) in groups.iter().enumerate() {
        let key = format!("{}:{}", g.kind.as_str(), g.axes.join(","));
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ids)) => ids.push(id),
            None => out.push((key, vec![id])),
        }
    }
    out.into_iter().map(|(_, ids)| ids).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use enigma::plan::program::GroupKind;

    fn g(kind: GroupKind, axes: &[&str], ranks: &[usize]) -> Group {
        Group {
            kind,
            axes: axes.iter().map(|s| s.to_string()).collect(),
            ranks: ranks.to_vec(),
        }
    }

    #[test]
    fn hybrid_groups_form_three_partitions_in_first_seen_order() {
        let groups = vec![
            g(GroupKind::Data, &["node", "gpu"], &[0, 1, 2, 3]),
            g(GroupKind::Zero, &["gpu"], &[0, 1]),
            g(GroupKind::Replica, &["node"], &[0, 2]),
            g(GroupKind::Replica, &["node"], &[1, 3]),
            g(GroupKind::Zero, &["gpu"], &[2, 3]),
        ];
        assert_eq!(partitions(&groups), vec![vec![0], vec![1, 4], vec![2, 3]]);
        assert_eq!(
            memberships(&groups, 3),
            vec![(0, 3, 4), (3, 1, 2), (4, 1, 2)]
        );
    }
}
