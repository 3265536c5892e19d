"""The fused stage update against its torch twin and a float64 oracle: the Triton kernel (interpreter on CPU) and the
native CPU kernel of ``fastinterp._core``, over dtypes (mixed too), odd sizes, every input/output count, aliasing and
padded coefficient tables.

The Triton tests run on CUDA or under ``TRITON_INTERPRET=1`` (slow there: ~1e4 elements at most); the native tests
run in every CPU run and skip if the native core lacks the kernel.
"""

import os
import subprocess
import sys
import threading

import pytest
import torch

from fastinterp.kernels import (
    HAS_NATIVE,
    HAS_TRITON,
    MAX_INPUTS,
    MAX_OUTPUTS,
    kernels_run_on,
    lincomb,
    lincomb_cpu,
    lincomb_op,
    lincomb_ref,
)

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
triton_only = pytest.mark.skipif(
    not kernels_run_on(DEVICE),
    reason="triton not installed" if not HAS_TRITON else "Triton kernels need CUDA or TRITON_INTERPRET=1",
)
native_only = pytest.mark.skipif(not HAS_NATIVE, reason="fastinterp._core was built without the lincomb kernel")

F64, F32, BF16, F16 = torch.float64, torch.float32, torch.bfloat16, torch.float16
UNIT = {BF16: 2**-7, F16: 2**-10, F32: 2**-23, F64: 2**-52}  # spacing of the significands at 1 (one ulp)
TINY = {BF16: 2**-133, F16: 2**-24, F32: 2**-149, F64: 2**-1074}  # spacing of the subnormals (fp16's are common)

# Dtype layouts: (dtype of each input i, in turn; the dtypes of the outputs, in turn). "mixed" layouts are the
# sampler's: float32 state buffers (x, acc, k_j) beside a low-precision model input and output (xin, y) that are
# inputs 0 and 1 and output 1 (the next model input).
LAYOUTS = {
    "float32": ((F32,), (F32,)),
    "bfloat16": ((BF16,), (BF16,)),
    "float16": ((F16,), (F16,)),
    "float64": ((F64,), (F64,)),
    "mixed_bf16": ((BF16, BF16, F32), (F32, BF16, F32)),
    "mixed_fp16": ((F16, F16, F32), (F32, F16, F32)),
    "mixed_fp64": ((F32, F64, BF16), (F32, BF16, F64)),  # one float64 input: float64 math, every output rounded once
}


def _dtypes(layout, ni, no):
    ins, outs = LAYOUTS[layout]
    return [ins[i % len(ins)] for i in range(ni)], [outs[o % len(outs)] for o in range(no)]


def _case(n, ni, no, dtype, seed=0, device=DEVICE, out_dtypes=None):
    """Inputs of ``dtype`` (one dtype, or one per input) and a NaN-padded coefficient slice with row stride > ni."""
    g = torch.Generator().manual_seed(seed)
    dtypes = dtype if isinstance(dtype, list) else [dtype] * ni
    inputs = [torch.randn(n, generator=g, dtype=F64).to(dt).to(device) for dt in dtypes]
    # a slice of a padded table M[n, i] of shape (max_out, max_in): reading past (no, ni) would give NaN outputs
    table = torch.full((no + 1, ni + 2), float("nan"), dtype=F64)
    table[:no, :ni] = torch.randn(no, ni, generator=g, dtype=F64)
    return inputs, table.to(device)


def _oracle(inputs, coef, o):
    return sum(coef[o, i].item() * inputs[i].double() for i in range(len(inputs)))


def _tolerance(inputs, coef, o, ref, out_dtype):
    """One unit in the last place of the output dtype (or one subnormal step) plus the accumulation error, which
    scales with ``sum |c_i v_i|`` rather than the result (float64 math if any input is float64, else float32)."""
    math_eps = 2**-52 if any(v.dtype == F64 for v in inputs) else 2**-24
    scale = sum(abs(coef[o, i].item()) * inputs[i].double().abs() for i in range(len(inputs)))
    return UNIT[out_dtype] * ref.double().abs() + TINY[out_dtype] + 2 * len(inputs) * math_eps * scale


