"""Likely paths (ProbGEORCE), Fréchet means and the baselines: checked against closed forms and each other."""

from __future__ import annotations

import math

import pytest
import torch

import fastinterp as fi
from fastinterp import geometry as geo
from fastinterp.geometry import frechet_mean, gradient_descent_path, likely_path, noise_space_path


def three_modes() -> fi.targets.GaussianMixture:
    return fi.targets.GaussianMixture(
        torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 1.0, 1.0]), 0.3
    )


def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs whose likely paths converge quickly (no near-bifurcation) at the lam used below."""
    a = torch.tensor([[-2.0, 0.0], [-1.8, 0.3], [2.1, -0.2], [0.2, 1.7]])
    b = torch.tensor([[0.0, 2.0], [2.2, 0.1], [0.1, 2.2], [-2.0, -0.2]])
    return a, b


def line(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    s = torch.linspace(0, 1, n + 1).reshape(1, -1, 1)
    return a.unsqueeze(1) * (1 - s) + b.unsqueeze(1) * s


# ------------------------------------------------------------------------------------------------ Euclidean paths


def test_lam_zero_is_the_straight_line():
    g = three_modes()
    a, b = pairs()
    res = likely_path(a, b, score=g, lam=0.0, n_grid=40)
    assert (res.curves - line(a, b, 40)).abs().max() < 1e-12
    assert res.iterations.tolist() == [0, 0, 0, 0] and bool(res.converged.all())
    assert torch.equal(res.curves[:, 0], a) and torch.equal(res.curves[:, -1], b)


def test_likely_path_nll_below_the_line_and_decreasing_in_lam():
    g = three_modes()
    a, b = pairs()
    nlls = []
    for lam in (1.0, 4.0, 10.0):
        res = likely_path(a, b, score=g, lam=lam, n_grid=50)
        assert bool(res.converged.all()), (lam, res.iterations, res.grad_norm)
        assert bool((res.nll < res.line_nll).all())
        # the reported nll is the mean of -log p over the interior points
        ref = -g.log_prob(res.curves[:, 1:-1].reshape(-1, 2)).reshape(4, -1).mean(1)
        assert torch.allclose(res.nll, ref, atol=1e-12)
        nlls.append(res.nll)
    assert bool((nlls[1] < nlls[0]).all()) and bool((nlls[2] < nlls[1]).all())


def test_converged_curve_is_stationary_for_the_discrete_energy():
    g = three_modes()
    a, b = pairs()
    a, b = a[[0, 2, 3]], b[[0, 2, 3]]  # pair 1 converges too slowly (linear rate) for tol = 1e-7 here
    res = likely_path(a, b, score=g, lam=5.0, n_grid=30, tol=1e-7)
    assert bool(res.converged.all()), res.grad_norm
    z = res.curves[:, 1:-1].clone().requires_grad_(True)
    full = torch.cat([a.unsqueeze(1), z, b.unsqueeze(1)], 1)
    u = full.diff(dim=1)
    E = u.square().sum((1, 2)) - res.lam_n * g.log_prob(z.reshape(-1, 2)).reshape(3, -1).sum(1)
    (grad,) = torch.autograd.grad(E.sum(), z)
    assert grad.flatten(1).norm(dim=1).max() < 1e-7
    assert torch.allclose(E.detach(), res.energy, atol=1e-12)


def test_lam_normalisation_follows_the_paper():
    g = three_modes()
    a, b = pairs()
    res = likely_path(a, b, score=g, lam=7.0, n_grid=20, max_iter=0)
    zl = line(a, b, 20)[:, 1:-1]
    S = -g.log_prob(zl.reshape(-1, 2)).reshape(4, -1).sum(1)
    e_kin = (b - a).square().sum(1) / 20
    assert torch.allclose(res.lam_n, 7.0 * e_kin / S.abs(), rtol=1e-12)
    raw = likely_path(a, b, score=g, lam=7.0, n_grid=20, max_iter=0, normalize_lam=False)
    assert torch.equal(raw.lam_n, torch.full((4,), 7.0))


def test_batched_equals_pair_by_pair():
    g = three_modes()
    a, b = pairs()
    batch = likely_path(a, b, score=g, lam=5.0, n_grid=40, check_every=3)
    for p in range(4):
        one = likely_path(a[p : p + 1], b[p : p + 1], score=g, lam=5.0, n_grid=40, check_every=7)
        assert (one.curves[0] - batch.curves[p]).abs().max() < 1e-12
        assert int(one.iterations) == int(batch.iterations[p])
        assert abs(float(one.energy) - float(batch.energy[p])) < 1e-12


@pytest.mark.parametrize("accelerate", [True, False])
def test_finished_pairs_leave_the_working_set(accelerate):
    """Pairs stopping at very different iterations: the late iterations evaluate only the working pairs, and every
    result (curves, iterations, energy traces, a late bad value's pair index) equals a pair-by-pair run."""
    g = three_modes()
    gen = torch.Generator().manual_seed(3)
    x = g.sample(12, generator=gen)
    a, b = x[:6], x[6:]
    sizes = []

    def score(z):
        sizes.append(z.shape[0])
        return g.score(z)

    kw = dict(lam=20.0, n_grid=20, max_iter=400, check_every=5, record_energy=True, accelerate=accelerate)
    for src in (
        dict(score=g),
        dict(score=score),
        dict(score=g, metric=lambda z: 2.0 * torch.eye(2).expand(len(z), 2, 2)),
    ):
        sizes.clear()
        batch = likely_path(a, b, **src, **kw)
        iters = batch.iterations
        assert int(iters.max()) > 2 * int(iters.min()) + 5, iters  # the workload does exercise the compaction
        if src["score"] is score:
            score_only_iters = iters
            assert min(sizes) < 6 * 19 and sizes[-1] == (iters == iters.max()).sum() * 19, sizes[-5:]
        for p in range(6):
            one = likely_path(a[p : p + 1], b[p : p + 1], **src, **kw)
            assert (one.curves[0] - batch.curves[p]).abs().max() < 1e-12
            assert int(one.iterations) == int(iters[p])
            assert bool(one.converged) == bool(batch.converged[p])
            assert float(one.grad_norm) == pytest.approx(float(batch.grad_norm[p]), rel=1e-6, abs=1e-12)
            # the trace of a finished pair stays at its final energy
            T = one.energy_trace.shape[0]
            assert (one.energy_trace[:, 0] - batch.energy_trace[:T, p]).abs().max() < 1e-12
            assert (batch.energy_trace[T - 1 :, p] - batch.energy[p]).abs().max() < 1e-12
    # a bad value met after the first compaction names the pair by its position in the batch: the first pair to
    # finish stops at iteration k, leaves at the check c = 5 ceil(k / 5), and the NaN first meets the working pairs
    iters = score_only_iters
    c = -(-int(iters.min()) // 5) * 5
    first_bad = int((iters > c).nonzero()[0])
    assert first_bad > 0  # pair 0 has left: the index must be mapped back to the batch

    def nan_late(z):
        s = g.score(z)
        late = z.shape[0] % 19 == 0 and z.shape[0] < 6 * 19  # curve points after the first compaction
        return s * torch.nan if late else s

    with pytest.raises(ValueError, match=rf"iteration {c + 1} for pair {first_bad}\b"):
        likely_path(a, b, score=nan_late, lam=20.0, n_grid=20, max_iter=400, check_every=5, accelerate=accelerate)


def test_conjugate_directions_converge_where_the_plain_iteration_crawls():
    """accelerate=True (PR+ conjugate ProbGEORCE steps) against the paper's plain iteration at lam = 20: the same
    minimiser, every pair converged, and far fewer iterations in total (counts, not timings)."""
    g = three_modes()
    x = g.sample(32, generator=torch.Generator().manual_seed(1))
    a, b = x[:16], x[16:]
    plain = likely_path(a, b, score=g, lam=20.0, n_grid=50)
    fast = likely_path(a, b, score=g, lam=20.0, n_grid=50, accelerate=True)
    assert bool(fast.converged.all()) and not bool(plain.converged.all())  # one plain pair hits max_iter = 1000
    assert int(fast.iterations.sum()) * 2 < int(plain.iterations.sum())
    both = plain.converged & fast.converged
    # |grad E| < 1e-4 pins E to ~1e-7 and the points to ~1e-3 (sliding along the curve is a flat direction)
    assert (fast.energy - plain.energy)[both].abs().max() < 5e-7
    assert (fast.curves - plain.curves)[both].abs().max() < 5e-3
    assert float(fast.energy[~plain.converged].max() - plain.energy[~plain.converged].max()) < 0  # lower where stuck


def test_log_prob_through_autograd_equals_the_analytic_score():
    g = three_modes()
    a, b = pairs()
    r1 = likely_path(a, b, score=g, lam=5.0, n_grid=40)
    r2 = likely_path(a, b, log_prob=g.log_prob, lam=5.0, n_grid=40)
    r3 = likely_path(a, b, score=g.score, log_prob=g, lam=5.0, n_grid=40)
    assert (r1.curves - r2.curves).abs().max() < 1e-10
    assert (r1.curves - r3.curves).abs().max() < 1e-10
    assert torch.equal(r1.iterations, r2.iterations)


def test_score_only_source_finds_the_same_path():
    """Without S the line search integrates the score (trapezoid); the minimiser is the same."""
    g = three_modes()
    a, b = pairs()
    kw = dict(lam=0.05, normalize_lam=False, n_grid=20, tol=1e-6, max_iter=3000)
    with_value = likely_path(a, b, score=g, **kw)
    score_only = likely_path(a, b, score=g.score, **kw)
    assert bool(with_value.converged.all()) and bool(score_only.converged.all())
    assert (with_value.curves - score_only.curves).abs().max() < 1e-4
    # nll of a score-only source is S - S(a), integrated along the curve by the trapezoid rule
    c = score_only.curves
    gS = -g.score(c.reshape(-1, 2)).reshape(c.shape)
    inc = 0.5 * ((gS[:, :-1] + gS[:, 1:]) * c.diff(dim=1)).sum(-1)  # S(z_{i+1}) - S(z_i)
    rel = inc.cumsum(1)[:, :-1]  # S(z_i) - S(a), i = 1 .. N-1
    assert (score_only.nll - rel.mean(1)).abs().max() < 1e-12
    exact = -g.log_prob(c[:, 1:-1].reshape(-1, 2)).reshape(4, -1).mean(1) + g.log_prob(a)
    assert (score_only.nll - exact).abs().max() < 0.05  # quadrature error at N = 20


def test_drift_source_uses_the_score_near_t_equal_1():
    g = three_modes()
    a, b = pairs()
    kw = dict(lam=0.05, normalize_lam=False, n_grid=20, tol=1e-6, max_iter=2000)
    exact = likely_path(a, b, score=g, **kw)
    for prediction in ("velocity", "x1"):
        drift = g.drift(fi.Linear(), prediction=prediction)
        via_drift = likely_path(a, b, score=drift, t_score=1 - 1e-4, **kw)
        assert bool(via_drift.converged.all())
        # rho_t at t = 1 - 1e-4 is the data law scaled by t and smoothed by alpha = 1e-4: O(1e-4) apart
        assert (via_drift.curves - exact.curves).abs().max() < 1e-3


def test_event_shapes_are_flattened_consistently():
    g = three_modes()
    a, b = pairs()

    def score(x):  # x: (M, 1, 2)
        return g.score(x.reshape(-1, 2)).reshape(x.shape)

    flat = likely_path(a, b, score=g.score, lam=5.0, n_grid=20)
    shaped = likely_path(a.reshape(4, 1, 2), b.reshape(4, 1, 2), score=score, lam=5.0, n_grid=20)
    assert shaped.curves.shape == (4, 21, 1, 2)
    assert (shaped.curves.reshape(4, 21, 2) - flat.curves).abs().max() < 1e-12


# ------------------------------------------------------------------------------------------------ metrics


def test_constant_metric_gives_the_straight_line():
    a, b = pairs()
    A = torch.tensor([[2.0, 1.0], [0.0, 0.5]])
    res = likely_path(a, b, metric=lambda z: (A.T @ A).expand(z.shape[0], 2, 2), n_grid=30)
    assert (res.curves - line(a, b, 30)).abs().max() < 1e-12


def _pullback():
    """phi(z) = (sinh z1, z2 + c z1^2): G = J^T J, geodesics are phi^-1 of straight lines (constant speed)."""
    c = 0.5

    def metric(z):
        J = torch.zeros(z.shape[0], 2, 2)
        J[:, 0, 0] = torch.cosh(z[:, 0])
        J[:, 1, 0] = 2 * c * z[:, 0]
        J[:, 1, 1] = 1.0
        return J.transpose(1, 2) @ J

    def phi(z):
        return torch.stack([torch.sinh(z[..., 0]), z[..., 1] + c * z[..., 0] ** 2], -1)

    def phi_inv(y):
        z1 = torch.asinh(y[..., 0])
        return torch.stack([z1, y[..., 1] - c * z1**2], -1)

    return metric, phi, phi_inv


def test_pullback_metric_matches_its_known_geodesics_at_first_order():
    metric, phi, phi_inv = _pullback()
    a = torch.tensor([[-1.0, 0.0], [0.5, -1.0]])
    b = torch.tensor([[1.0, 0.5], [-1.5, 1.5]])
    errors = []
    for n in (50, 100):
        res = likely_path(a, b, metric=metric, n_grid=n, tol=1e-10, max_iter=500)
        assert bool(res.converged.all())
        exact = phi_inv(line(phi(a), phi(b), n))
        assert (line(a, b, n) - exact).abs().max() > 0.4  # the geodesics are far from straight
        errors.append(float((res.curves - exact).abs().max()))
    # the left-point rule for G(z_i) u_i is first order: the error halves with the step
    assert errors[1] < 0.011
    assert 1.8 < errors[0] / errors[1] < 2.2


def test_metric_with_potential_batched_equals_pairwise():
    metric, _, _ = _pullback()
    g = three_modes()
    a, b = pairs()
    batch = likely_path(a, b, score=g, metric=metric, lam=2.0, n_grid=20)
    assert bool(batch.converged.all())
    assert bool((batch.nll < batch.line_nll).all())
    for p in (0, 3):
        one = likely_path(a[p : p + 1], b[p : p + 1], score=g, metric=metric, lam=2.0, n_grid=20)
        assert (one.curves[0] - batch.curves[p]).abs().max() < 1e-12


# ------------------------------------------------------------------------------------------------ baselines


def test_probgeorce_needs_ten_times_fewer_iterations_than_adam():
    g = three_modes()
    a, b = torch.tensor([[-2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    kw = dict(score=g, lam=5.0, n_grid=50, record_energy=True)
    ours = likely_path(a, b, tol=1e-7, **kw)
    adam = gradient_descent_path(a, b, tol=1e-7, lr=3e-3, max_iter=3000, **kw)
    E_star = min(float(ours.energy), float(adam.energy))

    def first_within(trace):
        hit = (trace[:, 0] - E_star <= 1e-6).nonzero()
        return int(hit[0]) if len(hit) else None

    k_ours, k_adam = first_within(ours.energy_trace), first_within(adam.energy_trace)
    assert k_ours is not None and k_adam is not None, (k_ours, k_adam)
    assert k_adam >= 10 * k_ours, (k_ours, k_adam)
    # both minimise the same energy: Adam is not better than the converged ProbGEORCE curve
    assert float(adam.energy) >= float(ours.energy) - 1e-9


def test_gradient_descent_converges_to_the_same_curve():
    g = three_modes()
    a, b = torch.tensor([[-2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    ours = likely_path(a, b, score=g, lam=1.0, n_grid=10, tol=1e-9)
    gd = gradient_descent_path(a, b, score=g, lam=1.0, n_grid=10, tol=1e-9, optimizer="gd", lr=0.2, max_iter=20000)
    assert bool(gd.converged.all()) and bool(ours.converged.all())
    assert (gd.curves - ours.curves).abs().max() < 1e-8


# ------------------------------------------------------------------------------------------------ Fréchet means


def five_modes() -> fi.targets.GaussianMixture:
    means = torch.tensor([[0.0, 0.0], [2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    return fi.targets.GaussianMixture(means, torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0]), 0.2)


def test_frechet_mean_of_points_symmetric_about_a_mode_is_the_mode():
    g = five_modes()
    pts = torch.tensor([[1.5, 0.8], [-1.5, -0.8], [1.5, -0.8], [-1.5, 0.8]])
    for lam in (5.0, 20.0):
        res = frechet_mean(pts, score=g, lam=lam, n_grid=30, tol=1e-7, init=torch.tensor([0.3, -0.2]))
        assert bool(res.converged), (lam, res.grad_norm)
        assert res.mean.abs().max() < 1e-5, res.mean
        assert torch.equal(res.curves[:, 0], pts)
        assert torch.equal(res.curves[:, -1], res.mean.expand(4, 2))


def test_frechet_mean_conjugate_directions_same_mean_fewer_iterations():
    g = three_modes()
    x = g.sample(6, generator=torch.Generator().manual_seed(2))
    plain = frechet_mean(x, score=g, lam=10.0, n_grid=30)
    fast = frechet_mean(x, score=g, lam=10.0, n_grid=30, accelerate=True)
    assert bool(plain.converged) and bool(fast.converged)
    assert 3 * int(fast.iterations) < int(plain.iterations)
    assert abs(float(fast.energy - plain.energy)) < 1e-6 and (fast.mean - plain.mean).abs().max() < 1e-3


def test_frechet_mean_weights():
    g = five_modes()
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.5], [0.0, 2.0]])
    w = torch.tensor([1.0, 2.0, 3.0])
    # lam = 0, Euclidean: the weighted arithmetic mean
    r0 = frechet_mean(x, w, lam=0.0)
    assert torch.allclose(r0.mean, (w[:, None] * x).sum(0) / w.sum(), atol=1e-14)
    kw = dict(score=g, lam=5.0, n_grid=30, tol=1e-8)
    r1 = frechet_mean(x, w, **kw)
    r2 = frechet_mean(x, 10 * w, **kw)  # only ratios matter
    assert (r1.mean - r2.mean).abs().max() < 1e-12
    dup = frechet_mean(torch.cat([x[:1], x[1:2], x[1:2], x[2:], x[2:], x[2:]]), **kw)  # integer weights = copies
    assert (dup.mean - r1.mean).abs().max() < 1e-6
    # more weight on a point pulls the mean toward it
    dist = [float((frechet_mean(x, torch.tensor([1.0, 1.0, c]), **kw).mean - x[2]).norm()) for c in (1.0, 3.0, 9.0)]
    assert dist[0] > dist[1] > dist[2]
    # a zero weight removes a point
    r_zero = frechet_mean(x, torch.tensor([1.0, 2.0, 0.0]), **kw)
    r_two = frechet_mean(x[:2], torch.tensor([1.0, 2.0]), **kw)
    assert (r_zero.mean - r_two.mean).abs().max() < 1e-6


def test_frechet_mean_under_a_pullback_metric():
    metric, phi, phi_inv = _pullback()
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.5], [0.0, 2.0]])
    errs = []
    for n in (40, 80):
        res = frechet_mean(x, metric=metric, lam=0.0, n_grid=n, tol=1e-10)
        assert bool(res.converged)
        errs.append(float((res.mean - phi_inv(phi(x).mean(0))).abs().max()))
    assert errs[1] < 0.01 and errs[1] < 0.6 * errs[0]


# ------------------------------------------------------------------------------------------------ noise space


def test_noise_space_path_decodes_to_the_endpoints_and_stays_on_the_shell():
    d = 8
    g = fi.targets.GaussianMixture(torch.stack([torch.ones(d), -torch.ones(d)]), torch.tensor([1.0, 1.0]), 0.5)
    drift = g.drift(fi.Linear())
    x = g.sample(4, generator=torch.Generator().manual_seed(0))
    res = noise_space_path(drift, x[:2], x[2:], n_grid=16, steps=40)
    assert (res.curves[:, 0] - x[:2]).abs().max() < 1e-4
    assert (res.curves[:, -1] - x[2:]).abs().max() < 1e-4
    assert torch.allclose(res.noise_curves[:, 0], geo.invert(drift, x[:2], steps=40))
    r = res.noise_curves.norm(dim=-1)
    straight = line(res.noise_curves[:, 0], res.noise_curves[:, -1], 16).norm(dim=-1)
    shell = math.sqrt(d - 1)
    assert bool(((r - shell).abs().amax(1) < (straight - shell).abs().amax(1)).all())


# ------------------------------------------------------------------------------------------------ errors


def test_bad_arguments_fail_loudly():
    g = three_modes()
    a, b = pairs()
    with pytest.raises(ValueError, match="a and b"):
        likely_path(a, b[:3], score=g)
    with pytest.raises(ValueError, match="n_grid"):
        likely_path(a, b, score=g, n_grid=1)
    with pytest.raises(TypeError, match="n_grid"):
        likely_path(a, b, score=g, n_grid=10.0)
    with pytest.raises(ValueError, match="lam"):
        likely_path(a, b, score=g, lam=-1.0)
    with pytest.raises(TypeError, match="a must be"):
        likely_path(a.tolist(), b, score=g)
    with pytest.raises(TypeError, match="score"):
        likely_path(a, b, score=3.0)
    with pytest.raises(ValueError, match="a must be finite"):
        likely_path(torch.full_like(a, math.nan), b, score=g)
    with pytest.raises(ValueError, match="shaped like its input"):
        likely_path(a, b, score=lambda x: x[:, :1])
    with pytest.raises(ValueError, match="metric must return"):
        likely_path(a, b, metric=lambda z: torch.eye(3).expand(z.shape[0], 3, 3))
    with pytest.raises(TypeError):
        likely_path(a, b, score=g, n_grids=10)  # no catch-all: a misspelt option fails
    with pytest.raises(ValueError, match="weights"):
        frechet_mean(a, torch.tensor([1.0, -1.0, 1.0, 1.0]), score=g)
    with pytest.raises(ValueError, match="weights"):
        frechet_mean(a, torch.ones(3), score=g)
    with pytest.raises(ValueError, match="optimizer"):
        gradient_descent_path(a, b, score=g, optimizer="lbfgs")


def test_non_finite_score_names_the_iteration_and_the_pair():
    g = three_modes()
    a, b = pairs()

    def nan_on_line(x):
        s = g.score(x)
        return torch.where((x[:, 1:] > 0.4) & (x[:, :1] > 1.5), torch.nan, s)  # only pair 2's line meets it

    with pytest.raises(ValueError, match=r"iteration 0 for pair 2"):
        likely_path(a, b, score=nan_on_line, lam=5.0, n_grid=20)

    def nan_later(x):  # finite on the straight line y = x + 2 of pair 0, NaN as soon as the curve leaves it
        s = g.score(x)
        off = ((x[:, 1:] - x[:, :1] - 2.0).abs() > 0.02) & (x[:, :1] > -1.8) & (x[:, :1] < -0.2)
        return torch.where(off, torch.nan, s)

    with pytest.raises(ValueError, match=r"score returned non-finite values .* at iteration [1-9]\d* for pair 0"):
        likely_path(a[:1], torch.tensor([[0.0, 2.0]]), score=nan_later, lam=20.0, n_grid=20)

    def bad_metric(z):
        return -torch.eye(2).expand(z.shape[0], 2, 2).clone()

    with pytest.raises(ValueError, match=r"not symmetric positive definite .* at iteration 0 for pair 0"):
        likely_path(a, b, metric=bad_metric)


def test_demo_runs_and_prints_the_table(capsys, tmp_path):
    from fastinterp.geometry.demo import main

    assert main(["--no-plot", "--pairs", "2", "--lam", "2", "--n-grid", "20", "--max-iter", "50"]) == 0
    out = capsys.readouterr().out
    assert "line NLL" in out and "lam=2 NLL" in out and "Fréchet mean" in out


def test_all_names_resolve():
    for name in geo.__all__:
        assert getattr(geo, name) is not None
