"""Trained noise ranges: Drift(noise_range=), the sampler's default ends and start, on exact Gaussian flows."""

import math

import pytest
import torch

import fastinterp as fi
from fastinterp.sampling import make_plan
from fastinterp.sampling.plan import RANGE_RTOL, ratio_time

CUDA = torch.cuda.is_available()
MEAN, VAR, D = 0.5, 0.25, 16
TARGET = fi.targets.Gaussian(torch.full((D,), MEAN, dtype=torch.float64), VAR)
# LipschitzOptimal's beta grows like sqrt(t) at 0: a mean enters with an infinite slope (issue 15 item 3), so the
# flows under it are checked on the centred target
CENTRED = fi.targets.Gaussian(torch.zeros(D, dtype=torch.float64), VAR)


def _ratio(schedule, t):
    s = schedule(torch.as_tensor(t, dtype=torch.float64))
    return float(s.alpha) / float(s.beta) if float(s.beta) > 0 else math.inf


def _dlogr(schedule, t):
    """``|d log r / dt|`` at ``t``: the ratio's relative change per unit time."""
    s = schedule(torch.tensor(t, dtype=torch.float64))
    return abs(float(s.dalpha / s.alpha - s.dbeta / s.beta))


def _rel(a, b):
    return float((a - b).norm() / b.norm())


class RangeLimited:
    """An exact model that raises when evaluated at a noise level outside its trained band (what a network trained
    only there is worth outside it); ``clamp=True`` instead evaluates it at the nearest trained level, as a
    discrete-timestep model clamps its timestep."""

    def __init__(self, model, schedule, band, clamp=False):
        self.model, self.schedule, self.band, self.clamp = model, schedule, band, clamp
        self.calls = 0

    def __call__(self, x, t):
        self.calls += 1
        r_min, r_max = self.band
        if self.clamp:
            t = t.clamp(ratio_time(self.schedule, r_max), ratio_time(self.schedule, r_min))
        elif not (torch.compiler.is_compiling() or (t.is_cuda and torch.cuda.is_current_stream_capturing())):
            for tt in t.detach().double().flatten().tolist():
                r = _ratio(self.schedule, tt)
                if not r_min * (1 - 1e-9) <= r <= r_max * (1 + 1e-9):
                    raise RuntimeError(f"model evaluated at t = {tt!r}, ratio {r!r}, outside {self.band}")
        return self.model(x, t)


def _limited(band, prediction="noise", schedule=None, clamp=False, target=TARGET):
    schedule = schedule or fi.Linear()
    exact = target.drift(schedule, prediction).model
    return fi.Drift(RangeLimited(exact, schedule, band, clamp), schedule, prediction, noise_range=band)


def _exact_state(schedule, t, z, mean=MEAN):
    """The exact marginal at ``t`` as the image of ``z``: ``beta m + sqrt(alpha^2 + beta^2 v) z``."""
    s = schedule(torch.tensor(t))
    return s.beta * mean + (s.alpha**2 + s.beta**2 * VAR).sqrt() * z


def _flow(schedule, x, s, t, mean=MEAN):
    """The exact probability-flow map of the Gaussian target (mean ``mean``) from time ``s`` to time ``t``."""
    a, b = schedule(torch.tensor(s)), schedule(torch.tensor(t))
    ratio = ((b.alpha**2 + b.beta**2 * VAR) / (a.alpha**2 + a.beta**2 * VAR)).sqrt()
    return b.beta * mean + ratio * (x - a.beta * mean)


