"""Adapters (fastinterp.adapters) against closed-form flows of Gaussian targets written in each library's convention.

A Gaussian ``N(mu, s^2 I)`` has an affine probability-flow map under every schedule, so a model written in
diffusers', flow_matching's or EDM's own convention, wrapped by its adapter and sampled by fastinterp (RK4, under
the model's schedule or another by transfer), must reproduce that map to the ODE solver's error; and each adapter
must agree with the library's own schedulers (their ``x0`` predictions at their timesteps, their sampling loops).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import fastinterp as fi
from fastinterp.adapters import flow_match_time_grid, from_diffusers, from_edm, from_flow_matching
from fastinterp.targets import Gaussian

DIM, BATCH = 4, 64
MU = torch.tensor([0.3, -0.2, 0.1, 0.25])
VAR = 0.25


@pytest.fixture
def diffusers():
    return pytest.importorskip("diffusers")


def gaussian(centred: bool = False) -> Gaussian:
    return Gaussian(torch.zeros(DIM) if centred else MU, VAR)


def exact_flow(g: Gaussian, schedule: fi.Schedule, t0: float, t1: float, x: torch.Tensor, denoise: bool = False):
    """The probability-flow map of ``g`` under ``schedule`` from ``(t0, x)`` to ``t1`` (then ``x1^`` if ``denoise``)."""
    s0, s1 = schedule(torch.tensor(t0)), schedule(torch.tensor(t1))
    mu = g.mean
    scale = torch.sqrt((s1.alpha**2 + s1.beta**2 * VAR) / (s0.alpha**2 + s0.beta**2 * VAR))
    y = s1.beta * mu + scale * (x - s0.beta * mu)
    return g.denoise(y, s1.alpha, s1.beta) if denoise else y


def run(drift: fi.Drift, z: torch.Tensor, **options):
    """``(result, exact flow of the run's own start and ends)`` for the Gaussian the drift's model was written for."""
    g = options.pop("target")
    sampler = fi.Sampler(drift, backend="eager", **options)
    grid, scale = sampler.plan.grid, sampler.plan.start_scale
    out = sampler(z)
    want = exact_flow(g, drift.schedule, float(grid[0]), float(grid[-1]), scale * z, options.get("denoise", False))
    return out, want


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---- diffusers, DDPM family --------------------------------------------------------------------------------------


def diffusers_log_sigmas(scheduler) -> torch.Tensor:
    abar = scheduler.alphas_cumprod.double().clone()
    if scheduler.config.get("rescale_betas_zero_snr", False):
        abar[-1] = 0.0
    return 0.5 * (torch.log1p(-abar) - torch.log(abar))


class DiffusersGaussian:
    """A perfect diffusers network for ``g``: ``model(x_t, timestep)`` with ``x_t = sqrt(abar) x0 + sqrt(1 - abar)
    eps``, ``abar`` at a fractional timestep from ``log sigma`` interpolated between the table's entries (``1 /
    sigma`` on a last interval ending at ``sigma = inf``, the adapter's documented convention there)."""

    def __init__(self, g: Gaussian, scheduler, output: str = "tensor", *, record: bool = False) -> None:
        self.g, self.kind, self.output = g, scheduler.config.prediction_type, output
        self.log_sigmas = diffusers_log_sigmas(scheduler)
        self.calls = [] if record else None  # (timestep shape, dtype, cond keys) of every call

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        ls = self.log_sigmas
        tau = timestep.to(torch.float64)
        i = torch.clamp(tau.floor().long(), 0, ls.numel() - 2)
        w = tau - i
        lo, hi = ls[i], ls[i + 1]
        inv = (1 - w) * torch.exp(-lo)  # 1/sigma linear on an infinite last interval
        return torch.where(torch.isinf(hi), 1 / inv, torch.exp((1 - w) * lo + w * torch.where(torch.isinf(hi), lo, hi)))

    def __call__(self, x: torch.Tensor, timestep: torch.Tensor, **cond):
        if self.calls is not None:
            self.calls.append((timestep.shape, timestep.dtype, sorted(cond)))
        sigma = self.sigma(timestep)
        a = 1 / torch.sqrt(1 + sigma**2)  # sqrt(abar), (B,)
        b = sigma * a  # sqrt(1 - abar)
        eps, x0 = self.g.denoisers(x, b, a)
        v = a[:, None] * eps - b[:, None] * x0
        out = {"epsilon": eps, "sample": x0, "v_prediction": v}[self.kind].to(x.dtype)
        if self.output == "sample":
            return SimpleNamespace(sample=out)
        return (out,) if self.output == "tuple" else out


@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize(("prediction_type", "output"), [("epsilon", "sample"), ("v_prediction", "tuple"),
                                                         ("sample", "tensor")])  # fmt: skip
def test_diffusers_ddpm_exact_under_linear(beta_schedule, prediction_type, output, gen, diffusers):
    sched = diffusers.DDPMScheduler(beta_schedule=beta_schedule, prediction_type=prediction_type)
    drift = from_diffusers(DiffusersGaussian(gaussian(), sched, output), sched)
    z = torch.randn(BATCH, DIM, generator=gen)
    errors = []
    for steps in (10, 40):
        out, want = run(drift.transfer(fi.Linear()), z, steps=steps, target=gaussian(), denoise=True)
        errors.append(rel(out, want))
    assert errors[0] < 2e-4, errors
    assert errors[1] < errors[0] / 16, errors  # fourth order: the error is the solver's
    # and the very same numbers as fastinterp's own exact drift of the Gaussian, run on the same plan
    lin = drift.transfer(fi.Linear())
    plan = fi.Sampler(lin, steps=10).plan
    exact = gaussian().drift(fi.Trig(), "noise").transfer(fi.Linear())
    ref = fi.sample(exact, z, 10, t_min=float(plan.grid[0]), t_max=float(plan.grid[-1]), start="noise", denoise=True)
    assert rel(fi.sample(lin, z, 10, denoise=True), ref) < 1e-12


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_diffusers_ddpm_exact_under_lipschitz_optimal(prediction_type, gen, diffusers):
    sched = diffusers.DDPMScheduler(beta_schedule="scaled_linear", prediction_type=prediction_type)
    g = gaussian(centred=True)
    drift = from_diffusers(DiffusersGaussian(g, sched), sched).transfer(fi.LipschitzOptimal(VAR))
    out, want = run(drift, torch.randn(BATCH, DIM, generator=gen), steps=10, target=g)
    assert rel(out, want) < 1e-6


def test_diffusers_with_data_mean_under_lipschitz_optimal(gen, diffusers):
    """Data of unit mean: with ``mean=`` (the centred process, fi.sample) the adapted model is as exact under
    LipschitzOptimal as on centred data; it runs from ``alpha z + beta m`` at t_min (the centred start ``alpha z``)."""
    sched = diffusers.DDPMScheduler(beta_schedule="scaled_linear", prediction_type="v_prediction")
    m = torch.ones(DIM)
    g = Gaussian(m, VAR)
    drift = from_diffusers(DiffusersGaussian(g, sched), sched).transfer(fi.LipschitzOptimal(VAR))
    z = torch.randn(BATCH, DIM, generator=gen)
    plan = fi.Sampler(drift, steps=10).plan
    t0, t1 = float(plan.grid[0]), float(plan.grid[-1])
    start = plan.start_scale * z + drift.schedule(torch.tensor(t0)).beta * m
    out = fi.sample(drift, z, 10, mean=m)
    assert rel(out, exact_flow(g, drift.schedule, t0, t1, start)) < 1e-6
    exact = g.drift(fi.Trig(), "velocity").transfer(fi.LipschitzOptimal(VAR))
    assert rel(out, fi.sample(exact, z, 10, t_min=t0, t_max=t1, start="noise", mean=m)) < 1e-10


def test_diffusers_noise_range_and_timesteps(diffusers):
    sched = diffusers.DDPMScheduler(beta_schedule="scaled_linear")
    drift = from_diffusers(DiffusersGaussian(gaussian(), sched), sched)
    abar = sched.alphas_cumprod.double()
    sigmas = torch.sqrt((1 - abar) / abar)
    assert isinstance(drift.schedule, fi.Trig) and drift.prediction == "noise"
    assert drift.noise_range == pytest.approx((float(sigmas[0]), float(sigmas[-1])), rel=1e-12)
    assert drift.transfer(fi.Linear()).noise_range == drift.noise_range
    # every training timestep, and the midpoints in log sigma, at the Trig times of their ratios
    tp = fi.Trig().invert_ratio(sigmas, torch.ones_like(sigmas))
    assert torch.allclose(drift.model.timestep(tp), torch.arange(1000.0), atol=1e-8)
    mid = torch.exp(0.5 * (torch.log(sigmas[:-1]) + torch.log(sigmas[1:])))
    tm = fi.Trig().invert_ratio(mid, torch.ones_like(mid))
    assert torch.allclose(drift.model.timestep(tm), torch.arange(999.0) + 0.5, atol=1e-8)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_diffusers_round_trip_with_ddim_x0(prediction_type, gen, diffusers):
    """The adapter's x1^ at a scheduler timestep equals DDIM's own pred_original_sample from the raw model."""
    sched = diffusers.DDIMScheduler(beta_schedule="scaled_linear", prediction_type=prediction_type, clip_sample=False)
    sched.set_timesteps(1000)
    model = DiffusersGaussian(gaussian(), sched)
    drift = from_diffusers(model, sched)
    abar = sched.alphas_cumprod.double()
    for k in (0, 7, 500, 999):
        a = abar[k].sqrt()
        x = a * gaussian().sample(BATCH, generator=gen) + (1 - abar[k]).sqrt() * torch.randn(BATCH, DIM, generator=gen)
        tk = fi.Trig().invert_ratio((1 - abar[k]).sqrt(), a)
        raw = model(x, torch.full((BATCH,), float(k)))
        theirs = sched.step(raw, k, x).pred_original_sample
        # diffusers divides by its float32 sqrt(abar): its rounding grows like 1 / sqrt(abar) at the noisy end
        assert rel(drift.x1(x, tk), theirs) < 5e-7 / float(a), k
        factor = -math.pi / 2 if prediction_type == "v_prediction" else 1.0
        assert rel(drift.predict(x, tk), factor * raw) < 1e-9, k


def test_diffusers_agrees_with_ddim_loop(gen, diffusers):
    """diffusers' DDIM on all 1000 training timesteps and 10 RK4 steps of the adapter, from the same state z at
    timestep 999 to x0 at timestep 0, both against the exact flow (DDIM is first order)."""
    sched = diffusers.DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(1000)
    model = DiffusersGaussian(gaussian(), sched)
    z = torch.randn(BATCH, DIM, generator=gen)
    x = z
    for k in sched.timesteps:
        x = sched.step(model(x, k.double().expand(BATCH)), k, x).prev_sample
    drift = from_diffusers(model, sched)
    ours, want = run(drift, z, steps=10, denoise=True, start="state", target=gaussian())
    err_ddim, err_ours = rel(x, want), rel(ours, want)
    assert err_ddim < 1e-2 and err_ours < 1e-4 and err_ours < err_ddim / 10, (err_ddim, err_ours)


@pytest.mark.parametrize("name", ["DDIMScheduler", "EulerDiscreteScheduler"])
def test_diffusers_zero_terminal_snr(name, gen, diffusers):
    sched = getattr(diffusers, name)(rescale_betas_zero_snr=True, prediction_type="v_prediction")
    model = DiffusersGaussian(gaussian(), sched)
    drift = from_diffusers(model, sched)
    assert drift.noise_range[1] == math.inf
    assert float(drift.model.timestep(torch.tensor(0.0))) == 999.0  # pure noise is the last timestep
    out, want = run(drift.transfer(fi.Linear()), torch.randn(BATCH, DIM, generator=gen), steps=10, target=gaussian())
    assert rel(out, want) < 1e-4


def test_diffusers_conditioning_and_timestep_shape(gen, diffusers):
    sched = diffusers.DDPMScheduler()
    model = DiffusersGaussian(gaussian(), sched, record=True)
    drift = from_diffusers(model, sched).transfer(fi.Linear())
    labels = torch.arange(BATCH) % 3
    fi.sample(drift, torch.randn(BATCH, DIM, generator=gen), steps=2, cond={"class_labels": labels})
    assert model.calls and all(c == ((BATCH,), torch.float64, ["class_labels"]) for c in model.calls)


def test_diffusers_float32_state_gets_float32_timesteps(gen, diffusers):
    sched = diffusers.DDPMScheduler()
    model = DiffusersGaussian(gaussian(), sched, record=True)
    drift = from_diffusers(model, sched).transfer(fi.Linear())
    z = torch.randn(BATCH, DIM, generator=gen)
    out32 = fi.sample(drift, z.float(), steps=10)
    assert out32.dtype == torch.float32 and {c[1] for c in model.calls} == {torch.float32}
    assert rel(out32.double(), fi.sample(drift, z, steps=10)) < 1e-6


@pytest.mark.slow  # inductor compile, ~10 s on CPU
def test_diffusers_adapter_compiles_fullgraph(gen, diffusers):
    """The timestep map (a sum of clamped fractions, no search, no indexing) traces without graph breaks."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    sched = diffusers.DDPMScheduler(rescale_betas_zero_snr=True, prediction_type="v_prediction")
    drift = from_diffusers(DiffusersGaussian(gaussian(), sched), sched).transfer(fi.Linear())
    z = torch.randn(BATCH, DIM, generator=gen)
    out = fi.sample(drift, z, steps=4, backend="compile")  # fullgraph=True: a graph break raises
    assert rel(out, fi.sample(drift, z, steps=4)) < 1e-12 and not counters["graph_break"]


def test_diffusers_unet2d_class_conditional(gen, diffusers):
    """A random-initialised class-conditional UNet2DModel: the adapter calls it as diffusers does."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 8),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4, num_class_embeds=3,
    ).eval()  # fmt: skip
    sched = diffusers.DDPMScheduler(beta_schedule="scaled_linear")
    drift = from_diffusers(unet, sched)
    x = torch.randn(4, 1, 8, 8, generator=gen)  # the UNet is float64 too (the tests' default dtype)
    labels = torch.tensor([0, 1, 2, 0])
    abar = sched.alphas_cumprod.double()
    k = 321
    tk = fi.Trig().invert_ratio(((1 - abar[k]) / abar[k]).sqrt(), torch.tensor(1.0))
    with torch.no_grad():
        want = unet(x, torch.full((4,), float(k)), class_labels=labels).sample
        got = drift.model(x, tk, class_labels=labels)
        assert torch.allclose(got, want, atol=1e-10)
        lin = drift.transfer(fi.Linear())
        y0 = fi.sample(lin, x, steps=1, method="euler", cond={"class_labels": labels}, denoise=True)
        y1 = fi.sample(lin, x, 1, "euler", cond={"class_labels": torch.tensor([1, 2, 0, 1])}, denoise=True)
    assert torch.isfinite(y0).all() and not torch.allclose(y0, y1)


