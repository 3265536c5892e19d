"""Weighted Fréchet means under the likely-path energy: the point whose likely paths to all samples cost least.

For samples ``x_1 .. x_K`` with weights ``w_k`` (rescaled to sum to ``K``) the mean ``m`` and the ``K`` curves
``z_k`` from ``x_k`` to ``m`` minimise jointly

    F(m, z) = sum_k w_k E_k(z_k),
    E_k = sum_{i=0}^{N-1} u_{k,i}^T G(z_{k,i}) u_{k,i} + lam_n sum_{i=1}^{N-1} S(z_{k,i}).

ProbGEORCE applies unchanged with the end point free: for a fixed ``m`` each curve's closed-form controls are those
of :func:`~fastinterp.geometry.likely_path`, and the multiplier of the end constraint is the derivative of the
linearised energy in ``m``; setting the weighted sum of these derivatives to zero gives the mean update

    Euclidean:  m^new = (sum_k w_k x_k - (1/2) sum_k w_k sum_i Gn_{k,i}) / sum_k w_k,
    metric:     m^new = (sum_k w_k A_k^-1)^-1 sum_k w_k A_k^-1 (x_k - c_k / 2),
                A_k = sum_i G_{k,i}^-1,  c_k = sum_i G_{k,i}^-1 Gn_{k,i},

(``Gn_{k,i} = sum_{j > i} g_{k,j}``, the reverse cumulative sum of the linearised forces). Curves and mean then move
together, ``tau`` from one Armijo line search on ``F``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ._common import BadWatch, Terms, check_finite, check_metric, options
from ._control import (
    KineticChange,
    Metric,
    MetricState,
    controls,
    full_curve,
    georce_controls,
    kinetic,
    kinetic_grad,
    potential_bad,
    reverse_cumsum_next,
    straight_line,
    trapezoid_potential,
)
from .potentials import as_potential

__all__ = ["FrechetMean", "frechet_mean"]


@dataclass(frozen=True)
class FrechetMean:
    """The result of :func:`frechet_mean`.

    Attributes:
        mean: the mean, shaped ``event``.
        curves: ``(K, n_grid + 1, *event)``, the likely paths from each sample (index 0) to the mean (last index).
        energy: 0-d, ``F = sum_k w_k E_k`` with the weights rescaled to sum to ``K``.
        iterations: 0-d int64.
        converged: 0-d bool, ``|grad F| < tol`` reached.
        grad_norm: 0-d, the final ``|grad F|`` over all interior points and the mean.
        lam_n: ``(K,)`` the normalised potential weight of each curve (one shared value).
        weights: ``(K,)`` the weights used (rescaled to sum to ``K``).
    """

    mean: Tensor
    curves: Tensor
    energy: Tensor
    iterations: Tensor
    converged: Tensor
    grad_norm: Tensor
    lam_n: Tensor
    weights: Tensor


def frechet_mean(
    points: Tensor,
    weights: Tensor | None = None,
    *,
    score: object = None,
    log_prob: object = None,
    metric: Callable[[Tensor], Tensor] | None = None,
    lam: float = 20.0,
    n_grid: int = 100,
    tol: float = 1e-4,
    max_iter: int = 1000,
    init: Tensor | None = None,
    t_score: float = 1 - 1e-3,
    normalize_lam: bool = True,
    ls_trials: int = 4,
    ls_shrink: float = 0.5,
    armijo: float = 1e-4,
    check_every: int = 10,
    accelerate: bool = False,
) -> FrechetMean:
    """Weighted Fréchet mean of ``points`` under the likely-path energy (see the module docstring).

    Starts from ``init`` (default: the weighted Euclidean mean ``m_e``) with straight curves. One ``lam_n`` serves all
    curves: ``lam sum_k w_k E_kin(x_k -> m_e) / |sum_k w_k sum_i S(line_{k,i})|`` on the straight lines to ``m_e``
    (the paper's normalisation of :func:`~fastinterp.geometry.likely_path`, pooled; independent of ``init``).
    With ``lam = 0`` and no metric the
    result is the weighted arithmetic mean.

    Args:
        points: samples shaped ``(K, *event)``, ``K >= 1``.
        weights: ``(K,)`` non-negative, not all zero (default uniform); only their ratios matter.
        score, log_prob, metric, lam, n_grid, tol, max_iter, t_score, normalize_lam, ls_trials, ls_shrink, armijo,
            check_every, accelerate: as in :func:`~fastinterp.geometry.likely_path` (the conjugate directions of
            ``accelerate`` span the curves and the mean together).
        init: the starting mean, shaped ``event``.

    Returns:
        :class:`FrechetMean`.
    """
    if not isinstance(points, Tensor) or not points.is_floating_point():
        raise TypeError(f"points must be a floating-point tensor shaped (K, *event), got {type(points).__name__}")
    if points.ndim < 1 or points.shape[0] < 1:
        raise ValueError(f"points must be shaped (K, *event) with K >= 1, got {tuple(points.shape)}")
    check_finite("points", points)
    x = points.detach()
    K, event = x.shape[0], tuple(x.shape[1:])
    d = math.prod(event)
    if weights is None:
        w = torch.ones(K, dtype=x.dtype, device=x.device)
    else:
        if not isinstance(weights, Tensor):
            raise TypeError(f"weights must be a tensor shaped ({K},), got {type(weights).__name__}")
        if weights.shape != (K,):
            raise ValueError(f"weights must be shaped ({K},) to match points, got {tuple(weights.shape)}")
        w = weights.detach().to(dtype=x.dtype, device=x.device)
        if not (torch.isfinite(w).all() and (w >= 0).all() and (w > 0).any()):
            raise ValueError(f"weights must be finite, >= 0 and not all zero, got {w.tolist()}")
    w = w * (K / w.sum())
    opt = options(
        lam, n_grid, tol, max_iter, normalize_lam, ls_trials, ls_shrink, armijo, check_every, False, accelerate
    )
    pot = as_potential(score, log_prob, t_score=t_score)
    fn = check_metric(metric)
    met = Metric(fn, event, d) if fn is not None else None
    xf = x.reshape(K, d)
    if init is None:
        m = (w.unsqueeze(1) * xf).sum(0) / w.sum()
    else:
        if not isinstance(init, Tensor) or tuple(init.shape) != event:
            got = tuple(init.shape) if isinstance(init, Tensor) else type(init).__name__
            raise ValueError(f"init must be a tensor shaped {event} (one point), got {got}")
        check_finite("init", init)
        m = init.detach().to(xf).reshape(d)
    with torch.no_grad():
        z, m, diag = _solve_mean(xf, w, m, Terms(pot, event), met, opt)
        curves = full_curve(xf, z, m.expand(K, d)).reshape(K, opt.n + 1, *event)
    return FrechetMean(mean=m.reshape(event), curves=curves, weights=w, **diag)


def shared_lam(
    lam: float, normalize: bool, w: Tensor, K_line: Tensor, S_line: Tensor | None, gS_line: Tensor
) -> Tensor:
    """One ``lam_n = lam sum_k w_k E_kin(line_k) / |sum_k w_k sum_i S(line_{k,i})|`` for all curves, ``(K,)``.

    Score-only sources use ``sum_k w_k sum_i |grad S(line_{k,i})|`` as the denominator
    (as :func:`~fastinterp.geometry.probgeorce.normalised_lam`).
    """
    lam_t = torch.full_like(K_line, lam)
    if not normalize or lam == 0.0:
        return lam_t
    num = (w * K_line).sum()
    den = (w * S_line.sum(1)).sum().abs() if S_line is not None else (w * gS_line.norm(dim=-1).sum(1)).sum()
    return torch.where(den > 1e-12, lam * num / den.clamp_min(1e-12), lam_t[0]).expand_as(K_line)


def _solve_mean(
    x: Tensor, w: Tensor, m: Tensor, terms: Terms, metric: Metric | None, opt
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    K, d = x.shape
    n, dev = opt.n, x.device
    watch = BadWatch(K, dev)
    it = 0
    G0 = metric(x) if metric is not None else None
    gS_a = terms.grad(x.unsqueeze(1))[:, 0] if not terms.has_value else None
    w3, w1 = w.reshape(K, 1, 1), w

    def ends(m: Tensor) -> Tensor:
        return m.expand(K, d)

    def metric_state(z: Tensor, u: Tensor) -> MetricState | None:
        if metric is None:
            return None
        assert G0 is not None
        ms = metric.state(G0, z, u)
        watch.update(ms.bad, it, 2)
        return ms

    def total(z: Tensor, m: Tensor, S: Tensor | None, gS: Tensor, K_: Tensor) -> Tensor:
        if S is None:
            assert gS_a is not None
            S = trapezoid_potential(gS_a, gS, controls(x, z, ends(m)))
        return (w1 * (K_ + lam_n * S.sum(1))).sum()

    # one lam_n for all curves, from the straight lines to the weighted Euclidean mean (whatever the start)
    m_e = (w1.unsqueeze(1) * x).sum(0) / w1.sum()
    z = straight_line(x, ends(m_e), n)
    S, gS = terms.value_and_grad(z)
    watch.update(potential_bad(S, gS), 0, 1)
    u = controls(x, z, ends(m_e))
    ms = metric_state(z, u)
    Kc = kinetic(u, None if ms is None else ms.G)
    lam_n = shared_lam(opt.lam, opt.normalize_lam, w1, Kc, S, gS)
    if not torch.equal(m, m_e):
        z = straight_line(x, ends(m), n)
        S, gS = terms.value_and_grad(z)
        watch.update(potential_bad(S, gS), 0, 1)
        u = controls(x, z, ends(m))
        ms = metric_state(z, u)

    def gradient(u: Tensor, ms: MetricState | None, gS: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(force gc, grad F over interiors, grad F over the mean, |grad F|)."""
        g = lam_n.reshape(K, 1, 1) * gS
        gc = g if ms is None else g + ms.dquad
        gz = w3 * (kinetic_grad(u, ms) + g)
        last = u[:, -1] if ms is None else torch.einsum("kde,ke->kd", ms.G[:, -1], u[:, -1])
        gm = 2.0 * (w1.unsqueeze(1) * last).sum(0)
        return gc, gz, gm, torch.sqrt(gz.square().sum() + gm.square().sum())

    gc, gz, gm, gnorm = gradient(u, ms, gS)
    active = ~(gnorm < opt.tol)
    iters = torch.zeros((), dtype=torch.int64, device=dev)
    tau0 = torch.ones(1, dtype=x.dtype, device=dev)
    watch.raise_if_bad(terms.name, "sample")
    shrink_all = opt.ls_shrink**opt.ls_trials

    d_prev = p_prev = g_prev = None  # the previous direction, ProbGEORCE step and gradient (accelerate)
    while it < opt.max_iter:
        it += 1
        iters = iters + active.to(torch.int64)
        Gn = reverse_cumsum_next(gc)
        if ms is None:
            m_hat = ((w1.unsqueeze(1) * (x - 0.5 * Gn.sum(1))).sum(0)) / w1.sum()
        else:
            A_inv = torch.linalg.inv(ms.Ginv.sum(1))  # (K, d, d)
            c = torch.einsum("knde,kne->kd", ms.Ginv, Gn)
            lhs = (w3 * A_inv).sum(0)
            rhs = (w1.unsqueeze(1) * torch.einsum("kde,ke->kd", A_inv, x - 0.5 * c)).sum(0)
            m_hat = torch.linalg.solve(lhs, rhs)
        u_hat = georce_controls(gc, m_hat - x, ms)
        dz = x.unsqueeze(1) + torch.cumsum(u_hat, dim=1)[:, :-1] - z
        dm = m_hat - m
        if opt.accelerate:  # PR+ conjugate directions, as in likely_path (curves and mean together)
            p_dir = (dz, dm)
            conj = torch.zeros((), dtype=torch.bool, device=dev)
            if d_prev is not None:
                num = (gz * (p_prev[0] - dz)).sum() + (gm * (p_prev[1] - dm)).sum()
                den = -((g_prev[0] * p_prev[0]).sum() + (g_prev[1] * p_prev[1]).sum())
                beta = torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0).clamp_min(0.0)
                cz, cm = dz + beta * d_prev[0], dm + beta * d_prev[1]
                conj = (beta > 0) & ((gz * cz).sum() + (gm * cm).sum() < 0)
                dz, dm = torch.where(conj, cz, dz), torch.where(conj, cm, dm)
            p_prev, g_prev, d_prev = p_dir, (gz, gm), (dz, dm)
        slope = (gz * dz).sum() + (gm * dm).sum()
        dK = KineticChange(metric, None if ms is None else ms.G, x, z, ends(m), dz, ends(dm))
        found = torch.zeros(1, dtype=torch.bool, device=dev)
        tau_acc = torch.zeros_like(tau0)
        gS_acc = gS
        # as in likely_path: the lowest energy among the trials with sufficient decrease, a smaller step only when it
        # beats a larger one by more than the rounding of the energy
        best = torch.full_like(tau0, torch.inf)
        K_now = kinetic(u, None if ms is None else ms.G)
        margin = 64 * torch.finfo(z.dtype).eps * (w1 * (K_now + (0.0 if S is None else lam_n * S.abs().sum(1)))).sum()
        for k in range(opt.ls_trials):
            tau = tau0 * opt.ls_shrink**k
            zt = z + tau * dz
            if terms.has_value:
                assert S is not None
                St = terms.value(zt)
                watch.update((torch.isnan(St) | (St == -torch.inf)).any(1), it, 1)
                dS = (St - S).sum(1)
            else:
                gSt = terms.grad(zt)
                watch.update(~torch.isfinite(gSt).flatten(1).all(1), it, 1)
                dS = (0.5 * ((gS + gSt) * (zt - z)).sum(-1)).sum(1)
            dF = (w1 * (dK(tau) + lam_n * dS)).sum()
            ok = ((dF <= opt.armijo * tau * slope) | (dF <= margin)) & (dF < best - margin)  # see likely_path
            best = torch.where(ok, dF, best)
            if not terms.has_value:
                gS_acc = torch.where(ok.reshape(1, 1, 1), gSt, gS_acc)
            tau_acc = torch.where(ok, tau, tau_acc)
            found = found | ok
        move = found & active
        z_new, m_new = z + tau_acc * dz, m + tau_acc * dm
        if terms.has_value:
            S_new, gS_new = terms.value_and_grad(z_new)
            watch.update(move & potential_bad(S_new, gS_new), it, 1)
        else:
            S_new, gS_new = None, gS_acc
        z = torch.where(move, z_new, z)
        m = torch.where(move, m_new, m)
        gS = torch.where(move, gS_new, gS)
        if S is not None and S_new is not None:
            S = torch.where(move, S_new, S)
        u = controls(x, z, ends(m))
        ms = metric_state(z, u)
        gc, gz, gm, gnorm = gradient(u, ms, gS)
        failed = tau0 * shrink_all if not opt.accelerate else torch.where(conj, tau0, tau0 * shrink_all)
        tau0 = torch.where(active, torch.where(found, (tau_acc / opt.ls_shrink).clamp(max=1.0), failed), tau0)
        active = active & ~(gnorm < opt.tol) & (tau0 > 1e-14).squeeze(0)
        if it % opt.check_every == 0 or it == opt.max_iter:
            watch.raise_if_bad(terms.name, "sample")
            if not bool(active):
                break

    Kc = kinetic(u, None if ms is None else ms.G)
    diag = dict(
        energy=total(z, m, S, gS, Kc),
        iterations=iters,
        converged=gnorm < opt.tol,
        grad_norm=gnorm,
        lam_n=lam_n,
    )
    return z, m, diag
