"""The graph backend (CUDA): the whole fused loop, model included, captured once per input layout and replayed.

A capture records the fused backend's kernels (:mod:`.fused`) on static buffers: the input state, the conditioning
tensors and the update matrices are copied into them before every replay, so a new guidance weight ``w`` or new
conditioning of the same shapes replays the same graph. Graphs are keyed by shape, dtype, device and conditioning
structure, in a bounded LRU cache per sampler. Warm-up runs outside the capture (Triton compiles there, never
inside); a replay makes no host synchronisation.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import replace

import torch
from torch import Tensor

from . import fused
from .fused import Call
from .plan import Plan

__all__ = ["CapturedGraphs"]

log = logging.getLogger("fastinterp.sampling")


class _Captured:
    def __init__(self, plan: Plan, call: Call, kernel) -> None:
        kwargs = {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in call.kwargs.items()}
        self.call = replace(
            call, x0=call.x0.detach().clone(), M=call.M.clone(), denoise_coef=call.denoise_coef.clone(), kwargs=kwargs,
            generator=None,
        )  # fmt: skip
        device = call.x0.device
        stream = torch.cuda.Stream(device=device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):  # warm-up outside the capture: Triton compiles and tunes here
            fused.run(plan, self.call, kernel)
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = fused.run(plan, self.call, kernel)

    def replay(self, call: Call) -> Tensor:
        static = self.call
        static.x0.copy_(call.x0)
        for key, value in call.kwargs.items():
            if isinstance(value, Tensor):
                static.kwargs[key].copy_(value)
        static.M.copy_(call.M)
        static.denoise_coef.copy_(call.denoise_coef)
        self.graph.replay()
        return self.out.clone()


class CapturedGraphs:
    """The captured graphs of one plan, in an LRU cache of at most ``cache_size``."""

    def __init__(self, plan: Plan, cache_size: int = 8) -> None:
        self.plan = plan
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, _Captured] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def run(self, call: Call, kernel) -> Tensor:
        x0 = call.x0
        key = (tuple(x0.shape), x0.dtype, x0.device, call.signature)
        captured = self._cache.get(key)
        if captured is None:
            start = time.perf_counter()
            captured = self._cache[key] = _Captured(self.plan, call, kernel)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            log.info(
                "fastinterp: captured a CUDA graph of %s for %s %s in %.2f s",
                self.plan.describe(), tuple(x0.shape), x0.dtype, time.perf_counter() - start,
            )  # fmt: skip
        else:
            self._cache.move_to_end(key)
        return captured.replay(call)
