#!/usr/bin/env python3
"""One training step of examples/quickstart.enigma: enigma vs eager PyTorch (CPU).

Runs `enigma run examples/quickstart.enigma --steps N` in a subprocess, reads
the per-step time from its metrics.jsonl and its peak RSS from getrusage, then
trains the same model written by hand in PyTorch (same shapes, ops, parameter
count, optimizer, clipping) in this process with the same protocol, and
prints the step-time ratio enigma / PyTorch (target <= 1.0) and both peaks.

Build enigma first:  cargo build --release
Run:                 ~/.cache/enigma/torch-2.11.0/bin/python bench/step_vs_pytorch.py
"""
import argparse
import json
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without numpy: harmless
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = "examples/quickstart.enigma"

# Quickstart sizes: batch 16 windows of 2 s; 60 video frames of 1x36x64 and
# 60 behaviour steps of 4 channels at 30 Hz, 16 response steps of 32 neurons
# at 8 Hz; tubelets 4x12x16; width 64, 2 blocks, 4 heads, ffn 256.
B, T_V, H, W, T_R, N_UNITS, SESSIONS = 16, 60, 36, 64, 16, 32, 2
TUB, D, LAYERS, HEADS, FFN = (4, 12, 16), 64, 2, 4, 256
EXPECTED_PARAMS = 159_040
LR, BETAS, WD, CLIP, WARMUP, TOTAL = 3e-3, (0.9, 0.95), 0.05, 1.0, 50, 600


