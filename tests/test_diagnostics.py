import math

import pytest
import torch

import fastinterp as fi


def test_radial_spectrum_parseval_and_shells(gen):
    u = torch.randn(6, 16, 16, generator=gen)
    E = fi.radial_spectrum(u)
    torch.testing.assert_close(E.sum(), (u**2).sum((1, 2)).mean())
    assert E.numel() == round(8 * math.sqrt(2)) + 1
    # a single cosine of wavenumber (3, 4) lands in shell 5
    x = torch.arange(16) / 16
    wave = torch.cos(2 * math.pi * (3 * x[:, None] + 4 * x[None, :]))
    E = fi.radial_spectrum(wave[None])
    assert int(E.argmax()) == 5 and float(E[5]) == pytest.approx(float((wave**2).sum()))
    E1 = fi.radial_spectrum(torch.cos(2 * math.pi * 3 * x)[None], dim=1)
    assert int(E1.argmax()) == 3


def test_gaussian_field_samples_have_the_exact_spectrum(gen):
    field = fi.targets.GaussianRandomField(32)
    B = 200
    E = fi.radial_spectrum(field.sample(B, generator=gen))
    ref = field.expected_spectrum()
    counts = fi.shell_sum(torch.ones(32, 32), 2)
    # |u_k|^2 is exponential with mean S_k; k and -k coincide for real fields: ~counts/2 independent modes.
    for n in range(1, 16):
        tol = 5 * math.sqrt(2 / (counts[n] * B))
        assert abs(float(E[n] / ref[n]) - 1) < tol, n
    field1 = fi.targets.GaussianRandomField(64, dim=1)
    E1 = fi.radial_spectrum(field1.sample(4000, generator=gen), dim=1)
    ref1 = field1.expected_spectrum()
    assert (E1[1:] / ref1[1:] - 1).abs().max() < 5 * math.sqrt(1 / 4000)


def test_nyquist_ratios_match_reference():
    for n, expected in [(32, 8.03e-9), (64, 1.25e-10), (128, 1.96e-12)]:
        assert fi.targets.GaussianRandomField(n).nyquist_ratio() == pytest.approx(expected, rel=5e-3)
    f = fi.targets.GaussianRandomField(32)
    assert f.nyquist_ratio() == pytest.approx(float(f.spectrum()[16, 16]), rel=1e-12)
    assert float(f.spectrum().flatten()[1:].max()) == pytest.approx(1.0)  # S = 1 at |k| = 2 pi


def test_one_dimensional_gaussian_lipschitz_constants():
    """REFERENCE section 3: variance M, lam = M: |grad b| = |ln M| / 2 at every t; linear peaks at sqrt(M)/2."""
    M = 1e4
    target = fi.targets.Gaussian(torch.zeros(1), M)
    t = torch.linspace(1e-3, 1 - 1e-3, 999)
    lip = target.lipschitz_profile(fi.LipschitzOptimal(M), t).sqrt()
    torch.testing.assert_close(lip, torch.full_like(t, math.log(M) / 2), rtol=1e-10, atol=0)
    # the autograd diagnostic on the exact drift agrees
    x = torch.randn(4, 1)
    for ti in (0.01, 0.5, 0.99):
        j2 = fi.jacobian_sq_norm(target.drift(fi.LipschitzOptimal(M)), x, ti)
        torch.testing.assert_close(j2, torch.full((4,), (math.log(M) / 2) ** 2), rtol=1e-10, atol=0)
    # Linear: c(t) = (t M - (1 - t)) / ((1 - t)^2 + t^2 M) peaks at ~ sqrt(M)/2, i.e. |grad b|^2 ~ M/4: order M for
    # the squared Lipschitz constant (the paper's Omega(M)), order sqrt(M) for the constant itself.
    fine = torch.linspace(1e-7, 1 - 1e-7, 200001)
    peak = float(target.lipschitz_profile(fi.Linear(), fine).sqrt().max())
    assert peak == pytest.approx(math.sqrt(M) / 2, rel=0.02)
    A2_lin = float(torch.trapezoid(target.lipschitz_profile(fi.Linear(), fine), fine))
    A2_lip = float(torch.trapezoid(target.lipschitz_profile(fi.LipschitzOptimal(M), fine), fine))
    assert A2_lin == pytest.approx(math.pi / 4 * math.sqrt(M), rel=0.05)  # Omega(sqrt M)
    assert A2_lip == pytest.approx(math.log(M) ** 2 / 4, rel=1e-3)  # O(log^2 M)


def test_averaged_lipschitz_exact_for_gaussian(gen):
    var = torch.tensor([0.01, 0.5, 3.0])
    target = fi.targets.Gaussian(torch.zeros(3), var)
    drift = target.drift(fi.Trig())
    A2 = fi.averaged_lipschitz(drift, target.sample(8, generator=gen), t_min=0.01, t_max=0.99, n_t=33, generator=gen)
    t = torch.linspace(0.01, 0.99, 33)
    torch.testing.assert_close(A2, torch.trapezoid(target.lipschitz_profile(fi.Trig(), t), t))


def test_hutchinson_estimate_matches_exact(gen):
    ones = torch.ones(8)
    target = fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.5, 0.5]), 0.5)
    drift = target.drift(fi.Linear())
    x = 0.4 * target.sample(16, generator=gen) + 0.6 * torch.randn(16, 8, generator=gen)
    exact = fi.jacobian_sq_norm(drift, x, 0.4)
    est = fi.jacobian_sq_norm(drift, x, 0.4, probes=400, generator=gen)
    # Rademacher probes: relative standard deviation <= sqrt(2 / probes)
    assert float(((est - exact) / exact).abs().max()) < 5 * math.sqrt(2 / 400)
    prof = fi.lipschitz_profile(drift, target.sample(16, generator=gen), torch.tensor([0.2, 0.8]), probes=64)
    assert prof.shape == (2,) and torch.isfinite(prof).all()


def test_estimate_lam_fourier_and_covariance(gen):
    field = fi.targets.GaussianRandomField(16)
    data = field.sample(2000, generator=gen)
    est = fi.estimate_lam(data, method="fourier")
    assert est == pytest.approx(field.nyquist_ratio(), rel=0.25)
    var = torch.logspace(-3, 0, 8)
    g = fi.targets.Gaussian(torch.zeros(8), var)
    assert fi.estimate_lam(g.sample(20000, generator=gen)) == pytest.approx(1e-3, rel=0.1)
    with pytest.raises(ValueError, match="method"):
        fi.estimate_lam(data, method="svd")
    with pytest.raises(ValueError, match="at least 2 samples"):
        fi.estimate_lam(data[:1])
    with pytest.raises(ValueError, match="probes must be >= 1"):
        fi.jacobian_sq_norm(g.drift(fi.Linear()), torch.randn(2, 8), 0.5, probes=0)


def test_spectrum_error_is_the_mean_log10_ratio_over_shells():
    E = torch.tensor([5.0, 1.0, 1.0, 1.0])
    ref = torch.tensor([1.0, 10.0, 1.0, 0.01])
    assert fi.spectrum_error(E, ref) == pytest.approx((1 + 0 + 2) / 3)  # the mean shell (index 0) is left out
    assert fi.spectrum_error(E, ref, shells=2) == pytest.approx(0.5)
