"""Stochastic 2-D Navier-Stokes (vorticity form) on ``[0, 2 pi]^2``: C++ solver and its torch twin.

    dw + (u . grad w) dt = (nu Lap w - alpha w) dt + eps sum_j e_j(x) dW_j,   u = (psi_y, -psi_x),  -Lap psi = w

pseudo-spectral with 2/3-rule dealiasing of the advection (modes ``|k_x|, |k_y| <= (n - 1) // 3``). Defaults are the
Lipschitz-schedule paper's data (REFERENCE section 6): ``nu = 1e-3``, damping ``alpha = +0.1``, ``eps = 1``, eight
Brownian modes ``sin/cos`` of ``6x, 7x, 5(x+y), 8(x+y)`` (``modes=4``: ``sin 6x, cos 7x, sin 5(x+y), cos 8(x+y)``).
Arrays are ``w[i, j] = w(x_i, y_j)``, ``x_i = 2 pi i / n``; the spectral state is ``numpy.fft.rfft2(w)``
(unnormalised), shaped ``(num, n, n // 2 + 1)``.

Schemes (``L = -(nu |k|^2 + alpha)``, ``N = -P(u . grad w)``, ``xi = eps sum_j e_j dW_j``, one increment per step):

* ``em_imex``: ``w' = (w + dt N(w) + xi) / (1 - dt L)``: the paper's semi-implicit Euler-Maruyama (dt 1e-4);
* ``if_heun`` (default): ``w* = E (w + dt N(w) + xi)``, ``w' = E (w + dt/2 N(w) + xi) + dt/2 N(w*)``,
  ``E = exp(L dt)``; stable at ``dt = 5e-3 .. 1e-2``.

The C++ path (``backend="cpp"``) runs one trajectory per thread with counter-based noise keyed by
``(seed, trajectory, step)``; the torch twin (``backend="torch"``, CPU or CUDA, batched over trajectories) is its
test reference and draws the very same normals, so both backends give the same trajectories up to roundoff.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._common import raise_if_diverged, run_native, steps_for
from .spec import NAVIER_STOKES

__all__ = ["NavierStokes2D", "energy_spectrum", "enstrophy_spectrum", "ns_step_ref"]

_P = NAVIER_STOKES.params  # defaults, ranges and documentation of every parameter (fastinterp/pde/spec.py)
SCHEMES = _P["scheme"].choices


def _core():
    from .. import _core

    return _core


_ADVICE = (
    "the step is unstable; keep the advective Courant number dt * max(|u| + |v|) * kmax below ~0.8 "
    "(NavierStokes2D.courant measures it; dt <~ 0.3 / kmax with the paper's forcing), i.e. reduce dt"
)


def _advice(scheme: str) -> str:
    """The cure for a diverged run (the one copy: the C++ engine reports the fact only)."""
    return _ADVICE + (" or use scheme='if_heun'" if scheme == "em_imex" else "")


def _forcing_fields(n: int, modes: int) -> np.ndarray:
    """The physical forcing modes ``e_j`` on the grid, shaped ``(modes, n, n)``."""
    x = 2 * np.pi * np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    fs = [
        np.sin(6 * X), np.cos(7 * X), np.sin(5 * (X + Y)), np.cos(8 * (X + Y)),
        np.cos(6 * X), np.sin(7 * X), np.cos(5 * (X + Y)), np.sin(8 * (X + Y)),
    ]  # fmt: skip
    return np.stack(fs[:modes])


class _TorchTables:
    """Wavenumbers, dealiasing mask, linear factors and forcing spectra of the torch twin."""

    def __init__(self, ns: NavierStokes2D, dtype: torch.dtype, device: torch.device) -> None:
        n = ns.n
        kx = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
        ky = torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64)
        KX, KY = torch.meshgrid(kx, ky, indexing="ij")
        k2 = KX**2 + KY**2
        kmax = (n - 1) // 3
        keep = (KX.abs() <= kmax) & (KY <= kmax)
        inv_k2 = torch.where(keep & (k2 > 0), 1 / k2.clamp_min(1), torch.zeros_like(k2))
        rate = ns.nu * k2 + ns.alpha
        lin = 1 / (1 + ns.dt * rate) if ns.scheme == "em_imex" else torch.exp(-rate * ns.dt)
        ctype = torch.complex64 if dtype == torch.float32 else torch.complex128
        # forcing spectra: rfft2 of the physical modes, rounded to the exact 0, +-n^2/2 values
        F = torch.fft.rfft2(torch.from_numpy(_forcing_fields(n, ns.modes)))
        h = n * n / 2
        F = torch.complex(torch.round(F.real / h) * h, torch.round(F.imag / h) * h)
        to = dict(device=device)
        self.kx, self.ky = KX.to(dtype=dtype, **to), KY.to(dtype=dtype, **to)
        self.keep = keep.to(dtype=dtype, **to)
        self.inv_k2, self.lin = inv_k2.to(dtype=dtype, **to), lin.to(dtype=dtype, **to)
        self.forcing = F.to(dtype=ctype, **to)  # (modes, n, n//2+1)
        self.n, self.dt, self.eps, self.scheme, self.advection = n, ns.dt, ns.eps, ns.scheme, ns.advection


def _nonlinear(w: torch.Tensor, tb: _TorchTables) -> torch.Tensor:
    """``N = -P(u . grad w)`` of states ``w`` shaped ``(B, n, n//2+1)`` (unnormalised rfft2)."""
    n = tb.n
    wk = w * tb.keep
    psi = wk * tb.inv_k2
    irf = lambda z: torch.fft.irfft2(z, s=(n, n))  # noqa: E731
    u, v = irf(1j * tb.ky * psi), irf(-1j * tb.kx * psi)
    wx, wy = irf(1j * tb.kx * wk), irf(1j * tb.ky * wk)
    return -tb.keep * torch.fft.rfft2(u * wx + v * wy)


def ns_step_ref(w: torch.Tensor, dW: torch.Tensor, tb: _TorchTables) -> torch.Tensor:
    """One step of the torch twin: states ``(B, n, n//2+1)`` complex, Brownian increments ``dW`` ``(B, modes)``."""
    xi = tb.eps * torch.einsum("bj,jxy->bxy", dW.to(tb.forcing.dtype), tb.forcing)
    if tb.scheme == "em_imex":
        rhs = w + xi
        if tb.advection:
            rhs = rhs + tb.dt * _nonlinear(w, tb)
        return rhs * tb.lin
    if not tb.advection:
        return (w + xi) * tb.lin
    n1 = _nonlinear(w, tb)
    s = w + (tb.dt / 2) * n1 + xi
    w_star = tb.lin * (s + (tb.dt / 2) * n1)
    return tb.lin * s + (tb.dt / 2) * _nonlinear(w_star, tb)


class NavierStokes2D:
    """Stochastic 2-D Navier-Stokes sampler (see the module docstring for the equation and schemes).

    Defaults and ranges are those of :data:`fastinterp.pde.spec.NAVIER_STOKES` (the one home of every parameter,
    shared with ``fastinterp pde generate``); an invalid value raises ``ValueError`` naming it and its range.

    Args:
        n: grid points per side (power of two, 32..2048; the paper uses 128).
        nu: viscosity (>= 0).
        alpha: linear damping rate (>= 0; the paper's ``+0.1``).
        eps: noise amplitude (>= 0).
        modes: 4 or 8 Brownian modes.
        dt: time step (> 0).
        scheme: ``"if_heun"`` (default) or ``"em_imex"`` (the paper's).
        advection: False drops the nonlinear term (an Ornstein-Uhlenbeck process per mode; for tests).
        k0: peak wavenumber of the random initial field (> 0).
        w_rms0: expected RMS of the initial vorticity (>= 0).
    """

    def __init__(
        self,
        n: int = NAVIER_STOKES.res.default,
        *,
        nu: float = _P["nu"].default,
        alpha: float = _P["alpha"].default,
        eps: float = _P["eps"].default,
        modes: int = _P["modes"].default,
        dt: float = _P["dt"].default,
        scheme: str = _P["scheme"].default,
        advection: bool = _P["advection"].default,
        k0: float = _P["k0"].default,
        w_rms0: float = _P["w_rms0"].default,
    ) -> None:
        self.n = NAVIER_STOKES.res.check(n, name="n")
        given = {"nu": nu, "alpha": alpha, "eps": eps, "modes": modes, "dt": dt, "scheme": scheme,
                 "advection": advection, "k0": k0, "w_rms0": w_rms0}  # fmt: skip
        v = NAVIER_STOKES.validate(given, dataset=False, partial=True)
        self.nu, self.alpha, self.eps, self.modes = v["nu"], v["alpha"], v["eps"], v["modes"]
        self.dt, self.scheme, self.advection = v["dt"], v["scheme"], v["advection"]
        self.k0, self.w_rms0 = v["k0"], v["w_rms0"]

    def _config(self):
        """The engine's parameter struct, ``fastinterp._core.NSConfig``."""
        return _core().NSConfig(n=self.n, nu=self.nu, alpha=self.alpha, eps=self.eps, dt=self.dt, modes=self.modes,
                                scheme=self.scheme, advection=self.advection)  # fmt: skip

    def _ns_run(self, state, **kw):
        return run_native(_core().ns_run, state, self._config(), advice=_advice(self.scheme), **kw)

    def initial_state(self, num: int, *, seed: int = 0, first: int = 0, dtype=np.float64) -> np.ndarray:
        """Random initial spectra ``(num, n, n//2+1)``: Gaussian, modal variance ``~ exp(-(|k| - k0)^2)`` on the
        dealiased modes, expected spatial RMS ``w_rms0``; trajectory ``i`` depends on ``(seed, first + i)`` only."""
        return _core().ns_initial_state(
            self.n, num, seed=seed, first=first, k0=self.k0, w_rms=self.w_rms0, dtype=np.dtype(dtype).name
        )

    def courant(self, state: np.ndarray) -> np.ndarray:
        """The advective Courant number ``dt * max_x(|u| + |v|) * kmax`` of each state ``(num, n, n//2+1)``.

        ``kmax = (n - 1) // 3`` is the largest kept wavenumber. Heun (``if_heun``) amplifies a purely advected mode by
        ``sqrt(1 + y^4 / 4)`` per step (``y`` its Courant number), which viscosity must absorb: runs with the defaults
        stayed stable up to about 0.85 and diverged within ~130 steps from about 1.1 (``docs/pde.md``, *time step*).
        With the paper's forcing ``max(|u| + |v|)`` settles near 2.5-3, so ``dt <~ 0.3 / kmax``: 1e-2 at 64^2,
        5e-3 at 128^2, 2.5e-3 at 256^2.
        """
        w = np.asarray(state)
        if w.ndim != 3 or w.shape[1:] != (self.n, self.n // 2 + 1) or not np.iscomplexobj(w):
            raise ValueError(
                f"state must be complex shaped (num, {self.n}, {self.n // 2 + 1}), got {w.dtype} {w.shape}"
            )
        n = self.n
        kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
        ky = np.fft.rfftfreq(n, 1.0 / n)[None, :]
        k2 = kx**2 + ky**2
        psi = np.where(k2 > 0, w / np.maximum(k2, 1.0), 0.0)
        u = np.fft.irfft2(1j * ky * psi, s=(n, n))
        v = np.fft.irfft2(-1j * kx * psi, s=(n, n))
        return self.dt * (np.abs(u) + np.abs(v)).max(axis=(1, 2)) * ((n - 1) // 3)

    def integrate(
        self,
        state: np.ndarray,
        steps: int,
        *,
        seed: int = 0,
        first: int = 0,
        step0: int = 0,
        dW: np.ndarray | None = None,
        backend: str = "cpp",
        device: str | torch.device | None = None,
        threads: int = 1,
    ) -> np.ndarray:
        """Advance spectral states ``(num, n, n//2+1)`` by ``steps`` steps; returns the new states.

        The noise of step ``s`` of trajectory ``i`` is keyed by ``(seed, first + i, step0 + s)``, so integrating
        ``k`` steps and then ``steps - k`` more with ``step0=k`` is bit-identical to one call. ``dW``, shaped
        ``(num, steps, modes)`` float64, injects the Brownian increments instead (already scaled by ``sqrt(dt)``).
        """
        if backend == "cpp":
            out, _ = self._ns_run(state, burn=steps, step0=step0, seed=seed, first=first, dW=dW,
                                  threads=threads)  # fmt: skip
            return out
        if backend == "torch":
            w, _ = self._run_torch(state, steps, 1, 0, seed=seed, first=first, step0=step0, dW=dW, device=device)
            return w
        raise ValueError(f"backend must be 'cpp' or 'torch', got {backend!r}")

    def sample(
        self,
        num: int,
        *,
        seed: int = 0,
        first: int = 0,
        t_burn: float = _P["t_burn"].default,
        t_snap: float = _P["t_snap"].default,
        snapshots: int = _P["snapshots"].default,
        backend: str = "cpp",
        device: str | torch.device | None = None,
        threads: int = 1,
        dtype=np.float64,
    ) -> np.ndarray:
        """Vorticity snapshots ``(num, snapshots, n, n)``: a random initial field, ``t_burn`` of burn-in, then a
        snapshot every ``t_snap`` (the first at ``t_burn``). Both times must be multiples of ``dt``."""
        v = NAVIER_STOKES.validate({"dt": self.dt, "t_burn": t_burn, "t_snap": t_snap, "snapshots": snapshots},
                                   dataset=False, partial=True)  # fmt: skip
        burn, every = steps_for(v["t_burn"], self.dt, "t_burn", 0), steps_for(v["t_snap"], self.dt, "t_snap", 1)
        snapshots = v["snapshots"]
        state = self.initial_state(num, seed=seed, first=first, dtype=dtype)
        if backend == "cpp":
            _, snaps = self._ns_run(state, burn=burn, every=every, snapshots=snapshots, seed=seed, first=first,
                                    threads=threads)  # fmt: skip
            return snaps
        if backend == "torch":
            return self._run_torch(state, burn, every, snapshots, seed=seed, first=first, step0=0, dW=None,
                                   device=device)[1]  # fmt: skip
        raise ValueError(f"backend must be 'cpp' or 'torch', got {backend!r}")

    def _run_torch(self, state, burn, every, snapshots, *, seed, first, step0, dW, device):
        state = np.asarray(state)
        if state.ndim != 3 or state.shape[1:] != (self.n, self.n // 2 + 1) or state.dtype.kind != "c":
            raise ValueError(f"state must be complex, shaped (num, {self.n}, {self.n // 2 + 1}), got {state.shape}")
        device = torch.device(device or "cpu")
        rdt = torch.float32 if state.dtype == np.complex64 else torch.float64
        tb = _TorchTables(self, rdt, device)
        w = torch.from_numpy(np.ascontiguousarray(state)).to(device)
        num = w.shape[0]
        total = burn + (snapshots - 1) * every if snapshots > 0 else burn
        if dW is not None:
            dW = np.asarray(dW, dtype=np.float64)
            if dW.shape != (num, total, self.modes):
                raise ValueError(f"dW must have shape {(num, total, self.modes)}, got {dW.shape}")
        snaps = torch.empty((num, snapshots, self.n, self.n), dtype=rdt, device=device)
        taken, chunk, sdt = 0, 1024, math.sqrt(self.dt)

        def snap(done):
            nonlocal taken
            if taken < snapshots and done == burn + taken * every:
                snaps[:, taken] = torch.fft.irfft2(w, s=(self.n, self.n))
                taken += 1

        snap(0)
        for c0 in range(0, total, chunk):
            c1 = min(total, c0 + chunk)
            if dW is None:
                z = _core().ns_noise(seed, first, num, step0 + c0, c1 - c0, self.modes) * sdt
            else:
                z = dW[:, c0:c1]
            zt = torch.from_numpy(np.ascontiguousarray(z)).to(device)
            for s in range(c1 - c0):
                w = ns_step_ref(w, zt[:, s], tb)
                snap(c0 + s + 1)
            raise_if_diverged(
                w, what="Navier-Stokes", first=first, step=step0 + c1, dt=self.dt, advice=_advice(self.scheme)
            )
        return w.cpu().numpy(), snaps.cpu().numpy()


def _spectrum(w, weight_power: int) -> np.ndarray:
    w = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w)
    if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"w must be shaped (..., n, n), got {tuple(w.shape)}")
    from ..diagnostics import shell_sum

    n = w.shape[-1]
    wh = torch.fft.fft2(w.to(torch.float64)) / (n * n)
    power = (wh.real**2 + wh.imag**2).reshape(-1, n, n).mean(0)
    if weight_power:
        k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
        k2 = k[:, None] ** 2 + k[None, :] ** 2
        power = torch.where(k2 > 0, power / k2.clamp_min(1) ** weight_power, torch.zeros_like(power))
    return shell_sum(power, 2).numpy()


def enstrophy_spectrum(w) -> np.ndarray:
    """Radially binned ``|w_k|^2`` (Fourier-series coefficients ``fft2(w) / n^2``; shells ``round(|k|)``), averaged
    over leading axes; sums to the spatial mean of ``w^2``. ``w``: vorticity ``(..., n, n)`` (numpy or torch)."""
    return _spectrum(w, 0)


def energy_spectrum(w) -> np.ndarray:
    """Radially binned ``|w_k|^2 / |k|^2`` (= ``|u_k|^2``; sums to the spatial mean of ``|u|^2``)."""
    return _spectrum(w, 1)
