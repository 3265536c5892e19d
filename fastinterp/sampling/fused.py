"""The fused backend: the model and one fused update per evaluation, driven by the device tables.

Each update reads its input buffers once and writes its outputs once (RK4: 5 + 6 + 6 + 5 = 22 N elements of
traffic per step, model excluded): the Triton kernel on CUDA, the native kernel of ``fastinterp._core`` on the CPU
(multi-threaded, vectorised; no compile time), the torch twin where neither is available. Buffers are allocated
once per call; the state and the RK sums stay in the accumulation dtype (float32 for bf16/fp16 models), the model's
input and output in its own dtype. With guidance the model input is a doubled batch whose halves the update writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._utils import check_output
from ..kernels import HAS_NATIVE, kernels_run_on, lincomb, lincomb_cpu, lincomb_ref
from .conditioning import Conditioning
from .layout import DENOISE_LAYOUT, StageLayout
from .plan import DeviceTables, Plan, accumulation_dtype

__all__ = ["Call", "denoise", "prepare", "run", "update_kernel"]

Kernel = Callable[[list[Tensor], Tensor, list[Tensor], list[int]], None]


def _twin(inputs: list[Tensor], coef: Tensor, outputs: list[Tensor], out_like: list[int]) -> None:
    for out, value in zip(outputs, lincomb_ref(inputs, coef, len(outputs), out_like), strict=True):
        out.copy_(value)


def update_kernel(device: torch.device) -> tuple[str, Kernel]:
    """``(name, kernel)``: the in-place fused update used on ``device``: ``triton`` on CUDA, ``native`` on the CPU,
    else ``triton`` under ``TRITON_INTERPRET=1`` or the ``torch`` twin."""
    if device.type == "cpu" and HAS_NATIVE:
        return "native", lambda ins, coef, outs, like: lincomb_cpu(ins, coef, outs)
    if kernels_run_on(device):
        return "triton", lambda ins, coef, outs, like: lincomb(ins, coef, outs)
    return "torch", _twin


@dataclass(frozen=True, eq=False)
class Call:
    """What one call hands a backend: the state, the plan's tables on its device, the updates to run (the plan's,
    or their guided form for the call's weight ``w``) and the model's keyword arguments. Built by :func:`prepare`.

    Attributes:
        x0: the initial state.
        tables: the plan's :class:`~fastinterp.sampling.plan.DeviceTables` for ``x0``'s device and dtype.
        layout, denoise_layout: the stage layouts of the updates and of the final denoising.
        M, denoise_coef: their matrices (float64, on the device).
        kwargs: ``model(x, t, **kwargs)``; doubled ``[null_cond; cond]`` with guidance.
        signature: what a compiled artefact or a graph depends on beyond shapes (:meth:`Conditioning.signature`).
        guided: whether the model runs on the doubled batch.
        generator: the SDE's Brownian increments.
    """

    x0: Tensor
    tables: DeviceTables
    layout: StageLayout
    denoise_layout: StageLayout
    M: Tensor
    denoise_coef: Tensor
    kwargs: dict[str, object]
    signature: tuple
    guided: bool
    generator: torch.Generator | None


def prepare(
    tables: DeviceTables, x0: Tensor, conditioning: Conditioning | None, generator: torch.Generator | None
) -> Call:
    """The :class:`Call` of ``x0`` with ``conditioning`` (None: unconditional)."""
    if conditioning is None:
        return Call(x0, tables, tables.layout, DENOISE_LAYOUT, tables.M, tables.denoise_coef, {}, (), False, generator)
    if conditioning.guided:
        layout, dlayout, M, dcoef = tables.guided(conditioning.guidance)
    else:
        layout, dlayout, M, dcoef = tables.layout, DENOISE_LAYOUT, tables.M, tables.denoise_coef
    kwargs, signature = conditioning.model_kwargs, conditioning.signature()
    return Call(x0, tables, layout, dlayout, M, dcoef, kwargs, signature, conditioning.guided, generator)


def run(plan: Plan, call: Call, kernel: Kernel) -> Tensor:
    """One run of ``call`` with the in-place update ``kernel``; returns the result in ``x0``'s dtype.

    Everything it allocates is allocated here, so that a CUDA graph can capture the whole call (:mod:`.graph`).
    """
    x0, tables, kwargs, guided, generator = call.x0, call.tables, call.kwargs, call.guided, call.generator
    model, layout, M, tm = plan.table.model, call.layout, call.M, tables.t_model
    acc = accumulation_dtype(x0.dtype)
    B = x0.shape[0]
    x = x0.to(dtype=acc, memory_format=torch.contiguous_format, copy=True)
    xin_all = torch.empty((2 * B if guided else B, *x0.shape[1:]), dtype=x0.dtype, device=x0.device)
    torch.mul(x0, tables.first_scale, out=xin_all[:B])
    bufs: dict[str, Tensor] = {"x": x, "xin": xin_all[:B]}
    if guided:
        xin_all[B:].copy_(xin_all[:B])
        bufs["xinc"] = xin_all[B:]
    for name in ("acc", *(f"k{j}" for j in layout.kept)):
        bufs[name] = torch.empty_like(x)
    if plan.sde:
        bufs["xi"] = torch.empty_like(x)

    def evaluate(t: Tensor) -> None:
        y = check_output(model(xin_all, t, **kwargs), xin_all, model).contiguous()
        bufs["y"], bufs["yc"] = (y[:B], y[B:]) if guided else (y, y)

    for n in range(plan.steps):
        if plan.sde:
            torch.randn(x.shape, generator=generator, dtype=acc, device=x.device, out=bufs["xi"])
        for i in range(plan.solver.stages):
            evaluate(tm[n, i])
            ins, outs = layout.inputs[i], layout.outputs[i]
            kernel([bufs[k] for k in ins], M[n, i], [bufs[k] for k in outs], layout.out_like(i))
    if not plan.denoise:
        return x if x.dtype == x0.dtype else x.to(x0.dtype)
    return denoise(plan, call, x, xin_all, kernel)


def denoise(plan: Plan, call: Call, x: Tensor, xin: Tensor, kernel: Kernel) -> Tensor:
    """The final denoising evaluation ``E[x1 | x_{t_max}]`` from the last model input ``xin`` (doubled with
    guidance); the result in ``x0``'s dtype."""
    model, B = plan.table.model, x.shape[0]
    y = check_output(model(xin, call.tables.denoise_t, **call.kwargs), xin, model).contiguous()
    bufs = {"xin": xin[:B], "y": y[:B], "yc": y[B:]}
    dl = call.denoise_layout
    out = torch.empty_like(call.x0, memory_format=torch.contiguous_format)
    kernel([bufs[k] for k in dl.inputs[0]], call.denoise_coef[0], [out], dl.out_like(0))
    return out
