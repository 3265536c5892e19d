"""Real diffusers architectures through the adapters (issue 15, item 4).

A class-conditional ``UNet2DModel`` (``v_prediction``) and a one-layer ``DiTTransformer2DModel`` (``epsilon``),
random-initialised from tiny configs (no hub downloads), float32, adapted by ``from_diffusers`` under a
``DDPMScheduler``, transferred to ``Linear`` and ``LipschitzOptimal(0.5)`` and sampled with classifier-free guidance
on every backend: each agrees with the eager reference within float32 rounding, guidance ``w = 0`` / ``w = 1`` are the
unconditional / conditional runs, and the compiled backend traces the whole run with ``fullgraph=True`` and no graph
break. ``graph`` is CUDA-only and skips on the CPU; the inductor compile is ``slow`` (minutes on a 2-core CPU).
"""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch

import fastinterp as fi
from fastinterp.adapters import from_diffusers

diffusers = pytest.importorskip("diffusers")

BATCH, NULL = 3, 2  # labels 0 and 1 are the classes, 2 the null class (both models embed 3 labels)
LABELS = torch.tensor([0, 1, 0])
#: float32 agreement between backends (observed up to 1.3e-5 under LipschitzOptimal, 7e-7 under Linear)
TOL = 1e-4
SCHEDULES = {"Linear": fi.Linear, "LipschitzOptimal": functools.partial(fi.LipschitzOptimal, 0.5)}


def unet() -> torch.nn.Module:
    return diffusers.UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4, num_class_embeds=3,
    )  # fmt: skip


def dit() -> torch.nn.Module:
    # num_embeds_ada_norm classes plus the null class its label embedding adds for classifier-free guidance
    return diffusers.DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=3, out_channels=3, num_layers=1, sample_size=8,
        patch_size=2, num_embeds_ada_norm=2,
    )  # fmt: skip


#: architecture -> (builder, the prediction type it is trained with)
ARCHS = {"unet": (unet, "v_prediction"), "dit": (dit, "epsilon")}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny ops on shared cores (conftest.py)


@functools.cache
def model(arch: str) -> torch.nn.Module:
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # built in float32 (the tests' default is float64)
    try:
        with torch.random.fork_rng():  # seeded weights, the global generator left as it was
            torch.manual_seed(0)
            return ARCHS[arch][0]().eval().requires_grad_(False)
    finally:
        torch.set_default_dtype(old)


def drift(arch: str, schedule: str | None = None, device: str = "cpu") -> fi.Drift:
    m = model(arch) if device == "cpu" else copy.deepcopy(model(arch)).to(device)
    out = from_diffusers(m, diffusers.DDPMScheduler(prediction_type=ARCHS[arch][1]))
    return out if schedule is None else out.transfer(SCHEDULES[schedule]())


def noise(device: str = "cpu") -> torch.Tensor:
    return torch.randn(BATCH, 3, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float32).to(device)


def guided(device: str = "cpu", w: float = 2.0) -> dict:
    labels = LABELS.to(device)
    return {
        "cond": {"class_labels": labels},
        "guidance": w,
        "null_cond": {"class_labels": torch.tensor([NULL]).to(device)},
    }


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def run(d: fi.Drift, z: torch.Tensor, backend: str, **options) -> torch.Tensor:
    with torch.no_grad():
        return fi.sample(d, z, steps=3, denoise=True, backend=backend, **options)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_adapter_calls_the_model_at_its_training_timesteps(arch):
    """At the Trig time of a table timestep the adapted model is the network's own output (v scaled by -pi/2)."""
    d, m, z = drift(arch), model(arch), noise()
    sched = diffusers.DDPMScheduler(prediction_type=ARCHS[arch][1])
    assert d.prediction == {"v_prediction": "velocity", "epsilon": "noise"}[ARCHS[arch][1]]
    abar = sched.alphas_cumprod.double()
    for k in (0, 321, 999):
        tk = fi.Trig().invert_ratio(((1 - abar[k]) / abar[k]).sqrt(), torch.tensor(1.0, dtype=torch.float64))
        with torch.no_grad():
            want = m(z, torch.full((BATCH,), float(k)), class_labels=LABELS).sample
            got = d.model(z, tk.to(torch.float32), class_labels=LABELS)
        factor = -0.5 * math.pi if ARCHS[arch][1] == "v_prediction" else 1.0
        assert got.shape == z.shape and rel(got, factor * want) < 1e-5, k