def test_noise_range_is_validated_once_kept_by_transfers_and_shown():
    model = TARGET.drift(fi.Linear()).model
    assert fi.Drift(model).noise_range is None
    assert fi.Drift(model, noise_range=[0, 100]).noise_range == (0.0, 100.0)
    assert fi.Drift(model, noise_range=(0.01, math.inf)).noise_range == (0.01, math.inf)
    bad_type = [5.0, (1.0,), (1.0, 2.0, 3.0), ("0", "1"), (True, 2.0), {0.0, 1.0}]
    for band in bad_type:
        with pytest.raises(TypeError, match=r"^Drift noise_range must be None or a pair \(r_min, r_max\)"):
            fi.Drift(model, noise_range=band)
    for band in [(-1.0, 2.0), (2.0, 2.0), (3.0, 2.0), (math.nan, 2.0), (0.0, math.nan), (math.inf, math.inf)]:
        with pytest.raises(ValueError, match=r"^Drift noise_range must satisfy 0 <= r_min < r_max <= inf .*, got \("):
            fi.Drift(model, noise_range=band)
    drift = fi.Drift(model, fi.Linear(), "velocity", noise_range=(0.01, 157.0))
    chain = drift.transfer(fi.LipschitzOptimal(1e-3)).transfer(fi.Trig())
    assert chain.noise_range == (0.01, 157.0) and chain.source is drift
    assert repr(drift).endswith("prediction='velocity', noise_range=(0.01, 157.0))")
    assert "noise_range" not in repr(fi.Drift(model))


SCHEDULES = [fi.Linear(), fi.Trig(), fi.LipschitzOptimal(1e-3), fi.LipschitzOptimal(40.0), fi.MixtureOptimal(3.0)]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_default_ends_are_the_times_of_the_trained_levels(schedule):
    model = TARGET.drift(fi.Linear()).model
    for band in [(0.01, 157.0), (1e-4, 1e4), (0.5, 2.0)]:
        plan = make_plan(fi.Drift(model, noise_range=band).transfer(schedule), steps=4)
        assert plan.grid.dtype == torch.float64 and plan.grid.device.type == "cpu"
        for t, r in ((float(plan.grid[0]), band[1]), (float(plan.grid[-1]), band[0])):
            # the float64 time nearest the ratio: r is bracketed by the ratios one ulp either side
            ulp = math.ulp(t)
            assert _ratio(schedule, t - ulp) * (1 + 1e-13) >= r >= _ratio(schedule, t + ulp) * (1 - 1e-13), (t, r)
            assert _ratio(schedule, t) == pytest.approx(r, rel=max(1e-12, 4 * ulp * _dlogr(schedule, t)))
        make_plan(plan.drift, t_min=float(plan.grid[0]), t_max=float(plan.grid[-1]))  # the defaults given back
        assert plan.start == "noise" and plan.start_scale == float(schedule(plan.grid[0]).alpha)
    for band, ends in [
        ((0.0, 157.0), (None, 1 - 1e-3)),
        ((0.01, math.inf), (1e-3, None)),
        ((0.0, math.inf), (1e-3, 1 - 1e-3)),
    ]:
        plan = make_plan(fi.Drift(model, noise_range=band).transfer(schedule), steps=4)
        for got, want in zip((plan.grid[0], plan.grid[-1]), ends, strict=True):
            assert want is None or float(got) == want
    lin = make_plan(fi.Drift(model, noise_range=(0.01, 157.0)), steps=4).grid
    assert float(lin[0]) == pytest.approx(1 / 158, rel=1e-15) and float(lin[-1]) == pytest.approx(1 / 1.01, rel=1e-15)