def test_diffusers_errors(diffusers):
    with pytest.raises(TypeError, match="DDPM-family scheduler"):
        from_diffusers(lambda x, t: x, object())
    with pytest.raises(TypeError, match="model must be callable"):
        from_diffusers(None, diffusers.DDPMScheduler())
    sched = diffusers.DDPMScheduler()
    sched.register_to_config(prediction_type="flow")
    with pytest.raises(ValueError, match="prediction_type must be one of .* got 'flow'"):
        from_diffusers(lambda x, t: x, sched)


# ---- diffusers, flow matching ------------------------------------------------------------------------------------


class FlowMatchGaussian:
    """A perfect diffusers flow-match network: ``noise - x0`` at ``x = (1 - sigma) x0 + sigma noise``,
    ``sigma = timestep / 1000``."""

    def __init__(self, g: Gaussian) -> None:
        self.g = g

    def __call__(self, x, timestep, **cond):
        sigma = timestep.to(torch.float64) / 1000
        noise, x0 = self.g.denoisers(x, sigma, 1 - sigma)
        return SimpleNamespace(sample=noise - x0)


def test_flow_match_scheduler_shift_grid_and_loop(gen, diffusers):
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    model = FlowMatchGaussian(gaussian())
    drift = from_diffusers(model, sched)
    assert isinstance(drift.schedule, fi.Linear) and drift.prediction == "velocity"
    assert drift.noise_range == pytest.approx((sched.sigma_min / (1 - sched.sigma_min), math.inf))
    grid = flow_match_time_grid(sched, 10)
    ref = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    ref.set_timesteps(11)
    assert torch.allclose(grid, 1 - ref.sigmas[:-1].double(), atol=0) and grid[0] == 0
    assert sched.sigmas.numel() == 1000  # the scheduler given is not modified
    z = torch.randn(BATCH, DIM, generator=gen)
    ours, want = run(drift, z, time_grid=grid, denoise=True, target=gaussian())
    fine, fine_want = run(drift, z, time_grid=flow_match_time_grid(sched, 40), denoise=True, target=gaussian())
    assert rel(ours, want) < 1e-3 and rel(fine, fine_want) < rel(ours, want) / 16  # the solver's error
    # diffusers' own Euler loop, 1000 steps from the same z, to the same exact endpoint (first order)
    ref.set_timesteps(1000)
    x = z
    for k in ref.timesteps:
        x = ref.step(model(x, k.expand(BATCH)).sample, k, x).prev_sample
    full = exact_flow(gaussian(), fi.Linear(), 0.0, 1.0, z)
    assert rel(x, full) < 1e-2 and rel(ours, full) < 1e-2  # ours ends at sigma_min, then denoises
    out, want = run(drift.transfer(fi.Trig()), z, steps=10, target=gaussian(), denoise=True)
    assert rel(out, want) < 1e-4


