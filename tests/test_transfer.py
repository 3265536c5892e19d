import math

import pytest
import torch

import fastinterp as fi

TARGET_SCHEDULES = [fi.Trig(), fi.LipschitzOptimal(1e-5), fi.LipschitzOptimal(50.0), fi.MixtureOptimal(30.0)]
PREDS = list(fi.PREDICTIONS)


def _mixture(d=16):
    g = torch.Generator().manual_seed(0)
    means = torch.randn(3, d, generator=g)
    return fi.targets.GaussianMixture(means, torch.tensor([0.2, 0.5, 0.3]), torch.tensor([0.5, 1.0, 2.0]))


def _field():
    return fi.targets.GaussianRandomField(16, dim=2)


def _state(target, t, sched, gen, n=64):
    s = sched(torch.tensor(t))
    return s.alpha * torch.randn(n, *target.event_shape, generator=gen) + s.beta * target.sample(n, generator=gen)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


TIMES = [1e-3, 0.05, 0.3, 0.5, 0.8, 0.97, 1 - 1e-3]


@pytest.mark.parametrize("make_target", [_mixture, _field], ids=["mixture", "field"])
@pytest.mark.parametrize("prediction", PREDS)
@pytest.mark.parametrize("target_sched", TARGET_SCHEDULES, ids=repr)
def test_transfer_from_linear_equals_exact_drift(make_target, prediction, target_sched, gen):
    target = make_target()
    linear = target.drift(fi.Linear(), prediction=prediction)
    transferred = linear.transfer(target_sched)
    native = transferred.prediction  # x1 or noise: the quantity the transfer carries over unchanged
    exact = target.drift(target_sched, prediction="velocity")  # oracles from both closed-form denoisers
    exact_native = target.drift(target_sched, prediction=native)
    for t in TIMES:
        x = _state(target, t, target_sched, gen)
        y = transferred.predict(x, t)
        assert _rel(y, exact_native.predict(x, t)) < 1e-10, t
        # The drift follows by b = cx x + cy y. Noise -> drift divides by beta (t -> 0) and data -> drift by
        # alpha (t -> 1), so rounding in y is amplified by the condition number of that combination.
        cx, cy = fi.conversion_coefficients(native, "velocity", target_sched(torch.tensor(t)))
        ref = exact.velocity(x, t)
        kappa = float((abs(cx) * x.norm() + abs(cy) * y.norm()) / ref.norm())
        assert _rel(transferred.velocity(x, t), ref) < 1e-10 * max(1.0, kappa / 100), (t, kappa)


@pytest.mark.parametrize("prediction", PREDS)
def test_chain_of_two_transfers(prediction, gen):
    target = _mixture()
    first, second = fi.LipschitzOptimal(1e-3), fi.MixtureOptimal(5.0)
    chained = target.drift(fi.Trig(), prediction=prediction).transfer(first).transfer(second)
    composed = fi.Drift(chained.model, schedule=second, prediction=chained.prediction)
    exact = target.drift(second)
    for t in TIMES:
        x = _state(target, t, second, gen)
        assert _rel(chained(x, t), exact(x, t)) < 1e-10
        assert _rel(composed(x, t), exact(x, t)) < 1e-10
    # The composition is taken straight from the source: one model evaluation per call.
    assert chained.model.source.schedule.__class__ is fi.Trig


def test_unflattened_chain_is_also_exact(gen):
    """A transfer of a drift whose model merely wraps a transferred one composes the maps."""
    target = _field()
    once = target.drift(fi.Linear(), prediction="velocity").transfer(fi.LipschitzOptimal(1e-4))
    wrapped = fi.Drift(lambda x, t: once.model(x, t), schedule=once.schedule, prediction=once.prediction)
    twice = wrapped.transfer(fi.Trig())
    exact = target.drift(fi.Trig())
    for t in TIMES:
        x = _state(target, t, fi.Trig(), gen)
        assert _rel(twice(x, t), exact(x, t)) < 1e-10


