"""A time-conditioned MLP for vector data ``(B, d)``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._utils import check_int
from .embedding import time_features


class MLP(nn.Module):
    """``model(x, t)`` for ``x`` shaped ``(B, dim)``: SiLU MLP on ``[x, time features]``.

    Args:
        dim: data dimension.
        hidden: hidden width.
        depth: number of hidden layers.
        time_dim: width of the sinusoidal time features.
    """

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, time_dim: int = 32) -> None:
        super().__init__()
        check_int("dim", dim, 1)
        check_int("hidden", hidden, 1)
        check_int("depth", depth, 1)
        if check_int("time_dim", time_dim, 2) % 2:
            raise ValueError(f"time_dim must be even (sine and cosine features), got {time_dim}")
        self.config = {"name": "mlp", "dim": dim, "hidden": hidden, "depth": depth, "time_dim": time_dim}
        layers: list[nn.Module] = [nn.Linear(dim + time_dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)
        self.time_dim = time_dim

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        dim = self.config["dim"]
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(f"MLP(dim={dim}) takes x shaped (batch, {dim}), got {tuple(x.shape)}")
        feats = time_features(torch.as_tensor(t, dtype=x.dtype, device=x.device), x.shape[0], self.time_dim)
        return self.net(torch.cat([x, feats], dim=1))