def _assert_close(got, ref, tol):
    err = (got.double() - ref.double()).abs()
    assert (err <= tol).all(), f"max error {err.max().item():.3g} at {err.argmax().item()} over a tolerance"


# ---- Triton ------------------------------------------------------------------------------------------------------


@triton_only
@pytest.mark.parametrize("dtype", [F32, BF16, F16, F64])
@pytest.mark.parametrize("n", [1, 1000, 10007])
@pytest.mark.parametrize("ni,no", [(1, 1), (3, 2), (5, 3), (8, 4)])
def test_kernel_equals_twin(dtype, n, ni, no):
    inputs, coef = _case(n, ni, no, dtype)
    outs = [torch.empty_like(inputs[0]) for _ in range(no)]
    lincomb(inputs, coef, outs)
    # Same fp32 (fp64) math in another order (the twin may use fused multiply-adds), then one rounding to the
    # storage dtype, which may differ by one unit in the last place (Triton's CPU interpreter truncates
    # fp32 -> bf16 instead of rounding to nearest).
    for o, (got, ref) in enumerate(zip(outs, lincomb_ref(inputs, coef, no), strict=True)):
        _assert_close(got, ref, _tolerance(inputs, coef, o, ref, dtype))


@triton_only
@pytest.mark.parametrize("layout", ["mixed_bf16", "mixed_fp16", "mixed_fp64"])
@pytest.mark.parametrize("ni,no", [(3, 2), (5, 3), (8, 4)])
def test_kernel_mixed_dtypes(layout, ni, no):
    in_dt, out_dt = _dtypes(layout, ni, no)
    inputs, coef = _case(4099, ni, no, in_dt)
    outs = [torch.empty(4099, dtype=dt, device=DEVICE) for dt in out_dt]
    lincomb(inputs, coef, outs)
    for o, got in enumerate(outs):
        oracle = _oracle(inputs, coef, o)
        assert got.dtype == out_dt[o]
        _assert_close(got, oracle, _tolerance(inputs, coef, o, oracle, out_dt[o]))


@triton_only
def test_outputs_may_alias_inputs():
    inputs, coef = _case(5003, 4, 2, F32)
    expected = lincomb_ref(inputs, coef, 2)
    lincomb(inputs, coef, [inputs[0], inputs[3]])  # written in place over inputs 0 and 3
    torch.testing.assert_close(inputs[0], expected[0])
    torch.testing.assert_close(inputs[3], expected[1])


@triton_only
@pytest.mark.parametrize("dtype", [BF16, F16, F32])
def test_low_precision_error_at_most_twice_the_plain_reference(dtype):
    inputs, coef = _case(10007, 5, 3, dtype, seed=3)
    outs = [torch.empty_like(inputs[0]) for _ in range(3)]
    lincomb(inputs, coef, outs)
    _assert_at_most_twice_plain(inputs, coef, outs)


def _assert_at_most_twice_plain(inputs, coef, outs):
    dtype = inputs[0].dtype
    for o, got in enumerate(outs):
        oracle = _oracle(inputs, coef, o)
        plain = coef[o, 0].to(dtype) * inputs[0]  # what an eager loop in the storage dtype computes
        for i in range(1, len(inputs)):
            plain = plain + coef[o, i].to(dtype) * inputs[i]
        err_kernel = (got.double() - oracle).abs().max()
        err_plain = (plain.double() - oracle).abs().max()
        assert err_kernel <= 2 * err_plain


