"""Likely paths between two samples of a drift, through its noise space.

Invert both samples with the probability-flow ODE (data at ``t_max`` back to noise at ``t_min``), join the two
noises by a likely path under the radial density of the Gaussian base (:func:`~fastinterp.geometry.radial_gaussian`,
which keeps the path on the shell of typical noise), and decode every point of the path with the same ODE forward.
Data-space likely paths of diffusion models look blurry (the paper's observation); noise-space paths decode to
samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .._utils import check_state
from ..drift import Drift
from ..sampling import sample, time_grid
from ..solvers import get_solver
from ._common import check_points
from .potentials import radial_gaussian
from .probgeorce import LikelyPath, likely_path

__all__ = ["NoisePath", "invert", "noise_space_path"]


def invert(
    drift: Drift,
    x1: Tensor,
    *,
    steps: int = 50,
    method: str = "rk4",
    t_min: float = 1e-3,
    t_max: float = 1 - 1e-3,
) -> Tensor:
    """The noise of samples: ``dx/dt = b_t(x)`` integrated backward from ``x(t_max) = x1`` to ``t_min``.

    The inverse of ``fastinterp.sample(drift, x0, steps, method, t_min, t_max)`` up to the solver's error: the same
    uniform grid, walked from its end with negative steps.

    Args:
        drift: the drift (any schedule and prediction).
        x1: samples shaped ``(B, ...)``.
        steps, method, t_min, t_max: as in :func:`fastinterp.sample`.

    Returns:
        The states at ``t_min``, shaped like ``x1``.
    """
    if not isinstance(drift, Drift):
        raise TypeError(f"drift must be a fastinterp Drift, got {type(drift).__name__}")
    x1 = check_state("x1", x1)
    solver = get_solver(method)
    grid = time_grid(steps, t_min, t_max, device=x1.device, dtype=x1.dtype)
    x = x1
    with torch.no_grad():
        for i in range(grid.numel() - 1, 0, -1):
            x = solver.step(drift.velocity, x, grid[i], grid[i - 1] - grid[i])
    if not torch.isfinite(x).all():
        raise FloatingPointError("invert: the state became non-finite; try more steps or a smaller [t_min, t_max]")
    return x


@dataclass(frozen=True)
class NoisePath:
    """The result of :func:`noise_space_path`.

    Attributes:
        curves: ``(P, n_grid + 1, *event)`` the decoded path (data space).
        noise_curves: ``(P, n_grid + 1, *event)`` the likely path in noise space.
        path: the :class:`~fastinterp.geometry.LikelyPath` of the noise-space problem (its diagnostics).
    """

    curves: Tensor
    noise_curves: Tensor
    path: LikelyPath


def noise_space_path(
    drift: Drift,
    a: Tensor,
    b: Tensor,
    *,
    lam: float = 20.0,
    n_grid: int = 100,
    tol: float = 1e-4,
    max_iter: int = 1000,
    steps: int = 50,
    method: str = "rk4",
    t_min: float = 1e-3,
    t_max: float = 1 - 1e-3,
) -> NoisePath:
    """Interpolate between samples ``a`` and ``b`` of ``drift`` along a likely path in its noise space.

    ``z_a = invert(a)``, ``z_b = invert(b)``; the noise path minimises
    ``sum_i |u_i|^2 + lam_n sum_i S(z_i)`` with ``S(z) = |z|^2 / 2 - (d - 1) log |z|`` (the radial density of
    ``N(0, I_d)``); every point is then decoded with ``fastinterp.sample(drift, z, steps, method, t_min, t_max)``.

    Args:
        drift: the trained (or exact) drift.
        a, b: samples shaped ``(P, *event)`` (event size ``d >= 2``).
        lam, n_grid, tol, max_iter: as in :func:`~fastinterp.geometry.likely_path`.
        steps, method, t_min, t_max: the ODE used both ways.

    Returns:
        :class:`NoisePath`.
    """
    if not isinstance(drift, Drift):
        raise TypeError(f"drift must be a fastinterp Drift, got {type(drift).__name__}")
    a, b = check_points(a, b)
    d = math.prod(a.shape[1:])
    if d < 2:
        raise ValueError(f"the event size must be >= 2 for a radial density, got {d}")
    P = a.shape[0]
    z = invert(drift, torch.cat([a, b]), steps=steps, method=method, t_min=t_min, t_max=t_max)
    res = likely_path(z[:P], z[P:], score=radial_gaussian(d), lam=lam, n_grid=n_grid, tol=tol, max_iter=max_iter)
    flat = res.curves.reshape(P * (n_grid + 1), *a.shape[1:])
    with torch.no_grad():
        x = sample(drift, flat, steps=steps, method=method, t_min=t_min, t_max=t_max)
    return NoisePath(curves=x.reshape(res.curves.shape), noise_curves=res.curves, path=res)