def test_flow_match_time_grid_errors(diffusers):
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        flow_match_time_grid(diffusers.FlowMatchEulerDiscreteScheduler(), 0)
    with pytest.raises(TypeError, match="FlowMatch"):
        flow_match_time_grid(diffusers.DDPMScheduler(), 10)


# ---- flow_matching -----------------------------------------------------------------------------------------------


def _flow_matching_schedulers():
    fm = pytest.importorskip("flow_matching.path.scheduler")
    return {
        "condot": fm.CondOTScheduler(),
        "poly2": fm.PolynomialConvexScheduler(2.0),
        "vp": fm.VPScheduler(),
        "linear_vp": fm.LinearVPScheduler(),
        "cosine": fm.CosineScheduler(),
    }


@pytest.mark.parametrize("name", ["condot", "poly2", "vp", "linear_vp", "cosine"])
def test_flow_matching_every_scheduler(name, gen):
    pytest.importorskip("flow_matching")
    from flow_matching.solver import ODESolver
    from flow_matching.utils import ModelWrapper

    scheduler = _flow_matching_schedulers()[name]

    class Velocity(ModelWrapper):
        """flow_matching's convention: x_t = sigma_t x_0 + alpha_t x_1, u = d_sigma x_0^ + d_alpha x_1^."""

        def __init__(self, g):
            super().__init__(None)
            self.g = g

        def forward(self, x, t, **extras):
            s = scheduler(t)
            x0, x1 = self.g.denoisers(x, s.sigma_t, s.alpha_t)
            return s.d_sigma_t * x0 + s.d_alpha_t * x1

    g = gaussian()
    model = Velocity(g)
    drift = from_flow_matching(model, scheduler)
    if name == "vp":
        s0 = scheduler(torch.tensor(0.0))
        assert drift.noise_range == pytest.approx((0.0, float(s0.sigma_t / s0.alpha_t)), rel=1e-12)
    else:
        assert drift.noise_range is None
    z = torch.randn(BATCH, DIM, generator=gen)
    # their solver and ours on their own clock, from z at t = 0 to t = 0.999
    t1 = 1 - 1e-3
    theirs = ODESolver(velocity_model=model).sample(
        x_init=z, step_size=1e-2, method="rk4", time_grid=torch.tensor([0.0, t1])
    )
    ours, want = run(drift, z, steps=40, t_min=0.0, t_max=t1, start="state", target=g)
    assert rel(ours, want) < 2e-6 and rel(theirs, want) < 1e-7
    # transferred to Linear (default ends from the noise range): 10 steps beat 40 on their clock
    out, want = run(drift.transfer(fi.Linear()), z, steps=10, target=g)
    assert rel(out, want) < 1e-6