# ---- the twin and the custom op -------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["mixed_bf16", "mixed_fp64"])
def test_twin_mixed_dtypes_follow_out_like(layout):
    in_dt, _ = _dtypes(layout, 5, 3)
    inputs, coef = _case(1001, 5, 3, in_dt, device="cpu")
    outs = lincomb_ref(inputs, coef, 3, [2, 0, 1])
    assert [v.dtype for v in outs] == [in_dt[2], in_dt[0], in_dt[1]]
    for o, got in enumerate(outs):
        oracle = _oracle(inputs, coef, o)
        _assert_close(got, oracle, _tolerance(inputs, coef, o, oracle, got.dtype))
    assert all(v.dtype == in_dt[0] for v in lincomb_ref(inputs, coef, 3))  # default: input 0's dtype


def test_twin_traces_with_fullgraph_compile():
    inputs, coef = _case(257, 3, 2, [F32, BF16, F32], device="cpu")
    compiled = torch.compile(lambda ins, c: lincomb_ref(ins, c, 2, [0, 1]), fullgraph=True, backend="eager")
    for a, b in zip(compiled(inputs, coef), lincomb_ref(inputs, coef, 2, [0, 1]), strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)


def test_custom_op_registration():
    inputs, coef = _case(257, 3, 2, F32)
    torch.library.opcheck(lincomb_op, (inputs, coef, 2, [0, 0]))
    for a, b in zip(lincomb_op(inputs, coef, 2, [0, 0]), lincomb_ref(inputs, coef, 2), strict=True):
        torch.testing.assert_close(a, b)


def test_custom_op_mixed_dtypes():
    inputs, coef = _case(257, 4, 3, [BF16, BF16, F32, F32])
    torch.library.opcheck(lincomb_op, (inputs, coef, 3, [2, 0, 3]))
    outs = lincomb_op(inputs, coef, 3, [2, 0, 3])
    assert [v.dtype for v in outs] == [F32, BF16, F32]
    for a, b in zip(outs, lincomb_ref(inputs, coef, 3, [2, 0, 3]), strict=True):
        torch.testing.assert_close(a, b)


def test_bad_arguments():
    inputs, coef = _case(10, 3, 1, F32)
    with pytest.raises(ValueError, match="input 1"):
        lincomb_ref([inputs[0], inputs[1][:5], inputs[2]], coef, 1)
    with pytest.raises(ValueError, match="coef must be"):
        lincomb_ref(inputs, coef[:, :2], 1)
    with pytest.raises(ValueError, match=f"1..{MAX_OUTPUTS} outputs"):
        lincomb_ref(inputs, coef, MAX_OUTPUTS + 1)
    with pytest.raises(ValueError, match=f"1..{MAX_INPUTS} inputs"):
        lincomb_ref(inputs * 3, coef, 1)
    with pytest.raises(TypeError, match="input 2 has dtype torch.int64"):
        lincomb_ref([inputs[0], inputs[1], inputs[2].long()], coef, 1)
    with pytest.raises(ValueError, match="out_like"):
        lincomb_ref(inputs, coef, 1, [3])
    if kernels_run_on(DEVICE):
        with pytest.raises(ValueError, match="contiguous"):
            lincomb([x.reshape(2, 5).t() for x in inputs], coef, [torch.empty(2, 5, device=DEVICE).t()])


# ---- native CPU kernel --------------------------------------------------------------------------------------------

SIZES = [1, 1000, 10007, 300_001]  # 300_001: on the multi-threaded path (>= 2 MiB of traffic) from 7 bytes an element
ALL_COUNTS = [(ni, no) for ni in range(1, MAX_INPUTS + 1) for no in range(1, MAX_OUTPUTS + 1)]


def _native_case(n, ni, no, layout, seed=0):
    in_dt, out_dt = _dtypes(layout, ni, no)
    inputs, coef = _case(n, ni, no, in_dt, seed=seed, device="cpu")
    return inputs, coef, [torch.empty(n, dtype=dt) for dt in out_dt]


