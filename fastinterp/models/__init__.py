"""Small, clean networks for the experiments: a time-conditioned MLP and UNets for periodic 1-D/2-D fields."""

from .mlp import MLP
from .periodic import PeriodicConv1d, PeriodicConv2d, circular_pad
from .unet import PRESETS, UNet, build_model, model_from_config

__all__ = ["MLP", "PRESETS", "PeriodicConv1d", "PeriodicConv2d", "UNet", "build_model", "circular_pad",
           "model_from_config"]  # fmt: skip
