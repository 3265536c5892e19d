"""The eager backend: the reference loops every fast backend is tested against.

Schedules and the transfer map are evaluated at every stage through :meth:`fastinterp.Drift.convert` (nothing
comes from the coefficient tables; building the plan's table once checks that a transfer's source reaches every
stage time, so the per-stage calls skip that check), in the accumulation dtype (float64 for float64 states,
float32 otherwise); the model sees its input in the state's own dtype. Non-finite states are detected without a
host synchronisation per step: the index of the first bad step is tracked on the device and checked once at the
end, and the error names that step and its time.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .conditioning import Conditioning, model_call
from .plan import Plan, accumulation_dtype

__all__ = ["FiniteWatch", "run"]


class FiniteWatch:
    """Remembers, on the device, the first step after which the state stopped being finite."""

    def __init__(self, x: Tensor, enabled: bool) -> None:
        self.enabled = enabled
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=x.device)

    def update(self, x: Tensor, step: int) -> None:
        if self.enabled:
            bad = ~torch.isfinite(x).all()
            self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)

    def raise_if_bad(self, grid: Tensor, what: str, x0: Tensor) -> None:
        if self.enabled:
            i = int(self.first_bad)  # the one host synchronisation of the run
            if i == 0 and not bool(torch.isfinite(x0).all()):  # checked only after a failure: no cost otherwise
                bad = int((~torch.isfinite(x0)).sum())
                raise ValueError(f"{what}: x0 holds {bad} non-finite value(s) (nan or inf) of {x0.numel()}")
            if i >= 0:
                raise FloatingPointError(
                    f"{what}: the state became non-finite in step {i} (t = {float(grid[i]):.6g} -> "
                    f"{float(grid[i + 1]):.6g}); try more steps, a smaller [t_min, t_max] or another schedule"
                )


def run(plan: Plan, x0: Tensor, conditioning: Conditioning | None, generator: torch.Generator | None) -> Tensor:
    """Integrate ``plan`` from ``x0``: its RK solver for the ODE, Euler-Maruyama with ``plan.eps`` for the SDE.

    The SDE draws its Brownian increments as ``torch.randn(x.shape, generator=generator)`` in the accumulation
    dtype, one draw per step: every backend draws them the same way, so a seed gives the same samples on all.
    """
    acc = accumulation_dtype(x0.dtype)
    call = model_call(conditioning, x0.dtype)
    drift, solver = plan.drift, plan.solver
    x = x0.to(acc)
    grid = plan.grid.to(device=x.device, dtype=acc)
    watch = FiniteWatch(x, plan.check_finite)
    plan.table  # noqa: B018 - built once (cached): it checks that a transfer's source reaches every stage time
    if plan.sde:
        eps = plan.eps.to(device=x.device, dtype=acc)
        for i in range(plan.steps):
            t, h = grid[i], grid[i + 1] - grid[i]
            v, s = drift.convert(x, t, ("velocity", "score"), call=call, check=False)
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=acc)
            x = x + (v + eps[i] * s) * h + torch.sqrt(2 * eps[i] * h) * noise
            watch.update(x, i)
        what = "sample_sde"
    else:

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return drift.convert(x, t, ("velocity",), call=call, check=False)[0]

        for i in range(plan.steps):
            x = solver.step(velocity, x, grid[i], grid[i + 1] - grid[i])
            watch.update(x, i)
        what = f"sample(method={solver.name!r})"
    watch.raise_if_bad(grid, what, x0)
    if plan.denoise:
        x = drift.convert(x, grid[-1], ("x1",), call=call)[0]
    return x.to(x0.dtype)
