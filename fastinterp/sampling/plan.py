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
from ..drift import Drift, check_drift
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
    "time_grid",
]

Diffusion = float | str | Callable[[Tensor], Tensor | float]


def time_grid(steps: int, t_min: float = 1e-3, t_max: float = 1 - 1e-3, *, device=None, dtype=None) -> Tensor:
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
    """

    drift: Drift
    solver: ExplicitRK
    grid: Tensor
    denoise: bool
    check_finite: bool
    eps: Tensor | None

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
    t_min: float = 1e-3,
    t_max: float = 1 - 1e-3,
    time_grid: Tensor | None = None,
    denoise: bool = False,
    check_finite: bool = True,
    eps: Diffusion | None = None,
) -> Plan:
    """Validate a sampler's options once and freeze them into a :class:`Plan` (arguments as :class:`Sampler`)."""
    drift = check_drift(drift)
    if eps is not None and method not in (None, "euler"):
        raise ValueError(
            f"with eps set the sampler runs Euler-Maruyama: method must be None or 'euler', got {method!r}"
        )
    solver = get_solver(method or ("euler" if eps is not None else "rk4"))
    grid = _uniform_grid(steps, t_min, t_max) if time_grid is None else _explicit_grid(time_grid)
    e = None if eps is None else _diffusion(eps, drift, grid[:-1])
    return Plan(drift, solver, grid, check_bool("denoise", denoise), check_bool("check_finite", check_finite), e)
