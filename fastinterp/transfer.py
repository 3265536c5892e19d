"""The transfer map: a drift trained under one schedule served under any other, with no retraining.

Both schedules interpolate the same pair ``(z, x1)``; they differ only in how fast the noise-to-signal ratio
``r = alpha / beta`` falls. For a target time ``t``, the source time ``t'`` with the same ratio satisfies
``alpha_s(t') / beta_s(t') = alpha(t) / beta(t)``, and then ``I_t = (beta(t) / beta_s(t')) I'_{t'}``. The denoisers
are therefore shared,

    x' = s x,   s = beta_s(t') / beta(t),     x1^(t, x) = x1^_s(t', x'),     z^(t, x) = z^_s(t', x'),

and every other prediction under the target schedule follows. For a linear source this is Prop. 3.1 of the
Lipschitz paper: ``t' = beta / (alpha + beta)``, ``x' = x / (alpha + beta)``, ``x1^ = x' + (1 - t') b_lin(x', t')``.

**One conversion, no chain.** With the source's raw output ``y = u1 z^ + w1 x1^`` (weights of its prediction at
``t'``, :func:`fastinterp.predictions.prediction_weights`) and the source's own identity ``x' = a_s z^ + b_s x1^``,
a target prediction ``u2 z^ + w2 x1^`` (weights at ``t``) is

    out = cx x + cy y,   D = a_s w1 - b_s u1,   cx = s (u2 w1 - w2 u1) / D,   cy = (w2 a_s - u2 b_s) / D,

(:func:`transfer_coefficients`), one affine map from the source's prediction straight to the target's. Since
``a' <= 0 <= b'`` for every schedule, ``D`` and ``cy`` are sums of terms of one sign; the only difference is
``u2 w1 - w2 u1 = a' b_s' - b' a_s'`` (velocity to velocity), which is ``-(d log s / dt) D / s`` and genuinely
vanishes where ``s`` is stationary. Chaining two conversions through a denoiser instead (the textbook
``b = (a'/a) x + (b' - a' b / a) x1^``) divides by ``alpha`` and cancels near ``t = 1``.

**Representability.** The source is evaluated at the float64 time ``t'`` nearest the exact one, whose ratio differs
from the target's by the relative *mismatch* ``|r_s(t') / r(t) - 1|`` (:func:`ratio_mismatch`): about
``eps |d log r_s / dt'|``, tiny for most pairs, but ``O(1)`` where the source reaches the ratio only at a time
float64 cannot represent (``MixtureOptimal(20)`` reaches ``r < 3`` only for ``1 - t' < 1e-16``, and its mismatch
passes ``1e-6`` below ``r = 3.7``). The transferred
denoisers then belong to another noise level: the error of the transfer is about the mismatch. :func:`transfer_time`
and :func:`transfer_coefficients` raise ``ValueError`` where it exceeds :data:`RATIO_RTOL` (``1e-6``), naming the
source, the target time and the ratio. Between ``1e-16`` and ``1e-6`` the mismatch is the accuracy floor of that
transfer in float64 (``Linear`` to ``LipschitzOptimal(1.96e-12)``: ``2e-10`` at ``t = 0.99`` and ``1 - 1e-4``,
``1e-8`` at ``1 - 1e-6``). The check runs in float64 whatever the dtype of ``t`` (float32 times cannot resolve the ratio
better than ``6e-8 / (1 - t')`` anyway, for the model too). On CPU times (the samplers' float64 tables) it costs a
few elementwise operations; on a GPU it is one host synchronisation per call (direct calls and the eager backend);
under ``torch.compile`` tracing it is skipped. The fast backends never call it in their loops: they read the
tables, checked when they are built.

The scale is computed as ``alpha_s(t') / alpha(t)`` where ``alpha >= beta`` and ``beta_s(t') / beta(t)`` elsewhere
(equal by construction), so the map itself is regular on all of ``[0, 1]`` (scale 1 at both ends). What stays
singular is the target drift's own formula at ``t = 1`` for variance-preserving schedules and the source's
conversions at ``t' = 0``: sample on ``[t_min, t_max]`` inside ``(0, 1)``.

``fi.transfer(drift, schedule)`` is ``drift.transfer(schedule)``; chains of transfers collapse to the original
source (one model evaluation, no extra rounding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._utils import check_output, expand_like
from .predictions import check_prediction, prediction_weights
from .schedules import Schedule, ScheduleOutput

__all__ = [
    "RATIO_RTOL",
    "TransferredModel",
    "invariant_prediction",
    "ratio_mismatch",
    "transfer",
    "transfer_coefficients",
    "transfer_time",
]

#: Largest relative noise-to-signal mismatch ``|r_s(t') / r(t) - 1|`` a transfer accepts (float64, see the module).
RATIO_RTOL = 1e-6


def _match(source: Schedule, target: Schedule, t: Tensor) -> tuple[ScheduleOutput, Tensor, ScheduleOutput, Tensor]:
    """``(target(t), t', source(t'), s)``."""
    st = target(t)
    tp = source.invert_ratio(st.alpha, st.beta)
    sp = source(tp)
    scale = torch.where(st.alpha >= st.beta, sp.alpha / st.alpha, sp.beta / st.beta)
    return st, tp, sp, scale


def _mismatch(st: ScheduleOutput, sp: ScheduleOutput) -> tuple[Tensor, Tensor]:
    """``|a_s b - a b_s|`` and ``a b_s``: their quotient is ``|r_s / r - 1|`` (0 / 0 at the exact ends)."""
    return (sp.alpha * st.beta - st.alpha * sp.beta).abs(), st.alpha * sp.beta


def ratio_mismatch(source: Schedule, target: Schedule, t: Tensor) -> Tensor:
    """Relative mismatch ``|r_s(t') / r(t) - 1|`` of the noise-to-signal ratios a transfer matches, shaped like ``t``.

    ``t'`` is the source time :func:`transfer_time` computes, in the dtype of ``t``; the mismatch is 0 at the ends
    ``t = 0`` and ``t = 1`` and ``inf`` where the target's ratio is 0 but the source's is not.
    """
    st, _, sp, _ = _match(source, target, t)
    num, den = _mismatch(st, sp)
    return torch.where(num == 0, torch.zeros_like(num), num / den)


def _checked_match(
    source: Schedule, target: Schedule, t: Tensor, check: bool = True
) -> tuple[ScheduleOutput, Tensor, ScheduleOutput, Tensor]:
    """:func:`_match`, after checking in float64 that ``source`` represents ``target``'s ratios (module docstring)."""
    match = _match(source, target, t)
    if not check or torch.compiler.is_compiling():
        return match
    t64 = t.detach()
    if t.dtype == torch.float64:
        st, tp, sp, _ = match
    else:
        t64 = t64.to(torch.float64)
        st, tp, sp, _ = _match(source, target, t64)
    num, den = _mismatch(st, sp)
    # False at the exact ends (0 > 0) and for NaN (a NaN time is not this check's business); True where r = 0 < r_s
    bad = num > RATIO_RTOL * den
    if bool(bad.any()):
        _raise_unrepresentable(source, target, t64, st, tp, sp, bad)
    return match


def _raise_unrepresentable(
    source: Schedule, target: Schedule, t: Tensor, st: ScheduleOutput, tp: Tensor, sp: ScheduleOutput, bad: Tensor
) -> None:
    i = int(torch.nonzero(bad.flatten())[0])
    a, b, a_s, b_s = (float(v.detach().flatten()[i]) for v in (st.alpha, st.beta, sp.alpha, sp.beta))
    ratio, ratio_s = a / b, (a_s / b_s if b_s else float("inf"))
    mismatch = abs(ratio_s / ratio - 1) if ratio else float("inf")
    raise ValueError(
        f"transfer from {source!r} to {target!r}: the source schedule cannot represent the target's noise-to-signal "
        f"ratio alpha/beta = {ratio:.6g} at t = {float(t.flatten()[i]):.17g} in float64: its nearest time "
        f"t' = {float(tp.flatten()[i]):.17g} has ratio {ratio_s:.6g} (relative mismatch {mismatch:.3g} > "
        f"{RATIO_RTOL:g}; {int(bad.sum())} of {bad.numel()} times fail). Sample on a shorter [t_min, t_max] or "
        "transfer from a schedule that reaches these ratios at representable times"
    )


def transfer_time(source: Schedule, target: Schedule, t: Tensor, *, check: bool = True) -> tuple[Tensor, Tensor]:
    """Source time ``t'`` and input scale ``beta_s(t') / beta(t)`` matching ``target`` at times ``t``.

    Args:
        source: the schedule the model was trained under.
        target: the schedule to sample with.
        t: target times, any shape.
        check: check representability (below); False skips it where the same times were checked already.

    Returns:
        ``(t', scale)`` shaped like ``t``.

    Raises:
        ValueError: where ``source`` cannot represent the target's noise-to-signal ratio in float64 (relative
            mismatch above :data:`RATIO_RTOL`; the check is skipped under ``torch.compile`` tracing).
    """
    _, tp, _, scale = _checked_match(source, target, t, check)
    return tp, scale


def invariant_prediction(prediction: str) -> str:
    """The denoiser a transfer carries unchanged: ``z^`` for noise and score models, ``x1^`` otherwise."""
    return "noise" if prediction in ("noise", "score") else "x1"


def transfer_coefficients(
    source: Schedule, prediction: str, target: Schedule, t: Tensor, outputs: Sequence[str], *, check: bool = True
) -> tuple[Tensor, Tensor, list[tuple[Tensor | float, Tensor | float]]]:
    """The transfer map as coefficients: ``(t', s, [(cx, cy), ...])``, elementwise in ``t``.

    For each name in ``outputs`` (a prediction under ``target``), ``output(t, x) = cx x + cy y`` with
    ``y = model(s x, t')`` the raw output of a model trained under ``source`` to predict ``prediction``, by the one
    direct conversion of the module docstring (``x1 -> x1`` and ``noise -> noise`` are the identity).

    Args:
        source, prediction: the model's training schedule and prediction type.
        target: the schedule to sample with.
        t: target times, any shape.
        outputs: prediction types under the target schedule.
        check: as in :func:`transfer_time`.

    Raises:
        ValueError: as :func:`transfer_time`.
    """
    check_prediction(prediction)
    for out in outputs:
        check_prediction(out)
    st, tp, sp, scale = _checked_match(source, target, t, check)
    u1, w1 = prediction_weights(prediction, sp)
    det = sp.alpha * w1 - sp.beta * u1  # y = u1 z^ + w1 x1^ and x' = a_s z^ + b_s x1^
    coefs = []
    for out in outputs:
        if out == prediction and out in ("x1", "noise"):  # carried unchanged, also at the ends where det = 0
            coefs.append((0.0, 1.0))
            continue
        u2, w2 = prediction_weights(out, st)
        coefs.append((scale * (u2 * w1 - w2 * u1) / det, (w2 * sp.alpha - u2 * sp.beta) / det))
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
