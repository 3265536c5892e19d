"""Helpers shared by the PDE fronts (private)."""

from __future__ import annotations

import math


class DivergedError(RuntimeError):
    """A PDE run met non-finite values (an unstable time step); the message names the trajectory, the step and the
    cure. Raised by the C++ solvers (as ``fastinterp._core.DivergedError``, translated) and by the torch twins."""


def raise_if_diverged(x, *, what: str, first: int, step: int, dt: float, advice: str) -> None:
    """Raise :class:`DivergedError` naming the first trajectory of ``x`` (a torch batch, leading axis = trajectories,
    complex allowed) with a non-finite value; one host synchronisation. ``what``: e.g. ``"Navier-Stokes"``."""
    import torch

    bad = ~torch.isfinite(torch.view_as_real(x) if x.is_complex() else x).flatten(1).all(1)
    if bool(bad.any()):
        t = int(bad.nonzero()[0, 0])
        raise DivergedError(
            f"{what} trajectory {first + t} diverged (non-finite values) by step {step} at dt = {dt:g} "
            f"(torch backend): {advice}"
        )


def run_native(fn, *args, **kw):
    """Call a ``fastinterp._core`` solver, raising its divergence as :class:`DivergedError`."""
    from .. import _core

    try:
        return fn(*args, **kw)
    except _core.DivergedError as exc:
        raise DivergedError(str(exc)) from None


def steps_for(t: float, dt: float, name: str, minimum: int) -> int:
    """Number of steps of size ``dt`` in the time ``t``, which must be a non-negative multiple of ``dt``."""
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {t!r}")
    k = round(t / dt)
    if abs(k * dt - t) > 1e-9 * max(t, dt) or k < minimum:
        raise ValueError(f"{name} must be a multiple of dt={dt} (>= {minimum} steps), got {t!r}")
    return k