def test_linear_source_closed_form_prop_3_1(gen):
    """REFERENCE section 2: t' = 1/(1 + a/b), x' = x/(a + b), b = (a'/a) x + (b' - a' b/a)[(1 - t') b_lin(x') + x']."""
    target = _mixture()
    lin = target.drift(fi.Linear(), prediction="velocity")
    sched = fi.LipschitzOptimal(1e-5)
    for t in TIMES[1:-1]:
        x = _state(target, t, sched, gen)
        s = sched(torch.tensor(t))
        tp = 1 / (1 + s.alpha / s.beta)
        xp = x / (s.alpha + s.beta)
        x1 = (1 - tp) * lin(xp, tp) + xp
        cx, cy = s.dalpha / s.alpha, s.dbeta - s.dalpha * s.beta / s.alpha
        b = cx * x + cy * x1
        assert _rel(lin.transfer(sched).x1(x, t), x1) < 1e-12
        kappa = float((abs(cx) * x.norm() + abs(cy) * x1.norm()) / b.norm())  # cancellation in cx x + cy x1
        assert _rel(lin.transfer(sched)(x, t), b) < 1e-14 * max(1.0, kappa)
        tp2, scale = fi.transfer_time(fi.Linear(), sched, torch.tensor(t))
        assert abs(float(tp2 - tp)) < 1e-15 and abs(float(scale - 1 / (s.alpha + s.beta))) < 1e-14


def test_transfer_map_is_regular_at_the_ends():
    for sched in TARGET_SCHEDULES:
        tp, scale = fi.transfer_time(fi.Linear(), sched, torch.tensor([0.0, 1.0]))
        torch.testing.assert_close(tp, torch.tensor([0.0, 1.0]))
        torch.testing.assert_close(scale, torch.tensor([1.0, 1.0]))


def test_per_sample_times(gen):
    target = _mixture()
    sched = fi.LipschitzOptimal(1e-2)
    drift = target.drift(fi.Linear(), prediction="noise").transfer(sched)
    exact = target.drift(sched)
    t = torch.linspace(0.1, 0.9, 8)
    x = torch.randn(8, 16, generator=gen)
    per_sample = drift(x, t)
    one_by_one = torch.cat([exact(x[i : i + 1], float(t[i])) for i in range(8)])
    assert _rel(per_sample, one_by_one) < 1e-12


@pytest.mark.parametrize("src", PREDS)
@pytest.mark.parametrize("dst", PREDS)
def test_prediction_conversions_are_exact(src, dst, gen):
    target = _mixture()
    sched = fi.Trig()
    for t in (0.1, 0.5, 0.9):
        x = _state(target, t, sched, gen)
        y = target.drift(sched, prediction=src).predict(x, t)
        cx, cy = fi.conversion_coefficients(src, dst, sched(torch.tensor(t)))
        ref = target.drift(sched, prediction=dst).predict(x, t)
        assert _rel(cx * x + cy * y, ref) < 1e-12


def test_prediction_identities(gen):
    target = _mixture()
    sched = fi.LipschitzOptimal(0.1)
    d = target.drift(sched)
    t = 0.4
    s = sched(torch.tensor(t))
    x = _state(target, t, sched, gen)
    z, x1, v, score = d.noise(x, t), d.x1(x, t), d.velocity(x, t), d.score(x, t)
    assert _rel(s.alpha * z + s.beta * x1, x) < 1e-13
    assert _rel(s.dalpha * z + s.dbeta * x1, v) < 1e-13
    assert _rel(-z / s.alpha, score) < 1e-13


def test_score_matches_autograd_of_marginal_density(gen):
    """The marginal of a mixture at time t is a mixture with means b m_k and variances a^2 + b^2 s_k^2."""
    target = _mixture(d=4)
    sched = fi.Trig()
    t = 0.6
    s = sched(torch.tensor(t))
    marginal = fi.targets.GaussianMixture(s.beta * target.means, target.weights, s.alpha**2 + s.beta**2 * target.var)
    x = torch.randn(10, 4, generator=gen)
    torch.testing.assert_close(target.drift(sched).score(x, t), marginal.score(x))
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(marginal.log_prob(xg).sum(), xg)
    torch.testing.assert_close(marginal.score(x), g)


def test_bad_inputs():
    target = _mixture()
    with pytest.raises(ValueError, match="prediction"):
        fi.Drift(lambda x, t: x, prediction="eps")
    with pytest.raises(TypeError, match="schedule"):
        fi.Drift(lambda x, t: x, schedule="linear")
    with pytest.raises(TypeError, match="model"):
        fi.Drift(3)
    with pytest.raises(TypeError, match="schedule"):
        target.drift(fi.Linear()).transfer(math.pi)
    bad = fi.Drift(lambda x, t: x[:, :3])
    with pytest.raises(ValueError, match="model output must match"):
        bad(torch.randn(4, 16), 0.5)
    wrong_dtype = fi.Drift(lambda x, t: x.float())
    with pytest.raises(ValueError, match="dtype"):
        wrong_dtype(torch.randn(4, 16), 0.5)
    with pytest.raises(ValueError, match="x must be shaped"):
        target.drift(fi.Linear())(torch.randn(4, 15), 0.5)