def sinusoidal(n, d):
    """The standard sinusoidal encoding of positions 0..n-1: [n, d]."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
    return torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=-1)


def normal(*shape):
    return nn.Parameter(torch.randn(*shape) * 0.02)


class Block(nn.Module):
    """Pre-LN transformer block: separate q/k/v/o projections, GELU(tanh) MLP."""

    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(D, eps=1e-5), nn.LayerNorm(D, eps=1e-5)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.fc, self.proj = nn.Linear(D, FFN), nn.Linear(FFN, D)

    def forward(self, x):
        b, s, _ = x.shape
        h = self.ln_1(x)
        heads = lambda t: t.view(b, s, HEADS, D // HEADS).transpose(1, 2)
        a = F.scaled_dot_product_attention(heads(self.q(h)), heads(self.k(h)), heads(self.v(h)))
        x = x + self.o(a.transpose(1, 2).reshape(b, s, D))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class Quickstart(nn.Module):
    def __init__(self):
        super().__init__()
        t, h, w = TUB
        # Video tubelets: projection, spatial positions, kind.
        self.vt_proj, self.vt_pos, self.vt_kind = nn.Linear(t * h * w, D), normal(H // h, W // w, D), normal(D)
        # Behaviour steps: projection, kind.
        self.bt_proj, self.bt_kind = nn.Linear(4, D), normal(D)
        # Response values: scalar projection, mask token, kind; unit table per session.
        self.w_value, self.b_value = normal(D), nn.Parameter(torch.zeros(D))
        self.mask_token, self.nt_kind = normal(D), normal(D)
        self.unit = nn.ParameterList(normal(N_UNITS, D) for _ in range(SESSIONS))
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(D, eps=1e-5)
        # Per-unit readout, per session.
        self.ro_w = nn.ParameterList(normal(N_UNITS, D) for _ in range(SESSIONS))
        self.ro_b = nn.ParameterList(nn.Parameter(torch.zeros(N_UNITS)) for _ in range(SESSIONS))
        # Fixed time encodings (constants, not parameters).
        self.register_buffer("sin_v", sinusoidal(T_V // t, D)[:, None, None, :])
        self.register_buffer("sin_b", sinusoidal(T_V, D))
        self.register_buffer("sin_r", sinusoidal(T_R, D)[:, None, :])

    def forward(self, video, behavior, response, mask, session):
        t, h, w = TUB
        b = video.shape[0]
        # Patchify [B, T, C, H, W] -> [B, T/t, H/h, W/w, C*t*h*w], then embed: 180 tokens.
        p = video.view(b, T_V // t, t, 1, H // h, h, W // w, w).permute(0, 1, 4, 6, 3, 2, 5, 7)
        p = p.reshape(b, T_V // t, H // h, W // w, t * h * w)
        vt = (self.vt_proj(p) + self.vt_pos + self.vt_kind + self.sin_v).reshape(b, -1, D)
        bt = self.bt_proj(behavior) + self.bt_kind + self.sin_b  # 60 tokens
        # Response values [B, T, N] -> [B, T, N, D]; masked entries get the mask token.
        v = response[..., None] * self.w_value + self.b_value
        v = torch.where(mask[..., None], self.mask_token, v)
        nt = (v + self.unit[session] + self.nt_kind + self.sin_r).reshape(b, -1, D)  # 512 tokens
        x = torch.cat([vt, bt, nt], dim=1)  # [B, 752, D]
        for blk in self.blocks:
            x = blk(x)
        x = self.ln_f(x)
        hr = x[:, -T_R * N_UNITS:].reshape(b, T_R, N_UNITS, D)
        return torch.einsum("btnd,nd->btn", hr, self.ro_w[session]) + self.ro_b[session]


def torch_step(model, opt, batch, step):
    """One training step as enigma does it: transforms, mask, forward, masked
    Poisson loss, corr metric, backward, clip, AdamW with warmup-cosine lr."""
    video, behavior, response = batch
    session = step % SESSIONS
    video = (video - 0.5) / 0.25
    response = torch.log1p(torch.clamp(response, min=0.0))
    mask = torch.rand(response.shape) < 0.5
    pred = model(video, behavior, response, mask, session)
    nll = torch.where(mask, torch.exp(pred) - response * pred, torch.zeros_like(pred))
    loss = nll.sum() / mask.sum().clamp(min=1)
    with torch.no_grad():  # corr(pred, target) per unit, as the metric
        pc = pred - pred.mean(dim=(0, 1))
        tc = response - response.mean(dim=(0, 1))
        _ = (pc * tc).mean((0, 1)) * torch.rsqrt((pc**2).mean((0, 1)) * (tc**2).mean((0, 1)) + 1e-8)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    frac = min(step / WARMUP, 1.0) if step < WARMUP else 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (TOTAL - WARMUP)))
    for g in opt.param_groups:
        g["lr"] = LR * frac
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def run_pytorch(steps, warmup):
    torch.manual_seed(0)
    model = Quickstart()
    n_params = sum(p.numel() for p in model.parameters())
    # Weight decay on matrices only, as in enigma.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS)
    # A few random batches, cycled: data generation is not timed on this side.
    batches = [(torch.rand(B, T_V, 1, H, W), torch.randn(B, T_V, 4), torch.rand(B, T_R, N_UNITS))
               for _ in range(4)]
    times = []
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        torch_step(model, opt, batches[step % len(batches)], step)
        times.append(time.perf_counter() - t0)
    timed = times[warmup:]
    return n_params, statistics.mean(timed), statistics.median(timed)


def run_enigma(exe, steps, warmup):
    """Run enigma in a subprocess; mean step time over steps warmup+1..steps
    from the cumulative rate, t(k) = k / steps_per_s(k); peak RSS of the child."""
    with tempfile.TemporaryDirectory(prefix="enigma-bench-") as out:
        cmd = [str(exe), "run", EXPERIMENT, "--out", out, "--steps", str(steps), "--quiet"]
        subprocess.run(cmd, cwd=REPO, check=True)
        # Children's ru_maxrss: the largest child so far, and enigma is the only one.
        rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rate = {}
        with open(Path(out) / "metrics.jsonl") as f:
            for line in f:
                r = json.loads(line)
                if r.get("kind") == "train":
                    rate[r["step"]] = r["steps_per_s"]
    t = lambda k: k / rate[k]
    return (t(steps) - t(warmup)) / (steps - warmup), rss_kib, cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--enigma", default="target/release/enigma", help="enigma binary (relative to the repo root)")
    ap.add_argument("--steps", type=int, default=40, help="total steps per side (keep below 100: eval at step 100)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed warm-up steps")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of both sides, alternating")
    args = ap.parse_args()
    assert 0 < args.warmup < args.steps < 100, "need 0 < warmup < steps < 100"

    exe = Path(args.enigma) if Path(args.enigma).is_absolute() else REPO / args.enigma
    if not exe.is_file():
        sys.exit(f"enigma binary not found at {exe}; build it with `cargo build --release` (or pass --enigma PATH)")
    torch.set_num_threads(os.cpu_count())
    print(f"command: {shlex.join([sys.executable] + sys.argv)}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()} (enigma: libtorch default), "
          f"cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.2f}")
    print(f"steps {args.steps}, timed {args.steps - args.warmup} after {args.warmup} warm-up")

    # enigma first, so that the children's peak RSS is enigma's alone. The
    # two sides then alternate, so that a change in the machine's load
    # during the run affects both; each side's figure is the median of its
    # rounds, and the ratio is of those medians.
    e_steps, p_steps = [], []
    e_rss = 0
    for r in range(args.repeat):
        e_step, rss, cmd = run_enigma(exe, args.steps, args.warmup)
        # Only the first round's: later children are forked from a process
        # that holds PyTorch's memory, which getrusage would count.
        e_rss = e_rss or rss
        n_params, p_mean, _ = run_pytorch(args.steps, args.warmup)
        e_steps.append(e_step)
        p_steps.append(p_mean)
        print(f"round {r + 1}: enigma {e_step * 1e3:.1f} ms, PyTorch {p_mean * 1e3:.1f} ms, ratio {e_step / p_mean:.3f}")
    print(f"enigma: {shlex.join(cmd)}")
    p_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # this process: Python + torch + model
    print(f"PyTorch parameters: {n_params:,} (enigma quickstart: {EXPECTED_PARAMS:,})")
    assert abs(n_params - EXPECTED_PARAMS) <= 0.01 * EXPECTED_PARAMS, "PyTorch model differs from the quickstart"
    e_med, p_med = statistics.median(e_steps), statistics.median(p_steps)

    print()
    print(f"{'':10}{'step (median of rounds)':>25}{'peak RSS':>12}")
    print(f"{'enigma':10}{e_med * 1e3:>22.1f} ms{e_rss / 1024:>8.0f} MiB")
    print(f"{'PyTorch':10}{p_med * 1e3:>22.1f} ms{p_rss / 1024:>8.0f} MiB")
    print(f"{'ratio':10}{e_med / p_med:>25.3f}{e_rss / p_rss:>12.3f}   (enigma / PyTorch; target <= 1.0)")


if __name__ == "__main__":
    main()
