//! The MPI communicator: collectives on CPU tensors over OpenMPI, through
//! the `mpi` crate (rsmpi).
//!
//! One sub-communicator is split off the world for each process group of
//! the plan this rank belongs to (`super::partitions` gives every rank the
//! same order of splits, which MPI requires). Buffers are the tensors' own
//! memory: an f32 CPU tensor is passed to MPI as a slice of its storage;
//! a bf16 tensor is widened to f32 for the exchange (MPI has no bf16 type,
//! and summing in f32 is what NCCL does inside its bf16 reductions too).
//!
//! Shutting down matters as much as starting: `MPI_Finalize` waits for the
//! other ranks, so a rank that fails and finalizes hangs the whole job
//! (measured in docs/../shared/distributed.md, B8). The universe is
//! therefore finalized only after [`MpiComm::finish`], which the backend
//! calls when the run ends well; on any other path it is leaked, the
//! process exits with its error, and `mpirun` (or `srun
//! --kill-on-bad-exit`) ends the other ranks within about a second.

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Color, SimpleCommunicator};
use mpi::traits::*;
// rsmpi's own `Communicator` trait, under another name than ours.
use mpi::topology::Communicator as _;
use mpi::Threading;
use tch::{Device, Kind, Tensor};

use super::{memberships, partitions, CommError, Communicator};
use enigma::plan::program::Group;

/// OpenMPI collectives over the plan's groups.
pub struct MpiComm {
    universe: Option<Universe>,
    world: SimpleCommunicator,
    /// Per group id this rank belongs to: its communicator.
    groups: Vec<(usize, SimpleCommunicator)>,
    finished: bool,
    /// The all-reduce's receive buffer, reused.
    scratch: Vec<f32>,
}

impl MpiComm {
    /// Initialises MPI and splits a communicator for each group of
    /// `groups` this rank is in. Every rank of the world must call it with
    /// the same groups.
    pub fn init(groups: &[Group]) -> Result<MpiComm, CommError> {
        let (universe, _) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| {
                CommError::new("MPI was initialised twice in this process (a bug of enigma)")
            })?;
        let world = universe.world();
        let rank = world.rank() as usize;
        let mine = memberships(groups, rank);
        let mut comms = Vec::new();
        for ids in partitions(groups) {
            // The color is the group's position in its partition; a rank in
            // none of them takes no part in the new communicator.
            let index = ids
                .iter()
                .position(|id| mine.iter().any(|(g, _, _)| g == id));
            let color = index.map_or(Color::undefined(), |i| Color::with_value(i as i32));
            let key = ids
                .iter()
                .find_map(|id| mine.iter().find(|(g, _, _)| g == id))
                .map_or(0, |(_, pos, _)| *pos as i32);
            let sub = world.split_by_color_with_key(color, key);
            if let (Some(sub), Some(i)) = (sub, index) {
                let id = ids[i];
                let want = groups[id].ranks.len();
                if sub.size() as usize != want {
                    return Err(CommError::new(format!(
                        "the {} group {id} should have {want} ranks, but MPI split {}; is the world the plan's mesh?",
                        groups[id].kind.as_str(),
                        sub.size()
                    )));
                }
                comms.push((id, sub));
            }
        }
        comms.push((groups.len(), world.duplicate()));
        Ok(MpiComm {
            universe: Some(universe),
            world,
            groups: comms,
            finished: false,
            scratch: Vec::new(),
        })
    }

    /// Every rank's `mine` (any lengths), in rank order, over the world:
    /// what bootstraps NCCL's unique ids under `mpirun` and `srun`.
    pub fn all_gather_blobs(&mut self, mine: &[u8]) -> Result<Vec<Vec<u8>>, CommError> {
        let n = self.world.size() as usize;
        let mut lens = vec![0u64; n];
        self.world
            .all_gather_into(&(mine.len() as u64), &mut lens[..]);
        let width = lens.iter().copied().max().unwrap_or(0) as usize;
        if width == 0 {
            return Ok(vec![Vec::new(); n]);
        }
        if width > i32::MAX as usize / n.max(1) {
            return Err(CommError::new(format!(
                "a bootstrap blob of {width} bytes is more than one MPI call carries"
            )));
        }
        let mut padded = mine.to_vec();
        padded.resize(width, 0);
        let mut all = vec![0u8; width * n];
        self.world.all_gather_into(&padded[..], &mut all[..]);
        Ok(all
            .chunks(width)
            .zip(&lens)
            .map(|(c, &l)| c[..(l as usize).min(c.len())].to_vec())
            .collect())
    }

    fn comm(&self, group: usize) -> Result<&SimpleCommunicator, CommError> {
        self.groups
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                CommError::new(format!(
                    "rank {} is not in group {group}, yet its program uses it",
                    self.world.rank()
                ))
            })
    }
}

