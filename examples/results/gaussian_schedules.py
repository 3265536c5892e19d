"""What each schedule's time grid costs on the data's own spectra, without a network, in both units.

For Gaussian random fields at 16^2 and 32^2, Allen-Cahn at N = 32, 64, 128 and Navier-Stokes at 32^2 and 128^2
(fresh data, the experiment's generators), the exact drift of the Gaussian with the data's second moments
(``fastinterp.experiment.gaussian_of``) is sampled exactly as ``fastinterp experiment`` samples the network: between
the noise levels of ``LipschitzOptimal(lam*)`` on ``[1e-4, 1 - 1e-4]``, centred, classical RK4; in the experiment's
two units (``normalise``): ``top``, the largest mode at the base's variance, and ``std``, the pixel std. Printed:
``lam*`` (the paper's convention, the same in both units), the stiffest mode over the base (``min/base``) and the
spectrum error of 10 and 20 steps of each schedule against 400 steps of Linear (the Gaussian's own floor).

    python examples/results/gaussian_schedules.py      # about 6 CPU minutes
"""

import os

import torch

from fastinterp import experiment as E
from fastinterp.drift import Drift
from fastinterp.pde import AllenCahn1D, NavierStokes2D
from fastinterp.sampling import sample
from fastinterp.schedules import Linear, LipschitzOptimal
from fastinterp.targets import GaussianRandomField


def errors(data: torch.Tensor, dataset: str, n: int, samples: int, normalise: str) -> tuple[float, float, dict]:
    """``(lam*, min/base, {"Linear@10": error, ...})`` in the units ``normalise`` names (as the experiment)."""
    mean, scale, lam, lam_base = E.units(data, dataset, normalise)
    normed = (data - mean) / scale
    schedule = LipschitzOptimal(lam)
    drift = Drift(E.gaussian_of(normed, dataset), schedule=Linear(), prediction="x1", noise_range=E._band(schedule))
    mean = normed.mean(0)
    z = torch.randn(samples, *normed.shape[1:], generator=torch.Generator().manual_seed(0), dtype=normed.dtype)
    spec = lambda x: E.spectrum(x, dataset)  # noqa: E731
    with torch.no_grad():
        floor = spec(sample(drift, z, steps=400, mean=mean))
        out = {}
        for steps in (10, 20):
            for name, d in (("Linear", drift), ("Lipschitz", drift.transfer(schedule))):
                out[f"{name}@{steps}"] = E.spectrum_error(spec(sample(d, z, steps=steps, mean=mean)), floor,
                                                          E.shells(dataset, n))  # fmt: skip
    return lam, lam_base, out


def main() -> None:
    threads = os.cpu_count() or 1
    cases = []
    for n in (16, 32):
        x = GaussianRandomField(n, dtype=torch.float64).sample(2000, generator=torch.Generator().manual_seed(0))
        cases.append((f"grf {n}^2", x, "grf", n, 256))
    for n in (32, 64, 128):
        u = AllenCahn1D(n).sample(200, 50, seed=0, thin=10, threads=threads)[..., :n].reshape(-1, n)
        cases.append((f"ac N={n}", torch.from_numpy(u), "ac", n, 1024))
    for n, traj in ((32, 20), (128, 4)):
        w = NavierStokes2D(n).sample(traj, seed=0, snapshots=10, threads=threads).reshape(-1, n, n)
        cases.append((f"ns {n}^2", torch.from_numpy(w), "ns", n, 256 if n == 32 else 64))
    keys = ("Linear@10", "Lipschitz@10", "Linear@20", "Lipschitz@20")
    print("| data | units | lam* | min/base | " + " | ".join(keys) + " |")
    print("|---" * (4 + len(keys)) + "|")
    for name, data, dataset, n, samples in cases:
        for normalise in E.NORMALISE:
            lam, base, out = errors(data, dataset, n, samples, normalise)
            print(f"| {name} | {normalise} | {lam:.3g} | {base:.3g} | " + " | ".join(f"{out[k]:.4f}" for k in keys)
                  + " |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
