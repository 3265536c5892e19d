"""Drop-in adapters: models trained in other libraries' conventions as fastinterp drifts.

Each adapter returns a plain :class:`~fastinterp.Drift` (source schedule, prediction type and the model's trained
``noise_range``) that samples, transfers and compiles like any other::

    from fastinterp.adapters import from_diffusers, from_edm, from_flow_matching
    drift = from_diffusers(unet, DDPMScheduler(beta_schedule="scaled_linear", prediction_type="v_prediction"))
    x = fi.sample(drift.transfer(fi.Linear()), torch.randn(16, 3, 32, 32), steps=10, denoise=True)

- :func:`from_diffusers`: diffusers DDPM-family schedulers (``alphas_cumprod``) and ``FlowMatch*`` schedulers
  (:func:`flow_match_time_grid` turns a flow-match scheduler's shifted levels into a ``time_grid``);
- :func:`from_flow_matching`: flow_matching's ``ModelWrapper`` under any of its schedulers;
- :func:`from_edm`: EDM / k-diffusion denoisers ``D(x, sigma)``.

None of these imports diffusers or flow_matching: their objects are read through their attributes. See
``docs/adapters.md``.
"""

from __future__ import annotations

from .diffusers import flow_match_time_grid, from_diffusers
from .edm import from_edm
from .flow_matching import from_flow_matching

__all__ = ["flow_match_time_grid", "from_diffusers", "from_edm", "from_flow_matching"]
