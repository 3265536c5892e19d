"""Gaussian random fields (C++ and torch twin) and the counter-based normals behind them."""

import math

import numpy as np
import pytest
import torch

_core = pytest.importorskip("fastinterp._core")

from fastinterp.diagnostics import radial_spectrum, shell_sum  # noqa: E402
from fastinterp.pde import GaussianField  # noqa: E402
from fastinterp.targets import GaussianRandomField  # noqa: E402


def _shell_z(fields: np.ndarray, dim: int, expected: np.ndarray) -> np.ndarray:
    """Per-shell z-scores of the sample-mean spectrum, with the standard error estimated across samples."""
    t = torch.from_numpy(fields.astype(np.float64))
    u = torch.fft.fftn(t, dim=tuple(range(-dim, 0)), norm="ortho")
    per = shell_sum(u.real**2 + u.imag**2, dim).numpy()  # (num, shells)
    mean, se = per.mean(0), per.std(0, ddof=1) / math.sqrt(len(per))
    assert np.allclose(mean, radial_spectrum(t, dim).numpy())
    keep = expected > 0
    assert np.all(mean[~keep] < 1e-20)  # the mean mode is removed
    return (mean[keep] - expected[keep]) / se[keep]


@pytest.mark.parametrize("dim,n", [(1, 256), (2, 32), (2, 64)])
@pytest.mark.parametrize("normalization", ["ortho", "paper"])
def test_spectrum_per_shell(dim, n, normalization):
    num = 400
    f = GaussianField(n, dim, normalization=normalization).sample(num, seed=3)
    assert f.shape == (num, *(n,) * dim)
    expected = GaussianRandomField(n, dim).expected_spectrum().numpy()
    if normalization == "paper":
        expected = expected * n**dim
    z = _shell_z(f, dim, expected)
    assert np.abs(z).max() < 5.0, z  # 5 sigma over <= 46 shells
    # power: a field with half the amplitude is caught
    assert np.abs(_shell_z(0.7 * f, dim, expected)).max() > 5.0


def test_fno_preset_and_torch_twin():
    g = GaussianField.fno(32)
    assert (g.s, g.tau, g.normalization) == (2.5, 7.0, "paper") and g.sigma2 == pytest.approx(7.0**3)
    expected = shell_sum(torch.from_numpy(g.spectrum()), 2).numpy()
    for backend in ["cpp", "torch"]:
        f = g.sample(300, seed=1, backend=backend)
        assert np.abs(_shell_z(f, 2, expected)).max() < 5.0


def test_deterministic_threads_first_and_dtype():
    g = GaussianField(32, 2)
    a = g.sample(10, seed=7, threads=1)
    for th in (2, 8):
        assert np.array_equal(a, g.sample(10, seed=7, threads=th))
    assert np.array_equal(a[3:], g.sample(7, seed=7, first=3))
    assert not np.array_equal(a, g.sample(10, seed=8))
    f32 = g.sample(10, seed=7, dtype=np.float32)
    assert f32.dtype == np.float32 and np.abs(f32 - a).max() < 1e-5 * np.abs(a).max()
    g1 = GaussianField(64, 1)
    b = g1.sample(130, seed=2, threads=2)  # 1-D fields go 64 at a time: blocks must not matter
    assert np.array_equal(b[65:], g1.sample(65, seed=2, first=65))


def test_normals():
    z = np.concatenate([_core.normals(5, 9, t, 0, 0, 1_000_000) for t in range(2)])
    N = len(z)
    assert abs(z.mean()) < 5 / math.sqrt(N)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / N)
    assert abs((z**4).mean() - 3) < 5 * math.sqrt(96 / N)
    for x in (1.0, 2.0, 3.0, 3.6541528853610088, 4.0):  # the last two probe the ziggurat's tail
        p = math.erfc(x / math.sqrt(2))
        assert abs((np.abs(z) > x).mean() - p) < 5 * math.sqrt(p * (1 - p) / N), x
    # counter-based: any window of the stream is the same numbers
    assert np.array_equal(_core.normals(5, 9, 0, 0, 1001, 7), z[1001:1008])
    assert not np.array_equal(_core.normals(5, 9, 0, 1, 0, 8), z[:8])  # another step, another stream


def test_bad_input():
    with pytest.raises(ValueError, match="n must"):
        GaussianField(48)
    with pytest.raises(ValueError, match="tau"):
        GaussianField(32, tau=float("nan"))
    with pytest.raises(ValueError, match="normalization"):
        GaussianField(32, normalization="forward")
    with pytest.raises(ValueError, match="backend"):
        GaussianField(32).sample(2, backend="jax")
    with pytest.raises(ValueError, match="sigma2"):
        _core.grf_sample(32, 2, 3.0, 1.0, -1.0, 2, seed=0)
    with pytest.raises(ValueError, match="threads"):
        _core.grf_sample(32, 2, 3.0, 1.0, 1.0, 2, seed=0, threads=-1)
    with pytest.raises(ValueError, match="n must"):
        _core.grf_sample(33, 2, 3.0, 1.0, 1.0, 2, seed=0)
    # the sampler (checks from fastinterp.pde.spec) and the analytic target reject the same mistakes
    from fastinterp.targets import GaussianRandomField

    for kw, match in [
        (dict(dim=3), "dim"),
        (dict(s=True), "s must"),
        (dict(tau=-1.0), "tau"),
        (dict(sigma2=0.0), "sigma2"),
    ]:
        for cls in (GaussianField, GaussianRandomField):
            with pytest.raises(ValueError, match=match):
                cls(32, **kw)


def test_normals_avx2_kernels_equal_the_portable_loops():
    """The AVX2 Philox/ziggurat kernels (used on CPUs without AVX-512) give the portable loops' bits, for every
    remainder of the 4-wide blocks, counters across 2^32 pairs and extreme keys, and so the same fields."""
    old = _core.rng_kernel()
    try:
        try:
            _core.set_rng_kernel("avx2")
        except ValueError:
            pytest.skip("CPU without AVX2 (or a build without the AVX2 kernels)")
        cases = [(seed, first, count) for seed in (0, 2**40 + 5, 2**64 - 1) for first in (0, 1, 7, 2**33 - 3)
                 for count in [*range(12), 127, 129, 5001]]  # fmt: skip
        out = {}
        for kernel in ("portable", "avx2"):
            _core.set_rng_kernel(kernel)
            out[kernel] = [_core.normals(seed, 65535, 2**32 - 1, 3, first, count) for seed, first, count in cases]
            out[kernel].append(_core.grf_sample(64, 2, 3.0, 1.0, 1.0, 3, seed=4))
        assert all(np.array_equal(a, b) for a, b in zip(out["portable"], out["avx2"], strict=True))
    finally:
        _core.set_rng_kernel(old)


def test_rng_kernel_bad_name():
    with pytest.raises(ValueError, match="rng kernel"):
        _core.set_rng_kernel("sse9")


def test_normals_bulk_equals_scalar_path():
    """The batched generator (vectorised fast path, misses redone together) gives exactly the one-at-a-time draws,
    including the ~1% wedge/tail draws: an odd start offset sends every number through the scalar path."""
    bulk = _core.normals(11, 4, 3, 5, 0, 40_002)
    scalar = _core.normals(11, 4, 3, 5, 1, 40_001)
    assert np.array_equal(bulk[1:], scalar)
    assert (np.abs(bulk) > 3.6541528853610088).sum() > 0  # the tail layer was exercised