def _check_native(inputs, coef, outs):
    """Against the float64 oracle, and against the twin (same math in another order) for every output whose dtype
    an input has (the twin takes each output's dtype from an input: ``out_like``)."""
    ni, no = len(inputs), len(outs)
    X = torch.stack([v.double().reshape(-1) for v in inputs])
    C = coef[:no, :ni]
    oracle, scale = C @ X, C.abs() @ X.abs()  # every output at once: large arrays are slow to allocate here
    math_eps = 2**-52 if any(v.dtype == F64 for v in inputs) else 2**-24
    dtypes = [v.dtype for v in inputs]
    like = [dtypes.index(out.dtype) if out.dtype in dtypes else 0 for out in outs]
    twin = lincomb_ref(inputs, coef, no, like)
    for o, got in enumerate(outs):
        got = got.reshape(-1)
        for ref in (oracle[o], twin[o].reshape(-1)):
            if ref.dtype in (got.dtype, F64):
                tol = UNIT[got.dtype] * ref.double().abs() + TINY[got.dtype] + 2 * ni * math_eps * scale[o]
                _assert_close(got, ref, tol)


@native_only
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("ni,no", ALL_COUNTS)
def test_native_every_count(layout, ni, no):
    inputs, coef, outs = _native_case(1031, ni, no, layout, seed=ni * 10 + no)
    assert lincomb_cpu(inputs, coef, outs) is outs
    _check_native(inputs, coef, outs)


@native_only
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("ni,no", [(1, 1), (3, 2), (5, 3), (8, 4)])
def test_native_sizes(layout, n, ni, no):
    inputs, coef, outs = _native_case(n, ni, no, layout)
    lincomb_cpu(inputs, coef, outs)
    _check_native(inputs, coef, outs)


@native_only
@pytest.mark.parametrize("layout", ["float32", "bfloat16", "float64", "mixed_bf16", "mixed_fp16"])
@pytest.mark.parametrize("n", [1000, 300_001])
def test_native_outputs_may_alias_inputs(layout, n):
    # the sampler's stage update: (xin, y, x, acc) -> (acc, xin), written over inputs 3 and 0, plus a fresh output
    inputs, coef, outs = _native_case(n, 4, 3, layout, seed=5)
    outs = [inputs[3], inputs[0], torch.empty(n, dtype=inputs[1].dtype)]
    before = [v.clone() for v in inputs]
    expected = [torch.empty(n, dtype=v.dtype) for v in outs]
    lincomb_cpu(before, coef, expected)
    lincomb_cpu(inputs, coef, outs)
    for got, want in zip(outs, expected, strict=True):
        assert torch.equal(got, want)  # the same arithmetic whether or not the memory is shared


@native_only
@pytest.mark.parametrize("dtype", [BF16, F16, F32])
@pytest.mark.parametrize("n", [10007, 300_001])
def test_native_low_precision_error_at_most_twice_the_plain_reference(dtype, n):
    inputs, coef = _case(n, 5, 3, dtype, seed=3, device="cpu")
    outs = [torch.empty_like(inputs[0]) for _ in range(3)]
    lincomb_cpu(inputs, coef, outs)
    _assert_at_most_twice_plain(inputs, coef, outs)


@native_only
@pytest.mark.parametrize("layout", ["float32", "mixed_bf16", "float64"])
def test_native_results_do_not_depend_on_threads(layout):
    inputs, coef, ref = _native_case(300_001, 5, 3, layout, seed=7)
    lincomb_cpu(inputs, coef, ref, threads=1)
    for threads in (2, 3, 7, 64):
        outs = [torch.empty_like(v) for v in ref]
        lincomb_cpu(inputs, coef, outs, threads=threads)
        assert all(torch.equal(a, b) for a, b in zip(outs, ref, strict=True))


