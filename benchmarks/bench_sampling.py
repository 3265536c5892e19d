"""Sampling throughput of every backend against a straightforward torch loop and flow_matching, in one run.

    python benchmarks/bench_sampling.py [--sizes 1e4 1e5 1e6] [--steps 10] [--out benchmarks/results/sampling_cpu.md]

For each state size N and model (``trivial``: one elementwise op, overhead-bound; ``mlp``: a 2-layer MLP over
256-wide rows), all runs do RK4 with ``steps`` steps (NFE = 4 x steps) of a linear-schedule velocity model served
under the cosine schedule through the transfer map, on [1e-3, 1 - 1e-3]:

- ``naive``: the RK4 loop with the transfer map that one writes by hand in torch (schedules at every stage);
- ``flow_matching``: ``ODESolver(ScheduleTransformedModel(model, CondOTScheduler(), CosineScheduler()))`` with
  torchdiffeq's fixed-grid ``rk4`` (Kutta's 3/8 rule, also 4 NFE per step), if ``flow-matching`` is installed;
- fastinterp backends ``eager``, ``fused``, ``compile`` (compile time reported apart) and ``graph`` (CUDA).

It prints samples/s, NFE/s, the sampler's overhead per NFE (time beyond the model's own, measured alone) and the
speed-up over flow_matching and over the naive loop; then the fused update's bandwidth against a plain copy.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import torch

import fastinterp as fi

T_MIN, T_MAX = 1e-3, 1 - 1e-3


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads (CPU)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, device, min_time=0.5, min_reps=3) -> float:
    """Median seconds per call after one warm-up call."""
    fn()
    sync(device)
    times = []
    start_all = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start_all < min_time:
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
        if len(times) >= 50:
            break
    times.sort()
    return times[len(times) // 2]


class Trivial(torch.nn.Module):
    """An overhead-bound velocity model: one elementwise op."""

    def forward(self, x, t):
        return x * (1 - t) - t


class MLP(torch.nn.Module):
    """A small MLP over rows of width 256 (time fed as an extra scale)."""

    def __init__(self, width=256, hidden=512):
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(width, hidden), torch.nn.Linear(hidden, width)

    def forward(self, x, t):
        return self.l2(torch.nn.functional.silu(self.l1(x) * (1 + t)))


def naive_sample(model, x, steps):
    """The hand-written loop: RK4 with the linear -> cosine transfer map, schedules recomputed at every stage."""
    ts = torch.linspace(T_MIN, T_MAX, steps + 1, device=x.device, dtype=x.dtype)
    half_pi = math.pi / 2

    def f(x, t):
        a, b = torch.cos(half_pi * t), torch.sin(half_pi * t)
        da, db = -half_pi * b, half_pi * a
        tp = b / (a + b)
        xp = x / (a + b)
        x1 = xp + (1 - tp) * model(xp, tp)
        return (da / a) * x + (db - da * b / a) * x1

    for i in range(steps):
        t, h = ts[i], ts[i + 1] - ts[i]
        k1 = f(x, t)
        k2 = f(x + 0.5 * h * k1, t + 0.5 * h)
        k3 = f(x + 0.5 * h * k2, t + 0.5 * h)
        k4 = f(x + h * k3, t + h)
        x = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def flow_matching_sampler(model, steps, device, dtype):
    try:
        from flow_matching.path.scheduler import CondOTScheduler, CosineScheduler, ScheduleTransformedModel
        from flow_matching.solver import ODESolver
        from flow_matching.utils import ModelWrapper
    except ImportError:
        return None

    class Wrapped(ModelWrapper):
        def forward(self, x, t, **extras):
            return self.model(x, t)

    solver = ODESolver(ScheduleTransformedModel(Wrapped(model), CondOTScheduler(), CosineScheduler()))
    grid = torch.linspace(T_MIN, T_MAX, steps + 1, device=device, dtype=dtype)
    return lambda x: solver.sample(x_init=x, step_size=None, method="rk4", time_grid=grid)


def state_for(name: str, n: int, device, dtype) -> torch.Tensor:
    if name == "mlp":
        return torch.randn(max(1, n // 256), 256, device=device, dtype=dtype)
    return torch.randn(n, device=device, dtype=dtype)


def bench_sampling(sizes, steps, device, dtype, echo) -> None:
    nfe = 4 * steps
    echo(f"\n### RK4, {steps} steps ({nfe} NFE), linear-schedule velocity model served under the cosine schedule\n")
    echo("| model | N | sampler | samples/s | NFE/s | overhead/NFE (us) | vs flow_matching | vs naive |")
    echo("|---|---|---|---|---|---|---|---|")
    for model_name in ("trivial", "mlp"):
        for n in sizes:
            torch.manual_seed(0)
            model = (Trivial() if model_name == "trivial" else MLP()).to(device=device, dtype=dtype)
            x = state_for(model_name, n, device, dtype)
            batch = x.shape[0]
            with torch.no_grad():
                t_model = timeit(lambda: model(x, torch.tensor(0.5, device=device, dtype=dtype)), device)
                drift = fi.Drift(model, schedule=fi.Linear(), prediction="velocity").transfer(fi.Trig())
                runs = {"naive": lambda: naive_sample(model, x, steps)}
                fm = flow_matching_sampler(model, steps, device, dtype)
                if fm is not None:
                    runs["flow_matching"] = lambda: fm(x)
                backends = ["eager", "fused", "compile"] + (["graph"] if device.type == "cuda" else [])
                compile_seconds = {}
                for backend in backends:
                    sampler = fi.Sampler(
                        drift, steps=steps, backend=backend, t_min=T_MIN, t_max=T_MAX, check_finite=False
                    )
                    if backend in ("compile", "graph"):
                        start = time.perf_counter()
                        sampler(x)
                        sync(device)
                        compile_seconds[backend] = time.perf_counter() - start
                    runs[backend] = lambda s=sampler: s(x)
                seconds = {name: timeit(fn, device) for name, fn in runs.items()}
            for name, sec in seconds.items():
                overhead = (sec - nfe * t_model) / nfe * 1e6
                vs_fm = f"{seconds['flow_matching'] / sec:.2f}x" if "flow_matching" in seconds else "n/a"
                label = name + (f" (compile {compile_seconds[name]:.1f} s)" if name in compile_seconds else "")
                echo(
                    f"| {model_name} | {n:.0e} | {label} | {batch / sec:,.0f} | {nfe / sec:,.0f} | "
                    f"{overhead:,.1f} | {vs_fm} | {seconds['naive'] / sec:.2f}x |"
                )


def bench_bandwidth(sizes, device, dtype, echo) -> None:
    from fastinterp.kernels import kernels_run_on, lincomb, lincomb_ref

    use_kernel = kernels_run_on(device) and device.type == "cuda"
    echo("\n### Fused update (5 inputs -> 2 outputs, the RK4 middle stage) vs a plain copy\n")
    echo("| N | fused GB/s | copy GB/s | fraction of copy |")
    echo("|---|---|---|---|")
    for n in sizes:
        ins = [torch.randn(int(n), device=device, dtype=dtype) for _ in range(5)]
        outs = [torch.empty_like(ins[0]) for _ in range(2)]
        coef = torch.randn(2, 5, device=device, dtype=torch.float64)
        if use_kernel:
            fused = lambda: lincomb(ins, coef, outs)  # noqa: E731
        else:
            fused = lambda: lincomb_ref(ins, coef, 2)  # noqa: E731
        copy_dst = torch.empty_like(ins[0])
        t_fused = timeit(fused, device)
        t_copy = timeit(lambda: copy_dst.copy_(ins[0]), device)
        size = ins[0].element_size() * int(n)
        fused_gbs, copy_gbs = 7 * size / t_fused / 1e9, 2 * size / t_copy / 1e9
        echo(f"| {n:.0e} | {fused_gbs:.1f} | {copy_gbs:.1f} | {fused_gbs / copy_gbs:.0%} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default=None, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32
    sizes = [int(s) for s in (args.sizes or ([1e4, 1e5, 1e6, 1e7] if device.type == "cuda" else [1e4, 1e5, 1e6]))]
    lines: list[str] = []

    def echo(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    echo(
        f"# fastinterp sampling benchmark\n\nmachine: {machine()}; torch {torch.__version__}; fp32; "
        f"{time.strftime('%Y-%m-%d')}"
    )
    bench_sampling(sizes, args.steps, device, dtype, echo)
    bench_bandwidth(sizes + ([int(1.6e7)] if device.type == "cuda" else []), device, dtype, echo)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
