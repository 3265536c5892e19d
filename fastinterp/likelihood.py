"""Likelihoods through the probability-flow ODE: ``d/dt log rho_t(X_t) = -div b_t(X_t)``.

For a one-sided interpolant ``I_0 = z ~ N(0, I)`` exactly, so integrating the drift backwards from a point ``x`` at
``t_max`` to ``t = 0`` while accumulating the divergence gives

    log rho_{t_max}(x) = log N(X_0; 0, I) - int_0^{t_max} div b_t(X_t) dt,

the exact log-density of the interpolant at ``t_max`` up to the ODE solver's error. (``rho_1`` itself is the data
law; the drift is singular at ``t = 1`` for most predictions, so the likelihood is that of ``I_{t_max}``.)
Drifts under other schedules are first transferred to the linear one, whose drift is regular at ``t = 0``
(schedules with ``beta ~ sqrt(t)`` have ``beta' = inf`` there), with the Jacobian of the rescaling added.
The divergence is exact (one vector-Jacobian product per coordinate) or Hutchinson's unbiased estimate
``v^T J v`` with Rademacher probes ``v``, fixed along each trajectory.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._utils import check_int, check_state
from .drift import Drift, check_drift
from .schedules import Linear
from .solvers import ExplicitRK, get_solver
from .transfer import transfer_time

__all__ = ["divergence", "log_prob"]


def divergence(drift: Drift, x: Tensor, t: Tensor | float, *, probes: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The drift and its divergence ``div b_t(x) = tr grad b_t(x)`` per sample.

    Args:
        drift: the drift.
        x: points shaped ``(B, ...)``.
        t: time.
        probes: None for the exact trace; else Rademacher probes shaped ``(K, B, ...)`` for Hutchinson's estimate
            ``mean_k v_k^T J v_k``.

    Returns:
        ``(b, div)`` shaped ``(B, ...)`` and ``(B,)``.
    """
    drift = check_drift(drift)
    x = check_state("x", x).detach().requires_grad_(True)
    if probes is not None:
        if not isinstance(probes, Tensor):
            raise TypeError(f"probes must be a tensor shaped (K, *x.shape), got {type(probes).__name__}")
        if probes.ndim != x.ndim + 1 or probes.shape[1:] != x.shape or probes.shape[0] < 1:
            raise ValueError(
                f"probes must be shaped (K, *x.shape) = (K, {', '.join(map(str, x.shape))}) with K >= 1, "
                f"got {tuple(probes.shape)}"
            )
    with torch.enable_grad():
        b = drift.velocity(x, t)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if probes is None:
            flat = b.flatten(1)
            for j in range(flat.shape[1]):
                (g,) = torch.autograd.grad(flat[:, j].sum(), x, retain_graph=True)
                div = div + g.flatten(1)[:, j]
        else:
            for v in probes:
                (g,) = torch.autograd.grad(b, x, v, retain_graph=True)
                div = div + (g * v).flatten(1).sum(1)
            div = div / probes.shape[0]
    return b.detach(), div.detach()


def log_prob(
    drift: Drift,
    x: Tensor,
    *,
    steps: int = 100,
    method: str | ExplicitRK = "rk4",
    t_max: float = 1 - 1e-3,
    probes: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Log-density of the interpolant ``I_{t_max}`` at ``x`` by the probability-flow ODE (module docstring).

    Args:
        drift: the drift of a one-sided interpolant (white Gaussian base at ``t = 0``).
        x: points shaped ``(B, ...)``.
        steps: fixed steps of the backward integration on ``[0, t_max]``.
        method: RK method.
        t_max: time of the density; the drift must be finite there (``< 1`` unless it predicts velocity).
        probes: None for the exact divergence (``d`` vector-Jacobian products per stage: small ``d``), or the
            number of Hutchinson probes (Rademacher; the estimate is unbiased, its standard deviation shrinks as
            ``1/sqrt(probes)``).
        generator: for the probes.

    Returns:
        ``log rho_{t_max}(x)`` shaped ``(B,)``.
    """
    drift = check_drift(drift)
    x = check_state("x", x).detach()
    check_int("steps", steps, 1)
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float)) or not 0 < t_max <= 1:
        raise ValueError(f"t_max must lie in (0, 1], got {t_max!r}")
    if probes is not None:
        check_int("probes", probes, 1)
        v = torch.randint(0, 2, (probes, *x.shape), generator=generator, device=x.device).to(x.dtype) * 2 - 1
    else:
        v = None
    solver = get_solver(method)
    log_jac = x.new_zeros(())
    if not isinstance(drift.schedule, Linear):
        # Integrate in linear time: I_t = I^lin_{t'} / scale, so rho_t(x) = rho^lin_{t'}(scale x) scale^d. The linear
        # schedule's drift is regular at t = 0, where sqrt-type schedules (beta ~ sqrt(t)) have beta' = inf.
        tp, scale = transfer_time(Linear(), drift.schedule, torch.tensor(float(t_max), dtype=torch.float64))
        drift = drift.transfer(Linear())
        t_max = float(tp)
        x = x * float(scale)
        log_jac = x.new_tensor(x[0].numel() * math.log(float(scale)))
    grid = torch.linspace(t_max, 0.0, steps + 1, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    delta = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)  # int_t^{t_max} div b
    for i in range(steps):
        t, h = grid[i], grid[i + 1] - grid[i]  # h < 0: backwards in time
        ks, ds = [], []
        for s in range(solver.stages):
            xs = x
            for a, k in zip(solver.a[s], ks, strict=True):
                if a != 0.0:
                    xs = xs + (a * h) * k
            b, div = divergence(drift, xs, t + solver.c[s] * h, probes=v)
            ks.append(b)
            ds.append(div)
        x = x + h * sum(bi * k for bi, k in zip(solver.b, ks, strict=True))
        delta = delta - h * sum(bi * d for bi, d in zip(solver.b, ds, strict=True))
    if not torch.isfinite(x).all():
        raise FloatingPointError("log_prob: the backward ODE diverged; use more steps or a smaller t_max")
    d = x[0].numel()
    log_base = -0.5 * (x.flatten(1) ** 2).sum(1) - 0.5 * d * math.log(2 * math.pi)
    return log_base - delta + log_jac
