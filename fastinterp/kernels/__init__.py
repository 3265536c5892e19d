"""Fused Triton kernels, each beside its plain-torch twin (``*_ref``) and registered as a torch custom op."""

from __future__ import annotations

import os

import torch

from .lincomb import HAS_TRITON, lincomb, lincomb_op, lincomb_ref

__all__ = ["HAS_TRITON", "kernels_run_on", "lincomb", "lincomb_op", "lincomb_ref"]


def kernels_run_on(device: torch.device) -> bool:
    """Whether the Triton kernels can run on ``device``: CUDA, or any device under ``TRITON_INTERPRET=1``."""
    if not HAS_TRITON:
        return False
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
