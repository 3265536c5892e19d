"""Helpers shared by the PDE fronts (private)."""

from __future__ import annotations

import math


def steps_for(t: float, dt: float, name: str, minimum: int) -> int:
    """Number of steps of size ``dt`` in the time ``t``, which must be a non-negative multiple of ``dt``."""
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {t!r}")
    k = round(t / dt)
    if abs(k * dt - t) > 1e-9 * max(t, dt) or k < minimum:
        raise ValueError(f"{name} must be a multiple of dt={dt} (>= {minimum} steps), got {t!r}")
    return k