@native_only
def test_native_from_several_python_threads():
    # one call owns the worker pool at a time; the others must still finish, correctly, on their own threads
    inputs, coef, ref = _native_case(300_001, 5, 3, "mixed_bf16", seed=9)
    lincomb_cpu(inputs, coef, ref, threads=1)
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                outs = [torch.empty_like(v) for v in ref]
                lincomb_cpu(inputs, coef, outs, threads=2)
                results.append(all(torch.equal(a, b) for a, b in zip(outs, ref, strict=True)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors and not any(w.is_alive() for w in workers)
    assert len(results) == 80 and all(results)


@native_only
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_native_after_fork_and_at_exit(tmp_path):
    # A child forked after the pool started has none of its threads; the kernel must rebuild them, not hang. The
    # child then exits with the pool's threads asleep: exit must not wait for them.
    code = """
import os, sys, torch
from fastinterp.kernels import lincomb_cpu
x = [torch.randn(300_001) for _ in range(3)]
coef = torch.randn(2, 3, dtype=torch.float64)
ref = [torch.empty(300_001) for _ in range(2)]
lincomb_cpu(x, coef, ref, threads=2)
pid = os.fork()
if pid == 0:
    outs = [torch.empty(300_001) for _ in range(2)]
    lincomb_cpu(x, coef, outs, threads=2)
    os._exit(0 if all(torch.equal(a, b) for a, b in zip(outs, ref)) else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    # cwd elsewhere: from the repository root, `-c` would import the unbuilt source tree, not the installed package
    proc = subprocess.run([sys.executable, "-c", code], timeout=120, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@native_only
def test_native_conversions_are_exactly_rounded():
    # coef = 1 over one input: the output is the input rounded once to the output dtype, to nearest even
    one = torch.ones(1, 1, dtype=F64)
    g = torch.Generator().manual_seed(11)
    bits = torch.randint(-(2**31), 2**31, (200_000,), generator=g, dtype=torch.int64).to(torch.int32)
    special = [0.0, -0.0, 2**-140, 65504.0, 65520.0, 65519.99, 1e-8, float("inf"), -float("inf"), float("nan")]
    f32 = torch.cat([bits.view(F32), torch.tensor(special, dtype=F32)])
    for dt in (BF16, F16):
        out = lincomb_cpu([f32], one, [torch.empty(len(f32), dtype=dt)])[0]
        ref = f32.to(dt)  # torch rounds float32 to nearest even
        nan = ref.isnan()
        assert torch.equal(out.isnan(), nan)
        assert torch.equal(out[~nan].view(torch.int16), ref[~nan].view(torch.int16))
    # every half and bfloat16 value widens exactly
    all16 = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    for dt in (BF16, F16):
        src = all16.view(dt)
        for wide in (F32, F64):
            out = lincomb_cpu([src], one, [torch.empty(len(src), dtype=wide)])[0]
            ref = src.to(wide)
            nan = ref.isnan()
            assert torch.equal(out.isnan(), nan) and torch.equal(out[~nan], ref[~nan])
    # float64 math rounds once: 1 + 2^-8 + 2^-30 is above the bf16 tie at 1 + 2^-8 (through float32 it would be
    # the tie itself, rounded to even: 1.0, torch's answer); likewise for fp16 at 1 + 2^-11 + 2^-40.
    for dt, x, want in ((BF16, 1 + 2**-8 + 2**-30, 1 + 2**-7), (F16, 1 + 2**-11 + 2**-40, 1 + 2**-10)):
        src = torch.tensor([x, -x], dtype=F64)
        out = lincomb_cpu([src], one, [torch.empty(2, dtype=dt)])[0]
        assert out.tolist() == [want, -want]
    # random doubles: the output is a nearest representable value, ties to even
    d = torch.randn(100_000, generator=g, dtype=F64) * torch.exp2(torch.randint(-30, 30, (100_000,), generator=g))
    for dt in (BF16, F16):
        out = lincomb_cpu([d], one, [torch.empty(len(d), dtype=dt)])[0]
        finite = out.isfinite()
        codes = out.view(torch.int16).to(torch.int32)
        err = (out.double() - d).abs()
        for step in (-1, 1):
            nb = (codes + step).to(torch.int16).view(dt).double()  # the neighbours, same sign
            nb_err = (nb - d).abs()
            ok = (err < nb_err) | ((err == nb_err) & (codes % 2 == 0)) | ~nb.isfinite()
            assert ok[finite].all()


@native_only
def test_native_special_values_propagate():
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0, 7e4], dtype=F32)
    coef = torch.tensor([[1.0], [3.0]], dtype=F64)
    out_bf16, out_f16 = lincomb_cpu([x], coef, [torch.empty(5, dtype=BF16), torch.empty(5, dtype=F16)])
    assert out_bf16.isnan()[0] and out_f16.isnan()[0]
    assert out_bf16[1:].tolist() == [float("inf"), -float("inf"), 1.0, x[4:].bfloat16().item()]
    assert out_f16[1:].tolist() == [float("inf"), -float("inf"), 3.0, float("inf")]  # 2.1e5 overflows half


@native_only
def test_native_empty_and_multidimensional():
    outs = lincomb_cpu([torch.empty(0, 3)], torch.ones(1, 1, dtype=F64), [torch.empty(0, 3)])
    assert outs[0].shape == (0, 3)
    x = torch.randn(7, 3, 5, dtype=F32)
    out = lincomb_cpu([x, x], torch.tensor([[2.0, -1.0]], dtype=F64), [torch.empty(7, 3, 5, dtype=F32)])[0]
    assert torch.equal(out, x)


@native_only
def test_native_bad_arguments():
    inputs, coef, outs = _native_case(10, 3, 1, "float32")
    cases = [
        (lambda: lincomb_cpu([inputs[0], 3, inputs[2]], coef, outs), TypeError, "input 1 must be a torch.Tensor"),
        (lambda: lincomb_cpu([inputs[0], inputs[1].long()], coef, outs), TypeError, "input 1 has dtype torch.int64"),
        (lambda: lincomb_cpu([inputs[0], inputs[1][:5]], coef, outs), ValueError, r"input 1 has shape \(5,\)"),
        (lambda: lincomb_cpu(inputs, coef, [torch.empty(10, device="meta")]), ValueError, "output 0 is on meta"),
        (
            lambda: lincomb_cpu([x.reshape(2, 5).t() for x in inputs], coef, [torch.empty(5, 2)]),
            ValueError,
            "input 0 must be contiguous",
        ),
        (lambda: lincomb_cpu(inputs, coef.float(), outs), TypeError, "coef has dtype torch.float32"),
        (lambda: lincomb_cpu(inputs, coef[:, :2], outs), ValueError, r"coef must be at least \(1, 3\)"),
        (lambda: lincomb_cpu(inputs, coef.t().contiguous().t(), outs), ValueError, "coef rows must be contiguous"),
        (lambda: lincomb_cpu(inputs, coef[0], outs), ValueError, "coef must be at least"),
        (lambda: lincomb_cpu(inputs * 3, coef, outs), ValueError, f"1..{MAX_INPUTS} inputs"),
        (lambda: lincomb_cpu(inputs, coef, outs * 5), ValueError, f"1..{MAX_OUTPUTS} outputs"),
        (lambda: lincomb_cpu(inputs[0], coef, outs), TypeError, "inputs must be a list or tuple"),
        (lambda: lincomb_cpu(inputs, coef, outs, threads=0), ValueError, "threads must be"),
        (lambda: lincomb_cpu(inputs, coef, [outs[0], outs[0]]), ValueError, "output 1 overlaps output 0"),
        (lambda: lincomb_cpu(inputs, coef, [inputs[1].view(torch.int32)]), TypeError, "output 0 has dtype"),
    ]
    base = torch.randn(11, dtype=F32)
    cases.append(
        (lambda: lincomb_cpu([base[1:]], coef, [base[:-1]]), ValueError, "output 0 partially overlaps input 0")
    )
    cases.append(
        (
            lambda: lincomb_cpu([base[:10]], coef, [base[:10].view(torch.int32).view(F32)[:5].view(BF16)]),
            ValueError,
            "partially overlaps",
        )
    )
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()
    assert lincomb_cpu(inputs, coef, outs) is outs  # the checks left nothing behind
