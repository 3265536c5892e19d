"""``fastinterp experiment``: train once with the linear schedule, sample with a designed one, compare spectra.

The Lipschitz paper's central practical claim, end to end: a velocity model trained under the *linear* schedule,
sampled at equal NFE (10 RK4 steps) with ``Linear`` and with ``LipschitzOptimal(lam*)`` through the transfer map
(``lam*`` estimated from the training data's Fourier spectrum, REFERENCE section 3), the samples' radial energy
spectra compared with held-out data.

Datasets: ``grf`` (Gaussian random fields, exact samples from :class:`~fastinterp.targets.GaussianRandomField`),
``ns`` (stochastic Navier-Stokes vorticity from :class:`~fastinterp.pde.NavierStokes2D`, the paper's parameters;
held-out snapshots come from other trajectories) and ``ac`` (the paper's 1-D Allen-Cahn Gibbs measure sampled
exactly by :class:`~fastinterp.pde.AllenCahn1D`, first N of the N + 1 nodes, held-out samples from other chains).
The spectrum compared is the radial ``|u_k|^2`` (the enstrophy spectrum for vorticity; for the non-periodic
Allen-Cahn profiles a diagnostic only).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .diagnostics import estimate_lam, radial_spectrum, spectrum_error
from .drift import Drift
from .models import build_model
from .sampling import sample
from .schedules import Linear, LipschitzOptimal
from .targets import GaussianRandomField
from .training import train

__all__ = ["PRESETS", "ExperimentReport", "run_experiment"]


@dataclass(frozen=True)
class Preset:
    n: int
    n_train: int
    n_test: int
    model: str
    steps: int
    batch_size: int
    lr: float
    sample_steps: int = 10
    n_samples: int = 256
    prediction: str = "x1"


#: ``tiny`` is a smoke test; ``cpu`` takes about 3-5 minutes on 2 cores; ``paper`` is the GPU scale (128^2 fields,
#: the ~2M-parameter UNet). The models predict the data (``x1``): the drift then follows by the exact conversion,
#: which carries the stiff ``1 / alpha`` factor that a velocity network would have to learn.
PRESETS = {
    "grf": {
        "tiny": Preset(n=16, n_train=256, n_test=128, model="tiny-2d", steps=60, batch_size=16, lr=2e-3, n_samples=32),
        "cpu": Preset(n=16, n_train=2048, n_test=512, model="small-2d", steps=600, batch_size=32, lr=2e-3),
        "paper": Preset(n=128, n_train=10000, n_test=1000, model="2d-2m", steps=50000, batch_size=64, lr=2e-4),
    },
    "ac": {  # 1-D: fields of N = n nodes (the trainer keeps the first N of the N + 1, as the paper's does)
        "tiny": Preset(n=32, n_train=128, n_test=64, model="tiny-1d", steps=30, batch_size=16, lr=2e-3, n_samples=32),
        "cpu": Preset(n=32, n_train=4000, n_test=1000, model="tiny-1d", steps=600, batch_size=64, lr=2e-3),
        "paper": Preset(n=128, n_train=100000, n_test=10000, model="1d-1m", steps=50000, batch_size=256, lr=2e-4),
    },
    "ns": {
        "tiny": Preset(n=32, n_train=80, n_test=40, model="tiny-2d", steps=30, batch_size=8, lr=2e-3, n_samples=16),
        "cpu": Preset(n=32, n_train=2000, n_test=500, model="small-2d", steps=600, batch_size=32, lr=2e-3),
        "paper": Preset(n=128, n_train=10000, n_test=1000, model="2d-2m", steps=50000, batch_size=64, lr=2e-4),
    },
}


@dataclass
class ExperimentReport:
    dataset: str
    preset: str
    lam: float
    nfe: int
    error_linear: float
    error_lipschitz: float
    train_seconds: float
    final_loss: float

    def table(self) -> str:
        return (
            f"dataset {self.dataset} ({self.preset}), lam* = {self.lam:.3g}, "
            f"RK4 {self.nfe // 4} steps ({self.nfe} NFE)\n"
            f"  spectrum error (mean |log10 E/E_heldout|):  Linear {self.error_linear:.3f}   "
            f"LipschitzOptimal {self.error_lipschitz:.3f}\n"
            f"  training: {self.train_seconds:.0f} s, final loss {self.final_loss:.4g}"
        )


def _spectrum_error(fields: torch.Tensor, reference: torch.Tensor, shells: int | None = None) -> float:
    """Mean over shells ``1..shells`` of ``|log10(E / E_reference)|``."""
    dim = fields.ndim - 1
    return spectrum_error(radial_spectrum(fields, dim=dim), radial_spectrum(reference, dim=dim), shells)


def _resolved(dataset: str, n: int) -> int | None:
    """Highest wavenumber with content: Navier-Stokes data are dealiased by the 2/3 rule (modes above n/3 are 0)."""
    return n // 3 if dataset == "ns" else None


def _data(dataset: str, p: Preset, seed: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and held-out snapshots ``(n, N, N)``; held-out Navier-Stokes data come from other trajectories."""
    if dataset == "grf":
        data = GaussianRandomField(p.n, dtype=torch.float32).sample(p.n_train + p.n_test, generator=gen)
        return data[: p.n_train], data[p.n_train :]
    if dataset == "ac":
        from .pde import AllenCahn1D

        chains = 8
        per_chain = -(-(p.n_train + p.n_test) // chains)
        u = AllenCahn1D(p.n).sample(chains, per_chain, seed=seed, thin=2, threads=os.cpu_count() or 1)
        u = torch.from_numpy(u[..., : p.n].astype("float32"))  # first N of the N + 1 nodes
        test_chains = max(1, round(chains * p.n_test / (p.n_train + p.n_test)))
        return u[test_chains:].reshape(-1, p.n), u[:test_chains].reshape(-1, p.n)
    from .pde import NavierStokes2D

    snaps = 10  # snapshots per trajectory, every 0.5 time units after 50 of burn-in (REFERENCE section 6)
    n_traj = -(-(p.n_train + p.n_test) // snaps)
    w = NavierStokes2D(p.n).sample(n_traj, seed=seed, snapshots=snaps, threads=os.cpu_count() or 1)
    w = torch.from_numpy(w.astype("float32"))
    n_test_traj = -(-p.n_test // snaps)
    return w[n_test_traj:].reshape(-1, p.n, p.n), w[:n_test_traj].reshape(-1, p.n, p.n)


def run_experiment(
    dataset: str = "grf", *, preset: str = "cpu", out: str | Path = "experiment", seed: int = 0, progress: bool = True
) -> ExperimentReport:
    """Train, sample with both schedules, write ``report.json``, ``checkpoint.pt`` and ``spectra.png`` to ``out``."""
    if dataset not in PRESETS:
        raise ValueError(f"dataset must be one of {sorted(PRESETS)}, got {dataset!r}")
    if preset not in PRESETS[dataset]:
        raise ValueError(f"preset must be one of {sorted(PRESETS[dataset])}, got {preset!r}")
    p = PRESETS[dataset][preset]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    train_data, test_data = _data(dataset, p, seed, gen)

    torch.manual_seed(seed)
    model = build_model(p.model)
    start = time.perf_counter()
    # force: a rerun into the same folder replaces the whole report, its checkpoint included
    result = train(model, train_data, steps=p.steps, out=out / "checkpoint.pt", batch_size=p.batch_size, lr=p.lr,
                   prediction=p.prediction, seed=seed, progress=progress, force=True)  # fmt: skip
    seconds = time.perf_counter() - start
    mean, std = float(train_data.mean()), float(train_data.std())
    kmax = _resolved(dataset, p.n)
    dim = train_data.ndim - 1
    lam = estimate_lam((train_data - mean) / std, method="fourier", dim=dim, reference="base", max_wavenumber=kmax)

    drift = Drift(result.ema, schedule=Linear(), prediction=p.prediction)
    z = torch.randn(p.n_samples, *train_data.shape[1:], generator=gen)
    kw = dict(steps=p.sample_steps, method="rk4", t_min=1e-4, t_max=1 - 1e-4)
    with torch.no_grad():
        lin = sample(drift, z, **kw) * std + mean
        lip = sample(drift.transfer(LipschitzOptimal(lam)), z, **kw) * std + mean
    report = ExperimentReport(dataset, preset, lam, 4 * p.sample_steps, _spectrum_error(lin, test_data, kmax),
                              _spectrum_error(lip, test_data, kmax), seconds, result.losses[-1])  # fmt: skip
    (out / "report.json").write_text(json.dumps(asdict(report), indent=2))
    _plot(out / "spectra.png", test_data, lin, lip, report)
    return report


def _plot(path: Path, test, lin, lip, report: ExperimentReport) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for label, fields, style in (("held-out data", test, "k-"), ("Linear", lin, "-"),
                                 (f"LipschitzOptimal({report.lam:.2g})", lip, "-")):  # fmt: skip
        e = radial_spectrum(fields.double(), dim=fields.ndim - 1)
        k = torch.arange(1, e.numel())
        ax.loglog(k.numpy(), e[1:].clamp(min=1e-300).numpy(), style, label=label)
    ax.set_xlabel("wavenumber (cycles per domain)")
    ax.set_ylabel("radial spectrum E = shell sum of |u_k|^2")
    ax.set_title(f"{report.dataset} ({report.preset}): trained once (linear), RK4 {report.nfe} NFE", fontsize=10)
    ax.legend(fontsize=8, title=f"spectrum error: Linear {report.error_linear:.2f}, "
              f"Lipschitz {report.error_lipschitz:.2f}", title_fontsize=7)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
