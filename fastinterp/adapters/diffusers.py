"""diffusers models as fastinterp drifts: DDPM-family schedulers and ``FlowMatchEulerDiscreteScheduler``.

**DDPM family** (every scheduler carrying ``alphas_cumprod``: DDPM, DDIM, DPMSolverMultistep, Euler, Heun, UniPC,
...). diffusers' state ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` is the variance-preserving interpolant
``I = alpha z + beta x1`` with ``alpha = sqrt(1 - abar)``, ``beta = sqrt(abar)`` and noise-to-signal ratio
``sigma = sqrt((1 - abar) / abar)`` (diffusers' Karras ``sigma``). The drift's source schedule is
:class:`~fastinterp.Trig` (ratio ``cot(pi t / 2)``): at a Trig time ``t'`` the model sees the very state diffusers
feeds it, with the fractional timestep whose ``sigma`` is ``cot(pi t' / 2)``, found by interpolating ``log sigma``
linearly between the table's entries (diffusers' ``_sigma_to_t``, used by its Karras / DPM / Euler schedulers).
With zero terminal SNR (``rescale_betas_zero_snr``) the last entry is ``sigma = inf``; on that last interval the
timestep interpolates ``1 / sigma`` linearly instead (``log sigma`` cannot reach ``inf``). Predictions: ``epsilon``
is the noise denoiser (``"noise"``), ``sample`` the data denoiser (``"x1"``), and ``v_prediction``
``v = sqrt(abar) eps - sqrt(1 - abar) x0 = beta z - alpha x1`` is ``-(2 / pi)`` times Trig's velocity
``-(pi / 2) beta z + (pi / 2) alpha x1``, so the wrapper returns ``-(pi / 2) v`` as ``"velocity"``. The noise range
is ``(sigma[0], sigma[T - 1])``, ``inf`` at the top with zero terminal SNR.

**Flow matching** (``FlowMatchEulerDiscreteScheduler`` and the other ``FlowMatch*`` schedulers): the model takes
``timestep = T sigma`` (``T = num_train_timesteps``) at ``x = (1 - sigma) x0 + sigma noise`` and predicts
``noise - x0``. That is :class:`~fastinterp.Linear` with ``sigma = 1 - t``, whose velocity is ``x1 - z``: the
wrapper returns ``-model(x, T (1 - t))``. The scheduler's ``shift`` (or dynamic shifting) only moves the inference
levels: :func:`flow_match_time_grid` turns them into a fastinterp time grid. The noise range is
``(sigma_min / (1 - sigma_min), sigma_max / (1 - sigma_max))`` from the scheduler's ``sigma_min`` / ``sigma_max``.

Models are called as ``model(x, timestep, **cond)`` with ``timestep`` shaped ``(B,)`` (what ``UNet2DModel`` and the
diffusers transformers accept), in the time's dtype (float32 at least); an output with ``.sample`` (diffusers'
``return_dict=True``) or a tuple (``return_dict=False``) is unwrapped. Conditioning (``class_labels``,
``encoder_hidden_states``, ...) reaches the model through ``cond=`` of the samplers. diffusers itself is never
imported here: schedulers are read through their attributes and ``config``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from ..drift import Drift
from ..schedules import Linear, Trig

__all__ = ["from_diffusers", "flow_match_time_grid"]

#: diffusers' ``prediction_type`` -> (fastinterp prediction, output factor) under the Trig source schedule.
_PREDICTIONS = {"epsilon": ("noise", 1.0), "sample": ("x1", 1.0), "v_prediction": ("velocity", -0.5 * math.pi)}


def _config(scheduler: object, key: str, default: object = None) -> object:
    config = getattr(scheduler, "config", None)
    if config is None:
        return default
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def _unwrap(out: object) -> object:
    """The tensor of a diffusers output: ``out.sample`` (``return_dict=True``) or ``out[0]`` (a tuple)."""
    sample = getattr(out, "sample", None)
    if isinstance(sample, Tensor):
        return sample
    if isinstance(out, (tuple, list)) and out:
        return out[0]
    return out


def _batch_timestep(timestep: Tensor, x: Tensor) -> Tensor:
    """``timestep`` shaped ``(B,)`` for a state shaped ``(B, ...)`` (one time for the batch, or one per sample)."""
    if timestep.numel() == 1:
        return timestep.reshape(()).expand(x.shape[0])
    if timestep.numel() == x.shape[0]:
        return timestep.reshape(x.shape[0])
    raise ValueError(
        f"t must be one time or one per sample: got shape {tuple(timestep.shape)} for a state shaped {tuple(x.shape)}"
    )


def _model_device(model: object) -> torch.device:
    """The device of an ``nn.Module``'s first parameter or buffer (CPU for anything else)."""
    if isinstance(model, torch.nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


class DiffusersModel:
    """``model(x', t', **cond)`` under :class:`~fastinterp.Trig` for a diffusers model on an ``alphas_cumprod`` table.

    Maps the Trig time ``t'`` to diffusers' fractional timestep (module docstring) and returns the model's output,
    times ``-(pi / 2)`` for ``v_prediction``.

    Attributes:
        model: the diffusers model.
        log_sigmas: ``log sigma`` of every training timestep, ``(T,)`` float64 (``inf`` last with zero terminal SNR).
        prediction_type: diffusers' prediction type.
    """

    def __init__(self, model: object, log_sigmas: Tensor, prediction_type: str) -> None:
        self.model = model
        self.log_sigmas = log_sigmas.to(_model_device(model))
        self.prediction_type = prediction_type
        self._factor = _PREDICTIONS[prediction_type][1]

    def timestep(self, t: Tensor) -> Tensor:
        """diffusers' fractional timestep in ``[0, T - 1]`` at the Trig times ``t`` (float64, shaped like ``t``).

        On the table's interval ``[k, k + 1]`` the timestep is ``k + w`` with ``w`` the fraction of the way from
        ``log sigma_k`` to ``log sigma_{k+1}`` (of ``1 / sigma`` on an interval ending at ``sigma = inf``). It is
        evaluated as the sum over every interval of that fraction clamped to ``[0, 1]`` (1 for the intervals below,
        0 above): no search and no data-dependent indexing, so it traces into ``torch.compile`` graphs and CUDA
        graphs (``T`` elementwise operations per call).
        """
        ls = self.log_sigmas
        if ls.device != t.device:  # the model moved after the drift was built: keep the table where it runs now
            ls = self.log_sigmas = ls.to(t.device)
        lo, width = ls[:-1], ls[1:] - ls[:-1]
        t64 = t.to(torch.float64).unsqueeze(-1)
        # log sigma = log(alpha / beta) of Trig, with alpha written as sin(pi (1 - t) / 2) (exact at t = 1)
        log_sigma = torch.log(torch.sin(0.5 * math.pi * (1 - t64))) - torch.log(torch.sin(0.5 * math.pi * t64))
        w_log = (log_sigma - lo) / width
        w_inv = -torch.expm1(lo - log_sigma)  # 1/sigma linear where the interval ends at sigma = inf
        w = torch.clamp(torch.where(torch.isinf(width), w_inv, w_log), 0.0, 1.0)
        return w.sum(-1)

    def __call__(self, x: Tensor, t: Tensor, **cond) -> Tensor:
        timestep = _batch_timestep(self.timestep(t).to(t.dtype), x)
        out = _unwrap(self.model(x, timestep, **cond))
        return out if self._factor == 1.0 else self._factor * out

    def __repr__(self) -> str:
        return f"DiffusersModel({type(self.model).__name__}, T={self.log_sigmas.numel()}, {self.prediction_type})"


class FlowMatchModel:
    """``model(x, t, **cond)`` under :class:`~fastinterp.Linear` for a diffusers flow-match model: the velocity
    ``-model(x, T (1 - t))`` (the model predicts ``noise - x0`` at ``sigma = 1 - t``)."""

    def __init__(self, model: object, num_train_timesteps: int) -> None:
        self.model = model
        self.num_train_timesteps = num_train_timesteps

    def __call__(self, x: Tensor, t: Tensor, **cond) -> Tensor:
        timestep = _batch_timestep(self.num_train_timesteps * (1 - t), x)
        return -_unwrap(self.model(x, timestep, **cond))

    def __repr__(self) -> str:
        return f"FlowMatchModel({type(self.model).__name__}, T={self.num_train_timesteps})"


def _is_flow_match(scheduler: object) -> bool:
    return type(scheduler).__name__.startswith("FlowMatch")


def _ddpm_drift(model: object, scheduler: object) -> Drift:
    name = type(scheduler).__name__
    prediction_type = _config(scheduler, "prediction_type", "epsilon")
    if prediction_type not in _PREDICTIONS:
        raise ValueError(
            f"from_diffusers: {name}.config.prediction_type must be one of {sorted(_PREDICTIONS)}, "
            f"got {prediction_type!r}"
        )
    timestep_type = _config(scheduler, "timestep_type", "discrete")
    if timestep_type != "discrete":
        raise ValueError(
            f"from_diffusers: {name}.config.timestep_type must be 'discrete' (the model takes a training timestep), "
            f"got {timestep_type!r}; for a model taking sigma itself use from_edm"
        )
    abar = torch.as_tensor(scheduler.alphas_cumprod).detach().to(device="cpu", dtype=torch.float64).flatten().clone()
    if abar.numel() < 2:
        raise ValueError(f"from_diffusers: {name}.alphas_cumprod must hold at least 2 timesteps, got {abar.numel()}")
    if _config(scheduler, "rescale_betas_zero_snr", False):
        abar[-1] = 0.0  # trained on pure noise there (EulerDiscrete stores 2**-24 to keep its own sigma finite)
    log_sigmas = 0.5 * (torch.log1p(-abar) - torch.log(abar))
    finite = log_sigmas[:-1]
    if not (
        torch.isfinite(finite).all()
        and (log_sigmas[-1] > finite[-1])
        and (finite[1:] > finite[:-1]).all()
        and 0 < float(abar[0]) < 1
    ):
        raise ValueError(
            f"from_diffusers: {name}.alphas_cumprod must decrease strictly inside (0, 1) (its last entry may be 0 "
            f"with zero terminal SNR), got values from {float(abar[0]):.6g} to {float(abar[-1]):.6g}"
        )
    prediction = _PREDICTIONS[prediction_type][0]
    sigmas = torch.exp(log_sigmas)
    noise_range = (float(sigmas[0]), float(sigmas[-1]))
    return Drift(DiffusersModel(model, log_sigmas, prediction_type), Trig(), prediction, noise_range=noise_range)


def _flow_match_drift(model: object, scheduler: object) -> Drift:
    name = type(scheduler).__name__
    if _config(scheduler, "invert_sigmas", False):
        raise ValueError(f"from_diffusers: {name}.config.invert_sigmas=True (inverted sigmas) is not supported")
    steps = _config(scheduler, "num_train_timesteps", 1000)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"from_diffusers: {name}.config.num_train_timesteps must be an int >= 1, got {steps!r}")
    sigma_min = float(getattr(scheduler, "sigma_min", 0.0) or 0.0)
    sigma_max = float(getattr(scheduler, "sigma_max", 1.0) or 1.0)
    if not 0.0 <= sigma_min < sigma_max <= 1.0:
        raise ValueError(
            f"from_diffusers: {name} must have 0 <= sigma_min < sigma_max <= 1, got {sigma_min!r} and {sigma_max!r}"
        )
    ratios = [s / (1 - s) if s < 1 else math.inf for s in (sigma_min, sigma_max)]
    noise_range = None if ratios == [0.0, math.inf] else (ratios[0], ratios[1])
    return Drift(FlowMatchModel(model, steps), Linear(), "velocity", noise_range=noise_range)


