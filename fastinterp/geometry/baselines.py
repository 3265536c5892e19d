"""Baseline: the same discrete likely-path energy minimised by plain gradient descent or Adam.

The curve's interior points are the parameters; the gradient is the exact gradient of

    E(z) = sum_{i=0}^{N-1} u_i^T G(z_i) u_i + lam_n sum_{i=1}^{N-1} S(z_i)

(the same ``lam_n`` normalisation, starting curve and stopping rule as :func:`~fastinterp.geometry.likely_path`),
so the two solvers reach the same minimiser and their iteration counts compare the algorithms, not the problems.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._common import BadWatch, Terms, check_float, check_int, check_metric, check_points
from ._control import (
    Metric,
    MetricState,
    controls,
    full_curve,
    kinetic,
    kinetic_grad,
    straight_line,
    trapezoid_potential,
)
from .potentials import as_potential
from .probgeorce import LikelyPath, normalised_lam

__all__ = ["gradient_descent_path"]

OPTIMIZERS = ("adam", "gd")


def gradient_descent_path(
    a: Tensor,
    b: Tensor,
    *,
    score: object = None,
    log_prob: object = None,
    metric: Callable[[Tensor], Tensor] | None = None,
    lam: float = 20.0,
    n_grid: int = 100,
    tol: float = 1e-4,
    max_iter: int = 10000,
    optimizer: str = "adam",
    lr: float = 1e-2,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    t_score: float = 1 - 1e-3,
    normalize_lam: bool = True,
    check_every: int = 10,
    record_energy: bool = False,
) -> LikelyPath:
    """Likely paths by first-order descent on the interior points (the baseline ProbGEORCE is compared with).

    Per pair, from the straight line, iterate ``z <- z - lr grad E(z)`` (``optimizer="gd"``) or Adam's update

        m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,  z <- z - lr (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)

    (``optimizer="adam"``, elementwise, so batching does not couple the pairs), until ``|grad E| < tol``.

    Args:
        a, b: endpoints shaped ``(P, *event)``.
        score, log_prob, metric, lam, n_grid, tol, t_score, normalize_lam, check_every, record_energy: as in
            :func:`~fastinterp.geometry.likely_path`.
        max_iter: maximal number of iterations.
        optimizer: ``"adam"`` or ``"gd"``.
        lr: step size (``> 0``).
        betas: Adam's ``(b1, b2)``, each in ``[0, 1)``.
        eps: Adam's ``eps`` (``> 0``).

    Returns:
        :class:`~fastinterp.geometry.LikelyPath` (``iterations``: gradient steps taken per pair).
    """
    a, b = check_points(a, b)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    lam = check_float("lam", lam, low=0.0)
    n = check_int("n_grid", n_grid, 2)
    tol = check_float("tol", tol, low=0.0, strict=True)
    max_iter = check_int("max_iter", max_iter, 0)
    lr = check_float("lr", lr, low=0.0, strict=True)
    if not (isinstance(betas, tuple) and len(betas) == 2):
        raise TypeError(f"betas must be a tuple (b1, b2), got {betas!r}")
    b1 = check_float("betas[0]", betas[0], low=0.0, high=1.0 - 1e-12)
    b2 = check_float("betas[1]", betas[1], low=0.0, high=1.0 - 1e-12)
    eps = check_float("eps", eps, low=0.0, strict=True)
    check_every = check_int("check_every", check_every, 1)
    fn = check_metric(metric)
    pot = as_potential(score, log_prob, t_score=t_score)
    event = tuple(a.shape[1:])
    d, P = math.prod(event), a.shape[0]
    terms = Terms(pot, event)
    met = Metric(fn, event, d) if fn is not None else None
    a2, b2_ = a.reshape(P, d), b.reshape(P, d)
    watch = BadWatch(P, a.device)
    it = 0

    with torch.no_grad():
        G0 = met(a2) if met is not None else None
        gS_a = terms.grad(a2.unsqueeze(1))[:, 0] if not terms.has_value else None

        def evaluate(z: Tensor) -> tuple[Tensor | None, Tensor, MetricState | None, Tensor]:
            S, gS = terms.value_and_grad(z)
            u = controls(a2, z, b2_)
            ms = None
            if met is not None:
                assert G0 is not None
                ms = met.state(G0, z, u)
                watch.update(ms.bad, it, 2)
            bad = ~torch.isfinite(gS).flatten(1).all(1)
            if S is not None:
                bad = bad | (torch.isnan(S) | (S == -torch.inf)).any(1)
            watch.update(bad, it, 1)
            return S, gS, ms, u

        def energy(z: Tensor, S: Tensor | None, gS: Tensor, u: Tensor, ms: MetricState | None) -> tuple[Tensor, Tensor]:
            if S is None:
                assert gS_a is not None
                S = trapezoid_potential(gS_a, gS, u)
            return kinetic(u, None if ms is None else ms.G) + lam_n * S.sum(1), S.mean(1)

        z = straight_line(a2, b2_, n)
        S, gS, ms, u = evaluate(z)
        K = kinetic(u, None if ms is None else ms.G)
        lam_n = normalised_lam(lam, normalize_lam, K, S, gS)
        E, line_nll = energy(z, S, gS, u, ms)
        trace = [E] if record_energy else []

        def grad_E(gS: Tensor, u: Tensor, ms: MetricState | None) -> Tensor:
            return kinetic_grad(u, ms) + lam_n.reshape(P, 1, 1) * gS

        g = grad_E(gS, u, ms)
        gnorm = g.flatten(1).norm(dim=1)
        active = ~(gnorm < tol)
        iters = torch.zeros(P, dtype=torch.int64, device=a.device)
        m1, m2 = torch.zeros_like(z), torch.zeros_like(z)
        watch.raise_if_bad(terms.name)
        while it < max_iter:
            it += 1
            iters = iters + active.to(torch.int64)
            if optimizer == "gd":
                step = lr * g
            else:
                m1 = b1 * m1 + (1 - b1) * g
                m2 = b2 * m2 + (1 - b2) * g * g
                step = lr * (m1 / (1 - b1**it)) / ((m2 / (1 - b2**it)).sqrt() + eps)
            z = torch.where(active.reshape(P, 1, 1), z - step, z)
            S, gS, ms, u = evaluate(z)
            g = grad_E(gS, u, ms)
            gnorm = g.flatten(1).norm(dim=1)
            active = active & ~(gnorm < tol)
            if record_energy:
                trace.append(energy(z, S, gS, u, ms)[0])
            if it % check_every == 0 or it == max_iter:
                watch.raise_if_bad(terms.name)
                if not bool(active.any()):
                    break
        E, nll = energy(z, S, gS, u, ms)
        curves = full_curve(a2, z, b2_).reshape(P, n + 1, *event)
    return LikelyPath(
        curves=curves,
        energy=E,
        nll=nll,
        line_nll=line_nll,
        iterations=iters,
        converged=gnorm < tol,
        grad_norm=gnorm,
        lam_n=lam_n,
        energy_trace=torch.stack(trace) if record_energy else None,
    )
