"""Centring on the data mean: every schedule made usable on data whose mean is not zero.

With data ``x1 = m + c`` (``m`` the data mean, ``c`` centred), the interpolant ``I_t = alpha_t z + beta_t x1`` splits as

    I_t = y_t + beta_t m,     y_t = alpha_t z + beta_t c,

and ``y_t`` is the interpolant of the centred data. Its exact denoisers are those of ``I`` read at ``y + beta_t m``:

    z^_c(t, y) = z^(t, y + beta_t m),     x1^_c(t, y) = x1^(t, y + beta_t m) - m,

so any prediction ``p = u z^ + w x1^`` (:func:`fastinterp.predictions.prediction_weights`) of a model trained on the
uncentred data gives the centred one as ``p_c(t, y) = p(t, y + beta_t m) - w_t m``: the velocity loses
``beta'_t m``, a data denoiser ``m``, noise and score predictions nothing. :class:`CentredModel` is that map around
a model; :meth:`fastinterp.Drift.centred` wraps a drift's model in it (same schedule, same prediction).

Why it matters: the probability-flow ODE of ``I`` carries the mean along ``beta_t m``, and a solver integrates that
term with the error of its quadrature of ``beta'_t``. Under ``LipschitzOptimal`` (and every variance-preserving
schedule with ``beta_t ~ sqrt(t)`` near 0) ``beta'`` is singular at ``t = 0``: RK4 then converges at first order
and a mean of unit scale costs several percent (16-D Gaussian, std 0.5, mean 1, ``LipschitzOptimal(0.25)``: 0.22 /
0.094 / 0.037 relative error at 5 / 10 / 20 steps). The centred process has no such term; integrating it and
adding ``beta_{t_max} m`` exactly at the end gives the accuracy of the mean-free problem (2.4e-6 / 1.4e-7 / 8.5e-9,
order 4). That is what ``fi.sample(drift, z, mean=m)`` does (:func:`uncentre`).

Transfers commute with centring: the transfer's input scale ``s`` satisfies ``s beta_t = beta_s(t')``, so
``s (x - beta_t m) = x' - beta_s(t') m``, and ``drift.transfer(S).centred(m)`` is ``drift.centred(m).transfer(S)``
(the source is centred under its own schedule, then transferred again).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from ._utils import as_time_like, expand_like
from .predictions import prediction_weights

__all__ = ["CENTRED_PER_DRIFT", "CentredModel", "Mean", "centred", "check_mean", "uncentre"]

#: A data mean: a floating-point tensor broadcastable to the event shape, or a real number.
Mean = Tensor | float


def check_mean(mean: object) -> Mean:
    """``mean`` validated: a real number (or 0-d tensor) as a float, else a finite floating-point tensor.

    A 0-d tensor becomes a float (one host synchronisation, once); the tensor's broadcast against a state's event
    shape and its device are checked where the state is known (:meth:`CentredModel.__call__`).

    Raises:
        TypeError: not a real number or a floating-point tensor.
        ValueError: a non-finite value.
    """
    if isinstance(mean, Tensor):
        if not mean.is_floating_point():
            raise TypeError(
                f"mean must be a floating-point tensor or a real number, got a tensor of dtype {mean.dtype}"
            )
        if mean.ndim == 0:
            mean = float(mean)
        elif not bool(torch.isfinite(mean).all()):
            bad = int((~torch.isfinite(mean)).sum())
            raise ValueError(f"mean must be finite, got {bad} non-finite value(s) (nan or inf) of {mean.numel()}")
        else:
            return mean
    if isinstance(mean, bool) or not isinstance(mean, numbers.Real):
        raise TypeError(f"mean must be a floating-point tensor or a real number, got {type(mean).__name__}")
    mean = float(mean)
    if not math.isfinite(mean):
        raise ValueError(f"mean must be finite, got {mean!r}")
    return mean


def _compute_dtype(x: Tensor) -> torch.dtype:
    """Where the shift is formed: the state's dtype, float32 at least (bf16 cannot hold ``beta_t m`` finely)."""
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _check_fits(mean: Mean, x: Tensor) -> None:
    """A tensor mean must broadcast to ``x``'s event shape ``x.shape[1:]`` (never over the batch) on its device."""
    if not isinstance(mean, Tensor):
        return
    event = tuple(x.shape[1:])
    shape = tuple(mean.shape)
    fits = len(shape) <= len(event) and all(m in (1, e) for m, e in zip(shape[::-1], event[::-1], strict=False))
    if not fits:
        raise ValueError(
            f"mean shaped {shape} does not broadcast to the state's event shape {event} (state {tuple(x.shape)}; "
            "the mean has no batch dimension)"
        )
    if mean.device != x.device:
        raise ValueError(f"mean is on {mean.device}, the state on {x.device}: they must share the device")


