"""Diagnostics: field spectra, the drift's Lipschitzness along a schedule, and the spectral ratio ``lam*``."""

from __future__ import annotations

import torch
from torch import Tensor

from ._utils import check_int, check_interval
from .drift import Drift

__all__ = [
    "averaged_lipschitz",
    "estimate_lam",
    "jacobian_sq_norm",
    "lipschitz_profile",
    "radial_spectrum",
    "shell_sum",
    "spectrum_error",
]


def _shell_index(shape: tuple[int, ...], device) -> Tensor:
    axes = [torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64, device=device) for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.round(torch.sqrt(sum(g * g for g in grids))).long()


def shell_sum(power: Tensor, dim: int) -> Tensor:
    """Sum a power array on the full FFT grid (last ``dim`` axes) over shells ``round(|n|) = 0, 1, 2, ...``.

    Args:
        power: shaped ``(..., N)`` or ``(..., N, N)``; leading axes are kept.
        dim: 1 or 2.

    Returns:
        Shaped ``(..., n_shells)`` with ``n_shells = max round(|n|) + 1``; ``n`` are integer wavenumbers
        (physical ``k = 2 pi n`` on the unit box).
    """
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2, got {dim!r}")
    shape = tuple(power.shape[-dim:])
    idx = _shell_index(shape, power.device).flatten()
    flat = power.reshape(*power.shape[:-dim], -1)
    out = torch.zeros(*flat.shape[:-1], int(idx.max()) + 1, dtype=power.dtype, device=power.device)
    return out.index_add_(-1, idx, flat)


def radial_spectrum(fields: Tensor, dim: int = 2) -> Tensor:
    """Radially binned power spectrum, averaged over the batch.

    ``E[n] = mean_batch sum_{round(|k|) = n} |u^_k|^2`` with ``u^ = fftn(u, norm="ortho")`` over the last ``dim``
    axes (Parseval: ``sum_n E[n] = mean |u|^2`` summed over the grid). For a
    :class:`~fastinterp.targets.GaussianRandomField` its expectation is ``expected_spectrum()``.

    Args:
        fields: real fields shaped ``(..., N)`` (``dim=1``) or ``(..., N, N)`` (``dim=2``).
        dim: spatial dimensions.

    Returns:
        Shaped ``(n_shells,)``: shell ``n`` holds integer wavenumbers with ``round(|n|) = n``.
    """
    if not isinstance(fields, Tensor) or not fields.is_floating_point():
        got = f"dtype {fields.dtype}" if isinstance(fields, Tensor) else type(fields).__name__
        raise TypeError(f"fields must be a real floating-point tensor, got {got}")
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2, got {dim!r}")
    if fields.ndim < dim or fields.numel() == 0:
        raise ValueError(f"fields must have at least dim={dim} axes and no empty one, got shape {tuple(fields.shape)}")
    u = torch.fft.fftn(fields, dim=tuple(range(-dim, 0)), norm="ortho")
    power = (u.real**2 + u.imag**2).reshape(-1, *fields.shape[fields.ndim - dim :]).mean(0)
    return shell_sum(power, dim)


def spectrum_error(E: Tensor, E_ref: Tensor, shells: int | None = None) -> float:
    """Mean over shells ``n = 1..shells`` (default: all but the mean shell) of ``|log10(E[n] / E_ref[n])|``.

    The figure the demo, the tests and the experiments report for radial spectra: 0 for a perfect match, 1 for an
    order of magnitude off on average.
    """
    for name, v in (("E", E), ("E_ref", E_ref)):
        if not isinstance(v, Tensor) or v.ndim != 1 or v.numel() < 2:
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"{name} must be a 1-D spectrum of at least 2 shells, got {got}")
    if E_ref.shape != E.shape:
        raise ValueError(f"E_ref must have E's shells {tuple(E.shape)}, got {tuple(E_ref.shape)}")
    if shells is not None:
        check_int("shells", shells, 1)
        if shells > E.numel() - 1:
            raise ValueError(f"shells must be <= {E.numel() - 1} (the spectrum's shells after the mean), got {shells}")
    last = (shells or E.numel() - 1) + 1
    E, E_ref = E.to(torch.float64), E_ref.to(device=E.device, dtype=torch.float64)
    for name, v in (("E", E), ("E_ref", E_ref)):
        bad = ~(torch.isfinite(v[1:last]) & (v[1:last] >= 0))
        if bool(bad.any()):
            i = int(bad.nonzero()[0]) + 1
            raise ValueError(f"{name} must be finite and >= 0 (a power spectrum), got {float(v[i])} in shell {i}")
    return float((E[1:last] / E_ref[1:last]).log10().abs().mean())


