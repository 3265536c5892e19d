"""Sinusoidal time features shared by the networks."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def time_features(t: Tensor, batch: int, width: int) -> Tensor:
    """Sinusoidal features of ``t`` (0-d or ``(B,)``) shaped ``(B, width)``, frequencies ``2 pi 2^k``-spaced."""
    if t.numel() != 1 and t.numel() != batch:
        raise ValueError(f"t must be one time or one per sample, shaped () or ({batch},), got {tuple(t.shape)}")
    t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)
    half = width // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), half, device=t.device, dtype=t.dtype))
    angles = 2 * math.pi * t[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
