"""Fused kernels, each beside its plain-torch twin (``*_ref``) and registered as a torch custom op.

The stage update :func:`lincomb` runs as a Triton kernel on CUDA and as :func:`lincomb_cpu` in the native core on
the CPU (``HAS_NATIVE``); :func:`lincomb_ref` is the twin everywhere else and the tests' oracle.
"""

from __future__ import annotations

import os

import torch

from .lincomb import (
    HAS_NATIVE,
    HAS_TRITON,
    MAX_INPUTS,
    MAX_OUTPUTS,
    lincomb,
    lincomb_cpu,
    lincomb_op,
    lincomb_ref,
)

__all__ = [
    "HAS_NATIVE",
    "HAS_TRITON",
    "MAX_INPUTS",
    "MAX_OUTPUTS",
    "kernels_run_on",
    "lincomb",
    "lincomb_cpu",
    "lincomb_op",
    "lincomb_ref",
]


def kernels_run_on(device: torch.device) -> bool:
    """Whether the Triton kernels can run on ``device``: CUDA, or any device under ``TRITON_INTERPRET=1``."""
    if not HAS_TRITON:
        return False
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
