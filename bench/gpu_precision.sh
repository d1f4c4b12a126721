#!/usr/bin/env bash
# On a machine with a CUDA GPU: checks that `precision: bf16` runs the
# forward in bf16 and `precision: f16` in fp16 (issue 19, item 7). The build
# that set the autocast dtype explicitly (crates/enigma-torch/src/precision.rs,
# csrc/precision.cpp) had no GPU, so this is the check it could not run.
#
# 1. crates/enigma-torch/tests/precision.rs with ENIGMA_REQUIRE_CUDA=1: its
#    CUDA test (a matmul under `precision::autocast` on cuda:0 gives bf16,
#    resp. fp16; `tch::autocast` alone gives fp16) fails instead of skipping.
# 2. `enigma-run run --device cuda` on the quickstart with precision bf16,
#    then f16, for 2 steps, with ENIGMA_LOG_AUTOCAST=1: the backend's first
#    autocast region logs the dtype libtorch reports and the kind of an f32
#    matmul inside it; both must be the precision's.
# Prints one JSON line and exits non-zero on any mismatch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(./dev.sh env)"
PY=${PYTHON:-$HOME/.cache/enigma/torch-2.11.0/bin/python}
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU here")'

# Release, as the other bench scripts: a debug enigma-run took about 6
# minutes for one quickstart step on 2 shared CPU cores.
ENIGMA_REQUIRE_CUDA=1 cargo test --release -p enigma-torch --test precision -- --nocapture

cargo build --release -p enigma-torch --bin enigma-run
run_bin=${CARGO_TARGET_DIR:-target}/release/enigma-run
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A want=([bf16]=BFloat16 [f16]=Half)
for p in bf16 f16; do
  sed "s/  precision: f32/  precision: $p/" examples/quickstart.enigma > "$tmp/$p.enigma"
  grep -q "precision: $p" "$tmp/$p.enigma" || { echo "quickstart has no 'precision: f32' line" >&2; exit 1; }
  ENIGMA_LOG_AUTOCAST=1 "$run_bin" run --quiet --no-baselines --device cuda --steps 2 \
    --out "$tmp/run-$p" "$tmp/$p.enigma" 2> "$tmp/$p.log" || { cat "$tmp/$p.log" >&2; exit 1; }
  line=$(grep -m1 '^enigma: autocast on Cuda' "$tmp/$p.log") \
    || { echo "precision $p: no autocast line (ENIGMA_LOG_AUTOCAST)" >&2; cat "$tmp/$p.log" >&2; exit 1; }
  echo "precision $p: $line" >&2
  k=${want[$p]}
  case "$line" in
    *"asked $k, libtorch's dtype $k, an f32 matmul gives $k") ;;
    *) echo "precision $p: expected $k throughout" >&2; exit 1 ;;
  esac
done
echo '{"gpu_precision": "ok", "bf16": "BFloat16", "f16": "Half"}'