@pytest.mark.parametrize("backend", ["fused", "graph"])
@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_backends_agree_with_eager_under_guidance(arch, schedule, backend):
    """Class-conditional guided sampling: the fast backend is the eager reference to float32 rounding."""
    device = "cpu"
    if backend == "graph":
        if not torch.cuda.is_available():
            pytest.skip("the graph backend is CUDA-only")
        device = "cuda"
    d, z = drift(arch, schedule, device), noise(device)
    want = run(d, z, "eager", **guided(device))
    got = run(d, z, backend, **guided(device))
    assert got.shape == z.shape and got.dtype == torch.float32 and torch.isfinite(got).all()
    assert rel(got, want) < TOL
    # the guidance acts: the unguided conditional run is a different sample
    assert rel(run(d, z, "eager", cond={"class_labels": LABELS.to(device)}), want) > 1e-3


@pytest.mark.parametrize("arch", list(ARCHS))
def test_guidance_zero_is_unconditional_and_one_conditional(arch):
    d, z = drift(arch, "Linear"), noise()
    cond = run(d, z, "eager", cond={"class_labels": LABELS})
    null = run(d, z, "eager", cond={"class_labels": torch.full((BATCH,), NULL)})
    assert rel(cond, null) > 1e-3  # the labels matter, so the checks below can fail
    # one doubled-batch call against single-batch calls: equal up to the batch size's effect on the kernels
    assert rel(run(d, z, "eager", **guided(w=0.0)), null) < 1e-5
    assert rel(run(d, z, "eager", **guided(w=1.0)), cond) < 1e-5


@pytest.fixture
def dynamo_only(monkeypatch):
    """fastinterp's compile backend with dynamo's ``eager`` backend instead of inductor (``fullgraph=True`` kept):
    the traced graph runs as is. Its artefacts are dropped afterwards so no other test finds them."""
    from fastinterp.sampling import compiled

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    yield
    compiled.cache_clear()


def _no_graph_breaks(d: fi.Drift, z: torch.Tensor, **options) -> torch.Tensor:
    """A compiled guided run (``fullgraph=True``: a break raises) with dynamo's graph-break counter checked too."""
    from torch._dynamo.utils import counters

    from fastinterp.sampling import compiled

    compiled.cache_clear()
    torch._dynamo.reset()
    counters.clear()
    out = run(d, z, "compile", **guided(), **options)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] >= 1  # something was compiled
    return out


@pytest.mark.parametrize("arch", list(ARCHS))
def test_compile_traces_fullgraph_without_graph_breaks(arch, dynamo_only):
    """The guided run traces with ``fullgraph=True`` and no graph break (dynamo only, no inductor)."""
    d, z = drift(arch, "Linear"), noise()
    out = _no_graph_breaks(d, z, method="euler")
    assert rel(out, run(d, z, "eager", method="euler", **guided())) < TOL


@pytest.mark.slow  # inductor compiles of a UNet and a DiT: minutes on a 2-core CPU
@pytest.mark.parametrize("arch", list(ARCHS))
def test_compile_backend_inductor_agrees_with_eager(arch):
    """``backend="compile"`` (inductor, ``fullgraph=True``) under both schedules: no graph break, eager's result."""
    z = noise()
    for schedule in SCHEDULES:  # the second schedule reuses the graph: the coefficients are inputs
        d = drift(arch, schedule)
        out = _no_graph_breaks(d, z) if schedule == "Linear" else run(d, z, "compile", **guided())
        assert out.shape == z.shape and torch.isfinite(out).all()
        assert rel(out, run(d, z, "eager", **guided())) < TOL
