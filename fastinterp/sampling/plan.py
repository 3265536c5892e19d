"""The sampling plan: everything a run needs, validated once, in float64, and frozen.

:func:`make_plan` is the one place where a sampler's options are checked: the drift, the solver, the time grid
(built or validated once, kept in float64 on the CPU), the SDE diffusion on that grid and the denoising flag. Every
backend reads the same :class:`Plan`; none re-validates or re-derives anything.

For a drift (unfolded through any chain of transfers: :meth:`fastinterp.Drift.coefficients`), a solver and a time
grid, a run evaluates the raw model ``steps x stages`` times. At each evaluation

    x' = s x,    y = model(x', t'),    k = A x + B y    (the target schedule's drift at the stage input x)

where ``t'`` and ``s`` come from the transfer map (``t' = t``, ``s = 1`` without one) and ``(A, B)`` fold the
source's prediction-to-denoiser conversion at ``t'`` and the target's denoiser-to-velocity conversion at ``t``.
:class:`CoefficientTable` holds those scalars for the whole run; :mod:`fastinterp.sampling.layout` turns them
into the matrices of the fused updates.

**Trained noise ranges.** A drift with a ``noise_range = (r_min, r_max)`` (noise-to-signal ratios ``alpha / beta``
its model was trained on) sets the defaults of the ends: ``t_min`` is the time the sampler's schedule reaches
``r_max`` and ``t_max`` the time it reaches ``r_min`` (1e-3 and 1 - 1e-3 where ``r_max = inf`` or ``r_min = 0``);
explicit ends outside the band raise (:func:`trained_interval`). Its default start is ``"noise"``: the sampler is
given pure noise ``z`` and starts from ``alpha(t_min) z``, the noise part of ``I_{t_min} = alpha z + beta x1`` (what
diffusers' ``init_noise_sigma`` and DDPM samplers do); the missing ``beta(t_min) x1`` is the price of not knowing
the data, an error that vanishes as ``r_max`` grows. ``start="state"`` (the default without a band) takes the given
tensor as the state at ``t_min`` itself.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from .._utils import check_bool, check_int, check_interval
from ..drift import Drift, NoiseRange, check_drift
from ..schedules import Schedule
from ..solvers import ExplicitRK, get_solver
from .layout import DENOISE_LAYOUT, SDE_LAYOUT, StageLayout, guided, sde_matrices, stage_matrices

__all__ = [
    "CoefficientTable",
    "DeviceTables",
    "Plan",
    "accumulation_dtype",
    "build_table",
    "make_plan",
    "nfe",
    "ratio_time",
    "time_grid",
    "trained_interval",
]

#: Default ends of the time grid without a trained noise range (the drift is singular at 0 and 1).
T_MIN, T_MAX = 1e-3, 1 - 1e-3
#: Relative tolerance on the noise-to-signal ratio of an explicit end against the trained range.
RANGE_RTOL = 1e-9
#: What a sampler's input tensor is: pure noise ``z`` (the run starts from ``alpha(t_min) z``) or the state itself.
STARTS = ("noise", "state")

Diffusion = float | str | Callable[[Tensor], Tensor | float]


def time_grid(steps: int, t_min: float = T_MIN, t_max: float = T_MAX, *, device=None, dtype=None) -> Tensor:
    """Uniform grid of ``steps + 1`` times from ``t_min`` to ``t_max`` (computed in float64, then cast)."""
    return _uniform_grid(steps, t_min, t_max).to(device=device, dtype=dtype or torch.get_default_dtype())


def nfe(steps: int, method: str | ExplicitRK = "rk4", *, denoise: bool = False) -> int:
    """Model evaluations of a run with these options: ``steps * stages + denoise``."""
    return check_int("steps", steps, 1) * get_solver(method).stages + int(bool(denoise))


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a run keeps its state in: float64 for float64 states, float32 otherwise (bf16 and fp16 models
    integrate in float32; only the model's input and output are in its own precision)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _uniform_grid(steps: int, t_min: float, t_max: float) -> Tensor:
    check_int("steps", steps, 1)
    t_min, t_max = check_interval(t_min, t_max)
    return torch.linspace(t_min, t_max, steps + 1, dtype=torch.float64)


def ratio_time(schedule: Schedule, r: float) -> float:
    """The time (float64) at which ``schedule`` has noise-to-signal ratio ``alpha / beta = r``, ``0 <= r <= inf``.

    ``r`` is passed to :meth:`~fastinterp.Schedule.invert_ratio` as the unit pair ``(r, 1) / hypot(r, 1)`` (no
    overflow in ``alpha^2 + beta^2`` for large ``r``; ``r = inf`` is ``(1, 0)``, time 0; ``r = 0`` is time 1).
    """
    if r == math.inf:
        alpha, beta = 1.0, 0.0
    else:
        norm = math.hypot(r, 1.0)
        alpha, beta = r / norm, 1.0 / norm
    f64 = torch.float64
    return float(schedule.invert_ratio(torch.tensor(alpha, dtype=f64), torch.tensor(beta, dtype=f64)))


def _ratio(schedule: Schedule, t: float) -> float:
    out = schedule(torch.tensor(t, dtype=torch.float64))
    alpha, beta = float(out.alpha), float(out.beta)
    return alpha / beta if beta > 0 else math.inf


def trained_interval(
    schedule: Schedule,
    noise_range: NoiseRange | None,
    t_min: float | None,
    t_max: float | None,
    *,
    names: tuple[str, str] = ("t_min", "t_max"),
) -> tuple[float | None, float | None]:
    """The ends ``(t_min, t_max)`` of a run under ``schedule`` for a drift trained on ``noise_range``.

    A None end becomes the time of ``r_max`` (``t_min``) or of ``r_min`` (``t_max``) under ``schedule``
    (:func:`ratio_time`; the defaults 1e-3 / 1 - 1e-3 where ``r_max = inf`` / ``r_min = 0``, or without a range). A
    given end is returned unchanged after checking, in float64, that its ratio lies in the range (relative
    tolerance :data:`RANGE_RTOL`, or 4 ulps of the end's time); a non-float end is returned as it is, for
    :func:`check_interval` to report.
    ``names`` are the ends' names in the error (an explicit grid's are ``time_grid[0]`` and ``time_grid[-1]``).

    Raises:
        ValueError: an end outside the range, naming the schedule, the time, its ratio and the range.
    """
    if noise_range is None:
        return (T_MIN if t_min is None else t_min), (T_MAX if t_max is None else t_max)
    r_min, r_max = noise_range
    if t_min is None:
        t_min = T_MIN if r_max == math.inf else ratio_time(schedule, r_max)
    elif r_max < math.inf:
        _check_end(schedule, noise_range, names[0], t_min, noisiest=True)
    if t_max is None:
        t_max = T_MAX if r_min == 0.0 else ratio_time(schedule, r_min)
    elif r_min > 0.0:
        _check_end(schedule, noise_range, names[1], t_max, noisiest=False)
    return t_min, t_max


def _check_end(schedule: Schedule, noise_range: NoiseRange, name: str, t: object, *, noisiest: bool) -> None:
    """Raise unless the ratio at ``t`` is at most ``r_max`` (``noisiest``) or at least ``r_min`` (else).

    Accepted within :data:`RANGE_RTOL` of the ratio, or within 4 ulps of the end's own time (:func:`ratio_time`):
    where the ratio changes fast (``LipschitzOptimal(40)`` at ``r = 1e-4``, ``1 - t = 3e-9``) the float64 time
    nearest the end already misses its ratio by more than ``RANGE_RTOL``, and passing the default back must work.
    """
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
        return  # not a time: check_interval reports it
    t = float(t)
    r_min, r_max = noise_range
    r = _ratio(schedule, t)
    if r <= r_max * (1 + RANGE_RTOL) if noisiest else r >= r_min * (1 - RANGE_RTOL):
        return
    t_end = ratio_time(schedule, r_max if noisiest else r_min)
    slack = 4 * math.ulp(t_end)
    if t >= t_end - slack if noisiest else t <= t_end + slack:
        return
    side, end, rel = ("noisier than r_max", "starts", "after") if noisiest else ("cleaner than r_min", "ends", "before")
    fix = "pass a time_grid inside it" if name.startswith("time_grid") else f"leave {name} unset (default: that time)"
    raise ValueError(
        f"{name} = {t!r} under {schedule!r} has noise-to-signal ratio alpha/beta = {r:.6g}, {side} of the drift's "
        f"trained noise_range {noise_range!r} (which {end} at t = {t_end!r} under this schedule): the model never "
        f"saw that level; {fix} or pass a {name} {rel} it"
    )


def _explicit_grid(grid: object) -> Tensor:
    if not isinstance(grid, Tensor) or not grid.is_floating_point():
        got = f"dtype {grid.dtype}" if isinstance(grid, Tensor) else type(grid).__name__
        raise TypeError(f"time_grid must be a 1-D floating-point tensor of at least 2 times, got {got}")
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError(f"time_grid must be 1-D with at least 2 times, got shape {tuple(grid.shape)}")
    g = grid.detach().to(device="cpu", dtype=torch.float64)
    if not (torch.isfinite(g).all() and (g[1:] > g[:-1]).all() and g[0] >= 0 and g[-1] <= 1):
        raise ValueError(f"time_grid must increase strictly inside [0, 1], got {g.tolist()}")
    return g


@dataclass(frozen=True)
class CoefficientTable:
    """Per-evaluation scalars of one sampling run (float64, CPU).

    Attributes:
        model: the raw model called in the loop (the transfer's source model when there is one).
        solver: the RK tableau.
        grid: the ``steps + 1`` target times.
        t: target stage times, ``(steps, stages)``.
        t_model: times passed to the model, ``(steps, stages)``.
        scale: model input scales ``s``, ``(steps, stages)``.
        A, B: ``k = A x + B y`` per stage, ``(steps, stages)``.
        denoise: ``(t_model, scale, A, B)`` of the final denoising evaluation at ``t_max`` (``x1 = A x + B y``).
    """

    model: object
    solver: ExplicitRK
    grid: Tensor
    t: Tensor
    t_model: Tensor
    scale: Tensor
    A: Tensor
    B: Tensor
    denoise: tuple[Tensor, Tensor, Tensor, Tensor]

    @property
    def steps(self) -> int:
        return self.t.shape[0]


def _evaluation(drift: Drift, t: Tensor, output: str) -> tuple[object, Tensor, Tensor, Tensor, Tensor]:
    """``(model, t', s, A, B)`` with ``output(x, t) = A x + B model(s x, t')``, all shaped like ``t``."""
    model, tp, scale, [(cx, cy)] = drift.coefficients(t, (output,))
    full = torch.zeros_like(t)
    return model, tp + full, (1.0 if scale is None else scale) + full, cx + full, cy + full


def build_table(drift: Drift, method: str | ExplicitRK, grid: Tensor) -> CoefficientTable:
    """The :class:`CoefficientTable` of ``drift`` sampled with ``method`` on the time ``grid``.

    Args:
        drift: any drift; a transferred drift is unfolded so the loop calls the source model directly.
        method: solver name or tableau.
        grid: increasing times, ``steps + 1`` of them (validated like :func:`fastinterp.sample`'s ``time_grid``).
    """
    solver = get_solver(method)
    g = _explicit_grid(grid)
    h = (g[1:] - g[:-1]).unsqueeze(1)
    t = g[:-1].unsqueeze(1) + torch.tensor(solver.c, dtype=torch.float64) * h
    model, t_model, scale, A, B = _evaluation(drift, t, "velocity")
    _, dt_model, dscale, dA, dB = _evaluation(drift, g[-1:], "x1")
    return CoefficientTable(model, solver, g, t, t_model, scale, A, B, (dt_model[0], dscale[0], dA[0], dB[0]))


class DeviceTables:
    """A plan's tables on one device, for states of one dtype.

    Attributes:
        layout: the stage layout of the updates (:mod:`.layout`).
        M: the updates' matrices, ``(steps, stages, outputs, inputs)``, float64 (the kernels cast them).
        t_model: the model's times, ``(steps, stages)``, in the accumulation dtype (float32 at least).
        first_scale: model-input scale of the first evaluation (``first_scale_t``: as a 0-d float64 tensor).
        denoise_t: the model's time of the final denoising evaluation.
        denoise_coef: ``(1, 1, 2)``: ``x1 = c0 xin + c1 y`` (:data:`.layout.DENOISE_LAYOUT`).
    """

    def __init__(self, plan: Plan, device: torch.device, dtype: torch.dtype) -> None:
        t = plan.table
        time_dtype = accumulation_dtype(dtype)
        d_t, d_s, d_A, d_B = t.denoise
        self.layout = plan.layout
        self.M = plan.matrices.to(device)
        self.t_model = t.t_model.to(device=device, dtype=time_dtype)
        self.first_scale = float(t.scale[0, 0])
        self.first_scale_t = t.scale[0, 0].to(device)  # the same, as a graph input
        self.denoise_t = d_t.to(device=device, dtype=time_dtype)
        self.denoise_coef = torch.stack([d_A / d_s, d_B]).reshape(1, 1, 2).to(device)

    @cached_property
    def _guided(self) -> tuple[StageLayout, StageLayout, Tensor, Tensor, Tensor, Tensor]:
        layout, base, delta = guided(self.layout, self.M)
        dlayout, dbase, ddelta = guided(DENOISE_LAYOUT, self.denoise_coef)
        return layout, dlayout, base, delta, dbase, ddelta

    def guided(self, w: float) -> tuple[StageLayout, StageLayout, Tensor, Tensor]:
        """``(layout, denoise_layout, M, denoise_coef)`` of guidance weight ``w`` (:func:`.layout.guided`)."""
        layout, dlayout, base, delta, dbase, ddelta = self._guided
        return layout, dlayout, torch.add(base, delta, alpha=w), torch.add(dbase, ddelta, alpha=w)


@dataclass(frozen=True, eq=False)
class Plan:
    """A validated sampling run: drift, solver, float64 grid, diffusion, ends. Build it with :func:`make_plan`.

    Attributes:
        drift: the drift as given (transfers are unfolded in :attr:`table`).
        solver: the tableau (``euler`` for an SDE).
        grid: ``steps + 1`` times, float64, CPU.
        denoise: finish with ``E[x1 | x_{t_max}]``.
        check_finite: raise ``FloatingPointError`` on a non-finite result.
        eps: the SDE diffusion at each step's start time, ``(steps,)`` float64, or None for the ODE.
        start: ``"noise"`` (the input is pure noise ``z``, the run starts from ``start_scale z``) or ``"state"``
            (the input is the state at ``t_min``).
        start_scale: ``alpha(t_min)`` of the drift's schedule (float64) for ``"noise"``, 1.0 for ``"state"``.
    """

    drift: Drift
    solver: ExplicitRK
    grid: Tensor
    denoise: bool
    check_finite: bool
    eps: Tensor | None
    start: str = "state"
    start_scale: float = 1.0

    @property
    def steps(self) -> int:
        return self.grid.numel() - 1

    @property
    def sde(self) -> bool:
        return self.eps is not None

    @property
    def nfe(self) -> int:
        """Model evaluations per run."""
        return self.steps * self.solver.stages + int(self.denoise)

    @cached_property
    def table(self) -> CoefficientTable:
        return build_table(self.drift, self.solver, self.grid)

    @cached_property
    def layout(self) -> StageLayout:
        return SDE_LAYOUT if self.sde else StageLayout.for_solver(self.solver)

    @cached_property
    def matrices(self) -> Tensor:
        """Every fused update's combination matrix, ``(steps, stages, max_outputs, max_inputs)``, float64."""
        if self.sde:
            _, _, _, As, Bs = _evaluation(self.drift, self.table.t, "score")
            return sde_matrices(self.table, As[:, 0], Bs[:, 0], self.eps)
        return stage_matrices(self.table, self.layout)

    def describe(self) -> str:
        kind = "Euler-Maruyama" if self.sde else self.solver.name
        return f"{kind}, {self.steps} steps ({self.nfe} NFE) on [{float(self.grid[0]):.3g}, {float(self.grid[-1]):.3g}]"


def _diffusion(eps: Diffusion, drift: Drift, times: Tensor) -> Tensor:
    if isinstance(eps, str):
        if eps != "optimal":
            raise ValueError(f"eps must be a float >= 0, a callable of t or 'optimal', got {eps!r}")
        fn = drift.schedule.optimal_diffusion
    elif callable(eps):
        fn = eps
    elif isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < math.inf:
        raise ValueError(f"eps must be a finite float >= 0, a callable of t or 'optimal', got {eps!r}")
    else:
        return torch.full_like(times, float(eps))
    values = []
    for t in times:
        v = fn(t)
        if (
            isinstance(v, bool)
            or not isinstance(v, (numbers.Real, Tensor))
            or (isinstance(v, Tensor) and v.numel() != 1)
        ):
            got = f"shape {tuple(v.shape)}" if isinstance(v, Tensor) else f"{type(v).__name__} {v!r}"
            raise ValueError(
                f"eps(t) must return one number (a float or a 1-element tensor), got {got} at t = {float(t)}"
            )
        values.append(torch.as_tensor(v, dtype=torch.float64).reshape(()).cpu())
    e = torch.stack(values)
    if not (torch.isfinite(e).all() and (e >= 0).all()):
        raise ValueError(f"eps must be finite and >= 0 on the grid, got {e.tolist()}")
    return e


def make_plan(
    drift: Drift,
    *,
    steps: int = 10,
    method: str | ExplicitRK | None = None,
    t_min: float | None = None,
    t_max: float | None = None,
    time_grid: Tensor | None = None,
    denoise: bool = False,
    check_finite: bool = True,
    eps: Diffusion | None = None,
    start: str | None = None,
) -> Plan:
    """Validate a sampler's options once and freeze them into a :class:`Plan` (arguments as :class:`Sampler`).

    ``t_min`` / ``t_max`` default to 1e-3 / 1 - 1e-3, or to the times of the drift's trained noise range
    (:func:`trained_interval`); ``start`` defaults to ``"noise"`` for a drift with a ``noise_range`` and to
    ``"state"`` otherwise (module docstring).
    """
    drift = check_drift(drift)
    if eps is not None and method not in (None, "euler"):
        raise ValueError(
            f"with eps set the sampler runs Euler-Maruyama: method must be None or 'euler', got {method!r}"
        )
    if start is None:
        start = "state" if drift.noise_range is None else "noise"
    elif start not in STARTS:
        raise ValueError(f"start must be one of {STARTS} (or None for the drift's default), got {start!r}")
    solver = get_solver(method or ("euler" if eps is not None else "rk4"))
    schedule, band = drift.schedule, drift.noise_range
    if time_grid is None:
        grid = _uniform_grid(steps, *trained_interval(schedule, band, t_min, t_max))
    else:
        grid = _explicit_grid(time_grid)
        trained_interval(schedule, band, float(grid[0]), float(grid[-1]), names=("time_grid[0]", "time_grid[-1]"))
    e = None if eps is None else _diffusion(eps, drift, grid[:-1])
    scale = float(schedule(grid[0]).alpha) if start == "noise" else 1.0
    denoise, check_finite = check_bool("denoise", denoise), check_bool("check_finite", check_finite)
    return Plan(drift, solver, grid, denoise, check_finite, e, start, scale)
