import math

import pytest
import torch

import fastinterp as fi

ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "heun3": 3, "rk3": 3, "rk4": 4, "rk4_38": 4}


def _gaussian_flow(target, sched, x0, t0, t1):
    """Exact probability-flow map of N(m, diag S): x(t) = b m + sqrt(V(t)/V(t0)) (x0 - b(t0) m), V = a^2 + b^2 S."""
    s0, s1 = sched(torch.tensor(t0)), sched(torch.tensor(t1))
    v0 = s0.alpha**2 + s0.beta**2 * target.var
    v1 = s1.alpha**2 + s1.beta**2 * target.var
    return s1.beta * target.mean + torch.sqrt(v1 / v0) * (x0 - s0.beta * target.mean)


def test_registry_contents():
    assert set(fi.SOLVERS) == set(ORDERS)
    for name, solver in fi.SOLVERS.items():
        assert solver.order == ORDERS[name]
        assert math.isclose(sum(solver.b), 1.0)
        for i, row in enumerate(solver.a):  # consistency: c_i = sum_j a_ij
            assert math.isclose(sum(row), solver.c[i], abs_tol=1e-15)
    assert fi.SOLVERS["rk4_38"].b == (1 / 8, 3 / 8, 3 / 8, 1 / 8)
    assert fi.SOLVERS["rk4"].b == (1 / 6, 1 / 3, 1 / 3, 1 / 6)


@pytest.mark.parametrize("method", sorted(ORDERS))
@pytest.mark.parametrize("sched", [fi.Trig(), fi.LipschitzOptimal(0.05)], ids=repr)
def test_empirical_convergence_order(method, sched, gen):
    target = fi.targets.Gaussian(torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.3, 1.0, 4.0]))
    drift = target.drift(fi.Linear(), prediction="velocity").transfer(sched)
    x0 = torch.randn(16, 3, generator=gen)
    t0, t1 = 0.05, 0.95
    exact = _gaussian_flow(target, sched, x0, t0, t1)
    steps = [16, 32, 64, 128]
    errors = [float((fi.sample(drift, x0, n, method, t0, t1) - exact).abs().max()) for n in steps]
    slope = -torch.linalg.lstsq(
        torch.stack([torch.log(torch.tensor(steps, dtype=torch.float64)), torch.ones(len(steps))], 1),
        torch.log(torch.tensor(errors)).unsqueeze(1),
    ).solution[0, 0]
    assert abs(float(slope) - ORDERS[method]) < 0.3, (errors, float(slope))


def test_step_with_tensor_times_matches_manual_rk4(gen):
    f = lambda x, t: -t * x + torch.sin(x)  # noqa: E731
    x = torch.randn(5, generator=gen)
    t, h = torch.tensor(0.2), torch.tensor(0.1)
    k1 = f(x, t)
    k2 = f(x + h / 2 * k1, t + h / 2)
    k3 = f(x + h / 2 * k2, t + h / 2)
    k4 = f(x + h * k3, t + h)
    torch.testing.assert_close(fi.SOLVERS["rk4"].step(f, x, t, h), x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4))
    k2 = f(x + h / 3 * k1, t + h / 3)
    k3 = f(x + h * (-k1 / 3 + k2), t + 2 * h / 3)
    k4 = f(x + h * (k1 - k2 + k3), t + h)
    torch.testing.assert_close(fi.SOLVERS["rk4_38"].step(f, x, t, h), x + h / 8 * (k1 + 3 * k2 + 3 * k3 + k4))


def test_unknown_method():
    with pytest.raises(ValueError, match="method must be one of"):
        fi.get_solver("rk45")


@pytest.mark.parametrize("method", ["heun3", "rk4_38", "midpoint", "euler"])
def test_matches_torchdiffeq_fixed_grid(method, gen):
    """Our tableaus are torchdiffeq's (flow_matching's ODESolver methods) of the same name (its ``rk4`` is our
    ``rk4_38``), step for step on a fixed grid, in float64."""
    torchdiffeq = pytest.importorskip("torchdiffeq")
    f = lambda t, x: -t * x + torch.sin(x) * torch.cos(3 * t)  # noqa: E731
    x0 = torch.randn(7, generator=gen, dtype=torch.float64)
    grid = torch.linspace(0.1, 0.9, 6, dtype=torch.float64)
    peer = {"rk4_38": "rk4"}.get(method, method)
    ref = torchdiffeq.odeint(f, x0, grid, method=peer)[-1]
    ours = x0
    for t0, t1 in zip(grid[:-1], grid[1:], strict=True):
        ours = fi.SOLVERS[method].step(lambda x, t: f(t, x), ours, t0, t1 - t0)
    torch.testing.assert_close(ours, ref, rtol=1e-13, atol=1e-13)
