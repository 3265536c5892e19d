"""Sampling data with a mean: ``Drift.centred`` and ``mean=`` (issue 15 item 3), on exact drifts in float64.

``LipschitzOptimal``'s ``beta_t`` grows like ``sqrt(t)`` near 0, so the mean enters the probability-flow ODE through
the singular ``beta'_t m``: RK4 falls to first order. Integrating the centred process and adding ``beta_{t_max} m``
must give the accuracy of the mean-free problem, on every backend.
"""

import math

import pytest
import torch
import torch._dynamo
import torch._dynamo.testing
from torch._dynamo.utils import counters

import fastinterp as fi
from fastinterp.centring import CentredModel
from fastinterp.targets.base import Target

T0, T1 = 1e-3, 1 - 1e-3
LIP = fi.LipschitzOptimal(0.25)  # the issue's schedule: lam = var of a Gaussian of std 0.5


def _beta(schedule, t):
    return float(schedule(torch.tensor(t)).beta)


def _gaussian_flow(schedule, var, mean, x0):
    """Exact probability-flow map of ``N(mean, var I)`` from ``x0`` at T0 to T1."""
    s0, s1 = schedule(torch.tensor(T0)), schedule(torch.tensor(T1))
    v0, v1 = s0.alpha**2 + s0.beta**2 * var, s1.alpha**2 + s1.beta**2 * var
    return s1.beta * mean + (v1 / v0).sqrt() * (x0 - s0.beta * mean)


def _rel(x, ref):
    return float((x - ref).norm() / ref.norm())


def _order(errors, steps):
    return math.log(errors[0] / errors[-1]) / math.log(steps[-1] / steps[0])


class _Offset(Target):
    """``base + c``: a target shifted by a constant (its denoisers are the base's at ``x - beta c``)."""

    def __init__(self, base, c):
        self.base, self.c, self.event_shape = base, c, base.event_shape

    def denoisers(self, x, alpha, beta):
        b = beta.reshape(-1, *[1] * (x.ndim - 1)) if beta.ndim else beta
        z, x1 = self.base.denoisers(x - b * self.c, alpha, beta)
        return z, x1 + self.c


@pytest.fixture
def issue_case(gen):
    """The issue's case: a 16-D Gaussian, std 0.5, mean of unit scale."""
    mean = 1.0 + 0.3 * torch.randn(16, generator=gen)
    return fi.targets.Gaussian(mean, 0.25), mean, torch.randn(128, 16, generator=gen)


@pytest.mark.parametrize("prediction", fi.PREDICTIONS)
def test_centred_drift_is_the_drift_of_the_centred_data(gen, prediction):
    """p_c(y) = p(y + beta m) - w m equals the mean-free target's prediction, with and without a transfer."""
    mean = torch.randn(6, generator=gen)
    var = torch.rand(6, generator=gen) + 0.1
    shifted, centred = fi.targets.Gaussian(mean, var), fi.targets.Gaussian(torch.zeros(6), var)
    y = torch.randn(5, 6, generator=gen)
    pairs = [
        (shifted.drift(LIP, prediction).centred(mean), centred.drift(LIP, prediction)),
        (
            shifted.drift(fi.Linear(), prediction).transfer(LIP).centred(mean),
            centred.drift(fi.Linear(), prediction).transfer(LIP),
        ),
        (  # centring commutes with the transfer
            shifted.drift(fi.Linear(), prediction).centred(mean).transfer(LIP),
            centred.drift(fi.Linear(), prediction).transfer(LIP),
        ),
    ]
    for got, want in pairs:
        assert got.schedule is LIP and got.prediction == want.prediction
        for t in (torch.tensor(0.3), torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99])):  # one time, a time per sample
            for out in fi.PREDICTIONS:
                a, b = got.convert(y, t, (out,))[0], want.convert(y, t, (out,))[0]
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    transferred = shifted.drift(fi.Linear(), prediction).transfer(LIP).centred(mean)
    assert isinstance(transferred.source.model, CentredModel)  # centred at the source, then transferred
    assert isinstance(transferred.source.schedule, fi.Linear)


