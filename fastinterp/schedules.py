"""Interpolation schedules ``(alpha_t, beta_t)`` of the one-sided interpolant ``I_t = alpha_t z + beta_t x1``.

Every schedule satisfies ``alpha_0 = 1, beta_0 = 0, alpha_1 = 0, beta_1 = 1`` and is evaluated on a tensor of
times of any shape, dtype and device, returning values and exact time derivatives of the same shape. No
evaluation synchronises with the host, so schedules run inside ``torch.compile`` graphs and CUDA graphs.

Each schedule also inverts its noise-to-signal ratio (:meth:`Schedule.invert_ratio`), the operation behind the
transfer map between schedules, and gives the statistically optimal SDE diffusion (:meth:`Schedule.optimal_diffusion`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "Custom",
    "LipschitzOptimal",
    "Linear",
    "MixtureOptimal",
    "Schedule",
    "ScheduleOutput",
    "Tabulated",
    "Trig",
]


class ScheduleOutput(NamedTuple):
    """Values and time derivatives of a schedule, each shaped like the times it was evaluated at."""

    alpha: Tensor
    beta: Tensor
    dalpha: Tensor
    dbeta: Tensor


def _as_time(t: Tensor | float) -> Tensor:
    if isinstance(t, Tensor):
        if not t.is_floating_point():
            raise TypeError(f"t must be a floating-point tensor, got dtype {t.dtype}")
        return t
    if isinstance(t, (int, float)):
        return torch.tensor(float(t), dtype=torch.get_default_dtype())
    raise TypeError(f"t must be a tensor or a float, got {type(t).__name__}")


def _check_in_range(owner: str, name: str, value: object, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` as a float if it lies in the accurate range ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    inside = (low < value if low_open else low <= value) and value <= high
    if not inside:
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{owner}: {name} must lie in {bounds}, the range where it is accurate, got {value!r}")
    return value


class Schedule:
    """Base class: subclasses implement :meth:`evaluate`; the rest derives from it.

    ``schedule(t)`` returns a :class:`ScheduleOutput` ``(alpha, beta, dalpha, dbeta)`` shaped like ``t``.
    """

    #: Whether ``alpha^2 + beta^2 = 1`` for all t.
    variance_preserving: bool = False

    def evaluate(self, t: Tensor) -> ScheduleOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, t: Tensor | float) -> ScheduleOutput:
        return self.evaluate(_as_time(t))

    def invert_ratio(self, alpha: Tensor, beta: Tensor) -> Tensor:
        """Time ``t'`` at which this schedule has noise-to-signal ratio ``alpha / beta``.

        Solves ``alpha_s(t') / beta_s(t') = alpha / beta`` for ``t'`` in ``[0, 1]``, elementwise. ``alpha`` and
        ``beta`` are passed separately (not their ratio) so that the ends ``beta = 0`` (t' = 0) and
        ``alpha = 0`` (t' = 1) are exact. The base class runs a vectorised bisection with a fixed number of
        iterations (no host synchronisation); subclasses override it with their closed forms.

        Args:
            alpha, beta: broadcastable tensors with ``alpha, beta >= 0`` and ``alpha + beta > 0``.

        Returns:
            ``t'`` with the broadcast shape and the dtype of ``alpha``.
        """
        alpha, beta = torch.broadcast_tensors(alpha, beta)
        lo = torch.zeros_like(alpha)
        hi = torch.ones_like(alpha)
        # f(t) = alpha_s(t) beta - beta_s(t) alpha decreases from beta >= 0 (t = 0) to -alpha <= 0 (t = 1).
        iterations = 64 if alpha.dtype == torch.float64 else 40
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            out = self.evaluate(mid)
            positive = out.alpha * beta - out.beta * alpha > 0
            lo = torch.where(positive, mid, lo)
            hi = torch.where(positive, hi, mid)
        return 0.5 * (lo + hi)

    def optimal_diffusion(self, t: Tensor | float) -> Tensor:
        """Statistically optimal SDE diffusion ``eps*_t = alpha^2 (beta'/beta - alpha'/alpha)``.

        Written as ``alpha (alpha beta' / beta - alpha')`` so that it stays finite at ``t = 1``; it is singular at
        ``t = 0`` (``beta = 0``).
        """
        s = self(t)
        return s.alpha * (s.alpha * s.dbeta / s.beta - s.dalpha)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Schedule):
    """``alpha = 1 - t``, ``beta = t`` (rectified flow / flow matching)."""

    def evaluate(self, t: Tensor) -> ScheduleOutput:
        one = torch.ones_like(t)
        return ScheduleOutput(1 - t, t, -one, one)

    def invert_ratio(self, alpha: Tensor, beta: Tensor) -> Tensor:
        # (1 - t) / t = alpha / beta  =>  t = beta / (alpha + beta)
        return beta / (alpha + beta)


class Trig(Schedule):
    """``alpha = cos(pi t / 2)``, ``beta = sin(pi t / 2)`` (variance preserving).

    ``alpha`` is evaluated as ``sin(pi (1 - t) / 2)``: ``cos`` near ``pi / 2`` would keep only the absolute accuracy
    of its argument (``alpha(1 - 1e-12)`` off by 3e-5 relative), and ``alpha(1) = 0`` exactly.
    """

    variance_preserving = True

    def evaluate(self, t: Tensor) -> ScheduleOutput:
        h = 0.5 * math.pi
        c, s = torch.sin(h * (1 - t)), torch.sin(h * t)
        return ScheduleOutput(c, s, -h * s, h * c)

    def invert_ratio(self, alpha: Tensor, beta: Tensor) -> Tensor:
        return torch.atan2(beta, alpha) * (2 / math.pi)


class LipschitzOptimal(Schedule):
    """Schedule minimising the drift's Lipschitz constant for a Gaussian with spectral ratio ``lam``.

    ``alpha^2 = (lam - lam^t) / (lam - 1)``, ``beta^2 = (lam^t - 1) / (lam - 1)`` (variance preserving). With
    ``K = |ln lam|`` and ``E = expm1(-K)`` it is evaluated in forms whose every intermediate lies in ``[-1, 1]``
    (no overflow in any dtype): for ``lam < 1``

        beta^2 = expm1(-t K) / E,   alpha^2 = exp(-t K) expm1(-(1 - t) K) / E,   d(beta^2)/dt = K exp(-t K) / -E,

    and the mirror image (``t <-> 1 - t``, ``alpha <-> beta``) for ``lam > 1``; ``lam = 1`` is the limit
    ``alpha^2 = 1 - t``, ``beta^2 = t``. For a 1-D Gaussian of variance ``M`` and ``lam = M`` the drift's Lipschitz
    constant is ``|ln M| / 2`` at every t.

    Accurate range (:attr:`lam_range`, enforced): ``1e-280 <= lam <= 1e280``. Inside it, values, derivatives and
    :meth:`invert_ratio` agree with a 60-digit reference to ``1e-12`` relative in float64 for t in
    ``[1e-12, 1 - 1e-12]`` (tests/test_edges.py), and ``alpha^2``, ``beta^2`` stay normal floats there. Beyond
    ``1e-300`` (resp. ``1e300``) ``alpha^2`` near ``t = 1`` (``beta^2`` near 0) becomes subnormal and loses digits.
    In float32 the same forms are finite, but values below ``1e-38`` underflow: for extreme ``lam`` that happens
    inside ``(0, 1)`` (``alpha = 1e-75`` at ``t = 0.5`` for ``lam = 1e-300``); keep such schedules in float64.

    Args:
        lam: target/base variance ratio in the stiffest mode (e.g. ``GaussianRandomField.nyquist_ratio()``).
    """

    variance_preserving = True
    #: The accurate range of ``lam``, both ends included.
    lam_range: ClassVar[tuple[float, float]] = (1e-280, 1e280)

    def __init__(self, lam: float) -> None:
        self.lam = _check_in_range("LipschitzOptimal", "lam", lam, *self.lam_range)
        self._L = math.log(self.lam)
        self._K = abs(self._L)
        self._E = math.expm1(-self._K)  # in (-1, 0); 0 only for lam = 1
        self._rate = self._K / -self._E if self._K else 1.0  # K / (1 - exp(-K)), the peak of d(beta^2)/dt
        # log(expm1(K)) = K + log(1 - exp(-K)), for the overflow-free inverse when lam > 1
        self._log_expm1K = self._K + math.log(-self._E) if self._K else -math.inf

    def _squares(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(alpha^2, beta^2, d(beta^2)/dt)``."""
        s = 1 - t
        if self._K == 0.0:
            return s, t, torch.ones_like(t)
        K, E = self._K, self._E
        if self._L < 0:
            decay = torch.exp(-K * t)
            return decay * torch.expm1(-K * s) / E, torch.expm1(-K * t) / E, self._rate * decay
        decay = torch.exp(-K * s)
        return torch.expm1(-K * s) / E, decay * torch.expm1(-K * t) / E, self._rate * decay

    def evaluate(self, t: Tensor) -> ScheduleOutput:
        alpha2, beta2, dbeta2 = self._squares(t)
        alpha, beta = torch.sqrt(alpha2), torch.sqrt(beta2)
        return ScheduleOutput(alpha, beta, -0.5 * dbeta2 / alpha, 0.5 * dbeta2 / beta)

    def invert_ratio(self, alpha: Tensor, beta: Tensor) -> Tensor:
        # beta_s^2(t) = q := beta^2 / (alpha^2 + beta^2)  =>  lam^t = p + q lam, p = 1 - q (computed from alpha, so
        # that 1 - q does not cancel). lam < 1: t = -log1p(q E) / K, or -log(p + q exp(-K)) / K where q E nears -1.
        # lam > 1: t = log1p(q expm1(K)) / K = logaddexp(0, log q + log expm1(K)) / K, which cannot overflow.
        norm = alpha * alpha + beta * beta
        q, p = beta * beta / norm, alpha * alpha / norm
        K = self._K
        if K == 0.0:
            return q
        if self._L > 0:
            return torch.logaddexp(torch.zeros_like(q), torch.log(q) + self._log_expm1K) / K
        small = -torch.log1p(q * self._E)
        large = -torch.logaddexp(torch.log(p), torch.log(q) - K)
        return torch.where(q * self._E > -0.5, small, large) / K

    def __repr__(self) -> str:
        return f"LipschitzOptimal(lam={self.lam:g})"


class MixtureOptimal(Schedule):
    """Variance-preserving schedule optimal for the mixture ``p N(r, I) + (1 - p) N(-r, I)``, ``M = |r|``.

    ``beta_t^2 = -log(1 + c t) / M^2`` with ``c = expm1(-M^2)``, and ``alpha_t^2 = 1 - beta_t^2`` evaluated as
    ``log1p((1 - t) expm1(M^2)) / M^2`` (no cancellation near ``t = 1``). Three regimes, chosen at construction:

    - ``M^2 < 1e-30``: the series ``beta^2 = t - M^2 t (1 - t) / 2`` (exact to float64; ``M^2`` may underflow to 0,
      the limit ``alpha^2 = 1 - t``, ``beta^2 = t``), where ``log1p(c t) / M^2`` would divide by a subnormal;
    - ``M^2 < 1``: the ``log1p`` forms above;
    - ``M^2 >= 1``: logarithms as ``log(1 + c t) = logaddexp(log(1 - t), log(t) - M^2)`` and
      ``log1p((1 - t) expm1(M^2)) = logaddexp(0, log(1 - t) + log expm1(M^2))``, so ``beta_1 = 1`` exactly and
      nothing overflows once ``exp(-M^2)`` underflows.

    Accurate range (:attr:`M_range`, enforced): ``0 < M <= 1e140``. Inside it values, derivatives and
    :meth:`invert_ratio` agree with a 60-digit reference to ``1e-12`` relative in float64 for t in
    ``[1e-12, 1 - 1e-12]`` (tests/test_edges.py); beyond ``1e140`` ``beta^2 ~ t / M^2`` turns subnormal at small t
    and ``M^2`` overflows past ``1.3e154``. Note that ``beta_t`` stays small until t is very close to 1 for large
    ``M`` (``MixtureOptimal(30)`` has ``beta = 0.087`` at ``t = 1 - 1e-3``): finish sampling with a denoising step
    (``sample(..., denoise=True)``). As the *source* of a transfer it reaches small noise-to-signal ratios only at
    times that float64 cannot represent (for ``M = 20``, ``alpha/beta < 3`` needs ``1 - t < 1e-16``): such
    transfers raise (:func:`fastinterp.transfer_time`).

    Args:
        M: norm of the mixture's mean offset ``|r|``, ``> 0``.
    """

    variance_preserving = True
    #: The accurate range of ``M``: ``M_range[0] < M <= M_range[1]``.
    M_range: ClassVar[tuple[float, float]] = (0.0, 1e140)

    def __init__(self, M: float) -> None:
        self.M = _check_in_range("MixtureOptimal", "M", M, *self.M_range, low_open=True)
        M2 = self.M * self.M
        self._M2 = M2
        self._c = math.expm1(-M2)  # in (-1, 0]
        if M2 < 1e-30:
            self._regime, self._rate = "series", 1.0 - 0.5 * M2
        elif M2 < 1.0:
            self._regime, self._rate, self._C = "log1p", -self._c / M2, math.expm1(M2)
        else:
            self._regime, self._rate = "log", -self._c / M2
            self._log_expm1 = M2 + math.log(-self._c)  # log(expm1(M^2)) without overflow

    def _squares(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(alpha^2, beta^2, d(beta^2)/dt)``; ``d(beta^2)/dt = -c / (M^2 (1 + c t))``."""
        M2, s = self._M2, 1 - t
        if self._regime == "series":
            ts = t * s
            return s + 0.5 * M2 * ts, t - 0.5 * M2 * ts, self._rate + M2 * t
        if self._regime == "log1p":
            log1p_ct = torch.log1p(self._c * t)
            return torch.log1p(self._C * s) / M2, -log1p_ct / M2, self._rate * torch.exp(-log1p_ct)
        log_s = torch.log1p(-t)
        log1p_ct = torch.logaddexp(log_s, torch.log(t) - M2)
        alpha2 = torch.logaddexp(torch.zeros_like(t), log_s + self._log_expm1) / M2
        return alpha2, -log1p_ct / M2, self._rate * torch.exp(-log1p_ct)

    def evaluate(self, t: Tensor) -> ScheduleOutput:
        alpha2, beta2, dbeta2 = self._squares(t)
        alpha, beta = torch.sqrt(alpha2), torch.sqrt(beta2)
        return ScheduleOutput(alpha, beta, -0.5 * dbeta2 / alpha, 0.5 * dbeta2 / beta)

    def invert_ratio(self, alpha: Tensor, beta: Tensor) -> Tensor:
        # beta_s^2(t) = q  =>  1 + c t = exp(-M^2 q)  =>  t = expm1(-M^2 q) / c  (series: t = q + M^2 q p / 2).
        norm = alpha * alpha + beta * beta
        q = beta * beta / norm
        if self._regime == "series":
            return q + 0.5 * self._M2 * q * (alpha * alpha / norm)
        return torch.expm1(-self._M2 * q) / self._c

    def __repr__(self) -> str:
        return f"MixtureOptimal(M={self.M:g})"


def _pchip_slopes(x: Tensor, y: Tensor) -> Tensor:
    """Fritsch-Carlson monotone slopes (the rule of scipy's PchipInterpolator) at the knots."""
    h = x[1:] - x[:-1]
    delta = (y[1:] - y[:-1]) / h
    n = x.numel()
    d = torch.zeros_like(y)
    if n == 2:
        return torch.full_like(y, float(delta[0]))
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    same_sign = (delta[:-1] * delta[1:]) > 0
    # Weighted harmonic mean of neighbouring secants; zero at local extrema keeps the interpolant monotone.
    harmonic = (w1 + w2) / (
        w1 / torch.where(same_sign, delta[:-1], torch.ones_like(delta[:-1]))
        + w2 / torch.where(same_sign, delta[1:], torch.ones_like(delta[1:]))
    )
    d[1:-1] = torch.where(same_sign, harmonic, torch.zeros_like(harmonic))

    def end_slope(h0: Tensor, h1: Tensor, m0: Tensor, m1: Tensor) -> Tensor:
        s = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if torch.sign(s) != torch.sign(m0):
            return torch.zeros_like(s)
        if torch.sign(m0) != torch.sign(m1) and torch.abs(s) > torch.abs(3 * m0):
            return 3 * m0
        return s

    d[0] = end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


class _Pchip:
    """Monotone piecewise-cubic Hermite interpolant on fixed knots, evaluated without host syncs."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y
        self.d = _pchip_slopes(x, y)

    def __call__(self, t: Tensor) -> tuple[Tensor, Tensor]:
        x, y, d = (v.to(device=t.device, dtype=t.dtype) for v in (self.x, self.y, self.d))
        i = torch.clamp(torch.searchsorted(x, t.detach().contiguous(), right=True) - 1, 0, x.numel() - 2)
        x0, x1, y0, y1, d0, d1 = x[i], x[i + 1], y[i], y[i + 1], d[i], d[i + 1]
        h = x1 - x0
        s = (t - x0) / h
        s2, s3 = s * s, s * s * s
        h00, h10, h01, h11 = 2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s, -2 * s3 + 3 * s2, s3 - s2
        value = h00 * y0 + h10 * h * d0 + h01 * y1 + h11 * h * d1
        dh00, dh10, dh01, dh11 = 6 * s2 - 6 * s, 3 * s2 - 4 * s + 1, -6 * s2 + 6 * s, 3 * s2 - 2 * s
        deriv = (dh00 * y0 + dh01 * y1) / h + dh10 * d0 + dh11 * d1
        return value, deriv


class Tabulated(Schedule):
    """Schedule from samples of ``beta_t`` (and optionally ``alpha_t``) on a grid of times.

    Values and derivatives come from monotone piecewise-cubic Hermite (PCHIP) interpolation, which keeps the
    interpolant monotone where the samples are and is continuously differentiable. Without ``alpha`` the
    schedule is variance preserving, ``alpha = sqrt(1 - beta^2)``. Typical use: a schedule optimised
    numerically for a given spectrum or mixture.

    Args:
        t: increasing times shaped ``(K,)``, ``K >= 2``, starting at 0 and ending at 1.
        beta: ``beta`` at those times, shaped ``(K,)``, non-decreasing, ``beta[0] = 0``, ``beta[-1] = 1``.
        alpha: optional ``alpha`` at those times, non-increasing, ``alpha[0] = 1``, ``alpha[-1] = 0``.
    """

    def __init__(self, t: Tensor, beta: Tensor, alpha: Tensor | None = None) -> None:
        t = torch.as_tensor(t, dtype=torch.float64).flatten()
        beta = torch.as_tensor(beta, dtype=torch.float64).flatten()
        if t.numel() < 2 or beta.shape != t.shape:
            raise ValueError(
                f"t and beta must be 1-D with the same length >= 2, got {tuple(t.shape)} and {tuple(beta.shape)}"
            )
        if not (torch.isfinite(t).all() and torch.isfinite(beta).all()):
            raise ValueError("t and beta must be finite")
        if not (t[1:] > t[:-1]).all() or t[0] != 0 or t[-1] != 1:
            raise ValueError(f"t must increase strictly from 0 to 1, got {t.tolist()}")
        if not (beta[1:] >= beta[:-1]).all() or beta[0] != 0 or beta[-1] != 1:
            raise ValueError(f"beta must be non-decreasing from 0 to 1, got {beta.tolist()}")
        self._beta = _Pchip(t, beta)
        self._alpha = None
        if alpha is not None:
            alpha = torch.as_tensor(alpha, dtype=torch.float64).flatten()
            if alpha.shape != t.shape or not torch.isfinite(alpha).all():
                raise ValueError(f"alpha must be finite and shaped like t {tuple(t.shape)}, got {tuple(alpha.shape)}")
            if not (alpha[1:] <= alpha[:-1]).all() or alpha[0] != 1 or alpha[-1] != 0:
                raise ValueError(f"alpha must be non-increasing from 1 to 0, got {alpha.tolist()}")
            self._alpha = _Pchip(t, alpha)
        self.variance_preserving = alpha is None

    def evaluate(self, t: Tensor) -> ScheduleOutput:
        beta, dbeta = self._beta(t)
        if self._alpha is None:
            alpha = torch.sqrt(torch.clamp(1 - beta * beta, min=0))
            return ScheduleOutput(alpha, beta, -beta * dbeta / alpha, dbeta)
        alpha, dalpha = self._alpha(t)
        return ScheduleOutput(alpha, beta, dalpha, dbeta)

    def __repr__(self) -> str:
        return f"Tabulated(knots={self._beta.x.numel()})"


class Custom(Schedule):
    """Schedule from user callables ``alpha(t)``, ``beta(t)`` acting elementwise on tensors.

    Derivatives come from ``dalpha``/``dbeta`` when given, otherwise from autograd (the callables must then be
    differentiable torch functions). The noise-to-signal ratio is inverted by bisection.

    Example:
        >>> cosine = Custom(lambda t: torch.cos(0.5 * math.pi * t), lambda t: torch.sin(0.5 * math.pi * t))
    """

    def __init__(
        self,
        alpha: Callable[[Tensor], Tensor],
        beta: Callable[[Tensor], Tensor],
        dalpha: Callable[[Tensor], Tensor] | None = None,
        dbeta: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        for name, fn in (("alpha", alpha), ("beta", beta), ("dalpha", dalpha), ("dbeta", dbeta)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        self._alpha, self._beta, self._dalpha, self._dbeta = alpha, beta, dalpha, dbeta

    @staticmethod
    def _value_and_derivative(fn: Callable, dfn: Callable | None, t: Tensor) -> tuple[Tensor, Tensor]:
        if dfn is not None:
            return fn(t), dfn(t)
        with torch.enable_grad():
            tt = t.detach().requires_grad_(True)
            value = fn(tt)
            (deriv,) = torch.autograd.grad(value.sum(), tt)
        return value.detach(), deriv

    def evaluate(self, t: Tensor) -> ScheduleOutput:
        alpha, dalpha = self._value_and_derivative(self._alpha, self._dalpha, t)
        beta, dbeta = self._value_and_derivative(self._beta, self._dbeta, t)
        for name, v in (("alpha", alpha), ("beta", beta), ("dalpha", dalpha), ("dbeta", dbeta)):
            if not isinstance(v, Tensor) or v.shape != t.shape:
                got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise ValueError(
                    f"custom schedule's {name}(t) must return a tensor shaped like t {tuple(t.shape)}, got {got}"
                )
        return ScheduleOutput(alpha, beta, dalpha, dbeta)
