import math

import pytest
import torch

import fastinterp as fi

LAMS = [1e-14, 1e-5, 1e-2, 1 - 1e-9, 1.0, 1 + 1e-9, 50.0, 1e8]
SCHEDULES = [fi.Linear(), fi.Trig(), fi.MixtureOptimal(30.0), fi.MixtureOptimal(0.3), fi.MixtureOptimal(3.0)] + [
    fi.LipschitzOptimal(lam) for lam in LAMS
]


def _lipschitz_reference(lam, t):
    """The textbook form (lam - lam^t)/(lam - 1) in 50-digit arithmetic."""
    import mpmath as mp

    mp.mp.dps = 50
    lam = mp.mpf(lam)
    out = []
    for ti in t.tolist():
        ti = mp.mpf(ti)
        if lam == 1:
            a2, b2 = 1 - ti, ti
        else:
            a2, b2 = (lam - lam**ti) / (lam - 1), (lam**ti - 1) / (lam - 1)
        out.append((float(mp.sqrt(a2)), float(mp.sqrt(b2))))
    return torch.tensor(out)


@pytest.mark.parametrize("sched", SCHEDULES, ids=repr)
def test_boundary_values(sched):
    out = sched(torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(out.alpha, torch.tensor([1.0, 0.0]), atol=1e-12, rtol=0)
    torch.testing.assert_close(out.beta, torch.tensor([0.0, 1.0]), atol=1e-12, rtol=0)


@pytest.mark.parametrize("sched", SCHEDULES, ids=repr)
def test_derivatives_match_autograd_of_values(sched):
    t = torch.linspace(0.02, 0.98, 49)
    out = sched(t)
    tt = t.clone().requires_grad_(True)
    o = sched(tt)
    (da,) = torch.autograd.grad(o.alpha.sum(), tt, retain_graph=True)
    (db,) = torch.autograd.grad(o.beta.sum(), tt)
    torch.testing.assert_close(out.dalpha, da, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out.dbeta, db, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("lam", LAMS)
def test_lipschitz_optimal_closed_form_is_accurate(lam):
    pytest.importorskip("mpmath")
    t = torch.tensor([1e-12, 1e-6, 0.01, 0.3, 0.5, 0.7, 0.99, 1 - 1e-6])
    ref = _lipschitz_reference(lam, t)
    out = fi.LipschitzOptimal(lam)(t)
    torch.testing.assert_close(out.alpha, ref[:, 0], rtol=1e-12, atol=0)
    torch.testing.assert_close(out.beta, ref[:, 1], rtol=1e-12, atol=0)


def test_lipschitz_optimal_is_continuous_at_one():
    t = torch.linspace(0.01, 0.99, 11)
    limit = fi.LipschitzOptimal(1.0)(t)
    for lam in (1 - 1e-10, 1 + 1e-10):
        near = fi.LipschitzOptimal(lam)(t)
        for a, b in zip(near, limit, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=0)


@pytest.mark.parametrize("sched", [s for s in SCHEDULES if s.variance_preserving], ids=repr)
def test_variance_preserving(sched):
    out = sched(torch.linspace(0, 1, 101))
    torch.testing.assert_close(out.alpha**2 + out.beta**2, torch.ones(101), rtol=0, atol=1e-14)


def test_mixture_optimal_formula_small_m():
    M = 0.7
    t = torch.linspace(0.05, 0.95, 7)
    beta = torch.sqrt(-torch.log1p(math.expm1(-M * M) * t)) / M
    torch.testing.assert_close(fi.MixtureOptimal(M)(t).beta, beta, rtol=1e-13, atol=0)
    M = 30.0  # exp(-900) underflows: beta^2 = -log(1 - t) / M^2 for t < 1
    t = torch.tensor([0.1, 0.5, 1 - 1e-3])
    torch.testing.assert_close(fi.MixtureOptimal(M)(t).beta, torch.sqrt(-torch.log1p(-t)) / M, rtol=1e-13, atol=0)


@pytest.mark.parametrize("sched", SCHEDULES, ids=repr)
def test_invert_ratio_closed_form_and_bisection(sched):
    t = torch.cat([torch.tensor([0.0, 1e-9, 1.0]), torch.linspace(0.01, 0.99, 33)])
    out = sched(t)
    closed = sched.invert_ratio(out.alpha, out.beta)
    generic = fi.Schedule.invert_ratio(sched, out.alpha, out.beta)
    torch.testing.assert_close(closed, t, rtol=0, atol=1e-12)
    torch.testing.assert_close(generic, t, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)])
def test_any_shape_and_dtype(dtype, shape):
    t = torch.full(shape, 0.4, dtype=dtype)
    for sched in SCHEDULES:
        out = sched(t)
        for v in out:
            assert v.shape == t.shape and v.dtype == dtype
            assert torch.isfinite(v).all()


