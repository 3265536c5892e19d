"""The compiled backend: ``torch.compile(fullgraph=True)`` of whole chunks of the sampling loop, model included.

Why whole chunks: one compiled RK step called from Python pays dynamo's guards and the runtime wrappers (~60 us on
a 2-core CPU) at every step, more than the step itself at small N. A chunk of several steps is one graph: the guards
run once per chunk, inductor fuses each update with the model's elementwise tail and across stages, and the
coefficients enter as tensors (the device tables), so new time grids and schedule pairs of the same length reuse the
graph. How long a chunk is depends on the model: compile time grows with the operators traced, while a model of many
operators hides the per-call overhead anyway. The first call counts the operators of one eager evaluation and takes
as many steps per graph as fit :data:`OPS_PER_GRAPH` (a divisor of the step count, at most :data:`MAX_EVALS`
evaluations): RK4 with 10 steps of an elementwise model is one graph of the whole run (inductor fuses it into a few
passes over memory), a conv net gets one graph per step, compiled in a fraction of the time of the whole loop.

Robustness: every compiled artefact is keyed by what its graph depends on (the model, the stage layout, chunk
length, trailing shape, dtype, device, conditioning structure) and lives in one process-wide LRU cache of at most
:data:`CACHE_SIZE` artefacts, shared by every sampler of the same model (a new sampler, grid or schedule pair of the
same length reuses the graph). Each artefact compiles a fresh code object, so dynamo's recompile limit (counted per
code object) is never shared between artefacts; the batch dimension is left to dynamo's automatic dynamic shapes (a
second batch size recompiles once with a symbolic batch, then any batch size reuses it). Artefacts reach the model
through a weak reference, so they never keep it alive, and its artefacts are evicted when it is collected.
"""

from __future__ import annotations

import logging
import time
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from .._utils import check_output
from ..kernels import lincomb_ref
from . import fused
from .fused import Call
from .layout import StageLayout
from .plan import Plan, accumulation_dtype

__all__ = ["CACHE_SIZE", "MAX_EVALS", "SDE_CHUNK", "cache_clear", "cache_info", "run"]

log = logging.getLogger("fastinterp.sampling")

#: Model evaluations traced into one graph at most (longer runs are cut into chunks of equal length).
MAX_EVALS = 64
#: Operators traced into one graph at most (the model's, counted on one eager call, and the updates').
OPS_PER_GRAPH = 512
#: Euler-Maruyama steps per graph: each chunk's Brownian increments are drawn ahead into one buffer.
SDE_CHUNK = 8
#: Compiled artefacts kept in the process (least recently used evicted).
CACHE_SIZE = 64

_CACHE: OrderedDict[tuple, Callable] = OrderedDict()
_CHUNKS: dict[tuple, int] = {}  # steps per graph, per (model, layout, input) key
_WATCHED: dict[int, weakref.finalize] = {}


def cache_info() -> int:
    """How many compiled artefacts the process holds."""
    return len(_CACHE)


def cache_clear() -> None:
    """Drop every compiled artefact (the next call of each sampler compiles again)."""
    _CACHE.clear()
    _CHUNKS.clear()


def _evict(owner_id: int) -> None:
    _WATCHED.pop(owner_id, None)
    _REFS.pop(owner_id, None)
    for key in [k for k in _CACHE if k[0][0] == owner_id]:
        del _CACHE[key]
    for key in [k for k in _CHUNKS if k[0][0] == owner_id]:
        del _CHUNKS[key]


_REFS: dict[int, tuple[tuple, Callable[[], object]]] = {}  # id(model) -> its identity and weak reference


def _weak(model) -> tuple[tuple, Callable[[], object]]:
    """``(identity, ref)``: a cache identity for ``model`` and a weak reference to it (bound methods too).

    The identity is the owner's ``id`` (and the function's, for a bound method); the owner's death evicts its
    artefacts, so an ``id`` reused by a later object never finds a stale graph. Objects that cannot be weakly
    referenced are held strongly (their artefacts then keep them alive until evicted).
    """
    found = _REFS.get(id(model))
    if found is not None and found[1]() is model:
        return found
    bound = isinstance(model, types.MethodType)
    owner = model.__self__ if bound else model
    identity = (id(owner), id(model.__func__) if bound else 0)
    try:
        ref = weakref.WeakMethod(model) if bound else weakref.ref(model)
    except TypeError:
        return identity, lambda: model
    if id(owner) not in _WATCHED:
        _WATCHED[id(owner)] = weakref.finalize(owner, _evict, id(owner))
    if not bound:  # a bound method is a new object at every attribute access: nothing to remember it by
        _REFS[id(model)] = (identity, ref)
    return identity, ref


