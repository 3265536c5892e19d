"""Adapted models: fastinterp against diffusers' and flow_matching's own samplers at equal NFE.

    python benchmarks/bench_adapters.py [--quick] [--nfe 10 20 30 50] [--batch 256] [--no-throughput]
        [--throughput-nfe 20] [--unet-batch 16] [--backends eager fused] [--rounds 3] [--budget 20]
        [--threads T] [--out FILE]

**Accuracy.** Analytic targets in 16-D with a mean of unit scale: a Gaussian ``N(mu, s^2 I)`` (``s^2 = 0.25``) and a
2-component Gaussian mixture (weights 0.3 / 0.7, variance 0.1, means ``mu +- d``), each written as a perfect network
in the library's own convention:

- diffusers: an ``epsilon`` model ``eps(x_t, timestep)`` on Stable Diffusion's training table (``scaled_linear``,
  0.00085 to 0.012, 1000 steps; fractional timesteps interpolate ``log sigma``). Peers, each with its own
  ``set_timesteps`` loop from ``z * init_noise_sigma``: ``DDIMScheduler`` (``timestep_spacing="trailing"``: its
  steps are ``T // n`` apart, which "linspace" would contradict), ``DPMSolverMultistepScheduler`` (dpmsolver++,
  order 2), ``UniPCMultistepScheduler``, ``EulerDiscreteScheduler``, ``HeunDiscreteScheduler`` (``"linspace"``: from
  timestep 999 to 0, then the final step to sigma 0). fastinterp: ``from_diffusers`` transferred to ``Linear``,
  ``Trig`` and ``LipschitzOptimal(lam)`` (``lam`` = the target's variance, data mean passed as ``mean=``), each
  with every method of ``FI_METHODS`` (classical ``rk4``, the 3/8 rule ``rk4_38``, ``heun3``, ``midpoint``; the
  column shows the best and names it) between the trained ends, then ``denoise``. The reference is the exact flow
  of each run's own start (the state the model sees at its first call) from the noisiest trained level to the
  cleanest, then the exact denoiser there: the last value any sampler of this model can reach.
- flow_matching: a ``CondOTScheduler`` velocity ``u(x, t)`` in a ``ModelWrapper``; peers: ``ODESolver`` with
  torchdiffeq's fixed-grid ``euler``, ``midpoint``, ``heun3`` and ``rk4`` (3/8 rule) on ``[0, 1]``; fastinterp:
  ``from_flow_matching`` transferred as above, from ``z`` at the noise-to-signal ratio of the linear clock's
  ``t = 1e-9`` to ``t = 1`` (``Linear``, ``Trig``: regular there) or to the ratio of ``1 - 1e-5``, then ``denoise``
  (``LipschitzOptimal``: singular at 1), each schedule's ends found by ``invert_ratio``.
  Reference: the exact flow of ``z`` to ``t = 1``, from ``t = 0`` (peers) or ``1e-9`` (fastinterp).

Gaussian references are closed-form; the mixture's is a 2000-step float64 RK4 of the exact probability flow (the
printed check gives its distance to a 1000-step run). Error: ``|x - ref| / |ref|`` over the batch. A contender's
NFE is the model calls counted in its run: at most the budget (fastinterp: ``(NFE - 1) // stages`` steps plus
the denoise, or ``NFE // stages`` without it; Heun: ``(NFE + 1) // 2`` timesteps, ``2 n - 1`` calls).

**Throughput.** A random-initialised ``UNet2DModel`` (3 channels, 32 x 32, batch 16, float32, no downloads) at equal
NFE: diffusers' ``DPMSolverMultistepScheduler`` loop (``set_timesteps`` then ``step`` per NFE) against fastinterp
(``from_diffusers``, transferred to ``Linear``, RK4 with NFE / 4 steps) on the ``--backends``; the contenders and
the model alone alternate round-robin, the first rotating; reported are medians, the spread (IQR) and the speed-up
as the median of the per-round ratios. On a CPU the UNet is small and its cost dominates: the speed-up measures
the loop's overhead only.

A Goals block grades the issue's goals: fastinterp (its best schedule at each NFE) more accurate than every peer
at every NFE, and faster than diffusers' loop (the lower quartile of the per-round speed-ups above 1: a median
inside the rounds' spread is no speed-up).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import fastinterp as fi
from fastinterp.adapters import from_diffusers, from_flow_matching
from fastinterp.targets import Gaussian, GaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling bench_sampling.py names the machine for both
from bench_sampling import Report, quartiles  # noqa: E402
from bench_sampling import machine as _machine  # noqa: E402


def machine() -> str:
    return _machine(torch.device("cpu"))


DIM = 16
NFES = (10, 20, 30, 50)
TRAIN = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
FM_T_MAX = 1 - 1e-5  # fastinterp's last time on flow_matching's clock (its denoise bias there: ~1e-10)
FM_T_MIN = 1e-9  # its first: it starts from z there (LipschitzOptimal is singular at 0), against the flow from there
REF_STEPS = 2000


def missing(module: str) -> str | None:
    """None if ``module`` imports, else why not."""
    try:
        __import__(module)
    except ImportError as exc:
        return f"{module} not installed ({exc})"
    return None


# -- targets ---------------------------------------------------------------------------------------------------
def targets() -> dict[str, tuple[object, torch.Tensor, float]]:
    """``{name: (target, data mean, lam)}``: float64, 16-D, mean of unit scale."""
    mu = torch.linspace(-1.0, 1.0, DIM, dtype=torch.float64) + 0.5
    d = 0.8 * torch.cos(torch.arange(DIM, dtype=torch.float64))
    w = torch.tensor([0.3, 0.7], dtype=torch.float64)
    mix = GaussianMixture(torch.stack([mu + d, mu - d]), w, 0.1)
    return {"gaussian": (Gaussian(mu, 0.25), mu, 0.25), "mixture": (mix, w @ mix.means, 0.1)}


def vp(sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, beta)`` of the variance-preserving state at noise-to-signal ratio ``sigma``."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    beta = 1 / torch.sqrt(1 + sigma**2)
    return sigma * beta, beta


def gaussian_flow(g: Gaussian, a0, b0, a1, b1, x: torch.Tensor) -> torch.Tensor:
    """The exact probability-flow map of ``g`` from the state ``x`` at ``(a0, b0)`` to ``(a1, b1)``."""
    scale = torch.sqrt((a1**2 + b1**2 * g.var) / (a0**2 + b0**2 * g.var))
    return b1 * g.mean + scale * (x - b0 * g.mean)


def rk4(f: Callable, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    for t0, t1 in zip(grid[:-1], grid[1:], strict=True):
        h = t1 - t0
        k1 = f(x, t0)
        k2 = f(x + 0.5 * h * k1, t0 + 0.5 * h)
        k3 = f(x + 0.5 * h * k2, t0 + 0.5 * h)
        k4 = f(x + h * k3, t1)
        x = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def ddpm_reference(target, x_vp: torch.Tensor, sigma_max: float, sigma_min: float, steps: int = REF_STEPS):
    """``x1^`` at ``sigma_min`` of the exact flow of the VP state ``x_vp`` at ``sigma_max`` (closed form for a
    Gaussian; else RK4 of ``dy/du = y - D(y)`` in ``y = x / beta``, ``u = log sigma``)."""
    a1, b1 = vp(sigma_min)
    if isinstance(target, Gaussian):
        a0, b0 = vp(sigma_max)
        return target.denoisers(gaussian_flow(target, a0, b0, a1, b1, x_vp), a1, b1)[1]

    def f(y, u):
        a, b = vp(torch.exp(u))
        return y - target.denoisers(b * y, a, b)[1]

    u = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps + 1, dtype=torch.float64)
    y = rk4(f, x_vp / vp(sigma_max)[1], u)
    return target.denoisers(b1 * y, a1, b1)[1]


def condot_reference(target, z: torch.Tensor, steps: int = REF_STEPS, t0: float = 0.0) -> torch.Tensor:
    """The exact CondOT flow of the state ``z`` at ``t0`` to ``t = 1`` (closed form for a Gaussian, else RK4)."""
    if isinstance(target, Gaussian):
        return gaussian_flow(target, 1 - t0, t0, 0.0, 1.0, z)
    return rk4(condot_velocity(target), z, torch.linspace(t0, 1.0, steps + 1, dtype=torch.float64))


# -- models in each library's convention ------------------------------------------------------------------------
class Counted:
    """A model wrapper counting its calls."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def epsilon_model(target, scheduler) -> Callable:
    """A perfect diffusers ``epsilon`` network ``eps(x_t, timestep)`` of ``target`` on ``scheduler``'s table:
    ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps`` with ``log sigma`` interpolated at fractional timesteps."""
    abar = scheduler.alphas_cumprod.to(torch.float64)
    log_sigmas = 0.5 * (torch.log1p(-abar) - torch.log(abar))

    def eps(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        tau = torch.as_tensor(timestep, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        i = torch.clamp(tau.floor().long(), 0, log_sigmas.numel() - 2)
        w = tau - i
        alpha, beta = vp(torch.exp((1 - w) * log_sigmas[i] + w * log_sigmas[i + 1]))
        return target.denoisers(x.to(torch.float64), alpha, beta)[0].to(x.dtype)

    return eps


def condot_velocity(target) -> Callable:
    """The exact CondOT velocity ``u = x1^ - x0^`` at ``x_t = (1 - t) x_0 + t x_1`` (flow_matching's clock)."""

    def u(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        x0, x1 = target.denoisers(x.to(torch.float64), 1 - t, t)
        return (x1 - x0).to(x.dtype)

    return u


# -- contenders ---------------------------------------------------------------------------------------------------
FI_METHODS = ("rk4", "rk4_38", "heun3", "midpoint")


def fi_schedules(lam: float) -> dict[str, tuple[fi.Schedule, bool]]:
    """fastinterp's candidate schedules: ``{label: (schedule, pass the data mean)}``; each runs with every method of
    :data:`FI_METHODS` and its column shows the best."""
    return {
        "fi Linear": (fi.Linear(), False),
        "fi Trig": (fi.Trig(), False),
        "fi LipschitzOptimal(lam)+mean": (fi.LipschitzOptimal(lam), True),
    }


def fi_run(
    drift: fi.Drift, schedule: fi.Schedule, x_state: torch.Tensor, nfe: int, mean, method="rk4", denoise=True, **ends
):
    """``method`` with ``(nfe - denoise) // stages`` steps, then ``denoise``, from the state ``x_state`` given in the
    drift's source coordinates at the run's first time: ``(result, calls)``, or None when the budget allows no step."""
    steps = (nfe - int(denoise)) // fi.SOLVERS[method].stages
    if steps < 1:
        return None
    counted = Counted(drift.model)
    target = fi.Drift(counted, drift.schedule, drift.prediction, noise_range=drift.noise_range).transfer(schedule)
    sampler = fi.Sampler(
        target, steps=steps, method=method, denoise=denoise, start="state", backend="eager", mean=mean, **ends
    )
    dst = schedule(sampler.plan.grid[0])
    src = drift.schedule(drift.schedule.invert_ratio(dst.alpha, dst.beta))  # same noise-to-signal ratio
    scale = float(torch.hypot(dst.alpha, dst.beta) / torch.hypot(src.alpha, src.beta))
    x0 = scale * x_state - (0.0 if mean is None else float(dst.beta) * mean)
    return sampler(x0), counted.calls


def fi_best(run: Callable, error: Callable) -> tuple[float, int, str]:
    """``(error, calls, method)`` of the most accurate of :data:`FI_METHODS`, ``run(method)`` giving what
    :func:`fi_run` does and ``error(x)`` the error of a result."""
    results = [(error(out[0]), out[1], m) for m in FI_METHODS if (out := run(m)) is not None]
    return min(results)


def same_ratio_time(schedule: fi.Schedule, t_linear: float) -> float:
    """The time of ``schedule`` whose noise-to-signal ratio is the linear schedule's at ``t_linear`` (flow_matching's
    clock): the runs of every schedule then start and end at the reference's noise levels."""
    s = fi.Linear()(torch.tensor(t_linear, dtype=torch.float64))
    return float(schedule.invert_ratio(s.alpha, s.beta))


def diffusers_run(cls, model: Counted, z: torch.Tensor, nfe: int, **config):
    """``cls``'s own loop with as many timesteps as the NFE budget allows: ``(result, calls, start VP state)``."""
    import diffusers

    scheduler = getattr(diffusers, cls)(**TRAIN, **config)
    scheduler.set_timesteps((nfe + 1) // 2 if cls == "HeunDiscreteScheduler" else nfe)
    x = z * scheduler.init_noise_sigma
    start = None
    model.calls = 0
    for t in scheduler.timesteps:
        inp = scheduler.scale_model_input(x, t)
        start = inp if start is None else start
        x = scheduler.step(model(inp, t), t, x).prev_sample
    return x, model.calls, start


DIFFUSERS_PEERS = {
    "DDIM": ("DDIMScheduler", {"timestep_spacing": "trailing", "clip_sample": False}),
    "DPM-Solver++ 2M": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "timestep_spacing": "linspace"},
    ),
    "UniPC": ("UniPCMultistepScheduler", {"timestep_spacing": "linspace"}),
    "Euler": ("EulerDiscreteScheduler", {"timestep_spacing": "linspace"}),
    "Heun": ("HeunDiscreteScheduler", {"timestep_spacing": "linspace"}),
}
FM_PEERS = ("euler", "midpoint", "heun3", "rk4")
FM_STAGES = {"euler": 1, "midpoint": 2, "heun3": 3, "rk4": 4}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.to(torch.float64) - b).norm() / b.norm())


