"""Stochastic Allen-Cahn: the pCN sampler of the discrete Gibbs measure and the exponential Euler-Maruyama SPDE.

Closed forms (Brownian bridge, exact OU decay, quadrature of a 3-node Gibbs density), MCMC vs SPDE statistics with
tolerances from batch means, C++ vs torch step for step, FFT vs dense modal transforms, float32 vs float64,
thread-count and resume invariance, input validation.
"""

import math

import numpy as np
import pytest
import torch

from fastinterp import _core
from fastinterp.pde.allen_cahn import AllenCahn1D, AllenCahnSPDE, PCNState, modal_basis

TOL = {"float64": 1e-12, "float32": 1e-5}  # relative (to the largest entry) roundoff of the FFT vs dense transforms


def rel_err(x, ref) -> float:
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(np.asarray(x, dtype=np.float64) - ref).max() / np.abs(ref).max())


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny ops on shared cores (conftest.py)


def batch_mean(y: np.ndarray, batches: int = 10) -> tuple[float, float]:
    """Mean and its standard error from batch means: ``y`` ``(chains, T)`` -> ``chains * batches`` batches."""
    c, t = y.shape
    m = y[:, : t // batches * batches].reshape(c, batches, -1).mean(-1).ravel()
    return float(m.mean()), float(m.std(ddof=1) / math.sqrt(m.size))


def bridge(x: np.ndarray) -> np.ndarray:
    return np.minimum.outer(x, x) - np.outer(x, x)


def laplacian_forms(n: int, boundary: str) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian part A of U (u^T A u / 2 = sum (u_{j+1} - u_j)^2 / 2h) and the weights W, on all nodes."""
    if boundary == "periodic":
        D = np.eye(n, k=1) - np.eye(n)
        D[-1, 0] = 1.0
        return n * D.T @ D, np.eye(n) / n
    D = np.eye(n + 1, k=1)[:-1] - np.eye(n + 1)[:-1]
    _, w, _ = modal_basis(n, boundary)
    return n * D.T @ D, np.diag(w)


# ---------------------------------------------------------------------------------------------------------------
# the modal basis: the discrete law's eigenbasis


@pytest.mark.parametrize("boundary,n", [(b, n) for b in ("free", "pinned") for n in (2, 5, 16)] + [
    ("periodic", 2), ("periodic", 6), ("periodic", 16)])  # fmt: skip
def test_modal_basis_is_the_generalised_eigenbasis(boundary, n):
    phi, w, mu = modal_basis(n, boundary)
    A, W = laplacian_forms(n, boundary)
    if boundary == "pinned":  # the free nodes only
        A, W, phi = A[1:-1, 1:-1], W[1:-1, 1:-1], phi[1:-1]
    np.testing.assert_allclose(phi.T @ W @ phi, np.eye(phi.shape[1]), atol=1e-13)
    np.testing.assert_allclose(A @ phi, W @ phi * mu, atol=1e-10 * mu.max())


def test_pinned_modes_give_the_brownian_bridge_exactly():
    # the OU step is exact: stationary modal variance 1/mu_k, so Cov = sum_k phi_k phi_k^T / mu_k = min(x, y) - x y
    n = 24
    phi, _, mu = modal_basis(n, "pinned")
    np.testing.assert_allclose((phi / mu) @ phi.T, bridge(np.arange(n + 1) / n), atol=1e-13)


def test_energy_matches_the_papers_formula():
    ac = AllenCahn1D(8)
    u = np.random.default_rng(0).normal(size=(3, 9))
    h = 1 / 8
    ref = [sum((v[j + 1] - v[j]) ** 2 / (2 * h) + h / 2 * (1 - ((v[j] + v[j + 1]) / 2) ** 2) ** 2 for j in range(8))
           for v in u]  # fmt: skip
    np.testing.assert_allclose(ac.energy(u), ref, rtol=1e-14)


# ---------------------------------------------------------------------------------------------------------------
# pCN: exactness


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mcmc_brownian_bridge_covariance(dtype):
    # V = 0, pinned ends; mass 5 makes the reference differ from the bridge, so the Metropolis correction matters
    # (without it Var u(1/2) would be the reference's 0.2 instead of 0.25)
    n = 16
    ac = AllenCahn1D(n, boundary="pinned", potential="none", mass=5.0)
    x, info = ac.sample(8, 10000, seed=3, burn_in=500, thin=1, return_info=True, dtype=dtype)
    assert x.dtype == dtype
    x = x.astype(np.float64)
    assert 0.5 < info.acceptance.mean() < 0.99
    xs, B = ac.x, bridge(ac.x)
    for i, j in [(8, 8), (4, 12), (2, 3), (15, 15)]:
        est, se = batch_mean(x[..., i] * x[..., j])
        assert abs(est - B[i, j]) < 5 * se, (i, j, est, B[i, j], se)
        assert se < 0.01
    np.testing.assert_array_equal(x[..., 0], 0.0)
    np.testing.assert_array_equal(x[..., n], 0.0)
    assert xs[8] == 0.5


def test_mcmc_exact_on_a_three_node_chain():
    # free ends, double well, N = 2: compare with a quadrature of exp(-U) over R^3
    ac = AllenCahn1D(2)
    g = np.linspace(-3.6, 3.6, 121)
    U = ac.energy(np.stack(np.meshgrid(g, g, g, indexing="ij"), -1))
    p = np.exp(-(U - U.min()))
    p /= p.sum()
    G0, G1, G2 = np.meshgrid(g, g, g, indexing="ij")
    exact = {"u0^2": (p * G0**2).sum(), "u1^2": (p * G1**2).sum(), "u0u2": (p * G0 * G2).sum(),
             "|u1|": (p * np.abs(G1)).sum()}  # fmt: skip
    x = ac.sample(8, 20000, seed=5, burn_in=500, thin=1)
    obs = {"u0^2": x[..., 0] ** 2, "u1^2": x[..., 1] ** 2, "u0u2": x[..., 0] * x[..., 2], "|u1|": np.abs(x[..., 1])}
    for k, y in obs.items():
        est, se = batch_mean(y)
        assert abs(est - exact[k]) < 5 * se, (k, est, exact[k], se)
        assert se < 0.02


def test_adaptation_only_during_burn_in():
    ac = AllenCahn1D(16, mass=4.0, target_accept=0.5)
    st = ac.initial_state(4, seed=1, beta=0.2)
    st1, _, _, asum = ac.run(st, 400, seed=1, adapt_until=400)
    assert not np.array_equal(st1.theta, st.theta)
    st2, *_ = ac.run(st1, 100, seed=1, adapt_until=400)
    np.testing.assert_array_equal(st2.theta, st1.theta)
    assert st2.step == 500


def test_sample_reports_acceptance():
    x, info = AllenCahn1D(32).sample(3, 50, seed=0, burn_in=100, thin=2, return_info=True)
    assert x.shape == (3, 50, 33)
    assert info.acceptance.shape == info.beta.shape == (3,)
    assert np.all((info.acceptance > 0.3) & (info.acceptance <= 1))
    assert np.all((info.beta > 0) & (info.beta < 1))


# ---------------------------------------------------------------------------------------------------------------
# SPDE


@pytest.mark.parametrize("dim,boundary", [(1, "pinned"), (1, "free"), (2, "free"), (2, "periodic")])
def test_spde_linear_modes_decay_exactly(dim, boundary):
    sp = AllenCahnSPDE(8, dim=dim, boundary=boundary, potential="none", dt=0.01)
    _, _, mu = sp.basis()
    if dim == 2:
        mu = mu[:, None] + mu[None, :]
    a0 = sp.initial_state(2, seed=0)
    steps = 37
    a = sp.integrate(a0, steps, noise=np.zeros((2, steps, mu.size)))
    np.testing.assert_allclose(a, a0 * np.exp(-mu * steps * sp.dt), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("transform", ["dense", "fft"])
def test_spde_brownian_bridge_covariance(dtype, transform):
    # V = 0, pinned: the exponential Euler step is the exact OU transition, so every dt samples the bridge
    sp = AllenCahnSPDE(16, boundary="pinned", potential="none", dt=0.02, transform=transform)
    x = sp.sample(16, seed=2, t_burn=1.0, t_snap=0.2, snapshots=600, dtype=dtype)
    assert x.dtype == dtype
    x = x.astype(np.float64)
    B = bridge(np.arange(17) / 16)
    for i, j in [(8, 8), (4, 12), (2, 3)]:
        est, se = batch_mean(x[..., i] * x[..., j])
        assert abs(est - B[i, j]) < 5 * se, (i, j, est, B[i, j], se)
        assert se < 0.01


def test_spde_periodic_2d_ou_variance():
    # 2-D periodic, V = 0: nonzero modes are OU processes with stationary variance 1/(mu_k + mu_l)
    sp = AllenCahnSPDE(8, dim=2, boundary="periodic", potential="none", dt=0.05)
    _, _, mu = sp.basis()
    mu2 = mu[:, None] + mu[None, :]
    a = sp.initial_state(64, seed=1)
    a = sp.integrate(a, 40, seed=1)  # ~ 8 relaxation times of the slowest nonzero mode (mu = 4 * 64 sin^2(pi/8))
    r = (a**2 * mu2)[:, mu2 > 0]  # each entry has mean 1, variance 2
    assert abs(r.mean() - 1) < 5 * math.sqrt(2 / r.size)


def _mcmc_vs_spde(n, chains, samples, trajectories, snapshots, dtype="float64", transform="auto"):
    x = AllenCahn1D(n).sample(chains, samples, seed=11, burn_in=1000, thin=1, dtype=dtype)
    y = AllenCahnSPDE(n, dt=2e-3, transform=transform).sample(trajectories, seed=12, t_burn=2.0, t_snap=0.05,
                                                               snapshots=snapshots, threads=2, dtype=dtype)  # fmt: skip
    assert x.dtype == y.dtype == dtype
    x, y = x.astype(np.float64), y.astype(np.float64)
    observables = {
        "<u^2>": lambda z: (z**2).mean(-1),
        "<|u|>": lambda z: np.abs(z).mean(-1),
        "<u_0^2>": lambda z: z[..., 0] ** 2,  # the end weight h/2
        # the high modes: continuum eigenvalues (pi k)^2 instead of (4/h^2) sin^2(pi k h/2) move this by ~25%
        "<(u_j+1 - u_j)^2>/h": lambda z: (np.diff(z, axis=-1) ** 2).mean(-1) * n,
    }
    for name, f in observables.items():
        (m1, s1), (m2, s2) = batch_mean(f(x)), batch_mean(f(y))
        assert abs(m1 - m2) < 4.5 * math.hypot(s1, s2), (name, m1, s1, m2, s2)
        assert math.hypot(s1, s2) < 0.02


@pytest.mark.parametrize("dtype,transform", [("float64", "dense"), ("float32", "dense"), ("float64", "fft"),
                                             ("float32", "fft")])  # fmt: skip
def test_mcmc_and_spde_agree(dtype, transform):
    # the free-end SPDE is the W-weighted gradient flow of the same U: same law up to O(dt)
    _mcmc_vs_spde(16, 8, 20000, 16, 4000, dtype, transform)


@pytest.mark.slow
def test_mcmc_and_spde_agree_n32_long():
    # standard errors ~0.004 on <u^2> (16 trajectories x 600 time units; ~10 s on one core)
    _mcmc_vs_spde(32, 16, 50000, 16, 12000)


# ---------------------------------------------------------------------------------------------------------------
# FFT modal transforms == the dense basis


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("boundary", ["free", "pinned", "periodic"])
def test_fft_transforms_equal_the_dense_basis(boundary, dim, dtype):
    rng = np.random.default_rng(3)
    sizes = [2, 4, 16, 64] + ([1024] if dim == 1 else [128])
    for n in sizes:
        if boundary == "periodic" and n < 4:
            assert not _core.ac_fft_supported(n, boundary)
            continue
        phi, _, _ = modal_basis(n, boundary)
        nodes, modes = phi.shape
        a = rng.standard_normal((3,) + (modes,) * dim)
        g = rng.standard_normal((3,) + (nodes,) * dim)
        u = _core.ac_modal_fft(a.astype(dtype), boundary=boundary, n=n, dim=dim, synth=True)
        G = _core.ac_modal_fft(g.astype(dtype), boundary=boundary, n=n, dim=dim, synth=False)
        assert u.dtype == G.dtype == dtype and u.shape == g.shape and G.shape == a.shape
        u_ref = a @ phi.T if dim == 1 else phi @ a @ phi.T
        G_ref = g @ phi if dim == 1 else phi.T @ g @ phi
        assert rel_err(u, u_ref) < TOL[dtype], (n, rel_err(u, u_ref))
        assert rel_err(G, G_ref) < TOL[dtype], (n, rel_err(G, G_ref))
        if boundary == "pinned":  # the pinned nodes are exactly zero, as phi's rows there
            assert not np.any(u[..., 0]) and not np.any(u[..., -1])


def test_fft_is_chosen_where_it_applies():
    assert AllenCahnSPDE(256).transform == "fft"
    assert AllenCahnSPDE(16).transform == "dense"  # small 1-D grids: the dense products are faster
    assert AllenCahnSPDE(200).transform == "dense"  # not a power of two
    assert AllenCahnSPDE(64, dim=2, boundary="periodic").transform == "fft"
    assert AllenCahnSPDE(48, dim=2).transform == "dense"
    assert AllenCahnSPDE(4, transform="fft").transform == "fft"
    with pytest.raises(ValueError, match="transform='fft' needs a power-of-two n"):
        AllenCahnSPDE(24, transform="fft")
    with pytest.raises(ValueError, match="transform='fft' needs a power-of-two n"):
        AllenCahnSPDE(2, dim=2, boundary="periodic", transform="fft")
    with pytest.raises(ValueError, match="transform must be one of"):
        AllenCahnSPDE(32, transform="fast")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dim,boundary,n", [(1, "free", 32), (1, "pinned", 32), (1, "free", 512), (2, "free", 16),
                                            (2, "periodic", 16)])  # fmt: skip
def test_spde_fft_path_equals_dense_path(dim, boundary, n, dtype):
    sps = {t: AllenCahnSPDE(n, dim=dim, boundary=boundary, dt=2e-3, transform=t) for t in ("dense", "fft")}
    sp = sps["fft"]
    a0 = sp.initial_state(3, seed=1, dtype=dtype)
    steps = 100
    noise = np.random.default_rng(1).normal(size=(3, steps, sp.modes**dim))
    a = {t: s.integrate(a0, steps, noise=noise) for t, s in sps.items()}
    assert a["fft"].dtype == dtype
    assert np.abs(a["fft"] - a0).max() > 0.1
    assert rel_err(a["fft"], a["dense"]) < TOL[dtype]
    x = {t: s.sample(2, seed=3, t_burn=0.04, t_snap=0.02, snapshots=3, dtype=dtype) for t, s in sps.items()}
    assert x["fft"].shape == (2, 3) + (sp.nodes,) * dim and x["fft"].dtype == dtype
    assert rel_err(x["fft"], x["dense"]) < TOL[dtype]


def test_spde_fft_path_equals_dense_path_n4096():
    # the largest 1-D grid (FFT size 8192, beyond the sizes tests/test_pde_fft.py covers); ~1 s, ~0.4 GB of dense tables
    sps = {t: AllenCahnSPDE(4096, dt=1e-4, transform=t) for t in ("dense", "fft")}
    a0 = sps["fft"].initial_state(1, seed=2)
    a = {t: s.integrate(a0, 5, seed=2) for t, s in sps.items()}
    assert rel_err(a["fft"], a["dense"]) < TOL["float64"]


# ---------------------------------------------------------------------------------------------------------------
# float32


@pytest.mark.parametrize("dim,boundary,transform", [(1, "free", "dense"), (1, "free", "fft"), (1, "pinned", "fft"),
                                                     (2, "free", "fft"), (2, "periodic", "dense"),
                                                     (2, "periodic", "fft")])  # fmt: skip
def test_spde_float32_agrees_with_float64(dim, boundary, transform):
    # same initial state (rounded) and the same injected normals: float32 must stay within float32 roundoff of the
    # float64 run, and the C++ float32 error must be at most ~2x that of the plain float32 torch twin (dense)
    sp = AllenCahnSPDE(32 if dim == 1 else 16, dim=dim, boundary=boundary, dt=2e-3, transform=transform)
    a0 = sp.initial_state(3, seed=1)
    steps = 300
    noise = np.random.default_rng(1).normal(size=(3, steps, sp.modes**dim))
    ref = sp.integrate(a0, steps, noise=noise)
    a32 = sp.integrate(a0.astype(np.float32), steps, noise=noise)
    t32 = sp.integrate(a0.astype(np.float32), steps, noise=noise, backend="torch")
    assert a32.dtype == t32.dtype == np.float32
    assert np.abs(ref - a0).max() > 0.1
    err, err_ref = rel_err(a32, ref), rel_err(t32, ref)
    assert 0 < err < TOL["float32"], err  # > 0: it really ran in float32
    assert err <= 2 * err_ref, (err, err_ref)


def test_mcmc_float32_is_the_float64_chain_rounded():
    # the chain runs in float64 either way; float32 only rounds the recorded samples (exactness kept)
    ac = AllenCahn1D(24, mass=3.0)
    st = ac.initial_state(4, seed=4, beta=0.3)
    for backend in ("cpp", "torch"):
        s64, x64, a64, p64 = ac.run(st, 120, seed=2, adapt_until=60, thin=3, backend=backend)
        s32, x32, a32, p32 = ac.run(st, 120, seed=2, adapt_until=60, thin=3, backend=backend, dtype="float32")
        assert x32.dtype == np.float32 and s32.u.dtype == np.float64
        np.testing.assert_array_equal(x32, x64.astype(np.float32))
        np.testing.assert_array_equal(s32.u, s64.u)
        np.testing.assert_array_equal(a32, a64)
    x = ac.sample(3, 40, seed=1, burn_in=30, thin=2, dtype=np.float32)
    np.testing.assert_array_equal(x, ac.sample(3, 40, seed=1, burn_in=30, thin=2).astype(np.float32))


def test_float32_threads_do_not_change_bits():
    ac = AllenCahn1D(32)
    xs = [ac.sample(5, 30, seed=7, burn_in=20, thin=2, threads=t, dtype="float32") for t in (1, 2)]
    np.testing.assert_array_equal(xs[0], xs[1])
    for sp in (AllenCahnSPDE(128, transform="fft"), AllenCahnSPDE(16, transform="dense"),
               AllenCahnSPDE(16, dim=2, transform="fft"), AllenCahnSPDE(8, dim=2, boundary="periodic")):  # fmt: skip
        ys = [sp.sample(5, seed=7, t_burn=0.01, t_snap=0.005, snapshots=3, threads=t, dtype="float32") for t in (1, 2)]
        assert ys[0].dtype == np.float32
        np.testing.assert_array_equal(ys[0], ys[1])
        np.testing.assert_array_equal(
            ys[0][3], sp.sample(1, seed=7, first=3, t_burn=0.01, t_snap=0.005, snapshots=3, dtype="float32")[0]
        )


# ---------------------------------------------------------------------------------------------------------------
# C++ == torch, determinism, resume


@pytest.mark.parametrize("boundary", ["free", "pinned"])
def test_mcmc_cpp_equals_torch_step_for_step(boundary):
    ac = AllenCahn1D(24, boundary=boundary, mass=3.0)
    st = ac.initial_state(5, seed=4, beta=0.3)
    rng = np.random.default_rng(0)
    z, un = rng.normal(size=(5, 150, ac.dof)), rng.uniform(size=(5, 150))
    outs = [ac.run(st, 150, adapt_until=100, z=z, unif=un, backend=b) for b in ("cpp", "torch")]
    (s1, x1, a1, p1), (s2, x2, a2, p2) = outs
    np.testing.assert_array_equal(a1, a2)
    assert 0 < a1.min() and a1.max() < 150
    np.testing.assert_allclose(x1, x2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s1.theta, s2.theta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p1, p2, rtol=1e-12)
    # and with the counter-based generator (the torch backend draws the C++ normals and uniforms)
    y1 = ac.run(st, 60, seed=9, adapt_until=30, thin=3, backend="cpp")[1]
    y2 = ac.run(st, 60, seed=9, adapt_until=30, thin=3, backend="torch")[1]
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dim,boundary", [(1, "free"), (1, "pinned"), (2, "free"), (2, "periodic")])
def test_spde_cpp_equals_torch_step_for_step(dim, boundary, dtype):
    sp = AllenCahnSPDE(8 if dim == 2 else 32, dim=dim, boundary=boundary, dt=2e-3)
    a0 = sp.initial_state(3, seed=1, dtype=dtype)
    noise = np.random.default_rng(1).normal(size=(3, 300, sp.modes**dim))
    a1 = sp.integrate(a0, 300, noise=noise, backend="cpp")
    a2 = sp.integrate(a0, 300, noise=noise, backend="torch")
    assert a1.dtype == a2.dtype == dtype
    assert np.abs(a1 - a0).max() > 0.1
    tol = 1e-11 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(a1, a2, rtol=0, atol=tol * np.abs(a1).max())
    s1 = sp.sample(2, seed=3, t_burn=0.1, t_snap=0.02, snapshots=3, backend="cpp", dtype=dtype)
    s2 = sp.sample(2, seed=3, t_burn=0.1, t_snap=0.02, snapshots=3, backend="torch", dtype=dtype)
    assert s1.shape == (2, 3) + (sp.nodes,) * dim and s1.dtype == s2.dtype == dtype
    np.testing.assert_allclose(s1, s2, rtol=0, atol=tol)


def test_threads_and_batch_split_do_not_change_bits():
    ac = AllenCahn1D(32)
    xs = [ac.sample(9, 40, seed=7, burn_in=50, thin=2, threads=t) for t in (1, 2, 8)]
    np.testing.assert_array_equal(xs[0], xs[1])
    np.testing.assert_array_equal(xs[0], xs[2])
    np.testing.assert_array_equal(xs[0][4], ac.sample(1, 40, seed=7, first=4, burn_in=50, thin=2)[0])
    sp = AllenCahnSPDE(16, dim=1)
    ys = [sp.sample(9, seed=7, t_burn=0.05, t_snap=0.01, snapshots=3, threads=t) for t in (1, 2, 8)]
    np.testing.assert_array_equal(ys[0], ys[1])
    np.testing.assert_array_equal(ys[0], ys[2])
    np.testing.assert_array_equal(ys[0][5], sp.sample(1, seed=7, first=5, t_burn=0.05, t_snap=0.01, snapshots=3)[0])
    for sp2 in (AllenCahnSPDE(8, dim=2), AllenCahnSPDE(16, dim=2, transform="fft"), AllenCahnSPDE(64, transform="fft")):
        a = sp2.initial_state(5, seed=2)
        np.testing.assert_array_equal(sp2.integrate(a, 20, seed=2, threads=1), sp2.integrate(a, 20, seed=2, threads=8))


def test_resume_mid_way_is_bit_identical():
    ac = AllenCahn1D(32)
    st = ac.initial_state(3, seed=5, beta=0.4)
    full, xf, af, _ = ac.run(st, 100, seed=5, adapt_until=60, thin=1)
    mid, xa, aa, _ = ac.run(st, 37, seed=5, adapt_until=60, thin=1)  # stops inside the adaptation phase
    end, xb, ab, _ = ac.run(PCNState(mid.u.copy(), mid.theta.copy(), mid.step), 63, seed=5, adapt_until=60, thin=1)
    np.testing.assert_array_equal(np.concatenate([xa, xb], axis=1), xf)
    np.testing.assert_array_equal(end.u, full.u)
    np.testing.assert_array_equal(end.theta, full.theta)
    np.testing.assert_array_equal(aa + ab, af)
    for sp in (AllenCahnSPDE(32), AllenCahnSPDE(32, transform="fft")):
        for dtype in ("float64", "float32"):
            a0 = sp.initial_state(3, seed=5, dtype=dtype)
            one = sp.integrate(a0, 80, seed=5)
            two = sp.integrate(sp.integrate(a0, 30, seed=5), 50, seed=5, step0=30)
            np.testing.assert_array_equal(one, two)


# ---------------------------------------------------------------------------------------------------------------
# validation


def test_bad_inputs_raise_clear_errors():
    from fastinterp import _core

    with pytest.raises(ValueError, match="n must be"):
        AllenCahn1D(1)
    with pytest.raises(ValueError, match="boundary"):
        AllenCahn1D(8, boundary="periodic")
    with pytest.raises(ValueError, match="no normalisable law"):
        AllenCahn1D(8, potential="none")
    with pytest.raises(ValueError, match="mass"):
        AllenCahn1D(8, mass=0.0)
    with pytest.raises(ValueError, match="mass"):
        AllenCahn1D(8, mass=float("nan"))
    with pytest.raises(ValueError, match="target_accept"):
        AllenCahn1D(8, target_accept=1.0)
    ac = AllenCahn1D(8)
    with pytest.raises(ValueError, match="backend"):
        ac.sample(2, 3, backend="jax")
    with pytest.raises(ValueError, match="thin"):
        ac.sample(2, 3, thin=0)
    with pytest.raises(ValueError, match="seed"):
        ac.sample(2, 3, seed=-1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        ac.sample(2, 3, burnin=10)
    st = ac.initial_state(2)
    with pytest.raises(ValueError, match="together"):
        ac.run(st, 3, z=np.zeros((2, 3, 9)))
    with pytest.raises(ValueError, match=r"z must have shape \(chains, steps, dof\)"):
        ac.run(st, 3, z=np.zeros((2, 3, 8)), unif=np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="z must have shape"):
        ac.run(st, 3, z=np.zeros((2, 3, 8)), unif=np.full((2, 3), 0.5), backend="torch")
    cfg = ac._config()
    run = dict(seed=0, first=0, step0=0, steps=1, adapt_until=0, thin=1)
    with pytest.raises(TypeError, match="u must have dtype"):
        _core.ac_mcmc_run(st.u.astype(np.float32), st.theta, cfg, **run)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.ac_mcmc_run(np.zeros((9, 2)).T, st.theta, cfg, **run)
    with pytest.raises(ValueError, match=r"u must have shape \(chains, n \+ 1\)"):
        _core.ac_mcmc_run(np.zeros((2, 8)), st.theta, cfg, **run)
    with pytest.raises(ValueError, match="theta must have shape"):
        _core.ac_mcmc_run(st.u, st.theta[:1], cfg, **run)
    with pytest.raises(TypeError, match="incompatible function arguments"):  # the parameters come as one struct
        _core.ac_mcmc_run(st.u, st.theta, n=8, pinned=False, vscale=1.0, mass=1.0, target_accept=0.3, **run)
    with pytest.raises(ValueError, match="u must be finite"):
        ac.run(PCNState(np.full((2, 9), np.nan), st.theta), 1)
    with pytest.raises(ValueError, match="2\\^32"):
        ac.run(PCNState(st.u, st.theta, 2**32 - 1), 2)
    with pytest.raises(ValueError, match="dt must be"):
        AllenCahnSPDE(8, dt=0.0)
    with pytest.raises(ValueError, match="dt must be"):
        AllenCahnSPDE(8, dt=float("inf"))
    with pytest.raises(ValueError, match="boundary"):
        AllenCahnSPDE(8, dim=1, boundary="periodic")
    with pytest.raises(ValueError, match="even"):
        AllenCahnSPDE(7, dim=2, boundary="periodic")
    with pytest.raises(ValueError, match="dim must be"):
        AllenCahnSPDE(8, dim=3)
    sp = AllenCahnSPDE(8)
    with pytest.raises(ValueError, match="state must have shape"):
        sp.integrate(np.zeros((2, 8)), 3)
    with pytest.raises(ValueError, match="state must be"):
        sp.integrate(np.zeros((2, 8)), 3, backend="torch")
    with pytest.raises(ValueError, match="noise must have shape"):
        sp.integrate(np.zeros((2, 9)), 3, noise=np.zeros((2, 2, 9)))
    with pytest.raises(ValueError, match="t_snap must be a multiple of dt"):
        sp.sample(2, t_snap=1.5e-3)
    with pytest.raises(ValueError, match="threads"):
        sp.integrate(np.zeros((2, 9)), 3, threads=-1)


@pytest.mark.parametrize("bad", ["float16", "int32", "f8x", None, np.float16, torch.bfloat16, 32])
def test_bad_dtype_values_raise(bad):
    with pytest.raises(ValueError, match="dtype must be 'float64' or 'float32'"):
        AllenCahn1D(8).sample(2, 3, burn_in=1, dtype=bad)
    with pytest.raises(ValueError, match="dtype must be 'float64' or 'float32'"):
        AllenCahnSPDE(8).sample(2, t_burn=0.01, t_snap=0.01, snapshots=1, dtype=bad)
    with pytest.raises(ValueError, match="dtype must be 'float64' or 'float32'"):
        AllenCahnSPDE(8).initial_state(2, dtype=bad)


def test_good_dtype_spellings():
    for d in ("float32", np.float32, np.dtype("float32"), torch.float32):
        assert AllenCahnSPDE(8).initial_state(1, dtype=d).dtype == np.float32
    assert AllenCahn1D(8).sample(1, 2, burn_in=1, dtype=torch.float64).dtype == np.float64


def test_wrong_dtype_arrays_into_the_extension_raise():
    sp = AllenCahnSPDE(8)
    for bad in (np.float16, np.int64, np.complex128):
        with pytest.raises(TypeError, match="state must have dtype float64 or float32"):
            sp.integrate(np.zeros((2, 9), dtype=bad), 3)
        with pytest.raises(ValueError, match="state must be float64 or float32"):
            sp.integrate(np.zeros((2, 9), dtype=bad), 3, backend="torch")
    with pytest.raises(TypeError, match="state must be a numpy array"):
        sp.integrate([[0.0] * 9] * 2, 3)
    with pytest.raises(TypeError, match="noise must have dtype float64"):
        sp.integrate(np.zeros((2, 9), dtype=np.float32), 3, noise=np.zeros((2, 3, 9), dtype=np.float32))
    phi, w, mu = sp.basis()
    kw = dict(transform="dense", boundary="free", weights=w, mu=mu, dim=1, midpoint=True, vscale=1.0, dt=1e-3, burn=1)
    with pytest.raises(TypeError, match="phi must have dtype float64"):
        _core.ac_spde_run(np.zeros((2, 9)), phi=phi.astype(np.float32), **kw)
    with pytest.raises(TypeError, match="weights must have dtype float64"):
        _core.ac_spde_run(np.zeros((2, 9)), phi=phi, **{**kw, "weights": w.astype(np.float32)})
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.ac_spde_run(np.zeros((9, 2), dtype=np.float32).T, phi=phi, **kw)
    with pytest.raises(ValueError, match="transform='fft' builds its own basis"):
        _core.ac_spde_run(np.zeros((2, 9)), phi=phi, **{**kw, "transform": "fft"})
    with pytest.raises(ValueError, match="transform must be 'dense' or 'fft'"):
        _core.ac_spde_run(np.zeros((2, 9)), phi=phi, **{**kw, "transform": "fast"})
    with pytest.raises(ValueError, match="FFT transforms need a power of two n"):
        _core.ac_spde_run(np.zeros((2, 7)), phi=None, **{**kw, "transform": "fft", "weights": np.ones(7),
                                                         "mu": np.ones(7)})  # fmt: skip
    with pytest.raises(ValueError, match="transform='dense' needs phi"):
        _core.ac_spde_run(np.zeros((2, 9)), phi=None, **kw)
    with pytest.raises(TypeError, match="x must have dtype float64 or float32"):
        _core.ac_modal_fft(np.zeros((2, 9), dtype=np.int32), boundary="free", n=8, dim=1, synth=True)
    with pytest.raises(ValueError, match=r"a must have shape \(batch, m\) with m = 9"):
        _core.ac_modal_fft(np.zeros((2, 8)), boundary="free", n=8, dim=1, synth=True)
    with pytest.raises(ValueError, match="boundary must be"):
        _core.ac_modal_fft(np.zeros((2, 9)), boundary="neumann", n=8, dim=1, synth=True)
    with pytest.raises(ValueError, match="FFT transforms need a power of two n"):
        _core.ac_modal_fft(np.zeros((2, 7)), boundary="free", n=6, dim=1, synth=True)
    ac = AllenCahn1D(8)
    st = ac.initial_state(2)
    with pytest.raises(TypeError, match="u must have dtype float64"):  # the pCN state stays float64
        ac.run(PCNState(st.u.astype(np.float32), st.theta), 2, dtype="float32")
    with pytest.raises(ValueError, match="dtype must be 'float64' or 'float32'"):
        _core.ac_mcmc_run(st.u, st.theta, ac._config(), seed=0, first=0, step0=0, steps=1, adapt_until=0, thin=1,
                          dtype="float16")  # fmt: skip


def test_spde_divergence_is_an_error_not_nan():
    from fastinterp.pde import DivergedError

    sp = AllenCahnSPDE(32, dt=0.5)  # the explicit double-well drift blows up within ~100 steps
    for backend in ("cpp", "torch"):
        with pytest.raises(DivergedError, match=r"trajectory 7 diverged .* reduce dt"):
            sp.sample(3, seed=0, first=7, t_burn=100.0, t_snap=0.5, snapshots=2, backend=backend)
    with pytest.raises(DivergedError, match="2-D runs"):
        AllenCahnSPDE(16, dim=2, dt=0.5).sample(1, t_burn=100.0, t_snap=0.5, snapshots=1)
    assert np.isfinite(AllenCahnSPDE(32, dt=0.05).sample(2, t_burn=50.0, t_snap=0.5, snapshots=2)).all()
