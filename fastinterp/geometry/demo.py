"""``fastinterp geodesic``: straight lines against likely paths between points of a 2-D Gaussian mixture.

A ring of six modes; pairs of points drawn from different modes are joined by the straight line and by ProbGEORCE
likely paths for several ``lam``, all pairs in one batched call per ``lam``. Prints the mean negative
log-likelihood along each curve and the Fréchet mean of the points; saves ``fastinterp_geodesic.png`` when
matplotlib is installed (a table only otherwise, or with ``--no-plot``).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .._argtypes import add_geodesic_arguments as add_arguments  # the options: standard library only (fast --help)
from ..targets import GaussianMixture
from .frechet import frechet_mean
from .probgeorce import likely_path

__all__ = ["add_arguments", "demo_target", "main", "run"]


def demo_target(modes: int = 6, radius: float = 2.0, var: float = 0.1) -> GaussianMixture:
    """Equal-weight mixture of ``modes`` isotropic Gaussians on a circle of ``radius`` (float64)."""
    ang = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    means = radius * torch.stack([ang.cos(), ang.sin()], 1)
    return GaussianMixture(means, torch.ones(modes, dtype=torch.float64), var)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with command-line arguments ``argv`` (``None``: ``sys.argv[1:]``); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="fastinterp geodesic",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    return run(add_arguments(parser).parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed options (those of :func:`add_arguments`); returns the exit status."""
    out = Path(args.out)
    if not args.no_plot:  # before the work: a folder that cannot be written fails now, not after the table
        if out.exists() and not out.is_dir():
            raise SystemExit(f"fastinterp geodesic: --out {args.out} is a file, not a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=out).close()
        except OSError as exc:
            raise SystemExit(f"fastinterp geodesic: --out {args.out} is not a writable folder: "
                             f"{exc.strerror or exc}") from None  # fmt: skip
    target = demo_target()
    gen = torch.Generator().manual_seed(args.seed)
    K = target.means.shape[0]
    ka = torch.randint(0, K, (args.pairs,), generator=gen)
    kb = (ka + torch.randint(1, K, (args.pairs,), generator=gen)) % K  # another mode
    noise = 0.15 * torch.randn(2, args.pairs, 2, generator=gen, dtype=torch.float64)
    a, b = target.means[ka] + noise[0], target.means[kb] + noise[1]

    results = {}
    accel = not args.plain
    for lam in args.lam:
        t0 = time.perf_counter()
        res = likely_path(a, b, score=target, lam=lam, n_grid=args.n_grid, max_iter=args.max_iter, accelerate=accel)
        results[lam] = (res, time.perf_counter() - t0)
    line_nll = next(iter(results.values()))[0].line_nll

    head = f"{'pair':>4} {'from':>5} {'to':>3} {'line NLL':>9}" + "".join(
        f" {f'lam={lam:g} NLL':>13}" for lam in args.lam
    )
    print("Mean negative log-likelihood along the curves (2-D ring of 6 modes, var 0.1)")
    print(head)
    for p in range(args.pairs):
        row = f"{p:>4} {int(ka[p]):>5} {int(kb[p]):>3} {float(line_nll[p]):>9.3f}"
        row += "".join(f" {float(results[lam][0].nll[p]):>13.3f}" for lam in args.lam)
        print(row)
    for lam, (res, sec) in results.items():
        print(
            f"lam={lam:g}: {int(res.converged.sum())}/{args.pairs} converged, "
            f"iterations max {int(res.iterations.max())}"
            f" (median {int(res.iterations.median())}), {sec:.2f} s for the batch"
        )
    pts = torch.cat([a, b])
    fm = frechet_mean(pts, score=target, lam=args.lam[-1], n_grid=args.n_grid, max_iter=args.max_iter, accelerate=accel)
    print(
        f"Fréchet mean of the {2 * args.pairs} points (lam={args.lam[-1]:g}): {fm.mean.tolist()} "
        f"(Euclidean mean {pts.mean(0).tolist()}), converged={bool(fm.converged)}"
    )

    if args.no_plot:
        return 0
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: table only (pip install matplotlib for the figure)")
        return 0
    g = torch.linspace(-3.2, 3.2, 200, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    L = target.log_prob(torch.stack([X.flatten(), Y.flatten()], 1)).reshape(X.shape)
    fig, axes = plt.subplots(1, len(args.lam), figsize=(5.6 * len(args.lam), 5), squeeze=False, layout="constrained")
    for ax, lam in zip(axes[0], args.lam, strict=True):
        res = results[lam][0]
        shade = ax.contourf(X.numpy(), Y.numpy(), L.clamp(min=-12).numpy(), levels=30, cmap="Greys")
        fig.colorbar(shade, ax=ax, label="log density of the mixture (clipped at -12)", shrink=0.85)
        for p in range(args.pairs):
            c = res.curves[p].numpy()
            ax.plot([a[p, 0], b[p, 0]], [a[p, 1], b[p, 1]], "--", color="tab:blue", lw=1,
                    label="straight line" if p == 0 else None)  # fmt: skip
            ax.plot(c[:, 0], c[:, 1], color="tab:red", lw=1.5, label="likely path" if p == 0 else None)
        if lam == args.lam[-1]:
            ax.plot(fm.mean[0], fm.mean[1], "*", color="gold", ms=14, mec="k", label="Fréchet mean")
        ax.set_title(f"lam = {lam:g}: {int(res.converged.sum())}/{args.pairs} paths converged")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="lower left")
    path = out / "fastinterp_geodesic.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}")
    return 0
