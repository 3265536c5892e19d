"""Conditioning and classifier-free guidance: what a sampler passes to the model besides ``(x, t)``.

``cond`` is a dict of keyword arguments for ``model(x, t, **cond)``; its tensors are batch-first (leading dimension
the batch of the state), other values (flags, ints, strings) are passed unchanged. With ``guidance=w`` and
``null_cond`` (the same keys, e.g. the null class label or an empty-prompt embedding; batch 1 broadcasts), the model
runs once on the doubled batch ``[x; x]`` with ``[null_cond; cond]`` and the sampler integrates the guided
prediction ``y_u + w (y_c - y_u)``, formed in the model's own prediction type before the transfer map (which is
affine in it, so the transfer stays exact). ``w = 1`` is plain conditional sampling, ``w = 0`` unconditional.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from .._utils import check_output

__all__ = ["Conditioning", "make_conditioning", "model_call"]


def _check_cond(name: str, cond: object, batch: int, device: torch.device) -> dict[str, object]:
    if not isinstance(cond, dict) or not all(isinstance(k, str) for k in cond):
        raise TypeError(f"{name} must be a dict of keyword arguments for the model, got {type(cond).__name__}")
    for key, value in cond.items():
        if key in ("x", "t"):
            raise ValueError(f"{name} may not set {key!r}: the sampler passes the state and the time")
        if isinstance(value, Tensor):
            if value.ndim < 1 or value.shape[0] not in (batch, 1) or (name == "cond" and value.shape[0] != batch):
                allowed = f"{batch}" if name == "cond" else f"{batch} or 1"
                raise ValueError(
                    f"{name}[{key!r}] must be batch-first with batch {allowed} (the state's), "
                    f"got shape {tuple(value.shape)}"
                )
            if value.device != device:
                raise ValueError(f"{name}[{key!r}] is on {value.device}, the state on {device}")
        else:
            try:
                hash(value)
            except TypeError:
                raise TypeError(
                    f"{name}[{key!r}] must be a tensor or a hashable value, got {type(value).__name__}"
                ) from None
    return dict(cond)


@dataclass(frozen=True, eq=False)
class Conditioning:
    """One call's model keyword arguments, validated (build with :func:`make_conditioning`).

    Attributes:
        cond: keyword arguments of the conditional model call.
        null_cond: those of the unconditional call (guidance only).
        guidance: the guidance weight ``w``, or None without guidance.
        batch: the state's batch size.
    """

    cond: dict[str, object]
    null_cond: dict[str, object] | None
    guidance: float | None
    batch: int

    @property
    def guided(self) -> bool:
        return self.guidance is not None

    @cached_property
    def model_kwargs(self) -> dict[str, object]:
        """What the model receives: ``cond``, or ``[null_cond; cond]`` batched for guidance (built once per call)."""
        if not self.guided:
            return self.cond
        out = {}
        for key, value in self.cond.items():
            if isinstance(value, Tensor):
                null = (
                    self.null_cond[key].expand_as(value) if self.null_cond[key].shape[0] == 1 else self.null_cond[key]
                )
                out[key] = torch.cat([null, value])
            else:
                out[key] = value
        return out

    def signature(self) -> tuple:
        """What a compiled artefact depends on: keys, tensor metadata beyond the batch, the other values."""
        items = []
        for key, value in sorted(self.model_kwargs.items()):
            if isinstance(value, Tensor):
                items.append((key, tuple(value.shape[1:]), value.dtype, value.device, value.shape[0] == 1))
            else:
                items.append((key, value))
        return (self.guided, tuple(items))


def make_conditioning(
    cond: dict[str, object] | None, guidance: float | None, null_cond: dict[str, object] | None, x0: Tensor
) -> Conditioning | None:
    """Validate one call's conditioning against the state ``x0``; None when there is none."""
    batch = x0.shape[0]
    if guidance is None:
        if null_cond is not None:
            raise ValueError("null_cond is only used with guidance=w; pass guidance too (w = 1 is conditional)")
        if cond is None or not cond:
            if cond is not None:
                _check_cond("cond", cond, batch, x0.device)
            return None
        return Conditioning(_check_cond("cond", cond, batch, x0.device), None, None, batch)
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance):
        raise ValueError(f"guidance must be a finite number, got {guidance!r}")
    if cond is None or null_cond is None:
        raise ValueError("guidance needs both cond and null_cond (the conditional and unconditional model arguments)")
    cond = _check_cond("cond", cond, batch, x0.device)
    null_cond = _check_cond("null_cond", null_cond, batch, x0.device)
    if set(cond) != set(null_cond):
        raise ValueError(f"cond and null_cond must have the same keys, got {sorted(cond)} and {sorted(null_cond)}")
    for key, value in cond.items():
        null = null_cond[key]
        if isinstance(value, Tensor) != isinstance(null, Tensor):
            raise TypeError(f"cond[{key!r}] and null_cond[{key!r}] must both be tensors or both not")
        if isinstance(value, Tensor):
            if null.shape[1:] != value.shape[1:] or null.dtype != value.dtype:
                raise ValueError(
                    f"null_cond[{key!r}] must match cond[{key!r}] beyond the batch: "
                    f"{tuple(null.shape)} {null.dtype} vs {tuple(value.shape)} {value.dtype}"
                )
        elif null != value:
            raise ValueError(
                f"cond[{key!r}] = {value!r} and null_cond[{key!r}] = {null!r}: non-tensor values are shared"
            )
    return Conditioning(cond, null_cond, float(guidance), batch)


def model_call(conditioning: Conditioning | None, model_dtype: torch.dtype) -> Callable[..., Tensor]:
    """The eager reference's ``call(model, x, t)``: the model in ``model_dtype`` with ``conditioning``.

    The state and the result stay in ``x``'s (accumulation) dtype; the model sees ``x`` cast to ``model_dtype`` and
    ``t`` unchanged (float32 at least). With guidance the halves of one doubled-batch call are combined in the
    accumulation dtype.
    """
    kwargs = {} if conditioning is None else conditioning.model_kwargs

    def call(model, x: Tensor, t: Tensor) -> Tensor:
        xm = x.to(model_dtype)
        if conditioning is None or not conditioning.guided:
            return check_output(model(xm, t, **kwargs), xm, model).to(x.dtype)
        x2 = torch.cat([xm, xm])
        yu, yc = check_output(model(x2, t, **kwargs), x2, model).to(x.dtype).chunk(2)
        return yu + conditioning.guidance * (yc - yu)

    return call
