"""Exact conversions between the four things a model may predict: velocity, data, noise and score.

At fixed ``(t, x)`` under a schedule ``(alpha, beta)`` each prediction is a linear combination of the two
denoisers ``z^ = E[z | I_t = x]`` and ``x1^ = E[x1 | I_t = x]``, and so is the state itself:

    ===========  ======================  =============
    prediction   formula                 (u, w)
    ===========  ======================  =============
    velocity     alpha' z^ + beta' x1^   (alpha', beta')
    x1           x1^                     (0, 1)
    noise        z^                      (1, 0)
    score        -z^ / alpha             (-1/alpha, 0)
    state x      alpha z^ + beta x1^     (alpha, beta)
    ===========  ======================  =============

Given ``y = u1 z^ + w1 x1^`` and ``x``, any other prediction ``u2 z^ + w2 x1^`` equals ``cx x + cy y`` with

    det = u1 beta - w1 alpha,   cy = (u2 beta - w2 alpha) / det,   cx = (w2 u1 - u2 w1) / det.

These two scalars per (source, target, t) are what the fused kernels precompute.
"""

from __future__ import annotations

from torch import Tensor

from .schedules import ScheduleOutput

__all__ = ["PREDICTIONS", "check_prediction", "conversion_coefficients", "prediction_weights"]

#: The prediction types a model may have.
PREDICTIONS = ("velocity", "x1", "noise", "score")


def check_prediction(prediction: str) -> str:
    """Return ``prediction`` if it is one of :data:`PREDICTIONS`, else raise ``ValueError``."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    return prediction


def prediction_weights(prediction: str, s: ScheduleOutput) -> tuple[Tensor | float, Tensor | float]:
    """``(u, w)`` with ``prediction = u z^ + w x1^`` at the schedule values ``s`` (table above)."""
    if prediction == "velocity":
        return s.dalpha, s.dbeta
    if prediction == "x1":
        return 0.0, 1.0
    if prediction == "noise":
        return 1.0, 0.0
    if prediction == "score":
        return -1.0 / s.alpha, 0.0
    raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def conversion_coefficients(source: str, target: str, s: ScheduleOutput) -> tuple[Tensor | float, Tensor | float]:
    """Coefficients ``(cx, cy)`` with ``target = cx * x + cy * source`` at the schedule values ``s``.

    Args:
        source, target: prediction types from :data:`PREDICTIONS`.
        s: the schedule evaluated at the time of the prediction.

    Returns:
        Scalars or tensors shaped like the schedule's time; identity gives ``(0, 1)``.
    """
    check_prediction(source)
    check_prediction(target)
    if source == target:
        return 0.0, 1.0
    u1, w1 = prediction_weights(source, s)
    u2, w2 = prediction_weights(target, s)
    det = u1 * s.beta - w1 * s.alpha
    return (w2 * u1 - u2 * w1) / det, (u2 * s.beta - w2 * s.alpha) / det
