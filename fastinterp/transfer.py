"""The transfer map: a drift trained under one schedule served under any other, with no retraining.

Both schedules interpolate the same pair ``(z, x1)``; they differ only in how fast the noise-to-signal ratio
``r = alpha / beta`` falls. For a target time ``t``, the source time ``t'`` with the same ratio satisfies
``alpha_s(t') / beta_s(t') = alpha(t) / beta(t)``, and then ``I_t = (beta(t) / beta_s(t')) I'_{t'}``. The denoisers
are therefore shared,

    x' = (beta_s(t') / beta(t)) x,     x1^(t, x) = x1^_s(t', x'),     z^(t, x) = z^_s(t', x'),

and every other prediction under the target schedule follows from :mod:`fastinterp.predictions`. For a
linear source this is Prop. 3.1 of the Lipschitz paper: ``t' = beta / (alpha + beta)``, ``x' = x / (alpha + beta)``,
``x1^ = x' + (1 - t') b_lin(x', t')``.

The scale is computed as ``alpha_s(t') / alpha(t)`` where ``alpha >= beta`` and ``beta_s(t') / beta(t)`` elsewhere
(equal by construction), so the map itself is regular on all of ``[0, 1]`` (scale 1 at both ends). What stays
singular is the target drift's own formula, ``b = (alpha'/alpha) x + ...`` at ``t = 1`` and the source's
conversion at ``t' = 0``: sample on ``[t_min, t_max]`` inside ``(0, 1)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._utils import expand_like
from .drift import Drift, _affine, _check_output
from .predictions import conversion_coefficients
from .schedules import Schedule

__all__ = ["TransferredModel", "transfer", "transfer_time"]


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


class TransferredModel:
    """``model(x, t)`` returning a denoiser under ``target`` computed by a drift trained under another schedule.

    The output is ``x1^`` for velocity- and data-predicting sources and ``z^`` for noise- and score-predicting
    ones: both are invariant under the transfer, so no precision is lost converting back and forth.
    """

    def __init__(self, source: Drift, target: Schedule) -> None:
        self.source = source
        self.target = target
        self.prediction = "noise" if source.prediction in ("noise", "score") else "x1"

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        src = self.source
        tp, scale = transfer_time(src.schedule, self.target, t)
        xp = expand_like(scale, x) * x
        y = src.model(xp, tp)
        _check_output(y, xp, src.model)
        cx, cy = conversion_coefficients(src.prediction, self.prediction, src.schedule(tp))
        return _affine(cx, xp, cy, y)

    def __repr__(self) -> str:
        return f"TransferredModel({self.source!r} -> {self.target!r})"


def transfer(drift: Drift, schedule: Schedule) -> Drift:
    """Serve ``drift`` under ``schedule`` (REFERENCE section 2); see the module docstring for the formula.

    Transferring an already transferred drift goes straight from the original source: chains of transfers
    cost one model evaluation and no extra rounding.

    Args:
        drift: a drift trained under any schedule, with any prediction type.
        schedule: the target schedule.

    Returns:
        A :class:`~fastinterp.Drift` under ``schedule``; its ``velocity`` is the target schedule's drift.
    """
    if not isinstance(drift, Drift):
        raise TypeError(f"drift must be a fastinterp Drift, got {type(drift).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a fastinterp Schedule, got {type(schedule).__name__}")
    source = drift.model.source if isinstance(drift.model, TransferredModel) else drift
    model = TransferredModel(source, schedule)
    return Drift(model, schedule=schedule, prediction=model.prediction)
