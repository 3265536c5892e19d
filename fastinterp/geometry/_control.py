"""The discrete energy of a batch of curves, its gradient and the ProbGEORCE control update (private).

A batch of ``P`` curves in ``R^d`` (event dims flattened) is stored by its interior points ``z`` shaped
``(P, N - 1, d)``; the endpoints ``a, b`` are ``(P, d)`` and the controls are ``u_i = z_{i+1} - z_i``,
``i = 0 .. N - 1`` (``z_0 = a``, ``z_N = b``). The energy is

    E = sum_{i=0}^{N-1} u_i^T G(z_i) u_i + lam_n sum_{i=1}^{N-1} S(z_i).

Everything here is batched over curves and free of host synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

MetricFn = Callable[[Tensor], Tensor]


def controls(a: Tensor, z: Tensor, b: Tensor) -> Tensor:
    """``u_i = z_{i+1} - z_i`` shaped ``(P, N, d)`` from ``a (P, d)``, ``z (P, N-1, d)``, ``b (P, d)``."""
    return torch.diff(torch.cat([a.unsqueeze(1), z, b.unsqueeze(1)], dim=1), dim=1)


def full_curve(a: Tensor, z: Tensor, b: Tensor) -> Tensor:
    """``(P, N + 1, d)``: the endpoints exactly, the interior as given."""
    return torch.cat([a.unsqueeze(1), z, b.unsqueeze(1)], dim=1)


def straight_line(a: Tensor, b: Tensor, n: int) -> Tensor:
    """Interior points ``a + (i / n) (b - a)``, ``i = 1 .. n - 1``, shaped ``(P, n - 1, d)``."""
    s = torch.arange(1, n, dtype=a.dtype, device=a.device) / n
    return a.unsqueeze(1) + s.reshape(1, -1, 1) * (b - a).unsqueeze(1)


def reverse_cumsum_next(g: Tensor) -> Tensor:
    """``Gn[:, i] = sum_{j >= i+1} g_j`` for ``i = 0 .. N-1`` (so ``Gn[:, N-1] = 0``), from ``g (P, N-1, d)``."""
    c = torch.flip(torch.cumsum(torch.flip(g, dims=[1]), dim=1), dims=[1])
    return torch.cat([c, torch.zeros_like(g[:, :1])], dim=1)


@dataclass
class MetricState:
    """The metric along a batch of curves: ``G_i = G(z_i)`` for ``i = 0 .. N-1`` and what the update needs."""

    G: Tensor  # (P, N, d, d)
    Ginv: Tensor  # (P, N, d, d)
    dquad: Tensor  # (P, N-1, d): grad_z (u_i^T G(z) u_i) at z = z_i, u_i held fixed
    bad: Tensor  # (P,) bool: G not SPD or not finite somewhere on the curve


class Metric:
    """A user metric ``G(z)`` (SPD ``(M, d, d)`` for points ``(M, *event)``) evaluated on batches of curves."""

    def __init__(self, fn: MetricFn, event: tuple[int, ...], d: int) -> None:
        self.fn, self.event, self.d = fn, event, d

    def __call__(self, x: Tensor) -> Tensor:
        """``G`` at flat points ``x (..., d)``, shaped ``(..., d, d)``."""
        lead = x.shape[:-1]
        g = self.fn(x.reshape(-1, *self.event))
        if not isinstance(g, Tensor):
            raise TypeError(f"metric must return a tensor, got {type(g).__name__}")
        m = x.reshape(-1, self.d).shape[0]
        if g.shape != (m, self.d, self.d):
            raise ValueError(
                f"metric must return SPD matrices shaped ({m}, {self.d}, {self.d}) for {m} points of "
                f"event shape {self.event}, got {tuple(g.shape)}"
            )
        return g.to(x.dtype).reshape(*lead, self.d, self.d)

    def state(self, G0: Tensor, z: Tensor, u: Tensor) -> MetricState:
        """The metric along curves with interior ``z (P, N-1, d)``, controls ``u (P, N, d)``, ``G0 = G(a)``."""
        with torch.enable_grad():
            zr = z.detach().requires_grad_(True)
            Gz = self(zr)
            ui = u[:, 1:].detach()
            q = torch.einsum("pnd,pnde,pne->", ui, Gz, ui)
            dquad = torch.autograd.grad(q, zr, allow_unused=True)[0] if q.requires_grad else None
        if dquad is None:  # a metric that does not depend on z
            dquad = torch.zeros_like(z)
        G = torch.cat([G0.unsqueeze(1), Gz.detach()], dim=1)
        L, info = torch.linalg.cholesky_ex(G)
        bad = (info != 0).any(1) | ~torch.isfinite(G).flatten(1).all(1) | ~torch.isfinite(dquad).flatten(1).all(1)
        Ginv = torch.cholesky_inverse(L)
        return MetricState(G, Ginv, dquad.detach(), bad)


def kinetic(u: Tensor, G: Tensor | None) -> Tensor:
    """``sum_i u_i^T G_i u_i`` per curve, shaped ``(P,)`` (``G = None``: Euclidean)."""
    if G is None:
        return u.square().sum((1, 2))
    return torch.einsum("pnd,pnde,pne->p", u, G, u)


class KineticChange:
    """``K(z + tau dz) - K(z)`` for trial step sizes, without the cancellation of a difference of two sums.

    Euclidean: ``2 tau sum_i u_i.du_i + tau^2 sum_i |du_i|^2`` exactly (``du`` the controls of ``dz``); under a
    metric the per-segment differences ``ut_i^T G(zt_i) ut_i - u_i^T G(z_i) u_i`` are summed.
    """

    def __init__(
        self,
        metric: Metric | None,
        G: Tensor | None,
        a: Tensor,
        z: Tensor,
        b: Tensor,
        dz: Tensor,
        db: Tensor | None = None,
    ) -> None:
        self.metric, self.G, self.a, self.z, self.b, self.dz = metric, G, a, z, b, dz
        self.db = torch.zeros_like(b) if db is None else db  # the end point moves too (Frechet means)
        self.u = controls(a, z, b)
        if metric is None:
            du = controls(torch.zeros_like(a), dz, self.db)
            self.lin = 2.0 * (self.u * du).sum((1, 2))
            self.quad = du.square().sum((1, 2))

    def __call__(self, tau: Tensor) -> Tensor:
        if self.metric is None:
            return tau * self.lin + tau * tau * self.quad
        assert self.G is not None
        zt = self.z + tau.reshape(-1, 1, 1) * self.dz
        ut = controls(self.a, zt, self.b + tau.reshape(-1, 1) * self.db)
        Gt = torch.cat([self.G[:, :1], self.metric(zt)], dim=1)
        new = torch.einsum("pnd,pnde,pne->pn", ut, Gt, ut)
        old = torch.einsum("pnd,pnde,pne->pn", self.u, self.G, self.u)
        return (new - old).sum(1)


def kinetic_grad(u: Tensor, ms: MetricState | None) -> Tensor:
    """``d/dz_i sum_j u_j^T G_j u_j`` for the interior points, shaped ``(P, N-1, d)``.

    ``2 G_{i-1} u_{i-1} - 2 G_i u_i + grad_z (u_i^T G(z) u_i)``; Euclidean: ``2 (u_{i-1} - u_i)``.
    """
    if ms is None:
        return 2.0 * (u[:, :-1] - u[:, 1:])
    Gu = torch.einsum("pnde,pne->pnd", ms.G, u)
    return 2.0 * (Gu[:, :-1] - Gu[:, 1:]) + ms.dquad


def georce_controls(gc: Tensor, delta: Tensor, ms: MetricState | None) -> Tensor:
    """The closed-form controls minimising the linearised energy, shaped ``(P, N, d)``.

    With ``gc`` the linear force on the interior points ``(P, N-1, d)``, ``Gn_i = sum_{j >= i+1} gc_j`` and
    ``delta = b - a``:

    - Euclidean: ``u_i = delta / N + (1/2) (mean_j Gn_j - Gn_i)``;
    - metric: ``mu_N = -(sum_i G_i^-1)^-1 (sum_i G_i^-1 Gn_i + 2 delta)``, ``u_i = -(1/2) G_i^-1 (mu_N + Gn_i)``.
    """
    Gn = reverse_cumsum_next(gc)
    n = Gn.shape[1]
    if ms is None:
        return delta.unsqueeze(1) / n + 0.5 * (Gn.mean(1, keepdim=True) - Gn)
    A = ms.Ginv.sum(1)
    c = torch.einsum("pnde,pne->pd", ms.Ginv, Gn)
    mu_n = -torch.linalg.solve(A, c + 2.0 * delta)
    return -0.5 * torch.einsum("pnde,pne->pnd", ms.Ginv, mu_n.unsqueeze(1) + Gn)


def trapezoid_potential(gS_left: Tensor, gS: Tensor, u: Tensor) -> Tensor:
    """``S(z_i) - S(z_0)`` for ``i = 1 .. N-1`` by the trapezoid rule on ``grad S`` along the curve, ``(P, N-1)``.

    Args:
        gS_left: ``grad S(z_0)`` shaped ``(P, d)``.
        gS: ``grad S`` at the interior points ``(P, N-1, d)``.
        u: the controls ``(P, N, d)``.
    """
    g = torch.cat([gS_left.unsqueeze(1), gS], dim=1)  # (P, N, d): grad S at z_0 .. z_{N-1}
    inc = 0.5 * ((g[:, :-1] + g[:, 1:]) * u[:, :-1]).sum(-1)  # S(z_{i+1}) - S(z_i), i = 0 .. N-2
    return torch.cumsum(inc, dim=1)


def potential_bad(S: Tensor | None, gS: Tensor) -> Tensor:
    """Per curve: a non-finite gradient, or a NaN / ``-inf`` potential (``+inf`` is a legal, rejected trial)."""
    bad = ~torch.isfinite(gS).flatten(1).all(1)
    if S is not None:
        bad = bad | (torch.isnan(S) | (S == -torch.inf)).any(1)
    return bad
