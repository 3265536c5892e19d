import math

import pytest
import torch

import fastinterp as fi
from fastinterp.demo import field_spectrum_error, minority_weight


class Counting:
    """Wraps a model and counts its evaluations."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)


def _paper_mixture(d=1000):
    ones = torch.ones(d)
    return fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.3, 0.7]), 1.0)


def test_mixture_one_rk4_step_linear_collapses_mixture_optimal_recovers(gen):
    """REFERENCE section 5: 1000-D mixture, p = 0.3, one RK4 step on [1e-3, 1 - 1e-3]."""
    d = 1000
    target = _paper_mixture(d)
    z = torch.randn(4000, d, generator=gen)
    linear = target.drift(fi.Linear(), prediction="velocity")
    w_linear = minority_weight(fi.sample(linear, z, steps=1, method="rk4"))
    w_opt = minority_weight(fi.sample(linear.transfer(fi.MixtureOptimal(math.sqrt(d))), z, steps=1, method="rk4"))
    w_opt_denoised = minority_weight(fi.sample(target.drift(fi.MixtureOptimal(math.sqrt(d))), z, 1, denoise=True))
    assert w_linear < 0.02
    assert abs(w_opt - 0.3) < 0.05
    assert abs(w_opt_denoised - 0.3) < 0.05


@pytest.fixture(scope="module")
def field_errors():
    """REFERENCE section 5: spectrum errors after 19 RK4 steps on [1e-4, 1 - 1e-4], per resolution."""
    out = {}
    for n in (32, 64, 128):
        field = fi.targets.GaussianRandomField(n)
        z = torch.randn(32, n, n, generator=torch.Generator().manual_seed(n))
        linear = field.drift(fi.Linear(), prediction="velocity")
        lip = linear.transfer(fi.LipschitzOptimal(field.nyquist_ratio()))
        kw = dict(steps=19, method="rk4", t_min=1e-4, t_max=1 - 1e-4)
        out[n] = (
            field_spectrum_error(fi.sample(lip, z, **kw), field),
            field_spectrum_error(fi.sample(linear, z, **kw), field),
        )
    return out


@pytest.mark.parametrize("n", [32, 64, 128])
def test_gaussian_field_spectrum_lipschitz_vs_linear(n, field_errors):
    err_lip, err_lin = field_errors[n]
    assert err_lip <= 0.05
    assert err_lin > 1.0  # orders of magnitude off


def test_linear_field_error_grows_with_resolution(field_errors):
    assert field_errors[32][1] < field_errors[64][1] < field_errors[128][1]


@pytest.mark.parametrize("method", sorted(fi.SOLVERS))
@pytest.mark.parametrize("denoise", [False, True])
def test_nfe_is_reported_exactly(method, denoise, gen):
    target = fi.targets.Gaussian(torch.zeros(4), 2.0)
    model = Counting(target.drift(fi.Trig()).model)
    drift = fi.Drift(model, schedule=fi.Trig(), prediction="x1")
    fi.sample(drift, torch.randn(3, 4, generator=gen), steps=7, method=method, denoise=denoise)
    assert model.calls == fi.nfe(7, method, denoise=denoise)


def test_denoise_returns_posterior_mean_at_t_max(gen):
    target = _paper_mixture(64)
    drift = target.drift(fi.MixtureOptimal(8.0))
    z = torch.randn(10, 64, generator=gen)
    x = fi.sample(drift, z, steps=3)
    x1 = fi.sample(drift, z, steps=3, denoise=True)
    torch.testing.assert_close(x1, drift.x1(x, 1 - 1e-3))


def test_explicit_time_grid_matches_uniform(gen):
    target = fi.targets.Gaussian(torch.zeros(4), 2.0)
    drift = target.drift(fi.Trig())
    z = torch.randn(3, 4, generator=gen)
    grid = fi.time_grid(5, 0.1, 0.9)
    torch.testing.assert_close(fi.sample(drift, z, time_grid=grid), fi.sample(drift, z, 5, t_min=0.1, t_max=0.9))


def test_float32_state_stays_float32(gen):
    target = fi.targets.GaussianRandomField(16)
    drift = target.drift(fi.Linear(), "velocity").transfer(fi.LipschitzOptimal(target.nyquist_ratio()))
    z = torch.randn(4, 16, 16, generator=gen)
    x32 = fi.sample(drift, z.float(), steps=10)
    x64 = fi.sample(drift, z, steps=10)
    assert x32.dtype == torch.float32
    assert float((x32.double() - x64).norm() / x64.norm()) < 1e-5


def _sde_moments(sched, eps, n=20000, steps=400, seed=0):
    target = fi.targets.Gaussian(torch.tensor([1.0]), torch.tensor([4.0]))
    drift = target.drift(fi.Linear(), prediction="velocity").transfer(sched)
    t0, t1 = 0.05, 0.95
    s0 = sched(torch.tensor(t0))
    g = torch.Generator().manual_seed(seed)
    x0 = s0.beta * target.mean + torch.sqrt(s0.alpha**2 + s0.beta**2 * target.var) * torch.randn(n, 1, generator=g)
    x = fi.sample_sde(drift, x0, steps=steps, eps=eps, t_min=t0, t_max=t1, generator=g)
    s1 = sched(torch.tensor(t1))
    return x, float(s1.beta * target.mean), float(s1.alpha**2 + s1.beta**2 * target.var)


@pytest.mark.parametrize("eps", ["optimal", 0.5, lambda t: 0.2 + t])
@pytest.mark.parametrize("sched", [fi.Linear(), fi.LipschitzOptimal(0.1)], ids=repr)
def test_sde_preserves_marginals(eps, sched):
    """Every eps >= 0 keeps the interpolant's marginals; started exactly at t_min, the t_max law is exact."""
    x, mean, var = _sde_moments(sched, eps)
    n = x.shape[0]
    # Monte-Carlo standard errors, plus Euler-Maruyama's O(h) weak bias (h = 2.25e-3, rates O(10))
    assert abs(float(x.mean()) - mean) < 4 * math.sqrt(var / n) + 0.03
    assert abs(float(x.var()) / var - 1) < 4 * math.sqrt(2 / n) + 0.03


