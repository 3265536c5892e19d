"""Checkpoints that carry everything needed to sample: weights, schedule, prediction type, normalisation.

A checkpoint is a ``torch.save`` dict of tensors and plain types only (so it loads with ``weights_only=True``):

    format: "fastinterp-checkpoint", version: 1,
    model: {"config": {...}, "state": state_dict}, ema: state_dict | None,
    schedule: {"name": ..., params}, prediction: str, normalization: {"mean": float, "std": float},
    training: {"step": int, "optimizer": ..., "scheduler": ..., "generator": ..., "losses": [...], "n_data": int,
               "data": {"sha256", "shape", "dtype"}, "settings": {"steps", "lr", ...}} (optional, for resuming:
               :func:`fastinterp.training.train` refuses to resume with other data or settings),
    digest: SHA-256 of the canonical serialisation of all of the above.

Loading refuses files of another format or version and files whose digest does not match (edited or truncated).
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .drift import Drift
from .models import model_from_config
from .predictions import check_prediction
from .schedules import Linear, LipschitzOptimal, MixtureOptimal, Schedule, Tabulated, Trig

__all__ = ["load_checkpoint", "save_checkpoint", "schedule_from_config", "schedule_to_config"]

FORMAT, VERSION = "fastinterp-checkpoint", 1


def schedule_to_config(schedule: Schedule) -> dict[str, Any]:
    """A serialisable description of a built-in schedule (custom callables cannot be saved)."""
    if isinstance(schedule, (Linear, Trig)):
        return {"name": type(schedule).__name__}
    if isinstance(schedule, LipschitzOptimal):
        return {"name": "LipschitzOptimal", "lam": schedule.lam}
    if isinstance(schedule, MixtureOptimal):
        return {"name": "MixtureOptimal", "M": schedule.M}
    if isinstance(schedule, Tabulated):
        alpha = None if schedule._alpha is None else schedule._alpha.y
        return {"name": "Tabulated", "t": schedule._beta.x, "beta": schedule._beta.y, "alpha": alpha}
    raise TypeError(f"cannot save a {type(schedule).__name__} schedule; use a built-in or Tabulated schedule")


def schedule_from_config(config: dict[str, Any]) -> Schedule:
    """Inverse of :func:`schedule_to_config`."""
    name = config.get("name")
    if name == "Linear":
        return Linear()
    if name == "Trig":
        return Trig()
    if name == "LipschitzOptimal":
        return LipschitzOptimal(config["lam"])
    if name == "MixtureOptimal":
        return MixtureOptimal(config["M"])
    if name == "Tabulated":
        return Tabulated(config["t"], config["beta"], config.get("alpha"))
    raise ValueError(f"unknown schedule {name!r} in checkpoint")


def _digest(payload: dict[str, Any]) -> str:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    schedule: Schedule,
    prediction: str,
    normalization: dict[str, float] | None = None,
    ema: nn.Module | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (to a temporary file, then renamed: a crash never leaves half a file).

    Args:
        path: destination.
        model: a fastinterp network (it must have a ``config`` dict, as :mod:`fastinterp.models` networks do).
        schedule: the schedule it was trained under.
        prediction: what it predicts.
        normalization: ``{"mean": m, "std": s}``: the model sees ``(data - m) / s``.
        ema: optional exponential-moving-average copy of the model.
        training: optional resumable state (step, optimizer and scheduler state dicts).
    """
    if not hasattr(model, "config"):
        raise TypeError(
            f"model must be a fastinterp network with a `config` attribute (fastinterp.models), "
            f"got {type(model).__name__}"
        )
    norm = normalization or {"mean": 0.0, "std": 1.0}
    if not (math.isfinite(norm["mean"]) and math.isfinite(norm["std"]) and norm["std"] > 0):
        raise ValueError(f"normalization must have finite mean and std > 0, got {norm}")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": {"config": dict(model.config), "state": model.state_dict()},
        "ema": None if ema is None else ema.state_dict(),
        "schedule": schedule_to_config(schedule),
        "prediction": check_prediction(prediction),
        "normalization": {"mean": float(norm["mean"]), "std": float(norm["std"])},
        "training": training,
    }
    payload["digest"] = _digest(payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, *, use_ema: bool = True, map_location: str | None = "cpu") -> dict[str, Any]:
    """Load and verify a checkpoint; returns the payload plus ``"network"`` and a ready ``"drift"``.

    The drift lives in the normalised units the network was trained in: sample with it, then map back to data
    units with ``x * std + mean`` (``payload["normalization"]``).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file is not a fastinterp checkpoint, has another version, or fails its digest check.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling refused, truncated zip, not a torch file...
        raise ValueError(f"{path}: not a readable fastinterp checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastinterp checkpoint (format tag missing)")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')!r}, this fastinterp reads {VERSION}")
    digest = payload.pop("digest", None)
    if digest != _digest(payload):
        raise ValueError(f"{path}: checkpoint digest mismatch: the file was modified or is damaged")
    payload["digest"] = digest
    net = model_from_config(payload["model"]["config"])
    state = payload["ema"] if use_ema and payload["ema"] is not None else payload["model"]["state"]
    net.load_state_dict(state)
    net.eval()
    schedule = schedule_from_config(payload["schedule"])
    payload["network"] = net
    payload["drift"] = Drift(net, schedule, payload["prediction"])
    return payload
