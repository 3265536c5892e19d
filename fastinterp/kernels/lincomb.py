"""Fused stage update: several outputs, each a linear combination of the same few full-size inputs.

Every RK stage of a (transferred) drift reduces to this: with the model output ``y`` in hand, the stage drift,
the running RK sum, the next model input and any stored stage drift are all fixed linear combinations of
``xin, y, x, acc, k_j`` (see :func:`fastinterp.sampling.layout.stage_matrices`). One pass reads each input once and
writes each output once, with the coefficients read from a device table: no per-stage scalar kernels, no host syncs.

Arrays may mix float64, float32, bfloat16 and float16 (float32 state buffers beside a bf16 model's input and
output). The math is float64 if any input is float64, else float32; each output is rounded once to its own dtype.

This file holds, in order: the Triton kernel, its launcher, the native CPU launcher (``fastinterp._core``), the
plain-torch twin (the fallback and the test oracle), and the torch custom op that lets ``torch.compile`` trace
either without a graph break.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:  # Triton is optional: without it (or without a GPU) the native kernel or the twin runs.
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the environment
    HAS_TRITON = False

try:  # the native core is optional too (a source checkout that was never built)
    from .._core import lincomb as _native_lincomb
except ImportError:  # pragma: no cover - depends on the build
    _native_lincomb = None

HAS_NATIVE = _native_lincomb is not None

__all__ = [
    "HAS_NATIVE",
    "HAS_TRITON",
    "MAX_INPUTS",
    "MAX_OUTPUTS",
    "lincomb",
    "lincomb_cpu",
    "lincomb_op",
    "lincomb_ref",
]

MAX_INPUTS = 8
MAX_OUTPUTS = 4
_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
_CODES = {dt: code for code, dt in enumerate(_DTYPES)}  # the same order as csrc/lincomb.cpp's dtype codes

if HAS_TRITON:

    @triton.jit
    def _f32_round_to_odd(x):
        # float64 -> float32 truncated, last bit set when inexact: rounding that to bf16 / fp16 (13+ fewer bits) is
        # the correctly rounded float64 -> bf16 / fp16 value (one rounding, as csrc/lincomb.cpp does), where
        # float64 -> float32 -> bf16 would round twice (and the interpreter has no float64 -> bf16 cast).
        f = x.to(tl.float32)
        back = f.to(tl.float64)
        inexact = (back != x) & (x == x)
        away = tl.abs(back) > tl.abs(x)
        u = f.to(tl.int32, bitcast=True)
        u = (u - (inexact & away).to(tl.int32)) | inexact.to(tl.int32)
        return u.to(tl.float32, bitcast=True)

    @triton.jit
    def _load(ptr, offs, mask, ct: tl.constexpr, MASKED: tl.constexpr):
        if MASKED:
            return tl.load(ptr + offs, mask=mask, other=0).to(ct)
        return tl.load(ptr + offs).to(ct)

    @triton.jit
    def _store(ptr, acc, offs, mask, F64: tl.constexpr, MASKED: tl.constexpr):
        ty: tl.constexpr = ptr.dtype.element_ty
        if F64 and ty.primitive_bitwidth == 16:
            val = _f32_round_to_odd(acc).to(ty)
        else:
            val = acc.to(ty)  # a downcast rounds to nearest even on the GPU (the CPU interpreter truncates to bf16)
        if MASKED:
            tl.store(ptr + offs, val, mask=mask)
        else:
            tl.store(ptr + offs, val)

    @triton.jit
    def _lincomb_block(
        i0, i1, i2, i3, i4, i5, i6, i7,
        o0, o1, o2, o3,
        coef_ptr, offs, mask,
        NI: tl.constexpr, NO: tl.constexpr, LD: tl.constexpr, F64: tl.constexpr, MASKED: tl.constexpr,
    ):  # fmt: skip
        # fp32 math for fp32/bf16/fp16 storage (low-precision accumulation would lose the small RK increments);
        # fp64 math when any input is fp64, so the fast path can be checked against the oracle to roundoff.
        # Each pointer keeps its own element type: mixed dtypes cost nothing beyond the casts.
        ct: tl.constexpr = tl.float64 if F64 else tl.float32
        v0 = _load(i0, offs, mask, ct, MASKED)
        if NI > 1:
            v1 = _load(i1, offs, mask, ct, MASKED)
        if NI > 2:
            v2 = _load(i2, offs, mask, ct, MASKED)
        if NI > 3:
            v3 = _load(i3, offs, mask, ct, MASKED)
        if NI > 4:
            v4 = _load(i4, offs, mask, ct, MASKED)
        if NI > 5:
            v5 = _load(i5, offs, mask, ct, MASKED)
        if NI > 6:
            v6 = _load(i6, offs, mask, ct, MASKED)
        if NI > 7:
            v7 = _load(i7, offs, mask, ct, MASKED)
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
            if NI > 7:
                acc += tl.load(row + 7).to(ct) * v7
            if o == 0:
                _store(o0, acc, offs, mask, F64, MASKED)
            if o == 1:
                _store(o1, acc, offs, mask, F64, MASKED)
            if o == 2:
                _store(o2, acc, offs, mask, F64, MASKED)
            if o == 3:
                _store(o3, acc, offs, mask, F64, MASKED)

    @triton.jit
    def _lincomb_kernel(
        i0, i1, i2, i3, i4, i5, i6, i7,
        o0, o1, o2, o3,
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
        start = pid.to(tl.int64) * BLOCK
        offs = start + tl.arange(0, BLOCK)
        mask = offs < n
        # Full blocks take the unmasked copy of the body, whose accesses are 16-byte vectors (each thread's
        # BLOCK / (32 num_warps) consecutive elements) for any n: a mask is only known constant over a vector when n
        # is a multiple of 16, which Triton specialises on but the sampler's sizes need not be. Only the last block
        # pays for the mask. tests/test_kernels_ptx.py checks the PTX for the vectors and for spills.
        if start + BLOCK <= n:
            _lincomb_block(
                i0, i1, i2, i3, i4, i5, i6, i7, o0, o1, o2, o3, coef_ptr, offs, mask, NI, NO, LD, F64, False
            )  # fmt: skip
        else:
            _lincomb_block(
                i0, i1, i2, i3, i4, i5, i6, i7, o0, o1, o2, o3, coef_ptr, offs, mask, NI, NO, LD, F64, True
            )  # fmt: skip


def _math_dtype(inputs: list[Tensor]) -> torch.dtype:
    return torch.float64 if any(v.dtype == torch.float64 for v in inputs) else torch.float32


def _check_like(kind: str, tensors: list[Tensor], first: Tensor) -> None:
    """Every tensor has one of the four dtypes and ``first``'s shape and device (``kind``: input or output)."""
    for j, v in enumerate(tensors):
        if v.dtype not in _CODES:
            raise TypeError(f"lincomb {kind} {j} has dtype {v.dtype}; expected one of {', '.join(map(str, _DTYPES))}")
        if v.shape != first.shape or v.device != first.device:
            raise ValueError(
                f"lincomb {kind} {j} is {tuple(v.shape)} on {v.device}; expected "
                f"{tuple(first.shape)} on {first.device} like input 0"
            )


