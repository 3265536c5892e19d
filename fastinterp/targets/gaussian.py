"""Gaussian target ``N(mean, diag(var))``: the denoiser is linear and the drift diagonal."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._utils import check_int, expand_like
from ..schedules import Schedule, ScheduleOutput
from .base import Target

__all__ = ["Gaussian", "drift_rates"]


def drift_rates(spectrum: Tensor, s: ScheduleOutput) -> Tensor:
    """Per-mode drift rates ``c_k(t) = (a a' + b b' S_k) / (a^2 + b^2 S_k)`` of a Gaussian, white base.

    For a target with covariance eigenvalues ``S_k`` the drift is ``b_t(x) = sum_k c_k(t) <x, e_k> e_k``, so its
    Jacobian has eigenvalues ``c_k`` and ``|grad b_t|_F^2 = sum_k c_k^2``.

    Args:
        spectrum: ``S_k``, any shape ``K``.
        s: the schedule at times shaped ``T``.

    Returns:
        Tensor shaped ``T + K``.
    """
    a, b, da, db = (v.reshape(*v.shape, *([1] * spectrum.ndim)) for v in s)
    return (a * da + b * db * spectrum) / (a * a + b * b * spectrum)


class Gaussian(Target):
    """``N(mean, diag(var))`` with event shape ``mean.shape``.

    Exact denoisers ``x1^ = mean + b var / (a^2 + b^2 var) (x - b mean)``, ``z^ = a (x - b mean) / (a^2 + b^2 var)``.

    Args:
        mean: the mean, shape = event shape.
        var: the per-coordinate variances, broadcastable to ``mean``, ``> 0``.
    """

    def __init__(self, mean: Tensor, var: Tensor | float) -> None:
        mean = torch.as_tensor(mean)
        if not mean.is_floating_point():
            mean = mean.to(torch.get_default_dtype())
        var = torch.as_tensor(var, dtype=mean.dtype, device=mean.device)
        if mean.ndim == 0:
            raise ValueError("mean must have at least one dimension (the event shape), got a 0-d tensor")
        try:
            var = torch.broadcast_to(var, mean.shape).clone()
        except RuntimeError:
            raise ValueError(
                f"var shaped {tuple(var.shape)} does not broadcast to mean's {tuple(mean.shape)}"
            ) from None
        if not (torch.isfinite(var).all() and (var > 0).all()):
            bad = var[~(torch.isfinite(var) & (var > 0))]
            raise ValueError(f"var must be finite and > 0, got {bad.numel()} value(s) like {bad.flatten()[0].item()}")
        if not torch.isfinite(mean).all():
            raise ValueError(f"mean must be finite, got {int((~torch.isfinite(mean)).sum())} non-finite value(s)")
        self.mean, self.var = mean, var
        self.event_shape = tuple(mean.shape)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        check_int("n", n, 1)
        z = torch.randn((n, *self.event_shape), generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.var.sqrt() * z

    def denoisers(self, x: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
        """``z^ = a (x - b mean) / v``, ``x1^ = mean + b var (x - b mean) / v`` with ``v = a^2 + b^2 var``."""
        self._check_x(x)
        mean, var = self.mean.to(x), self.var.to(x)
        a, b = expand_like(alpha, x), expand_like(beta, x)
        r = (x - b * mean) / (a * a + b * b * var)
        return a * r, mean + b * var * r

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density of the target at ``x`` shaped ``(B, *event_shape)``; returns ``(B,)``."""
        self._check_x(x)
        var, mean = self.var.to(x), self.mean.to(x)
        q = ((x - mean) ** 2 / var + torch.log(2 * math.pi * var)).flatten(1)
        return -0.5 * q.sum(1)

    def score(self, x: Tensor) -> Tensor:
        """Exact score ``-(x - mean) / var`` of the target."""
        self._check_x(x)
        return -(x - self.mean.to(x)) / self.var.to(x)

    def lipschitz_profile(self, schedule: Schedule, t: Tensor) -> Tensor:
        """Exact ``|grad b_t|_F^2 = sum_k c_k(t)^2`` (constant in x for a Gaussian) at times ``t``, shaped like t."""
        rates = drift_rates(self.var.flatten().to(t), schedule(t))
        return (rates * rates).sum(-1)