def test_sde_is_reproducible_with_a_generator():
    a, _, _ = _sde_moments(fi.Trig(), "optimal", n=100, steps=20, seed=5)
    b, _, _ = _sde_moments(fi.Trig(), "optimal", n=100, steps=20, seed=5)
    c, _, _ = _sde_moments(fi.Trig(), "optimal", n=100, steps=20, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sde_with_zero_eps_is_euler(gen):
    target = fi.targets.Gaussian(torch.zeros(3), 2.0)
    drift = target.drift(fi.Trig())
    z = torch.randn(5, 3, generator=gen)
    torch.testing.assert_close(fi.sample_sde(drift, z, steps=9, eps=0.0), fi.sample(drift, z, 9, "euler"))


def test_non_finite_state_names_the_step(gen):
    def model(x, t):
        return x * torch.where(t > 0.5, torch.tensor(float("nan")), torch.tensor(1.0))

    drift = fi.Drift(model, schedule=fi.Linear(), prediction="x1")
    with pytest.raises(FloatingPointError, match=r"step 5 \(t = 0\.55 -> 0\.65\)"):
        fi.sample(drift, torch.randn(2, 3, generator=gen), steps=9, method="euler", t_min=0.05, t_max=0.95)
    with pytest.raises(FloatingPointError, match="step 5"):
        fi.sample_sde(drift, torch.randn(2, 3, generator=gen), steps=9, eps=0.1, t_min=0.05, t_max=0.95)
    out = fi.sample(drift, torch.randn(2, 3), steps=9, method="euler", t_min=0.05, t_max=0.95, check_finite=False)
    assert not torch.isfinite(out).all()


def test_bad_arguments(gen):
    drift = fi.targets.Gaussian(torch.zeros(3), 1.0).drift(fi.Linear())
    z = torch.randn(2, 3, generator=gen)
    cases = [
        (dict(steps=0), ValueError, "steps must be >= 1, got 0"),
        (dict(steps=2.5), TypeError, "steps must be an int"),
        (dict(t_min=0.6, t_max=0.5), ValueError, "t_min must be < t_max"),
        (dict(t_min=-0.1), ValueError, "t_min must lie in"),
        (dict(t_max=1.5), ValueError, "t_max must lie in"),
        (dict(t_min=float("nan")), ValueError, "t_min must lie in"),
        (dict(method="rk5"), ValueError, "method must be one of"),
    ]
    for kwargs, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fi.sample(drift, z, **kwargs)
    with pytest.raises(TypeError, match="drift must be a fastinterp Drift"):
        fi.sample(lambda x, t: x, z)
    with pytest.raises(TypeError, match="x0 must be a floating-point"):
        fi.sample(drift, torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="eps must be"):
        fi.sample_sde(drift, z, eps=-1.0)
    with pytest.raises(ValueError, match="eps must be"):
        fi.sample_sde(drift, z, eps="best")
    with pytest.raises(TypeError, match="generator"):
        fi.sample_sde(drift, z, generator=0)
    with pytest.raises(ValueError, match="time_grid must increase"):
        fi.sample(drift, z, time_grid=torch.tensor([0.1, 0.5, 0.4]))
    with pytest.raises(ValueError, match="model output must match"):
        fi.sample(fi.Drift(lambda x, t: x.sum(1)), z)
