"""Likely interpolants: paths of high likelihood between samples, and Fréchet means, for any score or density.

ProbGEORCE (Likely Interpolants of Generative Models, arXiv 2510.26266), batched over pairs::

    from fastinterp.geometry import likely_path, frechet_mean
    res = likely_path(a, b, score=target, lam=20.0)   # a, b: (P, *event); res.curves: (P, 101, *event)
    mean = frechet_mean(x, score=target).mean          # x: (K, *event)

Modules: :mod:`.probgeorce` (likely paths), :mod:`.frechet` (means), :mod:`.potentials` (score and log-density
sources), :mod:`.baselines` (gradient descent / Adam on the same energy), :mod:`.noise_space` (paths between samples
of a drift through its noise space), :mod:`.demo` (the ``fastinterp geodesic`` demo).
"""

from .baselines import gradient_descent_path
from .frechet import FrechetMean, frechet_mean
from .noise_space import NoisePath, invert, noise_space_path
from .potentials import Potential, as_potential, radial_gaussian
from .probgeorce import LikelyPath, likely_path

__all__ = [
    "FrechetMean",
    "LikelyPath",
    "NoisePath",
    "Potential",
    "as_potential",
    "frechet_mean",
    "gradient_descent_path",
    "invert",
    "likely_path",
    "noise_space_path",
    "radial_gaussian",
]
