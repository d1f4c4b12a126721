#!/usr/bin/env python3
"""The quickstart's data-parallel training step in PyTorch DDP over gloo (CPU).

What it measures: the median wall time of one data-parallel training step of
the model of examples/quickstart.enigma, written by hand in PyTorch with the
same parameter shapes (159,040 parameters, asserted), trained with
DistributedDataParallel on the gloo backend by 2 processes on the CPU. Each
process takes a micro-batch of 8 synthetic windows (random tensors of the
quickstart's shapes: video [8, 60, 1, 36, 64], behaviour [8, 60, 4], response
[8, 16, 32]), so a step covers the quickstart's global batch of 16. A step is
the input transforms and the drawing of the mask, the forward pass, the masked
Poisson loss, the backward pass with DDP's gradient all-reduce, clipping at
1.0 and the AdamW update (lr 3e-3 with warmup-cosine, betas (0.9, 0.95),
weight decay 0.05 on matrices). Every process uses one intra-op thread by
default, so the 2 processes fit 2 cores.

This is the peer for enigma's data-parallel step (the quickstart with
`mesh { dp: 2 }`, 2 ranks on the same 2 cores): docs/benchmarks.md compares
the two.

Run it from the repository root, either way (both measure the same step):

    ~/.cache/enigma/torch-2.11.0/bin/python bench/ddp_gloo.py
    ~/.cache/enigma/torch-2.11.0/bin/torchrun --standalone --nproc-per-node 2 bench/ddp_gloo.py

The first form starts the processes itself with torch.multiprocessing.spawn
(`--world` of them); under torchrun the world size is torchrun's. Options:
`--steps N` timed steps (default 20), `--warmup K` untimed steps before them
(default 5), `--threads T` intra-op threads per process (default 1).

Rank 0 prints one JSON line:

    {"impl": "pytorch-ddp-gloo", "world": 2, "micro_batch": 8, "params": 159040,
     "median_step_s": ..., "steps": 20, "torch": "...", "threads": 1, "warmup": 5}

How a step is timed: before each step the processes meet at a barrier (not
timed), each times its own step, and a step's time is the slowest process's,
since the step is over only when every replica has updated its weights. The
median is over the timed steps.
"""
import argparse
import json
import math
import os
import socket
import statistics
import sys
import time
import warnings

# This torch build is used without numpy; its warning about that is harmless.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

# The quickstart's sizes. A window is 2 s: 60 video frames of 1 x 36 x 64 and
# 60 behaviour steps of 4 channels at 30 Hz, and 16 response steps of 32
# neurons at 8 Hz. The video is cut into tubelets of 4 frames x 12 x 16 pixels.
T_V, C, H, W, BEH = 60, 1, 36, 64, 4
T_R, N_UNITS, SESSIONS = 16, 32, 2
VIDEO_HZ, RESPONSE_HZ = 30.0, 8.0
TUB = (4, 12, 16)
D, LAYERS, HEADS, FFN = 64, 2, 4, 256
MASK_RATIO = 0.5

# The parameter counts of the quickstart's header comment. Every session has
# its own unit table (UnitValues' `unit: [N, d]`) and readout (PerUnit's
# `w: [N, d]` and `b: [N]`) because `N` is declared `per session`; the counts
# include both sessions' copies.
EXPECTED_PARAMS = 159_040
EXPECTED_PARTS = {"tokenizers": 54_784, "transformer": 100_096, "readout": 4_160}

# The quickstart's train block.
LR, BETAS, WD, CLIP, WARMUP_LR, TOTAL_STEPS = 3e-3, (0.9, 0.95), 0.05, 1.0, 50, 600


