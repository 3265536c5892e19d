"""The Sampler's backends against the eager reference and the float64 oracle; compile hygiene; GPU checks."""

import pytest
import torch
import torch._dynamo
import torch._dynamo.testing
from torch._dynamo.utils import counters

import fastinterp as fi
from fastinterp.sampling import compiled

CUDA = torch.cuda.is_available()


def _mixture(d=32):
    ones = torch.ones(d)
    return fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.3, 0.7]), 1.0)


def _rel(a, b):
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


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
    compiled.cache_clear()
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


def test_fifty_batch_sizes_and_twenty_models_through_auto_in_one_process(gen):
    """Dynamo's recompile limit is per code object: every sampler's artefacts have their own, and the batch
    dimension goes dynamic after the second size, so nothing here may raise (the old shared step failed at b = 9)."""
    compiled.cache_clear()
    sampler = fi.Sampler(fi.Drift(lambda x, t: -x), steps=2, backend="auto")
    for b in range(1, 51):
        z = torch.randn(b, 4, generator=gen)
        assert _rel(sampler(z), fi.sample(sampler.drift, z, steps=2)) < 1e-12
    assert sampler.backend == "compile"
    z = torch.randn(3, 4, generator=gen)

    class Scaled(torch.nn.Module):  # twenty distinct models (one class: inductor's graph cache keeps this quick)
        def __init__(self, k):
            super().__init__()
            self.k = torch.nn.Parameter(torch.tensor(float(k + 1)))

        def forward(self, x, t):
            return -self.k.to(x.dtype) * x * t

    for k in range(20):
        drift = fi.Drift(Scaled(k)).transfer(fi.Trig())
        x0 = z.float() if k % 2 else z  # two dtypes as well
        out = fi.Sampler(drift, steps=1, method="euler")(x0)
        assert _rel(out, fi.sample(drift, z, steps=1, method="euler")) < (1e-5 if k % 2 else 1e-12)


def test_compiled_artefacts_never_keep_the_model_alive(gen):
    import gc
    import weakref

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x, t):
            return self.lin(x) * t

    for backend in ("compile", "fused"):
        before = compiled.cache_info()
        net = Net().double()
        ref = weakref.ref(net)
        sampler = fi.Sampler(fi.Drift(net).transfer(fi.Trig()), steps=2, backend=backend)
        sampler(torch.randn(3, 4, generator=gen))
        del sampler, net
        gc.collect()
        assert ref() is None, backend
        assert compiled.cache_info() == before  # its artefacts were evicted with it


def test_compile_logs_one_line_with_its_time(gen, caplog):
    compiled.cache_clear()
    drift = fi.Drift(lambda x, t: -x * t)
    sampler = fi.Sampler(drift, steps=3, backend="compile")
    with caplog.at_level("INFO", logger="fastinterp.sampling"):
        sampler(torch.randn(2, 3, generator=gen))
        sampler(torch.randn(2, 3, generator=gen))
    lines = [r.getMessage() for r in caplog.records if r.name == "fastinterp.sampling"]
    assert len(lines) == 1 and "compiled 3 steps" in lines[0] and " s" in lines[0], lines


def test_backend_attribute_says_what_ran(gen):
    drift = fi.Drift(lambda x, t: -x)
    sampler = fi.Sampler(drift, steps=2)
    assert sampler.requested_backend == "auto" and sampler.backend is None
    sampler(torch.randn(2, 3, generator=gen))
    assert sampler.backend == "compile"  # auto on a CPU state
    fused = fi.Sampler(drift, steps=2, backend="fused")
    fused(torch.randn(2, 3, generator=gen))
    assert fused.backend == "fused"


def test_denoising_and_plain_runs_of_one_model_get_their_own_graphs(gen):
    """Same model, tableau and length: the whole-run graph with the final denoising is not the one without."""
    drift = _mixture(4).drift(fi.Linear(), "velocity").transfer(fi.Trig())
    z = torch.randn(3, 4, generator=gen)
    for denoise in (False, True, False):
        out = fi.Sampler(drift, steps=2, denoise=denoise, backend="compile")(z)
        assert _rel(out, fi.sample(drift, z, steps=2, denoise=denoise)) < 1e-12, denoise
