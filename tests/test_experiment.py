"""``fastinterp experiment``: the pipeline on the tiny preset, the Goals logic, floor consistency, bad inputs."""

import json
import math

import pytest
import torch

from fastinterp import cli
from fastinterp import experiment as E
from fastinterp.drift import Drift
from fastinterp.models import UNet
from fastinterp.sampling import sample
from fastinterp.schedules import Linear, LipschitzOptimal


def _report(**changes) -> E.ExperimentReport:
    values = dict(dataset="ac", preset="cpu", n=32, lam=3e-4, lam_base=9e-3, sample_steps=10, floor_steps=200,
                  error_linear=0.31, error_lipschitz=0.14, floor_linear=0.1, floor_lipschitz=0.1,
                  floor_agreement=1e-3, gauss_linear=0.03, gauss_lipschitz=0.03, gauss_floor=0.03, final_loss=1.0,
                  parameters=1000, seconds={"total": 10.0}, cpu_seconds=100.0, load_average=(1.0, 1.0))  # fmt: skip
    return E.ExperimentReport(**{**values, **changes})


@pytest.mark.parametrize("normalise", ["top", "std"])
def test_tiny_pipeline_end_to_end(normalise, tmp_path):
    pytest.importorskip("fastinterp._core")
    report = E.run_experiment("ac", preset="tiny", normalise=normalise, out=tmp_path, progress=False)
    for name in ("report.json", "report.txt", "model.pt"):
        assert (tmp_path / name).is_file(), name
    record = json.loads((tmp_path / "report.json").read_text())
    assert record["lam"] == report.lam and len(record["goals"]) == 3 and record["normalise"] == normalise
    if normalise == "top":  # the largest mode at the base's variance: min/base is min/max
        assert report.lam_base == pytest.approx(report.lam, rel=1e-6) and "largest mode" in report.table()
    else:  # pixel-std units: the largest modes sit above the base
        assert 0 < report.lam < report.lam_base < 1 and "pixel std" in report.table()
    errors = [report.error_linear, report.error_lipschitz, report.floor_linear, report.floor_lipschitz]
    assert all(math.isfinite(e) and e >= 0 for e in errors)
    assert report.cpu_seconds > 0 and set(report.seconds) == {"data", "training", "sampling", "total"}
    table = report.table()
    assert "Goals:" in table and table.count("PASS") + table.count("FAIL") == 3
    assert (tmp_path / "report.txt").read_text() == table + "\n"
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["model"]["dim"] == 1 and saved["std"] == report.scale > 0


def test_goals_fail_when_the_numbers_say_so():
    assert [g.passed for g in E.goals(_report())] == [True, True, True]
    assert [g.passed for g in E.goals(_report(error_lipschitz=0.16))] == [False, True, True]
    assert [g.passed for g in E.goals(_report(error_linear=0.29))] == [True, False, True]
    assert [g.passed for g in E.goals(_report(cpu_seconds=1801.0))] == [True, True, False]
    goal = E.goals(_report(error_lipschitz=0.2))[0]
    assert goal.value == pytest.approx(2.0) and goal.line().startswith("  FAIL")
    assert "FAIL  Linear at 10 steps" in _report(error_linear=0.2).table()


