"""Gaussian random field on the periodic unit box, diagonal in Fourier space.

Convention (REFERENCE sections 5-6). Frequencies are ``k = 2 pi n`` with integer ``n`` (``2 pi N fftfreq(N)``),
the spectrum is ``S(k) = sigma^2 (|k|^2 + tau^2)^(-s)`` with the mean mode removed (``S(0) = 0``), and the
default ``sigma^2 = ((2 pi)^2 + tau^2)^s`` makes ``S = 1`` at ``|k| = 2 pi``. ``S`` is the field's covariance
eigenvalue in the *orthonormal* DFT basis (``torch.fft`` with ``norm="ortho"``), the basis in which the white base
``z ~ N(0, I)`` (unit variance per grid point) has eigenvalue 1:

    field = irfftn( sqrt(S) * rfftn(xi, norm="ortho"), norm="ortho" ),   xi ~ N(0, I) on the grid,

so ``S / 1`` is the target/base ratio mode by mode and :meth:`GaussianRandomField.nyquist_ratio` is the
Lipschitz schedule's ``lam``: 8.03e-9 at 32^2, 1.25e-10 at 64^2, 1.96e-12 at 128^2 with the paper's values.
The Lipschitz paper's data script draws ``Re ifft(sqrt(S) (xi_r + i xi_i), norm="forward")``, whose orthonormal
eigenvalues are ``N^d S``: its fields are ours times ``N^(d/2)`` (use ``GaussianRandomField(..., sigma2=...)`` to
match another normalisation).

The exact denoisers multiply each Fourier mode by ``b S_k / (a^2 + b^2 S_k)`` (data) and
``a / (a^2 + b^2 S_k)`` (noise).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._utils import check_int
from ..pde.spec import GRF, grf_sigma2
from ..schedules import Schedule
from .base import Target
from .gaussian import drift_rates

__all__ = ["GaussianRandomField"]


_P = GRF.params  # defaults, ranges and documentation of dim, s, tau, sigma2 (fastinterp/pde/spec.py, their one home)


def field_parameters(dim: object, s: object, tau: object, sigma2: object) -> tuple[int, float, float, float]:
    """Checked ``(dim, s, tau, sigma2)`` of the spectrum ``sigma2 (|2 pi k|^2 + tau^2)^(-s)``, by the spec
    :data:`fastinterp.pde.spec.GRF` (the checks :class:`fastinterp.pde.GaussianField` uses too), with the default
    ``sigma2 = ((2 pi)^2 + tau^2)^s`` (``S = 1`` at ``|k| = 2 pi``; ``ValueError`` when it overflows)."""
    v = GRF.validate({"dim": dim, "s": s, "tau": tau, "sigma2": sigma2}, dataset=False, partial=True)
    sigma2 = grf_sigma2(v["s"], v["tau"]) if v["sigma2"] is None else v["sigma2"]
    return v["dim"], v["s"], v["tau"], sigma2


class GaussianRandomField(Target):
    """Periodic Gaussian random field ``N(0, sigma^2 (-Lap + tau^2)^(-s))`` on ``[0, 1]^dim``, mean mode removed.

    Args:
        n: grid points per side (even, >= 4).
        dim: 1 or 2.
        s: smoothness exponent (paper: 3), ``>= 0``.
        tau: inverse length scale (paper: 1), in ``[0, 1e6]``.
        sigma2: amplitude ``> 0``; default ``((2 pi)^2 + tau^2)^s`` (``S = 1`` at ``|k| = 2 pi``).
        dtype: dtype of the spectrum and of samples (float64 default).

    Defaults and ranges of ``dim``, ``s``, ``tau`` and ``sigma2`` are those of :data:`fastinterp.pde.spec.GRF`; an
    invalid value raises ``ValueError`` naming it and its range.
    """

    def __init__(
        self,
        n: int,
        dim: int = _P["dim"].default,
        s: float = _P["s"].default,
        tau: float = _P["tau"].default,
        sigma2: float | None = _P["sigma2"].default,
        *,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 4 or n % 2:
            raise ValueError(f"n must be an even int >= 4, got {n!r}")
        dim, s, tau, sigma2 = field_parameters(dim, s, tau, sigma2)
        self.n, self.dim, self.s, self.tau, self.sigma2 = n, dim, s, tau, sigma2
        self.dtype = dtype
        self.event_shape = (n,) * dim
        self._dims = tuple(range(-dim, 0))

    def _k2(self, half: bool) -> Tensor:
        f = torch.fft.fftfreq(self.n, d=1.0 / self.n, dtype=torch.float64)
        r = torch.fft.rfftfreq(self.n, d=1.0 / self.n, dtype=torch.float64)
        axes = [f] * (self.dim - 1) + [r if half else f]
        grids = torch.meshgrid(*axes, indexing="ij")
        return sum((2 * math.pi * g) ** 2 for g in grids)

    def _spectrum(self, half: bool) -> Tensor:
        k2 = self._k2(half)
        S = self.sigma2 * (k2 + self.tau**2) ** (-self.s)
        S.reshape(-1)[0] = 0.0  # the mean mode is removed
        return S

    def spectrum(self) -> Tensor:
        """``S_k`` on the full FFT grid, shaped ``event_shape`` (``S[0] = 0``)."""
        return self._spectrum(half=False).to(self.dtype)

    def nyquist_ratio(self) -> float:
        """``S`` at the Nyquist corner ``|k|^2 = dim (pi n)^2``: the stiffest mode's target/base ratio, ``lam*``."""
        return self.sigma2 * (self.dim * (math.pi * self.n) ** 2 + self.tau**2) ** (-self.s)

    def sample(self, n: int, *, generator: torch.Generator | None = None, device=None) -> Tensor:
        """``n`` exact samples shaped ``(n, *event_shape)``."""
        check_int("n", n, 1)
        xi = torch.randn((n, *self.event_shape), generator=generator, dtype=self.dtype, device=device)
        return self._filter(xi, self._spectrum(half=True).sqrt().to(device=xi.device, dtype=self.dtype))

    def _filter(self, x: Tensor, multiplier: Tensor) -> Tensor:
        xh = torch.fft.rfftn(x, dim=self._dims, norm="ortho")
        return torch.fft.irfftn(xh * multiplier, s=self.event_shape, dim=self._dims, norm="ortho")

    def denoisers(self, x: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
        """Fourier multipliers ``a / (a^2 + b^2 S_k)`` (noise) and ``b S_k / (a^2 + b^2 S_k)`` (data)."""
        self._check_x(x)
        S = self._spectrum(half=True).to(device=x.device, dtype=x.dtype)
        extra = [1] * self.dim
        a = alpha.reshape(-1, *extra) if isinstance(alpha, Tensor) and alpha.ndim else alpha
        b = beta.reshape(-1, *extra) if isinstance(beta, Tensor) and beta.ndim else beta
        xh = torch.fft.rfftn(x, dim=self._dims, norm="ortho")
        inv = 1 / (a * a + b * b * S)
        back = lambda m: torch.fft.irfftn(xh * m, s=self.event_shape, dim=self._dims, norm="ortho")  # noqa: E731
        return back(a * inv), back(b * S * inv)

    def expected_spectrum(self) -> Tensor:
        """The exact expectation of :func:`~fastinterp.radial_spectrum` of this field's samples."""
        from ..diagnostics import shell_sum

        return shell_sum(self.spectrum(), self.dim)

    def lipschitz_profile(self, schedule: Schedule, t: Tensor) -> Tensor:
        """Exact ``|grad b_t|_F^2 = sum_k c_k(t)^2`` over all modes (mean mode included) at times ``t``."""
        rates = drift_rates(self.spectrum().flatten().to(t), schedule(t))
        return (rates * rates).sum(-1)