def test_explicit_ends_outside_the_trained_range_are_errors_naming_them():
    model = TARGET.drift(fi.Linear()).model
    drift = fi.Drift(model, noise_range=(0.01, 100.0)).transfer(fi.Trig())
    msg = (
        r"^t_min = 0.001 under Trig\(\) has noise-to-signal ratio alpha/beta = 636\.619, noisier than r_max of the "
        r"drift's trained noise_range \(0\.01, 100\.0\) \(which starts at t = 0\.006365985529816\d* under this "
        r"schedule\): the model never saw that level; leave t_min unset \(default: that time\) or pass a t_min "
        r"after it$"
    )
    with pytest.raises(ValueError, match=msg):
        fi.sample(drift, torch.randn(2, D), t_min=1e-3)
    with pytest.raises(
        ValueError, match=r"^t_max = 0\.999 under Trig\(\) has noise-to-signal ratio .*cleaner than r_min"
    ):
        fi.Sampler(drift, t_max=0.999, backend="fused")
    with pytest.raises(ValueError, match=r"^time_grid\[0\] = 0\.001 under Trig\(\)"):
        fi.sample_sde(drift, torch.randn(2, D), time_grid=torch.tensor([1e-3, 0.5, 0.9]))
    with pytest.raises(ValueError, match=r"^time_grid\[-1\] = 0\.9999 under Trig\(\)"):
        make_plan(drift, time_grid=torch.tensor([0.5, 0.9999]))
    t_lo, t_hi = ratio_time(fi.Trig(), 100.0), ratio_time(fi.Trig(), 0.01)
    assert make_plan(drift, t_min=t_lo, t_max=t_hi).grid[[0, -1]].tolist() == [t_lo, t_hi]  # the ends themselves
    assert make_plan(drift, t_min=0.2, t_max=0.8).grid[[0, -1]].tolist() == [0.2, 0.8]  # inside
    # within RANGE_RTOL of the end: accepted; beyond it: refused
    lin = fi.Drift(model, noise_range=(0.01, 100.0))
    make_plan(lin, t_min=1 / (1 + 100 * (1 + 0.5 * RANGE_RTOL)))
    with pytest.raises(ValueError, match=r"^t_min = "):
        make_plan(lin, t_min=1 / (1 + 100 * (1 + 4 * RANGE_RTOL)))
    with pytest.raises(TypeError, match=r"^t_min must be a float, got str"):  # still the ordinary checks
        make_plan(lin, t_min="0.1")


def test_start_option_defaults_and_validation(gen):
    plain = TARGET.drift(fi.Linear(), "velocity")
    banded = fi.Drift(plain.model, noise_range=(0.01, 100.0))
    assert make_plan(plain).start == "state" and make_plan(plain).start_scale == 1.0
    assert make_plan(banded).start == "noise" and make_plan(banded, start="state").start_scale == 1.0
    with pytest.raises(ValueError, match=r"^start must be one of \('noise', 'state'\) .*, got 'pure'"):
        make_plan(banded, start="pure")
    z = torch.randn(8, D, generator=gen)
    alpha = float(fi.Linear()(torch.tensor(0.1)).alpha)
    by_noise = fi.sample(plain, z, t_min=0.1, start="noise")
    assert torch.equal(by_noise, fi.sample(plain, alpha * z, t_min=0.1))  # start="noise" is alpha(t_min) z
    scale = make_plan(banded).start_scale
    assert scale == pytest.approx(100 / 101, rel=1e-15)  # alpha = 1 - t at t = 1 / 101
    assert torch.equal(fi.sample(banded, z), fi.sample(banded, scale * z, start="state"))


@pytest.mark.parametrize("prediction", ["noise", "velocity", "x1"])
def test_matched_ends_from_the_exact_marginal_are_exact(prediction, gen):
    """10 RK4 steps under Linear from the exact state at the time of r_max: the exact flow to within the ODE error;
    the model is never evaluated outside its band (it would raise); denoise gives the exact x1^ at t_max."""
    band = (0.01, 157.0)
    drift = _limited(band, prediction)
    plan = make_plan(drift)
    t0, t1 = float(plan.grid[0]), float(plan.grid[-1])
    z = torch.randn(256, D, generator=gen)
    x0 = _exact_state(fi.Linear(), t0, z)
    truth = _flow(fi.Linear(), x0, t0, t1)
    assert _rel(fi.sample(drift, x0, start="state"), truth) < 3e-7
    s1 = fi.Linear()(torch.tensor(t1))
    x1_hat = TARGET.denoise(truth, s1.alpha, s1.beta)
    assert _rel(fi.sample(drift, x0, start="state", denoise=True), x1_hat) < 3e-7
    assert drift.model.calls == 2 * 40 + 1