def _check(inputs: list[Tensor], coef: Tensor, num_out: int) -> None:
    if not isinstance(inputs, (list, tuple)) or not all(isinstance(v, Tensor) for v in inputs):
        got = type(inputs).__name__ if not isinstance(inputs, (list, tuple)) else "a list holding non-tensors"
        raise TypeError(f"lincomb inputs must be a list of tensors, got {got}")
    if not isinstance(coef, Tensor):
        raise TypeError(f"lincomb coef must be a float64 tensor, got {type(coef).__name__}")
    if not 1 <= len(inputs) <= MAX_INPUTS:
        raise ValueError(f"lincomb takes 1..{MAX_INPUTS} inputs, got {len(inputs)}")
    if not 1 <= num_out <= MAX_OUTPUTS:
        raise ValueError(f"lincomb writes 1..{MAX_OUTPUTS} outputs, got {num_out}")
    _check_like("input", inputs, inputs[0])
    if coef.ndim != 2 or coef.shape[0] < num_out or coef.shape[1] < len(inputs):
        raise ValueError(f"coef must be at least ({num_out}, {len(inputs)}), got {tuple(coef.shape)}")


def _out_dtypes(inputs: list[Tensor], num_out: int, out_like: list[int] | None) -> list[torch.dtype]:
    if out_like is None:
        return [inputs[0].dtype] * num_out
    if len(out_like) != num_out or not all(0 <= k < len(inputs) for k in out_like):
        raise ValueError(f"out_like must hold {num_out} input indices in 0..{len(inputs) - 1}, got {out_like}")
    return [inputs[k].dtype for k in out_like]


def lincomb(inputs: list[Tensor], coef: Tensor, outputs: list[Tensor], *, block: int = 1024) -> list[Tensor]:
    """Launch the Triton kernel: ``outputs[o] = sum_i coef[o, i] * inputs[i]``, elementwise, in place.

    Args:
        inputs: 1..8 contiguous tensors of one shape and device; float64, float32, bfloat16 or float16, mixed.
        coef: float64 ``(>= len(outputs), >= len(inputs))`` table slice on the device, columns contiguous (the row
            stride may exceed ``len(inputs)``).
        outputs: 1..4 contiguous tensors like the inputs (any of the four dtypes each); may alias inputs (each
            element is read before it is written).
        block: elements per program.

    Returns:
        ``outputs``. Math in float64 if any input is float64, else float32; one rounding per output.
    """
    if not HAS_TRITON:
        raise RuntimeError("lincomb needs Triton; use lincomb_cpu or lincomb_ref")
    _check(inputs, coef, len(outputs))
    _check_like("output", outputs, inputs[0])
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
        NI=len(inputs), NO=len(outputs), LD=coef.stride(0), BLOCK=block, F64=_math_dtype(inputs) == torch.float64,
    )  # fmt: skip
    return outputs


