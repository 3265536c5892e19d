"""Stochastic interpolants and the quadratic losses whose minimisers are the drift, denoisers and score.

The (two-sided) interpolant of the Stochastic Interpolants paper is

    x_t = alpha_t x0 + beta_t x1 + gamma_t z,    z ~ N(0, I) independent of (x0, x1),

with ``(alpha, beta)`` any :class:`~fastinterp.Schedule` and ``gamma`` one of :data:`GAMMAS` (or a callable). With
``gamma = 0`` and ``x0 ~ N(0, I)`` it is the one-sided interpolant ``I_t = alpha z + beta x1`` that the rest of
fastinterp samples from. Each loss below is a mean squared error whose minimiser over all functions is the
conditional expectation named in the table (the paper's ``E[|f|^2 - 2 target . f]`` forms differ from these by a
constant independent of the model):

=========  =====================================  ===================================================
prediction  regression target                      minimiser
=========  =====================================  ===================================================
velocity   ``dx_t/dt = a' x0 + b' x1 + g' z``      the drift ``b_t(x)``
x1         ``x1``                                   ``E[x1 | x_t = x]``
noise      ``x0`` (gamma = 0) or ``z``              ``E[x0 | x_t]`` (one-sided: the noise denoiser) or ``eta_z``
score      ``-x0 / alpha`` or ``-z / gamma``         the score ``grad log rho_t`` (weighted by alpha^2 / gamma^2)
=========  =====================================  ===================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._utils import check_interval, check_schedule, check_state, expand_like
from .predictions import check_prediction
from .schedules import Linear, Schedule

__all__ = ["GAMMAS", "T_MAX", "T_MIN", "Interpolant", "interpolant_loss"]

#: The default range of the loss's uniform times (:func:`interpolant_loss`; the noise and score targets are singular
#: at the ends).
T_MIN, T_MAX = 1e-3, 1 - 1e-3


def _gamma_sqrt2(t: Tensor) -> tuple[Tensor, Tensor]:
    g = torch.sqrt(2 * t * (1 - t))
    return g, (1 - 2 * t) / g


def _gamma_sqrt(t: Tensor) -> tuple[Tensor, Tensor]:
    g = torch.sqrt(t * (1 - t))
    return g, (1 - 2 * t) / (2 * g)


def _gamma_sin2(t: Tensor) -> tuple[Tensor, Tensor]:
    s, c = torch.sin(math.pi * t), torch.cos(math.pi * t)
    return s * s, 2 * math.pi * s * c


def _gamma_zero(t: Tensor) -> tuple[Tensor, Tensor]:
    z = torch.zeros_like(t)
    return z, z


#: Latent-noise amplitudes ``gamma(t)`` and their derivatives.
GAMMAS: dict[str, Callable[[Tensor], tuple[Tensor, Tensor]]] = {
    "zero": _gamma_zero,
    "sqrt(2t(1-t))": _gamma_sqrt2,
    "sqrt(t(1-t))": _gamma_sqrt,
    "sin^2(pi t)": _gamma_sin2,
}


class Interpolant:
    """``x_t = alpha_t x0 + beta_t x1 + gamma_t z`` (module docstring).

    Args:
        schedule: ``(alpha, beta)``; default :class:`~fastinterp.Linear`.
        gamma: a name from :data:`GAMMAS` or a callable ``t -> (gamma, dgamma)``; ``"zero"`` (default) with a
            Gaussian ``x0`` is the one-sided interpolant.
    """

    def __init__(self, schedule: Schedule | None = None, gamma: str | Callable = "zero") -> None:
        self.schedule = Linear() if schedule is None else check_schedule("schedule", schedule)
        if isinstance(gamma, str):
            if gamma not in GAMMAS:
                raise ValueError(f"gamma must be one of {sorted(GAMMAS)} or a callable, got {gamma!r}")
            self.gamma_name, self.gamma = gamma, GAMMAS[gamma]
        elif callable(gamma):
            self.gamma_name, self.gamma = getattr(gamma, "__name__", "custom"), gamma
        else:
            raise TypeError(f"gamma must be a name or a callable, got {type(gamma).__name__}")

    @property
    def one_sided(self) -> bool:
        return self.gamma_name == "zero"

    def __call__(self, t: Tensor, x0: Tensor, x1: Tensor, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(x_t, dx_t/dt)`` for per-sample times ``t`` shaped ``(B,)`` (or 0-d)."""
        s = self.schedule(t)
        g, dg = self.gamma(t)
        e = lambda c: expand_like(c, x1)  # noqa: E731
        xt = e(s.alpha) * x0 + e(s.beta) * x1
        dxt = e(s.dalpha) * x0 + e(s.dbeta) * x1
        if z is not None and not self.one_sided:
            xt = xt + e(g) * z
            dxt = dxt + e(dg) * z
        return xt, dxt

    def __repr__(self) -> str:
        return f"Interpolant({self.schedule!r}, gamma={self.gamma_name!r})"


