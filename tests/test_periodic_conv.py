"""The fast periodic convolutions (fastinterp/models/periodic.py) against torch's circular padding, the UNet in both
modes, old checkpoints, the faster training step against the plain loop, and a smoke run of
benchmarks/bench_training.py."""

import hashlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastinterp as fi
from fastinterp.checkpoint import load_checkpoint, save_checkpoint
from fastinterp.interpolants import Interpolant, interpolant_loss
from fastinterp.models import UNet, build_model, model_from_config
from fastinterp.models.periodic import PeriodicConv1d, PeriodicConv2d, circular_pad, fold_circular
from fastinterp.training import train, training_loss

UNETS = ["tiny-1d", "tiny-2d", "small-2d"]
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}  # relative, of the largest entry


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny ops on shared cores (conftest.py)


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    err = float((a - b).abs().max() / b.abs().max().clamp_min(1e-300)) if a.numel() else 0.0
    assert err < TOL[dtype], f"{what}: relative difference {err:.2e} (tolerance {TOL[dtype]:.0e})"


def _forward_and_grads(module: nn.Module, x: torch.Tensor, *args) -> torch.Tensor:
    """The output, the input's gradient and every parameter's, concatenated (one vector to compare)."""
    x = x.detach().requires_grad_()
    module.zero_grad(set_to_none=True)
    y = module(x, *args)
    y.sin().sum().backward()  # a nonlinear read-out, so every output entry has its own weight
    return torch.cat([y.detach().flatten(), x.grad.flatten()] + [p.grad.flatten() for p in module.parameters()])


PAD_CASES = [((2, 3, 7), (1,)), ((2, 3, 4), (2,)), ((3, 1, 3), (3,)), ((2, 3, 5, 6), (1, 1)), ((1, 2, 3, 4), (2, 1)),
             ((2, 2, 2, 2), (2, 2))]  # fmt: skip