def test_optimal_diffusion_formula():
    t = torch.linspace(0.05, 0.95, 19)
    for sched in SCHEDULES:
        s = sched(t)
        expected = s.alpha**2 * (s.dbeta / s.beta - s.dalpha / s.alpha)
        torch.testing.assert_close(sched.optimal_diffusion(t), expected, rtol=1e-11, atol=1e-12)
    # linear: eps* = (1 - t)^2 (1/t + 1/(1 - t)) = (1 - t) / t
    torch.testing.assert_close(fi.Linear().optimal_diffusion(t), (1 - t) / t)


def test_tabulated_reproduces_a_smooth_schedule():
    knots = torch.linspace(0, 1, 401)
    trig = fi.Trig()
    tab = fi.Tabulated(knots, trig(knots).beta)
    t = torch.linspace(0.03, 0.97, 97)
    ref, out = trig(t), tab(t)
    torch.testing.assert_close(out.beta, ref.beta, rtol=0, atol=1e-7)
    # PCHIP's harmonic-mean slopes err by ~(h beta'')^2 / beta' = (2.5e-3 * 2.5)^2 / 0.07 ~ 5e-4 near t = 1
    torch.testing.assert_close(out.dbeta, ref.dbeta, rtol=0, atol=1e-3)
    torch.testing.assert_close(out.dbeta[:80], ref.dbeta[:80], rtol=0, atol=5e-5)
    torch.testing.assert_close(out.alpha, ref.alpha, rtol=0, atol=1e-6)  # alpha = sqrt(1 - beta^2) amplifies near 1
    torch.testing.assert_close(out.dalpha, ref.dalpha, rtol=3e-3, atol=0)
    torch.testing.assert_close(tab.invert_ratio(out.alpha, out.beta), t, rtol=0, atol=1e-10)
    # with alpha given, both come from the table
    tab2 = fi.Tabulated(knots, 1 - (1 - knots) ** 2, alpha=(1 - knots) ** 2)
    torch.testing.assert_close(tab2(t).alpha, (1 - t) ** 2, rtol=0, atol=1e-6)
    torch.testing.assert_close(tab2(t).dalpha, -2 * (1 - t), rtol=0, atol=1e-3)


def test_tabulated_is_monotone_between_knots():
    knots = torch.tensor([0.0, 0.1, 0.2, 0.8, 1.0])
    beta = torch.tensor([0.0, 0.5, 0.51, 0.52, 1.0])  # steep, flat, steep: cubic splines overshoot here
    out = fi.Tabulated(knots, beta)(torch.linspace(0, 1, 2001))
    assert (out.beta[1:] >= out.beta[:-1] - 1e-15).all()
    assert (out.dbeta >= -1e-12).all()


def test_custom_schedule_autograd_derivatives():
    lin = fi.Custom(lambda t: 1 - t * t, lambda t: t * t)
    t = torch.linspace(0.1, 0.9, 9)
    out = lin(t)
    torch.testing.assert_close(out.dalpha, -2 * t)
    torch.testing.assert_close(out.dbeta, 2 * t)
    with torch.no_grad():  # derivatives still work inside no_grad sampling loops
        torch.testing.assert_close(lin(t).dbeta, 2 * t)
    torch.testing.assert_close(lin.invert_ratio(out.alpha, out.beta), t, rtol=0, atol=1e-12)
    explicit = fi.Custom(lambda t: 1 - t, lambda t: t, lambda t: -torch.ones_like(t), lambda t: torch.ones_like(t))
    torch.testing.assert_close(explicit(t).dbeta, torch.ones_like(t))


@pytest.mark.parametrize("lam", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_lam(lam):
    with pytest.raises(ValueError, match="lam"):
        fi.LipschitzOptimal(lam)


def test_bad_inputs():
    with pytest.raises(TypeError, match="lam"):
        fi.LipschitzOptimal("1e-5")
    with pytest.raises(ValueError, match="M"):
        fi.MixtureOptimal(-2.0)
    with pytest.raises(TypeError, match="t must be"):
        fi.Linear()(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="t must increase"):
        fi.Tabulated(torch.tensor([0.0, 0.6, 0.5, 1.0]), torch.tensor([0.0, 0.2, 0.3, 1.0]))
    with pytest.raises(ValueError, match="beta must be non-decreasing"):
        fi.Tabulated(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 0.7, 0.6]))
    with pytest.raises(TypeError, match="alpha must be callable"):
        fi.Custom(1.0, lambda t: t)
    with pytest.raises(ValueError, match="shaped like t"):
        fi.Custom(lambda t: t.sum(), lambda t: t)(torch.ones(3))
