"""The :class:`Sampler`: one validated plan, run by the backend a call's device calls for.

=========  ==========================================================================================
backend    what runs
=========  ==========================================================================================
eager      the reference loop (:mod:`.eager`): schedules evaluated at every stage, step-exact errors
fused      one fused update per model evaluation (:mod:`.fused`): Triton on CUDA, the native kernel on
           the CPU; no compile time
compile    ``torch.compile(fullgraph=True)`` of whole chunks of the loop, model included (:mod:`.compiled`)
graph      CUDA only: the whole fused loop captured as a CUDA graph and replayed (:mod:`.graph`)
auto       ``graph`` on CUDA (``fused`` for SDEs), ``compile`` elsewhere
=========  ==========================================================================================

Every backend computes the same thing: they agree with ``eager`` to rounding. With ``eps`` set the sampler runs
Euler-Maruyama with the Brownian increments drawn from ``generator`` exactly as the eager loop draws them, so the
same seed gives the same samples on every backend (``graph`` excepted: it does not run SDEs).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._utils import check_state
from ..drift import Drift
from ..solvers import ExplicitRK
from . import compiled, eager, fused
from .conditioning import make_conditioning
from .graph import CapturedGraphs
from .plan import DeviceTables, Diffusion, make_plan

__all__ = ["BACKENDS", "Sampler", "sample", "sample_sde"]

BACKENDS = ("eager", "fused", "compile", "graph", "auto")
_STATE_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


class Sampler:
    """Integrates ``drift`` from ``t_min`` to ``t_max`` with a chosen backend; reusable across calls.

    Args:
        drift: the drift (transferred drifts are unfolded: the loop calls the source model directly).
        steps: number of time-grid intervals.
        method: solver name (``euler``, ``midpoint``, ``heun``, ``rk4``, ``rk4_38``); default ``rk4``.
        t_min, t_max: integration interval inside ``[0, 1]``.
        time_grid: optional explicit increasing grid (overrides ``steps``, ``t_min``, ``t_max``).
        denoise: finish with ``E[x1 | x_{t_max}]`` (one extra evaluation).
        backend: one of :data:`BACKENDS`.
        check_finite: raise ``FloatingPointError`` if the result is not finite (one host sync per call; the
            eager backend names the step).
        eps: None for the ODE; otherwise the SDE diffusion (a constant ``>= 0``, a callable of t, or
            ``"optimal"``) and the sampler runs Euler-Maruyama (``method`` must then be None or ``"euler"``).
        generator: draws the Brownian increments (SDE only).
        cache_size: CUDA graphs kept by this sampler (least recently used evicted); compiled chunks live in one
            process-wide cache shared by the samplers of a model (:mod:`fastinterp.sampling.compiled`).

    Attributes:
        plan: the validated :class:`~fastinterp.sampling.Plan` (grid, tables, layout).
        requested_backend: the ``backend`` argument.
        backend: the backend the last call ran (``auto`` resolved), None before the first call.

    Example:
        >>> sampler = Sampler(drift.transfer(LipschitzOptimal(1e-5)), steps=10, backend="auto")
        >>> x1 = sampler(torch.randn(64, 3, 64, 64, device="cuda"))   # captured once, replayed after
        >>> x1 = sampler(z, cond={"class_labels": y}, guidance=4.0, null_cond={"class_labels": null})
    """

    def __init__(
        self,
        drift: Drift,
        *,
        steps: int = 10,
        method: str | ExplicitRK | None = None,
        t_min: float = 1e-3,
        t_max: float = 1 - 1e-3,
        time_grid: Tensor | None = None,
        denoise: bool = False,
        backend: str = "auto",
        check_finite: bool = True,
        eps: Diffusion | None = None,
        generator: torch.Generator | None = None,
        cache_size: int = 8,
    ) -> None:
        self.plan = make_plan(
            drift, steps=steps, method=method, t_min=t_min, t_max=t_max, time_grid=time_grid, denoise=denoise,
            check_finite=check_finite, eps=eps,
        )  # fmt: skip
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be an int >= 1, got {cache_size!r}")
        self.requested_backend = backend
        self.backend: str | None = None
        self.generator = generator
        self._tables: dict[tuple, DeviceTables] = {}
        self._graphs = CapturedGraphs(self.plan, cache_size)

    drift = property(lambda self: self.plan.drift, doc="The drift being sampled.")
    solver = property(lambda self: self.plan.solver, doc="The RK tableau.")
    grid = property(lambda self: self.plan.grid, doc="The ``steps + 1`` times, float64.")
    table = property(lambda self: self.plan.table, doc="The run's :class:`~fastinterp.CoefficientTable`.")
    nfe = property(lambda self: self.plan.nfe, doc="Model evaluations per call.")

    def resolve_backend(self, device: torch.device) -> str:
        """The backend a call on ``device`` uses (``auto`` resolved)."""
        backend, sde = self.requested_backend, self.plan.sde
        if backend == "auto":
            return ("fused" if sde else "graph") if device.type == "cuda" else "compile"
        if backend == "graph" and device.type != "cuda":
            raise ValueError(f"backend 'graph' needs a CUDA device, got {device}")
        if backend == "graph" and sde:
            raise ValueError("backend 'graph' does not run SDEs (eps set); use 'fused' or 'compile'")
        return backend

    def tables(self, device: torch.device, dtype: torch.dtype) -> DeviceTables:
        """The plan's tables on ``device`` for states of ``dtype`` (built once, then cached)."""
        key = (device, dtype)
        if key not in self._tables:
            self._tables[key] = DeviceTables(self.plan, device, dtype)
        return self._tables[key]

    def __call__(
        self,
        x0: Tensor,
        *,
        cond: dict[str, object] | None = None,
        guidance: float | None = None,
        null_cond: dict[str, object] | None = None,
    ) -> Tensor:
        """Sample from the state ``x0`` at ``t_min``, shaped ``(B, ...)``; returns the state at ``t_max``.

        Args:
            x0: float64, float32, bfloat16 or float16; the model sees this dtype, the state is integrated in
                float32 (float64 for float64) and returned in ``x0``'s dtype.
            cond: keyword arguments of ``model(x, t, **cond)``, tensors batch-first.
            guidance: classifier-free guidance weight ``w``: the integrated prediction is
                ``y_u + w (y_c - y_u)`` (needs ``cond`` and ``null_cond``).
            null_cond: the unconditional call's keyword arguments (same keys as ``cond``; batch 1 broadcasts).
        """
        x0 = check_state("x0", x0)
        if x0.dtype not in _STATE_DTYPES:
            raise TypeError(f"x0 must be float64, float32, bfloat16 or float16, got {x0.dtype}")
        if self.generator is not None and self.plan.sde and self.generator.device.type != x0.device.type:
            raise ValueError(f"generator is on {self.generator.device}, x0 on {x0.device}: they must share the device")
        conditioning = make_conditioning(cond, guidance, null_cond, x0)
        backend = self.resolve_backend(x0.device)
        self.backend = backend
        if backend == "eager":
            return eager.run(self.plan, x0, conditioning, self.generator)
        call = fused.prepare(self.tables(x0.device, x0.dtype), x0, conditioning, self.generator)
        with torch.no_grad():
            if backend == "compile":
                out = compiled.run(self.plan, call)
            elif backend == "graph":
                out = self._graphs.run(call, fused.update_kernel(x0.device)[1])
            else:
                out = fused.run(self.plan, call, fused.update_kernel(x0.device)[1])
        if self.plan.check_finite and not bool(torch.isfinite(out).all()):
            raise FloatingPointError(
                f"Sampler(backend={backend!r}): the result is not finite; run backend='eager' to find the step"
            )
        return out