def test_noise_start_error_shrinks_with_r_max_and_beats_a_start_outside_the_band(gen):
    """Starting from alpha(t_min) z misses beta(t_min) x1: an error ~ 1 / r_max; a DDPM-style (noise-predicting)
    model run from z at t_min = 1e-3 with its time clamped into the band is off by 12% at r_max = 100."""
    z = torch.randn(512, D, generator=gen)
    errors = []
    for r_max in (10.0, 100.0, 1000.0):
        band = (0.01, r_max)
        drift = _limited(band)
        plan = make_plan(drift)
        t0, t1 = float(plan.grid[0]), float(plan.grid[-1])
        truth = _flow(fi.Linear(), _exact_state(fi.Linear(), t0, z), t0, t1)  # = the exact flow of z from t = 0
        errors.append(_rel(fi.sample(drift, z), truth))
        if r_max == 100.0:
            clamped = _limited(band, clamp=True)
            outside = _rel(fi.sample(fi.Drift(clamped.model, fi.Linear(), "noise"), z, t_max=t1), truth)
    assert errors[0] > 8 * errors[1] > 64 * errors[2]
    assert errors[1] < 5e-3 and outside > 0.1 > 20 * errors[1]


@pytest.mark.parametrize(
    "schedule, target", [(fi.LipschitzOptimal(VAR), CENTRED), (fi.Trig(), TARGET)], ids=["lipschitz", "trig"]
)
def test_transferred_range_limited_drift_stays_inside_its_band(schedule, target, gen):
    """Transferred: the defaults are the target schedule's times of the same ratios, so the source model is still
    evaluated only inside its band; the result is the exact flow between them within RK4's error (fourth order)."""
    band = (0.01, 157.0)
    drift = _limited(band, "noise", target=target).transfer(schedule)
    plan = make_plan(drift)
    t0, t1 = float(plan.grid[0]), float(plan.grid[-1])
    z = torch.randn(256, D, generator=gen)
    mean = float(target.mean[0])
    x0 = _exact_state(schedule, t0, z, mean)
    truth = _flow(schedule, x0, t0, t1, mean)
    e10, e20 = (_rel(fi.sample(drift, x0, steps=n, start="state"), truth) for n in (10, 20))
    assert e10 < 3e-5 and e10 / e20 > 12  # Trig 1.1e-5, LipschitzOptimal 1.4e-7; 16x per halving
    assert drift.source.model.calls == 40 + 80


BACKENDS = ["eager", "fused", "compile"] + (["graph"] if CUDA else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_starts_and_ends_where_the_band_says(backend, gen):
    """Every backend reads make_plan's ends and start: equal to eager, and to the exact flow from alpha(t_min) z
    between the times of r_max and r_min (10 RK4 steps, float64); the SDE backends too."""
    band = (0.01, 157.0)
    drift = _limited(band, "noise", target=CENTRED).transfer(fi.LipschitzOptimal(VAR))
    device = "cuda" if backend == "graph" else "cpu"
    z = torch.randn(64, D, generator=gen).to(device)
    plan = make_plan(drift)
    t0, t1 = float(plan.grid[0]), float(plan.grid[-1])
    ref = _flow(fi.LipschitzOptimal(VAR), plan.start_scale * z, t0, t1, 0.0)
    for denoise in (False,) if backend == "compile" else (False, True):  # one compilation is enough
        out = fi.Sampler(drift, steps=10, denoise=denoise, backend=backend)(z)
        assert _rel(out, fi.sample(drift, z, denoise=denoise)) < 1e-12
        if not denoise:
            assert _rel(out, ref) < 2e-6
    if backend == "fused":
        sde = [
            fi.sample_sde(drift, z, steps=20, generator=torch.Generator().manual_seed(0), backend=b)
            for b in BACKENDS[:2]
        ]
        assert _rel(sde[1], sde[0]) < 1e-12


def test_sde_uses_the_same_defaults(gen):
    drift = _limited((0.01, 157.0), "noise")
    plan = make_plan(drift, eps="optimal", steps=50)
    assert _ratio(fi.Linear(), plan.grid[0]) == pytest.approx(157.0, rel=1e-12) and plan.start == "noise"
    z = torch.randn(2048, D, generator=gen)
    x = fi.sample_sde(drift, z, steps=50, generator=torch.Generator().manual_seed(3))
    s1 = fi.Linear()(plan.grid[-1])
    std = float((s1.alpha**2 + s1.beta**2 * VAR).sqrt())
    assert float(x.mean()) == pytest.approx(float(s1.beta) * MEAN, abs=0.02)
    assert float(x.std(0).mean()) == pytest.approx(std, rel=0.03)
