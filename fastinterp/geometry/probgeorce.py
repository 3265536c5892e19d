"""Likely paths: batched ProbGEORCE curves of minimal kinetic-plus-potential energy between pairs of points.

For a pair ``(a, b)`` and ``N = n_grid`` steps, the curve ``z_0 = a, ..., z_N = b`` with controls
``u_i = z_{i+1} - z_i`` minimises

    E(z) = sum_{i=0}^{N-1} u_i^T G(z_i) u_i + lam_n sum_{i=1}^{N-1} S(z_i),      S = -log p,

the discretised energy of the paper's Lagrange relaxation (kinetic energy of a geodesic plus ``lam`` times the
negative log-likelihood along it). ProbGEORCE linearises ``S`` (and the metric's dependence on ``z``) at the
current curve, solves the resulting quadratic control problem in closed form (Pontryagin, see
:func:`~fastinterp.geometry._control.georce_controls`) and moves toward it with an Armijo line search.

This implementation solves a whole batch of pairs at once: the line search has a step size per pair, converged
pairs are frozen by masks, and the host is consulted only every ``check_every`` iterations; there the finished
pairs leave the working set, so the batch does not run at the size of its slowest pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ._common import BadWatch, Options, Terms, check_metric, check_points, options
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
    straight_line,
    trapezoid_potential,
)
from .potentials import as_potential

__all__ = ["LikelyPath", "likely_path"]


@dataclass(frozen=True)
class LikelyPath:
    """Curves and per-pair diagnostics returned by :func:`likely_path` (and the baseline solvers).

    Attributes:
        curves: ``(P, n_grid + 1, *event)``, from ``a`` (index 0, exactly) to ``b`` (index ``n_grid``, exactly).
        energy: ``(P,)`` the final discrete energy ``E`` (with ``lam_n``; see the module docstring).
        nll: ``(P,)`` mean of ``S = -log p`` over the interior points of the curve. With a score-only source ``S``
            is known up to a constant: it is then ``S - S(a)``, integrated along the curve (trapezoid rule).
        line_nll: ``(P,)`` the same for the straight line from ``a`` to ``b`` (the starting curve).
        iterations: ``(P,)`` int64, the updates each pair took.
        converged: ``(P,)`` bool, ``|grad E| < tol`` reached.
        grad_norm: ``(P,)`` the final ``|grad E|`` (Euclidean norm over all interior points).
        lam_n: ``(P,)`` the normalised weight of the potential actually used.
        energy_trace: ``(T + 1, P)`` the energy after each iteration (row 0: the straight line), when requested.
    """

    curves: Tensor
    energy: Tensor
    nll: Tensor
    line_nll: Tensor
    iterations: Tensor
    converged: Tensor
    grad_norm: Tensor
    lam_n: Tensor
    energy_trace: Tensor | None = None


def normalised_lam(lam: float, normalize: bool, K_line: Tensor, S_line: Tensor | None, gS_line: Tensor) -> Tensor:
    """Per pair ``lam_n = lam E_kin(line) / |sum_i S(line_i)|`` (the paper's normalisation).

    With a score-only source ``S`` is not available and the denominator is ``sum_i |grad S(line_i)|`` instead.
    Where the denominator vanishes (``< 1e-12``) ``lam`` is used as is; ``normalize=False`` uses ``lam`` as is.
    """
    lam_t = torch.full_like(K_line, lam)
    if not normalize or lam == 0.0:
        return lam_t
    den = S_line.sum(1).abs() if S_line is not None else gS_line.norm(dim=-1).sum(1)
    return torch.where(den > 1e-12, lam * K_line / den.clamp_min(1e-12), lam_t)


# -------------------------------------------------------------------------------------------------- the solver


def _take_metric(ms: MetricState | None, keep: Tensor) -> MetricState | None:
    if ms is None:
        return None
    return MetricState(ms.G[keep], ms.Ginv[keep], ms.dquad[keep], ms.bad[keep])


def _solve(
    a: Tensor,
    b: Tensor,
    terms: Terms,
    metric: Metric | None,
    opt: Options,
) -> tuple[Tensor, dict[str, Tensor]]:
    """ProbGEORCE on flat pairs ``a, b (P, d)``; returns the interior ``z (P, N-1, d)`` and diagnostics.

    The loop works on the pairs still active: at every host check the finished ones are written to the
    batch-sized results and dropped from the working set, so a batch costs about the sum of its pairs' iterations
    (plus at most ``check_every`` per pair), not its slowest pair's count times ``P``. Rows never mix, so the
    results equal a pair-by-pair run.
    """
    P, d = a.shape
    n = opt.n
    dev = a.device
    watch = BadWatch(P, dev)
    G0 = metric(a) if metric is not None else None
    gS_a = terms.grad(a.unsqueeze(1))[:, 0] if not terms.has_value else None
    if gS_a is not None:
        watch.update(~torch.isfinite(gS_a).all(1), 0, 1)

    z = straight_line(a, b, n)
    S, gS = terms.value_and_grad(z)
    watch.update(potential_bad(S, gS), 0, 1)
    it = 0
    idx = torch.arange(P, device=dev)  # the working pairs' positions in the batch

    def metric_state(z: Tensor, u: Tensor) -> MetricState | None:
        if metric is None:
            return None
        assert G0 is not None
        ms = metric.state(G0, z, u)
        watch.update(ms.bad, it, 2, idx)
        return ms

    def report(
        a: Tensor, b: Tensor, gS_a: Tensor | None, lam_n: Tensor, z: Tensor, S: Tensor | None, gS: Tensor, K: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(energy, nll) of the curves; score-only: S - S(a) integrated along each curve."""
        if S is None:
            assert gS_a is not None
            S = trapezoid_potential(gS_a, gS, controls(a, z, b))
        return K + lam_n * S.sum(1), S.mean(1)

    u = controls(a, z, b)
    ms = metric_state(z, u)
    K = kinetic(u, None if ms is None else ms.G)
    lam_n = normalised_lam(opt.lam, opt.normalize_lam, K, S, gS)
    E, line_nll = report(a, b, gS_a, lam_n, z, S, gS, K)
    trace = [E] if opt.record_energy else []
    # batch-sized results; a pair's entries are final once it leaves the working set
    full = dict(a=a, b=b, gS_a=gS_a, lam_n=lam_n, z=z.clone(), S=None if S is None else S.clone(), gS=gS.clone())
    full.update(K=K.clone(), E=E.clone())
    delta = b - a

    def gradient(u: Tensor, ms: MetricState | None, gS: Tensor) -> tuple[Tensor, Tensor]:
        """(the linear force gc of the control update, grad E); kinetic_grad already holds the metric's dquad."""
        g = lam_n.reshape(-1, 1, 1) * gS
        return (g if ms is None else g + ms.dquad), kinetic_grad(u, ms) + g

    gc, gE = gradient(u, ms, gS)
    gnorm = gE.flatten(1).norm(dim=1)
    active = ~(gnorm < opt.tol)
    iters = torch.zeros(P, dtype=torch.int64, device=dev)
    full.update(gnorm=gnorm.clone(), iters=iters.clone())
    tau0 = torch.ones(P, dtype=a.dtype, device=dev)
    watch.raise_if_bad(terms.name)  # one check on the straight line: bad input fails before any work
    shrink_all = opt.ls_shrink**opt.ls_trials
    tau_floor = 1e-14

    def store() -> None:
        """Write the working pairs' state into the batch-sized results."""
        for key, v in (("z", z), ("S", S), ("gS", gS), ("K", K), ("gnorm", gnorm), ("iters", iters)):
            if v is not None:
                full[key] = full[key].index_copy(0, idx, v)

    d_prev = p_prev = gE_prev = None  # the previous step's direction, ProbGEORCE step and gradient (accelerate)
    while it < opt.max_iter:
        it += 1
        Pw = z.shape[0]
        iters = iters + active.to(torch.int64)
        # the closed-form controls of the linearised problem, and the direction toward them
        u_hat = georce_controls(gc, delta, ms)
        dz = a.unsqueeze(1) + torch.cumsum(u_hat, dim=1)[:, :-1] - z
        if opt.accelerate:
            # z^ - z = -P^-1 grad E, P the (metric) kinetic Hessian: the ProbGEORCE step is a preconditioned steepest
            # descent step, so Polak-Ribiere (PR+) conjugate directions apply: d = p + beta d_prev with
            # beta = max(0, <g, P^-1 (g - g_prev)> / <g_prev, P^-1 g_prev>), restarted at p where d is no descent
            # (a failed search along a conjugate direction is a restart: the next one is p, tau0 is kept)
            p_dir = dz
            conj = torch.zeros(Pw, dtype=torch.bool, device=dev)
            if d_prev is not None:
                num = (gE * (p_prev - p_dir)).sum((1, 2))
                den = -(gE_prev * p_prev).sum((1, 2))
                beta = torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0).clamp_min(0.0)
                dz = p_dir + beta.reshape(Pw, 1, 1) * d_prev
                conj = (beta > 0) & ((gE * dz).sum((1, 2)) < 0)
                dz = torch.where(conj.reshape(Pw, 1, 1), dz, p_dir)
            p_prev, gE_prev, d_prev = p_dir, gE, dz
        slope = (gE * dz).sum((1, 2))
        # Armijo line search, a step size per pair: ls_trials sizes tau0 * shrink^k, no host synchronisation
        dK = KineticChange(metric, None if ms is None else ms.G, a, z, b, dz)
        found = torch.zeros(Pw, dtype=torch.bool, device=dev)
        tau_acc = torch.zeros_like(tau0)
        gS_acc = gS
        best = torch.full_like(tau0, torch.inf)
        # a smaller step must beat the larger one by more than the rounding of E (else near convergence the choice
        # would follow rounding noise toward ever smaller steps)
        margin = 64 * torch.finfo(z.dtype).eps * (K + (0.0 if S is None else lam_n * S.abs().sum(1)))
        for k in range(opt.ls_trials):
            tau = tau0 * opt.ls_shrink**k
            zt = z + tau.reshape(Pw, 1, 1) * dz
            dKt = dK(tau)
            if terms.has_value:
                assert S is not None
                St = terms.value(zt)
                watch.update((torch.isnan(St) | (St == -torch.inf)).any(1), it, 1, idx)
                dE = dKt + lam_n * (St - S).sum(1)
            else:
                gSt = terms.grad(zt)
                watch.update(~torch.isfinite(gSt).flatten(1).all(1), it, 1, idx)
                dS = 0.5 * ((gS + gSt) * (zt - z)).sum(-1)  # trapezoid rule on grad S from z to zt
                dE = dKt + lam_n * dS.sum(1)
            # all trials are evaluated anyway (no early exit without a host sync): keep the lowest energy among
            # those with sufficient decrease, a step closer to the line minimum than the first acceptable one
            # at the rounding floor (|dE| within the margin) a descent step is accepted as well (approximate Armijo,
            # as in Hager and Zhang's CG_DESCENT): the gradient can still shrink where E can no longer resolve it
            ok = ((dE <= opt.armijo * tau * slope) | (dE <= margin)) & (dE < best - margin)
            best = torch.where(ok, dE, best)
            if not terms.has_value:
                gS_acc = torch.where(ok.reshape(Pw, 1, 1), gSt, gS_acc)
            tau_acc = torch.where(ok, tau, tau_acc)
            found = found | ok
        move = found & active
        z_new = z + tau_acc.reshape(Pw, 1, 1) * dz
        if terms.has_value:
            S_new, gS_new = terms.value_and_grad(z_new)
            watch.update(move & potential_bad(S_new, gS_new), it, 1, idx)
        else:
            S_new, gS_new = None, gS_acc
        m3 = move.reshape(Pw, 1, 1)
        z = torch.where(m3, z_new, z)
        gS = torch.where(m3, gS_new, gS)
        if S is not None and S_new is not None:
            S = torch.where(move.reshape(Pw, 1), S_new, S)
        u = controls(a, z, b)
        ms = metric_state(z, u)
        K = kinetic(u, None if ms is None else ms.G)
        gc, gE = gradient(u, ms, gS)
        gnorm = gE.flatten(1).norm(dim=1)
        # the next first trial: grow back toward the full step after a success, keep shrinking after a failure
        failed = tau0 * shrink_all if not opt.accelerate else torch.where(conj, tau0, tau0 * shrink_all)
        tau0 = torch.where(active, torch.where(found, (tau_acc / opt.ls_shrink).clamp(max=1.0), failed), tau0)
        active = active & ~(gnorm < opt.tol) & (tau0 > tau_floor)  # a stalled line search ends the pair
        if opt.record_energy:
            full["E"] = full["E"].index_copy(0, idx, report(a, b, gS_a, lam_n, z, S, gS, K)[0])
            trace.append(full["E"])
        if it % opt.check_every == 0 or it == opt.max_iter:
            watch.raise_if_bad(terms.name)  # the host synchronisation, every check_every iterations
            n_active = int(active.sum())
            if n_active == 0:
                break
            if n_active < Pw:  # drop the finished pairs from the working set
                store()
                keep = active.nonzero().squeeze(1)
                idx, a, b, delta, lam_n = idx[keep], a[keep], b[keep], delta[keep], lam_n[keep]
                z, gS, u, K, gc, gE = z[keep], gS[keep], u[keep], K[keep], gc[keep], gE[keep]
                gnorm, active, iters, tau0 = gnorm[keep], active[keep], iters[keep], tau0[keep]
                S = None if S is None else S[keep]
                gS_a = None if gS_a is None else gS_a[keep]
                G0 = None if G0 is None else G0[keep]
                ms = _take_metric(ms, keep)
                if d_prev is not None:
                    d_prev, p_prev, gE_prev = d_prev[keep], p_prev[keep], gE_prev[keep]

    store()
    E, nll = report(full["a"], full["b"], full["gS_a"], full["lam_n"], full["z"], full["S"], full["gS"], full["K"])
    diag = dict(
        energy=E,
        nll=nll,
        line_nll=line_nll,
        iterations=full["iters"],
        converged=full["gnorm"] < opt.tol,
        grad_norm=full["gnorm"],
        lam_n=full["lam_n"],
        energy_trace=torch.stack(trace) if opt.record_energy else None,
    )
    return full["z"], diag