def accuracy_diffusers(nfes, batch, ref_steps, log) -> tuple[list[str], dict]:
    """``(columns, {target: {nfe: {contender: (error, calls)}}})`` for the diffusers ecosystem."""
    import diffusers

    table = diffusers.DDPMScheduler(**TRAIN)
    abar = table.alphas_cumprod.to(torch.float64)
    sigmas = torch.sqrt((1 - abar) / abar)
    sigma_min, sigma_max = float(sigmas[0]), float(sigmas[-1])
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, DIM, generator=gen, dtype=torch.float64)
    out: dict = {}
    columns: list[str] = []
    for name, (target, mean, lam) in targets().items():
        refs: dict[float, torch.Tensor] = {}

        def reference(start: torch.Tensor, target=target, refs=refs) -> torch.Tensor:
            c = round(float(start.to(torch.float64).flatten() @ z.flatten() / (z.flatten() @ z.flatten())), 12)
            if c not in refs:
                refs[c] = ddpm_reference(target, c * z, sigma_max, sigma_min, ref_steps)
            return refs[c]

        model = Counted(epsilon_model(target, table))
        drift = from_diffusers(model, table)
        rows: dict = {}
        for nfe in nfes:
            log(f"diffusers {name} NFE={nfe}")
            row = rows[nfe] = {}
            for label, (schedule, use_mean) in fi_schedules(lam).items():
                m = mean if use_mean else None
                row[label] = fi_best(
                    lambda method, s=schedule, m=m: fi_run(drift, s, z, nfe, m, method),
                    lambda x: rel(x, reference(z)),
                )
            for label, (cls, config) in DIFFUSERS_PEERS.items():
                x, calls, start = diffusers_run(cls, model, z, nfe, **config)
                row[label] = (rel(x, reference(start)), calls, "")
            columns = list(row)
        out[name] = rows
        if not isinstance(target, Gaussian):
            coarse = ddpm_reference(target, z, sigma_max, sigma_min, ref_steps // 2)
            out[name]["reference check"] = (ref_steps, rel(coarse, reference(z)))
    return columns, out


def accuracy_flow_matching(nfes, batch, ref_steps, log) -> tuple[list[str], dict]:
    """``(columns, {target: {nfe: {contender: (error, calls)}}})`` for the flow_matching ecosystem."""
    from flow_matching.path.scheduler import CondOTScheduler
    from flow_matching.solver import ODESolver
    from flow_matching.utils import ModelWrapper

    class Velocity(ModelWrapper):
        def __init__(self, u):
            super().__init__(None)
            self.u = Counted(u)

        def forward(self, x, t, **extras):
            return self.u(x, t)

    gen = torch.Generator().manual_seed(1)
    z = torch.randn(batch, DIM, generator=gen, dtype=torch.float64)
    out: dict = {}
    columns: list[str] = []
    for name, (target, mean, lam) in targets().items():
        ref = condot_reference(target, z, ref_steps)
        ref_fi = condot_reference(target, z, ref_steps, FM_T_MIN)  # fastinterp starts from z at FM_T_MIN
        model = Velocity(condot_velocity(target))
        drift = from_flow_matching(model, CondOTScheduler())
        rows: dict = {}
        for nfe in nfes:
            log(f"flow_matching {name} NFE={nfe}")
            row = rows[nfe] = {}
            for label, (schedule, use_mean) in fi_schedules(lam).items():
                # Linear and Trig are regular at t = 1: integrate there, every NFE a step's; LipschitzOptimal's
                # alpha' is singular at 1: stop at FM_T_MAX's noise level and denoise
                regular = not isinstance(schedule, fi.LipschitzOptimal)
                t_max = 1.0 if regular else same_ratio_time(schedule, FM_T_MAX)
                ends = dict(t_min=same_ratio_time(schedule, FM_T_MIN), t_max=t_max, denoise=not regular)
                m = mean if use_mean else None
                row[label] = fi_best(
                    lambda method, s=schedule, m=m, ends=ends: fi_run(drift, s, z, nfe, m, method, **ends),
                    lambda x: rel(x, ref_fi),
                )
            for method in FM_PEERS:
                n = nfe // FM_STAGES[method]
                model.u.calls = 0
                grid = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)
                x = ODESolver(velocity_model=model).sample(x_init=z, step_size=None, method=method, time_grid=grid)
                row[f"ODESolver {method}"] = (rel(x, ref), model.u.calls, "")
            columns = list(row)
        out[name] = rows
        if not isinstance(target, Gaussian):
            out[name]["reference check"] = (ref_steps, rel(condot_reference(target, z, ref_steps // 2), ref))
    return columns, out


def accuracy_tables(title: str, columns: list[str], results: dict, echo) -> list[tuple[str, str, str, str]]:
    """Print one table per target (NFE x contender: error, calls); return the goal rows."""
    goals = []
    fi_cols = [c for c in columns if c.startswith("fi ")]
    peers = [c for c in columns if not c.startswith("fi ")]
    for name, rows in results.items():
        echo(f"\n### {title}: {name} (lam = {targets()[name][2]:g})\n")
        check = rows.get("reference check")
        if check is not None:
            echo(
                f"reference: {check[0]}-step float64 RK4; distance to a {check[0] // 2}-step run: {check[1]:.1e} "
                "(its own error ~1/15 of that)\n"
            )
        else:
            echo("reference: closed form\n")
        echo("| NFE | " + " | ".join(columns) + " |")
        echo("|---" * (len(columns) + 1) + "|")
        for nfe, row in rows.items():
            if nfe == "reference check":
                continue
            cells = (f"{row[c][0]:.1e} ({row[c][1]}{', ' + row[c][2] if row[c][2] else ''})" for c in columns)
            echo(f"| {nfe} | " + " | ".join(cells) + " |")
            best_fi = min(fi_cols, key=lambda c: row[c][0])
            best_peer = min(peers, key=lambda c: row[c][0])
            over = [c for c in columns if row[c][1] > nfe]
            ok = row[best_fi][0] < row[best_peer][0] and not over
            measured = (
                f"{best_fi.removeprefix('fi ')} {row[best_fi][2]} {row[best_fi][0]:.1e} "
                f"vs {best_peer} {row[best_peer][0]:.1e} "
                f"({row[best_peer][0] / max(row[best_fi][0], 1e-300):.3g}x)"
            )
            if over:
                measured += f"; over the NFE budget: {', '.join(over)}"
            goals.append((f"accuracy, {title} {name}, NFE <= {nfe}", "fastinterp < every peer", measured, ok))
        echo("\n(relative error; model calls in parentheses, and for fastinterp the best of its methods)")
        fewer = fewer_calls(rows, fi_cols, peers)
        if fewer is not None:
            (peer, peer_err, peer_calls), (col, err, calls) = fewer
            echo(
                f"\nFewest calls to beat every peer's best by {1 / MARGIN - 1:.0%} ({peer}, {peer_err:.1e} with "
                f"{peer_calls} calls): "
                f"{col.removeprefix('fi ')} with {calls} calls ({err:.1e}), {peer_calls / calls:.1f}x fewer model calls"
            )
    return goals


#: A fastinterp run "beats" the best peer run for :func:`fewer_calls` with at most this fraction of its error (the
#: same method on the same grid differs by rounding only).
MARGIN = 0.9


def fewer_calls(rows: dict, fi_cols: list[str], peers: list[str]):
    """``((peer, error, calls), (fastinterp column, error, calls))``: the most accurate peer run of the table, and the
    fastinterp run with the fewest model calls whose error is at most :data:`MARGIN` times its; None if none."""
    cells = [(row[c], c) for nfe, row in rows.items() if nfe != "reference check" for c in peers]
    (peer_err, peer_calls, _), peer = min(cells, key=lambda cell: cell[0][0])
    wins = [
        (row[c][1], row[c][0], c)
        for nfe, row in rows.items()
        if nfe != "reference check"
        for c in fi_cols
        if row[c][0] <= MARGIN * peer_err
    ]
    if not wins:
        return None
    calls, err, col = min(wins)
    return (peer, peer_err, peer_calls), (col, err, calls)


# -- throughput ---------------------------------------------------------------------------------------------------
def small_unet(batch: int, size: int = 32):
    import diffusers

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=size, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ).eval()  # fmt: skip
    return unet, torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))


