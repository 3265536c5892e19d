"""Sampling: integrate a drift from ``t_min`` to ``t_max`` with an ODE solver or Euler-Maruyama.

``steps`` counts the intervals of the time grid; the number of function evaluations (NFE) is
``steps x stages`` (plus one with ``denoise=True``), see :func:`nfe`.

Non-finite states are detected without a host synchronisation per step: the index of the first bad step is
tracked on the device and checked once at the end, and the error names that step and its time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._utils import check_int, check_interval, check_state
from .drift import Drift
from .solvers import ExplicitRK, get_solver

__all__ = ["nfe", "sample", "sample_sde", "time_grid"]


def time_grid(steps: int, t_min: float = 1e-3, t_max: float = 1 - 1e-3, *, device=None, dtype=None) -> Tensor:
    """Uniform grid of ``steps + 1`` times from ``t_min`` to ``t_max`` (computed in float64, then cast)."""
    check_int("steps", steps, 1)
    t_min, t_max = check_interval(t_min, t_max)
    grid = torch.linspace(t_min, t_max, steps + 1, dtype=torch.float64)
    return grid.to(device=device, dtype=dtype or torch.get_default_dtype())


def nfe(steps: int, method: str | ExplicitRK = "rk4", *, denoise: bool = False) -> int:
    """Model evaluations used by :func:`sample` with these options: ``steps * stages + denoise``."""
    return check_int("steps", steps, 1) * get_solver(method).stages + int(bool(denoise))


def _check_drift(drift: object) -> Drift:
    if not isinstance(drift, Drift):
        raise TypeError(
            f"drift must be a fastinterp Drift (wrap a model with fi.Drift(model, schedule, prediction)), "
            f"got {type(drift).__name__}"
        )
    return drift


def _grid_for(x0: Tensor, steps: int, t_min: float, t_max: float, grid: Tensor | None) -> Tensor:
    if grid is None:
        return time_grid(steps, t_min, t_max, device=x0.device, dtype=x0.dtype)
    if not isinstance(grid, Tensor) or grid.ndim != 1 or grid.numel() < 2:
        raise ValueError("time_grid must be a 1-D tensor of at least 2 times")
    g = grid.detach().to(torch.float64).cpu()
    if not (torch.isfinite(g).all() and (g[1:] > g[:-1]).all() and g[0] >= 0 and g[-1] <= 1):
        raise ValueError(f"time_grid must increase strictly inside [0, 1], got {g.tolist()}")
    return grid.to(device=x0.device, dtype=x0.dtype)


class _FiniteWatch:
    """Remembers, on the device, the first step after which the state stopped being finite."""

    def __init__(self, x: Tensor, enabled: bool) -> None:
        self.enabled = enabled
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=x.device)

    def update(self, x: Tensor, step: int) -> None:
        if self.enabled:
            bad = ~torch.isfinite(x).all()
            self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)

    def raise_if_bad(self, grid: Tensor, what: str) -> None:
        if self.enabled:
            i = int(self.first_bad)  # the one host synchronisation of the run
            if i >= 0:
                raise FloatingPointError(
                    f"{what}: the state became non-finite in step {i} (t = {float(grid[i]):.6g} -> "
                    f"{float(grid[i + 1]):.6g}); try more steps, a smaller [t_min, t_max] or another schedule"
                )


def sample(
    drift: Drift,
    x0: Tensor,
    steps: int = 10,
    method: str | ExplicitRK = "rk4",
    t_min: float = 1e-3,
    t_max: float = 1 - 1e-3,
    *,
    denoise: bool = False,
    time_grid: Tensor | None = None,
    check_finite: bool = True,
    backend: str = "eager",
) -> Tensor:
    """Integrate the probability-flow ODE ``dx/dt = b_t(x)`` from ``t_min`` to ``t_max``.

    Args:
        drift: the drift (any schedule, any prediction type; transferred drifts included).
        x0: state at ``t_min``, shaped ``(B, ...)``; for a one-sided interpolant the base noise ``z``
            (its ``alpha_{t_min} z`` part dominates at small ``t_min``).
        steps: number of intervals of the uniform time grid (``>= 1``).
        method: a name from :data:`~fastinterp.SOLVERS` (``euler``, ``midpoint``, ``heun``, ``rk4``, ``rk4_38``).
        t_min, t_max: integration interval inside ``[0, 1]``; the drift is singular at the ends.
        denoise: finish with one extra evaluation and return ``E[x1 | x_{t_max}]`` instead of the state.
        time_grid: optional explicit increasing grid of times (overrides ``steps``, ``t_min``, ``t_max``).
        check_finite: raise ``FloatingPointError`` naming the step if the state becomes non-finite.
        backend: ``"eager"`` (this reference loop) or a fast backend of :class:`~fastinterp.Sampler`
            (``"fused"``, ``"compile"``, ``"graph"``, ``"auto"``); reuse a ``Sampler`` to amortise its set-up.

    Returns:
        The state at ``t_max`` (or its denoised estimate), shaped like ``x0``. NFE: :func:`nfe`.
    """
    if backend != "eager":
        from .sampler import Sampler

        sampler = Sampler(
            drift,
            steps=steps,
            method=method,
            t_min=t_min,
            t_max=t_max,
            time_grid=time_grid,
            denoise=denoise,
            backend=backend,
            check_finite=check_finite,
        )
        return sampler(x0)
    drift = _check_drift(drift)
    x = check_state("x0", x0)
    solver = get_solver(method)
    grid = _grid_for(x, steps, t_min, t_max, time_grid)
    watch = _FiniteWatch(x, check_finite)
    for i in range(grid.numel() - 1):
        t = grid[i]
        x = solver.step(drift.velocity, x, t, grid[i + 1] - t)
        watch.update(x, i)
    watch.raise_if_bad(grid, f"sample(method={solver.name!r})")
    if denoise:
        x = drift.x1(x, grid[-1])
    return x


def _diffusion(eps: float | str | Callable, drift: Drift) -> Callable[[Tensor], Tensor | float]:
    if isinstance(eps, str):
        if eps != "optimal":
            raise ValueError(f"eps must be a float >= 0, a callable of t or 'optimal', got {eps!r}")
        return drift.schedule.optimal_diffusion
    if callable(eps):
        return eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0 or eps == float("inf"):
        raise ValueError(f"eps must be a finite float >= 0, a callable of t or 'optimal', got {eps!r}")
    value = float(eps)
    return lambda t: torch.full_like(t, value)


def sample_sde(
    drift: Drift,
    x0: Tensor,
    steps: int = 100,
    eps: float | str | Callable[[Tensor], Tensor | float] = "optimal",
    t_min: float = 1e-3,
    t_max: float = 1 - 1e-3,
    *,
    generator: torch.Generator | None = None,
    denoise: bool = False,
    time_grid: Tensor | None = None,
    check_finite: bool = True,
) -> Tensor:
    """Euler-Maruyama for ``dX = [b_t(X) + eps_t s_t(X)] dt + sqrt(2 eps_t) dW`` from ``t_min`` to ``t_max``.

    Every ``eps >= 0`` gives the same marginals as the ODE; ``"optimal"`` uses the schedule's statistically
    optimal ``eps*_t = alpha^2 (beta'/beta - alpha'/alpha)``. The score ``s = -z^ / alpha`` comes from the same
    model evaluation as the drift (one NFE per step).

    Args:
        drift: the drift.
        x0: state at ``t_min``, shaped ``(B, ...)``.
        steps: number of Euler-Maruyama steps.
        eps: diffusion: a constant ``>= 0``, a callable ``eps(t)`` of a 0-d time tensor, or ``"optimal"``.
        t_min, t_max: integration interval inside ``[0, 1]``.
        generator: the ``torch.Generator`` drawing the Brownian increments (on ``x0``'s device): same generator
            state, same samples.
        denoise: finish with ``E[x1 | x_{t_max}]`` (one extra evaluation).
        time_grid: optional explicit increasing grid of times.
        check_finite: raise ``FloatingPointError`` naming the step if the state becomes non-finite.

    Returns:
        The state at ``t_max`` (or its denoised estimate), shaped like ``x0``.
    """
    drift = _check_drift(drift)
    x = check_state("x0", x0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    eps_fn = _diffusion(eps, drift)
    grid = _grid_for(x, steps, t_min, t_max, time_grid)
    watch = _FiniteWatch(x, check_finite)
    for i in range(grid.numel() - 1):
        t = grid[i]
        h = grid[i + 1] - t
        e = torch.as_tensor(eps_fn(t), dtype=x.dtype, device=x.device)
        v, s = drift.convert(x, t, ("velocity", "score"))
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x + (v + e * s) * h + torch.sqrt(2 * e * h) * noise
        watch.update(x, i)
    watch.raise_if_bad(grid, "sample_sde")
    if denoise:
        x = drift.x1(x, grid[-1])
    return x
