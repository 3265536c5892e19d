"""Helpers shared by the PDE fronts (private)."""

from __future__ import annotations

from .spec import steps_for

__all__ = ["DivergedError", "raise_if_diverged", "run_native", "steps_for"]


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


def run_native(fn, *args, advice: str, **kw):
    """Call a ``fastinterp._core`` solver, raising its divergence (the engine states the fact: trajectory, step,
    dt) as :class:`DivergedError` with ``advice``, the cure, appended: the advice lives here, in Python, only."""
    from .. import _core

    try:
        return fn(*args, **kw)
    except _core.DivergedError as exc:
        raise DivergedError(f"{exc}: {advice}") from None
