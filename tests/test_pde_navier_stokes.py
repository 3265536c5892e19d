"""Stochastic Navier-Stokes: exact linear rows, C++ vs torch twin, invariant statistics, determinism, bad input."""

import math

import numpy as np
import pytest

_core = pytest.importorskip("fastinterp._core")

from fastinterp.pde import DivergedError, NavierStokes2D, enstrophy_spectrum  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny ops on shared cores (conftest.py)


def _mode_state(n, kx, ky, amp=1.0):
    s = np.zeros((1, n, n // 2 + 1), dtype=np.complex128)
    s[0, kx % n, ky] = amp * n * n / 2  # w = amp cos(kx x + ky y)
    return s


@pytest.mark.parametrize("n", [32, 128, 512])
def test_forcing_table_is_the_exact_dft_of_the_forcing_modes(n):
    """The solver's sparse forcing spectra (written down analytically) are numpy's rfft2 of the physical modes
    sin 6x, cos 7x, sin 5(x+y), cos 8(x+y), cos 6x, sin 7x, cos 5(x+y), sin 8(x+y), up to the FFT's rounding."""
    from fastinterp.pde.navier_stokes import _forcing_fields

    for modes in (4, 8):
        table = _core.ns_forcing(n, modes)
        fields = _forcing_fields(n, modes)
        assert len(table) == modes
        for entries, f in zip(table, fields, strict=True):
            dense = np.zeros(n * (n // 2 + 1), dtype=complex)
            for index, re, im in entries:
                assert re in (0.0, n * n / 2, -n * n / 2) and im in (0.0, n * n / 2, -n * n / 2)
                dense[index] = re + 1j * im
            ref = np.fft.rfft2(f).ravel()
            assert np.abs(dense - ref).max() < 1e-9 * n * n


@pytest.mark.parametrize("advection", [False, True])
def test_single_mode_decays_exactly(advection):
    # one Fourier mode is a steady solution of the Euler nonlinearity (psi is parallel to w), so with the
    # noise off it decays at exactly exp(-(nu k^2 + alpha) t) under the integrating factor
    n, kx, ky, steps = 32, 3, 2, 40
    ns = NavierStokes2D(n, nu=0.01, alpha=0.3, eps=0.0, dt=0.05, advection=advection)
    out = ns.integrate(_mode_state(n, kx, ky), steps)
    rate = ns.nu * (kx * kx + ky * ky) + ns.alpha
    ref = _mode_state(n, kx, ky, math.exp(-rate * steps * ns.dt))
    assert np.abs(out - ref).max() < 1e-12 * n * n
    # the paper's scheme: backward Euler's factor per step
    ns = NavierStokes2D(n, nu=0.01, alpha=0.3, eps=0.0, dt=0.05, scheme="em_imex", advection=advection)
    ref = _mode_state(n, kx, ky, (1 + ns.dt * rate) ** -steps)
    assert np.abs(ns.integrate(_mode_state(n, kx, ky), steps) - ref).max() < 1e-12 * n * n


def _cpp_vs_torch(steps):
    rng = np.random.default_rng(0)
    for scheme, dt in [("if_heun", 5e-3), ("em_imex", 1e-3)]:
        ns = NavierStokes2D(64, dt=dt, scheme=scheme)
        s0 = ns.initial_state(2, seed=1)
        dW = rng.standard_normal((2, steps, 8)) * math.sqrt(dt)
        a = ns.integrate(s0, steps, dW=dW)
        b = ns.integrate(s0, steps, dW=dW, backend="torch")
        assert np.abs(a - b).max() < 1e-10 * np.abs(a).max(), scheme
        assert np.abs(a - s0).max() > 1e-2 * np.abs(a).max()  # it moved


def test_cpp_matches_torch_twin_injected_noise():
    _cpp_vs_torch(150)


@pytest.mark.slow
def test_cpp_matches_torch_twin_1000_steps():
    _cpp_vs_torch(1000)


def test_torch_twin_draws_the_same_noise_and_float32():
    ns = NavierStokes2D(32, dt=1e-2)
    s0 = ns.initial_state(3, seed=2)
    a = ns.integrate(s0, 50, seed=4, step0=10)
    assert np.abs(a - ns.integrate(s0, 50, seed=4, step0=10, backend="torch")).max() < 1e-10 * np.abs(a).max()
    f = ns.integrate(ns.initial_state(3, seed=2, dtype=np.float32), 50, seed=4, step0=10)
    assert f.dtype == np.complex64 and np.abs(f - a).max() < 1e-4 * np.abs(a).max()


@pytest.mark.parametrize("scheme", ["em_imex", "if_heun"])
def test_fftw_backend_matches_builtin(scheme):
    """The solver on the FFTW backend (whole transforms, no skipped columns) takes the same steps as on the builtin
    one (dealiased columns only) to roundoff."""
    if "fftw" not in _core.fft_backends():
        pytest.skip("built without FFTW")
    ns = NavierStokes2D(64, dt=1e-3 if scheme == "em_imex" else 5e-3, scheme=scheme)
    s0 = ns.initial_state(2, seed=3)
    a = ns.integrate(s0, 40, seed=5)
    old = _core.fft_backend()
    try:
        _core.set_fft_backend("fftw")
        b = ns.integrate(s0, 40, seed=5)
    finally:
        _core.set_fft_backend(old)
    assert np.abs(a - b).max() < 1e-11 * np.abs(a).max()


def test_threads_and_resume_bit_identical():
    ns = NavierStokes2D(32, dt=1e-2)
    s0 = ns.initial_state(5, seed=9)
    ref = ns.integrate(s0, 30, seed=1, threads=1)
    for th in (2, 8):
        assert np.array_equal(ref, ns.integrate(s0, 30, seed=1, threads=th))
    mid = ns.integrate(s0, 12, seed=1)
    assert np.array_equal(ref, ns.integrate(mid, 18, seed=1, step0=12))
    assert np.array_equal(ref[2:], ns.integrate(s0[2:], 30, seed=1, first=2))  # batch split
    assert not np.array_equal(ref, ns.integrate(s0, 30, seed=2))
    snaps = ns.sample(3, seed=5, t_burn=0.1, t_snap=0.05, snapshots=3, threads=2)
    assert snaps.shape == (3, 3, 32, 32) and np.array_equal(
        snaps, ns.sample(3, seed=5, t_burn=0.1, t_snap=0.05, snapshots=3, threads=1)
    )


def _traj_means(x):
    """Per-trajectory means (axis 0 = trajectories, independent) -> mean and its standard error."""
    m = x.reshape(len(x), -1).mean(1)
    return m.mean(), m.std(ddof=1) / math.sqrt(len(m))


@pytest.mark.parametrize("scheme", ["if_heun", "em_imex"])
def test_ou_stationary_variance(scheme):
    # advection off: w = sum_j a_j e_j with independent scalar AR(1) amplitudes a' = c (a + eps dW), c = E or D,
    # whose exact stationary variance is c^2 eps^2 dt / (1 - c^2); <e_j^2> = 1/2
    ns = NavierStokes2D(32, nu=0.02, alpha=1.0, eps=1.5, dt=0.05, scheme=scheme, advection=False)
    w = ns.sample(600, seed=11, t_burn=8.0, t_snap=1.5, snapshots=12, threads=2)
    exact = 0.0
    for k2 in (36, 49, 50, 128):  # |k|^2 of 6x, 7x, 5(x+y), 8(x+y), each with sin and cos
        rate = ns.nu * k2 + ns.alpha
        c = math.exp(-rate * ns.dt) if scheme == "if_heun" else 1 / (1 + ns.dt * rate)
        exact += 2 * 0.5 * c * c * ns.eps**2 * ns.dt / (1 - c * c)
    mean, se = _traj_means((w**2).mean(axis=(-1, -2)))
    assert abs(mean - exact) < 5 * se, (mean, exact, se)
    continuous = sum(2 * 0.5 * ns.eps**2 / (2 * (ns.nu * k2 + ns.alpha)) for k2 in (36, 49, 50, 128))
    if scheme == "em_imex":  # the test resolves the scheme's O(dt) bias (if_heun's is O(dt^2), too small to see)
        assert abs(continuous - exact) > 5 * se


def test_enstrophy_balance():
    # 2 alpha <w^2> + 2 nu <|grad w|^2> = eps^2 modes / 2 (exact in continuous time, O(dt) at dt = 5e-3)
    n = 32
    ns = NavierStokes2D(n, nu=5e-3, alpha=0.5, eps=1.0, dt=5e-3)
    w = ns.sample(12, seed=21, t_burn=8.0, t_snap=0.5, snapshots=24, threads=2)
    wh = np.fft.fft2(w) / (n * n)
    k = np.fft.fftfreq(n, 1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    lhs = 2 * ns.alpha * (np.abs(wh) ** 2).sum((-1, -2)) + 2 * ns.nu * (k2 * np.abs(wh) ** 2).sum((-1, -2))
    mean, se = _traj_means(lhs)
    target = ns.eps**2 * ns.modes / 2
    assert abs(mean - target) < 5 * se + 0.02 * target, (mean, target, se)
    assert se < 0.05 * target
    # the advection really acts: it moves enstrophy to high wavenumbers, which the OU process never reaches
    Z = enstrophy_spectrum(w)
    assert Z[11:].sum() > 1e-4 * Z.sum()


@pytest.mark.slow
def test_if_heun_matches_em_imex_statistics():
    n, num = 64, 8
    common = dict(nu=1e-3, alpha=0.1, eps=1.0)
    a = NavierStokes2D(n, dt=5e-3, **common).sample(num, seed=1, t_burn=60.0, t_snap=2.0, snapshots=20, threads=2)
    b = NavierStokes2D(n, dt=1e-3, scheme="em_imex", **common).sample(
        num, seed=2, t_burn=60.0, t_snap=2.0, snapshots=20, threads=2
    )
    ra, sa = _traj_means(np.sqrt((a**2).mean((-1, -2))))
    rb, sb = _traj_means(np.sqrt((b**2).mean((-1, -2))))
    assert abs(ra - rb) < 4 * math.hypot(sa, sb), (ra, rb, sa, sb)
    Za, Zb = enstrophy_spectrum(a)[1:21], enstrophy_spectrum(b)[1:21]
    assert np.all(np.abs(np.log(Za / Zb)) < 0.35), Za / Zb


@pytest.mark.slow
def test_rms_vorticity_paper_setting():
    w = NavierStokes2D(128).sample(4, seed=3, t_burn=60.0, t_snap=5.0, snapshots=8, threads=2)  # dt = 5e-3
    rms = np.sqrt((w**2).mean((-1, -2))).mean()
    assert 2.8 < rms < 3.4, rms  # REFERENCE section 6: ~3.1 (the paper's training code divides by 3.0679)


def test_bad_input():
    for kw, match in [
        (dict(n=48), "power of two"), (dict(n=16), "power of two"), (dict(dt=0.0), "dt"), (dict(dt=-1e-3), "dt"),
        (dict(nu=-1e-3), "nu"), (dict(alpha=float("nan")), "alpha"), (dict(eps=float("inf")), "eps"),
        (dict(modes=6), "modes"), (dict(scheme="rk4"), "scheme"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            NavierStokes2D(**kw)
    ns = NavierStokes2D(32)
    with pytest.raises(ValueError, match="t_snap"):
        ns.sample(1, t_burn=0.0, t_snap=0.0123)
    c = dict(n=32, nu=1e-3, alpha=0.1, eps=1.0, dt=1e-3, modes=8, scheme="if_heun", advection=True)
    cfg = _core.NSConfig(**c)
    good = ns.initial_state(2)
    with pytest.raises(TypeError, match="state must have dtype"):
        _core.ns_run(good.real.copy(), cfg, burn=2)
    with pytest.raises(ValueError, match="state must have shape"):
        _core.ns_run(np.zeros((2, 32, 32), np.complex128), cfg, burn=2)
    with pytest.raises(ValueError, match=r"state must have shape .* n = config.n = 32"):
        _core.ns_run(np.zeros((2, 64, 33), np.complex128), cfg, burn=2)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.ns_run(np.zeros((2, 64, 33), np.complex128)[:, ::2], cfg, burn=2)
    with pytest.raises(ValueError, match="dimensions"):
        _core.ns_run(good[0], cfg, burn=2)
    with pytest.raises(ValueError, match="dW must have shape"):
        _core.ns_run(good, cfg, burn=2, dW=np.zeros((2, 3, 8)))
    with pytest.raises(TypeError, match="dW must have dtype"):
        _core.ns_run(good, cfg, burn=2, dW=np.zeros((2, 2, 8), np.float32))
    # the engine's struct guards its invariants (short messages; the user-facing checks are the spec's)
    for bad, match in [
        (dict(dt=0.0), "dt must be finite and > 0"), (dict(nu=-1.0), "nu must be finite and >= 0"),
        (dict(nu=float("nan")), "nu must be finite"), (dict(n=48), "n must be a power of two"),
        (dict(modes=6), "modes must be 4 or 8"), (dict(scheme="rk4"), "scheme must be"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=f"NSConfig: {match}"):
            _core.NSConfig(**{**c, **bad})
    assert (cfg.n, cfg.dt, cfg.scheme, cfg.advection) == (32, 1e-3, "if_heun", True)
    with pytest.raises(AttributeError):
        cfg.dt = 1.0  # read-only: a struct that passed its checks stays valid
    # the engine reports the fact only; the advice is Python's, once
    with pytest.raises(RuntimeError, match=r"diverged .* at dt = 1$") as info:
        _core.ns_run(good * 1e6, _core.NSConfig(**{**c, "dt": 1.0, "scheme": "em_imex"}), burn=200)
    assert "Courant" not in str(info.value)


def test_courant_number_and_the_divergence_message():
    # w = A cos(kx x + ky y), ky > 0: psi = w / k^2, (u, v) = (psi_y, -psi_x), so |u| + |v| = A (|kx| + |ky|) / k^2
    # |sin(kx x + ky y)|, whose peak the grid samples exactly (the phase runs over multiples of 2 pi / n)
    ns = NavierStokes2D(64, dt=2e-3)
    c = ns.courant(np.concatenate([_mode_state(64, 3, 1, amp=1.5), _mode_state(64, -2, 5), _mode_state(64, 0, 4, 2.0)]))
    assert c.shape == (3,)
    assert np.abs(c - 2e-3 * 21 * np.array([1.5 * 4 / 10, 7 / 29, 2.0 * 4 / 16])).max() < 1e-12
    with pytest.raises(ValueError, match="state must be complex shaped"):
        ns.courant(np.zeros((1, 64, 64)))
    # 32^2 at dt 4e-2: the initial field alone has a Courant number above 1, and Heun diverges within ~60 steps
    fast = NavierStokes2D(32, dt=4e-2)
    s0 = fast.initial_state(1, seed=0)
    assert fast.courant(s0)[0] > 1.0
    with pytest.raises(DivergedError, match=r"trajectory 0 diverged .* Courant number .* reduce dt$"):
        fast.integrate(s0, 400)
    with pytest.raises(DivergedError, match=r"trajectory 5 diverged .*torch backend.* Courant number"):
        fast.integrate(s0, 400, first=5, backend="torch")  # the twin checks too: no silent NaN arrays
    with pytest.raises(DivergedError, match="or use scheme='if_heun'"):
        NavierStokes2D(32, dt=1.0, scheme="em_imex").integrate(s0 * 1e6, 200)
    assert issubclass(DivergedError, RuntimeError)


def test_cli_reports_a_diverged_dataset_without_a_traceback(tmp_path):
    from fastinterp.cli import main

    out = tmp_path / "ns"
    argv = ["pde", "generate", "navier-stokes", "--num", "2", "--res", "32", "--out", str(out), "--quiet"]
    with pytest.raises(SystemExit, match=r"diverged .* Courant .* another --out"):
        main([*argv, "--set", "dt=0.04", "--set", "t_burn=4.0", "--set", "t_snap=0.04", "--set", "snapshots=2"])


def test_benchmark_torch_section_runs_on_cpu(load_benchmark):
    """benchmarks/bench_pde.py's torch-twin section (the CUDA measurement of a GPU session) runs on the CPU too, so a
    lent GPU's time is not spent finding that it broke."""
    bench = load_benchmark("bench_pde")
    lines = []
    bench.torch_section(lambda s="": lines.append(s), 0.02, 32, "cpu", batch=2)
    rows = [line for line in lines if line.startswith("| Navier-Stokes") or line.startswith("| Gaussian")]
    assert len(rows) == 6, lines
    assert all(float(row.split("|")[5].strip().rstrip("x")) > 0 for row in rows)
