"""flow_matching (``facebookresearch/flow_matching``) models as fastinterp drifts.

flow_matching's affine path is ``x_t = sigma_t x_0 + alpha_t x_1`` with ``x_0`` the source noise, ``t = 0`` noise
and ``t = 1`` data: fastinterp's ``I_t = alpha_t z + beta_t x1`` with ``alpha = sigma_t`` and ``beta = alpha_t``, on
the same clock. :class:`FlowMatchingSchedule` is that schedule, evaluated by the scheduler itself (values and its
exact derivatives ``d_sigma_t``, ``d_alpha_t``); ``CondOTScheduler`` is exactly :class:`~fastinterp.Linear` and
``CosineScheduler`` exactly :class:`~fastinterp.Trig`, used as such. The model (a ``ModelWrapper``) is called as
flow_matching's own ``ODESolver`` calls it, ``model(x=x, t=t, **cond)`` with ``t`` a 0-d tensor inside the samplers,
and predicts the velocity ``d_sigma_t x_0^ + d_alpha_t x_1^`` (or, with ``prediction=``, ``x_1^`` or ``x_0^``).

The noise range is the band of ratios ``sigma_t / alpha_t`` the path covers on ``[0, 1]``: ``VPScheduler`` does
not reach pure noise (``sigma_0 / alpha_0 = 152`` for its defaults), so sampling starts there; the others cover
every level (no range).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..drift import Drift
from ..schedules import Linear, Schedule, ScheduleOutput, Trig

__all__ = ["FlowMatchingModel", "FlowMatchingSchedule", "from_flow_matching"]


class FlowMatchingSchedule(Schedule):
    """A flow_matching scheduler as a fastinterp schedule: ``alpha = sigma_t``, ``beta = alpha_t`` (and derivatives).

    The noise-to-signal ratio is inverted in closed form for convex schedulers (``kappa_inverse`` of
    ``kappa = beta / (alpha + beta)``, exact at both ends) and by the base class's bisection otherwise.
    """

    def __init__(self, scheduler: object) -> None:
        if not callable(scheduler):
            raise TypeError(f"scheduler must be a flow_matching Scheduler, got {type(scheduler).__name__}")
        self.scheduler = scheduler

    def evaluate(self, t: Tensor) -> ScheduleOutput:
        out = self.scheduler(t)
        return ScheduleOutput(out.sigma_t, out.alpha_t, out.d_sigma_t, out.d_alpha_t)

    def invert_ratio(self, alpha: Tensor, beta: Tensor) -> Tensor:
        kappa_inverse = getattr(self.scheduler, "kappa_inverse", None)
        if kappa_inverse is None:
            return super().invert_ratio(alpha, beta)
        alpha, beta = torch.broadcast_tensors(alpha, beta)
        return kappa_inverse(beta / (alpha + beta))

    def __repr__(self) -> str:
        return f"FlowMatchingSchedule({type(self.scheduler).__name__})"


class FlowMatchingModel:
    """``model(x, t, **cond)`` calling a flow_matching ``ModelWrapper`` by keyword, as its ``ODESolver`` does."""

    def __init__(self, model: object) -> None:
        self.model = model

    def __call__(self, x: Tensor, t: Tensor, **cond) -> Tensor:
        return self.model(x=x, t=t, **cond)

    def __repr__(self) -> str:
        return f"FlowMatchingModel({type(self.model).__name__})"


def _schedule(scheduler: object) -> Schedule:
    kind = type(scheduler)
    if kind.__module__.startswith("flow_matching.") and kind.__name__ == "CondOTScheduler":
        return Linear()
    if kind.__module__.startswith("flow_matching.") and kind.__name__ == "CosineScheduler":
        return Trig()
    return FlowMatchingSchedule(scheduler)


def _noise_range(schedule: Schedule) -> tuple[float, float] | None:
    """``(r(1), r(0))`` with ``r = alpha / beta`` evaluated in float64, or None when it is ``(0, inf)``."""
    s = schedule(torch.tensor([0.0, 1.0], dtype=torch.float64))
    alpha, beta = s.alpha.tolist(), s.beta.tolist()
    r = [a / b if b > 0 else math.inf for a, b in zip(alpha, beta, strict=True)]
    if not all(x >= 0 for x in r) or not r[1] < r[0]:
        raise ValueError(
            f"from_flow_matching: {schedule!r} must go from noise (t = 0) to data (t = 1): its noise-to-signal ratio "
            f"sigma_t / alpha_t is {r[0]!r} at t = 0 and {r[1]!r} at t = 1"
        )
    return None if (r[1] == 0.0 and r[0] == math.inf) else (r[1], r[0])


def from_flow_matching(model: object, scheduler: object, *, prediction: str = "velocity") -> Drift:
    """A flow_matching model and the scheduler of its path, as a :class:`~fastinterp.Drift`.

    Args:
        model: a ``flow_matching.utils.ModelWrapper`` (or any callable ``model(x=x, t=t, **extras)``).
        scheduler: any ``flow_matching.path.scheduler`` scheduler (``CondOTScheduler``, ``PolynomialConvexScheduler``,
            ``VPScheduler``, ``LinearVPScheduler``, ``CosineScheduler``, a custom ``Scheduler``), or a path carrying
            one (``AffineProbPath``, ``CondOTProbPath``).
        prediction: what the model predicts: ``"velocity"`` (the default, flow_matching's ``u_t``), ``"x1"`` (the
            target ``x_1``) or ``"noise"`` (the source sample ``x_0``, flow_matching's epsilon).

    Returns:
        A drift under the scheduler's schedule (module docstring), with a ``noise_range`` where the path does not
        cover every noise level.

    Example:
        >>> drift = from_flow_matching(wrapped, CondOTScheduler())
        >>> x = fi.sample(drift.transfer(fi.LipschitzOptimal(1e-3)), torch.randn(16, 2), steps=10)
    """
    if not callable(model):
        raise TypeError(f"from_flow_matching: model must be callable as model(x=x, t=t), got {type(model).__name__}")
    if not callable(scheduler) and hasattr(scheduler, "scheduler"):  # an AffineProbPath
        scheduler = scheduler.scheduler
    if not callable(scheduler):
        raise TypeError(
            f"from_flow_matching: scheduler must be a flow_matching Scheduler or a path with one, "
            f"got {type(scheduler).__name__}"
        )
    if prediction not in ("velocity", "x1", "noise"):
        raise ValueError(f"from_flow_matching: prediction must be 'velocity', 'x1' or 'noise', got {prediction!r}")
    schedule = _schedule(scheduler)
    return Drift(FlowMatchingModel(model), schedule, prediction, noise_range=_noise_range(schedule))
