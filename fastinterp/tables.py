"""Coefficient tables: every per-stage scalar of a sampling run, computed once in float64.

For a drift (its source model, the schedule it was trained under, its prediction type), a target schedule, a
solver and a time grid, a run evaluates the model ``steps x stages`` times. At each evaluation

    x' = s x,    y = model(x', t'),    k = A x + B y    (the target schedule's drift at the stage input x)

where ``t'`` and ``s`` come from the transfer map (``t' = t``, ``s = 1`` without one) and ``(A, B)`` fold the
source's prediction-to-denoiser conversion at ``t'`` and the target's denoiser-to-velocity conversion at ``t``.
With the RK tableau these scalars determine every stage input as a fixed linear combination of the step's start
state and the stage outputs so far: :func:`stage_matrices` writes those combinations as small matrices that the
fused kernels (:mod:`fastinterp.kernels`) apply, reading them from the device by index, so that a sampling loop
never recomputes a schedule and never synchronises with the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .drift import Drift
from .predictions import conversion_coefficients
from .schedules import Schedule
from .solvers import ExplicitRK, get_solver
from .transfer import TransferredModel, transfer_time

__all__ = ["SDE_LAYOUT", "CoefficientTable", "StageLayout", "build_table", "sde_matrices", "stage_matrices"]


@dataclass(frozen=True)
class CoefficientTable:
    """Per-evaluation scalars of one sampling run (float64, CPU; :meth:`to` moves them).

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


def _evaluation_coefficients(drift: Drift, t: Tensor, output: str) -> tuple[object, Tensor, Tensor, Tensor, Tensor]:
    """``(model, t', s, A, B)`` with ``output(x, t) = A x + B model(s x, t')`` elementwise in ``t``."""
    target: Schedule = drift.schedule
    st = target(t)
    if isinstance(drift.model, TransferredModel):
        source = drift.model.source
        native = drift.model.prediction
        tp, scale = transfer_time(source.schedule, target, t)
        cxn, cyn = conversion_coefficients(source.prediction, native, source.schedule(tp))
        cvx, cvn = conversion_coefficients(native, output, st)
        return source.model, tp, scale, _full(cvx + cvn * cxn * scale, t), _full(cvn * cyn, t)
    cx, cy = conversion_coefficients(drift.prediction, output, st)
    return drift.model, t, torch.ones_like(t), _full(cx, t), _full(cy, t)


def _full(value: Tensor | float, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype) + torch.zeros_like(like)


def build_table(drift: Drift, method: str | ExplicitRK, grid: Tensor) -> CoefficientTable:
    """The :class:`CoefficientTable` of ``drift`` sampled with ``method`` on the time ``grid``.

    Args:
        drift: any drift; a transferred drift is unfolded so the loop calls the source model directly.
        method: solver name or tableau.
        grid: increasing times, ``steps + 1`` of them.
    """
    solver = get_solver(method)
    g = grid.detach().to(dtype=torch.float64, device="cpu")
    h = (g[1:] - g[:-1]).unsqueeze(1)
    c = torch.tensor(solver.c, dtype=torch.float64)
    t = g[:-1].unsqueeze(1) + c * h
    model, t_model, scale, A, B = _evaluation_coefficients(drift, t, "velocity")
    end = g[-1:]
    _, dt_model, dscale, dA, dB = _evaluation_coefficients(drift, end, "x1")
    return CoefficientTable(model, solver, g, t, t_model, scale, A, B, (dt_model[0], dscale[0], dA[0], dB[0]))


@dataclass(frozen=True)
class StageLayout:
    """Which buffers each stage's fused update reads and writes (depends on the tableau only).

    Buffers: ``xin`` (model input), ``y`` (model output), ``x`` (step start state), ``acc`` (running sum
    ``x + h sum b_j k_j``) and ``k{j}`` (stage drifts that a later stage, other than the next, still needs).

    Attributes:
        inputs: per stage, the names of the buffers read.
        outputs: per stage, the names of the buffers written.
        kept: indices ``j`` whose ``k_j`` is stored.
    """

    inputs: tuple[tuple[str, ...], ...]
    outputs: tuple[tuple[str, ...], ...]
    kept: tuple[int, ...]

    @staticmethod
    def for_solver(solver: ExplicitRK) -> StageLayout:
        S = solver.stages
        kept = tuple(j for j in range(S - 1) if any(solver.a[l][j] != 0.0 for l in range(j + 2, S)))
        inputs, outputs = [], []
        for i in range(S):
            ins = ["xin", "y"]
            if i < S - 1 or S == 1:
                ins.append("x")
            if 0 < i:
                ins.append("acc")
            ins += [f"k{j}" for j in kept if j < i]
            if i < S - 1:
                outs = ["acc", "xin"] + ([f"k{i}"] if i in kept else [])
            else:
                outs = ["x", "xin"]
            inputs.append(tuple(ins))
            outputs.append(tuple(outs))
        return StageLayout(tuple(inputs), tuple(outputs), kept)

    @property
    def max_inputs(self) -> int:
        return max(len(i) for i in self.inputs)

    @property
    def max_outputs(self) -> int:
        return max(len(o) for o in self.outputs)


