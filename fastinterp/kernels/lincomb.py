"""Fused stage update: several outputs, each a linear combination of the same few full-size inputs.

Every RK stage of a (transferred) drift reduces to this: with the model output ``y`` in hand, the stage drift,
the running RK sum, the next model input and any stored stage drift are all fixed linear combinations of
``xin, y, x, acc, k_j`` (see :func:`fastinterp.tables.stage_matrices`). One pass reads each input once and writes
each output once, with the coefficients read from a device table: no per-stage scalar kernels, no host syncs.

This file holds, in order: the Triton kernel, its launcher, the plain-torch twin (the CPU path and the test
oracle), and the torch custom op that lets ``torch.compile`` trace either without a graph break.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:  # Triton is optional: without it (or without a GPU) the twin runs.
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the environment
    HAS_TRITON = False

__all__ = ["HAS_TRITON", "MAX_INPUTS", "MAX_OUTPUTS", "lincomb", "lincomb_op", "lincomb_ref"]

MAX_INPUTS = 7
MAX_OUTPUTS = 3

if HAS_TRITON:

    @triton.jit
    def _lincomb_kernel(
        i0, i1, i2, i3, i4, i5, i6,
        o0, o1, o2,
        coef_ptr,
        n,
        NI: tl.constexpr,
        NO: tl.constexpr,
        LD: tl.constexpr,
        BLOCK: tl.constexpr,
        F64: tl.constexpr,
    ):  # fmt: skip
        pid = tl.program_id(0)
        # int64 offsets: states of more than 2^31 elements occur (large batches of 3-D fields).
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        # fp32 math for fp32/bf16/fp16 storage (low-precision accumulation would lose the small RK increments);
        # fp64 math for fp64 storage so the fast path can be checked against the oracle to roundoff.
        ct = tl.float64 if F64 else tl.float32
        v0 = tl.load(i0 + offs, mask=mask, other=0).to(ct)
        if NI > 1:
            v1 = tl.load(i1 + offs, mask=mask, other=0).to(ct)
        if NI > 2:
            v2 = tl.load(i2 + offs, mask=mask, other=0).to(ct)
        if NI > 3:
            v3 = tl.load(i3 + offs, mask=mask, other=0).to(ct)
        if NI > 4:
            v4 = tl.load(i4 + offs, mask=mask, other=0).to(ct)
        if NI > 5:
            v5 = tl.load(i5 + offs, mask=mask, other=0).to(ct)
        if NI > 6:
            v6 = tl.load(i6 + offs, mask=mask, other=0).to(ct)
        for o in tl.static_range(NO):
            row = coef_ptr + o * LD
            acc = tl.load(row).to(ct) * v0
            if NI > 1:
                acc += tl.load(row + 1).to(ct) * v1
            if NI > 2:
                acc += tl.load(row + 2).to(ct) * v2
            if NI > 3:
                acc += tl.load(row + 3).to(ct) * v3
            if NI > 4:
                acc += tl.load(row + 4).to(ct) * v4
            if NI > 5:
                acc += tl.load(row + 5).to(ct) * v5
            if NI > 6:
                acc += tl.load(row + 6).to(ct) * v6
            if o == 0:
                tl.store(o0 + offs, acc.to(o0.dtype.element_ty), mask=mask)
            if o == 1:
                tl.store(o1 + offs, acc.to(o1.dtype.element_ty), mask=mask)
            if o == 2:
                tl.store(o2 + offs, acc.to(o2.dtype.element_ty), mask=mask)


def _check(inputs: list[Tensor], coef: Tensor, num_out: int) -> None:
    if not 1 <= len(inputs) <= MAX_INPUTS:
        raise ValueError(f"lincomb takes 1..{MAX_INPUTS} inputs, got {len(inputs)}")
    if not 1 <= num_out <= MAX_OUTPUTS:
        raise ValueError(f"lincomb writes 1..{MAX_OUTPUTS} outputs, got {num_out}")
    first = inputs[0]
    for j, v in enumerate(inputs):
        if v.shape != first.shape or v.dtype != first.dtype or v.device != first.device:
            raise ValueError(
                f"lincomb input {j} is {tuple(v.shape)} {v.dtype} {v.device}; expected "
                f"{tuple(first.shape)} {first.dtype} {first.device} like input 0"
            )
    if coef.ndim != 2 or coef.shape[0] < num_out or coef.shape[1] < len(inputs):
        raise ValueError(f"coef must be at least ({num_out}, {len(inputs)}), got {tuple(coef.shape)}")


def lincomb(inputs: list[Tensor], coef: Tensor, outputs: list[Tensor], *, block: int = 1024) -> list[Tensor]:
    """Launch the Triton kernel: ``outputs[o] = sum_i coef[o, i] * inputs[i]``, elementwise, in place.

    Outputs may alias inputs (each element is read before it is written). Inputs and outputs must be
    contiguous and alike; ``coef`` is a row-major ``(>= len(outputs), >= len(inputs))`` table slice on the device.
    """
    if not HAS_TRITON:
        raise RuntimeError("lincomb needs Triton; use lincomb_ref")
    _check(inputs, coef, len(outputs))
    for v in (*inputs, *outputs):
        if not v.is_contiguous():
            raise ValueError("lincomb needs contiguous inputs and outputs")
    if coef.stride(1) != 1:
        raise ValueError("coef rows must be contiguous")
    n = inputs[0].numel()
    ins = list(inputs) + [inputs[0]] * (MAX_INPUTS - len(inputs))
    outs = list(outputs) + [outputs[0]] * (MAX_OUTPUTS - len(outputs))
    grid = (triton.cdiv(n, block),)
    _lincomb_kernel[grid](
        *ins, *outs, coef, n,
        NI=len(inputs), NO=len(outputs), LD=coef.stride(0), BLOCK=block, F64=inputs[0].dtype == torch.float64,
    )  # fmt: skip
    return outputs


def lincomb_ref(inputs: list[Tensor], coef: Tensor, num_out: int) -> list[Tensor]:
    """Plain-torch twin of :func:`lincomb`, returning new tensors (same math: fp32, or fp64 for fp64 storage)."""
    _check(inputs, coef, num_out)
    ct = torch.float64 if inputs[0].dtype == torch.float64 else torch.float32
    vals = [v.to(ct) for v in inputs]
    out = []
    if coef.device.type == "cpu" and not torch.compiler.is_compiling():
        # eager on CPU: Python scalars let each term be one fused multiply-add pass, no temporaries
        c = coef.to(ct).tolist()
        for o in range(num_out):
            acc = vals[0] * c[o][0]
            for i in range(1, len(vals)):
                acc.add_(vals[i], alpha=c[o][i])
            out.append(acc.to(inputs[0].dtype))
        return out
    c = coef.to(ct)  # on a device (or traced): tensor scalars, no host synchronisation
    for o in range(num_out):
        acc = c[o, 0] * vals[0]
        for i in range(1, len(vals)):
            acc = acc + c[o, i] * vals[i]
        out.append(acc.to(inputs[0].dtype))
    return out


@torch.library.custom_op("fastinterp::lincomb", mutates_args=())
def lincomb_op(inputs: list[Tensor], coef: Tensor, num_out: int) -> list[Tensor]:
    """Functional custom op: the Triton kernel on CUDA, the twin elsewhere; traced by ``torch.compile``."""
    if HAS_TRITON and inputs[0].is_cuda:
        outs = [torch.empty_like(inputs[0]) for _ in range(num_out)]
        return lincomb([v.contiguous() for v in inputs], coef, outs)
    return lincomb_ref(inputs, coef, num_out)


@lincomb_op.register_fake
def _(inputs: list[Tensor], coef: Tensor, num_out: int) -> list[Tensor]:
    return [torch.empty_like(inputs[0]) for _ in range(num_out)]
