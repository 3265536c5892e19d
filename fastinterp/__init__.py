"""fastinterp: fast, exact samplers for flow-matching and stochastic-interpolant generative models.

The public surface::

    import fastinterp as fi
    fi.Linear(); fi.Trig(); fi.LipschitzOptimal(lam); fi.MixtureOptimal(M)
    d = fi.Drift(model, schedule=fi.Linear(), prediction="velocity").transfer(fi.LipschitzOptimal(1e-5))
    x1 = fi.sample(d, z, steps=10, method="rk4")
    x1 = fi.sample_sde(d, z, steps=100, eps="optimal", generator=gen)
    g = fi.targets.GaussianMixture(means, weights, var)   # exact drifts for tests and benchmarks

Every public name is imported on first use (PEP 562), so ``import fastinterp`` (and the ``fastinterp`` command's
startup, ``--help`` included) does not import torch or triton; ``fi.sample`` or ``from fastinterp import Linear``
import what they need.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from ._version import __version__ as __version__

if TYPE_CHECKING:  # the eager imports, for type checkers and editors
    from . import adapters, datasets, geometry, kernels, models, pde, targets
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

#: Subpackages reached as attributes (``fi.datasets``).
_SUBPACKAGES = ("adapters", "datasets", "geometry", "kernels", "models", "pde", "targets")

#: Every other public name, by the module (relative to the package) that defines it.
_MODULES = {
    "checkpoint": ("load_checkpoint", "save_checkpoint"),
    "diagnostics": ("averaged_lipschitz", "estimate_lam", "jacobian_sq_norm", "lipschitz_profile", "radial_spectrum",
                    "shell_sum", "spectrum_error"),
    "drift": ("Drift",),
    "geometry": ("FrechetMean", "LikelyPath", "frechet_mean", "likely_path"),
    "interpolants": ("GAMMAS", "Interpolant", "interpolant_loss"),
    "likelihood": ("divergence", "log_prob"),
    "predictions": ("PREDICTIONS", "conversion_coefficients"),
    "sampling": ("BACKENDS", "CoefficientTable", "Sampler", "build_table", "nfe", "sample", "sample_sde",
                 "stage_matrices", "time_grid"),
    "schedules": ("Custom", "Linear", "LipschitzOptimal", "MixtureOptimal", "Schedule", "ScheduleOutput", "Tabulated",
                  "Trig"),
    "solvers": ("SOLVERS", "ExplicitRK", "get_solver"),
    "training": ("train",),
    "transfer": ("TransferredModel", "transfer", "transfer_time"),
}  # fmt: skip
_HOMES = {name: module for module, names in _MODULES.items() for name in names}

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
    "adapters",
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


def __getattr__(name: str):
    """Import a public name on first access and keep it in the module's namespace."""
    if name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _HOMES:
        value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    elif name in _MODULES:  # the modules the package imported eagerly before (``fi.schedules``)
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package's module type: importing a submodule whose name is also a public function (``transfer``) must
    not replace the function by the module (the import system sets ``fastinterp.transfer = <module>``)."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == name:
            return  # the module stays in sys.modules; the attribute is the public name it defines
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