def from_diffusers(model: object, scheduler: object) -> Drift:
    """A diffusers model and the scheduler it was trained with, as a :class:`~fastinterp.Drift`.

    Args:
        model: called as ``model(x, timestep, **cond)`` (``UNet2DModel``, ``DiTTransformer2DModel``, ... or any
            callable of that form); ``.sample`` or tuple outputs are unwrapped.
        scheduler: a DDPM-family scheduler (any with ``alphas_cumprod``: every ``beta_schedule``,
            ``rescale_betas_zero_snr``, ``prediction_type`` epsilon / v_prediction / sample) or a ``FlowMatch*``
            scheduler. Only its training configuration matters, not its inference settings.

    Returns:
        A drift under :class:`~fastinterp.Trig` (DDPM family) or :class:`~fastinterp.Linear` (flow matching) with
        the scheduler's trained ``noise_range`` (module docstring); transfer it to any schedule.

    Example:
        >>> drift = from_diffusers(unet, DDPMScheduler(beta_schedule="scaled_linear"))
        >>> x = fi.sample(drift.transfer(fi.Linear()), torch.randn(16, 3, 32, 32), steps=10, denoise=True)
    """
    if not callable(model):
        raise TypeError(
            f"from_diffusers: model must be callable as model(x, timestep, **cond), got {type(model).__name__}"
        )
    if _is_flow_match(scheduler):
        return _flow_match_drift(model, scheduler)
    if getattr(scheduler, "alphas_cumprod", None) is not None:
        return _ddpm_drift(model, scheduler)
    raise TypeError(
        f"from_diffusers: scheduler must be a diffusers DDPM-family scheduler (with alphas_cumprod) or a FlowMatch* "
        f"scheduler, got {type(scheduler).__name__}"
    )


