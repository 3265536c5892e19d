"""PDE data engine: Gaussian random fields, stochastic Navier-Stokes and stochastic Allen-Cahn (C++ solvers with
torch twins), and the parameter specs (:mod:`fastinterp.pde.spec`).

See docs/pde.md and docs/allen_cahn.md for how each dataset is generated and where its parameters come from.
Names are imported on first use (PEP 562), so ``import fastinterp.pde.spec`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AllenCahn1D",
    "AllenCahnSPDE",
    "DivergedError",
    "GaussianField",
    "NavierStokes2D",
    "PCNState",
    "energy_spectrum",
    "enstrophy_spectrum",
    "ns_step_ref",
]

_HOMES = {
    "AllenCahn1D": "allen_cahn",
    "AllenCahnSPDE": "allen_cahn",
    "PCNState": "allen_cahn",
    "DivergedError": "_common",
    "GaussianField": "fields",
    "NavierStokes2D": "navier_stokes",
    "energy_spectrum": "navier_stokes",
    "enstrophy_spectrum": "navier_stokes",
    "ns_step_ref": "navier_stokes",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
