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
from ..centring import Mean, uncentre
from ..drift import Drift, check_drift
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
        method: solver name (``euler``, ``midpoint``, ``heun``, ``heun3``, ``rk3``,
            ``rk4``, ``rk4_38``); default ``rk4``.
        t_min, t_max: integration interval inside ``[0, 1]``; default 1e-3 and 1 - 1e-3, or for a drift with a
            ``noise_range`` the times of its noisiest and cleanest trained levels under the drift's schedule (an
            explicit end outside the range is a ``ValueError``; :func:`~fastinterp.sampling.plan.trained_interval`).
        time_grid: optional explicit increasing grid (overrides ``steps``, ``t_min``, ``t_max``).
        denoise: finish with ``E[x1 | x_{t_max}]`` (one extra evaluation).
        start: what a call's ``x0`` is: ``"noise"``, pure noise ``z``, and the run starts from ``alpha(t_min) z``
            (the noise part of ``I_{t_min}``; the default for a drift with a ``noise_range``), or ``"state"``, the
            state at ``t_min`` itself (the default otherwise).
        backend: one of :data:`BACKENDS`.
        check_finite: raise ``FloatingPointError`` if the result is not finite (one host sync per call; the
            eager backend names the step).
        eps: None for the ODE; otherwise the SDE diffusion (a constant ``>= 0``, a callable of t, or
            ``"optimal"``) and the sampler runs Euler-Maruyama (``method`` must then be None or ``"euler"``).
        generator: draws the Brownian increments (SDE only).
        cache_size: CUDA graphs kept by this sampler (least recently used evicted); compiled chunks live in one
            process-wide cache shared by the samplers of a model (:mod:`fastinterp.sampling.compiled`).
        mean: the data mean ``m`` of a model trained on uncentred data (a finite floating-point tensor
            broadcastable to the event shape, on the states' device, or a number), or None. The sampler then
            integrates the centred process ``y = x - beta_t m`` with ``drift.centred(m)`` from ``x0`` (so ``x0`` is
            the centred start: the noise ``z`` as without a mean) and returns ``y + beta_{t_max} m`` (``x1^_c + m``
            with ``denoise``): exact, and free of the ``beta'_t m`` term that schedules with ``beta ~ sqrt(t)``
            (``LipschitzOptimal``) integrate badly (:mod:`fastinterp.centring`).

    Attributes:
        plan: the validated :class:`~fastinterp.sampling.Plan` (grid, tables, layout).
        mean: the validated data mean (a tensor mean as a copy), or None.
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
        t_min: float | None = None,
        t_max: float | None = None,
        time_grid: Tensor | None = None,
        denoise: bool = False,
        start: str | None = None,
        backend: str = "auto",
        check_finite: bool = True,
        eps: Diffusion | None = None,
        generator: torch.Generator | None = None,
        cache_size: int = 8,
        mean: Mean | None = None,
    ) -> None:
        if mean is not None:
            drift = check_drift(drift).centred(mean)
        self.plan = make_plan(
            drift, steps=steps, method=method, t_min=t_min, t_max=t_max, time_grid=time_grid, denoise=denoise,
            check_finite=check_finite, eps=eps, start=start,
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
        self.mean = None if mean is None else self.plan.drift.source.model.mean  # validated by drift.centred
        end = self.plan.drift.schedule(self.plan.grid[-1])
        self._shift = 1.0 if self.plan.denoise else float(end.beta)  # y + beta_{t_max} m, or x1^_c + m

    drift = property(lambda self: self.plan.drift, doc="The drift being sampled (``drift.centred(mean)`` with a mean).")
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
        """Sample from ``x0`` at ``t_min``, shaped ``(B, ...)``; returns the state at ``t_max``.

        Args:
            x0: the state at ``t_min`` (``start="state"``) or pure noise ``z`` (``start="noise"``: the run starts from
                ``alpha(t_min) z``, scaled in ``x0``'s dtype). float64, float32, bfloat16 or float16; the model sees
                this dtype, the state is integrated in float32 (float64 for float64) and returned in ``x0``'s dtype.
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
        if self.plan.start_scale != 1.0:
            x0 = x0 * self.plan.start_scale
        backend = self.resolve_backend(x0.device)
        self.backend = backend
        if backend == "eager":
            return self._uncentre(eager.run(self.plan, x0, conditioning, self.generator))
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
        return self._uncentre(out)

    def _uncentre(self, out: Tensor) -> Tensor:
        """``out`` without a mean; else the uncentred result ``y + beta_{t_max} m`` (``x1^_c + m`` denoised)."""
        return out if self.mean is None else uncentre(out, self._shift, self.mean)


def sample(
    drift: Drift,
    x0: Tensor,
    steps: int = 10,
    method: str | ExplicitRK = "rk4",
    t_min: float | None = None,
    t_max: float | None = None,
    *,
    denoise: bool = False,
    time_grid: Tensor | None = None,
    start: str | None = None,
    check_finite: bool = True,
    backend: str = "eager",
    cond: dict[str, object] | None = None,
    guidance: float | None = None,
    null_cond: dict[str, object] | None = None,
    mean: Mean | None = None,
) -> Tensor:
    """Integrate the probability-flow ODE ``dx/dt = b_t(x)`` from ``t_min`` to ``t_max``.

    Args:
        drift: the drift (any schedule, any prediction type; transferred drifts included).
        x0: shaped ``(B, ...)``: the state at ``t_min`` (``start="state"``; for a one-sided interpolant the base
            noise ``z``, whose ``alpha_{t_min} z`` part dominates at small ``t_min``) or pure noise ``z``
            (``start="noise"``). float64, float32, bfloat16 or float16.
        steps: number of intervals of the uniform time grid (``>= 1``).
        method: a name from :data:`~fastinterp.SOLVERS` (``euler``, ``midpoint``, ``heun``, ``heun3``, ``rk3``,
            ``rk4``, ``rk4_38``).
        t_min, t_max: integration interval inside ``[0, 1]``; the drift is singular at the ends. Default 1e-3 and
            1 - 1e-3, or for a drift with a ``noise_range`` the times of its noisiest and cleanest trained levels
            (an explicit end outside the range is a ``ValueError``).
        denoise: finish with one extra evaluation and return ``E[x1 | x_{t_max}]`` instead of the state.
        time_grid: optional explicit increasing grid of times (overrides ``steps``, ``t_min``, ``t_max``).
        start: ``"noise"`` (start from ``alpha(t_min) x0``; the default for a drift with a ``noise_range``) or
            ``"state"`` (start from ``x0``; the default otherwise), as in :class:`Sampler`.
        check_finite: raise ``FloatingPointError`` naming the step if the state becomes non-finite.
        backend: ``"eager"`` (the reference loop, differentiable) or a fast backend of :class:`Sampler`
            (``"fused"``, ``"compile"``, ``"graph"``, ``"auto"``); keep a ``Sampler`` to reuse its set-up.
        cond, guidance, null_cond: conditioning and classifier-free guidance, as in :meth:`Sampler.__call__`.
        mean: the data mean of a model trained on uncentred data: the centred process is integrated from ``x0``
            and ``beta_{t_max} m`` added exactly, as in :class:`Sampler` (None: no centring).

    Returns:
        The state at ``t_max`` (or its denoised estimate), shaped like ``x0``. NFE: :func:`nfe`.
    """
    sampler = Sampler(
        drift, steps=steps, method=method, t_min=t_min, t_max=t_max, time_grid=time_grid, denoise=denoise,
        start=start, backend=backend, check_finite=check_finite, mean=mean,
    )  # fmt: skip
    return sampler(x0, cond=cond, guidance=guidance, null_cond=null_cond)


def sample_sde(
    drift: Drift,
    x0: Tensor,
    steps: int = 100,
    eps: Diffusion = "optimal",
    t_min: float | None = None,
    t_max: float | None = None,
    *,
    generator: torch.Generator | None = None,
    denoise: bool = False,
    time_grid: Tensor | None = None,
    start: str | None = None,
    check_finite: bool = True,
    backend: str = "eager",
    cond: dict[str, object] | None = None,
    guidance: float | None = None,
    null_cond: dict[str, object] | None = None,
    mean: Mean | None = None,
) -> Tensor:
    """Euler-Maruyama for ``dX = [b_t(X) + eps_t s_t(X)] dt + sqrt(2 eps_t) dW`` from ``t_min`` to ``t_max``.

    Every ``eps >= 0`` gives the same marginals as the ODE; ``"optimal"`` uses the schedule's statistically
    optimal ``eps*_t = alpha^2 (beta'/beta - alpha'/alpha)``. The score ``s = -z^ / alpha`` comes from the same
    model evaluation as the drift (one NFE per step).

    Args:
        drift: the drift.
        x0: state at ``t_min`` or pure noise, shaped ``(B, ...)``, as in :func:`sample` (``start``).
        steps: number of Euler-Maruyama steps.
        eps: diffusion: a constant ``>= 0``, a callable ``eps(t)`` of a 0-d float64 time tensor, or ``"optimal"``;
            evaluated once per step start, in float64.
        t_min, t_max: integration interval inside ``[0, 1]``; defaults as in :func:`sample`.
        generator: the ``torch.Generator`` drawing the Brownian increments (on ``x0``'s device): same generator
            state, same samples.
        denoise: finish with ``E[x1 | x_{t_max}]`` (one extra evaluation).
        time_grid: optional explicit increasing grid of times.
        start: ``"noise"`` or ``"state"``, as in :func:`sample`.
        check_finite: raise ``FloatingPointError`` naming the step if the state becomes non-finite.
        backend: ``"eager"`` (reference), ``"fused"``, ``"compile"`` or ``"auto"``.
        cond, guidance, null_cond: conditioning and classifier-free guidance, as in :meth:`Sampler.__call__`.
        mean: the data mean of a model trained on uncentred data: the centred process is integrated from ``x0``
            and ``beta_{t_max} m`` added exactly, as in :class:`Sampler` (None: no centring).

    Returns:
        The state at ``t_max`` (or its denoised estimate), shaped like ``x0``.
    """
    sampler = Sampler(
        drift, steps=steps, eps=eps, t_min=t_min, t_max=t_max, time_grid=time_grid, denoise=denoise,
        start=start, backend=backend, check_finite=check_finite, generator=generator, mean=mean,
    )  # fmt: skip
    return sampler(x0, cond=cond, guidance=guidance, null_cond=null_cond)
