"""csrc/fft.hpp against numpy.fft: all power-of-two sizes 4..1024, float32/float64, batched and unbatched."""

import numpy as np
import pytest

_core = pytest.importorskip("fastinterp._core")

SIZES = [4, 8, 16, 32, 64, 128, 256, 512, 1024]
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", SIZES)
def test_rfft_irfft_1d(n, dtype):
    rng = np.random.default_rng(n)
    for shape in [(n,), (3, n), (2, 37, n)]:
        x = rng.standard_normal(shape).astype(dtype)
        X = _core.fft_rfft(x)
        assert X.dtype == (np.complex128 if dtype == np.float64 else np.complex64) and X.shape == (
            *shape[:-1],
            n // 2 + 1,
        )
        assert _rel(X, np.fft.rfft(x.astype(np.float64))) < TOL[dtype]
        Y = (rng.standard_normal(X.shape) + 1j * rng.standard_normal(X.shape)).astype(X.dtype)
        # numpy ignores the imaginary parts of bins 0 and n/2; so must we
        assert _rel(_core.fft_irfft(Y), np.fft.irfft(Y.astype(np.complex128), n=n)) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(8, 8), (4, 16), (32, 8), (64, 64), (128, 128), (256, 64), (16, 1024), (1024, 8)])
def test_rfft2_irfft2(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    for lead in [(), (3,), (2, 2)]:
        x = rng.standard_normal((*lead, *shape)).astype(dtype)
        X = _core.fft_rfft2(x)
        assert _rel(X, np.fft.rfft2(x.astype(np.float64))) < TOL[dtype]
        Y = (rng.standard_normal(X.shape) + 1j * rng.standard_normal(X.shape)).astype(X.dtype)
        assert _rel(_core.fft_irfft2(Y), np.fft.irfft2(Y.astype(np.complex128), s=shape)) < TOL[dtype]


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_norms(norm):
    x = np.random.default_rng(0).standard_normal((2, 32, 16))
    assert _rel(_core.fft_rfft2(x, norm=norm), np.fft.rfft2(x, norm=norm)) < 1e-12
    X = np.fft.rfft2(x)
    assert _rel(_core.fft_irfft2(X, norm=norm), np.fft.irfft2(X, s=(32, 16), norm=norm)) < 1e-12
    assert _rel(_core.fft_irfft(_core.fft_rfft(x, norm=norm), norm=norm), x) < 1e-12


def test_backends():
    assert _core.fft_backend() in _core.fft_backends()
    x = np.random.default_rng(1).standard_normal((3, 64, 32))
    if "fftw" not in _core.fft_backends():
        with pytest.raises(ValueError, match="fftw"):
            _core.set_fft_backend("fftw")
        return
    old = _core.fft_backend()
    try:
        _core.set_fft_backend("fftw")
        assert _core.fft_backend() == "fftw"
        assert _rel(_core.fft_rfft2(x), np.fft.rfft2(x)) < 1e-12
        assert _rel(_core.fft_irfft(_core.fft_rfft(x)), x) < 1e-12
    finally:
        _core.set_fft_backend(old)
    with pytest.raises(ValueError, match="backend"):
        _core.set_fft_backend("mkl")


def test_bad_input():
    with pytest.raises(ValueError, match="power of two"):
        _core.fft_rfft(np.zeros(12))
    with pytest.raises(ValueError, match="power of two"):
        _core.fft_rfft2(np.zeros((6, 8)))
    with pytest.raises(ValueError, match="power of two"):
        _core.fft_irfft(np.zeros(6, dtype=np.complex128))  # n = 10
    with pytest.raises(TypeError, match="dtype"):
        _core.fft_rfft(np.zeros(8, dtype=np.int64))
    with pytest.raises(TypeError, match="dtype"):
        _core.fft_irfft2(np.zeros((8, 5)))  # real where complex is needed
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.fft_rfft2(np.zeros((16, 16))[:, ::2])
    with pytest.raises(ValueError, match="dimensions"):
        _core.fft_rfft2(np.zeros(16))
    with pytest.raises(TypeError, match="numpy array"):
        _core.fft_rfft([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="norm"):
        _core.fft_rfft(np.zeros(8), norm="unitary")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [8, 16, 64, 128, 1024])
def test_row_blocks_bit_identical(n, dtype):
    """Full blocks of 16 rows move through register tiles, single rows through scalar loops: the same numbers."""
    rng = np.random.default_rng(n + 1)
    x = rng.standard_normal((35, n)).astype(dtype)
    X = _core.fft_rfft(x)
    assert np.array_equal(X, np.stack([_core.fft_rfft(r) for r in x]))
    assert np.array_equal(_core.fft_irfft(X), np.stack([_core.fft_irfft(r) for r in X]))