def jacobian_sq_norm(
    drift: Drift, x: Tensor, t: Tensor | float, *, probes: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Per-sample squared Frobenius norm ``|grad_x b_t(x)|_F^2`` of the drift's Jacobian.

    Exact (one vector-Jacobian product per coordinate) when ``probes`` is None; otherwise the Hutchinson
    estimate ``mean_j |J^T v_j|^2`` over ``probes`` Rademacher vectors (unbiased since ``E[v v^T] = I``).
    Samples must not interact through the drift (true of every per-sample model).

    Args:
        drift: the drift.
        x: points shaped ``(B, ...)``.
        t: time (float or 0-d tensor).
        probes: number of random probes, or None for the exact norm.
        generator: random generator for the probes.

    Returns:
        Shaped ``(B,)``.
    """
    if probes is not None:
        check_int("probes", probes, 1)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = drift.velocity(x, t)
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if probes is None:
            d = x[0].numel()
            for j in range(d):
                v = torch.zeros_like(x).flatten(1)
                v[:, j] = 1
                (g,) = torch.autograd.grad(y, x, v.reshape(x.shape), retain_graph=True)
                total = total + (g.flatten(1) ** 2).sum(1)
            return total.detach()
        for _ in range(probes):
            v = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
            (g,) = torch.autograd.grad(y, x, v, retain_graph=True)
            total = total + (g.flatten(1) ** 2).sum(1)
        return (total / probes).detach()


def lipschitz_profile(
    drift: Drift,
    x1: Tensor,
    t: Tensor,
    *,
    probes: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``E |grad b_t(I_t)|_F^2`` at each time of ``t``, with ``I_t = alpha_t z + beta_t x1``, ``z ~ N(0, I)``.

    Args:
        drift: the drift (its schedule defines ``I_t``).
        x1: data samples shaped ``(B, ...)`` (the expectation is the mean over them).
        t: 1-D tensor of times inside ``(0, 1)``.
        probes: Hutchinson probes per sample, or None for the exact Jacobian (small dimensions).
        generator: random generator for ``z`` and the probes.

    Returns:
        Shaped like ``t``.
    """
    t = torch.as_tensor(t, dtype=x1.dtype, device=x1.device)
    if t.ndim != 1:
        raise ValueError(f"t must be a 1-D tensor of times, got shape {tuple(t.shape)}")
    out = []
    for ti in t:
        s = drift.schedule(ti)
        z = torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
        out.append(jacobian_sq_norm(drift, s.alpha * z + s.beta * x1, ti, probes=probes, generator=generator).mean())
    return torch.stack(out)


def averaged_lipschitz(
    drift: Drift,
    x1: Tensor,
    *,
    t_min: float = 1e-3,
    t_max: float = 1 - 1e-3,
    n_t: int = 65,
    probes: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Averaged squared Lipschitzness ``A^2 = int E |grad b_t(I_t)|_F^2 dt`` over ``[t_min, t_max]``.

    The design criterion of the Lipschitz paper, by the trapezoidal rule on ``n_t`` uniform times (the profile
    is singular at 0 and 1, so the integral is taken on the sampling interval).

    Returns:
        A 0-d tensor.
    """
    t_min, t_max = check_interval(t_min, t_max)
    check_int("n_t", n_t, 2)
    t = torch.linspace(t_min, t_max, n_t, dtype=torch.float64).to(x1.dtype)
    prof = lipschitz_profile(drift, x1, t, probes=probes, generator=generator)
    return torch.trapezoid(prof, t.to(prof.device))


def estimate_lam(
    data: Tensor, *, method: str = "covariance", dim: int = 2, reference: str = "max", max_wavenumber: int | None = None
) -> float:
    """Estimate the spectral ratio ``lam*`` for :class:`~fastinterp.LipschitzOptimal` from data samples.

    - ``"covariance"``: ``lambda_min / lambda_max`` of the sample covariance of the flattened samples
      (needs more samples than dimensions to resolve the small end; eigenvalues are clipped at 0).
    - ``"fourier"``: per-mode mean power ``E |u^_k|^2`` of periodic fields (orthonormal FFT over the last
      ``dim`` axes), then its minimum over nonzero modes divided by its maximum: the stiffest mode's ratio.
      Modes are independent for stationary fields, so this needs far fewer samples.

    ``reference="max"`` divides by the largest mode (right when the data are scaled so that their largest mode
    has the base's variance, as the Gaussian-field convention is); ``reference="base"`` divides by the white
    base's variance 1 instead: the target/base ratio of REFERENCE section 3 for data in the units the model sees
    (e.g. normalised by their standard deviation).

    Args:
        data: samples shaped ``(n, ...)``.
        method: ``"covariance"`` or ``"fourier"``.
        dim: spatial dimensions for ``"fourier"``.
        reference: ``"max"`` or ``"base"``.
        max_wavenumber: ``"fourier"`` only: keep modes with every integer wavenumber component ``|n_i|`` at most
            this (e.g. ``N // 3`` for data dealiased by the 2/3 rule, whose higher modes are zero, not stiff).
    """
    if reference not in ("max", "base"):
        raise ValueError(f"reference must be 'max' or 'base', got {reference!r}")
    if not isinstance(data, Tensor) or not data.is_floating_point() or data.ndim < 2:
        got = f"{tuple(data.shape)} {data.dtype}" if isinstance(data, Tensor) else type(data).__name__
        raise ValueError(f"data must be a floating-point tensor shaped (n_samples, ...), got {got}")
    if data.shape[0] < 2:
        raise ValueError(f"data must hold at least 2 samples, got {data.shape[0]}")
    if max_wavenumber is not None:
        if method != "fourier":
            raise ValueError(f"max_wavenumber applies to method='fourier' only, got method={method!r}")
        check_int("max_wavenumber", max_wavenumber, 1)
    x = data.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"data must be finite, got {int((~torch.isfinite(x)).sum())} nan or inf value(s)")
    if method == "covariance":
        xf = x.flatten(1)
        xf = xf - xf.mean(0)
        cov = xf.T @ xf / (xf.shape[0] - 1)
        ev = torch.linalg.eigvalsh(cov).clamp(min=0)
        return float(ev[0] / (ev[-1] if reference == "max" else 1.0))
    if method == "fourier":
        if dim not in (1, 2) or data.ndim < dim + 1:
            raise ValueError(
                f"dim must be 1 or 2 with data shaped (n, *grid), got dim={dim!r}, shape {tuple(data.shape)}"
            )
        u = torch.fft.fftn(x, dim=tuple(range(-dim, 0)), norm="ortho")
        power = (u.real**2 + u.imag**2).reshape(-1, *x.shape[-dim:]).mean(0).flatten()
        keep = torch.ones_like(power, dtype=torch.bool)
        if max_wavenumber is not None:
            axes = [torch.fft.fftfreq(n, d=1.0 / n).abs() for n in x.shape[-dim:]]
            grids = torch.meshgrid(*axes, indexing="ij")
            keep = torch.stack([g.flatten() <= max_wavenumber for g in grids]).all(0)
        keep[0] = False  # the mean mode
        power = power[keep]
        return float(power.min() / (power.max() if reference == "max" else 1.0))
    raise ValueError(f"method must be 'covariance' or 'fourier', got {method!r}")
