"""What every analytic target provides: exact samples, an exact denoiser and so an exact drift."""

from __future__ import annotations

from torch import Tensor

from .._utils import as_time_like
from ..drift import Drift, _affine
from ..predictions import check_prediction, conversion_coefficients
from ..schedules import Schedule

__all__ = ["Target"]


class Target:
    """A data distribution ``mu*`` with a closed-form denoiser under the white base ``z ~ N(0, I)``.

    Subclasses set ``event_shape`` and implement :meth:`sample` and :meth:`denoise`.
    """

    event_shape: tuple[int, ...]

    def sample(self, n: int, *, generator=None) -> Tensor:  # pragma: no cover - abstract
        """``n`` exact samples shaped ``(n, *event_shape)``."""
        raise NotImplementedError

    def denoise(self, x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``E[x1 | alpha z + beta x1 = x]`` for ``x`` shaped ``(B, *event_shape)``; ``alpha, beta`` 0-d or ``(B,)``."""
        raise NotImplementedError

    def drift(self, schedule: Schedule, prediction: str = "x1") -> Drift:
        """The exact drift of this target under ``schedule``, with a model predicting ``prediction``."""
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a fastinterp Schedule, got {type(schedule).__name__}")
        return Drift(ExactModel(self, schedule, prediction), schedule=schedule, prediction=prediction)

    def _check_x(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or tuple(x.shape[1:]) != tuple(self.event_shape) or x.ndim < 1:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be shaped (batch, *{tuple(self.event_shape)}), got {got}")


class ExactModel:
    """``model(x, t)`` giving a target's exact ``prediction`` under ``schedule`` (what a perfect network learns)."""

    def __init__(self, target: Target, schedule: Schedule, prediction: str) -> None:
        self.target, self.schedule, self.prediction = target, schedule, check_prediction(prediction)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        s = self.schedule(as_time_like(t, x))
        x1 = self.target.denoise(x, s.alpha, s.beta)
        cx, cy = conversion_coefficients("x1", self.prediction, s)
        return _affine(cx, x, cy, x1)

    def __repr__(self) -> str:
        return f"ExactModel({type(self.target).__name__}, {self.schedule!r}, {self.prediction!r})"