impl Drop for MpiComm {
    fn drop(&mut self) {
        let comms = std::mem::take(&mut self.groups);
        if let Some(u) = self.universe.take() {
            if self.finished && !std::thread::panicking() {
                // Sub-communicators are freed before MPI is finalized.
                drop(comms);
                drop(u);
            } else {
                // Finalizing (or freeing communicators) now would wait for
                // ranks still inside a collective with this one: leave MPI
                // as it is and let the process exit with its error.
                std::mem::forget(comms);
                std::mem::forget(u);
            }
        }
    }
}

/// Checks that `t` can be handed to MPI as an f32 or bf16 host buffer of
/// at most `i32::MAX` elements.
fn check(t: &Tensor, what: &str) -> Result<Kind, CommError> {
    if t.device() != Device::Cpu {
        return Err(CommError::new(format!(
            "{what}: the MPI communicator takes CPU tensors, this one is on {:?} (CUDA tensors use NCCL)",
            t.device()
        )));
    }
    if !t.is_contiguous() {
        return Err(CommError::new(format!(
            "{what}: the tensor is not contiguous"
        )));
    }
    if t.numel() > i32::MAX as usize {
        return Err(CommError::new(format!(
            "{what}: {} elements is more than one MPI call carries; lower the bucket size",
            t.numel()
        )));
    }
    match t.kind() {
        k @ (Kind::Float | Kind::BFloat16) => Ok(k),
        k => Err(CommError::new(format!(
            "{what}: MPI collectives carry f32 and bf16 tensors, not {k:?}"
        ))),
    }
}

/// The f32 view of `t`'s storage.
///
/// # Safety
/// `t` must be a contiguous f32 CPU tensor that outlives the slice and is
/// not resized meanwhile.
unsafe fn view(t: &Tensor) -> &[f32] {
    std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel())
}

/// # Safety
/// As [`view`], and no other view of `t` may be alive.
unsafe fn view_mut(t: &mut Tensor) -> &mut [f32] {
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel())
}

/// Runs `f` on an f32 version of `t` (itself when it is f32) and copies the
/// result back into a bf16 `t`.
fn widened<R>(t: &mut Tensor, what: &str, f: impl FnOnce(&mut [f32]) -> R) -> Result<R, CommError> {
    match check(t, what)? {
        Kind::Float => Ok(f(unsafe { view_mut(t) })),
        _ => {
            let mut wide = t
                .f_to_kind(Kind::Float)
                .and_then(|w| w.f_contiguous())
                .map_err(|e| CommError::new(format!("{what}: widening bf16: {e}")))?;
            let r = f(unsafe { view_mut(&mut wide) });
            t.f_copy_(&wide)
                .map_err(|e| CommError::new(format!("{what}: narrowing to bf16: {e}")))?;
            Ok(r)
        }
    }
}

