//! The NCCL communicator: [`NcclComm`] runs the plan's collectives on CUDA
//! tensors through NCCL, which `cudarc` binds, using the very
//! `libnccl.so.2` that the PyTorch wheel ships next to libtorch.
//!
//! # Loading NCCL
//!
//! `cudarc` (0.19, `dynamic-loading`) finds NCCL by `dlopen`ing a fixed list
//! of bare names (`libnccl.so`, `libnccl.so.12`, `libnccl.so.1`, ...) that
//! does not contain `libnccl.so.2`, the only name the wheel ships
//! (`<site-packages>/nvidia/nccl/lib/libnccl.so.2`). What was measured on
//! Debian 12 (glibc 2.36) with a probe binary:
//!
//! - `LD_LIBRARY_PATH` pointing at the wheel's directory does not help:
//!   there is no `libnccl.so` there.
//! - A private directory with a symlink `libnccl.so -> .../libnccl.so.2`
//!   works when that directory is on `LD_LIBRARY_PATH` **when the process
//!   starts**. Setting `LD_LIBRARY_PATH` later (`std::env::set_var`) changes
//!   nothing: the dynamic loader reads it once, at startup.
//! - `dlopen`ing the symlink or `libnccl.so.2` by absolute path first
//!   (`RTLD_NOW | RTLD_GLOBAL`) does not help either: a later
//!   `dlopen("libnccl.so")` only matches loaded objects by the names they
//!   were opened under and by their SONAME, and the SONAME is
//!   `libnccl.so.2`.
//! - A RUNPATH entry of the executable naming such a directory works (the
//!   executable is the caller of `dlopen`, as cudarc is linked into it), but
//!   only if the directory exists when the process starts: glibc remembers
//!   RUNPATH directories it found missing while loading the executable's
//!   own libraries. A build script could create the directory in `OUT_DIR`
//!   and add `-Wl,-rpath,<it>`; this module does not depend on that.
//! - The symlink yields the same copy of NCCL that libtorch loaded, not a
//!   second one: glibc recognises an already loaded file by device and
//!   inode.
//!
//! So [`load`] locates the library ([`locate`]: `ENIGMA_NCCL_LIB`, else
//! next to libtorch), makes the private symlink directory ([`shim_dir`]) and
//! then checks whether cudarc can load NCCL in this process; if it cannot,
//! the error names the directory to put on `LD_LIBRARY_PATH`.
//! [`reexec_if_needed`] does that for a program: it re-executes the running
//! executable with that `LD_LIBRARY_PATH`, and must be called first thing in
//! `main`, before threads or MPI start.
//!
//! Every call into cudarc is gated on its non-panicking probes
//! (`is_culib_present`) and runs under `catch_unwind`, because cudarc panics
//! (rather than returning an error) when a library or a symbol is missing.
//!
//! # Streams
//!
//! NCCL work is enqueued on the legacy default stream (the null stream,
//! passed as a null `cudaStream_t`). tch 0.24 has no stream API, and
//! libtorch runs its kernels on the current stream of the device, which is
//! the default stream unless someone sets another (`CUDAStreamGuard`,
//! `setCurrentCUDAStream`); enigma never does. PyTorch's default stream is
//! the legacy null stream (handle 0), so NCCL's kernels are ordered after
//! the kernels that produced the inputs and before those that read the
//! outputs, with no events, and the caching allocator needs no
//! `recordStream`: memory freed on the default stream is only reused by
//! later work on that same stream. Should enigma ever compute on another
//! stream, this is the place to change (a small C++ shim can return
//! `c10::cuda::getCurrentCUDAStream`).
//!
//! By default every operation also waits until the device has done it
//! ([`NcclComm::set_wait`]): a collective that never completes then stays
//! inside the communicator, where the watchdog sees it, and an asynchronous
//! NCCL error (a peer that died) ends the wait as a [`CommError`]. The wait
//! polls the stream and the communicator's error state rather than
//! blocking in the driver.
//!
//! # Failures and shutdown
//!
//! Every error is a [`CommError`] naming the operation and the group.
//! Dropping the communicator destroys its NCCL communicators
//! (`ncclCommDestroy`, which waits for the other ranks) only after
//! [`Communicator::finish`] and when nothing failed; otherwise it aborts
//! them (`ncclCommAbort`), so that a failing rank exits at once and the
//! launcher ends the others.