def test_floors_of_both_schedules_agree():
    """Through the exact transfer both schedules integrate the same ODE between the same noise levels: many steps
    of each reach the same samples, while 4 steps do not. (The pipeline's own drift, the Gaussian part of
    :class:`Preconditioned`; LipschitzOptimal converges only at first order there, its ``alpha ~ sqrt(1 - t)`` near
    ``t = 1``: 2.6e-3 at 200 steps, 7.8e-4 at 800, while Linear is at 3e-10.)"""
    data = torch.randn(256, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).cumsum(-1) / 4
    schedule = LipschitzOptimal(1e-3)
    drift = Drift(E.gaussian_of(data, "ac"), schedule=Linear(), prediction="x1", noise_range=E._band(schedule))
    z = torch.randn(4, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    runs = {s: (sample(drift, z, steps=s), sample(drift.transfer(schedule), z, steps=s)) for s in (4, 400)}
    gap = {s: float((a - b).norm() / a.norm()) for s, (a, b) in runs.items()}
    assert gap[400] < 3e-3 and gap[4] > 10 * gap[400]


def test_preconditioning_and_gaussian_denoiser_are_exact():
    # eig: E[x1 | (1 - t) z + t x1 = x] = m + t C ((1 - t)^2 I + t^2 C)^-1 (x - t m)
    data = torch.randn(4000, 3, dtype=torch.float64) @ torch.tensor([[2.0, 0, 0], [0.5, 1, 0], [0, 0.3, 0.1]]) + 0.5
    g = E.gaussian_of(data, "ac")
    x, m, C, t = torch.randn(5, 3, dtype=torch.float64), data.mean(0), torch.cov(data.T), 0.7
    want = m + t * (C @ torch.linalg.solve((1 - t) ** 2 * torch.eye(3) + t**2 * C, (x - t * m).T)).T
    torch.testing.assert_close(g(x, torch.tensor(t)), want)
    # fourier: per-mode shrinkage, the identity at t = 1 and the (zero) mean at t = 0
    fields = torch.randn(64, 8, 8, dtype=torch.float64).cumsum(-1)
    g2 = E.gaussian_of(fields - fields.mean(), "grf")
    y = torch.randn(2, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(g2(y, torch.tensor(1.0)), y)
    torch.testing.assert_close(g2(y, torch.tensor(0.0)), torch.zeros_like(y))
    net = UNet(dim=2, base=8, mults=(1, 2), emb=16).double()
    torch.nn.init.normal_(net.out[-1].weight)
    pre = E.Preconditioned(net, g2)
    torch.testing.assert_close(pre(y, torch.tensor(1.0)), y)  # c_out = 0 at t = 1
    torch.testing.assert_close(pre(y, torch.zeros(2)), net(y, torch.zeros(2)))  # G = 0, c_out = c_in = 1 at t = 0


def test_allen_cahn_spectrum_is_the_cosine_transform():
    n, k = 16, 5
    j = torch.arange(n, dtype=torch.float64)
    e = E.spectrum(torch.cos(torch.pi * k * (j + 0.5) / n)[None], "ac")
    assert int(e.argmax()) == k and float(e[k] / e.sum()) > 1 - 1e-12
    assert E.shells("ac", 32) == 31 and E.shells("ns", 32) == 10 and E.shells("grf", 16) == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(dataset="heat"), "dataset must be one of"),
        (dict(dataset="ac", preset="huge"), "preset must be one of"),
        (dict(dataset="ns", res=64), "res applies to dataset 'ac' only"),
        (dict(dataset="ac", res=48), "res must be one of (32, 64, 128) for dataset 'ac', got 48"),
        (dict(dataset="ac", res=True), "res must be one of"),
        (dict(dataset="ac", seed=-1), "seed must be >= 0, got -1"),
        (dict(dataset="ac", normalise="rms"), "normalise must be one of ('top', 'std'), got 'rms'"),
    ],
)
def test_bad_inputs_are_refused_before_any_work(kwargs, message, tmp_path):
    with pytest.raises(ValueError) as exc:
        E.run_experiment(**kwargs, out=tmp_path / "x", progress=False)
    assert message in str(exc.value)
    assert not (tmp_path / "x").exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    afile = tmp_path / "f"
    afile.write_text("")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        E.run_experiment("ac", preset="tiny", out=afile, progress=False)
    with pytest.raises(SystemExit):
        cli.main(["experiment", "ac", "--res", "48"])
    assert "argument --res: invalid choice: 48" in capsys.readouterr().err


def test_units_put_the_largest_mode_at_the_base():
    """``units(..., "top")``: after dividing by ``scale`` the largest covariance eigenvalue is 1 (the base's) and the
    smallest is ``lam*``; ``std``: the pixel std; bad names refused."""
    data = torch.randn(4000, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    data = data * torch.linspace(3.0, 0.05, 8, dtype=torch.float64) + 2.0
    mean, scale, lam, lam_base = E.units(data, "ac", "top")
    ev = torch.linalg.eigvalsh(torch.cov(((data - mean) / scale).T))
    assert float(ev.max()) == pytest.approx(1.0, rel=1e-9) and float(ev.min()) == pytest.approx(lam, rel=1e-9)
    assert lam_base == lam
    _, std, lam_std, base_std = E.units(data, "ac", "std")
    assert (std, lam_std) == (float(data.std()), lam)
    ev_std = torch.linalg.eigvalsh(torch.cov(((data - mean) / std).T))  # min/base in std units: the smallest
    assert base_std == pytest.approx(float(ev_std.min()), rel=1e-9)
    with pytest.raises(ValueError, match="normalise must be one of"):
        E.units(data, "ac", "max")
    with pytest.raises(ValueError, match="dataset must be one of"):
        E.units(data, "heat", "top")
