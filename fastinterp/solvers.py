"""Explicit Runge-Kutta solvers for the probability-flow ODE, in a name registry.

Each solver is a Butcher tableau ``(c, a, b)``: stage ``i`` evaluates ``f`` at time ``t + c_i h`` and state
``x + h sum_j a_ij k_j``, and the step returns ``x + h sum_i b_i k_i``. Every stage input is a fixed linear
combination of the step's start state and earlier stage outputs, the property the fused kernels exploit.

=========  ======  ======  ==============================================================
name       order   stages  tableau
=========  ======  ======  ==============================================================
euler      1       1       forward Euler
midpoint   2       2       explicit midpoint
heun       2       2       Heun (trapezoidal predictor-corrector)
heun3      3       3       Heun's third-order method ``(k1 + 3 k3) / 4``, stages at 0, 1/3, 2/3 — torchdiffeq's
                           and flow_matching's ``heun3``
rk3        3       3       Kutta's third-order method ``(k1 + 4 k2 + k3) / 6``, stages at 0, 1/2, 1
rk4        4       4       classical RK4, ``(k1 + 2 k2 + 2 k3 + k4) / 6``
rk4_38     4       4       Kutta's 3/8 rule ``(k1 + 3 k2 + 3 k3 + k4) / 8``, stages at 0, 1/3, 2/3, 1 —
                           torchdiffeq's ``rk4`` (what the Lipschitz paper's code calls "RK4")
=========  ======  ======  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

__all__ = ["SOLVERS", "ExplicitRK", "get_solver"]


@dataclass(frozen=True)
class ExplicitRK:
    """An explicit Runge-Kutta method given by its Butcher tableau.

    Attributes:
        name: registry name.
        order: classical order of accuracy.
        c: stage times as fractions of the step, ``c[0] = 0``.
        a: lower-triangular stage weights, ``a[i]`` has ``i`` entries.
        b: final combination weights, summing to 1.
    """

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]

    @property
    def stages(self) -> int:
        """Model evaluations per step."""
        return len(self.b)

    def step(self, f: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor, h: Tensor) -> Tensor:
        """One step ``x(t) -> x(t + h)`` of ``dx/dt = f(x, t)``.

        Args:
            f: the vector field, ``f(x, t)`` shaped like ``x``.
            x: state at ``t``, shaped ``(B, ...)``.
            t, h: 0-d tensors (passing tensors, not floats, keeps compiled graphs free of recompiles).
        """
        ks: list[Tensor] = []
        for i in range(self.stages):
            xi = x
            for aij, kj in zip(self.a[i], ks, strict=True):
                if aij != 0.0:
                    xi = xi + (aij * h) * kj
            ti = t + self.c[i] * h if self.c[i] != 0.0 else t
            ks.append(f(xi, ti))
        out = x
        for bi, ki in zip(self.b, ks, strict=True):
            if bi != 0.0:
                out = out + (bi * h) * ki
        return out


SOLVERS: dict[str, ExplicitRK] = {
    s.name: s
    for s in (
        ExplicitRK("euler", 1, (0.0,), ((),), (1.0,)),
        ExplicitRK("midpoint", 2, (0.0, 0.5), ((), (0.5,)), (0.0, 1.0)),
        ExplicitRK("heun", 2, (0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),
        ExplicitRK("heun3", 3, (0.0, 1 / 3, 2 / 3), ((), (1 / 3,), (0.0, 2 / 3)), (1 / 4, 0.0, 3 / 4)),
        ExplicitRK("rk3", 3, (0.0, 0.5, 1.0), ((), (0.5,), (-1.0, 2.0)), (1 / 6, 2 / 3, 1 / 6)),
        ExplicitRK(
            "rk4", 4, (0.0, 0.5, 0.5, 1.0), ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6)
        ),
        ExplicitRK(
            "rk4_38",
            4,
            (0.0, 1 / 3, 2 / 3, 1.0),
            ((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
            (1 / 8, 3 / 8, 3 / 8, 1 / 8),
        ),
    )
}


def get_solver(method: str | ExplicitRK) -> ExplicitRK:
    """The solver registered as ``method`` (or ``method`` itself if it is already a solver)."""
    if isinstance(method, ExplicitRK):
        return method
    try:
        return SOLVERS[method]
    except (KeyError, TypeError):
        raise ValueError(f"method must be one of {sorted(SOLVERS)}, got {method!r}") from None
