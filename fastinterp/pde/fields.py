"""Gaussian random fields on the periodic unit box ``[0, 1]^d`` (d = 1, 2): C++ sampler and its torch twin.

Law: ``N(0, sigma^2 (-Lap + tau^2)^(-s))`` with the mean mode removed, ``S(k) = sigma^2 (|k|^2 + tau^2)^(-s)``,
``k = 2 pi n``. Normalisations:

* ``"ortho"`` (default, the core library's :class:`~fastinterp.targets.GaussianRandomField`):
  ``field = irfftn(sqrt(S) * rfftn(xi, norm="ortho"), norm="ortho")`` with white ``xi`` on the grid, i.e.
  ``S`` is the covariance eigenvalue in the orthonormal DFT basis;
* ``"paper"`` (the Lipschitz paper's script): ``Re ifft(sqrt(S) (xi_r + i xi_i), norm="forward")``: the same law
  times ``N^(d/2)``.

:meth:`GaussianField.fno` is FNO's ``GaussianRF(alpha=2.5, tau=7)``: ``s = 2.5``, ``tau = 7``,
``sigma^2 = tau^(2 s - d)`` in the paper normalisation.
"""

from __future__ import annotations

import numpy as np
import torch

from .spec import GRF, grf_sigma2

__all__ = ["GaussianField"]

_P = GRF.params  # defaults, ranges and documentation of every parameter (fastinterp/pde/spec.py)
_NORMALIZATIONS = _P["normalization"].choices


def _core():
    from .. import _core

    return _core


class GaussianField:
    """Sampler of periodic Gaussian random fields.

    Defaults and ranges are those of :data:`fastinterp.pde.spec.GRF` (shared with ``fastinterp pde generate``); an
    invalid value raises ``ValueError`` naming it and its range.

    Args:
        n: grid points per side (a power of two in [4, 8192]).
        dim: 1 or 2.
        s: smoothness exponent (>= 0; paper: 3; FNO: 2.5).
        tau: inverse length scale (in [0, 1e6]; paper: 1; FNO: 7).
        sigma2: amplitude ``sigma^2`` (> 0); default ``((2 pi)^2 + tau^2)^s`` (``S = 1`` at ``|k| = 2 pi``), as
            :class:`~fastinterp.targets.GaussianRandomField`.
        normalization: ``"ortho"`` or ``"paper"`` (see the module docstring).
    """

    def __init__(
        self,
        n: int,
        dim: int = _P["dim"].default,
        s: float = _P["s"].default,
        tau: float = _P["tau"].default,
        sigma2: float | None = _P["sigma2"].default,
        *,
        normalization: str = _P["normalization"].default,
    ) -> None:
        self.n = GRF.res.check(n, name="n")
        v = GRF.validate({"dim": dim, "s": s, "tau": tau, "sigma2": sigma2, "normalization": normalization},
                         dataset=False, partial=True)  # fmt: skip
        self.dim, self.s, self.tau, self.normalization = v["dim"], v["s"], v["tau"], v["normalization"]
        self.sigma2 = grf_sigma2(self.s, self.tau) if v["sigma2"] is None else v["sigma2"]

    @classmethod
    def fno(cls, n: int, dim: int = 2) -> GaussianField:
        """FNO's preset ``GaussianRF(dim, n, alpha=2.5, tau=7)``: ``sigma^2 = 7^(5 - dim)``, paper normalisation."""
        return cls(n, dim, s=2.5, tau=7.0, sigma2=7.0 ** (2 * 2.5 - dim), normalization="paper")

    def spectrum(self) -> np.ndarray:
        """``S`` on the full FFT grid (``S[0] = 0``), shaped ``(n,) * dim``, in the chosen normalisation's units
        (eigenvalues in the orthonormal DFT basis: ``S``, times ``n^dim`` for ``"paper"``)."""
        from ..targets import GaussianRandomField  # the analytic target holds the one definition of S

        S = GaussianRandomField(self.n, self.dim, self.s, self.tau, self.sigma2).spectrum().numpy()
        return S * (self.n**self.dim if self.normalization == "paper" else 1.0)

    def sample(
        self,
        num: int,
        *,
        seed: int = 0,
        first: int = 0,
        backend: str = "cpp",
        threads: int = 1,
        dtype: np.dtype | type = np.float64,
        device: str | torch.device | None = None,
    ) -> np.ndarray:
        """``num`` fields shaped ``(num, n)`` or ``(num, n, n)``.

        ``backend="cpp"``: field ``i`` is a deterministic function of ``(seed, first + i)`` (counter-based normals),
        whatever ``threads``. ``backend="torch"``: the torch twin (white noise filtered with ``torch.fft``, on
        ``device``), seeded by a ``torch.Generator``; same law, different draws.
        """
        if isinstance(num, bool) or not isinstance(num, int) or num < 0:
            raise ValueError(f"num must be an int >= 0, got {num!r}")
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dt}")
        paper = self.normalization == "paper"
        if backend == "cpp":
            if device is not None:
                raise ValueError("device applies to backend='torch' only")
            return _core().grf_sample(
                self.n,
                self.dim,
                self.s,
                self.tau,
                self.sigma2,
                num,
                seed=seed,
                first=first,
                paper=paper,
                dtype=dt.name,
                threads=threads,
            )
        if backend == "torch":
            return self.sample_ref(num, seed=seed, dtype=dt, device=device).cpu().numpy()
        raise ValueError(f"backend must be 'cpp' or 'torch', got {backend!r}")

    def sample_ref(
        self, num: int, *, seed: int = 0, dtype: np.dtype | type = np.float64, device: str | torch.device | None = None
    ) -> torch.Tensor:
        """Torch twin: ``irfftn(sqrt(S) * rfftn(xi, norm="ortho"), norm="ortho")`` (times ``n^(dim/2)`` for
        ``"paper"``) with ``xi ~ N(0, I)`` drawn by ``torch.Generator(device).manual_seed(seed)``."""
        tdt = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
        device = torch.device(device or "cpu")
        gen = torch.Generator(device=device).manual_seed(seed)
        shape = (self.n,) * self.dim
        dims = tuple(range(-self.dim, 0))
        xi = torch.randn((num, *shape), generator=gen, dtype=tdt, device=device)
        S = torch.as_tensor(self.spectrum(), dtype=torch.float64, device=device)
        half = S[..., : self.n // 2 + 1].sqrt().to(tdt)
        return torch.fft.irfftn(torch.fft.rfftn(xi, dim=dims, norm="ortho") * half, s=shape, dim=dims, norm="ortho")
