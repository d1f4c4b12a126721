//! All-reduce bandwidth of enigma's communicator against plain MPI, in the
//! same run: for each size, `MPI_Allreduce` through rsmpi on a `Vec<f32>`
//! (the peer) and `Communicator::all_reduce` on a libtorch tensor through
//! the communicator the runtime uses (`MpiComm` behind the watchdog).
//! Prints one JSON line per size from rank 0.
//!
//! ```sh
//! bench/allreduce.sh            # builds this example and runs it on 2 ranks
//! ```

use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::traits::*;
use tch::Tensor;

use enigma::plan::program::{Group, GroupKind};
use enigma_torch::comm::mpi::MpiComm;
use enigma_torch::comm::watchdog::{Settings, Watched};
use enigma_torch::comm::Communicator;

fn main() {
    let world_size: usize = std::env::var("OMPI_COMM_WORLD_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let groups = vec![Group {
        kind: GroupKind::Data,
        axes: vec!["dp".into()],
        ranks: (0..world_size).collect(),
    }];
    let comm = match MpiComm::init(&groups) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let rank = comm.rank();
    let n = comm.size();
    let world = mpi::topology::SimpleCommunicator::world();
    let mut ours = Watched::new(
        comm,
        Settings {
            timeout: std::time::Duration::from_secs(120),
            heartbeats: None,
            groups: groups.clone(),
            world: n,
        },
    );
    for &elems in &[1usize << 10, 1 << 14, 1 << 18, 1 << 20, 1 << 22, 1 << 24] {
        let iters = ((1usize << 26) / elems).clamp(5, 2000);
        let send = vec![1.0f32; elems];
        let mut recv = vec![0.0f32; elems];
        // Warm up both paths once.
        world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
        let mut t = Tensor::ones([elems as i64], (tch::Kind::Float, tch::Device::Cpu));
        if let Err(e) = ours.all_reduce(0, &mut t) {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
        let best = |f: &mut dyn FnMut()| {
            let mut times = Vec::new();
            for _ in 0..5 {
                world.barrier();
                let s = Instant::now();
                for _ in 0..iters {
                    f();
                }
                world.barrier();
                times.push(s.elapsed().as_secs_f64() / iters as f64);
            }
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        };
        let raw =
            best(&mut || world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum()));
        let mine = best(&mut || {
            let _ = ours.all_reduce(0, &mut t);
        });
        if rank == 0 {
            let bytes = elems * 4;
            // Bus bandwidth as nccl-tests defines it for all-reduce:
            // bytes x 2 (n - 1) / n per second.
            let bus = |s: f64| bytes as f64 * 2.0 * (n as f64 - 1.0) / n as f64 / s / 1e9;
            println!(
                "{{\"ranks\":{n},\"bytes\":{bytes},\"mpi_s\":{raw:.3e},\"enigma_s\":{mine:.3e},\"mpi_busbw_gbs\":{:.3},\"enigma_busbw_gbs\":{:.3},\"enigma_over_mpi\":{:.3}}}",
                bus(raw),
                bus(mine),
                raw / mine
            );
        }
    }
    ours.finish();
}