@pytest.mark.parametrize("trained", ["lipschitz", "linear"])
def test_issue_case_converges_at_order_4_with_mean(issue_case, trained):
    """16-D Gaussian, std 0.5, unit mean, RK4 under LipschitzOptimal: the error of the mean-free problem, order 4.

    Measured: without centring 0.22 / 0.094 / 0.037 at 5 / 10 / 20 steps (first order); with ``mean=``
    1.1e-6 / 6.3e-8 / 3.8e-9 relative to the state (the mean-free problem's absolute error exactly).
    """
    target, mean, z = issue_case
    drift = target.drift(LIP) if trained == "lipschitz" else target.drift(fi.Linear()).transfer(LIP)
    free = fi.targets.Gaussian(torch.zeros(16), 0.25).drift(LIP)
    steps = (5, 10, 20)
    exact = _gaussian_flow(LIP, 0.25, mean, z + _beta(LIP, T0) * mean)  # the state at T0 is z + beta m
    exact_free = _gaussian_flow(LIP, 0.25, 0.0, z)
    with_mean, without, free_errors = [], [], []
    for n in steps:
        x = fi.sample(drift, z, steps=n, t_min=T0, t_max=T1, mean=mean)
        with_mean.append(_rel(x, exact))
        without.append(_rel(fi.sample(drift, z, steps=n), _gaussian_flow(LIP, 0.25, mean, z)))
        free_errors.append(float((fi.sample(free, z, steps=n) - exact_free).norm()))
        # the absolute error is the mean-free problem's: centring removes the mean exactly
        assert float((x - exact).norm()) == pytest.approx(free_errors[-1], rel=1e-6)
    assert min(without) > 1e-2 and _order(without, steps) < 1.6  # the issue's failure
    assert with_mean[0] < 5e-6 and with_mean[-1] < 2e-8
    assert 3.6 < _order(with_mean, steps) < 4.6


def test_mean_with_linear_changes_nothing_but_the_start(issue_case):
    """Under Linear (beta = t, no singularity) centring neither helps nor hurts: the same error as the plain run
    from the same state, and the mean-free problem's result shifted by beta m."""
    target, mean, z = issue_case
    drift = target.drift(fi.Linear())
    free = fi.targets.Gaussian(torch.zeros(16), 0.25).drift(fi.Linear())
    x0 = z + T0 * mean  # the state at T0 of the centred start z
    exact = _gaussian_flow(fi.Linear(), 0.25, mean, x0)
    for n in (5, 10, 20):
        x = fi.sample(drift, z, steps=n, mean=mean)
        plain = fi.sample(drift, x0, steps=n)
        assert float((x - exact).norm()) <= 1.01 * float((plain - exact).norm()) + 1e-13
        torch.testing.assert_close(x, fi.sample(free, z, steps=n) + T1 * mean, rtol=1e-12, atol=1e-12)


def test_mixture_with_off_centre_mean(gen):
    """Two-component mixtures whose mean is far from 0: ``mean=`` gives the mean-removed mixture's result exactly.

    Symmetric weights: order ~4 under LipschitzOptimal (5.5e-4 / 5.7e-5 / 4.5e-6 / 3e-7 at 5 / 10 / 20 / 40 steps;
    without centring 0.22 / 0.11 / 0.085 / 0.071). Unequal weights: order ~2 with or without the mean (the third
    cumulant enters through ``beta' beta^2``, singular like sqrt(t): a property of the schedule, not of the mean),
    still 50x more accurate than without centring at 10 steps (3.3e-3 against 0.16). References: RK4 on a grid
    uniform in sqrt(t - t_min) (it resolves the singularity; within 1e-7 of one with 400 steps).
    """
    d = 8
    e = torch.randn(d, generator=gen)
    e = e / e.norm()
    means = torch.stack([1.0 + 1.5 * e, 1.0 - 1.5 * e])
    z = torch.randn(64, d, generator=gen)
    sched = fi.LipschitzOptimal(0.1)
    b1 = _beta(sched, T1)
    fine = T0 + (T1 - T0) * torch.linspace(0, 1, 121) ** 2
    steps = (5, 10, 20, 40)
    for weights, min_order, gain in (([0.5, 0.5], 3.3, 1000), ([0.3, 0.7], 1.6, 20)):
        w = torch.tensor(weights)
        m = (w[:, None] * means).sum(0)
        drift = fi.targets.GaussianMixture(means, w, 0.1).drift(sched)
        free = fi.targets.GaussianMixture(means - m, w, 0.1).drift(sched)
        ref = fi.sample(free, z, time_grid=fine, backend="fused")  # the mean-free flow
        ref_plain = fi.sample(drift, z, time_grid=fine, backend="fused")
        errors = []
        for n in steps:
            x = fi.sample(drift, z, steps=n, mean=m)
            errors.append(_rel(x - b1 * m, ref))
            if n == 10:
                torch.testing.assert_close(x, fi.sample(free, z, steps=n) + b1 * m, rtol=1e-11, atol=1e-11)
                assert gain * errors[-1] < _rel(fi.sample(drift, z, steps=n), ref_plain)
        assert _order(errors, steps) > min_order, errors


