"""Training speed: ``train()``'s steps/s against the plain loop and torch's circular padding, alternated in one process.

    python benchmarks/bench_training.py [--quick] [--presets tiny-1d tiny-2d small-2d] [--grid N] [--batch B]
        [--steps 4] [--rounds 5] [--budget 60] [--compile] [--threads T] [--out FILE]

Per preset, a UNet of :mod:`fastinterp.models` trains on random fields of the size the experiments use (``tiny-1d``:
N = 32, batch 64 as ``experiment ac --preset cpu``; ``tiny-2d``: 32^2, batch 16; ``small-2d``: 32^2, batch 32 as
``experiment ns --preset cpu``; ``--grid`` / ``--batch`` override them all), float32, ``lr`` 2e-3, antithetic pairs.
The contenders:

- ``plain loop, reference conv``: :func:`plain_train`, ``train()``'s loop before issue 16 (two model calls per
  antithetic pair, AdamW's per-tensor implementation, per-tensor clipping and EMA) on the network with torch's
  ``padding_mode="circular"`` (``periodic="reference"``): the baseline;
- ``train(), reference conv``: today's ``train()`` on ``periodic="reference"``: what the loop alone gains;
- ``train(), fast conv``: today's ``train()`` as shipped (``periodic="fast"``, the default);
- ``train(compile=True), fast conv``: with ``--compile`` (cold: a fresh inductor cache directory per run);
- ``train(), zero padding (bound)``: today's ``train()`` with the convolutions zero-padded: not periodic, another
  function (its losses are not compared), the speed any periodic padding could at most reach in this loop.

Each contender starts every round from the same initial weights and runs ``--steps + 1`` steps; a callback stamps
the wall clock and the process CPU time after each step, the first step (which holds ``train()``'s setup) is
dropped, and the round's sample is the mean of the other steps. Rounds call every contender in turn, the starting
one rotating: at least ``--rounds``, more (up to 30) while they fit in ``--budget`` seconds per preset. Reported:
the median step time and its spread (IQR as % of the median), steps/s, the speed-up over the baseline as the median
(and IQR) of the per-round ratios, the same ratio in CPU time (with ``--threads 1`` it is what one core does, less
skewed by other processes on a shared machine), the contender's largest relative loss difference from the baseline
over the first round's steps (same weights, same random draws: rounding only), and its first call (warm-up; for
``compile``, the compile time). A Goals block grades the issue's goal: ``train()`` at least 1.4x the baseline's
steps/s on every preset (the median of the per-round ratios).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import fastinterp as fi
from fastinterp.interpolants import Interpolant, interpolant_loss
from fastinterp.models import build_model
from fastinterp.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling bench_sampling.py names the machine
from bench_sampling import Report, quartiles  # noqa: E402
from bench_sampling import machine as _machine  # noqa: E402

#: ``{preset: (grid, batch)}``: the experiments' CPU sizes.
CASES = {"tiny-1d": ((32,), 64), "tiny-2d": ((32, 32), 16), "small-2d": ((32, 32), 32)}
GOAL = 1.4  # the goal: train() steps/s over the plain loop's
BASELINE = "plain loop, reference conv"
BOUND = "train(), zero padding (bound)"


def machine() -> str:
    return _machine(torch.device("cpu"))


def plain_train(
    model: nn.Module,
    data: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    ema_decay: float = 0.999,
    seed: int = 0,
    callback: Callable[[int, float], None] | None = None,
) -> list[float]:
    """``train()``'s loop before issue 16, without checkpoints or checks: the baseline. The same random draws in
    the same order as ``train()`` (``torch.randint`` for the batch, then ``interpolant_loss``'s noise and times)."""
    interp = Interpolant(fi.Linear())
    normed = (data - float(data.mean())) / float(data.std())
    gen = torch.Generator().manual_seed(seed)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    losses = []
    for step in range(1, steps + 1):
        idx = torch.randint(0, normed.shape[0], (batch_size,), generator=gen)
        loss = interpolant_loss(model, normed[idx], interpolant=interp, antithetic=True, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - ema_decay)
            for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
                be.copy_(bm)
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(step, losses[-1])
    model.eval()
    return losses


def contenders(compile_too: bool) -> dict[str, tuple[str, Callable]]:
    """``{label: (periodic mode, run(model, data, steps, batch, callback) -> losses)}``."""

    def trained(compile: bool) -> Callable:
        def run(model, data, steps, batch, callback):
            return train(model, data, steps=steps, batch_size=batch, progress=False, callback=callback,
                         compile=compile).losses  # fmt: skip

        return run

    def plain(model, data, steps, batch, callback):
        return plain_train(model, data, steps=steps, batch_size=batch, callback=callback)

    out = {
        BASELINE: ("reference", plain),
        "train(), reference conv": ("reference", trained(False)),
        "train(), fast conv": ("fast", trained(False)),
    }
    if compile_too:
        out["train(compile=True), fast conv"] = ("fast", trained(True))
    out[BOUND] = ("zeros", trained(False))
    return out


class Stamps:
    """The callback: wall and CPU time after each step."""

    def __init__(self) -> None:
        self.wall, self.cpu = [time.perf_counter()], [time.process_time()]

    def __call__(self, step: int, loss: float) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def per_step(self) -> tuple[float, float]:
        """Mean wall and CPU seconds of the steps after the first."""
        n = len(self.wall) - 2
        return (self.wall[-1] - self.wall[1]) / n, (self.cpu[-1] - self.cpu[1]) / n


def bench_preset(preset: str, grid: tuple[int, ...], batch: int, steps: int, rounds: int, budget: float,
                 compile_too: bool, log) -> dict:  # fmt: skip
    """Time every contender on ``preset``: ``{"params", "runs": {label: {...}}}``."""
    torch.manual_seed(0)
    model = build_model(preset)
    init = copy.deepcopy(model.state_dict())
    data = torch.randn(256, *grid, generator=torch.Generator().manual_seed(1))
    runs = contenders(compile_too)
    models = {}
    for label, (mode, _) in runs.items():
        models[label] = build_model(preset, periodic="reference" if mode == "zeros" else mode)
        if mode == "zeros":  # torch's zero padding instead of the circular one: the bound
            for m in models[label].modules():
                if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.padding_mode == "circular":
                    m.padding_mode = "zeros"
    res = {label: {"wall": [], "cpu": [], "losses": None, "first": None} for label in runs}
    for label, (_, run) in runs.items():  # the first call: warm-up, or compile
        log(f"{preset}: first call of {label}")
        models[label].load_state_dict(init)
        t0 = time.perf_counter()
        res[label]["losses"] = run(models[label], data, steps + 1, batch, None)
        res[label]["first"] = time.perf_counter() - t0
    names, start, r = list(runs), time.perf_counter(), 0
    while r < rounds or (time.perf_counter() - start < budget and r < 30):
        for label in names[r % len(names) :] + names[: r % len(names)]:
            models[label].load_state_dict(init)
            stamps = Stamps()
            runs[label][1](models[label], data, steps + 1, batch, stamps)
            wall, cpu = stamps.per_step()
            res[label]["wall"].append(wall)
            res[label]["cpu"].append(cpu)
        r += 1
    return {"params": sum(p.numel() for p in model.parameters()), "runs": res}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny-1d, 2 steps, 1 round")
    parser.add_argument("--presets", nargs="+", choices=sorted(CASES), default=None, help="default: all three")
    parser.add_argument("--grid", type=int, default=None, help="grid size N for every preset (default: CASES)")
    parser.add_argument("--batch", type=int, default=None, help="batch size for every preset (default: CASES)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 4; 2 with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="minimum alternated rounds (default 5)")
    parser.add_argument("--budget", type=float, default=None, help="seconds of rounds per preset (default 60)")
    parser.add_argument("--compile", action="store_true", help="also time train(compile=True)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", default=None, help="also write the report to this markdown file")
    args = parser.parse_args(argv)
    presets = args.presets or (["tiny-1d"] if args.quick else list(CASES))
    steps = args.steps or (2 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 5)
    budget = args.budget if args.budget is not None else (0.0 if args.quick else 60.0)
    for name, value in (("--grid", args.grid), ("--batch", args.batch), ("--steps", steps), ("--rounds", rounds)):
        if value is not None and value < 1:
            parser.error(f"{name} must be >= 1, got {value}")
    if args.compile:  # a cold compile: no kernels from an earlier run
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_training_inductor_")

    report = Report(args.out, args.threads)  # closed in the finally below
    echo, log = report.echo, report.log

    goals: list[tuple[str, str, str, str]] = []
    try:
        echo("# fastinterp training benchmark\n")
        echo(f"machine: {machine()}; torch {torch.__version__}; fastinterp {fi.__version__}; "
             f"{time.strftime('%Y-%m-%d %H:%M')}; load average {report.start_load:.2f} at the start")  # fmt: skip
        echo(f"\nEach sample: the mean of {steps} steps after a dropped first one; contenders alternated round-robin "
             "(bench_training.py docstring). Speed-ups: median of the per-round ratios to the baseline, IQR in "
             "parentheses.")  # fmt: skip
        for preset in presets:
            grid, batch = CASES[preset]
            if args.grid:
                grid = (args.grid,) * len(grid)
            batch = args.batch or batch
            if args.compile:
                torch._dynamo.reset()
            result = bench_preset(preset, grid, batch, steps, rounds, budget, args.compile, log)
            runs = result["runs"]
            echo(f"\n## {preset}: {result['params'] / 1e3:.1f} k parameters, fields {grid}, batch {batch} "
                 f"(antithetic pairs), float32\n")  # fmt: skip
            echo("| contender | median step | IQR | steps/s | speed-up (wall) | speed-up (CPU time) | "
                 "loss vs baseline (max rel.) | first call |")  # fmt: skip
            echo("|---|---|---|---|---|---|---|---|")
            base = runs[BASELINE]
            for label, run in runs.items():
                q1, q2, q3 = quartiles(run["wall"])
                w1, w2, w3 = quartiles([b / t for b, t in zip(base["wall"], run["wall"], strict=True)])
                c1, c2, c3 = quartiles([b / t for b, t in zip(base["cpu"], run["cpu"], strict=True)])
                dev = max(abs(a - b) / abs(b) for a, b in zip(run["losses"], base["losses"], strict=True))
                echo(f"| {label} | {q2 * 1e3:.1f} ms | {(q3 - q1) / q2:.0%} | {1 / q2:.2f} | "
                     f"{w2:.2f}x ({w1:.2f}-{w3:.2f}) | {c2:.2f}x ({c1:.2f}-{c3:.2f}) | "
                     f"{'another function' if label == BOUND else f'{dev:.1e}'} | {run['first']:.1f} s |")  # fmt: skip
                if label.startswith("train(") and "fast conv" in label:
                    goals.append((f"{preset}: {label} steps/s vs the plain loop", f">= {GOAL}x (median)",
                                  f"{w2:.2f}x wall (IQR {w1:.2f}-{w3:.2f}), {c2:.2f}x CPU time",
                                  "PASS" if w2 >= GOAL else "FAIL"))  # fmt: skip
                if label not in (BASELINE, BOUND):
                    goals.append((f"{preset}: {label} losses = the plain loop's", "rounding (< 1e-4 rel.)",
                                  f"{dev:.1e}", "PASS" if dev < 1e-4 else "FAIL"))  # fmt: skip
            n = len(base["wall"])
            echo(f"\n({n} round{'s' * (n != 1)}, the first contender rotating)")
        report.finish(goals)
    finally:
        report.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
