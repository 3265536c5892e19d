"""benchmarks/bench_adapters.py: its references and models are exact, its tables and Goals block print, its timing
loop runs. No accuracy ranking or speed is asserted: that is what the benchmark itself reports."""

import pytest
import torch

import fastinterp as fi
from fastinterp.targets import Gaussian, GaussianMixture

pytest.importorskip("diffusers")
pytest.importorskip("flow_matching")


@pytest.fixture
def bench(load_benchmark):
    return load_benchmark("bench_adapters")


def _as_mixture(g: Gaussian) -> GaussianMixture:
    return GaussianMixture(g.mean.unsqueeze(0), torch.ones(1, dtype=torch.float64), float(g.var.flatten()[0]))


def test_references_agree_with_closed_forms(bench, gen):
    """The RK4 references (the mixture's path) reproduce the Gaussian's closed forms for a one-component mixture."""
    g = bench.targets()["gaussian"][0]
    z = torch.randn(8, bench.DIM, generator=gen)
    closed = bench.ddpm_reference(g, z, 14.6, 0.03)
    assert bench.rel(bench.ddpm_reference(_as_mixture(g), z, 14.6, 0.03, steps=400), closed) < 1e-8
    assert bench.rel(bench.condot_reference(_as_mixture(g), z, steps=200), bench.condot_reference(g, z)) < 1e-8


def test_adapted_fastinterp_converges_to_the_reference(bench, gen):
    """The diffusers epsilon model through from_diffusers, sampled by fi_run, converges to the benchmark's reference:
    the models, the start conversion and the reference describe the same flow."""
    import diffusers

    from fastinterp.adapters import from_diffusers

    table = diffusers.DDPMScheduler(**bench.TRAIN)
    abar = table.alphas_cumprod.double()
    sigmas = torch.sqrt((1 - abar) / abar)
    g, mean, lam = bench.targets()["gaussian"]
    drift = from_diffusers(bench.epsilon_model(g, table), table)
    z = torch.randn(8, bench.DIM, generator=gen)
    ref = bench.ddpm_reference(g, z, float(sigmas[-1]), float(sigmas[0]))
    for label, (schedule, use_mean) in bench.fi_schedules(lam).items():
        for method in bench.FI_METHODS:
            stages = fi.SOLVERS[method].stages
            x, calls = bench.fi_run(drift, schedule, z, 12 * stages + 1, mean if use_mean else None, method)
            assert calls == 12 * stages + 1 and bench.rel(x, ref) < 1e-2, (label, method)  # midpoint: 1.2e-3
        x, calls = bench.fi_run(drift, schedule, z, 81, mean if use_mean else None, "rk4")
        assert calls == 81 and bench.rel(x, ref) < 1e-5, label
    assert bench.fi_run(drift, fi.Linear(), z, 3, None, "rk4") is None  # no RK4 step fits 3 NFE


def test_tables_and_goals_print(bench, capsys):
    columns, results = bench.accuracy_flow_matching([9], 8, 40, lambda line: None)
    assert [c for c in columns if not c.startswith("fi ")] == [f"ODESolver {m}" for m in bench.FM_PEERS]
    goals = bench.accuracy_tables("flow_matching", columns, results, print)
    text = capsys.readouterr().out
    assert "### flow_matching: gaussian" in text and "### flow_matching: mixture" in text
    assert len(goals) == 2 and all(isinstance(ok, bool) for *_, ok in goals)
    assert all(results[name][9][c][1] <= 9 for name in results for c in columns)  # within the NFE budget
    fi_cells = [results[name][9][c] for name in results for c in columns if c.startswith("fi ")]
    assert all(cell[2] in bench.FI_METHODS for cell in fi_cells)  # each fastinterp cell names its best method
    assert "heun3" in text  # at 9 NFE only 3-stage methods use 9 calls: the table shows which won


def test_throughput_loop_counts_equal_nfe(bench):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny UNet on shared cores: more threads only wait for each other
    try:
        names, times, calls, params = bench.throughput(4, 1, 16, ["eager"], 1, 0.0, lambda line: None)
    finally:
        torch.set_num_threads(threads)
    assert names == ["diffusers DPM-Solver++ 2M", "fastinterp eager", "UNet alone (1 NFE)"] and params > 0
    assert calls == {names[0]: 4, names[1]: 4, names[2]: 1}
    assert all(len(times[n]) == 1 and times[n][0] > 0 for n in names)


def test_fewer_calls_picks_the_cheapest_win(bench):
    rows = {
        10: {"fi A": (1e-3, 9, "rk4"), "P": (1e-1, 10, "")},
        50: {"fi A": (1e-6, 49, "rk4"), "P": (5e-3, 50, "")},
        "reference check": (2000, 1e-11),
    }
    assert bench.fewer_calls(rows, ["fi A"], ["P"]) == (("P", 5e-3, 50), ("fi A", 1e-3, 9))
    rows[10]["fi A"] = (1e-2, 9, "rk4")
    rows[50]["fi A"] = (6e-3, 49, "rk4")
    assert bench.fewer_calls(rows, ["fi A"], ["P"]) is None
    rows[50]["fi A"] = (4.99e-3, 49, "rk4")  # a rounding-level win is no win
    assert bench.fewer_calls(rows, ["fi A"], ["P"]) is None
