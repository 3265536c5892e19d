"""The stage layout: which buffers each fused update reads and writes, and the matrices that combine them.

Every stage input of an explicit RK step is a fixed linear combination of the step's start state and the stage
drifts so far, and each stage drift is ``k = A x + B y`` with ``y`` the model output (:mod:`.plan`). So one update
per model evaluation, reading each buffer once and writing each once, carries the whole step:
:class:`StageLayout` names the buffers, :func:`stage_matrices` (ODE) and :func:`sde_matrices` (Euler-Maruyama)
give the coefficients for the whole run, and :func:`guided` adds classifier-free guidance to both: the model's
unconditional and conditional outputs enter as two inputs weighted ``1 - w`` and ``w``, and the next model input is
written to both halves of the doubled batch, so guidance costs no extra pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

__all__ = ["DENOISE_LAYOUT", "SDE_LAYOUT", "StageLayout", "guided", "sde_matrices", "stage_matrices"]


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
    def for_solver(solver) -> StageLayout:
        """The layout of an explicit RK tableau (:class:`fastinterp.ExplicitRK`)."""
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

    @cached_property
    def key(self) -> str:
        """A cheap hashable identity (cache keys hash it on every call; the nested tuples would be rehashed)."""
        return repr((self.inputs, self.outputs, self.kept))

    @property
    def max_inputs(self) -> int:
        return max(len(i) for i in self.inputs)

    @property
    def max_outputs(self) -> int:
        return max(len(o) for o in self.outputs)

    def out_like(self, i: int) -> list[int]:
        """For stage ``i``, the input whose dtype each output takes: the model input's for model inputs, else the
        state's (``x`` or ``acc``, else the model input's), so that low-precision models keep float32 state buffers."""
        ins = self.inputs[i]
        state = next((j for j, name in enumerate(ins) if name in ("x", "acc")), 0)
        return [ins.index("xin") if out in ("xin", "xinc") else state for out in self.outputs[i]]


def stage_matrices(table, layout: StageLayout | None = None) -> Tensor:
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


#: The final denoising evaluation: ``x1 = c0 xin + c1 y`` (one row over the model input and output).
DENOISE_LAYOUT = StageLayout(inputs=(("xin", "y"),), outputs=(("out",),), kept=())

#: Euler-Maruyama: one evaluation per step, reading the Brownian increment ``xi`` as a fourth buffer.
SDE_LAYOUT = StageLayout(inputs=(("xin", "y", "x", "xi"),), outputs=(("x", "xin"),), kept=())


def sde_matrices(table, A_score: Tensor, B_score: Tensor, eps: Tensor) -> Tensor:
    """Fused Euler-Maruyama updates ``(steps, 1, 2, 4)`` for ``dX = [b + eps s] dt + sqrt(2 eps) dW``.

    With ``k = A x + B y`` (drift, from the one-stage ``table``) and ``s = A_s x + B_s y`` (score) at the step's
    start, ``x_new = x + h (k + e s) + sqrt(2 e h) xi`` and ``xin' = s_next x_new``, over inputs ``(xin, y, x, xi)``.

    Args:
        table: the run's :class:`~fastinterp.CoefficientTable` (method ``euler``).
        A_score, B_score: the score's coefficients at the step start times, ``(steps,)``.
        eps: diffusion at the step start times, ``(steps,)``, float64, ``>= 0``.
    """
    if table.solver.stages != 1:
        raise ValueError(f"Euler-Maruyama needs the one-stage table (method 'euler'), got {table.solver.name!r}")
    h = table.grid[1:] - table.grid[:-1]
    e = eps.to(torch.float64).reshape(-1)
    A, B, scale = table.A[:, 0], table.B[:, 0], table.scale[:, 0]
    next_scale = torch.cat([table.scale[1:, 0], table.denoise[1].reshape(1)])
    row = torch.stack(
        [h * (A + e * A_score) / scale, h * (B + e * B_score), torch.ones_like(h), torch.sqrt(2 * e * h)], dim=1
    )
    return torch.stack([row, next_scale.unsqueeze(1) * row], dim=1).unsqueeze(1)


def guided(layout: StageLayout, M: Tensor) -> tuple[StageLayout, Tensor, Tensor]:
    """Classifier-free guidance folded into the updates: ``(layout', base, delta)``, matrices ``base + w delta``.

    The model runs once on the doubled batch ``[x'; x']`` with ``[null_cond; cond]``; its halves ``y`` (unconditional)
    and ``yc`` (conditional) replace ``y`` as two inputs, so a combination that used ``c y`` now uses
    ``c (1 - w) y + c w yc = c (y + w (yc - y))``, the guided prediction in the model's own prediction type (before
    the transfer map, which is affine in it). The next model input ``xin`` is also written to ``xinc``, the second
    half of the doubled model input. ``M`` is ``(..., outputs, inputs)`` over ``layout``'s buffers.
    """
    inputs, outputs = [], []
    for ins, outs in zip(layout.inputs, layout.outputs, strict=True):
        inputs.append(tuple(n for name in ins for n in ((name, "yc") if name == "y" else (name,))))
        outputs.append(tuple(n for name in outs for n in ((name, "xinc") if name == "xin" else (name,))))
    new = StageLayout(tuple(inputs), tuple(outputs), layout.kept)
    shape = (*M.shape[:-2], new.max_outputs, new.max_inputs)
    base, delta = M.new_zeros(shape), M.new_zeros(shape)
    for i, (ins, outs) in enumerate(zip(new.inputs, new.outputs, strict=True)):
        old_ins, old_outs = layout.inputs[i], layout.outputs[i]
        for o, out in enumerate(outs):
            src = old_outs.index("xin" if out == "xinc" else out)
            for j, name in enumerate(ins):
                if name == "yc":
                    c = M[..., i, src, old_ins.index("y")]
                    base[..., i, o, j], delta[..., i, o, j] = 0.0, c
                else:
                    c = M[..., i, src, old_ins.index(name)]
                    base[..., i, o, j] = c
                    if name == "y":
                        delta[..., i, o, j] = -c
    return new, base, delta
