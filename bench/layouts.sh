#!/usr/bin/env bash
# Every layout of examples/parallel/ trained for 30 steps under mpirun
# (one thread per process), each rank's measured step time and memory set
# beside `enigma plan`'s estimates for the same layout on this machine's
# figures. Recorded in docs/benchmarks.md ("Tensor and pipeline
# parallelism: measured against the estimate").
#
# This machine's figures for the cost model are measured first, in the same
# run: one thread's f32 matrix-product rate through libtorch (the peak the
# plan's compute is divided by, at efficiency 1) and the all-reduce bus
# bandwidth and latency between two processes over MPI (the "NVLink" of a
# one-node cluster of 2 cores), so the estimate is the planner's model of
# this machine rather than of an H100 node. Layouts of 4 processes share
# the 2 cores (oversubscribed): their step times include that sharing,
# which the cost model does not know of.
#
# Measured memory is the growth of each rank's resident set from the start
# of training (weights and optimiser state placed, data opened) to its peak
# during training (ranks/rank-N.json); the estimate beside it is what the
# planner counts for the same: the rank's activations, gradients and
# communication buffers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(./dev.sh env)"
cargo build --release --workspace
cargo build --release -p enigma-torch --example allreduce
PY=${PYTHON:-$HOME/.cache/enigma/torch-2.11.0/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=()
[ "$(id -u)" = 0 ] && root=(--allow-run-as-root)

# This machine: one thread's matrix-product rate, and MPI between 2 ranks.
flops=$("$PY" - <<'PY'
import time, torch
torch.set_num_threads(1)
a, b = torch.randn(512, 512), torch.randn(512, 512)
for _ in range(3):
    a @ b
t = time.perf_counter(); n = 20
for _ in range(n):
    a @ b
print(2 * 512**3 * n / (time.perf_counter() - t) / 1e12)
PY
)
link=$(mpirun "${root[@]}" -n 2 --bind-to none -x OMP_NUM_THREADS=1 \
  target/release/examples/allreduce | tr '\n' ' ')
"$PY" - "$flops" "$link" "$tmp" "${root[*]}" <<'PY'
import json, os, re, statistics, subprocess, sys
flops, link, tmp, root = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split()
# The best all-reduce bus bandwidth, and the time of the smallest one as
# the latency.
rows = [json.loads(x) for x in re.findall(r"\{[^}]*\}", link)]
bw = max(r["enigma_busbw_gbs"] for r in rows)
lat = min(r["enigma_s"] for r in rows) * 1e6
layouts = [("tp2", 2), ("tp2_sequence_parallel", 2), ("pp2_1f1b", 2), ("pp2_gpipe", 2),
           ("tp2_pp2", 4), ("dp2_tp2_zero1", 4), ("dp2_pp2_checkpointed", 4)]
print(f"machine: {flops * 1e3:.1f} GFLOP/s per thread (f32 matmul), MPI {bw:.2f} GB/s, {lat:.1f} us")
print("| layout | processes | rank | stage | measured step (median) | estimated step | measured memory growth | estimated memory |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name, n in layouts:
    src = f"examples/parallel/{name}.enigma"
    plan = subprocess.run(
        ["target/release/enigma", "plan", src, "--world", str(n), "--gpus-per-node", str(n),
         "--peak-tflops", f"{flops:.6f}", "--efficiency", "1", "--nvlink-bandwidth", f"{bw:.3f}",
         "--nvlink-latency", f"{lat:.3f}"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"step: ([0-9.]+) (us|ms|s)\b", plan)
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
    est = float(m.group(1)) * scale[m.group(2)] if m else float("nan")
    run = os.path.join(tmp, name)
    subprocess.run(["mpirun", *root, "-n", str(n), "--oversubscribe", "--bind-to", "none",
                    "-x", "OMP_NUM_THREADS=1", "target/release/enigma-run", "run", "--quiet",
                    "--steps", "30", "--out", run, src], check=True)
    for r in range(n):
        rec = json.load(open(os.path.join(run, "ranks", f"rank-{r:05}.json")))
        grow = rec["memory"]["peak_rss_bytes"] - rec["memory"]["rss_start_bytes"]
        e = rec["estimate"]
        added = e["activations_bytes"] + e["grads_bytes"] + e["buffers_bytes"]
        print(f"| {name} | {n} | {r} | {rec['stage']} | {rec['step_s']['median']:.3f} s | "
              f"{est:.3f} s | {grow / 1e6:.0f} MB | {added / 1e6:.0f} MB |")
PY
