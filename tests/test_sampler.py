"""The Sampler's backends against the eager reference and the float64 oracle; compile hygiene; GPU checks."""

import pytest
import torch
import torch._dynamo
import torch._dynamo.testing
from torch._dynamo.utils import counters

import fastinterp as fi
from fastinterp.sampler import _COMPILED

CUDA = torch.cuda.is_available()


def _mixture(d=32):
    ones = torch.ones(d)
    return fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.3, 0.7]), 1.0)


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("method", sorted(fi.SOLVERS))
@pytest.mark.parametrize("prediction", fi.PREDICTIONS)
@pytest.mark.parametrize("denoise", [False, True])
def test_fused_equals_eager_float64(method, prediction, denoise, gen):
    target = _mixture(16)
    drift = target.drift(fi.Linear(), prediction=prediction).transfer(fi.LipschitzOptimal(1e-3))
    z = torch.randn(8, 16, generator=gen)
    ref = fi.sample(drift, z, steps=5, method=method, denoise=denoise)
    out = fi.Sampler(drift, steps=5, method=method, denoise=denoise, backend="fused")(z)
    assert _rel(out, ref) < 1e-13


def test_untransferred_drift_and_explicit_grid(gen):
    target = _mixture(16)
    drift = target.drift(fi.Trig(), prediction="noise")
    z = torch.randn(8, 16, generator=gen)
    grid = torch.tensor([0.01, 0.1, 0.3, 0.7, 0.95])
    ref = fi.sample(drift, z, time_grid=grid, method="rk4_38")
    assert _rel(fi.Sampler(drift, time_grid=grid, method="rk4_38", backend="fused")(z), ref) < 1e-13


@pytest.mark.parametrize("backend", ["fused", "compile"])
def test_backends_agree_in_float32_on_mixture_and_field(backend, gen):
    """fp32: every backend equals eager to 1e-5 and the float64 oracle to the fp32 sampling error."""
    ones = torch.ones(64)
    mixture = fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.3, 0.7]), 1.0)
    field = fi.targets.GaussianRandomField(16)
    cases = [
        (mixture.drift(fi.Linear(), "velocity").transfer(fi.MixtureOptimal(8.0)), torch.randn(32, 64, generator=gen)),
        (
            field.drift(fi.Linear(), "velocity").transfer(fi.LipschitzOptimal(field.nyquist_ratio())),
            torch.randn(8, 16, 16, generator=gen),
        ),
    ]
    for drift, z in cases:
        oracle = fi.sample(drift, z, steps=10)  # float64
        eager32 = fi.sample(drift, z.float(), steps=10)
        out = fi.Sampler(drift, steps=10, backend=backend)(z.float())
        assert out.dtype == torch.float32
        assert _rel(out, eager32) < 1e-5
        assert _rel(out, oracle) < 2 * _rel(eager32, oracle) + 1e-6


def test_compile_one_graph_no_breaks_no_recompiles(gen):
    """New time grids and new schedule pairs of the same length reuse the compiled step."""
    torch._dynamo.reset()
    _COMPILED.clear()
    counters.clear()
    target = _mixture(16)
    source = target.drift(fi.Linear(), prediction="velocity")
    z = torch.randn(8, 16, generator=gen)
    samplers = [
        fi.Sampler(source.transfer(fi.LipschitzOptimal(1e-3)), steps=6, backend="compile"),
        fi.Sampler(source.transfer(fi.LipschitzOptimal(1e-3)), steps=6, t_min=0.05, t_max=0.9, backend="compile"),
        fi.Sampler(source.transfer(fi.Trig()), steps=6, t_min=0.01, t_max=0.99, backend="compile"),
        fi.Sampler(source, steps=6, backend="compile"),  # no transfer: identity scale, same graph
    ]
    for s in samplers:
        ref = fi.sample(s.drift, z, time_grid=s.grid)
        assert _rel(s(z), ref) < 1e-12
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
    assert not counters.get("recompiles")


def test_custom_op_step_traces_fullgraph_on_cpu(gen):
    """The step built on the custom op (what runs on CUDA) compiles with fullgraph=True on CPU too."""
    torch._dynamo.reset()
    target = _mixture(16)
    drift = target.drift(fi.Linear(), prediction="velocity").transfer(fi.Trig())
    sampler = fi.Sampler(drift, steps=4, backend="compile")
    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(sampler.step_function(use_op=True), backend=counter, fullgraph=True)
    z = torch.randn(8, 16, generator=gen)
    tables = sampler._tables(z)
    x, xin = z, z * tables.first_scale
    for n in range(4):
        x, xin = compiled(x, xin, tables.M[n], tables.t_model[n])
    assert _rel(x, fi.sample(drift, z, steps=4)) < 1e-12
    assert counters["stats"]["unique_graphs"] >= 1 and not counters["graph_break"]