def sample(
    drift: Drift,
    x0: Tensor,
    steps: int = 10,
    method: str | ExplicitRK = "rk4",
    t_min: float = 1e-3,
    t_max: float = 1 - 1e-3,
    *,
    denoise: bool = False,
    time_grid: Tensor | None = None,
    check_finite: bool = True,
    backend: str = "eager",
    cond: dict[str, object] | None = None,
    guidance: float | None = None,
    null_cond: dict[str, object] | None = None,
) -> Tensor:
    """Integrate the probability-flow ODE ``dx/dt = b_t(x)`` from ``t_min`` to ``t_max``.

    Args:
        drift: the drift (any schedule, any prediction type; transferred drifts included).
        x0: state at ``t_min``, shaped ``(B, ...)``; for a one-sided interpolant the base noise ``z``
            (its ``alpha_{t_min} z`` part dominates at small ``t_min``). float64, float32, bfloat16 or float16.
        steps: number of intervals of the uniform time grid (``>= 1``).
        method: a name from :data:`~fastinterp.SOLVERS` (``euler``, ``midpoint``, ``heun``, ``rk4``, ``rk4_38``).
        t_min, t_max: integration interval inside ``[0, 1]``; the drift is singular at the ends.
        denoise: finish with one extra evaluation and return ``E[x1 | x_{t_max}]`` instead of the state.
        time_grid: optional explicit increasing grid of times (overrides ``steps``, ``t_min``, ``t_max``).
        check_finite: raise ``FloatingPointError`` naming the step if the state becomes non-finite.
        backend: ``"eager"`` (the reference loop, differentiable) or a fast backend of :class:`Sampler`
            (``"fused"``, ``"compile"``, ``"graph"``, ``"auto"``); keep a ``Sampler`` to reuse its set-up.
        cond, guidance, null_cond: conditioning and classifier-free guidance, as in :meth:`Sampler.__call__`.

    Returns:
        The state at ``t_max`` (or its denoised estimate), shaped like ``x0``. NFE: :func:`nfe`.
    """
    sampler = Sampler(
        drift, steps=steps, method=method, t_min=t_min, t_max=t_max, time_grid=time_grid, denoise=denoise,
        backend=backend, check_finite=check_finite,
    )  # fmt: skip
    return sampler(x0, cond=cond, guidance=guidance, null_cond=null_cond)


