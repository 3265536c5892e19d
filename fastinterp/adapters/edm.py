"""EDM / k-diffusion denoisers ``D(x, sigma)`` as fastinterp drifts.

EDM's state ``x = x0 + sigma n`` is the variance-preserving interpolant ``I = alpha z + beta x1`` divided by
``beta``, with ``sigma = alpha / beta``. The drift's source schedule is :class:`~fastinterp.Trig`: at a Trig time
``t'`` the wrapper calls ``D(x' / beta, alpha / beta)`` and returns it as the data denoiser ``x1^`` (prediction
``"x1"``). The noise range is ``(sigma_min, sigma_max)``.
"""

from __future__ import annotations

import math
import numbers

from torch import Tensor

from .._utils import expand_like
from ..drift import Drift
from ..schedules import Trig

__all__ = ["EDMModel", "from_edm"]

_TRIG = Trig()


class EDMModel:
    """``model(x', t', **cond) = D(x' / beta, alpha / beta, **cond)`` under :class:`~fastinterp.Trig`.

    ``sigma`` is passed shaped ``(B,)`` (EDM's ``EDMPrecond`` and k-diffusion's denoisers take that), in the time's
    dtype (float32 at least); ``x' / beta`` is in ``x'``'s dtype.
    """

    def __init__(self, denoiser: object) -> None:
        self.denoiser = denoiser

    def __call__(self, x: Tensor, t: Tensor, **cond) -> Tensor:
        s = _TRIG(t)
        sigma = s.alpha / s.beta
        if sigma.numel() == 1:
            sigma = sigma.reshape(()).expand(x.shape[0])
        x_edm = (x * expand_like(1 / s.beta, x)).to(x.dtype)
        return self.denoiser(x_edm, sigma.reshape(x.shape[0]), **cond)

    def __repr__(self) -> str:
        return f"EDMModel({type(self.denoiser).__name__})"


def from_edm(denoiser: object, sigma_min: float, sigma_max: float) -> Drift:
    """An EDM / k-diffusion denoiser ``D(x, sigma) = E[x0 | x0 + sigma n = x]`` as a :class:`~fastinterp.Drift`.

    Args:
        denoiser: called as ``D(x, sigma, **cond)`` with ``x`` the EDM state ``x0 + sigma n`` shaped ``(B, ...)`` and
            ``sigma`` shaped ``(B,)``; returns the denoised ``x0^`` shaped like ``x``.
        sigma_min, sigma_max: the trained noise levels, ``0 <= sigma_min < sigma_max < inf`` (EDM: 0.002, 80).

    Returns:
        A drift under :class:`~fastinterp.Trig` predicting ``"x1"`` with ``noise_range = (sigma_min, sigma_max)``.

    Example:
        >>> drift = from_edm(net, 0.002, 80.0)   # EDMPrecond, k-diffusion's Denoiser, ...
        >>> x = fi.sample(drift.transfer(fi.Linear()), torch.randn(16, 3, 32, 32), steps=10, denoise=True)
    """
    if not callable(denoiser):
        raise TypeError(f"from_edm: denoiser must be callable as D(x, sigma), got {type(denoiser).__name__}")
    for name, value in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"from_edm: {name} must be a real number, got {type(value).__name__} {value!r}")
    lo, hi = float(sigma_min), float(sigma_max)
    if not (0.0 <= lo < hi < math.inf):
        raise ValueError(f"from_edm: need 0 <= sigma_min < sigma_max < inf, got sigma_min={lo!r}, sigma_max={hi!r}")
    return Drift(EDMModel(denoiser), _TRIG, "x1", noise_range=(lo, hi))
