"""PDE data engine: Gaussian random fields and stochastic Navier-Stokes (C++ solvers with torch twins).

See docs/pde.md for how each dataset is generated and where its parameters come from.
"""

from .fields import GaussianField
from .navier_stokes import NavierStokes2D, energy_spectrum, enstrophy_spectrum, ns_step_ref

# Allen-Cahn (fastinterp/pde/allen_cahn.py) is developed alongside; its names join __all__ when it lands.
__all__ = ["GaussianField", "NavierStokes2D", "energy_spectrum", "enstrophy_spectrum", "ns_step_ref"]
