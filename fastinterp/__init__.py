"""fastinterp: fast, exact samplers for flow-matching and stochastic-interpolant generative models.

The public surface::

    import fastinterp as fi
    fi.Linear(); fi.Trig(); fi.LipschitzOptimal(lam); fi.MixtureOptimal(M)
    d = fi.Drift(model, schedule=fi.Linear(), prediction="velocity").transfer(fi.LipschitzOptimal(1e-5))
    x1 = fi.sample(d, z, steps=10, method="rk4")
    x1 = fi.sample_sde(d, z, steps=100, eps="optimal", generator=gen)
    g = fi.targets.GaussianMixture(means, weights, var)   # exact drifts for tests and benchmarks
"""

from . import datasets, geometry, kernels, models, pde, targets
from ._version import __version__ as __version__
from .checkpoint import load_checkpoint, save_checkpoint
from .diagnostics import (
    averaged_lipschitz,
    estimate_lam,
    jacobian_sq_norm,
    lipschitz_profile,
    radial_spectrum,
    shell_sum,
    spectrum_error,
)
from .drift import Drift
from .geometry import FrechetMean, LikelyPath, frechet_mean, likely_path
from .interpolants import GAMMAS, Interpolant, interpolant_loss
from .likelihood import divergence, log_prob
from .predictions import PREDICTIONS, conversion_coefficients
from .sampling import (
    BACKENDS,
    CoefficientTable,
    Sampler,
    build_table,
    nfe,
    sample,
    sample_sde,
    stage_matrices,
    time_grid,
)
from .schedules import (
    Custom,
    Linear,
    LipschitzOptimal,
    MixtureOptimal,
    Schedule,
    ScheduleOutput,
    Tabulated,
    Trig,
)
from .solvers import SOLVERS, ExplicitRK, get_solver
from .training import train
from .transfer import TransferredModel, transfer, transfer_time

__all__ = [
    "BACKENDS",
    "GAMMAS",
    "PREDICTIONS",
    "SOLVERS",
    "CoefficientTable",
    "Custom",
    "Drift",
    "ExplicitRK",
    "FrechetMean",
    "Interpolant",
    "LikelyPath",
    "Linear",
    "LipschitzOptimal",
    "MixtureOptimal",
    "Sampler",
    "Schedule",
    "ScheduleOutput",
    "Tabulated",
    "TransferredModel",
    "Trig",
    "averaged_lipschitz",
    "build_table",
    "conversion_coefficients",
    "datasets",
    "divergence",
    "estimate_lam",
    "frechet_mean",
    "geometry",
    "get_solver",
    "interpolant_loss",
    "jacobian_sq_norm",
    "kernels",
    "likely_path",
    "lipschitz_profile",
    "load_checkpoint",
    "log_prob",
    "models",
    "nfe",
    "pde",
    "radial_spectrum",
    "sample",
    "sample_sde",
    "save_checkpoint",
    "shell_sum",
    "spectrum_error",
    "stage_matrices",
    "targets",
    "time_grid",
    "train",
    "transfer",
    "transfer_time",
]
