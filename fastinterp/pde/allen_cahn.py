"""Stochastic Allen-Cahn: the Lipschitz-schedule paper's 1-D Gibbs measure, sampled exactly, and its gradient-flow SPDE.

The paper's data (REFERENCE section 6) are samples of the discrete Gibbs density ``exp(-U)`` on ``N + 1`` nodes
``u_0..u_N`` of ``[0, 1]``, ``h = 1/N``:

    U(u) = sum_j (u_{j+1} - u_j)^2 / (2h) + (h/2) sum_j V((u_j + u_{j+1}) / 2),    V(u) = (1 - u^2)^2,

free ends (or, for tests, pinned ends ``u_0 = u_N = 0``). :class:`AllenCahn1D` samples it by preconditioned
Crank-Nicolson (pCN): reference Gaussian ``N(0, P^{-1})``, ``P = A + m W`` (``A`` the Gaussian part of ``U``, ``W`` the
trapezoid weights, ``m`` a mass for the zero mode), proposal ``v = sqrt(1 - beta^2) u + beta xi``, acceptance
``min(1, exp(Phi(u) - Phi(v)))`` with ``Phi = U - u^T P u / 2``: exact for every ``beta``. ``beta`` adapts per chain
during burn-in only.

:class:`AllenCahnSPDE` integrates ``du = (u_xx - V'(u)/2) dt + sqrt(2) dW`` as the weighted gradient flow
``du = -W^{-1} grad U dt + sqrt(2 W^{-1}) dB`` of the same ``U``: in 1-D its linear part is the second-difference
Laplacian with ghost-node Neumann ends, diagonal in the cosine basis ``cos(pi k j / N)`` with eigenvalues
``mu_k = (4/h^2) sin^2(pi k / 2N)``, so its invariant law is exactly ``exp(-U)``, the law the MCMC samples.
Exponential Euler-Maruyama in that basis: the linear part and the noise (exact OU variance per mode) are exact, the
potential's drift is explicit, O(dt). In 2-D (free = Neumann, or periodic) the analogous lattice energy is used (see
docs/allen_cahn.md; note that the 2-D field has no continuum limit without renormalisation).

Both run in C++ (``backend="cpp"``, one chain per thread, counter-based randomness keyed by ``(seed, chain, step)``)
and as a batched torch twin (``backend="torch"``, the test reference, CPU or CUDA) that consumes the very same normals
and uniforms, so the backends agree to roundoff.

Precision (``dtype="float64"`` default, or ``"float32"``): the SPDE computes in the state's dtype (tables computed in
float64 and rounded once; the standard normals are drawn in float64 and rounded at use). The pCN chain always
computes in float64 -- state, proposal, ``Phi`` and the accept ratio -- and ``dtype`` only sets the dtype its recorded
samples are rounded to, so a float32 run is the float64 chain's samples rounded once, and exactness is kept.

The SPDE's modal transforms ``Phi a`` and ``Phi^T g`` are dense matrix products (the reference, any ``n``) or, for
power-of-two ``n``, real FFTs (``csrc/fft.hpp``): DCT-I (free), DST-I (pinned), real Fourier (periodic), chosen by
``transform="auto"``. Both give the same results to roundoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._common import raise_if_diverged, run_native, steps_for
from .spec import ALLEN_CAHN

__all__ = ["AllenCahn1D", "AllenCahnSPDE", "PCNState", "modal_basis", "pcn_step_ref", "spde_step_ref"]

_P = ALLEN_CAHN.params  # defaults, ranges and documentation of AllenCahn1D's parameters (fastinterp/pde/spec.py)
BOUNDARIES_1D = _P["boundary"].choices
BOUNDARIES_2D = ("free", "periodic")
POTENTIALS = _P["potential"].choices
BACKENDS = ("cpp", "torch")
DTYPES = ("float64", "float32")
TRANSFORMS = ("auto", "fft", "dense")
# transform="auto" takes the FFT from these n on (per axis; below them the dense products were as fast or faster: a
# 1-D step transforms one row at a time, which csrc/fft.hpp's lane-batched FFT does without vectorisation).
# Crossovers measured with benchmarks/bench_pde.py --only allen-cahn (docs/allen_cahn.md).
_FFT_FROM_N = {1: 128, 2: 16}
_ADAPT_EXPONENT = 0.6  # Robbins-Monro gain (step + 1)^-0.6, as in csrc/allen_cahn.hpp
_THETA_BOUND = 15.0
# The cure for a diverged SPDE run (the one copy: the C++ engine reports the fact only). The exponential step is exact
# for the Laplacian; the double-well drift -V'(u)/2 = -2u(u^2 - 1) is explicit.
_SPDE_ADVICE = (
    "the explicit double-well drift is unstable at this step (dt * |6u^2 - 2| must stay below ~2 where the field "
    "is largest: 1-D runs were stable at dt 0.1 and 2-D runs, whose fields reach |u| ~ 5, at 0.05); reduce dt"
)


def _core():
    from .. import _core

    return _core


def _int(name: str, v, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an int {rng}, got {v!r}")
    return int(v)


def _float(name: str, v, lo: float, strict: bool, hi: float | None = None) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float, np.floating)) and math.isfinite(v)
    if not ok or v < lo or (strict and v == lo) or (hi is not None and v >= hi):
        rng = f"{'>' if strict else '>='} {lo}" + (f" and < {hi}" if hi is not None else "")
        raise ValueError(f"{name} must be finite and {rng}, got {v!r}")
    return float(v)


def _choice(name: str, v, options: tuple) -> str:
    if v not in options:
        raise ValueError(f"{name} must be one of {options}, got {v!r}")
    return v


def _seed(seed) -> int:
    return _int("seed", seed, 0, 2**64 - 1)


def _backend(backend) -> str:
    return _choice("backend", backend, BACKENDS)


def _dtype(dtype) -> str:
    """``"float64"`` or ``"float32"`` from a name, a numpy dtype(-like) or a torch dtype; anything else raises."""
    name = None
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    elif dtype is not None:
        try:
            name = np.dtype(dtype).name
        except (TypeError, ValueError):
            name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float64' or 'float32' (or the numpy/torch dtype), got {dtype!r}")
    return name


def modal_basis(n: int, boundary: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The W-orthonormal eigenbasis of the lattice Laplacian on one axis of ``[0, 1]``, ``h = 1/n``.

    Returns ``phi`` ``(nodes, modes)``, node weights ``w`` ``(nodes,)`` and eigenvalues ``mu`` ``(modes,)`` with
    ``sum_j w_j phi_k(j) phi_l(j) = delta_kl`` and ``A phi_k = mu_k W phi_k``:

    * ``"free"``: ``n + 1`` nodes, trapezoid weights (``h/2`` at the ends), ``phi_k(j) = c_k cos(pi k j / n)``,
      ``c_0 = c_n = 1``, else ``sqrt 2``, ``mu_k = (4/h^2) sin^2(pi k / 2n)``, ``k = 0..n`` (ghost-node Neumann).
    * ``"pinned"``: ``n + 1`` nodes with ``u_0 = u_n = 0`` (zero rows), weights ``h``,
      ``phi_k(j) = sqrt 2 sin(pi k j / n)``, ``k = 1..n-1``, the same ``mu_k``.
    * ``"periodic"``: ``n`` nodes, weights ``h``, real Fourier modes ``1, sqrt 2 cos(2 pi k j/n), sqrt 2 sin(...)``,
      ``(-1)^j``, ``mu = (4/h^2) sin^2(pi k / n)``.
    """
    w, mu = _weights_eigenvalues(n, boundary)
    n = int(n)
    j = np.arange(n + 1, dtype=np.float64)
    if boundary == "free":
        k = np.arange(n + 1, dtype=np.float64)
        c = np.full(n + 1, math.sqrt(2.0))
        c[0] = c[n] = 1.0
        phi = c[None, :] * np.cos(np.pi * np.outer(j, k) / n)
    elif boundary == "pinned":
        k = np.arange(1, n, dtype=np.float64)
        phi = math.sqrt(2.0) * np.sin(np.pi * np.outer(j, k) / n)
        phi[0] = phi[n] = 0.0
    else:
        jj = j[:n]
        cols = [np.ones(n)]
        for f in range(1, n // 2):
            cols += [math.sqrt(2.0) * np.cos(2 * np.pi * f * jj / n), math.sqrt(2.0) * np.sin(2 * np.pi * f * jj / n)]
        cols.append(np.cos(np.pi * jj))
        phi = np.stack(cols, axis=1)
    return np.ascontiguousarray(phi), w, mu


def _weights_eigenvalues(n: int, boundary: str) -> tuple[np.ndarray, np.ndarray]:
    """Node weights and eigenvalues of :func:`modal_basis` (without the O(n^2) table ``phi``)."""
    n = _int("n", n, 2)
    h = 1.0 / n
    if boundary in ("free", "pinned"):
        k = np.arange(n + 1, dtype=np.float64) if boundary == "free" else np.arange(1, n, dtype=np.float64)
        w = np.full(n + 1, h)
        w[0] = w[n] = h / 2 if boundary == "free" else 0.0
        mu = 4.0 * n * n * np.sin(np.pi * k / (2 * n)) ** 2
    elif boundary == "periodic":
        if n % 2:
            raise ValueError(f"n must be even for periodic boundaries, got {n}")
        freqs = [0] + [f for f in range(1, n // 2) for _ in range(2)] + [n // 2]
        w = np.full(n, h)
        mu = 4.0 * n * n * np.sin(np.pi * np.asarray(freqs, dtype=np.float64) / n) ** 2
    else:
        raise ValueError(f"boundary must be one of ('free', 'pinned', 'periodic'), got {boundary!r}")
    return w, mu


def _V(u):
    return (1 - u * u) ** 2


def _dV(u):
    return 4 * u * (u * u - 1)


# ----------------------------------------------------------------------------------------------------------------
# pCN sampler of the discrete Gibbs measure


@dataclass
class PCNState:
    """Chains between calls: positions ``u`` ``(chains, n+1)``, ``theta = logit(beta)`` ``(chains,)``, and the
    number of steps already taken (the next step's index; chain ``i`` is keyed by ``(seed, first + i, step)``)."""

    u: np.ndarray
    theta: np.ndarray
    step: int = 0


@dataclass
class PCNInfo:
    """Per-chain diagnostics of :meth:`AllenCahn1D.sample`: acceptance rate of the sampling phase, and ``beta``."""

    acceptance: np.ndarray
    beta: np.ndarray
    burn_in_acceptance: np.ndarray


class _PCNTables:
    """Torch tables of the pCN twin: dense ``R^{-1}`` of the reference precision, weights, constants."""

    def __init__(self, ac: AllenCahn1D, device: torch.device) -> None:
        r, s = _core().ac_mcmc_factor(ac._config())
        R = np.diag(r) + np.diag(s, 1)
        Rinv = np.linalg.solve(R, np.eye(len(r)))
        lo = 1 if ac.boundary == "pinned" else 0
        # xi = z @ M: (dof) -> (n+1) nodes, zero on pinned nodes
        M = np.zeros((len(r), ac.n + 1))
        M[:, lo : lo + len(r)] = Rinv.T
        _, w, _ = modal_basis(ac.n, "free")
        if ac.boundary == "pinned":
            w[0] = w[-1] = 0.0
        to = dict(dtype=torch.float64, device=device)
        self.M = torch.as_tensor(M, **to)
        self.w = torch.as_tensor(w, **to)
        self.h, self.vscale, self.mass = 1.0 / ac.n, ac.vscale, ac.mass


def _pcn_phi(u: torch.Tensor, tb: _PCNTables) -> torch.Tensor:
    pv = _V(0.5 * (u[:, :-1] + u[:, 1:])).sum(-1) if tb.vscale != 0 else torch.zeros_like(u[:, 0])
    return 0.5 * tb.h * tb.vscale * pv - 0.5 * tb.mass * (tb.w * u * u).sum(-1)


def pcn_step_ref(u, phi_u, theta, z, unif, step: int, adapt_until: int, target: float, tb: _PCNTables):
    """One pCN step of the torch twin for all chains: ``u`` ``(C, n+1)``, cached ``Phi(u)`` and ``theta`` ``(C,)``,
    normals ``z`` ``(C, dof)``, uniforms ``(C,)``. Returns ``(u, phi_u, theta, accepted, alpha)``."""
    beta = torch.sigmoid(theta)
    rho = torch.sqrt((1 - beta) * (1 + beta))
    v = rho[:, None] * u + beta[:, None] * (z @ tb.M)
    phi_v = _pcn_phi(v, tb)
    log_ratio = phi_u - phi_v
    alpha = torch.where(log_ratio >= 0, torch.ones_like(log_ratio), torch.exp(log_ratio.clamp_max(0)))
    acc = torch.log(unif) < log_ratio
    u = torch.where(acc[:, None], v, u)
    phi_u = torch.where(acc, phi_v, phi_u)
    if step < adapt_until:
        theta = (theta + (step + 1.0) ** -_ADAPT_EXPONENT * (alpha - target)).clamp(-_THETA_BOUND, _THETA_BOUND)
    return u, phi_u, theta, acc, alpha


class AllenCahn1D:
    """Exact sampler of the paper's discrete 1-D Allen-Cahn Gibbs measure ``exp(-U)`` (module docstring).

    Defaults and ranges are those of :data:`fastinterp.pde.spec.ALLEN_CAHN` (shared with ``fastinterp pde
    generate``); an invalid value raises ``ValueError`` naming it and its range.

    Args:
        n: intervals ``N`` (``N + 1`` nodes, ``h = 1/N``, ``2 <= N <= 2^20``); the paper uses 32, 64, 128.
        boundary: ``"free"`` (the paper's) or ``"pinned"`` (``u_0 = u_N = 0``).
        potential: ``"double_well"`` (``V = (1 - u^2)^2``) or ``"none"`` (``V = 0``: with pinned ends the law of
            ``u`` is the Brownian bridge; with free ends it is improper and refused).
        mass: ``m > 0`` of the pCN reference ``N(0, (A + m W)^{-1})``; any value gives the same law, it only
            changes the mixing (``m = 1``: reference mean variance ~1, near the target's).
        target_accept: acceptance probability the burn-in adaptation of ``beta`` aims at.
    """

    def __init__(
        self,
        n: int = ALLEN_CAHN.res.default,
        *,
        boundary: str = _P["boundary"].default,
        potential: str = _P["potential"].default,
        mass: float = _P["mass"].default,
        target_accept: float = _P["target_accept"].default,
    ) -> None:
        self.n = ALLEN_CAHN.res.check(n, name="n")
        v = ALLEN_CAHN.validate({"boundary": boundary, "potential": potential, "mass": mass,
                                 "target_accept": target_accept}, dataset=False, partial=True)  # fmt: skip
        self.boundary, self.potential, self.mass = v["boundary"], v["potential"], v["mass"]
        self.target_accept = v["target_accept"]
        self.vscale = 1.0 if self.potential == "double_well" else 0.0
        self.dof = self.n - 1 if boundary == "pinned" else self.n + 1

    @property
    def x(self) -> np.ndarray:
        """Node positions ``j / N`` ``(N + 1,)``."""
        return np.arange(self.n + 1) / self.n

    def energy(self, u) -> np.ndarray:
        """``U(u)`` for ``u`` ``(..., N + 1)`` (pinned ends: the caller's ``u_0, u_N`` are used as given)."""
        u = np.asarray(u, dtype=np.float64)
        if u.shape[-1] != self.n + 1:
            raise ValueError(f"u must have last dimension n + 1 = {self.n + 1}, got shape {u.shape}")
        h = 1.0 / self.n
        d = np.diff(u, axis=-1)
        return (d * d).sum(-1) / (2 * h) + 0.5 * h * self.vscale * _V(0.5 * (u[..., 1:] + u[..., :-1])).sum(-1)

    def _config(self):
        """The engine's parameter struct, ``fastinterp._core.ACConfig`` (the spec's validated values)."""
        return _core().ACConfig(n=self.n, boundary=self.boundary, potential=self.potential, mass=self.mass,
                                target_accept=self.target_accept)  # fmt: skip

    def initial_state(self, num_chains: int, *, seed: int = 0, first: int = 0, beta: float = 0.5) -> PCNState:
        """Chains started from reference draws ``N(0, (A + m W)^{-1})`` (chain ``i`` keyed by ``(seed, first+i)``)
        with pCN step ``beta``."""
        num_chains = _int("num_chains", num_chains, 0)
        beta = _float("beta", beta, 0.0, True, 1.0)
        u = _core().ac_mcmc_init(num_chains, self._config(), seed=_seed(seed), first=_int("first", first, 0))
        return PCNState(u, np.full(num_chains, math.log(beta / (1 - beta))), 0)

    def run(
        self,
        state: PCNState,
        steps: int,
        *,
        seed: int = 0,
        first: int = 0,
        adapt_until: int = 0,
        thin: int = 1,
        z: np.ndarray | None = None,
        unif: np.ndarray | None = None,
        backend: str = "cpp",
        threads: int = 1,
        device: str | torch.device | None = None,
        dtype: str = "float64",
    ) -> tuple[PCNState, np.ndarray, np.ndarray, np.ndarray]:
        """Advance all chains by ``steps`` pCN steps, numbered from ``state.step``.

        ``beta`` adapts while the step index is below ``adapt_until``. A sample is recorded after every ``thin``-th
        step of this call. Running ``k`` steps and then ``steps - k`` from the returned state is bit-identical to
        one call. ``z`` ``(chains, steps, dof)`` and ``unif`` ``(chains, steps)`` inject the proposal normals and
        the accept uniforms (both backends); otherwise they come from the counter-based generator.

        ``dtype`` (``"float64"`` or ``"float32"``) is the dtype of the returned samples only. The chain always runs in
        float64: the state (``PCNState.u`` stays float64), the proposal, ``Phi`` and the accept ratio
        ``exp(Phi(u) - Phi(v))``, so that ``exp(-U)`` stays its invariant law exactly; float32 samples are the float64
        chain's samples rounded to nearest (half the memory, the same speed).

        Returns:
            ``(new state, samples (chains, steps // thin, N + 1) in dtype, accepted (chains,), summed acceptance
            probabilities (chains,))``.
        """
        if not isinstance(state, PCNState):
            raise TypeError(f"state must be a PCNState, got {type(state).__name__}")
        steps = _int("steps", steps, 0)
        thin = _int("thin", thin, 1)
        adapt_until = _int("adapt_until", adapt_until, 0)
        seed, first = _seed(seed), _int("first", first, 0)
        backend = _backend(backend)
        threads = _int("threads", threads, 0)
        step0 = _int("state.step", state.step, 0)
        dtype = _dtype(dtype)
        if (z is None) != (unif is None):
            raise ValueError("z and unif must be given together")
        if backend == "cpp":
            u, theta, samples, acc, asum = _core().ac_mcmc_run(
                state.u, state.theta, self._config(), seed=seed, first=first, step0=step0, steps=steps,
                adapt_until=adapt_until, thin=thin, z=z, unif=unif, threads=threads, dtype=dtype,
            )  # fmt: skip
            return PCNState(u, theta, step0 + steps), samples, acc, asum
        return self._run_torch(state, steps, seed, first, adapt_until, thin, z, unif, device, dtype)

    def _run_torch(self, state, steps, seed, first, adapt_until, thin, z, unif, device, dtype):
        u0, th0 = np.asarray(state.u), np.asarray(state.theta)
        if u0.dtype != np.float64 or u0.ndim != 2 or u0.shape[1] != self.n + 1:
            raise ValueError(f"state.u must be float64 shaped (chains, {self.n + 1}), got {u0.dtype} {u0.shape}")
        num = u0.shape[0]
        if th0.dtype != np.float64 or th0.shape != (num,) or not np.isfinite(th0).all():
            raise ValueError(f"state.theta must be finite float64 shaped ({num},), got {th0.dtype} {th0.shape}")
        if z is not None:
            z, unif = np.asarray(z), np.asarray(unif)
            if z.shape != (num, steps, self.dof) or unif.shape != (num, steps):
                raise ValueError(f"z must have shape {(num, steps, self.dof)} and unif {(num, steps)}, got "
                                 f"{z.shape} and {unif.shape}")  # fmt: skip
        device = torch.device(device or "cpu")
        tb = _PCNTables(self, device)
        u = torch.as_tensor(u0, device=device).clone()
        theta = torch.as_tensor(th0, device=device).clone()
        phi_u = _pcn_phi(u, tb)
        acc_n = torch.zeros(num, dtype=torch.int64, device=device)
        asum = torch.zeros(num, dtype=torch.float64, device=device)
        # the chain runs in float64; recorded samples are rounded to dtype (as the C++ path does)
        samples = torch.empty((num, steps // thin, self.n + 1), dtype=getattr(torch, dtype), device=device)
        chunk = max(1, 4096 // max(1, num))
        for c0 in range(0, steps, chunk):
            c1 = min(steps, c0 + chunk)
            if z is None:
                zc, uc = _core().ac_mcmc_noise(seed, first, num, state.step + c0, c1 - c0, self.dof)
            else:
                zc, uc = z[:, c0:c1], unif[:, c0:c1]
            zt = torch.as_tensor(np.ascontiguousarray(zc, dtype=np.float64), device=device)
            ut = torch.as_tensor(np.ascontiguousarray(uc, dtype=np.float64), device=device)
            for r in range(c1 - c0):
                s = c0 + r
                u, phi_u, theta, a, alpha = pcn_step_ref(
                    u, phi_u, theta, zt[:, r], ut[:, r], state.step + s, adapt_until, self.target_accept, tb
                )
                acc_n += a
                asum += alpha
                if (s + 1) % thin == 0:
                    samples[:, (s + 1) // thin - 1] = u
        new = PCNState(u.cpu().numpy(), theta.cpu().numpy(), state.step + steps)
        return new, samples.cpu().numpy(), acc_n.cpu().numpy(), asum.cpu().numpy()

    def sample(
        self,
        num_chains: int,
        samples_per_chain: int,
        *,
        seed: int = 0,
        first: int = 0,
        burn_in: int = _P["burn_in"].default,
        thin: int = _P["thin"].default,
        beta: float = _P["beta"].default,
        backend: str = "cpp",
        threads: int = 1,
        device: str | torch.device | None = None,
        return_info: bool = False,
        dtype: str = "float64",
    ) -> np.ndarray | tuple[np.ndarray, PCNInfo]:
        """Samples ``(num_chains, samples_per_chain, N + 1)`` of ``exp(-U)``, in ``dtype``.

        Each chain starts from a reference draw, runs ``burn_in`` steps adapting its ``beta`` (from ``beta``) toward
        ``target_accept``, then records every ``thin``-th of ``samples_per_chain * thin`` steps with ``beta`` frozen.
        Chain ``i`` depends only on ``(seed, first + i)``. ``return_info=True`` also returns a :class:`PCNInfo`.
        ``dtype="float32"`` rounds the recorded samples of the float64 chain (:meth:`run`): exactly
        ``sample(..., dtype="float64").astype(numpy.float32)``.
        """
        samples_per_chain = _int("samples_per_chain", samples_per_chain, 0)
        v = ALLEN_CAHN.validate({"burn_in": burn_in, "thin": thin, "beta": beta}, dataset=False, partial=True)
        burn_in, thin, beta = v["burn_in"], v["thin"], v["beta"]
        dtype = _dtype(dtype)
        st = self.initial_state(num_chains, seed=seed, first=first, beta=beta)
        kw = dict(seed=seed, first=first, backend=backend, threads=threads, device=device)
        st, _, _, burn_asum = self.run(st, burn_in, adapt_until=burn_in, thin=burn_in + 1, **kw)
        st, samples, acc, _ = self.run(st, samples_per_chain * thin, adapt_until=burn_in, thin=thin, dtype=dtype, **kw)
        if not return_info:
            return samples
        total = max(1, samples_per_chain * thin)
        info = PCNInfo(acc / total, 1 / (1 + np.exp(-st.theta)), burn_asum / max(1, burn_in))
        return samples, info


# ----------------------------------------------------------------------------------------------------------------
# Exponential Euler-Maruyama for the gradient-flow SPDE


class _SpdeTables:
    """Torch tables of the SPDE twin in ``dtype``: dense basis, weights and per-mode step factors (computed in float64,
    rounded once, as the C++ path does)."""

    def __init__(self, sp: AllenCahnSPDE, device: torch.device, dtype: torch.dtype) -> None:
        phi, w, mu = sp.basis()
        if sp.dim == 2:
            mu = mu[:, None] + mu[None, :]
        mu_t = torch.as_tensor(mu, dtype=torch.float64)
        pos = mu_t > 0
        safe = torch.where(pos, mu_t, torch.ones_like(mu_t))
        dt = sp.dt
        self.e = torch.where(pos, torch.exp(-mu_t * dt), torch.ones_like(mu_t))
        self.c = torch.where(pos, -torch.expm1(-mu_t * dt) / safe, torch.full_like(mu_t, dt))
        var = torch.where(pos, -torch.expm1(-2 * mu_t * dt) / safe, torch.full_like(mu_t, 2 * dt))  # exact OU
        self.s = torch.sqrt(var)
        to = dict(dtype=dtype, device=device)
        self.e, self.c, self.s = self.e.to(**to), self.c.to(**to), self.s.to(**to)
        self.phi, self.w = torch.as_tensor(phi).to(**to), torch.as_tensor(w).to(**to)
        self.dim, self.vscale, self.h = sp.dim, sp.vscale, 1.0 / sp.n


def _spde_grad_psi(u: torch.Tensor, tb: _SpdeTables) -> torch.Tensor:
    if tb.dim == 1:  # midpoint form of the paper's U
        d = (0.25 * tb.h * tb.vscale) * _dV(0.5 * (u[:, :-1] + u[:, 1:]))
        g = torch.zeros_like(u)
        g[:, :-1] += d
        g[:, 1:] += d
        return g
    return (0.5 * tb.vscale) * (tb.w[:, None] * tb.w[None, :]) * _dV(u)


def _synth(a: torch.Tensor, tb: _SpdeTables) -> torch.Tensor:
    return a @ tb.phi.T if tb.dim == 1 else tb.phi @ a @ tb.phi.T


def spde_step_ref(a: torch.Tensor, z: torch.Tensor, tb: _SpdeTables) -> torch.Tensor:
    """One exponential Euler-Maruyama step of the torch twin: modal states ``a`` ``(B, modes)`` or
    ``(B, modes, modes)``, standard normals ``z`` of the same shape (both in the tables' dtype):
    ``a' = e^{-mu dt} a - (1 - e^{-mu dt})/mu G + sqrt((1 - e^{-2 mu dt})/mu) z``, ``G = Phi^T grad Psi(Phi a)``.
    The transforms are the dense products (the reference of the C++ FFT path)."""
    if tb.vscale == 0:
        return tb.e * a + tb.s * z
    g = _spde_grad_psi(_synth(a, tb), tb)
    G = g @ tb.phi if tb.dim == 1 else tb.phi.T @ g @ tb.phi
    return tb.e * a - tb.c * G + tb.s * z


class AllenCahnSPDE:
    """Gradient-flow SPDE ``du = (Lap u - V'(u)/2) dt + sqrt(2) dW`` on ``[0, 1]^dim`` (module docstring).

    Args:
        n: intervals per axis (``h = 1/n``); nodes per axis ``n + 1`` (free, pinned) or ``n`` (periodic, even n).
        dim: 1 or 2.
        boundary: 1-D ``"free"`` (Neumann; the MCMC's law) or ``"pinned"``; 2-D ``"free"`` or ``"periodic"``.
        potential: ``"double_well"`` or ``"none"`` (``V = 0``: an Ornstein-Uhlenbeck process per mode, solved
            exactly; with free or periodic ends its mean is a Brownian motion and there is no invariant law).
        dt: time step of the exponential Euler-Maruyama scheme. The Laplacian is exact at any ``dt``; the double-well
            drift is explicit: runs were stable at 0.1 in 1-D and at 0.05 in 2-D (whose fields reach ``|u| ~ 5``) and
            diverged from 0.15 and 0.1. A diverged run raises :class:`~fastinterp.pde.DivergedError`.
        transform: how the C++ path applies the modal basis ``Phi`` and ``Phi^T``: ``"dense"`` (matrix products,
            O(n^2) per axis per row: 1-D O(n^2), 2-D O(n^3) per step; any n), ``"fft"`` (real FFTs of size ``2n``,
            periodic ``n``: DCT-I / DST-I / real Fourier, O(n log n) per axis; n a power of two, ``2n`` resp. ``n``
            >= 4), or ``"auto"`` (the FFT where it applies and is the faster, i.e. from n = 128 in 1-D and n = 16 in
            2-D). Both agree to roundoff; the torch twin is always dense.

    The state is modal: ``a`` ``(num, modes)`` (2-D ``(num, modes, modes)``), nodal ``u = Phi a`` (``Phi a Phi^T``),
    float64 or float32: its dtype picks the arithmetic of :meth:`integrate` (``initial_state`` / ``sample`` take
    ``dtype``). Injected ``noise`` is always float64 standard normals, rounded to the state's dtype at use.
    """

    def __init__(
        self,
        n: int = 32,
        *,
        dim: int = 1,
        boundary: str = "free",
        potential: str = "double_well",
        dt: float = 1e-3,
        transform: str = "auto",
    ) -> None:
        self.dim = _int("dim", dim, 1, 2)
        self.boundary = _choice("boundary", boundary, BOUNDARIES_1D if dim == 1 else BOUNDARIES_2D)
        self.n = _int("n", n, 2, 4096 if dim == 1 else 512)
        if boundary == "periodic" and n % 2:
            raise ValueError(f"n must be even for periodic boundaries, got {n}")
        self.potential = _choice("potential", potential, POTENTIALS)
        self.vscale = 1.0 if potential == "double_well" else 0.0
        self.dt = _float("dt", dt, 0.0, True)
        transform = _choice("transform", transform, TRANSFORMS)
        fft_ok = _core().ac_fft_supported(self.n, self.boundary)
        if transform == "fft" and not fft_ok:
            size = "n" if self.boundary == "periodic" else "2n"
            raise ValueError(f"transform='fft' needs a power-of-two n with FFT size {size} >= 4, got n={self.n} "
                             f"(boundary {self.boundary!r}); use transform='dense' or 'auto'")  # fmt: skip
        if transform == "auto":
            transform = "fft" if fft_ok and self.n >= _FFT_FROM_N[self.dim] else "dense"
        self.transform = transform
        self._w, self._mu = _weights_eigenvalues(self.n, self.boundary)
        self._phi = None  # built on first use: the FFT path never needs the O(n^2) table

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(phi (nodes, modes), weights (nodes,), mu (modes,))`` of one axis (:func:`modal_basis`)."""
        return self._phi_table().copy(), self._w.copy(), self._mu.copy()

    def _phi_table(self) -> np.ndarray:
        if self._phi is None:
            self._phi = modal_basis(self.n, self.boundary)[0]
        return self._phi

    @property
    def modes(self) -> int:
        return self._mu.size

    @property
    def nodes(self) -> int:
        return self._w.size

    def to_nodal(self, a) -> np.ndarray:
        """Nodal fields ``u`` ``(num, nodes[, nodes])`` of modal states ``a`` (dense products in float64; float32
        input gives float32 output)."""
        phi = self._phi_table()
        a = np.asarray(a)
        out_dtype = np.float32 if a.dtype == np.float32 else np.float64
        a = a.astype(np.float64)
        return (a @ phi.T if self.dim == 1 else phi @ a @ phi.T).astype(out_dtype, copy=False)

    def to_modal(self, u) -> np.ndarray:
        """Modal coordinates ``a_k = sum_j w_j phi_k(j) u_j`` (per axis) of nodal fields ``u`` (as :meth:`to_nodal`)."""
        phi, w = self._phi_table(), self._w
        pw = phi * w[:, None]
        u = np.asarray(u)
        out_dtype = np.float32 if u.dtype == np.float32 else np.float64
        u = u.astype(np.float64)
        return (u @ pw if self.dim == 1 else pw.T @ u @ pw).astype(out_dtype, copy=False)

    def initial_state(self, num: int, *, seed: int = 0, first: int = 0, dtype: str = "float64") -> np.ndarray:
        """Random modal states: ``a_k = z_k / sqrt(mu_k + 1)`` (the linear part's law with unit mass), computed in
        float64 and returned in ``dtype`` (``"float64"`` or ``"float32"``)."""
        num = _int("num", num, 0)
        dtype = _dtype(dtype)
        mu = self._mu
        if self.dim == 2:
            mu = (mu[:, None] + mu[None, :]).reshape(-1)
        z = _core().ac_spde_noise(_seed(seed), _int("first", first, 0), num, 0, 1, mu.size, init=True)[:, 0]
        a = z / np.sqrt(mu + 1.0)
        return np.ascontiguousarray(a.reshape((num,) + (self.modes,) * self.dim), dtype=dtype)

    def _run(self, state, burn, every, snapshots, *, seed, first, step0, noise, backend, threads, device):
        seed, first, step0 = _seed(seed), _int("first", first, 0), _int("step0", step0, 0)
        backend, threads = _backend(backend), _int("threads", threads, 0)
        if backend == "cpp":
            return run_native(
                _core().ac_spde_run,
                state, phi=self._phi_table() if self.transform == "dense" else None, transform=self.transform,
                boundary=self.boundary, weights=self._w, mu=self._mu, dim=self.dim, midpoint=self.dim == 1,
                vscale=self.vscale, dt=self.dt, burn=burn, every=every, snapshots=snapshots, step0=step0, seed=seed,
                first=first, noise=noise, threads=threads, advice=_SPDE_ADVICE,
            )  # fmt: skip
        state = np.asarray(state)
        shape = (self.modes,) * self.dim
        if state.dtype not in (np.float64, np.float32) or state.ndim != self.dim + 1 or state.shape[1:] != shape:
            raise ValueError(f"state must be float64 or float32 shaped (num, {', '.join(map(str, shape))}), got "
                             f"{state.dtype} {state.shape}")  # fmt: skip
        tdtype = torch.float32 if state.dtype == np.float32 else torch.float64
        num = state.shape[0]
        total = burn + (snapshots - 1) * every if snapshots > 0 else burn
        M = self.modes**self.dim
        if noise is not None:
            noise = np.asarray(noise, dtype=np.float64)
            if noise.shape != (num, total, M):
                raise ValueError(f"noise must have shape {(num, total, M)}, got {noise.shape}")
        device = torch.device(device or "cpu")
        tb = _SpdeTables(self, device, tdtype)
        a = torch.as_tensor(state, device=device).clone()
        snaps = torch.empty((num, snapshots) + (self.nodes,) * self.dim, dtype=tdtype, device=device)
        taken = 0

        def snap(done):
            nonlocal taken
            if taken < snapshots and done == burn + taken * every:
                snaps[:, taken] = _synth(a, tb)
                taken += 1

        snap(0)
        chunk = max(1, 2**16 // max(1, num * M))
        for c0 in range(0, total, chunk):
            c1 = min(total, c0 + chunk)
            zc = _core().ac_spde_noise(seed, first, num, step0 + c0, c1 - c0, M) if noise is None else noise[:, c0:c1]
            zt = torch.as_tensor(np.ascontiguousarray(zc), device=device).reshape((num, c1 - c0) + shape).to(tdtype)
            for r in range(c1 - c0):
                a = spde_step_ref(a, zt[:, r], tb)
                snap(c0 + r + 1)
            raise_if_diverged(a, what="Allen-Cahn SPDE", first=first, step=step0 + c1, dt=self.dt,
                              advice=_SPDE_ADVICE)  # fmt: skip
        return a.cpu().numpy(), snaps.cpu().numpy()

    def integrate(
        self,
        state: np.ndarray,
        steps: int,
        *,
        seed: int = 0,
        first: int = 0,
        step0: int = 0,
        noise: np.ndarray | None = None,
        backend: str = "cpp",
        threads: int = 1,
        device: str | torch.device | None = None,
    ) -> np.ndarray:
        """Advance modal states by ``steps`` steps, in the state's dtype (float64 or float32). The normals of step
        ``s`` of trajectory ``i`` are keyed by ``(seed, first + i, step0 + s)`` (so ``k`` steps then ``steps - k``
        with ``step0=k`` equals one call), or injected: ``noise`` ``(num, steps, modes^dim)`` float64 standard
        normals."""
        steps = _int("steps", steps, 0)
        return self._run(state, steps, 1, 0, seed=seed, first=first, step0=step0, noise=noise, backend=backend,
                         threads=threads, device=device)[0]  # fmt: skip

    def sample(
        self,
        num: int,
        *,
        seed: int = 0,
        first: int = 0,
        t_burn: float = 10.0,
        t_snap: float = 0.5,
        snapshots: int = 10,
        backend: str = "cpp",
        threads: int = 1,
        device: str | torch.device | None = None,
        dtype: str = "float64",
    ) -> np.ndarray:
        """Nodal snapshots ``(num, snapshots, nodes[, nodes])``: a random initial state, ``t_burn`` of burn-in, then
        one every ``t_snap`` (the first at ``t_burn``). Both must be multiples of ``dt``. ``dtype`` (``"float64"`` or
        ``"float32"``) is the arithmetic of the whole run and the dtype of the snapshots."""
        snapshots = _int("snapshots", snapshots, 1)
        burn = steps_for(t_burn, self.dt, "t_burn", 0)
        every = steps_for(t_snap, self.dt, "t_snap", 1)
        a = self.initial_state(num, seed=seed, first=first, dtype=dtype)
        return self._run(a, burn, every, snapshots, seed=seed, first=first, step0=0, noise=None, backend=backend,
                         threads=threads, device=device)[1]  # fmt: skip
