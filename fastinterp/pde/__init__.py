"""PDE data engine: Gaussian random fields, stochastic Navier-Stokes and stochastic Allen-Cahn (C++ solvers with
torch twins).

See docs/pde.md and docs/allen_cahn.md for how each dataset is generated and where its parameters come from.
"""

from ._common import DivergedError
from .allen_cahn import AllenCahn1D, AllenCahnSPDE, PCNState
from .fields import GaussianField
from .navier_stokes import NavierStokes2D, energy_spectrum, enstrophy_spectrum, ns_step_ref

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