mod bootstrap;
mod groups;
mod load;
#[cfg(test)]
mod tests;

pub use bootstrap::*;
use groups::*;
pub use load::*;

use std::ffi::{c_char, c_int, CStr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::CudaContext;
use cudarc::nccl::result::{self as nccl, NcclError, NcclStatus};
use cudarc::nccl::sys as nccl_sys;
use tch::{Device, Kind, Tensor};

use enigma::plan::program::Group;

use super::{CommError, Communicator};

/// The environment variable that overrides where NCCL is: the path of a
/// `libnccl.so.2`, or of the directory holding one.
pub const NCCL_LIB_ENV: &str = "ENIGMA_NCCL_LIB";

/// Set by [`reexec_if_needed`] in the environment of the re-executed
/// process (to the symlink directory), so that a second failure is reported
/// instead of re-executing forever.
pub const REEXEC_MARK_ENV: &str = "ENIGMA_NCCL_REEXEC";

/// The file name the PyTorch wheel ships NCCL under (also its SONAME).
pub(super) const NCCL_FILE: &str = "libnccl.so.2";

/// The first name cudarc's loader tries; the symlink gets this name.
pub(super) const CUDARC_NAME: &str = "libnccl.so";

/// The size of an `ncclUniqueId`.
pub(super) const ID_BYTES: usize = 128;

/// The key of the world communicator in the id exchange (group ids are
/// smaller: they index `Plan::groups`).
pub(super) const WORLD_KEY: u32 = u32::MAX;

/// One NCCL communicator and this rank's place in it.
#[derive(Clone, Copy, Debug)]
struct Member {
    /// The communicator, owned by the [`NcclComm`] holding this.
    comm: nccl_sys::ncclComm_t,
    /// This rank's position in it (its NCCL rank) and its size.
    pos: usize,
    size: usize,
}

/// NCCL communicators for one rank: one per group it belongs to, and one
/// over the world (a group's, when a group is the world in rank order).
pub struct NcclComm {
    /// This rank and the number of ranks in the world.
    rank: usize,
    world: usize,
    /// The CUDA device (ordinal) whose tensors this communicator carries.
    device: usize,
    /// Per group id, the world's last (id `groups.len()`, see
    /// [`Communicator::world`]): this rank's communicator, `None` where it
    /// is not a member.
    groups: Vec<Option<Member>>,
    /// Messages name groups by this, indexed like `groups`.
    names: Vec<String>,
    /// The device's primary context, current on the calling thread during
    /// every call (it is the context libtorch uses too).
    ctx: Option<Arc<CudaContext>>,
    /// A one-element buffer the barrier reduces.
    barrier_buf: Option<Tensor>,
    /// Whether each operation waits until the device has done it.
    wait: bool,
    /// Set once an NCCL call failed: the communicators are then aborted,
    /// not destroyed, on drop.
    failed: bool,
    /// Set by [`Communicator::finish`]: only then does dropping destroy the
    /// communicators cleanly, which waits for the other ranks.
    finished: bool,
}

// SAFETY: an NCCL communicator may be used from any thread, one call at a
// time; `&mut self` on every operation gives exactly that, and each call
// makes the device's context current on the calling thread first.
unsafe impl Send for NcclComm {}

impl NcclComm {
    /// Creates this rank's communicators: the first rank of each group (and
    /// rank 0 for the world) makes a unique id, `bootstrap` hands the ids
    /// round, and `ncclCommInitRank` runs per communicator in the same order
    /// on every rank. Every rank of the world must call this with the same
    /// `groups`; it blocks until the members of each group have arrived.
    pub fn new(
        rank: usize,
        world: usize,
        groups: &[Group],
        device: usize,
        bootstrap: &mut dyn Bootstrap,
    ) -> Result<NcclComm, CommError> {
        let plan = plan_comms(rank, world, groups)?;
        require_nccl("nccl setup")?;
        require_cuda("nccl setup")?;
        let mut names: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(id, g)| format!("group {id} ({})", describe(g)))
            .collect();
        names.push("the world".to_string());
        let mut me = NcclComm {
            rank,
            world,
            device,
            groups: vec![None; groups.len() + 1],
            names,
            ctx: None,
            barrier_buf: None,
            wait: true,
            failed: false,
            finished: false,
        };
        if let Err(e) = me.init(&plan, bootstrap) {
            // Dropping `me` aborts whatever was created: peers may be stuck.
            me.failed = true;
            return Err(e);
        }
        Ok(me)
    }

    /// The fallible part of [`NcclComm::new`].
    fn init(&mut self, plan: &CommPlan, bootstrap: &mut dyn Bootstrap) -> Result<(), CommError> {
        let device = self.device;
        let ctx = guarded("nccl setup", || {
            CudaContext::new(device).map_err(|e| {
                CommError::new(format!("nccl setup: cannot open CUDA device {device}: {e}"))
            })
        })?;
        self.ctx = Some(ctx);
        let mut make_id = || {
            guarded("ncclGetUniqueId", || {
                nccl::get_uniqueid()
                    .map(|id| id.internal.map(|c| c as u8))
                    .map_err(|e| {
                        nccl_error(
                            "ncclGetUniqueId",
                            "a new communicator",
                            e,
                            std::ptr::null_mut(),
                        )
                    })
            })
        };
        let ids = exchange_ids(self.rank, self.world, &plan.specs, bootstrap, &mut make_id)?;
        let world_id = self.groups.len() - 1;
        for (spec, id) in plan.specs.iter().zip(ids) {
            let slot = if spec.key == WORLD_KEY {
                world_id
            } else {
                spec.key as usize
            };
            let what = self.names[slot].clone();
            let unique = nccl_sys::ncclUniqueId {
                internal: id.map(|b| b as c_char),
            };
            let mut comm: nccl_sys::ncclComm_t = std::ptr::null_mut();
            // Positions and sizes fit in i32: the world does (plan_comms).
            let (size, pos) = (spec.size as c_int, spec.pos as c_int);
            guarded("ncclCommInitRank", || {
                // SAFETY: `comm` is a valid out-parameter and the id came
                // from ncclGetUniqueId on the root.
                unsafe { nccl::comm_init_rank(&mut comm, size, unique, pos) }
                    .map(|_| ())
                    .map_err(|e| nccl_error("ncclCommInitRank", &what, e, std::ptr::null_mut()))
            })?;
            let member = Member {
                comm,
                pos: spec.pos,
                size: spec.size,
            };
            self.groups[slot] = Some(member);
        }
        if let Some(g) = plan.world_group {
            // That group lists every rank in order, so positions in its
            // communicator are world ranks.
            self.groups[world_id] = self.groups[g];
        }
        Ok(())
    }

    /// Whether each operation returns only once the device has done it
    /// (the default) or as soon as it is enqueued. Waiting lets the
    /// watchdog see a collective that never completes and turns NCCL's
    /// asynchronous errors (a peer that died) into a [`CommError`] of the
    /// operation that met them; not waiting lets the host run ahead and
    /// queue more work meanwhile, and a hang then shows up wherever the
    /// host next waits for the device.
    pub fn set_wait(&mut self, wait: bool) {
        self.wait = wait;
    }

    /// The CUDA device this communicator serves.
    pub fn device(&self) -> usize {
        self.device
    }

    /// This rank's communicator for `group`.
    fn member(&self, op: &str, group: usize) -> Result<Member, CommError> {
        match self.groups.get(group) {
            Some(Some(m)) => Ok(*m),
            Some(None) => Err(CommError::new(format!(
                "nccl {op}: rank {} is not in {}, yet its program uses it",
                self.rank, self.names[group]
            ))),
            None => Err(CommError::new(format!(
                "nccl {op}: there is no group {group} (the plan has {}, and {} is the world)",
                self.groups.len() - 1,
                self.groups.len() - 1
            ))),
        }
    }

    /// The world communicator, for send and recv.
    fn world_comm(&self, op: &str) -> Result<nccl_sys::ncclComm_t, CommError> {
        self.member(op, self.groups.len() - 1).map(|m| m.comm)
    }

    /// Checks that `t` is a defined, contiguous f32 or bf16 tensor on this
    /// communicator's device; returns its NCCL type and element count.
    fn check(
        &self,
        op: &str,
        what: &str,
        t: &Tensor,
    ) -> Result<(nccl_sys::ncclDataType_t, usize), CommError> {
        let fail = |why: String| CommError::new(format!("nccl {op}: {what}: {why}"));
        if !t.defined() {
            return Err(fail("the tensor is undefined".into()));
        }
        if t.device() != Device::Cuda(self.device) {
            return Err(fail(format!(
                "the tensor is on {:?}, but this communicator serves cuda:{}",
                t.device(),
                self.device
            )));
        }
        if !t.is_contiguous() {
            return Err(fail("the tensor is not contiguous".into()));
        }
        let dtype = match t.f_kind() {
            Ok(Kind::Float) => nccl_sys::ncclDataType_t::ncclFloat32,
            Ok(Kind::BFloat16) => nccl_sys::ncclDataType_t::ncclBfloat16,
            Ok(k) => {
                return Err(fail(format!(
                    "{k:?} tensors are not supported (only f32 and bf16)"
                )))
            }
            Err(e) => return Err(fail(format!("unknown element type: {e}"))),
        };
        Ok((dtype, t.numel()))
    }

    /// Runs one NCCL call with the device's context current, turning its
    /// failure (or a panic, or an asynchronous error it reveals) into a
    /// [`CommError`] and marking the communicator failed.
    fn run(
        &mut self,
        op: &str,
        what: &str,
        comm: nccl_sys::ncclComm_t,
        call: impl FnOnce() -> Result<NcclStatus, NcclError>,
    ) -> Result<(), CommError> {
        self.run_then_wait(op, what, comm, call, self.wait)
    }

    /// [`NcclComm::run`], waiting for the device afterwards when `wait`.
    fn run_then_wait(
        &mut self,
        op: &str,
        what: &str,
        comm: nccl_sys::ncclComm_t,
        call: impl FnOnce() -> Result<NcclStatus, NcclError>,
        wait: bool,
    ) -> Result<(), CommError> {
        let ctx = self.ctx.clone();
        let r = guarded(&format!("nccl {op} on {what}"), || {
            if let Some(ctx) = &ctx {
                ctx.bind_to_thread().map_err(|e| {
                    CommError::new(format!(
                        "nccl {op} on {what}: making the CUDA context current: {e}"
                    ))
                })?;
            }
            call().map_err(|e| nccl_error(op, what, e, comm))?;
            async_error(comm).map_err(|e| nccl_error(op, what, e, comm))?;
            if wait {
                wait_for_device(op, what, comm)?;
            }
            Ok(())
        });
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// The name of `group` for messages.
    fn name(&self, group: usize) -> String {
        self.names
            .get(group)
            .cloned()
            .unwrap_or_else(|| format!("group {group}"))
    }
}

/// Waits until the default stream has done everything enqueued on it,
/// polling (rather than blocking in the driver) so that an asynchronous
/// NCCL error on `comm`, such as a peer that died, ends the wait with an
/// error instead of leaving the kernel waiting forever.
fn wait_for_device(op: &str, what: &str, comm: nccl_sys::ncclComm_t) -> Result<(), CommError> {
    use cudarc::driver::sys::{cuStreamQuery, CUresult};
    let started = Instant::now();
    loop {
        // SAFETY: the null stream is valid in the current context.
        match unsafe { cuStreamQuery(std::ptr::null_mut()) } {
            CUresult::CUDA_SUCCESS => return Ok(()),
            CUresult::CUDA_ERROR_NOT_READY => {}
            other => {
                return Err(CommError::new(format!(
                    "nccl {op} on {what}: waiting for the device: {}",
                    cudarc::driver::result::DriverError(other)
                )))
            }
        }
        async_error(comm).map_err(|e| nccl_error(op, what, e, comm))?;
        // Spin briefly (collectives often take microseconds), then back
        // off so a long wait does not burn a core.
        if started.elapsed() < Duration::from_millis(1) {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// An asynchronous error NCCL recorded on `comm` (e.g. a peer that
/// failed), as an error.
fn async_error(comm: nccl_sys::ncclComm_t) -> Result<(), NcclError> {
    let mut state = nccl_sys::ncclResult_t::ncclSuccess;
    // SAFETY: `comm` is a live communicator and `state` a valid
    // out-parameter.
    unsafe { nccl_sys::ncclCommGetAsyncError(comm, &mut state) }.result()?;
    state.result().map(|_| ())
}

/// An NCCL failure as a [`CommError`], with NCCL's description of the code
/// and the last error it logged for the communicator.
fn nccl_error(op: &str, what: &str, e: NcclError, comm: nccl_sys::ncclComm_t) -> CommError {
    // SAFETY: both return static or per-communicator NUL-terminated
    // strings (or null); the library is loaded since it produced `e`.
    let text = unsafe { c_text(nccl_sys::ncclGetErrorString(e.0)) };
    // SAFETY: as above; a null communicator asks for the thread's last
    // error, which NCCL allows.
    let last = unsafe { c_text(nccl_sys::ncclGetLastError(comm)) };
    let detail = if last.is_empty() {
        String::new()
    } else {
        format!("; {last}")
    };
    CommError::new(format!("nccl {op} on {what}: {:?} ({text}){detail}", e.0))
}

/// A C string as text, empty for null.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string.
unsafe fn c_text(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().trim().to_string()
    }
}

/// The legacy default stream: see the module documentation.
fn null_stream() -> nccl_sys::cudaStream_t {
    std::ptr::null_mut()
}

/// Whether two byte ranges overlap.
fn overlaps(a: usize, a_len: usize, b: usize, b_len: usize) -> bool {
    a < b + b_len && b < a + a_len
}

/// The size in bytes of one element of an NCCL type we use.
fn elem_bytes(dtype: nccl_sys::ncclDataType_t) -> usize {
    match dtype {
        nccl_sys::ncclDataType_t::ncclBfloat16 => 2,
        _ => 4,
    }
}

impl Communicator for NcclComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.world
    }

    fn transport(&self) -> &'static str {
        "nccl"
    }

    fn world(&self) -> usize {
        self.groups.len() - 1
    }

    fn group_rank(&self, group: usize) -> Result<(usize, usize), CommError> {
        self.member("group_rank", group).map(|m| (m.pos, m.size))
    }

    fn all_reduce(&mut self, group: usize, t: &mut Tensor) -> Result<(), CommError> {
        let m = self.member("all_reduce", group)?;
        let (dtype, n) = self.check("all_reduce", "tensor", t)?;
        if n == 0 {
            return Ok(());
        }
        let p = t.data_ptr();
        let what = self.name(group);
        self.run("all_reduce", &what, m.comm, || {
            // SAFETY: `p` addresses `n` contiguous elements of `dtype` on
            // the communicator's device (checked); in place is allowed.
            unsafe {
                nccl::all_reduce(
                    p,
                    p,
                    n,
                    dtype,
                    nccl_sys::ncclRedOp_t::ncclSum,
                    m.comm,
                    null_stream(),
                )
            }
        })
    }

    fn all_gather(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError> {
        let m = self.member("all_gather", group)?;
        let (dtype, n) = self.check("all_gather", "input", input)?;
        let (out_type, out_n) = self.check("all_gather", "output", output)?;
        if out_type != dtype || out_n != n * m.size {
            return Err(CommError::new(format!(
                "nccl all_gather on {}: output must hold {} x {n} elements of {dtype:?}, it has {out_n} of {out_type:?}",
                self.name(group),
                m.size
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let (src, dst) = (input.data_ptr(), output.data_ptr());
        let b = elem_bytes(dtype);
        // NCCL allows in place only where the input is this rank's part of
        // the output; any other overlap would be undefined.
        if overlaps(src as usize, n * b, dst as usize, out_n * b)
            && src as usize != dst as usize + m.pos * n * b
        {
            return Err(CommError::new(format!(
                "nccl all_gather on {}: the input overlaps the output other than as this rank's part",
                self.name(group)
            )));
        }
        let what = self.name(group);
        self.run("all_gather", &what, m.comm, || {
            // SAFETY: both buffers were checked for device, type, layout
            // and size.
            unsafe { nccl::all_gather(src, dst, n, dtype, m.comm, null_stream()) }
        })
    }

    fn reduce_scatter(
        &mut self,
        group: usize,
        input: &Tensor,
        output: &mut Tensor,
    ) -> Result<(), CommError> {
        let m = self.member("reduce_scatter", group)?;
        let (dtype, in_n) = self.check("reduce_scatter", "input", input)?;
        let (out_type, n) = self.check("reduce_scatter", "output", output)?;
        if out_type != dtype || in_n != n * m.size {
            return Err(CommError::new(format!(
                "nccl reduce_scatter on {}: input must hold {} x {n} elements of {out_type:?}, it has {in_n} of {dtype:?}",
                self.name(group),
                m.size
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let (src, dst) = (input.data_ptr(), output.data_ptr());
        let b = elem_bytes(dtype);
        // In place only where the output is this rank's part of the input.
        if overlaps(src as usize, in_n * b, dst as usize, n * b)
            && dst as usize != src as usize + m.pos * n * b
        {
            return Err(CommError::new(format!(
                "nccl reduce_scatter on {}: the output overlaps the input other than as this rank's part",
                self.name(group)
            )));
        }
        let what = self.name(group);
        self.run("reduce_scatter", &what, m.comm, || {
            // SAFETY: both buffers were checked for device, type, layout
            // and size.
            unsafe {
                nccl::reduce_scatter(
                    src,
                    dst,
                    n,
                    dtype,
                    nccl_sys::ncclRedOp_t::ncclSum,
                    m.comm,
                    null_stream(),
                )
            }
        })
    }

    fn broadcast(&mut self, group: usize, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        let m = self.member("broadcast", group)?;
        if root >= m.size {
            return Err(CommError::new(format!(
                "nccl broadcast on {}: root position {root} is outside a group of {}",
                self.name(group),
                m.size
            )));
        }
        let (dtype, n) = self.check("broadcast", "tensor", t)?;
        if n == 0 {
            return Ok(());
        }
        let p = t.data_ptr();
        let what = self.name(group);
        self.run("broadcast", &what, m.comm, || {
            // SAFETY: `p` was checked; root fits i32 as the group does.
            unsafe { nccl::broadcast(p, p, n, dtype, root as c_int, m.comm, null_stream()) }
        })
    }

    fn send(&mut self, t: &Tensor, peer: usize) -> Result<(), CommError> {
        if peer >= self.world || peer == self.rank {
            return Err(CommError::new(format!(
                "nccl send: peer {peer} is not another rank of a world of {} (this is rank {})",
                self.world, self.rank
            )));
        }
        let comm = self.world_comm("send")?;
        let (dtype, n) = self.check("send", "tensor", t)?;
        if n == 0 {
            return Ok(());
        }
        let p = t.data_ptr();
        let what = format!("the world (to rank {peer})");
        self.run("send", &what, comm, || {
            // SAFETY: `p` was checked; the world comm's positions are ranks.
            unsafe { nccl::send(p, n, dtype, peer as c_int, comm, null_stream()) }
        })
    }

    fn recv(&mut self, t: &mut Tensor, peer: usize) -> Result<(), CommError> {
        if peer >= self.world || peer == self.rank {
            return Err(CommError::new(format!(
                "nccl recv: peer {peer} is not another rank of a world of {} (this is rank {})",
                self.world, self.rank
            )));
        }
        let comm = self.world_comm("recv")?;
        let (dtype, n) = self.check("recv", "tensor", t)?;
        if n == 0 {
            return Ok(());
        }
        let p = t.data_ptr();
        let what = format!("the world (from rank {peer})");
        self.run("recv", &what, comm, || {
            // SAFETY: `p` was checked; the world comm's positions are ranks.
            unsafe { nccl::recv(p, n, dtype, peer as c_int, comm, null_stream()) }
        })
    }

    fn exchange(
        &mut self,
        sends: &[(&Tensor, usize)],
        recvs: &mut [(&mut Tensor, usize)],
    ) -> Result<(), CommError> {
        let comm = self.world_comm("exchange")?;
        let mut calls: Vec<(
            bool,
            *mut std::ffi::c_void,
            usize,
            nccl_sys::ncclDataType_t,
            usize,
        )> = Vec::new();
        for (t, peer) in sends {
            let (dtype, n) = self.check("send", "tensor", t)?;
            calls.push((true, t.data_ptr(), n, dtype, *peer));
        }
        for (t, peer) in recvs.iter() {
            let (dtype, n) = self.check("recv", "tensor", t)?;
            calls.push((false, t.data_ptr(), n, dtype, *peer));
        }
        if let Some(&(_, _, _, _, peer)) =
            calls.iter().find(|c| c.4 >= self.world || c.4 == self.rank)
        {
            return Err(CommError::new(format!(
                "nccl exchange: peer {peer} is not another rank of a world of {} (this is rank {})",
                self.world, self.rank
            )));
        }
        let what = "the world (pipeline transfers)".to_string();
        self.run("exchange", &what, comm, || {
            nccl::group_start()?;
            for &(send, p, n, dtype, peer) in &calls {
                if n == 0 {
                    continue;
                }
                // SAFETY: every pointer was checked to be a contiguous
                // tensor of `n` elements on this device, alive until the
                // group ends and the device has waited.
                let r = unsafe {
                    if send {
                        nccl::send(p, n, dtype, peer as c_int, comm, null_stream())
                    } else {
                        nccl::recv(p, n, dtype, peer as c_int, comm, null_stream())
                    }
                };
                if let Err(e) = r {
                    let _ = nccl::group_end();
                    return Err(e);
                }
            }
            nccl::group_end()
        })
    }

    /// Sums a one-element buffer over the group and waits for the default
    /// stream: that reduction cannot finish before every member has
    /// enqueued it, so returning means every member arrived.
    fn barrier(&mut self, group: usize) -> Result<(), CommError> {
        let m = self.member("barrier", group)?;
        if self.barrier_buf.is_none() {
            let buf =
                Tensor::f_zeros([1], (Kind::Float, Device::Cuda(self.device))).map_err(|e| {
                    CommError::new(format!(
                        "nccl barrier on {}: allocating its buffer: {e}",
                        self.name(group)
                    ))
                })?;
            self.barrier_buf = Some(buf);
        }
        let p = match &self.barrier_buf {
            Some(buf) => buf.data_ptr(),
            None => return Err(CommError::new("nccl barrier: no buffer")),
        };
        let what = self.name(group);
        self.run_then_wait(
            "barrier",
            &what,
            m.comm,
            || {
                // SAFETY: `p` is our one-element f32 buffer on the device.
                unsafe {
                    nccl::all_reduce(
                        p,
                        p,
                        1,
                        nccl_sys::ncclDataType_t::ncclFloat32,
                        nccl_sys::ncclRedOp_t::ncclSum,
                        m.comm,
                        null_stream(),
                    )
                }
            },
            true,
        )
    }

    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for NcclComm {
    /// Destroys the communicators after [`Communicator::finish`]; otherwise
    /// (a failing rank, a panic, an NCCL error) aborts them, since
    /// destroying waits for work, and for peers, that may never come.
    /// Errors are reported on stderr: a drop has no one to return them to.
    fn drop(&mut self) {
        let mut comms: Vec<nccl_sys::ncclComm_t> = Vec::new();
        // The world entry may share a group's communicator: free it once.
        for m in self.groups.iter().flatten() {
            if !m.comm.is_null() && !comms.contains(&m.comm) {
                comms.push(m.comm);
            }
        }
        if comms.is_empty() {
            return;
        }
        // The buffer belongs to libtorch; free it before the context goes.
        self.barrier_buf = None;
        let ctx = self.ctx.clone();
        let abort_all = self.failed || !self.finished || std::thread::panicking();
        for comm in comms {
            let r = guarded("nccl teardown", || {
                if let Some(ctx) = &ctx {
                    ctx.bind_to_thread().map_err(|e| {
                        CommError::new(format!("making the CUDA context current: {e}"))
                    })?;
                }
                let abort = abort_all || async_error(comm).is_err();
                // SAFETY: `comm` is a communicator we created and destroy
                // exactly once.
                let r = unsafe {
                    if abort {
                        nccl::comm_abort(comm)
                    } else {
                        nccl::comm_destroy(comm)
                    }
                };
                r.map(|_| ()).map_err(|e| {
                    nccl_error(
                        if abort {
                            "ncclCommAbort"
                        } else {
                            "ncclCommDestroy"
                        },
                        "a communicator",
                        e,
                        std::ptr::null_mut(),
                    )
                })
            });
            if let Err(e) = r {
                eprintln!("warning: {e}");
            }
        }
    }
}
