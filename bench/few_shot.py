#!/usr/bin/env python3
"""A held-out session, fitted few-shot on a pretrained model, against a
model trained on that session alone.

`real` (the default): the suite2p recording in `examples/data/` (219 ROIs over 2,000 frames, 20
of them cells) is split in time into two files per array, as two sessions
of one animal would be stored: `a/` holds frames 0 to 999, `b/` frames 1,000
to 1,999. The experiment is `examples/suite2p_calcium.enigma`, its paths
pointed at the halves:

1. **pretrained**: trained on session `a` (split 0.8 / 0.1 / 0.1 in time);
2. **few-shot**: session `b` (split 0.6 / 0.2 / 0.2), starting from the
   pretrained run's shared weights and training only `b`'s own tables
   (`enigma run --init-from RUN --freeze-shared`): the cells' input weights
   of `VisibleSteps` and the read-out of `PerStep`;
3. **fine-tuned**: the same start, every weight trained;
4. **alone**: session `b` with the same split and settings, every weight
   trained from scratch on its 20 s of training recording.

`synthetic`: `examples/multi_session.enigma` (8 simulated sessions of 24 to
52 neurons, 600 s each) is the pretrained run; the new session is another
simulated animal (seed 99, 40 neurons) of which only the first 60 s train
(split 0.1 / 0.45 / 0.45), each `b` model for 200 steps.

The `b` models are scored with `enigma eval` on `b`'s validation and test
splits (held-out cells of a held-out session: the masked cells' activity
from the visible ones), beside the best built-in baseline on the same
windows. Standard library only. From the repository root:

    cargo build --release -p enigma-torch
    python3 bench/few_shot.py --enigma target/release/enigma-run           # real, 30 s
    python3 bench/few_shot.py --enigma target/release/enigma-run synthetic # 8 min
"""

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile

HALF = 1000


def read_npy(path):
    """(shape, descr, header bytes, data bytes) of a C-order `.npy`."""
    raw = open(path, "rb").read()
    if raw[:6] != b"\x93NUMPY":
        sys.exit("%s is not an .npy file" % path)
    major = raw[6]
    (n, at) = (int.from_bytes(raw[8:10], "little"), 10) if major == 1 else (
        int.from_bytes(raw[8:12], "little"), 12)
    header = ast.literal_eval(raw[at:at + n].decode("latin1"))
    if header["fortran_order"]:
        sys.exit("%s is in Fortran order" % path)
    return header["shape"], header["descr"], raw[at + n:]


def write_npy(path, shape, descr, data):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    text = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    text += " " * ((64 - (11 + len(text) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode())
        f.write(data)


def split_halves(real, folder):
    """Writes `a/` and `b/` with the first and second half of each [N, T]
    array in time, and `iscell.npy` as it is."""
    for name in ["F", "spks"]:
        shape, descr, data = read_npy(os.path.join(real, name + ".npy"))
        n, t = shape
        size = len(data) // (n * t)
        row = t * size
        for half, (lo, hi) in [("a", (0, HALF)), ("b", (HALF, t))]:
            part = b"".join(data[r * row + lo * size: r * row + hi * size] for r in range(n))
            os.makedirs(os.path.join(folder, half), exist_ok=True)
            write_npy(os.path.join(folder, half, name + ".npy"), (n, hi - lo), descr, part)
    shutil.copy(os.path.join(real, "iscell.npy"), os.path.join(folder, "iscell.npy"))


def experiment(template, half, split):
    text = template
    for name in ["F", "spks"]:
        text = text.replace('"data/%s.npy"' % name, '"%s/%s.npy"' % (half, name))
    text = text.replace('"data/iscell.npy"', '"iscell.npy"')
    text = text.replace("by_time(train: 0.8, val: 0.1, test: 0.1)", split)
    if '"data/' in text:
        sys.exit("the example reads a file this script does not split")
    return text


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s\n%s" % (" ".join(cmd), p.stdout, p.stderr))
    return p.stdout + p.stderr


def score(binary, run_dir, split):
    text = run([binary, "eval", run_dir, "--split", split])
    model = re.search(r"correlation (-?[\d.]+)", text)
    base = re.search(r"best baseline \(chosen on validation\): (.*) correlation (-?[\d.]+)", text)
    loss = re.search(r"loss (-?[\d.]+)", text)
    return (float(model.group(1)), float(loss.group(1)),
            (base.group(1).strip(), float(base.group(2))) if base else None)


def synthetic_experiments():
    template = open("examples/multi_session.enigma").read()
    new = template.replace(
        "synthetic.mouse_v1(sessions: 8, neurons: [24, 28, 32, 36, 40, 44, 48, 52], seed: 11)",
        "synthetic.mouse_v1(sessions: 1, neurons: 40, seed: 99)",
    ).replace(
        "by_time(train: 0.8, val: 0.1, test: 0.1)", "by_time(train: 0.1, val: 0.45, test: 0.45)"
    ).replace("steps: 400", "steps: 200")
    if new.count("seed: 99") != 1 or "train: 0.1," not in new:
        sys.exit("examples/multi_session.enigma changed; update this script")
    return {"pre.enigma": template, "new.enigma": new}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="?", choices=["real", "synthetic"], default="real")
    p.add_argument("--enigma", default="target/release/enigma-run")
    p.add_argument("--real", default=os.environ.get("ENIGMA_REAL_DATA", "examples/data"))
    p.add_argument("--keep", help="work here and keep the runs")
    a = p.parse_args()
    folder = a.keep or tempfile.mkdtemp(prefix="enigma-few-shot-")
    os.makedirs(folder, exist_ok=True)
    try:
        if a.data == "real":
            template = open("examples/suite2p_calcium.enigma").read()
            split_halves(a.real, folder)
            files = {
                "pre.enigma": experiment(template, "a", "by_time(train: 0.8, val: 0.1, test: 0.1)"),
                "new.enigma": experiment(template, "b", "by_time(train: 0.6, val: 0.2, test: 0.2)"),
            }
        else:
            files = synthetic_experiments()
        for name, text in files.items():
            open(os.path.join(folder, name), "w").write(text)
        path = lambda x: os.path.join(folder, x)
        run([a.enigma, "run", path("pre.enigma"), "--out", path("pretrained"), "--quiet",
             "--no-baselines"])
        runs = [
            ("few-shot", ["--init-from", path("pretrained"), "--freeze-shared"]),
            ("fine-tuned", ["--init-from", path("pretrained")]),
            ("alone", []),
        ]
        for label, extra in runs:
            run([a.enigma, "run", path("new.enigma"), "--out", path(label), "--quiet"] + extra)
        print("the new session's held-out entries: correlation (loss)")
        print("%-10s %16s %16s" % ("", "validation", "test"))
        best = {}
        for label, _ in runs:
            v = score(a.enigma, path(label), "val")
            t = score(a.enigma, path(label), "test")
            best = {"val": v[2], "test": t[2]}
            print("%-10s %8.3f (%.4f) %8.3f (%.4f)" % (label, v[0], v[1], t[0], t[1]))
        if best["val"]:
            print("%-10s %8.3f %16.3f   (%s, chosen on validation)"
                  % ("baseline", best["val"][1], best["test"][1], best["val"][0]))
    finally:
        if not a.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