def test_flow_matching_schedule_maps_and_path():
    fm = _flow_matching_schedulers()
    from flow_matching.path import AffineProbPath

    assert isinstance(from_flow_matching(lambda x, t: x, fm["condot"]).schedule, fi.Linear)
    assert isinstance(from_flow_matching(lambda x, t: x, fm["cosine"]).schedule, fi.Trig)
    poly = from_flow_matching(lambda x, t: x, AffineProbPath(fm["poly2"])).schedule
    t = torch.linspace(0, 1, 11)
    s = poly(t)
    assert torch.allclose(s.beta, t**2) and torch.allclose(s.alpha, 1 - t**2) and torch.allclose(s.dbeta, 2 * t)
    assert torch.allclose(poly.invert_ratio(s.alpha, s.beta), t)
    lvp = from_flow_matching(lambda x, t: x, fm["linear_vp"]).schedule
    tm = t[1:-1]
    sm = lvp(tm)
    assert torch.allclose(lvp.invert_ratio(sm.alpha, sm.beta), tm, atol=1e-12)
    with pytest.raises(ValueError, match="prediction must be"):
        from_flow_matching(lambda x, t: x, fm["condot"], prediction="score!")


# ---- EDM ---------------------------------------------------------------------------------------------------------


def edm_denoiser(g: Gaussian):
    """The exact EDM denoiser ``D(x, sigma) = E[x0 | x0 + sigma n = x]`` of ``g``, sigma shaped (B,)."""

    def D(x, sigma, **cond):
        s2 = sigma.reshape(-1, 1) ** 2
        return g.mean + VAR / (VAR + s2) * (x - g.mean)

    return D