def test_random_field_with_constant_offset(gen):
    """A periodic Gaussian random field plus a constant, LipschitzOptimal at its Nyquist ratio: the mean-free field's
    error exactly, 17x better than without centring at 5 steps (0.014 against 0.24), never worse."""
    field = fi.targets.GaussianRandomField(32, dim=1)
    sched = fi.LipschitzOptimal(field.nyquist_ratio())
    c = 2.0
    drift = _Offset(field, c).drift(sched)
    z = torch.randn(32, 32, generator=gen)
    S = field.spectrum()[:17]  # rfft half of the 1-D spectrum

    def flow(x0, mean):
        s0, s1 = sched(torch.tensor(T0)), sched(torch.tensor(T1))
        gain = ((s1.alpha**2 + s1.beta**2 * S) / (s0.alpha**2 + s0.beta**2 * S)).sqrt()
        y = torch.fft.irfft(torch.fft.rfft(x0 - s0.beta * mean, norm="ortho") * gain, n=32, norm="ortho")
        return s1.beta * mean + y

    exact, exact_plain = flow(z + _beta(sched, T0) * c, c), flow(z, c)
    for n in (5, 10, 20):
        x = fi.sample(drift, z, steps=n, mean=c)
        plain = fi.sample(drift, z, steps=n)
        free = fi.sample(field.drift(sched), z, steps=n)
        torch.testing.assert_close(x, free + _beta(sched, T1) * c, rtol=1e-11, atol=1e-11)
        assert _rel(x, exact) <= 1.01 * _rel(plain, exact_plain)
        if n == 5:
            assert 10 * _rel(x, exact) < _rel(plain, exact_plain)


def test_backends_agree_with_mean(issue_case):
    """eager, fused (native CPU kernel) and, in test_compile_backend_with_mean, compile: the same numbers; the denoised
    estimate is x1^_c + m; the SDE draws the same increments on every backend."""
    target, mean, z = issue_case
    drift = target.drift(fi.Linear(), "x1").transfer(LIP)
    for denoise in (False, True):
        ref = fi.sample(drift, z, steps=8, mean=mean, denoise=denoise)
        got = fi.sample(drift, z, steps=8, mean=mean, denoise=denoise, backend="fused")
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    x1 = fi.sample(drift, z, steps=20, mean=mean, denoise=True)
    exact = _gaussian_flow(LIP, 0.25, mean, z + _beta(LIP, T0) * mean)
    s1 = LIP(torch.tensor(T1))
    torch.testing.assert_close(x1, target.denoise(exact, s1.alpha, s1.beta), rtol=1e-6, atol=1e-6)
    sde = [
        fi.sample_sde(drift, z, steps=50, mean=mean, generator=torch.Generator().manual_seed(7), backend=b)
        for b in ("eager", "fused")
    ]
    torch.testing.assert_close(sde[1], sde[0], rtol=1e-11, atol=1e-11)


def test_sde_with_mean_has_the_right_mean(gen):
    """Euler-Maruyama of the centred SDE: the sample mean is beta_{t_max} m within the Monte-Carlo error, where the
    plain run is biased by the singular beta' m (measured bias 0.015 against 0.002 with mean=)."""
    mean = torch.full((4,), 1.0)
    drift = fi.targets.Gaussian(mean, 0.25).drift(LIP)
    z = torch.randn(20000, 4, generator=gen)
    want = _beta(LIP, T1) * mean
    x = fi.sample_sde(drift, z, steps=40, mean=mean, generator=torch.Generator().manual_seed(3))
    plain = fi.sample_sde(drift, z, steps=40, generator=torch.Generator().manual_seed(3))
    err, err_plain = float((x.mean(0) - want).abs().max()), float((plain.mean(0) - want).abs().max())
    assert err < 0.015 and err < err_plain / 2, (err, err_plain)


