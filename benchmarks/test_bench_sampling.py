"""Regression suite (pytest-benchmark): ``pytest benchmarks/ --benchmark-only``; compare with --benchmark-compare."""

import pytest
import torch

import fastinterp as fi

pytest.importorskip("pytest_benchmark")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _drift():
    model = lambda x, t: x * (1 - t) - t  # noqa: E731 - overhead-bound on purpose
    return fi.Drift(model, schedule=fi.Linear(), prediction="velocity").transfer(fi.LipschitzOptimal(1e-4))


@pytest.mark.parametrize("n", [10_000, 1_000_000])
@pytest.mark.parametrize("backend", ["eager", "fused", "compile"] + (["graph"] if DEVICE.type == "cuda" else []))
def test_rk4_10_steps(benchmark, backend, n):
    x = torch.randn(n, device=DEVICE)
    sampler = fi.Sampler(_drift(), steps=10, backend=backend, check_finite=False)
    sampler(x)  # compile / capture outside the timing

    def run():
        out = sampler(x)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out

    benchmark(run)
