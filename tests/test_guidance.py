"""Conditioning and classifier-free guidance on every backend, against exact answers in float64."""

import pytest
import torch
from torch._dynamo.utils import counters

import fastinterp as fi

CUDA = torch.cuda.is_available()
BACKENDS = ["eager", "fused", "compile"] + (["graph"] if CUDA else [])
D, K = 8, 3


def _means():
    g = torch.Generator().manual_seed(7)
    return 2.0 * torch.randn(K, D, generator=g, dtype=torch.float64)


class ClassConditional(torch.nn.Module):
    """The exact class-conditional model of Gaussian classes N(m_k, s_k^2 I) under the linear schedule: label k in
    0..K-1 gives class k's exact prediction, the null label K that of N(0, I). A few tensor ops (a gather and the
    closed-form denoiser), so it compiles quickly as one graph."""

    def __init__(self, prediction):
        super().__init__()
        self.prediction = prediction
        self.means = torch.cat([_means(), torch.zeros(1, D, dtype=torch.float64)])
        self.var = torch.tensor([0.5, 0.3, 0.8, 1.0], dtype=torch.float64)
        self.parts = [
            fi.targets.GaussianMixture(self.means[k : k + 1], torch.ones(1), self.var[k : k + 1]) for k in range(K)
        ]

    def forward(self, x, t, label, scale=1.0):
        a, b = 1 - t, t
        m, s2 = self.means.to(x.dtype)[label], self.var.to(x.dtype)[label].unsqueeze(-1)
        x1 = m + (b * s2 / (a * a + b * b * s2)) * (x - b * m)
        z = (x - b * x1) / a
        u, w = fi.predictions.prediction_weights(self.prediction, fi.Linear()(t))
        return (u * z + w * x1) * scale


def _drift(prediction="velocity"):
    return fi.Drift(ClassConditional(prediction), fi.Linear(), prediction).transfer(fi.LipschitzOptimal(1e-2))


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("backend", BACKENDS)
def test_conditional_sampling_equals_the_component_drift(backend, gen):
    """cond={"label": k} samples component k exactly: the same run as the component's own exact drift."""
    drift = _drift()
    device = "cuda" if backend == "graph" else "cpu"
    z = torch.randn(6, D, generator=gen).to(device)
    labels = torch.tensor([0, 1, 2, 0, 1, 2], device=device)
    out = fi.Sampler(drift, steps=3, backend=backend)(z, cond={"label": labels})
    for k in range(K):
        part = drift.source.model.parts[k].drift(fi.Linear(), "velocity").transfer(fi.LipschitzOptimal(1e-2))
        ref = fi.sample(part, z[labels == k].cpu(), steps=3)
        assert _rel(out[labels == k].cpu(), ref) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prediction", ["velocity", "noise", "x1"])
def test_guided_sampling_equals_the_hand_guided_model(backend, prediction, gen):
    """Guidance y_u + w (y_c - y_u) in the model's prediction type, before the transfer: exact to 1e-10 against an
    eager float64 loop over a model that forms the same combination itself."""
    drift = _drift(prediction)
    net = drift.source.model
    device = "cuda" if backend == "graph" else "cpu"
    z = torch.randn(5, D, generator=gen).to(device)
    labels = torch.tensor([0, 1, 2, 1, 0], device=device)
    null = torch.full((1,), K, device=device)
    sampler = fi.Sampler(drift, steps=2, backend=backend, denoise=True)
    for w in (3.0, 0.5, 1.0):
        out = sampler(z, cond={"label": labels}, guidance=w, null_cond={"label": null})

        def guided(x, t, w=w):
            yu = net(x, t, null.cpu().expand(x.shape[0]))
            return yu + w * (net(x, t, labels.cpu()) - yu)

        hand = fi.Drift(guided, fi.Linear(), prediction).transfer(fi.LipschitzOptimal(1e-2))
        ref = fi.sample(hand, z.cpu(), steps=2, denoise=True)
        assert _rel(out.cpu(), ref) < 1e-10, w
    assert sampler.backend == backend


def test_guidance_weight_changes_without_recompiling(gen):
    torch._dynamo.reset()
    counters.clear()
    drift = _drift()
    z = torch.randn(4, D, generator=gen)
    labels, null = torch.tensor([0, 1, 2, 0]), torch.tensor([K])
    sampler = fi.Sampler(drift, steps=2, backend="compile")
    for w in (1.0, 2.0, 7.5):
        sampler(z, cond={"label": labels}, guidance=w, null_cond={"label": null})
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters.get("recompiles")


def test_non_tensor_conditioning_is_passed_through(gen):
    drift = _drift()
    z = torch.randn(3, D, generator=gen)
    labels = torch.tensor([0, 1, 2])
    ref = fi.Sampler(drift, steps=3, backend="eager")(z, cond={"label": labels})  # scale 1
    for backend in ("fused", "compile"):
        eager = fi.Sampler(drift, steps=3, backend="eager")(z, cond={"label": labels, "scale": 2.0})
        out = fi.Sampler(drift, steps=3, backend=backend)(z, cond={"label": labels, "scale": 2.0})
        assert _rel(out, eager) < 1e-12
        assert _rel(eager, ref) > 1e-3  # the argument changed the run


def test_sample_and_sample_sde_take_conditioning(gen):
    drift = _drift()
    z = torch.randn(4, D, generator=gen)
    cond = {"label": torch.tensor([0, 1, 2, 0])}
    kw = dict(cond=cond, guidance=2.0, null_cond={"label": torch.tensor([K])})
    a = fi.sample(drift, z, steps=4, **kw)
    b = fi.sample(drift, z, steps=4, backend="fused", **kw)
    assert _rel(b, a) < 1e-12
    s1 = fi.sample_sde(drift, z, steps=20, t_min=0.05, generator=torch.Generator().manual_seed(1), **kw)
    s2 = fi.sample_sde(
        drift, z, steps=20, t_min=0.05, generator=torch.Generator().manual_seed(1), backend="fused", **kw
    )
    assert _rel(s2, s1) < 1e-12


def test_conditioning_errors(gen):
    drift = _drift()
    z = torch.randn(4, D, generator=gen)
    sampler = fi.Sampler(drift, steps=2, backend="fused")
    labels = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="needs both cond and null_cond"):
        sampler(z, cond={"label": labels}, guidance=2.0)
    with pytest.raises(ValueError, match="null_cond is only used with guidance"):
        sampler(z, cond={"label": labels}, null_cond={"label": labels})
    with pytest.raises(ValueError, match=r"cond\['label'\] must be batch-first with batch 4"):
        sampler(z, cond={"label": labels[:3]})
    with pytest.raises(ValueError, match="same keys"):
        sampler(z, cond={"label": labels}, guidance=1.0, null_cond={"lbl": labels})
    with pytest.raises(TypeError, match="cond must be a dict"):
        sampler(z, cond=[labels])
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        sampler(z, cond={"label": labels}, guidance=float("nan"), null_cond={"label": labels})
    with pytest.raises(ValueError, match="may not set 't'"):
        sampler(z, cond={"t": labels})
    with pytest.raises(TypeError, match="hashable"):
        sampler(z, cond={"label": labels, "extra": [1, 2]})
