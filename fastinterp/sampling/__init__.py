"""Sampling: integrate a drift from ``t_min`` to ``t_max`` with an ODE solver or Euler-Maruyama.

``steps`` counts the intervals of the time grid; the number of function evaluations (NFE) is
``steps x stages`` (plus one with ``denoise=True``), see :func:`nfe`.

=================  ====================================================================================
module             what it holds
=================  ====================================================================================
``plan``           :func:`make_plan`, the one place options are validated; the float64 grid and the
                   :class:`CoefficientTable` (the drift unfolded through its transfers)
``layout``         :class:`StageLayout`: the buffers of the fused updates and their matrices (ODE, SDE,
                   guidance)
``conditioning``   ``cond`` / ``guidance`` / ``null_cond``, validated per call
``eager``          the reference loops
``fused``          one fused update per model evaluation
``compiled``       ``torch.compile`` of whole chunks of the loop
``graph``          CUDA graphs of the fused loop
``sampler``        :class:`Sampler` (chooses the backend), :func:`sample`, :func:`sample_sde`
=================  ====================================================================================
"""

from .layout import StageLayout, stage_matrices
from .plan import CoefficientTable, Plan, build_table, make_plan, nfe, time_grid
from .sampler import BACKENDS, Sampler, sample, sample_sde

__all__ = [
    "BACKENDS",
    "CoefficientTable",
    "Plan",
    "Sampler",
    "StageLayout",
    "build_table",
    "make_plan",
    "nfe",
    "sample",
    "sample_sde",
    "stage_matrices",
    "time_grid",
]
