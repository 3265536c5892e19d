"""Training loop for interpolant models: AdamW, cosine decay, gradient clipping, EMA, checkpoints, resume.

Data are arrays in memory shaped ``(n, ...)`` (fields ``(n, N)`` or ``(n, N, N)``, vectors ``(n, d)``), normalised
by one scalar mean and standard deviation that the checkpoint stores. Every random draw (batches, times, noise)
comes from one ``torch.Generator`` whose state the checkpoint also stores, so a resumed run continues exactly where
the interrupted one stopped: same batches, same noise, same weights.

Resume rules (``resume=True``): the checkpoint records a SHA-256 digest of the training data (bytes, shape and
dtype), and the run's prediction, schedule, model configuration and optimiser settings. A resumed run must give the
same ones; each that differs is named, with both values, in one ``ValueError``. ``steps`` may grow (that is how a
run is extended); the settings in :data:`CHANGEABLE` may change when named in ``allow_changes``; the data,
prediction, schedule, model and seed never (train into another ``out`` instead). Without ``resume`` an existing
``out`` is refused unless ``force=True``.

Speed (``docs/training.md``, ``benchmarks/bench_training.py``): an antithetic pair is one model call on a batch of
``2 * batch_size`` (:func:`training_loss`), AdamW runs fused where torch has the kernel (CPU and CUDA), clipping and
the EMA update use torch's multi-tensor ops, and ``compile=True`` runs the network under ``torch.compile``; each is
the plain loop's arithmetic up to rounding.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ._utils import check_int
from .checkpoint import load_checkpoint, save_checkpoint, schedule_to_config
from .interpolants import T_MAX, T_MIN, Interpolant, interpolant_loss  # T_MIN, T_MAX: the times' range
from .predictions import check_prediction
from .schedules import Linear, Schedule

__all__ = ["CHANGEABLE", "T_MAX", "T_MIN", "TrainResult", "data_digest", "train", "training_loss"]

#: Settings a resumed run may change when it names them in ``train(..., allow_changes=...)``
#: (``--allow-changed`` on the command line). ``steps`` may always grow; naming it here also lets it shrink.
CHANGEABLE = ("lr", "weight_decay", "batch_size", "grad_clip", "ema_decay", "antithetic", "steps")


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained network, its EMA copy, and the loss history."""

    model: nn.Module
    ema: nn.Module
    losses: list[float]
    step: int
    checkpoint: Path | None


def data_digest(data: Tensor) -> dict[str, Any]:
    """SHA-256 of ``data``'s values (float32 or float64 bytes, C order) together with its shape and dtype.

    Half-precision data are hashed as float32. Returns ``{"sha256": hex, "shape": [...], "dtype": "float32"}``.
    """
    x = data.detach().cpu()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    arr = x.contiguous().numpy().reshape(-1).view("uint8")
    h = hashlib.sha256(f"{list(x.shape)} {x.dtype}\n".encode())
    h.update(arr)
    return {"sha256": h.hexdigest(), "shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}


def training_loss(
    model: Callable[[Tensor, Tensor], Tensor],
    x1: Tensor,
    *,
    interpolant: Interpolant,
    prediction: str,
    antithetic: bool,
    generator: torch.Generator,
) -> Tensor:
    """The loss :func:`train` minimises for the batch ``x1``, with one call of ``model``.

    Draws the noise ``x0 ~ N(0, I)`` shaped like ``x1``, then the times ``t ~ U[T_MIN, T_MAX]`` shaped ``(B,)``, from
    ``generator`` (the order ``interpolant_loss`` draws them in), and returns
    ``interpolant_loss(model, x1, x0=x0, t=t, ...)`` of a one-sided ``interpolant``. An antithetic pair is evaluated
    as one batch of ``2 B``: ``(x1, x1)``, ``(x0, -x0)``, ``(t, t)``, whose mean is the average of the pair's two
    means, so the value equals ``interpolant_loss(model, x1, antithetic=True, generator=...)`` from the same
    generator state up to rounding, with half the model calls (the networks here treat samples independently).
    """
    if not interpolant.one_sided:
        raise ValueError(f"training_loss needs a one-sided interpolant (gamma='zero'), got {interpolant!r}")
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
    t = T_MIN + (T_MAX - T_MIN) * torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype, device=x1.device)
    if antithetic:
        x1, x0, t = torch.cat([x1, x1]), torch.cat([x0, -x0]), torch.cat([t, t])
    return interpolant_loss(model, x1, prediction=prediction, interpolant=interpolant, x0=x0, t=t)


def _adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused (one kernel per parameter and step) where torch has that kernel for every parameter (floating
    tensors on CPU or CUDA), else torch's default implementation: the same update up to rounding."""
    params = list(model.parameters())
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True if fused else None)