class CentredModel:
    """``model_c(y, t, **cond) = model(y + beta_t m, t, **cond) - w_t m``: a model of the centred data.

    ``beta_t`` and the weight ``w_t`` of the prediction on ``x1^`` come from ``schedule`` (the model's own) at the
    time ``t`` the model is called with: 0-d inside the samplers, or ``(B,)``. The shift is formed in the state's
    dtype (float32 at least) and the model sees its input in the state's dtype. A plain callable of torch
    operations: the fused, compiled and graph backends call it as they would the model.

    Args:
        model: the raw model, trained on uncentred data under ``schedule`` to predict ``prediction``.
        schedule: its training schedule.
        prediction: what it predicts.
        mean: the data mean as :func:`check_mean` returns it (:func:`centred`, the way to build one, validates it
            once; its broadcast against the state is checked per call).

    Attributes:
        mean: that mean (a float, or the tensor).
    """

    def __init__(self, model, schedule, prediction: str, mean: Mean) -> None:
        self.model, self.schedule, self.prediction, self.mean = model, schedule, prediction, mean

    def __call__(self, y: Tensor, t: Tensor, **cond) -> Tensor:
        _check_fits(self.mean, y)
        acc = _compute_dtype(y)
        mean = self.mean.to(acc) if isinstance(self.mean, Tensor) else self.mean
        s = self.schedule(as_time_like(t, y))
        _, w = prediction_weights(self.prediction, s)
        x = (y.to(acc) + expand_like(s.beta.to(acc), y) * mean).to(y.dtype)
        out = self.model(x, t, **cond)
        if isinstance(w, float) and w == 0.0:  # noise and score predictions carry no mean
            return out
        if not isinstance(out, Tensor) or out.shape != y.shape:
            return out  # the sampler's output check names what is wrong
        w = w if isinstance(w, float) else expand_like(w.to(acc), y)
        return (out.to(acc) - w * mean).to(out.dtype)

    def __repr__(self) -> str:
        mean = f"tensor{tuple(self.mean.shape)}" if isinstance(self.mean, Tensor) else f"{self.mean:g}"
        return f"CentredModel({self.model!r}, mean={mean})"


#: Centred drifts kept per drift (least recently used dropped): see :func:`centred`.
CENTRED_PER_DRIFT = 8


def _same_mean(a: Mean, b: Mean) -> bool:
    if isinstance(a, Tensor) != isinstance(b, Tensor):
        return False
    if not isinstance(a, Tensor):
        return a == b
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and bool(torch.equal(a, b))


def centred(drift, mean: Mean):
    """The drift of the centred data ``y = I - beta_t m`` (module docstring); see :meth:`fastinterp.Drift.centred`.

    A transferred drift is centred at its source (under the source's schedule) and transferred again; the
    ``noise_range`` is kept (centring does not change the noise levels).

    The same drift centred on an equal mean (same value; for a tensor the same shape, dtype, device and values)
    returns the same centred drift: samplers key their compiled graphs and CUDA graphs by the model they call, and a
    new wrapper per ``fi.sample(drift, z, mean=m)`` call would compile again every time. Each drift keeps its last
    :data:`CENTRED_PER_DRIFT` centred drifts (they go with it); a tensor mean is kept as a copy, so changing the
    caller's tensor in place later makes a new one rather than changing a kept one.
    """
    source = drift.source
    if source is not drift:
        return centred(source, mean).transfer(drift.schedule)
    mean = check_mean(mean)
    kept = drift.__dict__.setdefault("_centred", [])
    for i, c in enumerate(kept):
        if _same_mean(c.model.mean, mean):
            kept.append(kept.pop(i))
            return c
    own = mean.detach().clone() if isinstance(mean, Tensor) else mean
    model = CentredModel(drift.model, drift.schedule, drift.prediction, own)
    # type(drift): the Drift class, without importing drift.py (which imports this module)
    c = type(drift)(model, schedule=drift.schedule, prediction=drift.prediction, noise_range=drift.noise_range)
    kept.append(c)
    del kept[:-CENTRED_PER_DRIFT]
    return c


def uncentre(y: Tensor, beta: float, mean: Mean) -> Tensor:
    """``y + beta m`` in ``y``'s dtype (formed in float32 at least): the state of the uncentred process.

    With ``beta = beta_{t_max}`` this maps a centred run's end state back; with ``beta = 1`` its denoised estimate
    ``x1^_c + m``.
    """
    _check_fits(mean, y)
    acc = _compute_dtype(y)
    m = mean.to(acc) if isinstance(mean, Tensor) else mean
    return (y.to(acc) + beta * m).to(y.dtype)