def lincomb_cpu(
    inputs: list[Tensor], coef: Tensor, outputs: list[Tensor], *, threads: int | None = None
) -> list[Tensor]:
    """The native CPU kernel (``fastinterp._core``): ``outputs[o] = sum_i coef[o, i] * inputs[i]``, in place.

    Same contract as :func:`lincomb`, on CPU tensors: one pass that reads each input once and writes each output
    once, vectorised, on up to ``threads`` threads for large arrays (small ones stay on the calling thread), with the
    GIL released. Float64 math rounds once to bf16/fp16 outputs (torch's ``.to()`` from float64 rounds twice, through
    float32; the two differ by one unit on rare ties).

    Args:
        inputs: 1..8 contiguous CPU tensors of one shape; float64, float32, bfloat16 or float16, mixed.
        coef: float64 CPU ``(>= len(outputs), >= len(inputs))`` table slice, columns contiguous (the row stride may
            exceed ``len(inputs)``).
        outputs: 1..4 contiguous CPU tensors of that shape, any of the four dtypes each. An output may alias an
            input (the same memory with the same dtype); any other overlap is a ValueError.
        threads: most threads to use, >= 1; ``None``: ``torch.get_num_threads()``.

    Returns:
        ``outputs``.

    Raises:
        TypeError: an argument that is not a tensor, or of the wrong dtype.
        ValueError: wrong counts, devices, shapes, strides or overlaps (the message names the argument).
    """
    if _native_lincomb is None:
        raise RuntimeError("lincomb_cpu needs fastinterp._core with the lincomb kernel; reinstall fastinterp")
    if threads is None:
        threads = torch.get_num_threads()
    elif not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"lincomb_cpu threads must be an int >= 1 or None, got {threads!r}")
    # Every tensor is checked in the native core (csrc/lincomb.cpp says why there and not here: it halves the
    # per-call overhead, which is most of an update's time at N = 1e4).
    _native_lincomb(inputs, coef, outputs, threads)
    return outputs


def lincomb_ref(inputs: list[Tensor], coef: Tensor, num_out: int, out_like: list[int] | None = None) -> list[Tensor]:
    """Plain-torch twin of :func:`lincomb`, returning new tensors (same math: fp32, or fp64 if any input is fp64).

    Args:
        inputs: 1..8 tensors of one shape and device, any of float64, float32, bfloat16, float16.
        coef: float64 ``(>= num_out, >= len(inputs))`` coefficients on the inputs' device.
        num_out: number of outputs, 1..4.
        out_like: for each output, the index of the input whose dtype it takes (default: input 0's for all).

    Returns:
        ``num_out`` new tensors, ``sum_i coef[o, i] * inputs[i]`` rounded to their dtype by torch's ``.to()``
        (from float64 math to bf16/fp16 that rounds twice, through float32: one unit off the kernels on rare ties).
    """
    _check(inputs, coef, num_out)
    dtypes = _out_dtypes(inputs, num_out, out_like)
    ct = _math_dtype(inputs)
    vals = [v.to(ct) for v in inputs]
    out = []
    if coef.device.type == "cpu" and not torch.compiler.is_compiling():
        # eager on CPU: Python scalars let each term be one fused multiply-add pass, no temporaries
        c = coef.to(ct).tolist()
        for o in range(num_out):
            acc = vals[0] * c[o][0]
            for i in range(1, len(vals)):
                acc.add_(vals[i], alpha=c[o][i])
            out.append(acc.to(dtypes[o]))
        return out
    c = coef.to(ct)  # on a device (or traced): tensor scalars, no host synchronisation
    for o in range(num_out):
        acc = c[o, 0] * vals[0]
        for i in range(1, len(vals)):
            acc = acc + c[o, i] * vals[i]
        out.append(acc.to(dtypes[o]))
    return out


@torch.library.custom_op("fastinterp::lincomb", mutates_args=())
def lincomb_op(inputs: list[Tensor], coef: Tensor, num_out: int, out_like: list[int]) -> list[Tensor]:
    """Functional custom op: the Triton kernel on CUDA, the twin elsewhere; traced by ``torch.compile``.

    ``out_like[o]`` is the index of the input whose dtype output ``o`` takes (the schema has no list of dtypes).
    """
    if HAS_TRITON and inputs[0].is_cuda:
        _check(inputs, coef, num_out)
        ins = [v.contiguous() for v in inputs]
        outs = [torch.empty_like(ins[0], dtype=dt) for dt in _out_dtypes(inputs, num_out, out_like)]
        return lincomb(ins, coef, outs)
    return lincomb_ref(inputs, coef, num_out, out_like)


@lincomb_op.register_fake
def _(inputs: list[Tensor], coef: Tensor, num_out: int, out_like: list[int]) -> list[Tensor]:
    return [torch.empty_like(inputs[0], dtype=dt) for dt in _out_dtypes(inputs, num_out, out_like)]