def _real(name: str, value: object, ok: Callable[[float], bool], requirement: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be {requirement}, got {value}") from None
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} must be {requirement}, got {value}")
    return value


def _settings(
    *, steps: object, batch_size: object, lr: object, weight_decay: object, grad_clip: object,
    ema_decay: object, antithetic: object, seed: object, checkpoint_every: object, scale: object = None,
) -> dict[str, Any]:  # fmt: skip
    """Every option of :func:`train` range-checked (the one place), as the dict the checkpoint records."""
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    check_int("checkpoint_every", checkpoint_every, 1)
    check_int("seed", seed, 0)
    if seed >= 2**64:
        raise ValueError(f"seed must be < 2**64 (a torch.Generator seed), got {seed}")
    if not isinstance(antithetic, bool):
        raise TypeError(f"antithetic must be a bool, got {type(antithetic).__name__}")
    return {
        "steps": steps,
        "batch_size": batch_size,
        "lr": _real("lr", lr, lambda v: v > 0, "finite and > 0"),
        "weight_decay": _real("weight_decay", weight_decay, lambda v: v >= 0, "finite and >= 0"),
        "grad_clip": _real("grad_clip", grad_clip, lambda v: v > 0, "finite and > 0 (the maximum gradient norm)"),
        "ema_decay": _real("ema_decay", ema_decay, lambda v: 0 <= v < 1, "in [0, 1)"),
        "antithetic": antithetic,
        "seed": seed,
        "scale": None if scale is None else _real("scale", scale, lambda v: v > 0, "finite and > 0, or None"),
    }


def _check_data(data: object) -> None:
    if not isinstance(data, Tensor):
        raise TypeError(f"data must be a torch.Tensor shaped (n, ...), got {type(data).__name__}")
    if not data.is_floating_point() or data.ndim < 2 or data.shape[0] < 2:
        raise ValueError(f"data must be a floating tensor shaped (n >= 2, ...), got {data.dtype} {tuple(data.shape)}")
    if not torch.isfinite(data).all():
        raise ValueError(f"data contains {int((~torch.isfinite(data)).sum())} non-finite values")
    if float(data.std()) == 0:
        raise ValueError(f"data are constant (every value {float(data.flatten()[0])}): nothing to learn")


def _check_model_fits(model: nn.Module, data: Tensor) -> None:
    """One forward pass on two samples (eval mode, no gradients: no state changes): a model that does not fit
    ``data`` fails here, before the output folder is touched, rather than inside the first step."""
    x, mode = data[:2], model.training
    try:
        with torch.no_grad():
            y = model.eval()(x, torch.full((2,), 0.5, dtype=x.dtype, device=x.device))
    except (ValueError, RuntimeError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"model {type(model).__name__} does not take data shaped {tuple(data.shape)}: {reason}"
        ) from None
    finally:
        model.train(mode)
    if not isinstance(y, Tensor) or y.shape != x.shape:
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"model {type(model).__name__} must return its input's shape {tuple(x.shape)}, got {got}")


