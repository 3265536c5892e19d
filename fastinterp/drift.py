"""A model, the schedule it was trained under, and what it predicts: the object every sampler integrates."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

from torch import Tensor

from ._utils import as_time_like, check_output, check_schedule, expand_like
from .predictions import check_prediction, conversion_coefficients
from .schedules import Linear, Schedule
from .transfer import TransferredModel, transfer_coefficients

__all__ = ["Drift", "ModelCall", "NoiseRange", "check_drift", "check_noise_range"]

Model = Callable[..., Tensor]
#: How a sampler calls the raw model: ``call(model, x, t) -> y`` (conditioning, guidance, precision live there).
ModelCall = Callable[[Model, Tensor, Tensor], Tensor]
#: Trained band ``(r_min, r_max)`` of noise-to-signal ratios ``r = alpha / beta``, ``0 <= r_min < r_max <= inf``.
NoiseRange = tuple[float, float]


def check_noise_range(noise_range: object) -> NoiseRange | None:
    """``noise_range`` as a pair of floats ``(r_min, r_max)`` with ``0 <= r_min < r_max <= inf``, or None.

    Raises:
        TypeError: not None and not a pair of real numbers.
        ValueError: a NaN, a negative ``r_min``, or ``r_max <= r_min``.
    """
    if noise_range is None:
        return None
    if (
        not isinstance(noise_range, (tuple, list))
        or len(noise_range) != 2
        or any(isinstance(r, bool) or not isinstance(r, numbers.Real) for r in noise_range)
    ):
        raise TypeError(
            f"Drift noise_range must be None or a pair (r_min, r_max) of noise-to-signal ratios alpha/beta, "
            f"got {noise_range!r}"
        )
    r_min, r_max = float(noise_range[0]), float(noise_range[1])
    if math.isnan(r_min) or math.isnan(r_max) or not 0.0 <= r_min < r_max:
        raise ValueError(
            f"Drift noise_range must satisfy 0 <= r_min < r_max <= inf (r = alpha/beta), got ({r_min!r}, {r_max!r})"
        )
    return r_min, r_max


def _plain_call(model: Model, x: Tensor, t: Tensor) -> Tensor:
    return check_output(model(x, t), x, model)


class Drift:
    """A model ``model(x, t)`` trained under ``schedule`` to predict ``prediction``.

    ``prediction`` is one of ``"velocity"`` (the drift ``b_t(x)``), ``"x1"`` (the data denoiser
    ``E[x1 | I_t = x]``), ``"noise"`` (``E[z | I_t = x]``) or ``"score"`` (``grad log rho_t(x)``); all four are
    available from any of them through the exact affine maps of :mod:`fastinterp.predictions`.

    The model is called as ``model(x, t, **cond)`` with ``x`` shaped ``(B, ...)`` and ``t`` a tensor on ``x``'s
    device: 0-d inside the samplers (one time for the whole batch; ``x``'s dtype, float32 at least), or whatever the
    caller passed (e.g. ``(B,)``). ``cond`` holds the conditioning a sampler was given (none by default). Its
    output must match ``x`` in shape, dtype and device.

    Args:
        model: the callable.
        schedule: the schedule the model was trained under (default :class:`~fastinterp.Linear`).
        prediction: what the model outputs.
        noise_range: the band ``(r_min, r_max)`` of noise-to-signal ratios ``r = alpha / beta`` the model was
            trained on (``0 <= r_min < r_max <= inf``; ratios do not depend on the schedule, so transfers keep it),
            or None (any level). The samplers then start at the time of ``r_max`` from pure noise and end at the
            time of ``r_min`` (:func:`fastinterp.sample`).

    Attributes:
        noise_range: the validated ``(r_min, r_max)`` as floats, or None.

    Example:
        >>> d = Drift(net, schedule=Linear(), prediction="velocity")
        >>> d_fast = d.transfer(LipschitzOptimal(1e-5))   # same network, another schedule
        >>> v = d_fast(x, t)                               # the target schedule's drift b_t(x)
    """

    def __init__(
        self,
        model: Model,
        schedule: Schedule | None = None,
        prediction: str = "velocity",
        *,
        noise_range: tuple[float, float] | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable as model(x, t), got {type(model).__name__}")
        schedule = Linear() if schedule is None else check_schedule("schedule", schedule)
        self.model = model
        self.schedule = schedule
        self.prediction = check_prediction(prediction)
        self.noise_range = check_noise_range(noise_range)

    @property
    def source(self) -> Drift:
        """The drift whose model is actually evaluated: the original source of a (chain of) transfer(s), else self."""
        return self.model.source if isinstance(self.model, TransferredModel) else self

    def coefficients(
        self, t: Tensor, outputs: Sequence[str], *, check: bool = True
    ) -> tuple[Model, Tensor, Tensor | None, list[tuple[Tensor | float, Tensor | float]]]:
        """This drift unfolded: ``(model, t', s, [(cx, cy), ...])`` with ``output(t, x) = cx x + cy model(s x, t')``.

        ``model`` is the source's raw model (transfers unfolded), ``s`` is None without a transfer (``s = 1``,
        ``t' = t``). Every prediction of every output name is exact; the coefficients are shaped like ``t``.
        A transfer checks that its source represents the target's noise levels at ``t`` (``ValueError`` otherwise,
        :func:`fastinterp.transfer_time`); ``check=False`` skips that where the same times were checked before.
        """
        for out in outputs:
            check_prediction(out)
        if isinstance(self.model, TransferredModel):
            src = self.source
            tp, scale, coefs = transfer_coefficients(
                src.schedule, src.prediction, self.schedule, t, outputs, check=check
            )
            return src.model, tp, scale, coefs
        s = self.schedule(t)
        return self.model, t, None, [conversion_coefficients(self.prediction, out, s) for out in outputs]

    def predict(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The model's raw output at ``(x, t)``, checked for shape, dtype and device."""
        return _plain_call(self.model, x, as_time_like(t, x))

    def convert(
        self,
        x: Tensor,
        t: Tensor | float,
        outputs: Sequence[str],
        *,
        call: ModelCall | None = None,
        check: bool = True,
    ) -> list[Tensor]:
        """Several predictions at ``(x, t)`` from one model evaluation, e.g. ``["velocity", "score"]``.

        ``call(model, x', t')`` evaluates the raw model (default: ``model(x', t')``, checked); samplers pass one that
        adds conditioning and guidance and casts to the model's precision. ``check`` as in :meth:`coefficients`.
        """
        t = as_time_like(t, x)
        model, tp, scale, coefs = self.coefficients(t, outputs, check=check)
        xin = x if scale is None else expand_like(scale, x) * x
        y = (call or _plain_call)(model, xin, tp)
        return [_affine(cx, x, cy, y) for cx, cy in coefs]

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
        """This drift served under another schedule, without retraining (see :mod:`fastinterp.transfer`).

        Transferring an already transferred drift goes straight from the original source: chains of transfers
        cost one model evaluation and no extra rounding. The :attr:`noise_range` is kept: noise-to-signal ratios
        are what the transfer matches, so the trained band is the same set of ratios under every schedule.
        """
        check_schedule("schedule", schedule)
        model = TransferredModel(self.source, schedule)
        return Drift(model, schedule=schedule, prediction=model.prediction, noise_range=self.noise_range)

    def centred(self, mean: Tensor | float) -> Drift:
        """This drift for the centred data ``y = I_t - beta_t m`` (see :mod:`fastinterp.centring`).

        Its model is ``model(y + beta_t m, t) - w_t m`` (``w_t`` the prediction's weight on ``x1^``), same schedule,
        prediction and noise range; a transferred drift is centred at its source and transferred again.
        ``fi.sample(drift, z, mean=m)`` integrates it and adds ``beta_{t_max} m``.

        Args:
            mean: the data mean ``m``: a finite floating-point tensor broadcastable to the event shape (no batch
                dimension), on the states' device, or a number.
        """
        from .centring import centred  # imported on use: most drifts are never centred

        return centred(self, mean)

    def __repr__(self) -> str:
        band = "" if self.noise_range is None else f", noise_range={self.noise_range!r}"
        return f"Drift({self.model!r}, schedule={self.schedule!r}, prediction={self.prediction!r}{band})"


def check_drift(drift: object) -> Drift:
    """``drift`` if it is a :class:`Drift`, else a ``TypeError`` saying how to make one."""
    if not isinstance(drift, Drift):
        raise TypeError(
            f"drift must be a fastinterp Drift (wrap a model with fi.Drift(model, schedule, prediction)), "
            f"got {type(drift).__name__}"
        )
    return drift


def _affine(cx: Tensor | float, x: Tensor, cy: Tensor | float, y: Tensor) -> Tensor:
    cx, cy = expand_like(cx, x), expand_like(cy, x)
    if isinstance(cx, float) and cx == 0.0:
        return y if isinstance(cy, float) and cy == 1.0 else cy * y
    return cx * x + cy * y
