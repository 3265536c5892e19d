import pytest
import torch

import fastinterp as fi

T = 0.4


class Affine(torch.nn.Module):
    """A model linear in its features at a fixed time: per-coordinate a + b * x."""

    def __init__(self, d):
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(d))
        self.b = torch.nn.Parameter(torch.zeros(d))

    def forward(self, x, t):
        return self.a + self.b * x


def _fit(loss_fn, d):
    model = Affine(d)
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = loss_fn(model)
        loss.backward()
        return loss

    opt.step(closure)
    return model


@pytest.mark.parametrize("prediction", fi.PREDICTIONS)
def test_one_sided_loss_minimisers_are_exact(prediction):
    g = fi.targets.Gaussian(torch.tensor([1.0, -0.5]), torch.tensor([0.3, 2.0]))
    gen = torch.Generator().manual_seed(0)
    n = 40000
    x1, x0 = g.sample(n, generator=gen), torch.randn(n, 2, generator=gen)
    t = torch.full((n,), T)
    interp = fi.Interpolant(fi.Trig())
    model = _fit(
        lambda m: fi.interpolant_loss(m, x1, prediction=prediction, interpolant=interp, x0=x0, t=t, antithetic=True), 2
    )
    exact = g.drift(fi.Trig(), prediction=prediction)
    xs = interp(torch.full((512,), T), torch.randn(512, 2, generator=gen), g.sample(512, generator=gen))[0]
    with torch.no_grad():
        err = (model(xs, T) - exact.predict(xs, T)).norm() / exact.predict(xs, T).norm()
    assert float(err) < 0.02  # statistical error of 4e4 samples, ~1/sqrt(n) per coefficient


def test_two_sided_denoiser_loss_recovers_eta_z():
    """x_t = a x0 + b x1 + gamma z, Gaussian x0, x1: E[z | x_t] = gamma (x_t - mean_t) / var_t per coordinate."""
    gen = torch.Generator().manual_seed(1)
    n = 40000
    m0, v0 = torch.tensor([2.0, 0.0]), torch.tensor([0.5, 1.5])
    m1, v1 = torch.tensor([-1.0, 1.0]), torch.tensor([0.2, 1.0])
    x0 = m0 + v0.sqrt() * torch.randn(n, 2, generator=gen)
    x1 = m1 + v1.sqrt() * torch.randn(n, 2, generator=gen)
    interp = fi.Interpolant(fi.Linear(), gamma="sqrt(2t(1-t))")
    t = torch.full((n,), T)
    model = _fit(
        lambda m: fi.interpolant_loss(
            m, x1, prediction="noise", interpolant=interp, x0=x0, t=t, generator=torch.Generator().manual_seed(2)
        ),
        2,
    )
    s = fi.Linear()(torch.tensor(T))
    gamma = (2 * T * (1 - T)) ** 0.5
    mean_t, var_t = s.alpha * m0 + s.beta * m1, s.alpha**2 * v0 + s.beta**2 * v1 + gamma**2
    torch.testing.assert_close(model.b.detach(), gamma / var_t, rtol=0.03, atol=0)
    torch.testing.assert_close(model.a.detach(), -gamma * mean_t / var_t, rtol=0.05, atol=0.01)


@pytest.mark.parametrize("gamma", sorted(fi.GAMMAS))
def test_two_sided_marginal_moments(gamma):
    gen = torch.Generator().manual_seed(3)
    n = 200000
    interp = fi.Interpolant(fi.Trig(), gamma=gamma)
    x0 = 1.0 + 0.5 * torch.randn(n, 1, generator=gen)
    x1 = -2.0 + 1.5 * torch.randn(n, 1, generator=gen)
    z = torch.randn(n, 1, generator=gen)
    t = torch.tensor(0.3)
    xt, _ = interp(t, x0, x1, z)
    s = fi.Trig()(t)
    g, dg = fi.GAMMAS[gamma](t)
    mean = s.alpha * 1.0 + s.beta * -2.0
    var = s.alpha**2 * 0.25 + s.beta**2 * 2.25 + g**2
    assert abs(float(xt.mean() - mean)) < 5 * float(var.sqrt()) / n**0.5
    assert abs(float(xt.var() / var) - 1) < 5 * (2 / n) ** 0.5
    if gamma == "zero":
        assert float(g) == 0 and float(dg) == 0
    else:
        tt = t.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(fi.GAMMAS[gamma](tt)[0], tt)
        torch.testing.assert_close(dg, auto)


def test_bad_arguments():
    with pytest.raises(ValueError, match="gamma must be one of"):
        fi.Interpolant(gamma="sqrt")
    with pytest.raises(ValueError, match="prediction"):
        fi.interpolant_loss(lambda x, t: x, torch.zeros(4, 2), prediction="eps")
    with pytest.raises(ValueError, match="model output must be shaped like x1"):
        fi.interpolant_loss(lambda x, t: x[:, :1], torch.zeros(4, 2))
    with pytest.raises(ValueError, match="t must be shaped"):
        fi.interpolant_loss(lambda x, t: x, torch.zeros(4, 2), t=torch.zeros(3))
