"""A reusable sampler with interchangeable backends, all driven by one coefficient table.

=========  ==========================================================================================
backend    what runs
=========  ==========================================================================================
eager      the reference loop of :func:`fastinterp.sample` (schedules evaluated at every stage)
fused      table-driven loop: one fused update per model evaluation (Triton on CUDA, the torch twin
           on CPU), preallocated buffers, no compile time
compile    ``torch.compile(fullgraph=True)`` of one whole RK step, model included; the step takes its
           coefficients as tensors, so new time grids or schedule pairs of the same length reuse the graph
graph      CUDA only: the whole N-step loop, model included, captured once per input shape as a CUDA
           graph and replayed (the input is copied into a static buffer, the output copied out)
auto       ``graph`` on CUDA (``fused`` for SDEs), ``compile`` elsewhere
=========  ==========================================================================================

Every backend computes the same thing: they agree with ``eager`` to rounding (tests check 1e-5 in fp32). With
``eps`` set, the sampler runs Euler-Maruyama (:func:`fastinterp.sample_sde`) with the Brownian increments drawn
from ``generator`` exactly as the eager loop draws them, so the same seed gives the same samples on every
backend (``graph`` excepted: it does not run SDEs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ._utils import check_int, check_interval, check_state
from .drift import Drift, _check_output
from .kernels import kernels_run_on, lincomb, lincomb_op, lincomb_ref
from .sampling import _check_drift, _diffusion, _grid_for, sample, sample_sde
from .solvers import ExplicitRK, get_solver
from .tables import SDE_LAYOUT, CoefficientTable, StageLayout, build_table, sde_matrices, stage_matrices

__all__ = ["BACKENDS", "Sampler"]

BACKENDS = ("eager", "fused", "compile", "graph", "auto")

# Compiled steps are shared by every Sampler with the same model and tableau: a new time grid or schedule pair
# changes only tensor values, so it reuses the graph instead of recompiling.
_COMPILED: dict[tuple[int, str, bool, bool], Callable] = {}


class _DeviceTables(NamedTuple):
    """A run's tables on one device: stage matrices (float64), model times and the scalars of the ends."""

    M: Tensor  # (steps, stages, outputs, inputs), see tables.stage_matrices
    t_model: Tensor  # (steps, stages)
    first_scale: Tensor  # model-input scale of the first evaluation
    denoise_t: Tensor  # model time of the final denoising evaluation
    denoise_coef: Tensor  # (1, 2): x1 = c0 xin + c1 y


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

    Example:
        >>> sampler = Sampler(drift.transfer(LipschitzOptimal(1e-5)), steps=10, backend="auto")
        >>> x1 = sampler(torch.randn(64, 3, 64, 64, device="cuda"))   # captured once, replayed after
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
        eps: float | str | Callable[[Tensor], Tensor | float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.drift = _check_drift(drift)
        self.sde = eps is not None
        if self.sde and method not in (None, "euler"):
            raise ValueError(
                f"with eps set the sampler runs Euler-Maruyama: method must be None or 'euler', got {method!r}"
            )
        self.solver = get_solver(method or ("euler" if self.sde else "rk4"))
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if time_grid is None:
            check_int("steps", steps, 1)
            t_min, t_max = check_interval(t_min, t_max)
            grid = torch.linspace(t_min, t_max, steps + 1, dtype=torch.float64)
        else:
            grid = _grid_for(torch.zeros(1, dtype=torch.float64), 0, 0.0, 1.0, time_grid).to(torch.float64)
        self.grid = grid
        self.denoise = bool(denoise)
        self.backend = backend
        self.check_finite = check_finite
        self.table: CoefficientTable = build_table(self.drift, self.solver, grid)
        if self.sde:
            self.eps = eps
            eps_fn = _diffusion(eps, self.drift)
            e = torch.stack([torch.as_tensor(eps_fn(t), dtype=torch.float64).reshape(()) for t in self.table.t[:, 0]])
            if not (torch.isfinite(e).all() and (e >= 0).all()):
                raise ValueError(f"eps must be finite and >= 0 on the grid, got {e.tolist()}")
            self.layout = SDE_LAYOUT
            self._matrices = sde_matrices(self.drift, self.table, e)
        else:
            self.layout = StageLayout.for_solver(self.solver)
            self._matrices = stage_matrices(self.table, self.layout)
        self._device_tables: dict[tuple, _DeviceTables] = {}
        self._graphs: dict[tuple, tuple] = {}

    @property
    def nfe(self) -> int:
        """Model evaluations per call."""
        return self.table.steps * self.solver.stages + int(self.denoise)

    def resolve_backend(self, device: torch.device) -> str:
        """The backend a call on ``device`` uses (``auto`` resolved)."""
        if self.backend == "auto":
            return ("fused" if self.sde else "graph") if device.type == "cuda" else "compile"
        if self.backend == "graph" and device.type != "cuda":
            raise ValueError(f"backend 'graph' needs a CUDA device, got {device}")
        if self.backend == "graph" and self.sde:
            raise ValueError("backend 'graph' does not run SDEs (eps set); use 'fused' or 'compile'")
        return self.backend

    def __call__(self, x0: Tensor) -> Tensor:
        """Sample from the state ``x0`` at ``t_min`` (shaped ``(B, ...)``); returns the state at ``t_max``."""
        x0 = check_state("x0", x0)
        backend = self.resolve_backend(x0.device)
        if backend == "eager" and self.sde:
            return sample_sde(
                self.drift,
                x0,
                eps=self.eps,
                time_grid=self.grid.to(x0.dtype),
                denoise=self.denoise,
                generator=self.generator,
                check_finite=self.check_finite,
            )
        if backend == "eager":
            return sample(
                self.drift,
                x0,
                method=self.solver,
                time_grid=self.grid.to(x0.dtype),
                denoise=self.denoise,
                check_finite=self.check_finite,
            )
        if backend == "graph":
            out = self._run_graph(x0)
        elif backend == "compile":
            out = self._run_compiled(x0)
        else:
            out = self._run_fused(x0)
        if self.check_finite and not bool(torch.isfinite(out).all()):
            raise FloatingPointError(
                f"Sampler(backend={backend!r}): the result is not finite; run backend='eager' to find the step"
            )
        return out

    # -- tables on the device ---------------------------------------------------------------------------------
    def _tables(self, x: Tensor) -> _DeviceTables:
        key = (x.device, x.dtype)
        if key not in self._device_tables:
            t = self.table
            d_t, d_s, d_A, d_B = t.denoise
            self._device_tables[key] = _DeviceTables(
                M=self._matrices.to(x.device),  # coefficients stay float64: the kernels cast them
                t_model=t.t_model.to(device=x.device, dtype=x.dtype),
                first_scale=t.scale[0, 0].to(device=x.device, dtype=x.dtype),
                denoise_t=d_t.to(device=x.device, dtype=x.dtype),
                # x1 = (A / s) xin + B y, as a one-row lincomb over (xin, y)
                denoise_coef=torch.stack([d_A / d_s, d_B]).reshape(1, 2).to(x.device),
            )
        return self._device_tables[key]

    def _model(self, xin: Tensor, t: Tensor) -> Tensor:
        y = self.table.model(xin, t)
        _check_output(y, xin, self.table.model)
        return y

    # -- fused: an eager loop of fused updates ------------------------------------------------------------------
    def _run_fused(self, x0: Tensor) -> Tensor:
        tables = self._tables(x0)
        M, tm = tables.M, tables.t_model
        use_kernel = kernels_run_on(x0.device)
        x = x0.contiguous().clone()
        bufs: dict[str, Tensor] = {"x": x, "xin": x * tables.first_scale}
        for name in ("acc", *(f"k{j}" for j in self.layout.kept)):
            bufs[name] = torch.empty_like(x)
        S = self.solver.stages
        for n in range(self.table.steps):
            if self.sde:
                bufs["xi"] = self._noise(x)
            for i in range(S):
                bufs["y"] = self._model(bufs["xin"], tm[n, i]).contiguous()
                ins = [bufs[name] for name in self.layout.inputs[i]]
                names = self.layout.outputs[i]
                if use_kernel:
                    lincomb(ins, M[n, i], [bufs[name] for name in names])
                else:
                    for name, value in zip(names, lincomb_ref(ins, M[n, i], len(names)), strict=True):
                        bufs[name].copy_(value)
        return self._finish(bufs, tables, use_kernel)

    def _noise(self, x: Tensor) -> Tensor:
        # drawn exactly as sample_sde draws it, so that a seed gives the same samples on every backend
        return torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)

    def _finish(self, bufs: dict[str, Tensor], tables: _DeviceTables, use_kernel: bool) -> Tensor:
        if not self.denoise:
            return bufs["x"]
        y = self._model(bufs["xin"], tables.denoise_t).contiguous()
        if use_kernel:
            return lincomb([bufs["xin"], y], tables.denoise_coef, [torch.empty_like(y)])[0]
        return lincomb_ref([bufs["xin"], y], tables.denoise_coef, 1)[0]

    # -- compile: one compiled RK step, coefficients as tensors ---------------------------------------------------
    def step_function(self, use_op: bool) -> Callable[..., tuple[Tensor, Tensor]]:
        """One whole step ``(x, xin, M[n], t_model[n], xi) -> (x, xin)`` built from the model and the fused update.

        ``xi`` is the step's Brownian increment (SDE) or None. ``use_op`` selects the ``fastinterp::lincomb``
        custom op (Triton on CUDA) over the plain twin.
        """
        model, layout, S = self.table.model, self.layout, self.solver.stages
        combine = lincomb_op if use_op else lincomb_ref

        def step(x: Tensor, xin: Tensor, M_n: Tensor, tm_n: Tensor, xi: Tensor | None = None) -> tuple[Tensor, Tensor]:
            bufs = {"x": x, "xin": xin}
            if xi is not None:
                bufs["xi"] = xi
            for i in range(S):
                bufs["y"] = model(bufs["xin"], tm_n[i])
                _check_output(bufs["y"], bufs["xin"], model)  # metadata only: traced, not a graph break
                names = layout.outputs[i]
                outs = combine([bufs[name] for name in layout.inputs[i]], M_n[i], len(names))
                bufs.update(zip(names, outs, strict=True))
            return bufs["x"], bufs["xin"]

        return step

    def _compiled_step(self, use_op: bool) -> Callable:
        key = (id(self.table.model), self.solver.name, self.sde, use_op)
        if key not in _COMPILED:
            _COMPILED[key] = torch.compile(self.step_function(use_op), fullgraph=True, dynamic=False)
        return _COMPILED[key]

    def _run_compiled(self, x0: Tensor) -> Tensor:
        tables = self._tables(x0)
        # On CUDA the custom op runs the Triton kernel; on CPU inductor fuses the plain twin itself.
        step = self._compiled_step(use_op=x0.device.type == "cuda")
        x, xin = x0, x0 * tables.first_scale
        for n in range(self.table.steps):
            x, xin = step(x, xin, tables.M[n], tables.t_model[n], self._noise(x) if self.sde else None)
        return self._finish({"x": x, "xin": xin}, tables, use_kernel=False)

    # -- graph: the whole loop captured once per shape ------------------------------------------------------------
    def _run_graph(self, x0: Tensor) -> Tensor:
        key = (tuple(x0.shape), x0.dtype, x0.device)
        if key not in self._graphs:
            static_in = x0.detach().clone()
            stream = torch.cuda.Stream(device=x0.device)
            stream.wait_stream(torch.cuda.current_stream(x0.device))
            with torch.cuda.stream(stream):  # warm-up outside the capture: Triton compiles/tunes here, never inside
                self._run_fused(static_in)
            torch.cuda.current_stream(x0.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._run_fused(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x0)
        graph.replay()
        return static_out.clone()
