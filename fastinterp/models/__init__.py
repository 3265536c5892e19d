"""Small, clean networks for the experiments: a time-conditioned MLP and UNets for periodic 1-D/2-D fields."""

from .mlp import MLP
from .unet import PRESETS, UNet, build_model, model_from_config

__all__ = ["MLP", "PRESETS", "UNet", "build_model", "model_from_config"]