def _fresh(fn: Callable) -> Callable:
    """A copy of ``fn`` with its own code object: dynamo keeps its cache (and recompile count) per code object."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def _loop(model_ref, layout: StageLayout, denoise_layout: StageLayout, plan: Plan, length: int, first: bool,
          final: bool, guided: bool, acc: torch.dtype):  # fmt: skip
    """The traced chunk. The first chunk starts from the caller's state (cast to ``acc`` and scaled into the first
    model input inside the graph); the final one ends with the denoising evaluation, if any, and the cast back."""
    stages, sde, denoise = plan.solver.stages, plan.sde, plan.denoise and final

    def loop(x: Tensor, xin: Tensor | None, M: Tensor, tm: Tensor, xi: Tensor | None, kwargs: dict, dcoef, dt, scale):
        model = model_ref()
        out_dtype = x.dtype
        if first:
            xin = x * scale
            xin = torch.cat([xin, xin]) if guided else xin
            x = x.to(acc)
        B = x.shape[0]
        for n in range(length):
            bufs = {"x": x}
            if sde:
                bufs["xi"] = xi[n]
            for i in range(stages):
                y = check_output(model(xin, tm[n, i], **kwargs), xin, model)
                if guided:
                    bufs["xin"], bufs["y"], bufs["yc"] = xin[:B], y[:B], y[B:]
                else:
                    bufs["xin"], bufs["y"] = xin, y
                names = layout.outputs[i]
                outs = lincomb_ref([bufs[k] for k in layout.inputs[i]], M[n, i], len(names), layout.out_like(i))
                bufs.update(zip(names, outs, strict=True))
                xin = torch.cat([bufs["xin"], bufs["xinc"]]) if guided else bufs["xin"]
            x = bufs["x"]
        if not final:
            return x, xin
        if not denoise:
            return x.to(out_dtype if first else xin.dtype), xin
        y = check_output(model(xin, dt, **kwargs), xin, model)
        bufs = {"xin": xin[:B], "y": y[:B], "yc": y[B:]}
        return lincomb_ref([bufs[k] for k in denoise_layout.inputs[0]], dcoef[0], 1, denoise_layout.out_like(0))[0], xin

    return loop


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def _chunk_length(plan: Plan, model, xin: Tensor, t: Tensor, kwargs: dict) -> int:
    """Steps per graph: as many as fit :data:`OPS_PER_GRAPH` (counted on one eager evaluation), dividing the steps."""
    stages = plan.solver.stages
    cap = min(plan.steps, SDE_CHUNK if plan.sde else max(1, MAX_EVALS // stages))
    with _OpCounter() as counter:
        model(xin, t, **kwargs)
    want = max(1, min(cap, OPS_PER_GRAPH // (stages * (counter.ops + 4))))  # + the update's few ops
    return want if want == plan.steps else max(d for d in range(1, want + 1) if plan.steps % d == 0)


def _compiled(key: tuple, build: Callable[[], Callable]) -> tuple[Callable, bool]:
    fn = _CACHE.get(key)
    if fn is not None:
        _CACHE.move_to_end(key)
        return fn, False
    fn = _CACHE[key] = torch.compile(_fresh(build()), fullgraph=True)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return fn, True


def run(plan: Plan, call: Call) -> Tensor:
    """One run of ``call``, chunk by chunk; returns the result in ``x0``'s dtype."""
    x0, tables, kwargs, signature, generator = call.x0, call.tables, call.kwargs, call.signature, call.generator
    model = plan.table.model
    identity, model_ref = _weak(model)
    acc = accumulation_dtype(x0.dtype)
    layout, dlayout = call.layout, call.denoise_layout
    common = (layout.key, dlayout.key, plan.sde, x0.shape[1:], x0.dtype, x0.device, x0.shape[0] == 1, signature)
    chunk = _CHUNKS.get((identity, plan.steps, *common))
    if chunk is None:
        xin = x0 * tables.first_scale
        xin = torch.cat([xin, xin]) if call.guided else xin
        chunk = _CHUNKS[(identity, plan.steps, *common)] = _chunk_length(plan, model, xin, tables.t_model[0, 0], kwargs)
    whole = chunk == plan.steps  # one graph from x0 to the result; else equal chunks between an eager start and end
    if whole:
        x, xin = x0, None
    else:
        x, xin = x0.to(acc), x0 * tables.first_scale
        xin = torch.cat([xin, xin]) if call.guided else xin
    key = (identity, chunk, whole, whole and plan.denoise, *common)  # a whole-run graph ends with the denoising
    fn, new = _compiled(key, lambda: _loop(model_ref, layout, dlayout, plan, chunk, whole, whole, call.guided, acc))
    start = time.perf_counter()
    # the whole run takes the tables as they are: a view per call costs microseconds at small N
    M, tm = (call.M, tables.t_model) if whole else (None, None)
    for n0 in range(0, plan.steps, chunk):
        xi = None
        if plan.sde:
            xi = torch.empty((chunk, *x0.shape), dtype=acc, device=x0.device)
            for n in range(chunk):
                torch.randn(x0.shape, generator=generator, dtype=acc, device=x0.device, out=xi[n])
        if not whole:
            M, tm = call.M[n0 : n0 + chunk], tables.t_model[n0 : n0 + chunk]
        x, xin = fn(x, xin, M, tm, xi, kwargs, call.denoise_coef, tables.denoise_t, tables.first_scale_t)
        if new:
            log.info(
                "fastinterp: compiled %d steps of %s for %s %s in %.2f s",
                chunk, plan.describe(), tuple(x0.shape), x0.dtype, time.perf_counter() - start,
            )  # fmt: skip
            new = False
    if whole:
        return x
    if plan.denoise:
        return fused.denoise(plan, call, x, xin, fused.update_kernel(x0.device)[1])
    return x if x.dtype == x0.dtype else x.to(x0.dtype)