def flow_match_time_grid(scheduler: object, steps: int, *, mu: float | None = None) -> Tensor:
    """A flow-match scheduler's inference levels (its ``shift``, dynamic shifting, Karras... sigmas) as a time grid.

    The scheduler (a copy: the one given is not modified) sets ``steps + 1`` inference timesteps; their sigmas,
    without the terminal 0, become the times ``t = 1 - sigma`` of a grid of ``steps`` intervals for
    :func:`fastinterp.sample`'s ``time_grid``. Finish with ``denoise=True``: the final jump to ``sigma = 0`` is the
    data denoiser, exactly the scheduler's last Euler step.

    Args:
        scheduler: a ``FlowMatch*`` diffusers scheduler.
        steps: the grid's intervals, ``>= 1``.
        mu: the shift of ``use_dynamic_shifting`` schedulers (diffusers' ``mu``), else None.

    Returns:
        ``steps + 1`` increasing float64 times in ``[0, 1)``.
    """
    if not _is_flow_match(scheduler):
        raise TypeError(
            f"flow_match_time_grid: scheduler must be a FlowMatch* scheduler, got {type(scheduler).__name__}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"flow_match_time_grid: steps must be an int >= 1, got {steps!r}")
    if _config(scheduler, "invert_sigmas", False):
        raise ValueError("flow_match_time_grid: invert_sigmas=True (inverted sigmas) is not supported")
    local = copy.deepcopy(scheduler)
    local.set_timesteps(steps + 1, mu=mu)
    sigmas = torch.as_tensor(local.sigmas).detach().to(device="cpu", dtype=torch.float64).flatten()[: steps + 1]
    grid = 1 - sigmas
    if grid.numel() != steps + 1 or not (grid[1:] > grid[:-1]).all() or grid[0] < 0 or grid[-1] >= 1:
        raise ValueError(
            f"flow_match_time_grid: {type(scheduler).__name__} gave sigmas {sigmas.tolist()}, not {steps + 1} "
            "decreasing levels in (0, 1]"
        )
    return grid