def _check_like_x1(name: str, v: object, x1: Tensor, shape: tuple[int, ...]) -> None:
    """``v`` is a tensor shaped ``shape`` with ``x1``'s dtype and device."""
    if not isinstance(v, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor shaped {tuple(shape)}, got {type(v).__name__}")
    if v.shape != shape:
        raise ValueError(f"{name} must be shaped {tuple(shape)} (like x1), got {tuple(v.shape)}")
    if v.dtype != x1.dtype:
        raise TypeError(f"{name} must have x1's dtype {x1.dtype}, got {v.dtype}")
    if v.device != x1.device:
        raise ValueError(f"{name} must be on x1's device {x1.device}, got {v.device}")


def interpolant_loss(
    model: Callable[[Tensor, Tensor], Tensor],
    x1: Tensor,
    *,
    prediction: str = "velocity",
    interpolant: Interpolant | None = None,
    x0: Tensor | None = None,
    t: Tensor | None = None,
    t_min: float = T_MIN,
    t_max: float = T_MAX,
    antithetic: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Monte-Carlo estimate of the loss whose minimiser is ``prediction`` (module docstring), a 0-d tensor.

    Args:
        model: ``model(x_t, t)`` with ``t`` shaped ``(B,)``; output shaped like ``x1``.
        x1: data batch shaped ``(B, ...)``.
        prediction: ``velocity``, ``x1``, ``noise`` or ``score``.
        interpolant: default one-sided linear.
        x0: base samples (default ``N(0, I)``, the one-sided base).
        t: per-sample times shaped ``(B,)`` (default uniform on ``[t_min, t_max]``).
        t_min, t_max: range of the uniform times (the score and noise targets are singular at the ends).
        antithetic: evaluate at both ``x_t(+noise)`` and ``x_t(-noise)`` (noise: ``z`` if gamma > 0, else ``x0``)
            and average: lower variance for the same batch.
        generator: for ``x0``, ``z`` and ``t``.
    """
    check_prediction(prediction)
    x1 = check_state("x1", x1)
    if interpolant is not None and not isinstance(interpolant, Interpolant):
        raise TypeError(
            f"interpolant must be a fastinterp Interpolant (e.g. Interpolant(schedule)), got "
            f"{type(interpolant).__name__} {interpolant!r}"
        )
    interp = interpolant or Interpolant()
    t_min, t_max = check_interval(t_min, t_max)
    B = x1.shape[0]
    if x1.numel() == 0:
        raise ValueError(
            f"x1 must hold at least one sample (the loss is a mean over them), got shape {tuple(x1.shape)}"
        )
    if x0 is None:
        x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
    else:
        _check_like_x1("x0", x0, x1, x1.shape)
    if t is None:
        u = torch.rand(B, generator=generator, dtype=x1.dtype, device=x1.device)
        t = t_min + (t_max - t_min) * u
    else:
        _check_like_x1("t", t, x1, (B,))
        if not bool(((t >= 0) & (t <= 1)).all()):  # one host synchronisation, only for times the caller chose
            bad = t[~((t >= 0) & (t <= 1))]
            raise ValueError(f"t must lie in [0, 1], got {bad.numel()} value(s) outside, e.g. {float(bad[0])}")
    z = None if interp.one_sided else torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
    signs = (1.0, -1.0) if antithetic else (1.0,)
    total = x1.new_zeros(())
    for sign in signs:
        if interp.one_sided:
            xt, dxt = interp(t, sign * x0, x1)
            noise, scale = sign * x0, interp.schedule(t).alpha
        else:
            xt, dxt = interp(t, x0, x1, sign * z)
            noise, scale = sign * z, interp.gamma(t)[0]
        out = model(xt, t)
        if not isinstance(out, Tensor) or out.shape != x1.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"model output must be shaped like x1 {tuple(x1.shape)}, got {got}")
        if prediction == "velocity":
            err = out - dxt
        elif prediction == "x1":
            err = out - x1
        elif prediction == "noise":
            err = out - noise
        else:  # score, weighted by scale^2: E|scale s + noise|^2
            err = expand_like(scale, out) * out + noise
        total = total + (err.flatten(1) ** 2).sum(1).mean()
    return total / len(signs)