def test_nfe_and_errors(gen):
    drift = _mixture(4).drift(fi.Linear())
    assert fi.Sampler(drift, steps=3, method="heun", denoise=True).nfe == 7
    with pytest.raises(ValueError, match="backend must be one of"):
        fi.Sampler(drift, backend="cuda_graph")
    if not CUDA:
        with pytest.raises(ValueError, match="needs a CUDA device"):
            fi.Sampler(drift, backend="graph")(torch.randn(2, 4))
    with pytest.raises(ValueError, match="model output must match"):
        fi.Sampler(fi.Drift(lambda x, t: x[:, :2]), backend="fused")(torch.randn(2, 4))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fi.Sampler(drift, steps=0)
    nan_drift = fi.Drift(lambda x, t: x * float("nan"))
    with pytest.raises(FloatingPointError, match="not finite"):
        fi.Sampler(nan_drift, backend="fused")(torch.randn(2, 4))
    assert _rel(fi.sample(drift, torch.ones(2, 4), backend="fused"), fi.sample(drift, torch.ones(2, 4))) < 1e-13


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_graph_replay_equals_eager_without_host_syncs():
    field = fi.targets.GaussianRandomField(32)
    drift = field.drift(fi.Linear(), "velocity").transfer(fi.LipschitzOptimal(field.nyquist_ratio()))
    z = torch.randn(16, 32, 32, device="cuda")
    sampler = fi.Sampler(drift, steps=10, backend="graph", check_finite=False)
    sampler(z)  # capture
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = sampler(z)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert _rel(out, fi.sample(drift, z, steps=10)) < 1e-5


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_fused_rk4_workspace_is_at_most_8n():
    n = 1 << 22
    drift = fi.Drift(lambda x, t: -x, schedule=fi.Linear(), prediction="velocity").transfer(fi.Trig())
    z = torch.randn(n, device="cuda")
    sampler = fi.Sampler(drift, steps=4, backend="fused", check_finite=False)
    sampler(z)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    sampler(z)
    peak = torch.cuda.max_memory_allocated() - base
    assert peak <= 8 * n * z.element_size() + (1 << 20), peak / (n * z.element_size())


def test_model_receives_time_as_a_0d_tensor(gen):
    """A time passed as a Python float would recompile every step; the sampler passes 0-d tensors."""
    seen = []
    drift = fi.Drift(lambda x, t: (seen.append(type(t)), -x)[1], schedule=fi.Linear())
    fi.Sampler(drift, steps=2, backend="fused")(torch.randn(2, 3, generator=gen))
    assert len(seen) == fi.nfe(2, "rk4") and all(t is torch.Tensor for t in seen)


@pytest.mark.parametrize("backend", ["eager", "fused", "compile"])
@pytest.mark.parametrize("eps", ["optimal", 0.3])
def test_sde_backends_reproduce_sample_sde_with_the_same_seed(backend, eps, gen):
    target = _mixture(16)
    drift = target.drift(fi.Linear(), "velocity").transfer(fi.LipschitzOptimal(1e-2))
    z = torch.randn(32, 16, generator=gen)
    kw = dict(steps=30, eps=eps, t_min=0.05, denoise=True)
    ref = fi.sample_sde(drift, z, generator=torch.Generator().manual_seed(3), **kw)
    sampler = fi.Sampler(drift, generator=torch.Generator().manual_seed(3), backend=backend, **kw)
    assert sampler.nfe == 31
    assert _rel(sampler(z), ref) < 1e-13


def test_sde_sampler_errors():
    drift = _mixture(4).drift(fi.Linear())
    with pytest.raises(ValueError, match="method must be None or 'euler'"):
        fi.Sampler(drift, eps=0.1, method="rk4")
    with pytest.raises(ValueError, match="eps must be"):
        fi.Sampler(drift, eps=-0.1)
    with pytest.raises(ValueError, match="eps must be finite and >= 0 on the grid"):
        fi.Sampler(drift, eps=lambda t: -t)
    with pytest.raises(TypeError, match="generator"):
        fi.Sampler(drift, eps=0.1, generator=1)
    if CUDA:
        with pytest.raises(ValueError, match="does not run SDEs"):
            fi.Sampler(drift, eps=0.1, backend="graph")(torch.randn(2, 4, device="cuda"))
