"""The potential ``S = -log p`` of a likely path, from a score, a log-density, an analytic target or a drift.

Every solver in :mod:`fastinterp.geometry` sees the density through one small object, :class:`Potential`, that
returns ``grad S`` (always) and ``S`` itself (when a log-density is known) at a batch of points. The constructors
below cover the sources of issue 6:

- an analytic target (anything with ``.score(x)``, and ``.log_prob(x)`` when it has one),
- a :class:`~fastinterp.Drift`: the score of its marginal at a time ``t`` near 1 (``drift.score(x, t)``, i.e. from
  its denoiser), the data end of the interpolant,
- a callable score ``x -> grad log p(x)``,
- a callable log-density ``x -> log p(x)``, differentiated with autograd,
- :func:`radial_gaussian`: the density of ``|z|`` under the white base ``N(0, I)``, for paths through noise space.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..drift import Drift

__all__ = ["Potential", "as_potential", "radial_gaussian"]

ScoreFn = Callable[[Tensor], Tensor]
LogProbFn = Callable[[Tensor], Tensor]


class Potential:
    """``S(x) = -log p(x)`` (up to a constant) and its gradient on batches of points shaped ``(M, *event)``.

    Args:
        grad: ``x -> grad S(x)`` shaped like ``x``; ``None`` to differentiate ``value`` with autograd.
        value: ``x -> S(x)`` shaped ``(M,)``, or ``None`` when only the score is known (then
            :attr:`has_value` is false and the solvers measure changes of ``S`` by line integrals of the score).
        name: the user-facing argument this potential came from, used in error messages.
    """

    def __init__(self, grad: ScoreFn | None, value: LogProbFn | None, name: str) -> None:
        if grad is None and value is None:
            raise ValueError("a potential needs a gradient or a value")
        self._grad, self._value, self.name = grad, value, name

    @property
    def has_value(self) -> bool:
        """Whether ``S`` itself (not only its gradient) is available."""
        return self._value is not None

    def value(self, x: Tensor) -> Tensor:
        """``S(x)`` shaped ``(M,)`` for ``x`` shaped ``(M, *event)``."""
        if self._value is None:
            raise RuntimeError(f"{self.name} gives only a score: S itself is not available")
        with torch.no_grad():
            s = self._value(x)
        return _check_value(s, x, self.name)

    def grad(self, x: Tensor) -> Tensor:
        """``grad S(x)`` shaped like ``x``."""
        if self._grad is not None:
            with torch.no_grad():
                g = self._grad(x)
            return _check_grad(g, x, self.name)
        return self.value_and_grad(x)[1]

    def value_and_grad(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        """``(S(x), grad S(x))``; ``S`` is ``None`` when only the score is known."""
        if self._grad is not None:
            return (self.value(x) if self._value is not None else None), self.grad(x)
        assert self._value is not None
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            s = self._value(xr)
            _check_value(s, x, self.name)
            (g,) = torch.autograd.grad(s.sum(), xr)
        return s.detach(), g.detach()


def _check_value(s: object, x: Tensor, name: str) -> Tensor:
    if not isinstance(s, Tensor):
        raise TypeError(f"{name} must return a tensor, got {type(s).__name__}")
    if s.shape != (x.shape[0],):
        raise ValueError(f"{name} must return one value per point, shaped ({x.shape[0]},), got {tuple(s.shape)}")
    return s.to(x.dtype)


def _check_grad(g: object, x: Tensor, name: str) -> Tensor:
    if not isinstance(g, Tensor):
        raise TypeError(f"{name} must return a tensor, got {type(g).__name__}")
    if g.shape != x.shape:
        raise ValueError(f"{name} must return a score shaped like its input {tuple(x.shape)}, got {tuple(g.shape)}")
    return g.to(x.dtype)


def as_potential(
    score: object = None,
    log_prob: object = None,
    *,
    t_score: float = 1 - 1e-3,
) -> Potential | None:
    """The :class:`Potential` ``S = -log p`` described by ``score`` and/or ``log_prob``.

    Args:
        score: a :class:`Potential` (returned as is), an analytic target or any object with ``.score(x)`` (its
            ``.log_prob`` is used too when present and
            ``log_prob`` is not given), a :class:`~fastinterp.Drift` (score of its marginal at ``t_score``), or a
            callable ``x -> grad log p(x)`` shaped like ``x``.
        log_prob: a callable ``x -> log p(x)`` shaped ``(M,)`` or an object with ``.log_prob``. Without ``score``
            its gradient comes from autograd.
        t_score: the time at which a drift's score is taken (``0 < t_score < 1``; near 1 is the data end).

    Returns:
        The potential, or ``None`` when both are ``None`` (no potential: a pure geodesic).
    """
    if isinstance(t_score, bool) or not isinstance(t_score, (int, float)) or not 0.0 < t_score < 1.0:
        raise ValueError(f"t_score must be a float in (0, 1), got {t_score!r}")
    grad_fn: ScoreFn | None = None
    value_fn: LogProbFn | None = None
    name = "score"
    if isinstance(score, Potential):
        if log_prob is not None:
            raise ValueError("give either a Potential as score or a log_prob, not both")
        return score
    if score is not None:
        if isinstance(score, Drift):
            drift, t = score, float(t_score)
            grad_fn = lambda x: -drift.score(x, t)  # noqa: E731
            name = f"score (drift at t={t:g})"
        elif hasattr(score, "score") and callable(score.score):
            target = score
            grad_fn = lambda x: -target.score(x)  # noqa: E731
            if log_prob is None and hasattr(target, "log_prob") and callable(target.log_prob):
                value_fn = lambda x: -target.log_prob(x)  # noqa: E731
        elif callable(score):
            fn = score
            grad_fn = lambda x: -fn(x)  # noqa: E731
        else:
            raise TypeError(
                f"score must be a callable x -> grad log p(x), a fastinterp Drift or an object with .score, "
                f"got {type(score).__name__}"
            )
    if log_prob is not None:
        if hasattr(log_prob, "log_prob") and callable(log_prob.log_prob):
            lp = log_prob.log_prob
        elif callable(log_prob):
            lp = log_prob
        else:
            raise TypeError(
                f"log_prob must be a callable x -> log p(x) or an object with .log_prob, got {type(log_prob).__name__}"
            )
        value_fn = lambda x: -lp(x)  # noqa: E731
        if grad_fn is None:
            name = "log_prob"
    if grad_fn is None and value_fn is None:
        return None
    return Potential(grad_fn, value_fn, name)


def radial_gaussian(dim: int) -> Potential:
    """The potential of ``|z|`` under the white base ``N(0, I_dim)``, as a function of ``z``.

    ``|z|`` has the chi density ``p(r) ∝ r^(dim-1) exp(-r^2 / 2)``, so

        S(z) = |z|^2 / 2 - (dim - 1) log |z|,    grad S(z) = z - (dim - 1) z / |z|^2,

    minimal on the shell ``|z| = sqrt(dim - 1)`` where base samples live: likely paths under it keep the norm of
    typical noise (the way slerp does) instead of cutting through the low-norm interior as the straight line and
    the base's own density ``|z|^2 / 2`` would.

    Args:
        dim: the number of coordinates of ``z`` (its event size), ``>= 2``.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an int >= 2, got {dim!r}")
    k = float(dim - 1)

    def value(z: Tensor) -> Tensor:
        r2 = z.flatten(1).square().sum(1)
        return 0.5 * r2 - 0.5 * k * torch.log(r2)

    def grad(z: Tensor) -> Tensor:
        r2 = z.flatten(1).square().sum(1).reshape(-1, *([1] * (z.ndim - 1)))
        return z - k * z / r2

    return Potential(grad, value, f"radial_gaussian({dim})")
