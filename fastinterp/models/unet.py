"""UNets for periodic fields on ``[0, 1]^d``, ``d`` = 1 or 2: circular padding everywhere, time embedding.

Input ``x`` is ``(B, C, *grid)`` or, for one channel, ``(B, *grid)`` (the output has the input's shape). Each
level has two residual blocks (GroupNorm, SiLU, circular 3-point/3x3 convolutions) whose first normalisation is
shifted and scaled by the time embedding; down-sampling halves the grid with a strided convolution, up-sampling
doubles it by nearest-neighbour interpolation followed by a convolution; skips are concatenated.

Every 3-point/3x3 convolution is a :class:`~fastinterp.models.periodic.PeriodicConv1d` / ``PeriodicConv2d``: an
``nn.Conv{1,2}d(padding_mode="circular")`` (same parameters and state-dict keys) whose padding autograd
differentiates as one node (``periodic="fast"``, the default) or torch's own circular path (``"reference"``); both
compute the same function, so the choice is not part of the model's ``config`` and any checkpoint loads into either.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._utils import check_int
from .embedding import time_features
from .mlp import MLP
from .periodic import PeriodicConv1d, PeriodicConv2d, check_periodic

__all__ = ["PRESETS", "UNet", "build_model", "model_from_config"]


def _conv(dim: int, cin: int, cout: int, stride: int = 1) -> nn.Module:
    return (PeriodicConv1d if dim == 1 else PeriodicConv2d)(cin, cout, 3, stride=stride, padding=1)


class _Block(nn.Module):
    def __init__(self, dim: int, cin: int, cout: int, emb: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, cin), cin)
        self.conv1 = _conv(dim, cin, cout)
        self.film = nn.Linear(emb, 2 * cout)
        self.norm2 = nn.GroupNorm(min(8, cout), cout)
        self.conv2 = _conv(dim, cout, cout)
        self.skip = nn.Identity() if cin == cout else (nn.Conv1d if dim == 1 else nn.Conv2d)(cin, cout, 1)
        self.dim = dim

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(self.norm1(x), silu=True)
        scale, shift = self.film(e).reshape(e.shape[0], -1, *([1] * self.dim)).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(h, silu=True)
        return h + self.skip(x)


class UNet(nn.Module):
    """Periodic UNet ``model(x, t)`` (module docstring).

    Args:
        dim: spatial dimensions (1 or 2).
        channels: field channels.
        base: channels of the first level.
        mults: channel multipliers per level (the grid is halved between levels: its size must be divisible by
            ``2^(len(mults) - 1)``).
        emb: width of the time embedding.
        periodic: how the convolutions pad, ``"fast"`` or ``"reference"`` (module docstring; not in ``config``:
            the function is the same). Change it later with :attr:`periodic`.
    """

    def __init__(
        self,
        dim: int = 2,
        channels: int = 1,
        base: int = 32,
        mults: tuple[int, ...] = (1, 2, 2),
        emb: int = 128,
        *,
        periodic: str = "fast",
    ) -> None:
        super().__init__()
        if dim not in (1, 2):
            raise ValueError(f"dim must be 1 or 2, got {dim!r}")
        check_int("channels", channels, 1)
        check_int("base", base, 1)
        if not isinstance(mults, (tuple, list)) or not mults:
            raise ValueError(f"mults must be a non-empty tuple of ints >= 1, got {mults!r}")
        for m in mults:
            check_int("mults entry", m, 1)
        if check_int("emb", emb, 2) % 2:
            raise ValueError(f"emb must be even (sine and cosine features), got {emb}")
        self.config = {"name": "unet", "dim": dim, "channels": channels, "base": base, "mults": list(mults),
                       "emb": emb}  # fmt: skip
        self.dim, self.channels, self.levels = dim, channels, len(mults)
        self.time = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.emb = emb
        self.inp = _conv(dim, channels, base)
        widths = [base * m for m in mults]
        self.down, self.pool = nn.ModuleList(), nn.ModuleList()
        c = base
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList([_Block(dim, c, w, emb), _Block(dim, w, w, emb)]))
            c = w
            if i < len(widths) - 1:
                self.pool.append(_conv(dim, c, c, stride=2))
        self.mid = nn.ModuleList([_Block(dim, c, c, emb), _Block(dim, c, c, emb)])
        self.up, self.upconv = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(widths))):
            w = widths[i]
            self.up.append(nn.ModuleList([_Block(dim, c + w, w, emb), _Block(dim, w, w, emb)]))
            c = w
            if i > 0:
                self.upconv.append(_conv(dim, c, c))
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), _conv(dim, c, channels))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.periodic = periodic

    @property
    def periodic(self) -> str:
        """How the periodic convolutions pad: ``"fast"`` or ``"reference"`` (settable; the module docstring)."""
        return self._periodic

    @periodic.setter
    def periodic(self, mode: str) -> None:
        check_periodic(mode)
        for m in self.modules():
            if isinstance(m, (PeriodicConv1d, PeriodicConv2d)):
                m.fast = mode == "fast"
        self._periodic = mode

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        squeeze = x.ndim == self.dim + 1
        if squeeze:
            x = x.unsqueeze(1)
        if x.ndim != self.dim + 2 or x.shape[1] != self.channels:
            raise ValueError(f"UNet(dim={self.dim}, channels={self.channels}) got input shaped {tuple(x.shape)}")
        factor = 2 ** (self.levels - 1)
        if any(n % factor for n in x.shape[2:]):
            raise ValueError(f"grid {tuple(x.shape[2:])} must be divisible by {factor} for {self.levels} levels")
        e = self.time(time_features(torch.as_tensor(t, dtype=x.dtype, device=x.device), x.shape[0], self.emb))
        h = self.inp(x)
        skips = []
        for i, (b1, b2) in enumerate(self.down):
            h = b2(b1(h, e), e)
            skips.append(h)
            if i < self.levels - 1:
                h = self.pool[i](h)
        h = self.mid[1](self.mid[0](h, e), e)
        for j, (b1, b2) in enumerate(self.up):
            h = b2(b1(torch.cat([h, skips.pop()], dim=1), e), e)
            if j < self.levels - 1:
                h = self.upconv[j](nn.functional.interpolate(h, scale_factor=2, mode="nearest"))
        norm, _, conv = self.out  # GroupNorm, SiLU, convolution: the SiLU runs fused with the convolution's padding
        out = conv(norm(h), silu=True)
        return out.squeeze(1) if squeeze else out


#: Named sizes: ``tiny`` for CPU tests, ``1d-1m`` and ``2d-2m`` near the paper's ~1M (1-D) and ~2M (2-D) models.
PRESETS: dict[str, dict] = {
    "tiny-1d": {"name": "unet", "dim": 1, "base": 8, "mults": [1, 2], "emb": 32},
    "tiny-2d": {"name": "unet", "dim": 2, "base": 8, "mults": [1, 2], "emb": 32},
    "small-2d": {"name": "unet", "dim": 2, "base": 16, "mults": [1, 2, 2], "emb": 64},
    "1d-1m": {"name": "unet", "dim": 1, "base": 48, "mults": [1, 2, 2], "emb": 128},
    "2d-2m": {"name": "unet", "dim": 2, "base": 40, "mults": [1, 2, 2], "emb": 128},
}


def model_from_config(config: dict) -> nn.Module:
    """Rebuild a network from its ``config`` dict (as stored in checkpoints)."""
    if not isinstance(config, dict):
        raise TypeError(f"model config must be a dict, got {type(config).__name__}")
    config = dict(config)
    name = config.pop("name", None)
    classes = {"unet": UNet, "mlp": MLP}
    if name not in classes:
        raise ValueError(f"model config name must be one of {sorted(classes)}, got {name!r}")
    if name == "unet" and "mults" in config:
        config["mults"] = tuple(config["mults"])
    try:
        return classes[name](**config)
    except TypeError as exc:  # a missing or unknown key
        raise TypeError(
            f"model config {dict(config, name=name)} does not fit {classes[name].__name__}: {exc}"
        ) from None


def build_model(preset: str, *, channels: int = 1, periodic: str = "fast") -> nn.Module:
    """A network from a name in :data:`PRESETS` (UNets) or ``"mlp:<dim>"`` (an :class:`MLP` for ``(B, dim)``).

    ``periodic`` (``"fast"`` or ``"reference"``): how a UNet's convolutions pad (:class:`UNet`); an MLP has none.
    """
    check_periodic(periodic)
    if not isinstance(preset, str):
        raise TypeError(f"model preset must be a str, got {type(preset).__name__}")
    if preset.startswith("mlp:"):
        dim = preset.split(":", 1)[1]
        if not (dim.isdigit() and int(dim) >= 1):
            raise ValueError(f"model 'mlp:<dim>' needs an integer dim >= 1, got {preset!r}")
        return MLP(int(dim))
    if preset not in PRESETS:
        raise ValueError(f"model must be one of {', '.join(PRESETS)} or mlp:<dim>, got {preset!r}")
    net = model_from_config({**PRESETS[preset], "channels": channels})
    net.periodic = periodic
    return net
