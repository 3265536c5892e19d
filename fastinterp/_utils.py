"""Small shared helpers (private)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def as_time_like(t: Tensor | float, x: Tensor) -> Tensor:
    """``t`` as a floating tensor on ``x``'s device (0-d for a Python float), in ``x``'s dtype but float32 at least:
    bfloat16 cannot tell ``t = 0.999`` from 1, where most drifts are singular."""
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    if isinstance(t, Tensor):
        if not t.is_floating_point():
            raise TypeError(f"t must be a floating-point tensor, got dtype {t.dtype}")
        return t.to(device=x.device, dtype=dtype)
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError(f"t must be a tensor or a float, got {type(t).__name__} {_short(t)}")
    if not 0.0 <= t <= 1.0:  # a tensor's values are not checked here: that would cost a host synchronisation
        raise ValueError(f"t must lie in [0, 1], got {t!r}")
    return torch.tensor(float(t), device=x.device, dtype=dtype)


def expand_like(c: Tensor | float, x: Tensor) -> Tensor | float:
    """Broadcast a per-time coefficient against a state ``x`` shaped ``(B, ...)``.

    A 0-d coefficient (one time for the whole batch) broadcasts as is; a ``(B,)`` coefficient (one time per
    sample) gets trailing singleton dimensions.
    """
    if not isinstance(c, Tensor) or c.ndim == 0:
        return c
    if c.ndim == 1 and x.ndim >= 1 and c.shape[0] == x.shape[0]:
        return c.reshape(c.shape[0], *([1] * (x.ndim - 1)))
    if c.shape == x.shape:
        return c
    raise ValueError(
        f"t must be a scalar or shaped (batch,) = ({x.shape[0] if x.ndim else ''},), "
        f"got shape {tuple(c.shape)} for a state shaped {tuple(x.shape)}"
    )


def check_state(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError(f"{name} must have a batch dimension, got a 0-d tensor")
    return x


def check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {_short(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_interval(t_min: object, t_max: object) -> tuple[float, float]:
    for name, v in (("t_min", t_min), ("t_max", t_max)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must be a float, got {type(v).__name__} {_short(v)}")
        if not math.isfinite(v) or not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {v}")
    if not t_min < t_max:
        raise ValueError(f"t_min must be < t_max, got t_min={t_min}, t_max={t_max}")
    return float(t_min), float(t_max)


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool: ``denoise="no"`` must not silently mean True."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {_short(value)}")
    return value


def check_schedule(name: str, value: object):
    """``value`` if it is a fastinterp Schedule instance; a class (``fi.Linear``) or a name gets a hint."""
    from .schedules import Schedule  # the schedules import nothing from here; deferred to keep this module light

    if isinstance(value, Schedule):
        return value
    if isinstance(value, type) and issubclass(value, Schedule):
        raise TypeError(f"{name} must be a Schedule instance, got the class {value.__name__}; pass {value.__name__}()")
    raise TypeError(
        f"{name} must be a fastinterp Schedule (e.g. fi.Linear()), got {type(value).__name__} {_short(value)}"
    )


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a whole tensor or array in a message helps nobody)."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def check_output(y: object, x: Tensor, model: object) -> Tensor:
    """``y`` if it is a tensor matching the model input ``x`` in shape, dtype and device, else a clear error."""
    if not isinstance(y, Tensor):
        raise TypeError(f"model {model!r} must return a tensor, got {type(y).__name__}")
    if y.shape != x.shape or y.dtype != x.dtype or y.device != x.device:
        raise ValueError(
            f"model output must match the state: expected shape {tuple(x.shape)}, dtype {x.dtype}, device "
            f"{x.device}; got shape {tuple(y.shape)}, dtype {y.dtype}, device {y.device}"
        )
    return y
