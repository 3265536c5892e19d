"""What each schedule's time grid costs on the PDE data's own spectra, without a network.

For Allen-Cahn at N = 32, 64, 128 and Navier-Stokes at 32^2 and 128^2 (fresh data, the experiment's generators and
normalisation), the exact drift of the Gaussian with the data's second moments (``fastinterp.experiment.gaussian_of``)
is sampled exactly as ``fastinterp experiment`` samples the network: between the noise levels of
``LipschitzOptimal(lam*)`` on ``[1e-4, 1 - 1e-4]``, centred, classical RK4. Printed: ``lam*`` (paper convention) and
the spectrum error of 10 and 20 steps of each schedule against 400 steps of Linear (the Gaussian's own floor).

    python examples/results/gaussian_schedules.py      # about 3 minutes on one core
"""

import os

import torch

from fastinterp import experiment as E
from fastinterp.drift import Drift
from fastinterp.pde import AllenCahn1D, NavierStokes2D
from fastinterp.sampling import sample
from fastinterp.schedules import Linear, LipschitzOptimal


def errors(normed: torch.Tensor, dataset: str, n: int, samples: int) -> tuple[float, dict[str, float]]:
    lam = E._lam(normed, dataset, n, "max")
    schedule = LipschitzOptimal(lam)
    drift = Drift(E.gaussian_of(normed, dataset), schedule=Linear(), prediction="x1", noise_range=E._band(schedule))
    mean = normed.mean(0)
    z = torch.randn(samples, *normed.shape[1:], generator=torch.Generator().manual_seed(0))
    spec = lambda x: E.spectrum(x, dataset)  # noqa: E731
    with torch.no_grad():
        floor = spec(sample(drift, z, steps=400, mean=mean))
        out = {}
        for steps in (10, 20):
            for name, d in (("Linear", drift), ("Lipschitz", drift.transfer(schedule))):
                out[f"{name}@{steps}"] = E.spectrum_error(spec(sample(d, z, steps=steps, mean=mean)), floor,
                                                          E.shells(dataset, n))  # fmt: skip
    return lam, out


def main() -> None:
    threads = os.cpu_count() or 1
    rows = []
    for n in (32, 64, 128):
        u = AllenCahn1D(n).sample(200, 50, seed=0, thin=10, threads=threads)[..., :n].reshape(-1, n)
        u = torch.from_numpy(u)
        rows.append((f"ac N={n}", *errors((u - u.mean()) / u.std(), "ac", n, 1024)))
    for n, traj in ((32, 20), (128, 4)):
        w = NavierStokes2D(n).sample(traj, seed=0, snapshots=10, threads=threads).reshape(-1, n, n)
        w = torch.from_numpy(w)
        rows.append((f"ns {n}^2", *errors((w - w.mean()) / w.std(), "ns", n, 256 if n == 32 else 64)))
    keys = list(rows[0][2])
    print(f"{'data':12s}{'lam*':>10s}" + "".join(f"{k:>14s}" for k in keys))
    for name, lam, out in rows:
        print(f"{name:12s}{lam:10.3g}" + "".join(f"{out[k]:14.4f}" for k in keys))


if __name__ == "__main__":
    main()
