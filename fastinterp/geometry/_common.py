"""Argument checks, solver options, the potential term and bad-value tracking shared by the likely-path solvers
(private).

Used by :mod:`.probgeorce`, :mod:`.frechet`, :mod:`.baselines` and :mod:`.noise_space`; the names are public here so
that the solvers need not import each other's private helpers, but they are not part of the package's API.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._utils import check_int
from .potentials import Potential

__all__ = [
    "BadWatch",
    "Options",
    "Terms",
    "check_finite",
    "check_float",
    "check_int",
    "check_metric",
    "check_points",
    "options",
]


# ----------------------------------------------------------------------------------------------------- validation


def check_points(a: object, b: object) -> tuple[Tensor, Tensor]:
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor shaped (P, *event), got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if x.ndim < 1 or x.shape[0] < 1:
            raise ValueError(f"{name} must be shaped (P, *event) with P >= 1, got {tuple(x.shape)}")
    assert isinstance(a, Tensor) and isinstance(b, Tensor)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape (P, *event), got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype or a.device != b.device:
        raise TypeError(f"a and b must share dtype and device, got {a.dtype}/{a.device} and {b.dtype}/{b.device}")
    check_finite("a", a)
    check_finite("b", b)
    return a.detach(), b.detach()


def check_finite(name: str, x: Tensor) -> None:
    """A ``ValueError`` naming ``x``'s first non-finite entry (its index and value) if it has one."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{name} must be finite, got {int(bad.sum())} nan or inf value(s), first {float(x[idx])} at index {idx}"
        )


def check_float(name: str, v: object, *, low: float, high: float = math.inf, strict: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(v).__name__}")
    v = float(v)
    ok = math.isfinite(v) and (low < v if strict else low <= v) and v <= high
    if not ok:
        raise ValueError(
            f"{name} must be {'>' if strict else '>='} {low:g}{f' and <= {high:g}' if high < math.inf else ''}, got {v}"
        )
    return v


def check_metric(metric: object) -> Callable[[Tensor], Tensor] | None:
    if metric is not None and not callable(metric):
        raise TypeError(f"metric must be a callable z -> G(z) shaped (M, d, d), got {type(metric).__name__}")
    return metric  # type: ignore[return-value]


@dataclass
class Options:
    lam: float
    n: int
    tol: float
    max_iter: int
    normalize_lam: bool
    ls_trials: int
    ls_shrink: float
    armijo: float
    check_every: int
    record_energy: bool
    accelerate: bool = False


def options(
    lam: object,
    n_grid: object,
    tol: object,
    max_iter: object,
    normalize_lam: object,
    ls_trials: object,
    ls_shrink: object,
    armijo: object,
    check_every: object,
    record_energy: object,
    accelerate: object = False,
) -> Options:
    return Options(
        lam=check_float("lam", lam, low=0.0),
        n=check_int("n_grid", n_grid, 2),
        tol=check_float("tol", tol, low=0.0, strict=True),
        max_iter=check_int("max_iter", max_iter, 0),
        normalize_lam=bool(normalize_lam),
        ls_trials=check_int("ls_trials", ls_trials, 1),
        ls_shrink=check_float("ls_shrink", ls_shrink, low=0.0, high=0.99, strict=True),
        armijo=check_float("armijo", armijo, low=0.0, high=0.5, strict=True),
        check_every=check_int("check_every", check_every, 1),
        record_energy=bool(record_energy),
        accelerate=bool(accelerate),
    )


# ------------------------------------------------------------------------------------------------ the potential term


class Terms:
    """Evaluates ``S`` / ``grad S`` on batches of curves ``(P, n, d)`` and reports bad values per pair."""

    def __init__(self, pot: Potential | None, event: tuple[int, ...]) -> None:
        self.pot, self.event = pot, event

    @property
    def has_value(self) -> bool:
        return self.pot is None or self.pot.has_value

    def _flat(self, z: Tensor) -> Tensor:
        return z.reshape(-1, *self.event)

    def value_and_grad(self, z: Tensor) -> tuple[Tensor | None, Tensor]:
        P, n, d = z.shape
        if self.pot is None:
            return z.new_zeros(P, n), torch.zeros_like(z)
        S, g = self.pot.value_and_grad(self._flat(z))
        return (None if S is None else S.reshape(P, n)), g.reshape(P, n, d)

    def value(self, z: Tensor) -> Tensor:
        P, n, _ = z.shape
        if self.pot is None:
            return z.new_zeros(P, n)
        return self.pot.value(self._flat(z)).reshape(P, n)

    def grad(self, z: Tensor) -> Tensor:
        if self.pot is None:
            return torch.zeros_like(z)
        return self.pot.grad(self._flat(z)).reshape(z.shape)

    @property
    def name(self) -> str:
        return "the potential" if self.pot is None else self.pot.name


class BadWatch:
    """The first iteration at which each pair met a bad value, kept on the device until a check."""

    def __init__(self, P: int, device: torch.device) -> None:
        self.first = torch.full((P,), -1, dtype=torch.int64, device=device)
        self.kind = torch.zeros((P,), dtype=torch.int64, device=device)

    def update(self, bad: Tensor, it: int, kind: int, idx: Tensor | None = None) -> None:
        """Record ``bad`` (per pair, or per working pair at batch positions ``idx``) met at iteration ``it``."""
        if idx is not None:
            bad = torch.zeros_like(self.first, dtype=torch.bool).index_copy(0, idx, bad)
        new = bad & (self.first < 0)
        self.first = torch.where(new, it, self.first)
        self.kind = torch.where(new, kind, self.kind)

    def raise_if_bad(self, source: str, what: str = "pair") -> None:
        first = self.first
        if bool((first >= 0).any()):
            big = torch.iinfo(torch.int64).max
            p = int(torch.where(first >= 0, first, big).argmin())
            it, kind = int(first[p]), int(self.kind[p])
            if kind == 1:
                msg = f"{source} returned non-finite values (NaN/inf gradient, or NaN/-inf potential)"
            else:
                msg = "metric returned a matrix that is not symmetric positive definite (or not finite)"
            raise ValueError(f"{msg} at iteration {it} for {what} {p}; the curve there is not usable")