def sinusoidal(n, d, rate, base=10000.0):
    """The sinusoidal encoding of Vaswani et al. of `n` time stamps, as
    enigma's `sinusoidal[D](d)` computes it: position `p` is the time `p /
    rate` in seconds, channel `i` has the frequency `base^(-2 floor(i/2) / d)`,
    and even channels hold sines, odd channels cosines. Returns `[n, d]`."""
    t = torch.arange(n, dtype=torch.float64)[:, None] / rate
    i = torch.arange(d)
    freq = base ** (-(i // 2 * 2).to(torch.float64) / d)
    a = t * freq
    return torch.where(i % 2 == 0, torch.sin(a), torch.cos(a)).to(torch.float32)


def normal(*shape, std=0.02):
    """A parameter drawn from a normal distribution, enigma's `normal(std:)`."""
    return nn.Parameter(torch.randn(*shape) * std)


def linear(d_in, d_out, std=0.02):
    """std::nn::Linear: weight `[d_out, d_in]` from a normal distribution, bias
    at zero. Residual projections pass the scaled standard deviation."""
    lin = nn.Linear(d_in, d_out)
    with torch.no_grad():
        lin.weight.normal_(0.0, std)
        lin.bias.zero_()
    return lin


class Tubelets(nn.Module):
    """std::tokenize::Tubelets(size: [4, 12, 16], d: 64) with `time: true`:
    each 4 x 12 x 16 block, flattened in (C, t, h, w) order, projected to `d`,
    plus a learned position per spatial patch, the `kind` vector and the
    sinusoidal encoding of the tubelet's start time. 180 tokens, time-major."""

    def __init__(self):
        super().__init__()
        t, h, w = TUB
        self.proj = linear(C * t * h * w, D)
        self.pos = normal(H // h, W // w, D)
        self.kind = normal(D)
        # The tubelet time steps are 4 frames apart: a rate of 7.5 Hz.
        self.register_buffer("time", sinusoidal(T_V // t, D, VIDEO_HZ / t)[:, None, None, :])

    def forward(self, video):
        t, h, w = TUB
        b = video.shape[0]
        # [B, T, C, H, W] -> [B, T/t, H/h, W/w, C*t*h*w], the order of patchify.
        p = video.view(b, T_V // t, t, C, H // h, h, W // w, w).permute(0, 1, 4, 6, 3, 2, 5, 7)
        p = p.reshape(b, T_V // t, H // h, W // w, C * t * h * w)
        e = self.proj(p) + self.pos + self.kind + self.time
        return e.reshape(b, -1, D)


class ScalarSteps(nn.Module):
    """std::tokenize::Scalars(d: 64), which is ScalarSteps without
    `per_channel`: one token per behaviour step from a linear map of its 4
    channels, plus `kind` and the step's time encoding. 60 tokens."""

    def __init__(self):
        super().__init__()
        self.proj = linear(BEH, D)
        self.kind = normal(D)
        self.register_buffer("time", sinusoidal(T_V, D, VIDEO_HZ))

    def forward(self, behavior):
        return self.proj(behavior) + self.kind + self.time


class UnitValues(nn.Module):
    """std::tokenize::UnitValues(d: 64, mask: 0.5): one token per neuron and
    response step, the value times `w_value` plus `b_value`, replaced by the
    learned mask token where masked, plus the neuron's unit vector, `kind`
    and the step's time encoding. 512 tokens, time-major. The unit table is
    per session: one `[N, d]` table for each of the 2 sessions."""

    def __init__(self):
        super().__init__()
        self.w_value = normal(D)
        self.b_value = nn.Parameter(torch.zeros(D))
        self.unit = nn.ParameterList(normal(N_UNITS, D) for _ in range(SESSIONS))
        self.kind = normal(D)
        # MaskValues' `token`.
        self.mask_token = normal(D)
        self.register_buffer("time", sinusoidal(T_R, D, RESPONSE_HZ)[:, None, :])

    def forward(self, response, mask, session):
        b = response.shape[0]
        v = response[..., None] * self.w_value + self.b_value
        v = torch.where(mask[..., None], self.mask_token, v)
        e = v + self.unit[session] + self.kind + self.time
        return e.reshape(b, -1, D)


class Block(nn.Module):
    """std::nn::TransformerBlock with the defaults the quickstart keeps:
    pre-norm, LayerNorm with bias (eps 1e-5), separate query, key and value
    projections, non-causal attention of 4 heads of 16 scaled by 1/sqrt(16),
    and a GELU (tanh) MLP of width 256. The two projections that write into
    the residual stream start from a standard deviation of 0.02 / sqrt(2 *
    layers), as GPT-2."""

    def __init__(self):
        super().__init__()
        residual_std = 0.02 / math.sqrt(2 * LAYERS)
        self.ln_1 = nn.LayerNorm(D, eps=1e-5)
        self.q_proj, self.k_proj, self.v_proj = linear(D, D), linear(D, D), linear(D, D)
        self.c_proj = linear(D, D, std=residual_std)
        self.ln_2 = nn.LayerNorm(D, eps=1e-5)
        self.c_fc = linear(D, FFN)
        self.mlp_proj = linear(FFN, D, std=residual_std)

    def forward(self, x):
        b, s, _ = x.shape
        h = self.ln_1(x)

        def heads(t):
            return t.view(b, s, HEADS, D // HEADS).transpose(1, 2)

        a = F.scaled_dot_product_attention(heads(self.q_proj(h)), heads(self.k_proj(h)), heads(self.v_proj(h)))
        x = x + self.c_proj(a.transpose(1, 2).reshape(b, s, D))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class PerUnit(nn.Module):
    """std::readout::PerUnit(d: 64): the token of neuron `n` at step `t` read
    out by neuron `n`'s own weight vector, plus its bias; per session."""

    def __init__(self):
        super().__init__()
        self.w = nn.ParameterList(normal(N_UNITS, D) for _ in range(SESSIONS))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(N_UNITS)) for _ in range(SESSIONS))

    def forward(self, h, session):
        hr = h.reshape(h.shape[0], T_R, N_UNITS, D)
        return torch.einsum("btnd,nd->btn", hr, self.w[session]) + self.b[session]


class Quickstart(nn.Module):
    """The quickstart's `brain`: the three tokenizers, concatenated along the
    sequence (752 tokens), a 2-block transformer with a final LayerNorm, and
    the per-unit readout of the response tokens. Returns the log rate of every
    neuron at every response step, `[B, 16, 32]`."""

    def __init__(self):
        super().__init__()
        self.vt = Tubelets()
        self.bt = ScalarSteps()
        self.nt = UnitValues()
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(D, eps=1e-5)
        self.readout = PerUnit()

    def forward(self, video, behavior, response, mask, session):
        x = torch.cat([self.vt(video), self.bt(behavior), self.nt(response, mask, session)], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        # `h[nt]`: the response tokens are the last T_R * N_UNITS of the sequence.
        return self.readout(x[:, -T_R * N_UNITS:], session)


def count_params(model):
    """Counts the parameters by part, as the quickstart's header does, and
    checks the counts against it. Every parameter of this model is counted,
    which includes both sessions' unit tables and readouts."""
    parts = {
        "tokenizers": [model.vt, model.bt, model.nt],
        "transformer": [model.blocks, model.ln_f],
        "readout": [model.readout],
    }
    counts = {k: sum(p.numel() for m in ms for p in m.parameters()) for k, ms in parts.items()}
    total = sum(p.numel() for p in model.parameters())
    assert counts == EXPECTED_PARTS, f"parameter counts {counts} differ from the quickstart's {EXPECTED_PARTS}"
    assert total == EXPECTED_PARAMS, f"{total:,} parameters, the quickstart has {EXPECTED_PARAMS:,}"
    return total


def draw_mask(b, generator):
    """MaskValues with ratio 0.5 over (T, N), as enigma's `mask_tokens` draws
    it: exactly round(0.5 * 512) = 256 of each window's 512 entries, chosen
    uniformly, afresh for every window."""
    p = T_R * N_UNITS
    k = round(MASK_RATIO * p)
    order = torch.rand(b, p, generator=generator).argsort(dim=1)
    mask = torch.zeros(b, p, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask.view(b, T_R, N_UNITS)


def lr_at(step):
    """The quickstart's warmup_cosine(warmup: 50) over 600 steps, 1-based."""
    if step < WARMUP_LR:
        return LR * step / WARMUP_LR
    return LR * 0.5 * (1 + math.cos(math.pi * (step - WARMUP_LR) / (TOTAL_STEPS - WARMUP_LR)))


def train_step(model, opt, batch, session, step, generator):
    """One data-parallel training step on this process's micro-batch."""
    video, behavior, response = batch
    # The modalities' transforms of the quickstart.
    video = (video - 0.5) / 0.25
    response = torch.log1p(torch.clamp(response, min=0.0))
    mask = draw_mask(response.shape[0], generator)
    pred = model(video, behavior, response, mask, session)
    # poisson_nll with log_input, averaged over the masked entries. Every
    # window has the same number of masked entries, so DDP's average of the
    # processes' gradients is the gradient of the mean over the global batch.
    nll = torch.exp(pred) - response * pred
    loss = torch.where(mask, nll, torch.zeros_like(nll)).sum() / mask.sum().clamp(min=1)
    # DDP all-reduces (averages) the gradients during the backward pass.
    loss.backward()
    # The gradients are now the same on every process, so is their norm.
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    for group in opt.param_groups:
        group["lr"] = lr_at(step)
    opt.step()
    # Setting the gradients to None leaves the other session's parameters,
    # which get no gradient, untouched by the next update (their moments do
    # not decay), which is what enigma does too.
    opt.zero_grad(set_to_none=True)


def worker(rank, world, args):
    """One process of the job: joins the gloo group, builds the model and
    times its steps. Rank 0 prints the result."""
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # Already set in this process; the intra-op count is what matters.
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        # The same seed on every process gives every replica the same initial
        # weights (DDP would broadcast rank 0's anyway).
        torch.manual_seed(0)
        model = Quickstart()
        n_params = count_params(model)
        # Each step uses one session's unit table and readout, so the other
        # session's get no gradient: DDP must look for unused parameters.
        ddp = DDP(model, find_unused_parameters=True)
        # Weight decay on matrices and larger only, as enigma's AdamW.
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
            lr=LR,
            betas=BETAS,
        )

        # A few random micro-batches, different on every process and cycled:
        # making data is not part of the step.
        g = torch.Generator().manual_seed(1000 + rank)
        b = args.micro_batch
        batches = [
            (
                torch.rand(b, T_V, C, H, W, generator=g),
                torch.randn(b, T_V, BEH, generator=g),
                torch.rand(b, T_R, N_UNITS, generator=g),
            )
            for _ in range(4)
        ]
        mask_gen = torch.Generator().manual_seed(2000 + rank)

        times = []
        for step in range(1, args.warmup + args.steps + 1):
            # A batch holds windows of one session, split across the
            # processes, so every process uses the same session in a step.
            session = step % SESSIONS
            dist.barrier()
            t0 = time.perf_counter()
            train_step(ddp, opt, batches[step % len(batches)], session, step, mask_gen)
            times.append(time.perf_counter() - t0)

        # A step ends when the slowest process has finished it.
        timed = torch.tensor(times[args.warmup:], dtype=torch.float64)
        dist.all_reduce(timed, op=dist.ReduceOp.MAX)
        if rank == 0:
            result = {
                "impl": "pytorch-ddp-gloo",
                "world": world,
                "micro_batch": b,
                "params": n_params,
                "median_step_s": round(statistics.median(timed.tolist()), 6),
                "steps": args.steps,
                "torch": torch.__version__,
                "threads": args.threads,
                "warmup": args.warmup,
            }
            print(json.dumps(result), flush=True)
    finally:
        dist.destroy_process_group()


def free_port():
    """A TCP port that is free on this machine now, for the rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps before them (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per process (default 1)")
    ap.add_argument("--micro-batch", type=int, default=8, help="windows per process and step (default 8)")
    ap.add_argument("--world", type=int, default=2, help="processes to spawn when not under torchrun (default 2)")
    args = ap.parse_args()
    assert args.steps > 0 and args.warmup >= 0 and args.threads > 0 and args.micro_batch > 0

    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        # Under torchrun: this process is one rank, and the rendezvous
        # address is in the environment.
        worker(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), args)
    else:
        # Standalone: start the ranks here, on a free local port. spawn calls
        # worker(rank, world, args) in each new process.
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
        mp.spawn(worker, args=(args.world, args), nprocs=args.world, join=True)


if __name__ == "__main__":
    sys.exit(main())