def _check_writable(out: Path) -> None:
    """Create ``out``'s folder and write and remove a probe file there, so a bad path fails before any step."""
    if out.is_dir():
        raise IsADirectoryError(f"out {out} is a directory; give a checkpoint file path")
    probe = out.with_name(f".{out.name}.probe-{os.getpid()}")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise NotADirectoryError(f"out {out}: cannot write a checkpoint there: {blocker} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"probe")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"out {out}: cannot write a checkpoint there: {exc.strerror or exc} ({exc.filename})") from None


def _short(value: object) -> str:
    if isinstance(value, dict) and "sha256" in value:  # a data digest
        return f"sha256 {value['sha256'][:12]} shape {tuple(value['shape'])} {value['dtype']}"
    if isinstance(value, dict) and value.get("name") == "Tabulated":
        return f"Tabulated({len(value['t'])} knots)"
    if isinstance(value, dict) and "name" in value:
        args = ", ".join(f"{k}={v!r}" for k, v in value.items() if k != "name")
        return f"{value['name']}({args})"
    return repr(value)


def _same(a: object, b: object) -> bool:
    """Equality of checkpoint records: numbers as numbers, tensors by value, containers item by item."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and bool((a == b).all())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b  # 200 == 200.0; checked settings have their types already


def _resume_check(out: Path, ckpt: dict, now: dict, allow: frozenset[str]) -> None:
    """Raise one ``ValueError`` naming every recorded setting that differs from this run (unless allowed)."""
    state = ckpt["training"]
    if state is None:
        raise ValueError(f"{out}: cannot resume: the checkpoint has no training state (saved without train())")
    if "settings" not in state or "data" not in state:
        raise ValueError(
            f"{out}: cannot resume: the checkpoint was written by an older fastinterp that did not record its data "
            "and settings, so a changed one would go unnoticed; start a new run (another out, or force=True / --force)"
        )
    then = {"data": state["data"], "prediction": ckpt["prediction"], "schedule": ckpt["schedule"],
            "model": ckpt["model"]["config"], **state["settings"]}  # fmt: skip
    if now["steps"] < state["step"]:
        raise ValueError(
            f"{out}: cannot resume: the checkpoint is at step {state['step']}, beyond steps={now['steps']}"
        )
    fixed, changeable = [], []
    for key, value in now.items():
        if _same(then.get(key), value) or key in allow or (key == "steps" and value > then["steps"]):
            continue
        (changeable if key in CHANGEABLE else fixed).append(key)
    if not fixed and not changeable:
        return
    diffs = [f"{key} (was {_short(then.get(key))}, now {_short(now[key])})" for key in fixed + changeable]
    parts = [f"{out}: cannot resume: changed " + ", ".join(diffs)]
    if changeable:
        names, pronoun = ",".join(changeable), "them" if len(changeable) > 1 else "it"
        parts.append(f"to change {names}, name {pronoun} in allow_changes (--allow-changed {names})")
    if fixed:
        parts.append(f"{' and '.join(fixed)} cannot change on resume: train into another out")
    raise ValueError("; ".join(parts))


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
    force: bool = False,
    allow_changes: Iterable[str] = (),
    seed: int = 0,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    compile: bool = False,
    scale: float | None = None,
) -> TrainResult:
    """Train ``model`` to predict ``prediction`` under ``schedule`` on ``data`` (one-sided interpolant).

    Every option is checked before the first step, and so is ``out`` (its folder is created and a probe file is
    written and removed there), so a bad argument never costs a training run.

    Args:
        model: a :mod:`fastinterp.models` network (``model(x, t)``).
        data: training samples ``(n, ...)``, ``n >= 2``, finite, not constant; normalised internally as
            ``(data - mean) / scale``, ``mean`` their scalar mean, ``scale`` their scalar std unless given.
        steps: total optimisation steps, >= 1 (a resumed run continues up to this count; a larger count extends
            it: the cosine decay is then re-planned over the new total, so the learning rate at the resumed step
            rises to ``lr * (1 + cos(pi * step / steps)) / 2`` and decays to 0 at the new end).
        out: checkpoint path (written every ``checkpoint_every`` steps and at the end, atomically); None: none.
        schedule: the training schedule (default linear: train once, then transfer at sampling time).
        prediction: ``velocity``, ``x1``, ``noise`` or ``score``.
        batch_size: samples per step (drawn with replacement), 1 to ``n``.
        lr: peak learning rate of AdamW (> 0), decayed to 0 over ``steps`` by a cosine.
        weight_decay: AdamW's decoupled weight decay (>= 0).
        grad_clip: maximum gradient norm (> 0, finite).
        ema_decay: decay of the exponential moving average of the weights (the copy used for sampling), in [0, 1).
        antithetic: antithetic noise pairs in the loss.
        checkpoint_every: steps between checkpoints (>= 1).
        resume: continue from ``out`` if it exists, under the resume rules of this module's docstring; a missing
            ``out`` starts a new run.
        force: overwrite an existing ``out`` (without it, and without ``resume``, an existing ``out`` is refused).
        allow_changes: names from :data:`CHANGEABLE` that a resumed run may change (the new values apply from the
            resumed step on and are recorded).
        seed: seed of the run's generator (int >= 0).
        progress: show a progress bar (loss, steps/s, ETA) on stderr.
        callback: called as ``callback(step, loss)`` after every step (after any checkpoint of that step).
        compile: run the network under ``torch.compile`` (its first step compiles: seconds to minutes, not counted
            in the loss or the checkpoint; the losses are the eager ones up to rounding). Not recorded: a run may be
            resumed with or without it. Whether it pays depends on the machine (``benchmarks/bench_training.py``).
        scale: the divisor of the centred data (finite, > 0; recorded, fixed on resume; the checkpoint's
            ``normalization["std"]``); None: their std. The units fix how the data's spectrum sits against the
            white base, which decides how stiff each schedule's ODE is (docs/experiment.md).

    Raises:
        TypeError, ValueError: an invalid option (the message names it and its value), or a resume mismatch.
        FileExistsError: ``out`` exists and neither ``resume`` nor ``force`` was given.
        OSError: ``out`` cannot be written.
        FloatingPointError: the loss became non-finite.
    """
    settings = _settings(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        ema_decay=ema_decay,
        antithetic=antithetic,
        seed=seed,
        checkpoint_every=checkpoint_every,
        scale=scale,
    )
    check_prediction(prediction)
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be a bool, got {type(compile).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (fastinterp.models), got {type(model).__name__}")
    schedule = Linear() if schedule is None else schedule
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a fastinterp Schedule, got {type(schedule).__name__}")
    _check_data(data)
    _check_model_fits(model, data)
    if batch_size > data.shape[0]:
        raise ValueError(f"batch_size must be <= the number of training samples {data.shape[0]}, got {batch_size}")
    if isinstance(allow_changes, str):
        allow_changes = allow_changes.split(",") if allow_changes else []
    allow = frozenset(allow_changes)
    if allow - set(CHANGEABLE):
        raise ValueError(f"allow_changes must name settings among {CHANGEABLE}, got {sorted(allow - set(CHANGEABLE))}")
    if allow and not resume:
        raise ValueError(f"allow_changes={sorted(allow)} applies only with resume=True")
    if resume and force:
        raise ValueError("resume=True and force=True contradict each other: continue out, or overwrite it")
    if out is None and resume:
        raise ValueError("resume=True needs out (the checkpoint to continue)")

    out = None if out is None else Path(out)
    existing = out is not None and out.exists()
    if out is not None:
        if existing and not (resume or force) and not out.is_dir():
            raise FileExistsError(f"out {out} exists: continue it with resume=True (--resume), overwrite it with "
                                  "force=True (--force), or give another path")  # fmt: skip
        if not hasattr(model, "config"):
            raise TypeError(
                f"model must be a fastinterp network with a `config` attribute to be saved, got {type(model).__name__}"
            )
        schedule_config = schedule_to_config(schedule)  # a schedule that cannot be saved fails now, not at the end
        _check_writable(out)
        digest = data_digest(data)
    interp = Interpolant(schedule)
    mean = float(data.mean())
    std = float(data.std()) if settings["scale"] is None else settings["scale"]
    normed = (data - mean) / std

    gen = torch.Generator().manual_seed(seed)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = _adamw(model, lr, weight_decay)
    cosine = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    step, losses = 0, []
    if resume and existing:
        ckpt = load_checkpoint(out, use_ema=False)
        now = {"data": digest, "prediction": prediction, "schedule": schedule_config, "model": dict(model.config),
               **settings}  # fmt: skip
        _resume_check(out, ckpt, now, allow)
        state = ckpt["training"]
        model.load_state_dict(ckpt["model"]["state"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        step, losses = state["step"], list(state["losses"])
        old = state["settings"]
        if (settings["lr"], settings["weight_decay"], steps) != (old["lr"], old["weight_decay"], old["steps"]):
            sched.base_lrs = [settings["lr"]] * len(opt.param_groups)  # the new plan, from this step on
            for group in opt.param_groups:
                group["initial_lr"], group["weight_decay"] = settings["lr"], settings["weight_decay"]
                group["lr"] = settings["lr"] * cosine(step)
            sched._last_lr = [group["lr"] for group in opt.param_groups]

    def save() -> None:
        if out is None:
            return
        training = {"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "generator": gen.get_state(), "losses": losses, "n_data": data.shape[0],
                    "data": digest, "settings": settings}  # fmt: skip
        save_checkpoint(out, model, schedule=schedule, prediction=prediction,
                        normalization={"mean": mean, "std": std}, ema=ema, training=training)  # fmt: skip

    model.train()
    net = torch.compile(model) if compile else model  # the same parameters: the optimiser and checkpoints see model
    params, ema_params = list(model.parameters()), list(ema.parameters())
    foreach = all(p.device.type in ("cpu", "cuda") for p in params) or None  # torch's multi-tensor clipping there
    buffers, ema_buffers = list(model.buffers()), list(ema.buffers())
    tty = sys.stderr.isatty()
    with tqdm(total=steps, initial=step, desc="train", unit="step", disable=not progress, file=sys.stderr,
              dynamic_ncols=True, mininterval=0.1 if tty else 10.0) as bar:  # fmt: skip
        while step < steps:
            idx = torch.randint(0, normed.shape[0], (batch_size,), generator=gen)
            loss = training_loss(net, normed[idx], interpolant=interp, prediction=prediction,
                                 antithetic=antithetic, generator=gen)  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, settings["grad_clip"], foreach=foreach)
            opt.step()
            sched.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, params, 1 - settings["ema_decay"])
                for be, bm in zip(ema_buffers, buffers, strict=True):
                    be.copy_(bm)
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {step}; lower lr or check the data")
            losses.append(value)
            bar.set_postfix_str(f"loss {value:.4g}", refresh=False)
            bar.update(1)
            if step % checkpoint_every == 0 or step == steps:
                save()
            if callback is not None:
                callback(step, value)
    model.eval()
    ema.eval()
    return TrainResult(model, ema, losses, step, out)