def throughput(nfe: int, batch: int, size: int, backends, rounds: int, budget: float, log):
    """``(contenders, {name: [seconds per round]}, {name: calls}, params)``."""
    import diffusers

    if nfe % 4:
        raise ValueError(f"--throughput-nfe must be a multiple of 4 (RK4 steps), got {nfe}")
    unet, z = small_unet(batch, size)
    params = sum(p.numel() for p in unet.parameters())
    model = Counted(unet)
    train = diffusers.DDPMScheduler(**TRAIN)
    dpm = diffusers.DPMSolverMultistepScheduler(**TRAIN, algorithm_type="dpmsolver++", solver_order=2)

    def diffusers_loop():
        dpm.set_timesteps(nfe)
        x = z * dpm.init_noise_sigma
        for t in dpm.timesteps:
            x = dpm.step(model(dpm.scale_model_input(x, t), t).sample, t, x).prev_sample
        return x

    drift = from_diffusers(model, train).transfer(fi.Linear())
    fns: dict[str, Callable] = {"diffusers DPM-Solver++ 2M": diffusers_loop}
    for backend in backends:
        sampler = fi.Sampler(drift, steps=nfe // 4, backend=backend)
        fns[f"fastinterp {backend}"] = lambda s=sampler: s(z)
    t_model = torch.full((batch,), 500.0)
    fns["UNet alone (1 NFE)"] = lambda: unet(z, t_model)
    calls, times = {}, {name: [] for name in fns}
    with torch.no_grad():
        for name, fn in fns.items():  # warm-up, and the NFE each contender really spends
            log(f"throughput warm-up: {name}")
            model.calls = 0
            fn()
            calls[name] = model.calls if model.calls else 1
        start = time.perf_counter()
        names = list(fns)
        r = 0
        while r < rounds or (time.perf_counter() - start < budget and r < 30):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t0)
            r += 1
    return names, times, calls, params


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: NFE 10, small batches and references")
    parser.add_argument("--nfe", type=int, nargs="+", default=None, help=f"accuracy NFE budgets (default {NFES})")
    parser.add_argument("--batch", type=int, default=None, help="accuracy batch (default 256)")
    parser.add_argument("--no-throughput", action="store_true", help="skip the UNet2DModel timing")
    parser.add_argument("--throughput-nfe", type=int, default=20)
    parser.add_argument("--unet-batch", type=int, default=None, help="default 16 (4 with --quick)")
    parser.add_argument("--backends", nargs="+", choices=("eager", "fused", "compile", "graph"), default=None)
    parser.add_argument("--rounds", type=int, default=3, help="minimum alternated rounds (default 3)")
    parser.add_argument("--budget", type=float, default=None, help="seconds of alternated timing (default 20)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", default=None, help="also write the report to this markdown file")
    args = parser.parse_args(argv)
    nfes = args.nfe or ([10] if args.quick else list(NFES))
    if any(n < 5 for n in nfes):
        parser.error(f"--nfe values must be >= 5 (one RK4 step and the denoise), got {nfes}")
    batch = args.batch or (32 if args.quick else 256)
    ref_steps = 200 if args.quick else REF_STEPS
    unet_batch, unet_size = args.unet_batch or (4 if args.quick else 16), 16 if args.quick else 32
    backends = args.backends or ["eager", "fused"]
    budget = args.budget if args.budget is not None else (0.0 if args.quick else 20.0)

    report = Report(args.out, args.threads)  # closed in the finally below
    echo, log = report.echo, report.log

    versions = []
    for mod in ("diffusers", "flow_matching", "torchdiffeq"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except (ImportError, AttributeError):
            versions.append(f"{mod} not installed")
    goals: list[tuple[str, str, str, bool | None]] = []
    try:
        echo("# fastinterp adapters benchmark\n")
        echo(
            f"machine: {machine()}; torch {torch.__version__}; fastinterp {fi.__version__}; {', '.join(versions)}; "
            f"{time.strftime('%Y-%m-%d %H:%M')}; load average {report.start_load:.2f} at the start"
        )
        echo(
            f"\n## Accuracy at equal NFE ({DIM}-D targets with a mean, batch {batch}, float64 models)\n\n"
            "Error of the final samples against the exact flow of the same noise (bench_adapters.py docstring)."
        )
        why = missing("diffusers")
        if why:
            echo(f"\nskipped diffusers: {why}")
        else:
            columns, results = accuracy_diffusers(nfes, batch, ref_steps, log)
            goals += accuracy_tables("diffusers (epsilon, scaled_linear)", columns, results, echo)
        why = missing("flow_matching.solver") or missing("torchdiffeq")
        if why:
            echo(f"\nskipped flow_matching: {why}")
        else:
            columns, results = accuracy_flow_matching(nfes, batch, ref_steps, log)
            goals += accuracy_tables("flow_matching (CondOT velocity)", columns, results, echo)
        if args.no_throughput or missing("diffusers"):
            echo(f"\nthroughput skipped: {'--no-throughput' if args.no_throughput else missing('diffusers')}")
        else:
            nfe = args.throughput_nfe
            names, times, calls, params = throughput(
                nfe, unet_batch, unet_size, backends, max(1, args.rounds), budget, log
            )
            echo(
                f"\n## Throughput: UNet2DModel ({params / 1e6:.2f} M parameters, 3 x {unet_size} x {unet_size}, "
                f"batch {unet_batch}, float32), {nfe} NFE\n\n"
                f"CPU: {machine()}. On a CPU the small UNet's cost dominates every loop, so the speed-up measures the "
                "loops' overhead only.\n"
            )
            echo("| contender | NFE | median / call | IQR | speed-up vs diffusers (median, IQR) |")
            echo("|---|---|---|---|---|")
            base = times[names[0]]
            for name in names:
                q1, q2, q3 = quartiles(times[name])
                ratios = [b / t for b, t in zip(base, times[name], strict=False)]
                r1, r2, r3 = quartiles(ratios)
                echo(
                    f"| {name} | {calls[name]} | {q2 * 1e3:.1f} ms | {(q3 - q1) / q2:.0%} | "
                    f"{r2:.3f}x ({r1:.3f}-{r3:.3f}) |"
                )
                if name.startswith("fastinterp"):
                    goals.append(
                        (
                            f"throughput, {name} vs diffusers' DPM-Solver++ loop, {nfe} NFE",
                            "> 1x (the whole IQR)",
                            f"{r2:.3f}x (IQR {r1:.3f}-{r3:.3f})",
                            r1 > 1 and calls[name] <= calls[names[0]],
                        )
                    )
            echo(f"\n({len(base)} rounds, the first contender rotating)")
        report.finish([(g, t, m, "PASS" if ok else "FAIL") for g, t, m, ok in goals])
    finally:
        report.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