def sample_sde(
    drift: Drift,
    x0: Tensor,
    steps: int = 100,
    eps: Diffusion = "optimal",
    t_min: float = 1e-3,
    t_max: float = 1 - 1e-3,
    *,
    generator: torch.Generator | None = None,
    denoise: bool = False,
    time_grid: Tensor | None = None,
    check_finite: bool = True,
    backend: str = "eager",
    cond: dict[str, object] | None = None,
    guidance: float | None = None,
    null_cond: dict[str, object] | None = None,
) -> Tensor:
    """Euler-Maruyama for ``dX = [b_t(X) + eps_t s_t(X)] dt + sqrt(2 eps_t) dW`` from ``t_min`` to ``t_max``.

    Every ``eps >= 0`` gives the same marginals as the ODE; ``"optimal"`` uses the schedule's statistically
    optimal ``eps*_t = alpha^2 (beta'/beta - alpha'/alpha)``. The score ``s = -z^ / alpha`` comes from the same
    model evaluation as the drift (one NFE per step).

    Args:
        drift: the drift.
        x0: state at ``t_min``, shaped ``(B, ...)``.
        steps: number of Euler-Maruyama steps.
        eps: diffusion: a constant ``>= 0``, a callable ``eps(t)`` of a 0-d float64 time tensor, or ``"optimal"``;
            evaluated once per step start, in float64.
        t_min, t_max: integration interval inside ``[0, 1]``.
        generator: the ``torch.Generator`` drawing the Brownian increments (on ``x0``'s device): same generator
            state, same samples.
        denoise: finish with ``E[x1 | x_{t_max}]`` (one extra evaluation).
        time_grid: optional explicit increasing grid of times.
        check_finite: raise ``FloatingPointError`` naming the step if the state becomes non-finite.
        backend: ``"eager"`` (reference), ``"fused"``, ``"compile"`` or ``"auto"``.
        cond, guidance, null_cond: conditioning and classifier-free guidance, as in :meth:`Sampler.__call__`.

    Returns:
        The state at ``t_max`` (or its denoised estimate), shaped like ``x0``.
    """
    sampler = Sampler(
        drift, steps=steps, eps=eps, t_min=t_min, t_max=t_max, time_grid=time_grid, denoise=denoise,
        backend=backend, check_finite=check_finite, generator=generator,
    )  # fmt: skip
    return sampler(x0, cond=cond, guidance=guidance, null_cond=null_cond)