def test_precision_and_scalar_means(issue_case):
    """float32 states with a float64 mean; a number or a 0-d tensor as the mean (every coordinate)."""
    target, mean, z = issue_case
    drift = target.drift(LIP)
    ref = fi.sample(drift, z, steps=10, mean=mean)
    x32 = fi.sample(drift, z.float(), steps=10, mean=mean)
    assert x32.dtype == torch.float32
    torch.testing.assert_close(x32.double(), ref, rtol=1e-5, atol=1e-5)
    flat = fi.targets.Gaussian(torch.full((16,), 0.7), 0.25).drift(LIP)
    a = fi.sample(flat, z, steps=10, mean=0.7)
    b = fi.sample(flat, z, steps=10, mean=torch.tensor(0.7))
    c = fi.sample(flat, z, steps=10, mean=torch.full((16,), 0.7))
    torch.testing.assert_close(a, c, rtol=0, atol=1e-14)
    torch.testing.assert_close(b, c, rtol=0, atol=1e-14)


def test_conditioning_and_guidance_reach_the_model(gen):
    """The centred model forwards ``cond``: a model that needs its keyword runs, guidance with cond == null_cond is
    the conditional run."""
    mean = torch.ones(4)
    exact = fi.targets.Gaussian(mean, 0.25).drift(LIP).model
    seen = []

    def model(x, t, label):
        seen.append(label.shape[0])
        return exact(x, t)

    drift = fi.Drift(model, LIP, "velocity")
    z = torch.randn(6, 4, generator=gen)
    label = torch.zeros(6, dtype=torch.long)
    plain = fi.sample(drift, z, steps=4, mean=mean, cond={"label": label})
    guided = fi.sample(drift, z, steps=4, mean=mean, cond={"label": label}, guidance=3.0, null_cond={"label": label})
    torch.testing.assert_close(guided, plain, rtol=1e-12, atol=1e-12)
    assert 12 in seen  # the doubled batch of the guided call


def test_noise_range_is_kept():
    mean = torch.ones(3)
    drift = fi.Drift(lambda x, t: x, fi.Linear(), "x1", noise_range=(0.01, 100.0))
    assert drift.centred(mean).noise_range == (0.01, 100.0)
    assert drift.transfer(LIP).centred(mean).noise_range == (0.01, 100.0)
    kept = fi.Sampler(drift, mean=mean).mean
    assert torch.equal(kept, mean) and kept is not mean  # a copy: the caller's tensor may change later


@pytest.mark.parametrize(
    ("mean", "error", "match"),
    [
        (float("nan"), ValueError, "mean must be finite"),
        (torch.tensor([1.0, float("inf"), 0.0]), ValueError, r"mean must be finite, got 1 non-finite"),
        (torch.ones(3, dtype=torch.int64), TypeError, "floating-point tensor or a real number, got a tensor of dtype"),
        ("0.5", TypeError, "got str"),
        (True, TypeError, "got bool"),
    ],
)
def test_bad_means_are_refused(mean, error, match):
    drift = fi.targets.Gaussian(torch.zeros(3), 1.0).drift(LIP)
    with pytest.raises(error, match=match):
        drift.centred(mean)
    with pytest.raises(error, match=match):
        fi.Sampler(drift, mean=mean)


@pytest.mark.parametrize("shape", [(4, 3), (2,), (3, 1)])
def test_a_mean_that_does_not_fit_the_event_shape_is_refused(shape):
    """(4, 3) against states (4, 3) would broadcast over the batch: refused, naming both shapes."""
    drift = fi.targets.Gaussian(torch.zeros(3), 1.0).drift(LIP)
    for backend in ("eager", "fused"):
        with pytest.raises(
            ValueError, match=r"mean shaped \(.*\) does not broadcast to the state's event shape \(3,\)"
        ):
            fi.sample(drift, torch.zeros(4, 3), steps=2, mean=torch.zeros(shape), backend=backend)


