"""The fused kernel against its torch twin (Triton interpreter on CPU) and against a float64 oracle."""

import pytest
import torch

from fastinterp.kernels import HAS_TRITON, kernels_run_on, lincomb, lincomb_op, lincomb_ref

pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton not installed")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if not kernels_run_on(DEVICE):
    pytestmark = pytest.mark.skip(reason="Triton kernels need CUDA or TRITON_INTERPRET=1")


def _case(n, ni, no, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(n, generator=g, dtype=torch.float64).to(dtype).to(DEVICE) for _ in range(ni)]
    coef = torch.randn(no + 1, ni + 2, generator=g, dtype=torch.float64).to(DEVICE)  # padded like the tables
    return inputs, coef


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("n", [1, 1000, 10007])
@pytest.mark.parametrize("ni,no", [(1, 1), (3, 2), (5, 3), (7, 3)])
def test_kernel_equals_twin(dtype, n, ni, no):
    inputs, coef = _case(n, ni, no, dtype)
    outs = [torch.empty_like(inputs[0]) for _ in range(no)]
    lincomb(inputs, coef, outs)
    # Same fp32 (fp64) math in another order (the twin may use fused multiply-adds), then one rounding to the
    # storage dtype, which may differ by one unit in the last place (Triton's CPU interpreter truncates
    # fp32 -> bf16 instead of rounding to nearest). Accumulation error scales with sum |c_i v_i|, not the result.
    unit = {torch.bfloat16: 2**-7, torch.float16: 2**-10, torch.float32: 2**-23, torch.float64: 2**-52}[dtype]
    math_eps = 2**-52 if dtype == torch.float64 else 2**-24
    for o, (got, ref) in enumerate(zip(outs, lincomb_ref(inputs, coef, no), strict=True)):
        scale = sum(coef[o, i].abs() * inputs[i].double().abs() for i in range(ni))
        tol = unit * ref.double().abs() + 2 * ni * math_eps * scale
        assert ((got.double() - ref.double()).abs() <= tol).all()


def test_outputs_may_alias_inputs():
    inputs, coef = _case(5003, 4, 2, torch.float32)
    expected = lincomb_ref(inputs, coef, 2)
    lincomb(inputs, coef, [inputs[0], inputs[3]])  # written in place over inputs 0 and 3
    torch.testing.assert_close(inputs[0], expected[0])
    torch.testing.assert_close(inputs[3], expected[1])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_low_precision_error_at_most_twice_the_plain_reference(dtype):
    inputs, coef = _case(10007, 5, 3, dtype, seed=3)
    oracle = [sum(coef[o, i] * inputs[i].double() for i in range(5)) for o in range(3)]
    outs = [torch.empty_like(inputs[0]) for _ in range(3)]
    lincomb(inputs, coef, outs)
    for o in range(3):
        plain = coef[o, 0].to(dtype) * inputs[0]  # what an eager loop in the storage dtype computes
        for i in range(1, 5):
            plain = plain + coef[o, i].to(dtype) * inputs[i]
        err_kernel = (outs[o].double() - oracle[o]).abs().max()
        err_plain = (plain.double() - oracle[o]).abs().max()
        assert err_kernel <= 2 * err_plain


def test_custom_op_registration():
    inputs, coef = _case(257, 3, 2, torch.float32)
    torch.library.opcheck(lincomb_op, (inputs, coef, 2))
    for a, b in zip(lincomb_op(inputs, coef, 2), lincomb_ref(inputs, coef, 2), strict=True):
        torch.testing.assert_close(a, b)


def test_bad_arguments():
    inputs, coef = _case(10, 3, 1, torch.float32)
    with pytest.raises(ValueError, match="input 1"):
        lincomb_ref([inputs[0], inputs[1][:5], inputs[2]], coef, 1)
    with pytest.raises(ValueError, match="coef must be"):
        lincomb_ref(inputs, coef[:, :2], 1)
    with pytest.raises(ValueError, match="1..3 outputs"):
        lincomb_ref(inputs, coef, 4)
    with pytest.raises(ValueError, match="contiguous"):
        lincomb([x.reshape(2, 5).t() for x in inputs], coef, [torch.empty(5, 2).t()])
