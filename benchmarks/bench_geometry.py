"""Likely paths: batched ProbGEORCE against a pair-by-pair loop, and against Adam on the same energy, in one run.

    python benchmarks/bench_geometry.py [--pairs 64] [--lam 5 20] [--n-grid 100]
        [--out benchmarks/results/geometry_cpu.md]

Workload: pairs of exact samples of a 2-D three-mode Gaussian mixture (means (-2, 0), (2, 0), (0, 2), variance 0.3),
float64, exact score and log-density, ``n_grid`` steps, default stopping rule (``|grad E| < 1e-4``, 1000 iterations).

1. Throughput: one ``likely_path`` call on all pairs against a Python loop calling it on one pair at a time (the
   reference implementation's structure), with the default conjugate directions (``accelerate=True``) and with the
   paper's plain iteration. Both run the same algorithm, so per-pair results and iteration counts
   agree; the batch runs until its slowest pair stops. Reports pairs/s, the speed-up and the iteration statistics.
2. Iterations: for 8 pairs, the iteration at which ProbGEORCE (plain and accelerated) first comes within 1e-6 of the
   final energy ``E*`` (the lowest of all solvers' final energies) against the same for Adam (best of several
   learning rates).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from bench_sampling import machine  # the sibling script (run as `python benchmarks/bench_geometry.py`)

import fastinterp as fi
from fastinterp.geometry import gradient_descent_path, likely_path


def target() -> fi.targets.GaussianMixture:
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    return fi.targets.GaussianMixture(means, torch.ones(3, dtype=torch.float64), 0.3)


def throughput(g, a, b, lam: float, n_grid: int, repeats: int, accelerate: bool) -> dict:
    kw = dict(score=g, lam=lam, n_grid=n_grid, accelerate=accelerate)
    likely_path(a[:2], b[:2], **{**kw, "max_iter": 5})  # warm-up
    t_batch, t_loop = float("inf"), float("inf")
    for _ in range(repeats):  # best of `repeats`: other processes share these cores
        t0 = time.perf_counter()
        batch = likely_path(a, b, **kw)
        t_batch = min(t_batch, time.perf_counter() - t0)
        t0 = time.perf_counter()
        singles = [likely_path(a[p : p + 1], b[p : p + 1], **kw) for p in range(a.shape[0])]
        t_loop = min(t_loop, time.perf_counter() - t0)
    curves = torch.cat([s.curves for s in singles])
    iters = torch.cat([s.iterations for s in singles])
    return dict(
        lam=lam,
        accelerate=accelerate,
        t_batch=t_batch,
        t_loop=t_loop,
        max_diff=float((curves - batch.curves).abs().max()),
        same_iters=bool(torch.equal(iters, batch.iterations)),
        it_max=int(batch.iterations.max()),
        it_median=float(batch.iterations.double().median()),
        it_sum=int(batch.iterations.sum()),
        converged=int(batch.converged.sum()),
    )


def first_within(trace: torch.Tensor, e_star: torch.Tensor, eps: float) -> list[int | None]:
    out = []
    for p in range(trace.shape[1]):
        hit = (trace[:, p] - e_star[p] <= eps).nonzero()
        out.append(int(hit[0]) if len(hit) else None)
    return out


def iterations(g, a, b, lam: float, n_grid: int, lrs: list[float], adam_iters: int) -> list[dict]:
    kw = dict(score=g, lam=lam, n_grid=n_grid, tol=1e-7, record_energy=True)
    ours = {acc: likely_path(a, b, max_iter=5000, accelerate=acc, **kw) for acc in (False, True)}
    runs = {lr: gradient_descent_path(a, b, lr=lr, max_iter=adam_iters, **kw) for lr in lrs}
    e_star = torch.stack([r.energy for r in ours.values()] + [r.energy for r in runs.values()]).min(0).values
    k_ours = {acc: first_within(r.energy_trace, e_star, 1e-6) for acc, r in ours.items()}
    k_adam = {lr: first_within(r.energy_trace, e_star, 1e-6) for lr, r in runs.items()}
    rows = []
    for p in range(a.shape[0]):
        reached = {lr: k[p] for lr, k in k_adam.items() if k[p] is not None}
        best_lr = min(reached, key=reached.get) if reached else None
        rows.append(
            dict(
                pair=p,
                plain=k_ours[False][p],
                ours=k_ours[True][p],
                ours_total=int(ours[True].iterations[p]),
                adam=reached.get(best_lr) if best_lr is not None else None,
                lr=best_lr,
                gap=float(ours[True].energy[p] - e_star[p]),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--lam", type=float, nargs="+", default=[5.0, 20.0])
    parser.add_argument("--n-grid", type=int, default=100)
    parser.add_argument("--iter-pairs", type=int, default=8)
    parser.add_argument("--iter-lam", type=float, default=5.0)
    parser.add_argument("--iter-n-grid", type=int, default=50)
    parser.add_argument("--adam-lr", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 3e-2])
    parser.add_argument("--adam-iters", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="timings are the best of this many runs")
    parser.add_argument("--out", default="benchmarks/results/geometry_cpu.md")
    args = parser.parse_args()

    g = target()
    gen = torch.Generator().manual_seed(args.seed)
    x = g.sample(2 * args.pairs, generator=gen)
    a, b = x[: args.pairs], x[args.pairs :]
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    lines = [
        "# Likely paths (ProbGEORCE) benchmark (CPU)",
        "",
        f"- machine: {machine()}, {platform.system()} {platform.machine()}; torch {torch.__version__}",
        f"- load average at start: {load} (shared machines make every rate noisy)",
        f"- workload: {args.pairs} pairs of samples of a 2-D 3-mode mixture (var 0.3), float64, exact score, "
        f"n_grid {args.n_grid}, tol 1e-4, max_iter 1000",
        "",
        "## Batched call against a pair-by-pair loop",
        "",
        "| lam | accelerate | batch s | loop s | pairs/s batch | pairs/s loop | speed-up | iterations max / median / "
        "sum | converged | max |diff| | same iterations |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print(lines[2])
    for lam, acc in [(lam, acc) for lam in args.lam for acc in (True, False)]:
        r = throughput(g, a, b, lam, args.n_grid, args.repeats, acc)
        row = (
            f"| {lam:g} | {acc} | {r['t_batch']:.2f} | {r['t_loop']:.2f} | {args.pairs / r['t_batch']:.1f} | "
            f"{args.pairs / r['t_loop']:.2f} | {r['t_loop'] / r['t_batch']:.1f}x | {r['it_max']} / "
            f"{r['it_median']:.0f} / {r['it_sum']} | {r['converged']}/{args.pairs} | {r['max_diff']:.1e} | "
            f"{r['same_iters']} |"
        )
        print(row)
        lines.append(row)
    lines += [
        "",
        f"## Iterations to come within 1e-6 of the final energy: ProbGEORCE vs Adam (lam {args.iter_lam:g}, "
        f"n_grid {args.iter_n_grid}, tol 1e-7; Adam lr in {args.adam_lr}, at most {args.adam_iters} iterations)",
        "",
        "| pair | ProbGEORCE plain | ProbGEORCE (accelerate) | total (tol 1e-7) | Adam (best lr) | lr | ratio plain "
        "| ratio accelerate | E - E* |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = iterations(
        g, a[: args.iter_pairs], b[: args.iter_pairs], args.iter_lam, args.iter_n_grid, args.adam_lr, args.adam_iters
    )
    ratios: dict[str, list[float]] = {"plain": [], "ours": []}
    for r in rows:
        if r["ours"] == 0 and r["plain"] == 0 and r["adam"] == 0:
            trivial = "- (the straight line is already within 1e-6)"
            row = f"| {r['pair']} | 0 | 0 | {r['ours_total']} | 0 | - | {trivial} | - | {r['gap']:.1e} |"
            print(row)
            lines.append(row)
            continue
        cells = []
        for key in ("plain", "ours"):
            if r[key] is None:
                cells.append("- (not within 1e-6 in 5000 iterations)")
            elif r["adam"] is None:
                ratios[key].append(args.adam_iters / max(r[key], 1))
                cells.append(f">= {ratios[key][-1]:.0f}x (Adam never within 1e-6)")
            else:
                ratios[key].append(r["adam"] / max(r[key], 1))
                cells.append(f"{ratios[key][-1]:.1f}x")
        row = (
            f"| {r['pair']} | {r['plain']} | {r['ours']} | {r['ours_total']} | {r['adam']} | {r['lr']} | {cells[0]} | "
            f"{cells[1]} | {r['gap']:.1e} |"
        )
        print(row)
        lines.append(row)
    for key, name in (("plain", "plain"), ("ours", "accelerated")):
        v = ratios[key]
        summary = (
            f"Adam / ProbGEORCE ({name}) iterations over the {len(v)} non-trivial pairs: median "
            f"{statistics.median(v):.1f}x, smallest {min(v):.1f}x, largest {max(v):.1f}x"
        )
        print(summary)
        lines += ["", summary]
    lines.append("")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    main()
