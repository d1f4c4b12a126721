#!/usr/bin/env python3
"""Peak memory and loader throughput of a study of many sessions.

Writes, in a temporary folder, SESSIONS recordings of CELLS cells for
MINUTES at 30 Hz, each one ROI-major float32 `.npy` file as suite2p stores
`F.npy` (the full size is 64 x 200 cells x 1 h: 5.5 GB), then trains a
small masked model on the first FEW files and on all of them for a few
steps with the enigma release binary, and prints for each:

- the peak resident set (max RSS) of the whole process, from `time`;
- the seconds spent before training (checking every file's header, then
  one pass over every value for the non-finite check and `zscore`'s
  statistics);
- windows per second while training (steps/s x batch, from
  `metrics.jsonl`), beside the same figure for the few-file run.

Peak RSS should be about the same for both runs: the loader reads a window
at a time (`src/dataset/loader/lazy.rs`), so the data's size does not
matter. The model is small so that the loader, not the model, is what is
measured; `--no-baselines` keeps the ridge baseline (which reads every
training window) out of the timing.

Uses only the Python standard library. Run from the repository root:

    cargo build --release -p enigma-torch
    python3 bench/many_sessions.py            # 64 x 200 cells x 60 min
    python3 bench/many_sessions.py --minutes 5 --sessions 16   # a quick look
"""

import argparse
import array
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

RATE = 30


def npy_header(shape):
    """A version 1.0 header for a little-endian float32 C-order array."""
    dims = ", ".join(str(d) for d in shape)
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % dims
    text += " " * ((64 - (11 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()


def write_study(folder, sessions, cells, samples):
    """Writes the recordings: each cell is one of 32 distinct traces (slow
    waves with noise) plus an offset of its own, so writing 5.5 GB takes
    seconds rather than the minutes pure Python would need per value."""
    rng = random.Random(7)
    bases = []
    for k in range(32):
        f = 0.05 + 0.01 * k
        trace = array.array(
            "f",
            (
                1.0 + math.sin(2 * math.pi * f * i / RATE) + 0.3 * rng.random()
                for i in range(samples)
            ),
        )
        bases.append(trace.tobytes())
    for s in range(sessions):
        path = os.path.join(folder, "ses-%02d.npy" % s)
        with open(path, "wb") as f:
            f.write(npy_header((cells, samples)))
            for c in range(cells):
                f.write(bases[(c * 7 + s) % len(bases)])
    return sessions * cells * samples * 4


EXPERIMENT = """
use std::nn::{{Transformer}}
use std::tokenize::{{ScalarSteps}}
use std::readout::{{PerStep}}
use std::losses::{{mse}}

dim T = 2s
dim N = {cells}
dim d = 32

data f = npy("{pattern}", axes: [N, T], rate: 30Hz) {{
  window: T
  stride: 2s
  split: by_time(train: 0.8, val: 0.1, test: 0.1)
}}

modality fluor: series<f32>[T @ 30Hz, N] from f | zscore()
modality target: series<f32>[T @ 30Hz, N] from f | zscore()

tokenizer tok = ScalarSteps(d: d)(fluor)

model m {{
  let h = Transformer(layers: 1, d: d, heads: 4, ffn: 2 * d)(tok)
  predict target = PerStep(d: d)(reshape[seq -> T](h), target)
}}

loss mse(m.target, target)

train {{
  optimizer: adamw(lr: 1e-3)
  steps: {steps}
  batch: {batch}
  precision: f32
  eval {{ every: 100000, split: val, batches: 1 }}
}}

parallel {{
  mesh {{ dp: 1 }}
  batch -> dp
}}
"""


def run(binary, folder, pattern, cells, steps, batch):
    exp = os.path.join(folder, "bench-%s.enigma" % re.sub(r"\W", "", pattern))
    with open(exp, "w") as f:
        f.write(EXPERIMENT.format(cells=cells, pattern=pattern, steps=steps, batch=batch))
    out = os.path.join(folder, "run-" + os.path.basename(exp))
    shutil.rmtree(out, ignore_errors=True)
    start = time.time()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS_KIB %M", binary, "run", exp, "--out", out,
         "--quiet", "--no-baselines"],
        capture_output=True,
        text=True,
    )
    wall = time.time() - start
    if proc.returncode != 0:
        sys.exit("enigma failed on %s:\n%s\n%s" % (pattern, proc.stdout, proc.stderr))
    rss = int(re.search(r"MAXRSS_KIB (\d+)", proc.stderr).group(1))
    records = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if l.strip()]
    train = [r for r in records if "steps_per_s" in r]
    steps_per_s = train[-1]["steps_per_s"]
    training_s = train[-1]["step"] / steps_per_s
    return {
        "rss_mib": rss / 1024,
        "wall_s": wall,
        "before_training_s": wall - training_s,
        "windows_per_s": steps_per_s * batch,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--enigma", default="target/release/enigma-run")
    p.add_argument("--sessions", type=int, default=64)
    p.add_argument("--few", type=int, default=8)
    p.add_argument("--cells", type=int, default=200)
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--keep", help="write the study here and keep it")
    a = p.parse_args()
    folder = a.keep or tempfile.mkdtemp(prefix="enigma-many-sessions-")
    os.makedirs(folder, exist_ok=True)
    samples = int(a.minutes * 60 * RATE)
    try:
        t = time.time()
        size = write_study(folder, a.sessions, a.cells, samples)
        print("wrote %d sessions x %d cells x %d samples: %.2f GB in %.0f s"
              % (a.sessions, a.cells, samples, size / 1e9, time.time() - t))
        few = "ses-0[0-%d].npy" % (a.few - 1) if a.few <= 10 else None
        if few is None:
            sys.exit("--few must be at most 10")
        rows = []
        for label, pattern, n in [("few", few, a.few), ("all", "ses-*.npy", a.sessions)]:
            r = run(a.enigma, folder, pattern, a.cells, a.steps, a.batch)
            r.update(sessions=n, gb=n * a.cells * samples * 4 / 1e9)
            rows.append(r)
            print("%3d sessions (%5.2f GB): peak RSS %7.1f MiB, %5.1f s before training, "
                  "%6.1f windows/s training, %5.1f s wall"
                  % (n, r["gb"], r["rss_mib"], r["before_training_s"], r["windows_per_s"],
                     r["wall_s"]))
        few_r, all_r = rows
        print("ratio all/few: data %.1fx, peak RSS %.2fx, windows/s %.2fx"
              % (all_r["gb"] / few_r["gb"], all_r["rss_mib"] / few_r["rss_mib"],
                 all_r["windows_per_s"] / few_r["windows_per_s"]))
    finally:
        if not a.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
