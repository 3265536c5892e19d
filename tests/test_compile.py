"""torch.compile hygiene of one solver step with the model inside (CPU, inductor)."""

import torch
import torch._dynamo
import torch._dynamo.testing
from torch._dynamo.utils import counters

import fastinterp as fi


def test_one_rk4_step_compiles_fullgraph_without_recompiles(gen):
    torch._dynamo.reset()
    counters.clear()
    ones = torch.ones(8)
    target = fi.targets.GaussianMixture(torch.stack([ones, -ones]), torch.tensor([0.3, 0.7]), 1.0)
    drift = target.drift(fi.Linear(), prediction="velocity").transfer(fi.LipschitzOptimal(1e-3))
    solver = fi.get_solver("rk4")

    def step(x, t, h):
        return solver.step(drift.velocity, x, t, h)

    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    compiled = torch.compile(step, backend=counter, fullgraph=True)  # fullgraph: a graph break would raise
    x = torch.randn(16, 8, generator=gen)
    backend_calls = None
    for grid in (fi.time_grid(6, 1e-3, 1 - 1e-3), fi.time_grid(6, 0.2, 0.7), fi.time_grid(6, 0.01, 0.5)):
        for i in range(3):
            t, h = grid[i], grid[i + 1] - grid[i]
            torch.testing.assert_close(compiled(x, t, h), step(x, t, h), rtol=1e-10, atol=1e-12)
            if backend_calls is None:
                # dynamo may restart its analysis once inside the first compile (0-d CPU tensors); count after it
                backend_calls = counter.frame_count
    assert counter.frame_count == backend_calls  # new time values never recompile
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
