"""What every analytic target provides: exact samples, an exact denoiser and so an exact drift."""

from __future__ import annotations

import torch
from torch import Tensor

from .._utils import as_time_like, expand_like
from ..drift import Drift
from ..predictions import check_prediction, prediction_weights
from ..schedules import Schedule

__all__ = ["Target"]


class Target:
    """A data distribution ``mu*`` with a closed-form denoiser under the white base ``z ~ N(0, I)``.

    Subclasses set ``event_shape`` and implement :meth:`sample` and :meth:`denoisers`.
    """

    event_shape: tuple[int, ...]

    def sample(self, n: int, *, generator=None) -> Tensor:  # pragma: no cover - abstract
        """``n`` exact samples shaped ``(n, *event_shape)``."""
        raise NotImplementedError

    def denoisers(self, x: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """``(z^, x1^) = (E[z | I = x], E[x1 | I = x])`` for ``I = alpha z + beta x1``.

        Both are computed from their own closed forms (not one from the other), so each stays accurate where
        the identity ``x = alpha z^ + beta x1^`` would divide by a vanishing ``alpha`` or ``beta``.

        Args:
            x: states shaped ``(B, *event_shape)``.
            alpha, beta: 0-d tensors (one time) or shaped ``(B,)`` (a time per sample).
        """
        raise NotImplementedError

    def denoise(self, x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        """The data denoiser ``x1^ = E[x1 | alpha z + beta x1 = x]`` (see :meth:`denoisers`)."""
        return self.denoisers(x, alpha, beta)[1]

    def drift(self, schedule: Schedule, prediction: str = "velocity") -> Drift:
        """The exact drift of this target under ``schedule``, with a model predicting ``prediction``.

        The default ``"velocity"`` model returns ``alpha' z^ + beta' x1^`` from both closed-form denoisers, so the
        drift itself involves no conversion (the ``(alpha'/alpha) x + (beta' - alpha' beta / alpha) x1^`` form an
        ``"x1"`` model needs cancels near ``t = 1``, by ``1e-5`` relative under ``LipschitzOptimal(1e-12)``). The
        other predictions emulate a perfect network of that type, conversions included.
        """
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a fastinterp Schedule, got {type(schedule).__name__}")
        return Drift(ExactModel(self, schedule, prediction), schedule=schedule, prediction=prediction)

    def _check_x(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or tuple(x.shape[1:]) != tuple(self.event_shape) or x.ndim < 1:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be shaped (batch, *{tuple(self.event_shape)}), got {got}")


class ExactModel:
    """``model(x, t)`` giving a target's exact ``prediction`` under ``schedule`` (what a perfect network learns).

    Every prediction is ``u z^ + w x1^`` (:func:`~fastinterp.predictions.prediction_weights`) from the two
    closed-form denoisers, never one denoiser recovered from the other.
    """

    def __init__(self, target: Target, schedule: Schedule, prediction: str) -> None:
        self.target, self.schedule, self.prediction = target, schedule, check_prediction(prediction)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        # A bf16/fp16 input is evaluated in float32 and the output rounded back: what a low-precision network
        # trained to perfection returns.
        xc = x if x.dtype in (torch.float32, torch.float64) else x.float()
        s = self.schedule(as_time_like(t, xc))
        z, x1 = self.target.denoisers(xc, s.alpha, s.beta)
        u, w = prediction_weights(self.prediction, s)
        return (expand_like(u, xc) * z + expand_like(w, xc) * x1).to(x.dtype)

    def __repr__(self) -> str:
        return f"ExactModel({type(self.target).__name__}, {self.schedule!r}, {self.prediction!r})"