def test_centred_step_compiles_fullgraph_without_graph_breaks(gen):
    """One RK4 step of a centred, transferred drift traced by dynamo with fullgraph=True: no graph break, and new
    times never recompile (the inductor build of the whole loop: test_compile_backend_with_mean)."""
    torch._dynamo.reset()
    counters.clear()
    mean = 1.0 + torch.randn(8, generator=gen)
    drift = fi.targets.Gaussian(mean, 0.25).drift(fi.Linear()).transfer(LIP).centred(mean)
    solver = fi.get_solver("rk4")

    def step(x, t, h):
        return solver.step(drift.velocity, x, t, h)

    counter = torch._dynamo.testing.CompileCounter()  # dynamo's trace only: a break raises (fullgraph)
    compiled = torch.compile(step, backend=counter, fullgraph=True)
    x = torch.randn(16, 8, generator=gen)
    grid = fi.time_grid(6, T0, T1)
    frames = None
    for i in range(3):
        t, h = grid[i], grid[i + 1] - grid[i]
        torch.testing.assert_close(compiled(x, t, h), step(x, t, h), rtol=1e-10, atol=1e-12)
        frames = counter.frame_count if frames is None else frames
    assert counter.frame_count == frames
    assert not counters["graph_break"]


@pytest.mark.slow
def test_compile_backend_with_mean(issue_case):
    """The compile backend (whole run in one fullgraph graph, centred model inside) matches eager."""
    target, mean, z = issue_case
    drift = target.drift(fi.Linear()).transfer(LIP)
    sampler = fi.Sampler(drift, steps=8, mean=mean, backend="compile", denoise=True)
    ref = fi.sample(drift, z, steps=8, mean=mean, denoise=True)
    torch.testing.assert_close(sampler(z), ref, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(sampler(z[:5]), ref[:5], rtol=1e-11, atol=1e-11)


def test_equal_means_give_the_same_centred_drift(gen):
    """Compiled graphs are keyed by the model a sampler calls: the same drift centred on an equal mean returns the
    same centred drift (so ``fi.sample(drift, z, mean=m)`` in a loop compiles once); a different or changed mean a
    new one."""
    from fastinterp.centring import CENTRED_PER_DRIFT

    mean = 1.0 + torch.randn(8, generator=gen, dtype=torch.float64)
    drift = fi.targets.Gaussian(mean, 0.25).drift(fi.Linear())
    first = drift.centred(mean)
    assert drift.centred(mean.clone()) is first and drift.centred(0.5) is drift.centred(0.5)
    assert drift.centred(mean + 1e-12) is not first and drift.centred(mean.float()) is not first
    assert drift.centred(0.5) is not drift.centred(0.25)
    owned = mean.clone()
    kept = drift.centred(owned)
    owned += 1.0  # the caller's tensor changed in place: the kept copy is not, and a new drift serves the new value
    assert kept.model.mean is not owned and torch.equal(kept.model.mean, mean)
    changed = drift.centred(owned)
    assert changed is not kept and torch.equal(changed.model.mean, owned)
    # transferred drifts are centred at their source: the model the sampler calls is the same object
    a = fi.Sampler(drift.transfer(LIP), steps=2, mean=mean).plan.table.model
    b = fi.Sampler(drift.transfer(LIP), steps=2, mean=mean.clone()).plan.table.model
    assert a is b
    for k in range(CENTRED_PER_DRIFT + 3):  # bounded: the least recently used are dropped
        drift.centred(float(k))
    assert len(drift.__dict__["_centred"]) == CENTRED_PER_DRIFT
    z = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        fi.sample(drift, z, steps=4, mean=owned), fi.sample(drift, z, steps=4, mean=owned.clone())
    )


@pytest.mark.slow
def test_compile_backend_with_mean_compiles_once(issue_case):
    """``fi.sample(..., backend="compile", mean=m)`` called again with an equal mean reuses the compiled graph."""
    target, mean, z = issue_case
    drift = target.drift(fi.Linear()).transfer(LIP)
    torch._dynamo.reset()
    counters.clear()
    fi.sample(drift, z, steps=4, mean=mean, backend="compile")
    graphs = counters["stats"]["unique_graphs"]
    for m in (mean, mean.clone()):
        fi.sample(drift, z, steps=4, mean=m, backend="compile")
    assert graphs > 0 and counters["stats"]["unique_graphs"] == graphs
