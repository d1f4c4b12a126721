#!/usr/bin/env bash
# One data-parallel training step of the quickstart on 2 processes (the 2
# cores of this machine, one thread each): enigma (`mesh { dp: 2 }`, MPI)
# against PyTorch DDP on gloo (bench/ddp_gloo.py, the same model, batch and
# optimiser), in the same run. Prints both medians and the ratio
# enigma / PyTorch (below 1 means enigma is faster). Recorded in
# docs/benchmarks.md.
#
# enigma's step time is `step_s` of rank 0's metrics.jsonl (the backend's
# train_step: loads, forward, backward, the gradient all-reduce, clipping and
# the optimiser), median over steps 6 to 25. A step of rank 0 ends after
# the all-reduce, which waits for rank 1, so it is the slower rank's step,
# as the PyTorch figure is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(./dev.sh env)"
cargo build --release --workspace
PY=${PYTHON:-$HOME/.cache/enigma/torch-2.11.0/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/  mesh { dp: 1 }/  mesh { dp: 2 }/' examples/quickstart.enigma > "$tmp/dp2.enigma"
root=()
[ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
mpirun "${root[@]}" -n 2 --bind-to none -x OMP_NUM_THREADS=1 \
  target/release/enigma-run run --quiet --steps 25 --out "$tmp/run" "$tmp/dp2.enigma"
torch=$("$PY" bench/ddp_gloo.py --steps 20 --warmup 5 | tail -n 1)
"$PY" - "$tmp/run/metrics.jsonl" "$torch" <<'PY'
import json, statistics, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
times = [r["step_s"] for r in steps if r["kind"] == "train" and r["step"] > 5]
enigma = statistics.median(times)
torch = json.loads(sys.argv[2])["median_step_s"]
print(json.dumps({"enigma_mpi_median_step_s": round(enigma, 4),
                  "pytorch_ddp_gloo_median_step_s": round(torch, 4),
                  "enigma_over_pytorch": round(enigma / torch, 3),
                  "steps": len(times)}))
PY