def likely_path(
    a: Tensor,
    b: Tensor,
    *,
    score: object = None,
    log_prob: object = None,
    metric: Callable[[Tensor], Tensor] | None = None,
    lam: float = 20.0,
    n_grid: int = 100,
    tol: float = 1e-4,
    max_iter: int = 1000,
    t_score: float = 1 - 1e-3,
    normalize_lam: bool = True,
    ls_trials: int = 4,
    ls_shrink: float = 0.5,
    armijo: float = 1e-4,
    check_every: int = 10,
    record_energy: bool = False,
    accelerate: bool = False,
) -> LikelyPath:
    """Most likely paths between a batch of pairs, by batched ProbGEORCE.

    Minimises, for every pair ``p`` independently, the discrete energy (``N = n_grid``, ``z_0 = a_p``,
    ``z_N = b_p``, ``u_i = z_{i+1} - z_i``, ``S = -log p``)

        E(z) = sum_{i=0}^{N-1} u_i^T G(z_i) u_i + lam_n sum_{i=1}^{N-1} S(z_i),

    with ``lam_n = lam E_kin(line) / |sum_i S(line_i)|`` per pair (the straight line's kinetic energy over its
    potential; ``normalize_lam=False`` uses ``lam`` as is). Each iteration linearises the potential,
    ``g_i = lam_n grad S(z_i)`` (plus ``grad_z u_i^T G(z) u_i`` under a metric), and takes the closed-form optimal
    controls; Euclidean, with ``Gn_i = sum_{j > i} g_j``:

        u_i^new = (b - a) / N + (1/2) (mean_j Gn_j - Gn_i),

    and with a metric ``mu_N = -(sum_i G_i^-1)^-1 (sum_i G_i^-1 Gn_i + 2 (b - a))``,
    ``u_i^new = -(1/2) G_i^-1 (mu_N + Gn_i)``. The curve moves to ``z + tau (z^new - z)`` with ``tau`` from an
    Armijo line search per pair (``ls_trials`` sizes ``tau0 shrink^k`` tried each iteration, the one of lowest energy
    among those with sufficient decrease kept, ``tau0`` growing back to 1 after successes). A pair stops when
    ``|grad E| < tol`` (it is then frozen; its result does not depend on the rest of the batch) or its line search
    stalls.

    Host synchronisation: none inside an iteration; every ``check_every`` iterations the host checks for bad values
    and which pairs are still active; the finished ones leave the working set there (so a pair costs at most
    ``check_every - 1`` extra, masked iterations, and the batch no longer runs at the size of its slowest pair).
    ``check_every >= max_iter`` gives a fixed-length loop with a single check at the end.

    With a score-only source (a drift or a score callable) ``S`` is unknown: the line search measures its change
    from ``z`` to the trial by the trapezoid rule on ``grad S`` (error ``O(|step|^3)``), the normalisation uses
    ``sum_i |grad S(line_i)|`` in place of ``|sum_i S(line_i)|``, and ``nll`` / ``energy`` use ``S - S(a)``.

    Args:
        a: start points shaped ``(P, *event)``.
        b: end points shaped like ``a``.
        score: the density's score ``grad log p``: an analytic target (its ``log_prob`` is used too when it has
            one), a :class:`~fastinterp.Drift` (its score at time ``t_score``), a callable ``x -> grad log p(x)``
            shaped like ``x``, or a :class:`~fastinterp.geometry.Potential`.
        log_prob: ``x -> log p(x)`` shaped ``(M,)`` (or an object with ``.log_prob``); alone, its gradient comes
            from autograd. With neither ``score`` nor ``log_prob`` the potential is zero (a pure geodesic).
        metric: ``z -> G(z)``, SPD matrices shaped ``(M, d, d)`` for points ``(M, *event)``, ``d = prod(event)``,
            differentiable by autograd; ``None`` is the Euclidean metric (the fast path).
        lam: weight of the potential, ``>= 0`` (``0``: the geodesic of the metric).
        n_grid: number of steps ``N`` of the curve, ``>= 2``.
        tol: stop when the Euclidean norm of ``grad E`` over the interior points is below ``tol``.
        max_iter: maximal number of iterations.
        t_score: the time of a drift's score (near 1, the data end).
        normalize_lam: scale ``lam`` per pair as above (the paper's convention).
        ls_trials: step sizes tried per iteration by the line search.
        ls_shrink: their ratio, in ``(0, 0.99]``.
        armijo: the sufficient-decrease constant ``c`` of ``E(z + tau d) <= E(z) + c tau <grad E, d>``.
        check_every: iterations between host checks (convergence and bad values).
        record_energy: also return the energy after every iteration.
        accelerate: combine the ProbGEORCE steps into Polak-Ribiere conjugate directions (the step is the
            kinetic-preconditioned negative gradient, so this is preconditioned nonlinear CG with restarts). Same
            energy and minimiser, 2-4x fewer iterations, and convergence where the plain iteration crawls (large
            ``lam``). Off by default: the conjugate directions amplify rounding, so where two paths of nearly equal
            energy compete a batched and a pair-by-pair run can settle on different ones (docs/geometry.md).

    Returns:
        :class:`LikelyPath` with ``curves`` shaped ``(P, n_grid + 1, *event)`` and per-pair diagnostics.

    Raises:
        TypeError, ValueError: bad arguments (named), or ``score`` / ``log_prob`` / ``metric`` returning
            non-finite values (the message names the iteration and the pair).

    Example:
        >>> g = fi.targets.GaussianMixture(means, weights, 0.1)
        >>> res = likely_path(a, b, score=g, lam=20.0)     # res.curves: (P, 101, 2)
        >>> bool((res.nll < res.line_nll).all())
    """
    a, b = check_points(a, b)
    opt = options(
        lam, n_grid, tol, max_iter, normalize_lam, ls_trials, ls_shrink, armijo, check_every, record_energy, accelerate
    )
    pot = as_potential(score, log_prob, t_score=t_score)
    fn = check_metric(metric)
    event = tuple(a.shape[1:])
    d = math.prod(event)
    P = a.shape[0]
    terms = Terms(pot, event)
    met = Metric(fn, event, d) if fn is not None else None
    with torch.no_grad():
        z, diag = _solve(a.reshape(P, d), b.reshape(P, d), terms, met, opt)
        curves = full_curve(a.reshape(P, d), z, b.reshape(P, d)).reshape(P, opt.n + 1, *event)
    return LikelyPath(curves=curves, **diag)