def stage_matrices(table: CoefficientTable, layout: StageLayout | None = None) -> Tensor:
    """Linear-combination matrices of every fused stage update, ``(steps, stages, max_outputs, max_inputs)``.

    Stage ``i`` of step ``n`` computes, with ``k_i = (A_i / s_i) xin + B_i y`` (``xin = s_i x_i``),

        acc   = (x if i = 0 else acc) + h b_i k_i
        xin'  = s_{i+1} (x + h sum_{j <= i} a_{i+1, j} k_j)            (i < last)
        x_new = acc + h b_last k_last,  xin' = s_{next} x_new          (i = last; next step's first stage)

    and stores ``k_i`` when a later stage needs it. Row ``o`` of the matrix gives output ``o`` as a combination of the
    layout's inputs. The last step's ``xin'`` feeds the final denoising evaluation (scale of the denoise entry).
    """
    solver = table.solver
    layout = layout or StageLayout.for_solver(solver)
    S, steps = solver.stages, table.steps
    h = table.grid[1:] - table.grid[:-1]
    M = torch.zeros(steps, S, layout.max_outputs, layout.max_inputs, dtype=torch.float64)
    for n in range(steps):
        next_scale = table.scale[n + 1, 0] if n + 1 < steps else table.denoise[1]
        for i in range(S):
            ins, outs = layout.inputs[i], layout.outputs[i]
            # k_i as a combination of the inputs
            k = {name: 0.0 for name in ins}
            k["xin"] = float(table.A[n, i] / table.scale[n, i])
            k["y"] = float(table.B[n, i])

            def combo(base: dict[str, float], coef_k_i: float, extra: dict[str, float], k=k, ins=ins) -> list[float]:
                row = dict(base)
                for name, v in extra.items():
                    row[name] = row.get(name, 0.0) + v
                for name, v in k.items():
                    row[name] = row.get(name, 0.0) + coef_k_i * v
                return [row.get(name, 0.0) for name in ins]

            hb = float(h[n]) * solver.b[i]
            rows = []
            for out in outs:
                if out == "acc":
                    rows.append(combo({}, hb, {"x" if i == 0 else "acc": 1.0}))
                elif out == "x":
                    rows.append(combo({}, hb, {"acc" if S > 1 else "x": 1.0}))
                elif out == "xin" and i < S - 1:
                    s_next = float(table.scale[n, i + 1])
                    extra = {"x": s_next}
                    for j in layout.kept:
                        if j < i and solver.a[i + 1][j] != 0.0:
                            extra[f"k{j}"] = s_next * float(h[n]) * solver.a[i + 1][j]
                    rows.append(combo({}, s_next * float(h[n]) * solver.a[i + 1][i], extra))
                elif out == "xin":  # next step's first model input: s_next * x_new
                    s_next = float(next_scale)
                    rows.append([s_next * v for v in combo({}, hb, {"acc" if S > 1 else "x": 1.0})])
                else:  # k_i
                    rows.append(combo({}, 1.0, {}))
            for o, row in enumerate(rows):
                M[n, i, o, : len(row)] = torch.tensor(row, dtype=torch.float64)
    return M


#: Euler-Maruyama: one evaluation per step, reading the Brownian increment ``xi`` as a fifth buffer.
SDE_LAYOUT = StageLayout(inputs=(("xin", "y", "x", "xi"),), outputs=(("x", "xin"),), kept=())


def sde_matrices(drift: Drift, table: CoefficientTable, eps: Tensor) -> Tensor:
    """Fused Euler-Maruyama updates ``(steps, 1, 2, 4)`` for ``dX = [b + eps s] dt + sqrt(2 eps) dW``.

    With ``k = A x + B y`` (drift) and ``s = A_s x + B_s y`` (score) at the step's start,
    ``x_new = x + h (k + e s) + sqrt(2 e h) xi`` and ``xin' = s_next x_new``, over inputs ``(xin, y, x, xi)``.

    Args:
        drift: the drift the ``table`` was built for (with method ``euler``).
        table: its coefficient table.
        eps: diffusion at the step start times, shaped ``(steps,)``, float64, ``>= 0``.
    """
    if table.solver.stages != 1:
        raise ValueError(f"Euler-Maruyama needs the one-stage table (method 'euler'), got {table.solver.name!r}")
    _, _, _, As, Bs = _evaluation_coefficients(drift, table.t, "score")
    h = table.grid[1:] - table.grid[:-1]
    e = eps.to(torch.float64).reshape(-1)
    A, B, scale = table.A[:, 0], table.B[:, 0], table.scale[:, 0]
    next_scale = torch.cat([table.scale[1:, 0], table.denoise[1].reshape(1)])
    row = torch.stack(
        [h * (A + e * As[:, 0]) / scale, h * (B + e * Bs[:, 0]), torch.ones_like(h), torch.sqrt(2 * e * h)], dim=1
    )
    return torch.stack([row, next_scale.unsqueeze(1) * row], dim=1).unsqueeze(1)