@pytest.mark.parametrize("shape, pads", PAD_CASES)
def test_circular_pad_values_and_gradient_are_torchs(shape, pads, gen):
    """Odd and even sizes, pads up to the size (the halo wraps once): values are F.pad's, the gradient its adjoint."""
    x = torch.randn(shape, generator=gen, requires_grad=True)
    torch_pads = [p for q in reversed(pads) for p in (q, q)]
    ref = F.pad(x, torch_pads, mode="circular")
    out = circular_pad(x, pads)
    assert torch.equal(out, ref)
    g = torch.randn(ref.shape, generator=gen)
    (want,) = torch.autograd.grad(ref, x, g)
    (got,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(fold_circular(g, pads), want, rtol=1e-14, atol=1e-14)
    # the backward is made of differentiable ops: second derivatives work (e.g. a gradient penalty)
    torch.autograd.gradgradcheck(lambda v: circular_pad(v, pads), (x,), (g,))


def test_circular_pad_refuses_a_halo_wider_than_the_grid():
    with pytest.raises(ValueError, match=r"pads \(3,\) exceed the grid \(2,\)"):
        circular_pad(torch.zeros(1, 1, 2), (3,))
    with pytest.raises(ValueError, match="need >= 0 entries"):
        circular_pad(torch.zeros(1, 1, 2), (-1,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("dim, grid, stride, silu", [(1, (9,), 1, False), (1, (8,), 2, True), (1, (2,), 1, True),
                                                     (2, (5, 6), 1, True), (2, (6, 8), 2, False),
                                                     (2, (7, 3), 2, True), (2, (1, 4), 1, False)])  # fmt: skip
def test_periodic_conv_fast_equals_reference(dim, grid, stride, silu, dtype, gen):
    """Forward and every gradient, odd/even/size-1 grids, the strided (down-sampling) convolutions too."""
    conv = (PeriodicConv1d if dim == 1 else PeriodicConv2d)(3, 4, 3, stride=stride, padding=1).to(dtype)
    x = torch.randn(2, 3, *grid, generator=gen, dtype=dtype)

    def run(fast: bool) -> torch.Tensor:
        conv.fast = fast
        return _grads(conv, x, silu)

    _close(run(True), run(False), dtype, f"{dim}-D conv stride {stride} grid {grid}")
    assert conv.padding_mode == "circular" and conv.extra_repr().endswith("fast=False")


def _grads(conv: nn.Module, x: torch.Tensor, silu: bool) -> torch.Tensor:
    x = x.detach().requires_grad_()
    conv.zero_grad(set_to_none=True)
    y = conv(x, silu=silu)
    y.sin().sum().backward()
    return torch.cat([y.detach().flatten(), x.grad.flatten(), conv.weight.grad.flatten(), conv.bias.grad.flatten()])


def test_periodic_conv_second_derivatives(gen):
    """The fast node's backward (the in-place fold, SiLU's derivative) is itself differentiable."""
    conv = PeriodicConv2d(2, 2, 3, padding=1)
    x = torch.randn(1, 2, 3, 4, generator=gen, requires_grad=True)
    torch.autograd.gradgradcheck(lambda v, w: conv._unpadded(_pad_silu(v), w, None), (x, conv.weight))
    torch.autograd.gradgradcheck(lambda v: conv(v, silu=True), (x,))


def _pad_silu(v: torch.Tensor) -> torch.Tensor:
    from fastinterp.models.periodic import _CircularPad

    return _CircularPad.apply(v, (1, 1), True, True)


def test_periodic_conv_reference_is_torchs_own_module(gen):
    """fast=False is nn.Conv2d(padding_mode="circular") itself: same parameters, same output bit for bit."""
    conv = PeriodicConv2d(2, 3, 3, padding=1, fast=False)
    plain = nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular")
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(2, 2, 5, 4, generator=gen)
    assert torch.equal(conv(x), plain(x)) and conv.state_dict().keys() == plain.state_dict().keys()
    with pytest.raises(TypeError, match="fast must be a bool, got str"):
        conv.fast = "yes"
    with pytest.raises(ValueError, match="needs integer padding"):
        PeriodicConv1d(1, 1, 3, padding="same")


def test_torch_func_transforms_raise_on_the_fast_path(gen):
    """No silent wrong answer: torch.func refuses the fast node; the reference path works under it."""
    conv = PeriodicConv1d(2, 2, 3, padding=1)
    x = torch.randn(1, 1, 2, 5, generator=gen)
    with pytest.raises(RuntimeError, match="functorch transforms"):
        torch.func.vmap(conv)(x)
    conv.fast = False
    torch.testing.assert_close(torch.func.vmap(conv)(x)[0], conv(x[0]))


def _randomised(preset: str, dtype: torch.dtype, periodic: str = "fast") -> UNet:
    torch.manual_seed(0)
    net = build_model(preset, periodic=periodic).to(dtype)
    with torch.no_grad():
        for p in net.parameters():  # the output layer starts at zero; randomise everything to see the whole net
            p.normal_(0, 0.2)
    return net


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("preset", UNETS)
def test_unet_fast_equals_reference(preset, dtype, gen):
    """Same weights, both modes: forward, input and parameter gradients agree to rounding, on a non-square grid
    whose coarse levels are odd (10 x 6 -> 5 x 3; 1-D: 18 -> 9)."""
    net = _randomised(preset, dtype)
    factor = 2 ** (net.levels - 1)
    grid = (9 * factor,) if net.dim == 1 else (5 * factor, 3 * factor)
    x = torch.randn(3, *grid, generator=gen, dtype=dtype)
    t = torch.rand(3, generator=gen, dtype=dtype)
    out = {}
    for mode in ("reference", "fast"):
        net.periodic = mode
        out[mode] = _forward_and_grads(net, x, t)
    _close(out["fast"], out["reference"], dtype, f"{preset} {dtype}")
    # the mode is not part of the function, hence not of the config a checkpoint records
    assert "periodic" not in net.config and model_from_config(net.config).periodic == "fast"


def test_periodic_mode_is_checked_once_in_one_place():
    with pytest.raises(ValueError, match="periodic must be one of fast, reference, got 'circular'"):
        build_model("tiny-1d", periodic="circular")
    with pytest.raises(ValueError, match="periodic must be one of fast, reference, got 'zeros'"):
        build_model("tiny-2d").periodic = "zeros"
    with pytest.raises(ValueError, match="periodic must be one of"):
        UNet(dim=1, periodic=None)
    assert build_model("mlp:3", periodic="reference") is not None  # no convolutions: either mode is the MLP
    net = build_model("tiny-2d", periodic="reference")
    assert net.periodic == "reference" and not any(m.fast for m in net.modules() if hasattr(m, "fast"))
    net.periodic = "fast"
    assert all(m.fast for m in net.modules() if isinstance(m, (PeriodicConv1d, PeriodicConv2d)))


#: Computed with the network of before the fast path (nn.Conv{1,2}d(padding_mode="circular"), git history) on the
#: weights and inputs of _golden_case: sha256 of its state-dict keys and shapes, every (numel // 6)-th output, norm.
OLD = {
    "tiny-1d": ("54a8ec0384419b92", [-0.429177266649, -0.34116714622, -0.328215991896, -0.480361390521,
                                     -0.278347416112, -0.31364513204, -0.350103715129], 2.314268694127256),
    "small-2d": ("fa8c462bd40bae01", [0.184783036306, 0.35859485593, 0.215141357409, -0.169629199289,
                                      -0.145763782821, -0.09170642717], 3.7330260872699474),
}  # fmt: skip


def _golden_case(net: nn.Module, grid: tuple[int, ...]) -> tuple[dict, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    state = {k: 0.2 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in net.state_dict().items()}
    return (
        state,
        torch.randn(2, *grid, generator=g, dtype=torch.float64),
        torch.rand(2, generator=g, dtype=torch.float64),
    )


@pytest.mark.parametrize("preset, grid", [("tiny-1d", (16,)), ("small-2d", (8, 12))])
def test_old_checkpoints_load_and_give_the_old_outputs(preset, grid, tmp_path):
    """The state-dict keys and shapes are those of the network before the fast path, so its checkpoints load
    strictly; in either mode the network computes the old function (outputs recorded from the old code)."""
    digest, values, norm = OLD[preset]
    net = build_model(preset).double()
    text = "\n".join(f"{k} {tuple(v.shape)}" for k, v in net.state_dict().items())
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == digest
    state, x, t = _golden_case(net, grid)
    net.load_state_dict(state)
    path = save_checkpoint(tmp_path / "c.pt", net, schedule=fi.Linear(), prediction="velocity")
    loaded = load_checkpoint(path)["network"]
    for mode in ("fast", "reference"):
        loaded.periodic = mode
        with torch.no_grad():
            y = loaded(x, t)
        got = y.flatten()[:: max(1, y.numel() // 6)]
        torch.testing.assert_close(got, torch.tensor(values), rtol=1e-10, atol=1e-11)
        assert abs(float(y.norm()) - norm) < 1e-10 * norm, mode


def test_training_loss_is_interpolant_losss_antithetic_pair(gen):
    """One call on the doubled batch = interpolant_loss's two calls, from the same generator state."""
    net = _randomised("tiny-1d", torch.float64)
    x1 = torch.randn(5, 16, generator=gen)
    calls = []
    counted = lambda x, t: calls.append(x.shape[0]) or net(x, t)  # noqa: E731
    interp = Interpolant(fi.Linear())
    for antithetic in (True, False):
        for prediction in ("velocity", "x1", "noise", "score"):
            calls.clear()
            want = interpolant_loss(net, x1, prediction=prediction, interpolant=interp, antithetic=antithetic,
                                    generator=torch.Generator().manual_seed(7))  # fmt: skip
            got = training_loss(counted, x1, interpolant=interp, prediction=prediction, antithetic=antithetic,
                                generator=torch.Generator().manual_seed(7))  # fmt: skip
            assert calls == [10 if antithetic else 5]
            torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="one-sided interpolant"):
        training_loss(net, x1, interpolant=Interpolant(gamma="sqrt(t(1-t))"), prediction="velocity",
                      antithetic=True, generator=gen)  # fmt: skip


@pytest.mark.parametrize("preset, grid", [("tiny-1d", (16,)), ("tiny-2d", (8, 8))])
def test_train_losses_equal_the_plain_loops(preset, grid, load_benchmark):
    """train() (fast convolutions, one call per antithetic pair, fused AdamW, multi-tensor clipping and EMA) follows
    the plain loop of before (benchmarks/bench_training.py: plain_train, reference convolutions) to rounding."""
    data = torch.randn(32, *grid, generator=torch.Generator().manual_seed(0))
    plain_net, fast_net = (_randomised(preset, torch.float64, mode) for mode in ("reference", "fast"))
    plain = load_benchmark("bench_training").plain_train(plain_net, data, steps=5, batch_size=4)
    fast = train(fast_net, data, steps=5, batch_size=4, progress=False)
    torch.testing.assert_close(torch.tensor(fast.losses), torch.tensor(plain), rtol=1e-10, atol=0)
    for a, b in zip(fast.model.parameters(), plain_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_compile_must_be_a_bool():
    with pytest.raises(TypeError, match="compile must be a bool, got str"):
        train(build_model("tiny-1d"), torch.randn(4, 8), steps=1, batch_size=2, progress=False, compile="yes")


@pytest.mark.slow
def test_compiled_training_losses_equal_the_eager_ones():
    """train(compile=True) (minutes of compile on a small CPU) gives the eager losses to rounding."""
    torch.set_default_dtype(torch.float32)
    data = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    runs = {}
    for compile in (False, True):
        torch.manual_seed(0)
        runs[compile] = train(build_model("tiny-1d"), data, steps=4, batch_size=4, progress=False, compile=compile)
    torch.testing.assert_close(torch.tensor(runs[True].losses), torch.tensor(runs[False].losses), rtol=1e-5, atol=0)


def test_bench_training_smoke(capsys, load_benchmark):
    """A tiny run of the benchmark prints its table and a Goals block (no speed asserted: that is its job)."""
    torch.set_default_dtype(torch.float32)
    assert load_benchmark("bench_training").main(["--quick", "--grid", "8", "--batch", "2", "--steps", "1"]) == 0
    text = capsys.readouterr().out
    for label in ("plain loop, reference conv", "train(), reference conv", "train(), fast conv",
                  "train(), zero padding (bound)"):  # fmt: skip
        assert f"| {label} |" in text
    assert "## tiny-1d" in text and "### Goals" in text and "steps/s vs the plain loop" in text
