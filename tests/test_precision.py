"""bf16 and fp16 states and models on every backend: within 2x of a plain loop's error against the float64 oracle."""

import pytest
import torch

import fastinterp as fi

CUDA = torch.cuda.is_available()
BACKENDS = ["eager", "fused", "compile"] + (["graph"] if CUDA else [])


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def _plain_loop(drift, z, steps, dtype):
    """What a user writes: RK4 with the state, the model and every update in ``dtype`` (times in float32, or
    t_max would round to 1)."""
    grid = fi.time_grid(steps, dtype=torch.float32)
    solver = fi.get_solver("rk4")
    x = z.to(dtype)
    for i in range(steps):
        x = solver.step(drift.velocity, x, grid[i], grid[i + 1] - grid[i])
    return x


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backend", BACKENDS)
def test_low_precision_within_twice_the_plain_loop(dtype, backend, gen):
    field = fi.targets.GaussianRandomField(16)
    ones = torch.ones(64)
    mixture = fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.3, 0.7]), 1.0)
    cases = [
        (mixture.drift(fi.Linear(), "velocity").transfer(fi.MixtureOptimal(8.0)), torch.randn(32, 64, generator=gen)),
        (
            field.drift(fi.Linear(), "velocity").transfer(fi.LipschitzOptimal(1e-3)),
            torch.randn(8, 16, 16, generator=gen),
        ),
    ]
    for drift, z in cases:
        oracle = fi.sample(drift, z, steps=5)  # float64
        plain = _plain_loop(drift, z, 5, dtype)
        assert plain.dtype == dtype and torch.isfinite(plain).all()
        device = "cuda" if backend == "graph" else "cpu"
        out = fi.Sampler(drift, steps=5, backend=backend)(z.to(device=device, dtype=dtype))
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert _rel(out, oracle) <= 2 * _rel(plain, oracle), (_rel(out, oracle), _rel(plain, oracle))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_model_sees_its_dtype_and_float32_time(dtype, gen):
    """The state is integrated in float32; the model receives its own dtype and t in float32 (bf16 cannot tell
    t = 0.999 from 1)."""
    seen = set()

    def model(x, t):
        seen.add((x.dtype, t.dtype))
        return -x

    drift = fi.Drift(model).transfer(fi.Trig())
    z = torch.randn(4, 3, generator=gen).to(dtype)
    for backend in ("eager", "fused", "compile"):
        seen.clear()
        out = fi.sample(drift, z, steps=3, backend=backend)
        assert out.dtype == dtype
        assert seen == {(dtype, torch.float32)}, (backend, seen)


def test_sde_in_bfloat16_reproduces_across_backends(gen):
    ones = torch.ones(16)
    mixture = fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.3, 0.7]), 1.0)
    drift = mixture.drift(fi.Linear(), "velocity").transfer(fi.LipschitzOptimal(1e-2))
    z = torch.randn(8, 16, generator=gen).to(torch.bfloat16)
    runs = [
        fi.sample_sde(drift, z, steps=8, t_min=0.05, generator=torch.Generator().manual_seed(5), backend=b)
        for b in ("eager", "fused", "compile")
    ]
    for r in runs[1:]:
        assert r.dtype == torch.bfloat16
        assert _rel(r, runs[0]) < 2e-2  # same draws; differences are the model's bf16 rounding of different states
