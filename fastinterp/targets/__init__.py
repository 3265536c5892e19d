"""Analytic targets: distributions with exact denoisers, hence exact drifts under every schedule.

They are the test oracles and benchmark workloads of fastinterp: ``target.drift(schedule)`` is a
:class:`~fastinterp.Drift` whose model is exact (by default it predicts the velocity ``alpha' z^ + beta' x1^``
from both closed-form denoisers), usable anywhere a trained network would be.
"""

from .base import Target
from .gaussian import Gaussian
from .mixture import GaussianMixture
from .random_field import GaussianRandomField

__all__ = ["Gaussian", "GaussianMixture", "GaussianRandomField", "Target"]