@pytest.mark.parametrize("target", ["linear", "lipschitz"])
def test_edm_exact(target, gen):
    g = gaussian(centred=target == "lipschitz")
    drift = from_edm(edm_denoiser(g), 0.002, 80.0)
    assert drift.noise_range == (0.002, 80.0) and drift.prediction == "x1"
    schedule = fi.Linear() if target == "linear" else fi.LipschitzOptimal(VAR)
    out, want = run(drift.transfer(schedule), torch.randn(BATCH, DIM, generator=gen), steps=10, target=g, denoise=True)
    assert rel(out, want) < 2e-4


def test_edm_round_trip_and_errors(gen):
    g = gaussian()
    D = edm_denoiser(g)
    drift = from_edm(D, 0.002, 80.0)
    for sigma in (0.002, 0.5, 80.0):
        beta = 1 / math.sqrt(1 + sigma**2)
        x_edm = g.sample(BATCH, generator=gen) + sigma * torch.randn(BATCH, DIM, generator=gen)
        t = fi.Trig().invert_ratio(torch.tensor(sigma), torch.tensor(1.0))
        assert rel(drift.x1(beta * x_edm, t), D(x_edm, torch.full((BATCH,), sigma))) < 1e-12
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        from_edm(D, 80.0, 0.002)
    with pytest.raises(ValueError, match="sigma_max < inf"):
        from_edm(D, 0.0, math.inf)
    with pytest.raises(TypeError, match="sigma_min must be a real number"):
        from_edm(D, "0.002", 80.0)


def test_adapters_reachable_from_the_package():
    assert fi.adapters.from_diffusers is from_diffusers and "adapters" in fi.__all__
