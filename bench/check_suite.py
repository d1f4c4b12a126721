#!/usr/bin/env python3
"""The checker against its one-mistake suite, and its whole-process time.

For every program in tests/ui that carries `// expect: CODE at LINE` (the
line the user must change) this runs `enigma check` and counts where the
diagnostic of that code falls: on the intended line (right), elsewhere
(wrong line), or nowhere (missed). Programs given as extra arguments (for
example mistakes the checker does not catch yet, kept outside the suite)
are counted the same way. Every `valid_*.enigma` must check with no error.

Then it times `enigma check examples/enigma_1b.enigma` as a whole process,
against `enigma --version` (the same binary's start-up and exit, the peer)
in the same run, alternating the two, and prints the medians and the ratio.

Run from the repository root after a release build of the front end:

    cargo build --release -p enigma
    python3 bench/check_suite.py [--enigma target/release/enigma] [EXTRA.enigma ...]

Standard library only; no timed assertions: it prints figures.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time


def diagnostics(enigma, path):
    """(code, file, line) of the primary label of every diagnostic."""
    p = subprocess.run(
        [enigma, "--error-format", "json", "check", path],
        capture_output=True,
        text=True,
        check=False,
    )
    out = []
    for line in p.stdout.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        primary = [l for l in d.get("labels", []) if l.get("primary")]
        if primary:
            l = primary[0]
            out.append((d["code"], os.path.realpath(l["file"]), l["range"]["start"]["line"], d["severity"]))
    return out


def expectation(path):
    """The first `// expect: CODE at LINE [on TEXT]` of a program, or None."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            s = line.strip()
            if s.startswith("// expect:"):
                code, at = s[len("// expect:"):].split(" at ", 1)
                return code.strip(), int(at.split(" on ")[0])
    return None


def classify(enigma, path):
    want = expectation(path)
    if want is None:
        return None
    code, line = want
    real = os.path.realpath(path)
    got = diagnostics(enigma, path)
    if any(c == code and f == real and l == line for c, f, l, _ in got):
        return "right"
    if any(c == code for c, _, _, _ in got) or any(s == "error" for *_, s in got):
        return "wrong line"
    return "missed"


def median_ms(cmd, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--enigma", default="target/release/enigma")
    ap.add_argument("--runs", type=int, default=31)
    ap.add_argument("extra", nargs="*", help="more one-mistake programs to count")
    args = ap.parse_args()
    if not os.path.exists(args.enigma):
        sys.exit(f"{args.enigma} not found: build it with `cargo build --release -p enigma`")

    suite = sorted(p for p in glob.glob("tests/ui/*.enigma") if expectation(p))
    counts = {"right": 0, "wrong line": 0, "missed": 0}
    for p in suite + args.extra:
        verdict = classify(args.enigma, p)
        if verdict is None:
            print(f"{p}: no `// expect:` line", file=sys.stderr)
            continue
        counts[verdict] += 1
        if verdict != "right":
            print(f"{verdict}: {p}")
    valid = sorted(glob.glob("tests/ui/valid_*.enigma"))
    rejected = [p for p in valid if any(s == "error" for *_, s in diagnostics(args.enigma, p))]
    for p in rejected:
        print(f"rejected: {p}")

    total = sum(counts.values())
    print(f"one-mistake programs: {total} ({len(suite)} in tests/ui, {len(args.extra)} extra)")
    print(f"  right line {counts['right']}, wrong line {counts['wrong line']}, missed {counts['missed']}")
    print(f"valid programs: {len(valid)}, rejected {len(rejected)}")

    # Alternate the two commands so that load on the machine hits both.
    check = [args.enigma, "check", "examples/enigma_1b.enigma"]
    peer = [args.enigma, "--version"]
    median_ms(check, 3)
    rounds = [(median_ms(check, args.runs), median_ms(peer, args.runs)) for _ in range(3)]
    c = statistics.median(r[0][0] for r in rounds)
    v = statistics.median(r[1][0] for r in rounds)
    cmin = min(r[0][1] for r in rounds)
    print(f"enigma check examples/enigma_1b.enigma: median {c:.1f} ms (fastest {cmin:.1f} ms)")
    print(f"enigma --version (process start-up):     median {v:.1f} ms")
    print(f"ratio check / start-up: {c / v:.2f}; the check itself about {c - v:.1f} ms")


if __name__ == "__main__":
    main()
