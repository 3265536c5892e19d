"""Training loop for interpolant models: AdamW, cosine decay, gradient clipping, EMA, checkpoints, resume.

Data are arrays in memory shaped ``(n, ...)`` (fields ``(n, N)`` or ``(n, N, N)``, vectors ``(n, d)``), normalised
by one scalar mean and standard deviation that the checkpoint stores. Every random draw (batches, times, noise)
comes from one ``torch.Generator`` whose state the checkpoint also stores, so a resumed run continues exactly where
the interrupted one stopped: same batches, same noise, same weights.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ._utils import check_int
from .checkpoint import load_checkpoint, save_checkpoint
from .interpolants import Interpolant, interpolant_loss
from .predictions import check_prediction
from .schedules import Linear, Schedule

__all__ = ["TrainResult", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained network, its EMA copy, and the loss history."""

    model: nn.Module
    ema: nn.Module
    losses: list[float]
    step: int
    checkpoint: Path | None


class _Progress:
    """A one-line progress display on a terminal (steps, loss, steps/s, ETA); periodic lines otherwise."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.start, self.enabled = total, start, enabled
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.last_line = 0.0

    def update(self, step: int, loss: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        done = step - self.start
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - step) / max(rate, 1e-9)
        line = f"step {step}/{self.total}  loss {loss:.4g}  {rate:.1f} steps/s  ETA {eta:.0f} s"
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif now - self.last_line > 10 or step == self.total:
            print(line, file=sys.stderr, flush=True)
            self.last_line = now

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)


def train(
    model: nn.Module,
    data: Tensor,
    *,
    steps: int,
    out: str | Path | None = None,
    schedule: Schedule | None = None,
    prediction: str = "velocity",
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    ema_decay: float = 0.999,
    antithetic: bool = True,
    checkpoint_every: int = 500,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` to predict ``prediction`` under ``schedule`` on ``data`` (one-sided interpolant).

    Args:
        model: a :mod:`fastinterp.models` network (``model(x, t)``).
        data: training samples ``(n, ...)``; normalised internally by their scalar mean and std.
        steps: total optimisation steps (a resumed run continues up to this count).
        out: checkpoint path (written every ``checkpoint_every`` steps and at the end, atomically); None: none.
        schedule: the training schedule (default linear: train once, then transfer at sampling time).
        prediction: ``velocity``, ``x1``, ``noise`` or ``score``.
        batch_size, lr, weight_decay: AdamW with cosine decay of the learning rate to 0 over ``steps``.
        grad_clip: maximum gradient norm.
        ema_decay: decay of the exponential moving average of the weights (the copy used for sampling).
        antithetic: antithetic noise pairs in the loss.
        checkpoint_every: steps between checkpoints.
        resume: continue from ``out`` if it exists (same data and options required).
        seed: seed of the run's generator.
        progress: show progress (steps, loss, steps/s, ETA) on stderr.
        callback: called as ``callback(step, loss)`` after every step (after any checkpoint of that step).
    """
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    check_int("checkpoint_every", checkpoint_every, 1)
    check_prediction(prediction)
    if not isinstance(data, Tensor) or not data.is_floating_point() or data.ndim < 2 or data.shape[0] < 2:
        raise ValueError("data must be a floating tensor shaped (n >= 2, ...)")
    if not torch.isfinite(data).all():
        raise ValueError("data contains non-finite values")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be finite and > 0, got {lr}")
    if not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
    schedule = schedule or Linear()
    interp = Interpolant(schedule)
    mean, std = float(data.mean()), float(data.std())
    normed = (data - mean) / std

    gen = torch.Generator().manual_seed(seed)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    step, losses = 0, []
    out = None if out is None else Path(out)
    if resume and out is not None and out.exists():
        ckpt = load_checkpoint(out, use_ema=False)
        state = ckpt["training"]
        if state is None or state.get("n_data") != data.shape[0]:
            raise ValueError(f"{out}: cannot resume: it was written for other data or without training state")
        model.load_state_dict(ckpt["model"]["state"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        step, losses = state["step"], list(state["losses"])

    def save() -> None:
        if out is None:
            return
        training = {"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "generator": gen.get_state(), "losses": losses, "n_data": data.shape[0]}  # fmt: skip
        save_checkpoint(out, model, schedule=schedule, prediction=prediction,
                        normalization={"mean": mean, "std": std}, ema=ema, training=training)  # fmt: skip

    bar = _Progress(steps, step, progress)
    model.train()
    while step < steps:
        idx = torch.randint(0, normed.shape[0], (batch_size,), generator=gen)
        loss = interpolant_loss(model, normed[idx], prediction=prediction, interpolant=interp,
                                antithetic=antithetic, generator=gen)  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - ema_decay)
            for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
                be.copy_(bm)
        step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value} at step {step}; lower lr or check the data")
        losses.append(value)
        bar.update(step, value)
        if step % checkpoint_every == 0 or step == steps:
            save()
        if callback is not None:
            callback(step, value)
    bar.close()
    model.eval()
    ema.eval()
    return TrainResult(model, ema, losses, step, out)
