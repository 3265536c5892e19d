"""A model, the schedule it was trained under, and what it predicts: the object every sampler integrates."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from ._utils import as_time_like, expand_like
from .predictions import check_prediction, conversion_coefficients
from .schedules import Linear, Schedule

__all__ = ["Drift"]

Model = Callable[[Tensor, Tensor], Tensor]


class Drift:
    """A model ``model(x, t)`` trained under ``schedule`` to predict ``prediction``.

    ``prediction`` is one of ``"velocity"`` (the drift ``b_t(x)``), ``"x1"`` (the data denoiser
    ``E[x1 | I_t = x]``), ``"noise"`` (``E[z | I_t = x]``) or ``"score"`` (``grad log rho_t(x)``); all four are
    available from any of them through the exact affine maps of :mod:`fastinterp.predictions`.

    The model is called as ``model(x, t)`` with ``x`` shaped ``(B, ...)`` and ``t`` a tensor with ``x``'s dtype and
    device: 0-d inside the samplers (one time for the whole batch), or whatever the caller passed (e.g. ``(B,)``).
    Its output must match ``x`` in shape, dtype and device.

    Args:
        model: the callable.
        schedule: the schedule the model was trained under (default :class:`~fastinterp.Linear`).
        prediction: what the model outputs.

    Example:
        >>> d = Drift(net, schedule=Linear(), prediction="velocity")
        >>> d_fast = d.transfer(LipschitzOptimal(1e-5))   # same network, another schedule
        >>> v = d_fast(x, t)                               # the target schedule's drift b_t(x)
    """

    def __init__(self, model: Model, schedule: Schedule | None = None, prediction: str = "velocity") -> None:
        if not callable(model):
            raise TypeError(f"model must be callable as model(x, t), got {type(model).__name__}")
        schedule = Linear() if schedule is None else schedule
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a fastinterp Schedule, got {type(schedule).__name__}")
        self.model = model
        self.schedule = schedule
        self.prediction = check_prediction(prediction)

    def predict(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The model's raw output at ``(x, t)``, checked for shape, dtype and device."""
        y = self.model(x, as_time_like(t, x))
        _check_output(y, x, self.model)
        return y

    def convert(self, x: Tensor, t: Tensor | float, outputs: Sequence[str]) -> list[Tensor]:
        """Several predictions at ``(x, t)`` from one model evaluation, e.g. ``["velocity", "score"]``."""
        t = as_time_like(t, x)
        y = self.predict(x, t)
        s = self.schedule(t)
        result = []
        for out in outputs:
            cx, cy = conversion_coefficients(self.prediction, out, s)
            result.append(_affine(cx, x, cy, y))
        return result

    def velocity(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The drift ``b_t(x) = alpha' z^ + beta' x1^`` of the probability-flow ODE, shaped like ``x``."""
        return self.convert(x, t, ("velocity",))[0]

    def x1(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The data denoiser ``x1^(t, x) = E[x1 | I_t = x]``, shaped like ``x``."""
        return self.convert(x, t, ("x1",))[0]

    def noise(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The noise denoiser ``z^(t, x) = E[z | I_t = x]``, shaped like ``x``."""
        return self.convert(x, t, ("noise",))[0]

    def score(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The score ``s_t(x) = grad log rho_t(x) = -z^ / alpha``, shaped like ``x``."""
        return self.convert(x, t, ("score",))[0]

    __call__ = velocity

    def transfer(self, schedule: Schedule) -> Drift:
        """This drift served under another schedule, without retraining (see :mod:`fastinterp.transfer`)."""
        from .transfer import transfer

        return transfer(self, schedule)

    def __repr__(self) -> str:
        return f"Drift({self.model!r}, schedule={self.schedule!r}, prediction={self.prediction!r})"


def _affine(cx: Tensor | float, x: Tensor, cy: Tensor | float, y: Tensor) -> Tensor:
    cx, cy = expand_like(cx, x), expand_like(cy, x)
    if isinstance(cx, float) and cx == 0.0:
        return y if isinstance(cy, float) and cy == 1.0 else cy * y
    return cx * x + cy * y


def _check_output(y: object, x: Tensor, model: object) -> None:
    if not isinstance(y, Tensor):
        raise TypeError(f"model {model!r} must return a tensor, got {type(y).__name__}")
    if y.shape != x.shape or y.dtype != x.dtype or y.device != x.device:
        raise ValueError(
            f"model output must match the state: expected shape {tuple(x.shape)}, dtype {x.dtype}, device "
            f"{x.device}; got shape {tuple(y.shape)}, dtype {y.dtype}, device {y.device}"
        )
