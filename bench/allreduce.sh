#!/usr/bin/env bash
# All-reduce of enigma's communicator (MpiComm behind the watchdog, on
# libtorch CPU tensors) against plain MPI_Allreduce through rsmpi, same
# sizes, same run, 2 ranks on this machine. Prints one JSON line per size;
# `enigma_over_mpi` is the ratio of bandwidths (1.0 = no overhead).
# Recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(./dev.sh env)"
cargo build --release -p enigma-torch --example allreduce
root=()
[ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
mpirun "${root[@]}" -n "${RANKS:-2}" --bind-to none -x OMP_NUM_THREADS=1 \
  target/release/examples/allreduce