/// The f32 contents of `t` (itself when it is f32).
fn readable(t: &Tensor, what: &str) -> Result<Tensor, CommError> {
    match check(t, what)? {
        Kind::Float => Ok(t.shallow_clone()),
        _ => t
            .f_to_kind(Kind::Float)
            .and_then(|w| w.f_contiguous())
            .map_err(|e| CommError::new(format!("{what}: widening bf16: {e}"))),
    }
}

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn transport(&self) -> &'static str {
        "mpi"
    }

    fn world(&self) -> usize {
        // `init` keeps the world last, under the id after the plan's groups.
        self.groups.last().map_or(0, |(id, _)| *id)
    }

    fn group_rank(&self, group: usize) -> Result<(usize, usize), CommError> {
        let c = self.comm(group)?;
        Ok((c.rank() as usize, c.size() as usize))
    }

    fn all_reduce(&mut self, group: usize, t: &mut Tensor) -> Result<(), CommError> {
        // rsmpi has no MPI_IN_PLACE, so the sum lands in a buffer kept from
        // call to call: a fresh one per call costs page faults on every
        // page (and MPI's single-copy transport faults them again), which
        // measured 5 to 8 times slower than plain MPI at 1 to 16 MB.
        let mut out = std::mem::take(&mut self.scratch);
        let comm = self.comm(group)?;
        let r = widened(t, "all_reduce", |buf| {
            if out.len() < buf.len() {
                out.resize(buf.len(), 0.0);
            }
            let out = &mut out[..buf.len()];
            comm.all_reduce_into(&buf[..], out, SystemOperation::sum());
            buf.copy_from_slice(out);
        });
        self.scratch = out;
        r
    }

    fn all_gather(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError> {
        let comm = self.comm(group)?;
        let n = comm.size() as usize;
        if output.numel() != input.numel() * n {
            return Err(CommError::new(format!(
                "all_gather over group {group}: {} elements out for {} in from each of {n} ranks",
                output.numel(),
                input.numel()
            )));
        }
        let src = readable(input, "all_gather")?;
        widened(output, "all_gather", |out| {
            comm.all_gather_into(unsafe { view(&src) }, out);
        })
    }

    fn reduce_scatter(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError> {
        let comm = self.comm(group)?;
        let n = comm.size() as usize;
        if input.numel() != output.numel() * n {
            return Err(CommError::new(format!(
                "reduce_scatter over group {group}: {} elements in for {} out on each of {n} ranks",
                input.numel(),
                output.numel()
            )));
        }
        let src = readable(input, "reduce_scatter")?;
        widened(output, "reduce_scatter", |out| {
            comm.reduce_scatter_block_into(unsafe { view(&src) }, out, SystemOperation::sum());
        })
    }

    fn broadcast(&mut self, group: usize, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        let comm = self.comm(group)?;
        if root >= comm.size() as usize {
            return Err(CommError::new(format!(
                "broadcast over group {group} from position {root} of {}",
                comm.size()
            )));
        }
        widened(t, "broadcast", |buf| {
            comm.process_at_rank(root as i32).broadcast_into(buf);
        })
    }

    fn send(&mut self, t: &Tensor, peer: usize) -> Result<(), CommError> {
        if peer >= self.size() {
            return Err(CommError::new(format!(
                "send to rank {peer} of {}",
                self.size()
            )));
        }
        let src = readable(t, "send")?;
        self.world
            .process_at_rank(peer as i32)
            .send(unsafe { view(&src) });
        Ok(())
    }

    fn recv(&mut self, t: &mut Tensor, peer: usize) -> Result<(), CommError> {
        if peer >= self.size() {
            return Err(CommError::new(format!(
                "receive from rank {peer} of {}",
                self.size()
            )));
        }
        let from = self.world.process_at_rank(peer as i32);
        widened(t, "recv", |buf| {
            from.receive_into(buf);
        })
    }

    fn exchange(
        &mut self,
        sends: &[(&Tensor, usize)],
        recvs: &mut [(&mut Tensor, usize)],
    ) -> Result<(), CommError> {
        let n = self.size();
        if let Some(peer) = sends
            .iter()
            .map(|(_, p)| *p)
            .chain(recvs.iter().map(|(_, p)| *p))
            .find(|&p| p >= n)
        {
            return Err(CommError::new(format!("exchange with rank {peer} of {n}")));
        }
        let outgoing: Vec<Tensor> = sends
            .iter()
            .map(|(t, _)| readable(t, "send"))
            .collect::<Result<_, _>>()?;
        // Receives land in f32 buffers of their own, copied into the
        // tensors once every request is done.
        let mut incoming: Vec<Vec<f32>> = recvs
            .iter()
            .map(|(t, _)| check(t, "recv").map(|_| vec![0f32; t.numel()]))
            .collect::<Result<_, _>>()?;
        let world = &self.world;
        mpi::request::scope(|scope| {
            let mut requests = Vec::with_capacity(sends.len() + recvs.len());
            for (t, (_, peer)) in outgoing.iter().zip(sends) {
                // SAFETY: `t` is a contiguous f32 CPU tensor (checked by
                // `readable`) that outlives the scope.
                let buf = unsafe { view(t) };
                requests.push(
                    world
                        .process_at_rank(*peer as i32)
                        .immediate_send(scope, buf),
                );
            }
            for (buf, (_, peer)) in incoming.iter_mut().zip(recvs.iter()) {
                requests.push(
                    world
                        .process_at_rank(*peer as i32)
                        .immediate_receive_into(scope, &mut buf[..]),
                );
            }
            for r in requests {
                r.wait();
            }
        });
        for (buf, (t, _)) in incoming.iter().zip(recvs.iter_mut()) {
            Tensor::f_from_slice(buf)
                .and_then(|g| g.f_reshape(t.size()))
                .and_then(|g| t.f_copy_(&g))
                .map_err(|e| CommError::new(format!("recv: storing the message: {e}")))?;
        }
        Ok(())
    }

    fn barrier(&mut self, group: usize) -> Result<(), CommError> {
        self.comm(group)?.barrier();
        Ok(())
    }

    fn finish(&mut self) {
        self.finished = true;
    }
}
