"""The transfer map: a drift trained under one schedule served under any other, with no retraining.

Both schedules interpolate the same pair ``(z, x1)``; they differ only in how fast the noise-to-signal ratio
``r = alpha / beta`` falls. For a target time ``t``, the source time ``t'`` with the same ratio satisfies
``alpha_s(t') / beta_s(t') = alpha(t) / beta(t)``, and then ``I_t = (beta(t) / beta_s(t')) I'_{t'}``. The denoisers
are therefore shared,

    x' = (beta_s(t') / beta(t)) x,     x1^(t, x) = x1^_s(t', x'),     z^(t, x) = z^_s(t', x'),

and every other prediction under the target schedule follows from :mod:`fastinterp.predictions`. For a
linear source this is Prop. 3.1 of the Lipschitz paper: ``t' = beta / (alpha + beta)``, ``x' = x / (alpha + beta)``,
``x1^ = x' + (1 - t') b_lin(x', t')``.

:func:`transfer_coefficients` is the one place the map is written: any target-schedule prediction at ``(t, x)`` is
``cx x + cy y`` with ``y = model(s x, t')`` the source model's raw output. :class:`TransferredModel`, the drift's
own evaluation (:meth:`fastinterp.Drift.convert`) and the samplers' coefficient tables all use it.

The scale is computed as ``alpha_s(t') / alpha(t)`` where ``alpha >= beta`` and ``beta_s(t') / beta(t)`` elsewhere
(equal by construction), so the map itself is regular on all of ``[0, 1]`` (scale 1 at both ends). What stays
singular is the target drift's own formula, ``b = (alpha'/alpha) x + ...`` at ``t = 1`` and the source's
conversion at ``t' = 0``: sample on ``[t_min, t_max]`` inside ``(0, 1)``.

``fi.transfer(drift, schedule)`` is ``drift.transfer(schedule)``; chains of transfers collapse to the original
source (one model evaluation, no extra rounding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._utils import check_output, expand_like
from .predictions import conversion_coefficients
from .schedules import Schedule

__all__ = ["TransferredModel", "invariant_prediction", "transfer", "transfer_coefficients", "transfer_time"]


def transfer_time(source: Schedule, target: Schedule, t: Tensor) -> tuple[Tensor, Tensor]:
    """Source time ``t'`` and input scale ``beta_s(t') / beta(t)`` matching ``target`` at times ``t``.

    Args:
        source: the schedule the model was trained under.
        target: the schedule to sample with.
        t: target times, any shape.

    Returns:
        ``(t', scale)`` shaped like ``t``.
    """
    s = target(t)
    tp = source.invert_ratio(s.alpha, s.beta)
    sp = source(tp)
    scale = torch.where(s.alpha >= s.beta, sp.alpha / s.alpha, sp.beta / s.beta)
    return tp, scale


def invariant_prediction(prediction: str) -> str:
    """The denoiser a transfer carries unchanged: ``z^`` for noise and score models, ``x1^`` otherwise."""
    return "noise" if prediction in ("noise", "score") else "x1"


def transfer_coefficients(
    source: Schedule, prediction: str, target: Schedule, t: Tensor, outputs: Sequence[str]
) -> tuple[Tensor, Tensor, list[tuple[Tensor, Tensor]]]:
    """The transfer map as coefficients: ``(t', s, [(cx, cy), ...])``, elementwise in ``t``.

    For each name in ``outputs`` (a prediction under ``target``), ``output(t, x) = cx x + cy y`` with
    ``y = model(s x, t')`` the raw output of a model trained under ``source`` to predict ``prediction``. The
    invariant denoiser (:func:`invariant_prediction`) is the bridge: it is converted from the source's prediction at
    ``t'`` and to each output at ``t``, both exact affine maps.

    Args:
        source, prediction: the model's training schedule and prediction type.
        target: the schedule to sample with.
        t: target times, any shape.
        outputs: prediction types under the target schedule.
    """
    tp, scale = transfer_time(source, target, t)
    native = invariant_prediction(prediction)
    nx, ny = conversion_coefficients(prediction, native, source(tp))  # native = nx x' + ny y at t'
    st = target(t)
    coefs = []
    for out in outputs:
        ox, on = conversion_coefficients(native, out, st)  # out = ox x + on native at t
        coefs.append((ox + on * nx * scale, on * ny))
    return tp, scale, coefs


class TransferredModel:
    """``model(x, t)`` returning a denoiser under ``target`` computed by a drift trained under another schedule.

    The output is ``x1^`` for velocity- and data-predicting sources and ``z^`` for noise- and score-predicting
    ones (:func:`invariant_prediction`): both are invariant under the transfer, so nothing is converted twice.
    Samplers never call it: they unfold it through :func:`transfer_coefficients` and call the source model.
    """

    def __init__(self, source, target: Schedule) -> None:
        self.source = source
        self.target = target
        self.prediction = invariant_prediction(source.prediction)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        src = self.source
        tp, scale, [(cx, cy)] = transfer_coefficients(src.schedule, src.prediction, self.target, t, (self.prediction,))
        xp = expand_like(scale, x) * x
        y = check_output(src.model(xp, tp), xp, src.model)
        return expand_like(cx, x) * x + expand_like(cy, x) * y

    def __repr__(self) -> str:
        return f"TransferredModel({self.source!r} -> {self.target!r})"


def transfer(drift, schedule: Schedule):
    """Serve ``drift`` under ``schedule`` (REFERENCE section 2): ``drift.transfer(schedule)``.

    Args:
        drift: a :class:`~fastinterp.Drift` trained under any schedule, with any prediction type.
        schedule: the target schedule.

    Returns:
        A :class:`~fastinterp.Drift` under ``schedule``; its ``velocity`` is the target schedule's drift.
    """
    method = getattr(drift, "transfer", None)
    if not callable(method) or not hasattr(drift, "schedule"):
        raise TypeError(f"drift must be a fastinterp Drift, got {type(drift).__name__}")
    return method(schedule)
