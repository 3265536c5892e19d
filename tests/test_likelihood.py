import math

import pytest
import torch

import fastinterp as fi

T_MAX = 1 - 1e-3


def _marginal_mixture(m, sched, t):
    s = sched(torch.tensor(t))
    return fi.targets.GaussianMixture(s.beta * m.means, m.weights, s.alpha**2 + s.beta**2 * m.var)


@pytest.mark.parametrize("sched", [fi.Linear(), fi.Trig(), fi.LipschitzOptimal(0.05)], ids=repr)
def test_log_prob_of_a_gaussian_is_exact(sched, gen):
    g = fi.targets.Gaussian(torch.tensor([1.0, -0.5, 0.3]), torch.tensor([0.2, 1.0, 3.0]))
    drift = g.drift(fi.Linear(), "velocity").transfer(sched)
    s = sched(torch.tensor(T_MAX))
    marginal = fi.targets.Gaussian(s.beta * g.mean, s.alpha**2 + s.beta**2 * g.var)
    x = g.sample(16, generator=gen)
    errors = [float((fi.log_prob(drift, x, steps=n) - marginal.log_prob(x)).abs().max()) for n in (20, 40)]
    assert errors[1] < 1e-5
    assert errors[0] / errors[1] > 8  # RK4: fourth order in the steps


def test_log_prob_of_a_two_dimensional_mixture(gen):
    ones = torch.ones(2)
    m = fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.3, 0.7]), 0.5)
    drift = m.drift(fi.Linear(), "velocity")
    x = m.sample(32, generator=gen)
    exact = _marginal_mixture(m, fi.Linear(), T_MAX).log_prob(x)
    assert float((fi.log_prob(drift, x, steps=100) - exact).abs().max()) < 1e-7


def test_hutchinson_log_prob_within_its_monte_carlo_error(gen):
    ones = torch.tensor([1.0, 0.5])
    m = fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.5, 0.5]), 0.3)
    drift = m.drift(fi.Trig())
    x = m.sample(8, generator=gen)
    exact = _marginal_mixture(m, fi.Trig(), T_MAX).log_prob(x)
    runs = torch.stack([fi.log_prob(drift, x, steps=40, probes=4, generator=gen) for _ in range(12)])
    err = runs.mean(0) - exact
    sem = runs.std(0) / math.sqrt(runs.shape[0])
    assert (runs.std(0) > 0).all()  # off-diagonal Jacobian: the estimate is random
    assert (err.abs() < 5 * sem + 1e-5).all()


def test_divergence_exact_equals_trace(gen):
    ones = torch.ones(3)
    m = fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.5, 0.5]), 0.5)
    drift = m.drift(fi.Linear())
    x = torch.randn(4, 3, generator=gen)
    _, div = fi.divergence(drift, x, 0.6)
    jac = torch.func.vmap(torch.func.jacrev(lambda y: drift.velocity(y[None], 0.6)[0]))(x)
    torch.testing.assert_close(div, jac.diagonal(dim1=1, dim2=2).sum(1))


def test_bad_arguments(gen):
    drift = fi.targets.Gaussian(torch.zeros(2), 1.0).drift(fi.Linear(), "velocity")
    with pytest.raises(ValueError, match="t_max"):
        fi.log_prob(drift, torch.zeros(2, 2), t_max=0.0)
    with pytest.raises(ValueError, match="probes must be >= 1"):
        fi.log_prob(drift, torch.zeros(2, 2), probes=0)
    with pytest.raises(TypeError, match="drift"):
        fi.log_prob(lambda x, t: x, torch.zeros(2, 2))
