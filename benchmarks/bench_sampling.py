"""Sampling speed of fastinterp's backends against the loops a user writes himself, alternated in one process.

    python benchmarks/bench_sampling.py [--quick] [--models {trivial,mlp,conv} ...] [--sizes N|MODEL=N,N ...]
        [--contenders NAME ...] [--steps 10] [--dtype {fp32,bf16,fp16}] [--rounds R] [--budget SECONDS]
        [--bandwidth-sizes [N ...]] [--threads T] [--out FILE]

Every contender runs RK4 with ``--steps`` steps (NFE = 4 x steps) of a linear-schedule velocity model served under
the cosine (Trig) schedule through the transfer map, on [1e-3, 1 - 1e-3]:

- ``plain``: the 15-line eager loop one writes by hand (:func:`naive_sample`, schedules recomputed at every stage);
- ``plain+compile(model)``: the same loop around ``torch.compile(model)``;
- ``user-compiled``: ``torch.compile(naive_sample, fullgraph=True)`` (default mode; the time grid is a tensor
  argument, so new times never recompile; ``fullgraph=False`` only if the full graph fails), as a competent user
  compiles his own loop;
- ``flow_matching``: ``ODESolver(ScheduleTransformedModel(model, CondOTScheduler(), CosineScheduler()))`` with
  torchdiffeq's fixed-grid ``rk4`` (Kutta's 3/8 rule, also 4 NFE per step), when ``flow-matching`` is installed;
- fastinterp ``fi.Sampler(..., backend=B)`` for B in ``eager``, ``fused``, ``compile`` and, on CUDA, ``graph``.

Models: ``trivial`` (one elementwise op: overhead-bound), ``mlp`` (2 layers over 256-wide rows) and ``conv`` (a
~92k-parameter conv UNet on (B, 4, 32, 32)). A size N is the number of state elements, rounded to whole rows or
images (the batch is printed). Default sizes: trivial 1e3 1e4 1e5 1e6 1e7; mlp 1000 rows and conv 8 images on the
CPU (16384 rows and 256 images on CUDA): one size each, because every further size costs each compiled contender a
recompile (minutes on 2 cores); ``--sizes 1e4 mlp=1e5,1e6`` sets all models, or one. ``--quick`` runs trivial at
1e3 with short budgets (a smoke run of a minute or two, nearly all of it the cold compiles; ``--quick --sizes 1e3
1e4`` grades two more goals for one recompile more).

Each configuration (model, N) is timed like this:

1. every contender is called once and that first call is timed apart (for a compiled contender, its compile or
   capture time); at each model's start ``torch._dynamo.reset()`` runs and every compiled contender gets a fresh,
   empty inductor cache directory of its own, so its first size compiles cold and its later sizes show what
   default ``torch.compile`` does on a new shape (a recompile with dynamic shapes, then reuse), all contenders alike;
2. a warm-up call, then rounds that call every contender (and the model alone) in turn, the starting contender
   rotating each round: at least ``--rounds`` (3), more (up to 30) while they fit in ``--budget`` seconds (6); a
   sample is a block of calls of at least ~2 ms, synchronised at both ends;
3. reported: median time per call and its spread (IQR as % of the median), NFE/s, the speed-up over ``plain`` and
   over ``user-compiled`` as the median of the per-round ratios, the per-step overhead (time per step minus 4 x the
   model alone) and each output's max relative deviation from ``plain``'s.

Then the fused update's bandwidth against a plain copy (alternated the same way), on CUDA a host-sync check of the
``graph``, ``fused`` and ``compile`` backends under ``torch.cuda.set_sync_debug_mode("error")``, and a Goals block
that grades every speed goal this run measured (CPU goals always, GPU goals on CUDA). A contender that fails prints
an error row and the run goes on. Every figure printed is measured in this run; the machine line gives the load
average at the start and the end, since other processes on the cores skew every timing.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

try:  # fastinterp's own contenders print error rows if the package does not import; the baselines still run
    import fastinterp as fi

    FI_IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001 - any import failure
    fi = None
    FI_IMPORT_ERROR = f"import fastinterp failed: {type(exc).__name__}: {exc}"

T_MIN, T_MAX = 1e-3, 1 - 1e-3
STAGES = 4  # model evaluations per RK4 step
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CONTENDERS = ("plain", "plain+compile(model)", "user-compiled", "flow_matching", "eager", "fused", "compile", "graph")
COMPILED = ("plain+compile(model)", "user-compiled", "compile", "graph")  # first call = compile / capture
MODEL_ALONE = "model alone (1 NFE)"
MODELS = ("trivial", "mlp", "conv")
ROW_ELEMENTS = {"trivial": 1, "mlp": 256, "conv": 4 * 32 * 32}
DEFAULT_SIZES = {
    # one size for mlp and conv: each further size costs every compiled contender a recompile (minutes on 2 cores)
    "cpu": {"trivial": [1e3, 1e4, 1e5, 1e6, 1e7], "mlp": [1000 * 256], "conv": [8 * 4096]},
    "cuda": {"trivial": [1e3, 1e4, 1e5, 1e6, 1e7], "mlp": [16384 * 256], "conv": [256 * 4096]},
}
QUICK_SIZES = {"trivial": [1e3], "mlp": [10 * 256], "conv": [4096]}  # --quick runs trivial unless --models
DEFAULT_BANDWIDTH = {"cpu": [1e6, 1e7], "cuda": [1e6, 1.6e7, 6.4e7]}
BLOCK_SECONDS = 2e-3  # shortest timed block: repeat fast calls to stay far above the timer's resolution
MAX_ROUNDS = 30


# -- models ------------------------------------------------------------------------------------------------------
def _time_like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A 0-d time broadcasts as is; a per-sample time of shape (B,) is shaped (B, 1, ...) against x."""
    return t.reshape(t.shape[0], *([1] * (x.dim() - 1))) if t.dim() else t


class Trivial(torch.nn.Module):
    """An overhead-bound velocity model: one elementwise op."""

    def forward(self, x, t):
        t = _time_like(t, x)
        return x * (1 - t) - t


class MLP(torch.nn.Module):
    """A small MLP over rows of width 256 (time fed as an extra scale)."""

    def __init__(self, width=256, hidden=512):
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(width, hidden), torch.nn.Linear(hidden, width)

    def forward(self, x, t):
        return self.l2(F.silu(self.l1(x) * (1 + _time_like(t, x))))


class ConvUNet(torch.nn.Module):
    """A small conv UNet on (B, 4, 32, 32), ~92k parameters: two stride-2 levels down (the bottom features scaled by
    1 + t), nearest upsampling with skip connections back up, SiLU after every conv but the last."""

    def __init__(self, channels=4, width=20):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        conv = torch.nn.Conv2d
        self.inc = conv(channels, c1, 3, padding=1)
        self.down1 = conv(c1, c2, 3, stride=2, padding=1)
        self.down2 = conv(c2, c3, 3, stride=2, padding=1)
        self.up2 = conv(c3 + c2, c2, 3, padding=1)
        self.up1 = conv(c2 + c1, c1, 3, padding=1)
        self.out = conv(c1, channels, 3, padding=1)

    def forward(self, x, t):
        h1 = F.silu(self.inc(x))
        h2 = F.silu(self.down1(h1))
        h3 = F.silu(self.down2(h2)) * (1 + _time_like(t, x))
        u2 = F.silu(self.up2(torch.cat([F.interpolate(h3, scale_factor=2.0, mode="nearest"), h2], 1)))
        u1 = F.silu(self.up1(torch.cat([F.interpolate(u2, scale_factor=2.0, mode="nearest"), h1], 1)))
        return self.out(u1)


def make_model(name: str) -> torch.nn.Module:
    return {"trivial": Trivial, "mlp": MLP, "conv": ConvUNet}[name]()


def make_state(name: str, n: float, device, dtype) -> torch.Tensor:
    batch = max(1, round(n / ROW_ELEMENTS[name]))
    shape = {"trivial": (batch,), "mlp": (batch, 256), "conv": (batch, 4, 32, 32)}[name]
    return torch.randn(shape, device=device, dtype=dtype)


# -- the loops a user writes --------------------------------------------------------------------------------------
def naive_sample(model, x, ts):
    """The hand-written loop: RK4 over the grid ``ts`` (a tensor) with the linear -> cosine transfer map."""
    half_pi = math.pi / 2

    def f(x, t):
        a, b = torch.cos(half_pi * t), torch.sin(half_pi * t)
        da, db = -half_pi * b, half_pi * a
        tp = b / (a + b)
        xp = x / (a + b)
        x1 = xp + (1 - tp) * model(xp, tp)
        return (da / a) * x + (db - da * b / a) * x1

    for i in range(ts.shape[0] - 1):
        t, h = ts[i], ts[i + 1] - ts[i]
        k1 = f(x, t)
        k2 = f(x + 0.5 * h * k1, t + 0.5 * h)
        k3 = f(x + 0.5 * h * k2, t + 0.5 * h)
        k4 = f(x + h * k3, t + h)
        x = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def flow_matching_available() -> str | None:
    """None if flow_matching imports, else why not."""
    try:
        import flow_matching.path.scheduler  # noqa: F401
        import flow_matching.solver  # noqa: F401
    except ImportError as exc:
        return f"flow_matching not installed ({exc}); pip install flow-matching (the bench extra)"
    return None


def flow_matching_sampler(model, ts):
    from flow_matching.path.scheduler import CondOTScheduler, CosineScheduler, ScheduleTransformedModel
    from flow_matching.solver import ODESolver
    from flow_matching.utils import ModelWrapper

    class Wrapped(ModelWrapper):
        def forward(self, x, t, **extras):
            return self.model(x, t)

    solver = ODESolver(ScheduleTransformedModel(Wrapped(model), CondOTScheduler(), CosineScheduler()))
    return lambda x: solver.sample(x_init=x, step_size=None, method="rk4", time_grid=ts)


# -- measurement --------------------------------------------------------------------------------------------------
def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    where = f"{cpu}, {torch.get_num_threads()} torch threads ({os.cpu_count()} CPUs)"
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}); host {where}"
    return where


class Report:
    """A benchmark's report: :meth:`echo` prints a line of it and writes it to ``path`` (when given) as it goes, so a
    run cut short (a time limit) leaves what it measured; :meth:`log` prints progress to stderr, outside the report.
    ``threads``: torch's thread count for the run (``None``: unchanged), restored by :meth:`close`; :meth:`finish`
    ends the report with the load average, the run's duration and the Goals block."""

    def __init__(self, path: str | None, threads: int | None = None) -> None:
        self._file = None
        self._old_threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "w")  # noqa: SIM115 - closed by close()
        self.start, self.start_load = time.perf_counter(), _load()

    def echo(self, line: str = "") -> None:
        print(line, flush=True)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()

    @staticmethod
    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def finish(self, goals, warning: str | None = None) -> None:
        """The report's end: load average and duration, ``warning`` (if any), the Goals block (:func:`echo_goals`)."""
        self.echo(f"\nload average {load_average()} at the end; run took {time.perf_counter() - self.start:.0f} s")
        if warning:
            self.echo(f"\nwarning: {warning}")
        echo_goals(self.echo, goals)

    def close(self) -> None:
        torch.set_num_threads(self._old_threads)
        if self._file is not None:
            self._file.close()


def echo_goals(echo: Callable[[str], None], rows) -> None:
    """The Goals block every benchmark ends with: rows of ``(goal, target, measured, verdict)``."""
    echo("\n### Goals\n")
    echo("| goal | target | measured | verdict |\n|---|---|---|---|")
    for goal, target, measured, verdict in rows:
        echo(f"| {goal} | {target} | {measured} | {verdict} |")


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def load_average() -> str:
    """The 1-minute load average (other processes competing for the cores skew every timing)."""
    return f"{_load():.2f}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_block(fn: Callable, reps: int, device) -> float:
    """Seconds per call over ``reps`` back-to-back calls, synchronised at both ends."""
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / reps


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}".replace("|", "/")


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)`` of ``values`` (inclusive method; one value: itself three times)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def alternate(fns: dict[str, Callable], estimates: dict[str, float], device, min_rounds: int, budget: float):
    """Round-robin timing: per-round seconds per call of every contender (``{name: {round: seconds}}``) and the
    errors of those that failed mid-way (they leave the rotation)."""
    names = list(fns)
    reps = {name: max(1, min(1000, math.ceil(BLOCK_SECONDS / max(estimates[name], 1e-9)))) for name in names}
    round_time = sum(reps[name] * estimates[name] for name in names)
    rounds = max(min_rounds, min(MAX_ROUNDS, int(budget // max(round_time, 1e-9))))
    times: dict[str, dict[int, float]] = {name: {} for name in names}
    errors: dict[str, str] = {}
    for r in range(rounds):
        start = r % len(names)
        for name in names[start:] + names[:start]:
            if name in errors:
                continue
            try:
                times[name][r] = timed_block(fns[name], reps[name], device)
            except Exception as exc:  # noqa: BLE001 - a contender's failure is reported, the run goes on
                errors[name] = short_error(exc)
                traceback.print_exc(file=sys.stderr)
    return times, errors, rounds


def ratio_stats(base: dict[int, float], other: dict[int, float]) -> tuple[float, float, float] | None:
    """Median and quartiles of the per-round speed-ups base / other, over the rounds both have."""
    ratios = [base[r] / other[r] for r in base if r in other and other[r] > 0]
    if not ratios:
        return None
    q1, q2, q3 = quartiles(ratios)
    return q2, q1, q3


@dataclass
class Entry:
    """One contender at one configuration."""

    first: float | None = None  # seconds of the first call (compile / capture for the compiled contenders)
    times: dict[int, float] = field(default_factory=dict)  # round -> seconds per call
    error: str | None = None
    note: str = ""
    deviation: float | None = None  # max |out - plain| / max |plain|
    sync_check: str | None = None  # CUDA: None not run, "ok" or the error

    @property
    def median(self) -> float | None:
        return statistics.median(self.times.values()) if self.times else None

    @property
    def spread(self) -> float | None:
        if len(self.times) < 2:
            return None
        q1, q2, q3 = quartiles(list(self.times.values()))
        return (q3 - q1) / q2


@dataclass
class Config:
    model: str
    n: int  # state elements
    batch: int
    rounds: int = 0
    entries: dict[str, Entry] = field(default_factory=dict)
    module: torch.nn.Module | None = None  # kept alive: no later model reuses its id (caches may key on ids)

    def ratio(self, name: str, base: str) -> tuple[float, float, float] | None:
        a, b = self.entries.get(name), self.entries.get(base)
        if a is None or b is None or a.error or b.error:
            return None
        return ratio_stats(b.times, a.times)

    def overhead_per_step(self, name: str, steps: int) -> float | None:
        """Seconds per step beyond STAGES evaluations of the model timed alone."""
        e, m = self.entries.get(name), self.entries.get(MODEL_ALONE)
        if e is None or m is None or e.median is None or m.median is None:
            return None
        return e.median / steps - STAGES * m.median


class CacheDirs:
    """A fresh, empty inductor cache directory per (model, compiled contender), under one temporary root."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="bench_sampling_inductor_")
        self.dirs: dict[tuple[str, str], str] = {}

    @contextlib.contextmanager
    def use(self, key: tuple[str, str]):
        if key not in self.dirs:
            self.dirs[key] = tempfile.mkdtemp(dir=self.root)
        old = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = self.dirs[key]
        _clear_inductor_memory_caches()
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = old
            _clear_inductor_memory_caches()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _clear_inductor_memory_caches() -> None:
    with contextlib.suppress(Exception):
        from torch._inductor.utils import clear_caches

        clear_caches()


# -- contenders ---------------------------------------------------------------------------------------------------
def build_contender(name: str, model, x, ts, steps: int) -> list[tuple[Callable, str]]:
    """Candidate callables for ``name`` (later ones are fallbacks if the first call of an earlier one fails)."""
    if name == "plain":
        return [(lambda: naive_sample(model, x, ts), "")]
    if name == "plain+compile(model)":
        compiled_model = torch.compile(model)
        return [(lambda: naive_sample(compiled_model, x, ts), "")]
    if name == "user-compiled":
        full, partial = torch.compile(naive_sample, fullgraph=True), torch.compile(naive_sample)
        return [(lambda: full(model, x, ts), "fullgraph"), (lambda: partial(model, x, ts), "fullgraph=False")]
    if name == "flow_matching":
        fm = flow_matching_sampler(model, ts)
        return [(lambda: fm(x), "torchdiffeq rk4 (3/8 rule)")]
    if fi is None:
        raise RuntimeError(FI_IMPORT_ERROR)
    drift = fi.Drift(model, schedule=fi.Linear(), prediction="velocity").transfer(fi.Trig())
    sampler = fi.Sampler(drift, steps=steps, backend=name, t_min=T_MIN, t_max=T_MAX, check_finite=False)
    return [(lambda: sampler(x), "")]


def unavailable(name: str, device: torch.device) -> str | None:
    if name == "graph" and device.type != "cuda":
        return "graph needs CUDA"
    if name == "flow_matching":
        return flow_matching_available()
    return None


def run_config(model_name, n, contenders, steps, device, dtype, caches, min_rounds, budget, log) -> Config:
    torch.manual_seed(0)
    model = make_model(model_name).to(device=device, dtype=dtype)
    x = make_state(model_name, n, device, dtype)
    # times stay in at least fp32, as a user keeps them: in bf16, t_max = 0.999 rounds to 1, where the cosine alpha is 0
    t_dtype = torch.promote_types(dtype, torch.float32)
    ts = torch.linspace(T_MIN, T_MAX, steps + 1, device=device, dtype=t_dtype)
    t_half = torch.tensor(0.5, device=device, dtype=t_dtype)
    cfg = Config(model_name, x.numel(), x.shape[0], module=model)
    fns: dict[str, Callable] = {}
    estimates: dict[str, float] = {}
    reference = None
    for name in contenders:
        entry = cfg.entries[name] = Entry()
        log(f"  {model_name} N={cfg.n:.0e}: {name} first call ...")
        try:
            candidates = build_contender(name, model, x, ts, steps)
        except Exception as exc:  # noqa: BLE001
            entry.error = short_error(exc)
            traceback.print_exc(file=sys.stderr)
            continue
        for i, (fn, note) in enumerate(candidates):
            try:
                with caches.use((model_name, name)) if name in COMPILED else contextlib.nullcontext():
                    sync(device)
                    start = time.perf_counter()
                    out = fn()
                    sync(device)
                    entry.first = time.perf_counter() - start
                if name in COMPILED or entry.first < 0.5:
                    fn()  # warm-up
                    estimates[name] = timed_block(fn, 1, device)
                else:  # a slow eager call: its first call is warm enough to size the rounds
                    estimates[name] = entry.first
                entry.error, entry.note = None, note
                fns[name] = fn
                break
            except Exception as exc:  # noqa: BLE001 - a contender's failure is an error row, not the end of the run
                entry.error = short_error(exc) + (" (then the fallback)" if i + 1 < len(candidates) else "")
                traceback.print_exc(file=sys.stderr)
        if name not in fns:
            continue
        out = out.float()
        if name == "plain":
            reference = out
        if reference is not None and out.shape == reference.shape:
            entry.deviation = float((out - reference).abs().max() / reference.abs().max().clamp_min(1e-30))
        del out
    cfg.entries[MODEL_ALONE] = Entry()
    fns[MODEL_ALONE] = lambda: model(x, t_half)
    try:
        fns[MODEL_ALONE]()
        estimates[MODEL_ALONE] = timed_block(fns[MODEL_ALONE], 3, device)
    except Exception as exc:  # noqa: BLE001
        cfg.entries[MODEL_ALONE].error = short_error(exc)
        del fns[MODEL_ALONE]
    log(f"  {model_name} N={cfg.n:.0e}: alternating {len(fns)} contenders ...")
    times, errors, cfg.rounds = alternate(fns, estimates, device, min_rounds, budget)
    for name, per_round in times.items():
        cfg.entries[name].times = per_round
        if name in errors:
            cfg.entries[name].error = "during the rounds: " + errors[name]
    if device.type == "cuda":
        for name in ("graph", "fused", "compile"):
            if name in fns and not cfg.entries[name].error:
                cfg.entries[name].sync_check = host_sync_check(fns[name], device)
    return cfg


def host_sync_check(fn: Callable, device) -> str:
    """Run one warmed-up call with synchronising CUDA calls turned into errors."""
    sync(device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
        result = "ok"
    except Exception as exc:  # noqa: BLE001
        result = short_error(exc)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    sync(device)
    return result


# -- bandwidth ----------------------------------------------------------------------------------------------------
@dataclass
class Bandwidth:
    n: int
    fused_gbs: float | None = None
    copy_gbs: float | None = None
    fraction: tuple[float, float, float] | None = None  # median, q1, q3 of per-round fused/copy bandwidth
    kernel: str = ""
    error: str | None = None


def bench_bandwidth(sizes, device, dtype, min_rounds, budget, log) -> list[Bandwidth]:
    results = []
    for n in sizes:
        n = int(n)
        res = Bandwidth(n)
        results.append(res)
        log(f"  bandwidth N={n:.0e} ...")
        try:
            if fi is None:
                raise RuntimeError(FI_IMPORT_ERROR)
            from fastinterp import kernels

            ins = [torch.randn(n, device=device, dtype=dtype) for _ in range(5)]
            outs = [torch.empty_like(ins[0]) for _ in range(2)]
            coef = torch.randn(2, 5, device=device, dtype=torch.float64)
            # the update the fused backend runs: Triton on CUDA, the native kernel on the CPU, else the torch twin
            if device.type == "cuda" and kernels.kernels_run_on(device):
                res.kernel = "Triton lincomb"
                fused = lambda: kernels.lincomb(ins, coef, outs)  # noqa: E731
            elif device.type == "cpu" and getattr(kernels, "HAS_NATIVE", False):
                res.kernel = "native lincomb_cpu"
                fused = lambda: kernels.lincomb_cpu(ins, coef, outs)  # noqa: E731
            else:
                res.kernel = "torch twin lincomb_ref"
                fused = lambda: kernels.lincomb_ref(ins, coef, 2)  # noqa: E731
            dst = torch.empty_like(ins[0])
            fns = {"fused": fused, "copy": lambda: dst.copy_(ins[0])}
            for fn in fns.values():
                fn()
            estimates = {name: timed_block(fn, 2, device) for name, fn in fns.items()}
            times, errors, _ = alternate(fns, estimates, device, min_rounds, budget)
            if errors:
                raise RuntimeError("; ".join(f"{k}: {v}" for k, v in errors.items()))
            size = ins[0].element_size() * n
            res.fused_gbs = 7 * size / statistics.median(times["fused"].values()) / 1e9
            res.copy_gbs = 2 * size / statistics.median(times["copy"].values()) / 1e9
            # bandwidth fraction per round: (7 size / t_fused) / (2 size / t_copy)
            ratio = ratio_stats(times["copy"], times["fused"])
            res.fraction = tuple(3.5 * r for r in ratio) if ratio else None
        except Exception as exc:  # noqa: BLE001
            res.error = short_error(exc)
            traceback.print_exc(file=sys.stderr)
    return results


# -- report -------------------------------------------------------------------------------------------------------
def fmt_ratio(r: tuple[float, float, float] | None) -> str:
    return f"{r[0]:.2f}x" if r else "n/a"


def fmt_ratio_iqr(r: tuple[float, float, float] | None) -> str:
    return f"{r[0]:.2f}x (IQR {r[1]:.2f}-{r[2]:.2f}x)" if r else "n/a"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "n/a"
    return f"{s:.3g} s" if s >= 0.1 else f"{s * 1e3:.3g} ms"


TABLE_HEADER = (
    "| model | N | batch | contender | first call | median / call | IQR | NFE/s | vs plain | vs user-compiled "
    "| overhead/step (us) | max rel. dev. vs plain |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_rows(cfg: Config, steps: int) -> list[str]:
    nfe = STAGES * steps
    rows = []
    for name, e in cfg.entries.items():
        label = name + (f" ({e.note})" if e.note else "")
        cells = [cfg.model, f"{cfg.n:.0e}", str(cfg.batch), label]
        if e.median is None:
            rows.append("| " + " | ".join(cells + [f"error: {e.error or 'not timed'}"] + [""] * 7) + " |")
            continue
        if e.error:  # failed part-way through the rounds
            cells[3] += f" [error: {e.error}]"
        spread = f"{e.spread:.0%}" if e.spread is not None else "n/a"
        if name == MODEL_ALONE:
            rows.append("| " + " | ".join(cells + ["", f"{e.median * 1e3:.4g} ms", spread] + [""] * 5) + " |")
            continue
        first = fmt_seconds(e.first)
        if name in COMPILED:
            first += " (capture)" if name == "graph" else " (compile)"
        over = cfg.overhead_per_step(name, steps)
        cells += [
            first,
            f"{e.median * 1e3:.4g} ms",
            spread,
            f"{nfe / e.median:,.0f}",
            fmt_ratio(cfg.ratio(name, "plain")),
            fmt_ratio(cfg.ratio(name, "user-compiled")),
            f"{over * 1e6:,.1f}" if over is not None else "n/a",
            f"{e.deviation:.1e}" if e.deviation is not None else "n/a",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def goals(configs: list[Config], bandwidth: list[Bandwidth], steps: int, device) -> list[tuple[str, str, str, str]]:
    """(goal, target, measured, verdict) for every goal; verdict PASS, FAIL or NOT MEASURED."""
    by = {(c.model, c.n): c for c in configs}
    out = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    def speedup_goal(goal, model, n, name, base, target):
        cfg = by.get((model, int(n)))
        if cfg is None:
            return (goal, f">= {target}x", f"{model} N={n:.0e} not in this run", "NOT MEASURED")
        missing = [k for k in (name, base) if k not in cfg.entries]
        if missing:
            return (goal, f">= {target}x", f"{' and '.join(missing)} not run", "NOT MEASURED")
        failed = [f"{k}: {cfg.entries[k].error}" for k in (name, base) if cfg.entries[k].error]
        r = cfg.ratio(name, base)
        if r is None:
            return (goal, f">= {target}x", "; ".join(failed) or "no common rounds", "FAIL")
        extra = f", {name} first call {fmt_seconds(cfg.entries[name].first)}" if name == "fused" else ""
        return (goal, f">= {target}x", f"{fmt_ratio_iqr(r)}{extra}", verdict(r[0] >= target))

    trivial_ns = sorted({c.n for c in configs if c.model == "trivial"})
    for n in sorted({int(v) for v in (1e4, 1e5, 1e6, 1e7)} | {v for v in trivial_ns if 1e4 <= v <= 1e7}):
        out.append(speedup_goal(f"3. fused vs plain, trivial N={n:.0e}", "trivial", n, "fused", "plain", 1.5))
    for n in (1e4, 1e5, 1e6):
        out.append(
            speedup_goal(
                f"4. compile vs user-compiled, trivial N={n:.0e}", "trivial", n, "compile", "user-compiled", 1.5
            )
        )
    for model in ("mlp", "conv"):
        goal = f"4. compile vs user-compiled, {model} (every N)"
        lines = [speedup_goal(goal, model, c.n, "compile", "user-compiled", 1.0) for c in configs if c.model == model]
        if not lines:
            out.append((goal, ">= 1.0x", f"{model} not in this run", "NOT MEASURED"))
            continue
        ns = [c.n for c in configs if c.model == model]
        figures = "; ".join(f"N={n:.0e}: {line[2]}" for n, line in zip(ns, lines, strict=True))
        verdicts = {line[3] for line in lines}
        out.append((goal, ">= 1.0x", figures, verdicts.pop() if len(verdicts) == 1 else "FAIL"))
    for model in MODELS:
        cfgs = [c for c in configs if c.model == model]
        goal = f"4. compile time vs user-compiled's, {model}"
        if not cfgs:
            continue
        pairs = [(c.entries.get("compile"), c.entries.get("user-compiled")) for c in cfgs]
        if any(a is None or b is None for a, b in pairs):
            out.append((goal, "<= 1.0x", "compile or user-compiled not run", "NOT MEASURED"))
            continue
        if any(a.first is None or a.error or b.first is None for a, b in pairs):
            errs = "; ".join(f"{a.error}" for a, _ in pairs if a.error) or "user-compiled failed"
            out.append((goal, "<= 1.0x", errs, "FAIL"))
            continue
        ours, theirs = sum(a.first for a, _ in pairs), sum(b.first for _, b in pairs)
        cold = f"first size {pairs[0][0].first:.1f} s vs {pairs[0][1].first:.1f} s"
        out.append(
            (
                goal,
                "<= 1.0x",
                f"{ours / theirs:.2f}x: {ours:.1f} s vs {theirs:.1f} s over {len(cfgs)} size(s) ({cold})",
                verdict(ours <= theirs),
            )
        )
    cfg = by.get(("trivial", 1000))
    goal = "4. compile per-step overhead, trivial N=1e3"
    if cfg is None or "compile" not in cfg.entries:
        out.append((goal, "<= 15 us", "trivial N=1e3 with compile not in this run", "NOT MEASURED"))
    else:
        over = cfg.overhead_per_step("compile", steps)
        e, m = cfg.entries["compile"], cfg.entries.get(MODEL_ALONE)
        if over is None:
            out.append((goal, "<= 15 us", e.error or (m.error if m else "model alone not timed"), "FAIL"))
        else:
            out.append(
                (
                    goal,
                    "<= 15 us",
                    f"{over * 1e6:.1f} us ({e.median / steps * 1e6:.1f} us/step - {STAGES} x "
                    f"{m.median * 1e6:.1f} us model alone)",
                    verdict(over <= 15e-6),
                )
            )
    if device.type != "cuda":
        out.append(("GPU goals (graph, bandwidth, host syncs)", "", "need a CUDA device", "NOT MEASURED"))
        return out
    out.append(speedup_goal("GPU: graph vs flow_matching, trivial N=1e6", "trivial", 1e6, "graph", "flow_matching", 20))
    out.append(speedup_goal("GPU: graph vs compile, trivial N=1e6", "trivial", 1e6, "graph", "compile", 1.5))
    large = [b for b in bandwidth if b.n >= 1.6e7]
    if not large:
        out.append(
            ("GPU: fused bandwidth / copy, N >= 1.6e7", ">= 80%", "no size >= 1.6e7 in this run", "NOT MEASURED")
        )
    for b in large:
        goal = f"GPU: fused bandwidth / copy, N={b.n:.1e}"
        if b.fraction is None:
            out.append((goal, ">= 80%", b.error or "not measured", "FAIL"))
        else:
            f = b.fraction
            out.append(
                (
                    goal,
                    ">= 80%",
                    f"{f[0]:.0%} (IQR {f[1]:.0%}-{f[2]:.0%}; {b.fused_gbs:.0f} vs {b.copy_gbs:.0f} GB/s, {b.kernel})",
                    verdict(f[0] >= 0.8),
                )
            )
    for name in ("graph", "fused"):
        checks = [(c, c.entries[name].sync_check) for c in configs if name in c.entries and c.entries[name].sync_check]
        goal = f"GPU: no host sync in the {name} loop"
        if not checks:
            out.append((goal, "none", f"{name} did not run", "NOT MEASURED"))
            continue
        bad = [f"{c.model} N={c.n:.0e}: {s}" for c, s in checks if s != "ok"]
        out.append(
            (goal, "none", "; ".join(bad) if bad else f"no sync in {len(checks)} configuration(s)", verdict(not bad))
        )
    return out


def parse_sizes(parser, tokens, models, defaults) -> dict[str, list[float]]:
    """``--sizes`` tokens: plain numbers apply to every model without sizes of its own, ``MODEL=N,N`` to one."""
    common, own = [], {}
    for token in tokens or []:
        name, _, values = token.rpartition("=")
        if name and name not in MODELS:
            parser.error(f"--sizes: unknown model {name!r} in {token!r}; models are {', '.join(MODELS)}")
        try:
            numbers = [float(v) for v in values.split(",") if v]
        except ValueError:
            parser.error(f"--sizes: {token!r} is not N or MODEL=N,N")
        if not numbers or any(not math.isfinite(v) or v < 1 for v in numbers):
            parser.error(f"--sizes: sizes must be >= 1, got {token!r}")
        (own.setdefault(name, []) if name else common).extend(numbers)
    return {m: own.get(m) or common or defaults[m] for m in models}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: trivial at N=1e3, short budgets")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=None, help="default: all")
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=None,
        metavar="N|MODEL=N,N",
        help="state sizes: plain numbers for every model, MODEL=N,N for one (default: per model, see the docstring)",
    )
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=None, help="default: all available")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dtype", choices=DTYPES, default="fp32")
    parser.add_argument(
        "--rounds", type=int, default=3, help="minimum rounds; more, up to 30, while they fit in --budget (default 3)"
    )
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds of alternated timing per configuration (default 6)"
    )
    parser.add_argument("--bandwidth-sizes", type=float, nargs="*", default=None, help="none: skip the section")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", default=None, help="also write the report to this markdown file")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[args.dtype]
    models = args.models or (["trivial"] if args.quick else list(MODELS))
    defaults = QUICK_SIZES if args.quick else DEFAULT_SIZES[device.type]
    sizes = parse_sizes(parser, args.sizes, models, defaults)
    bandwidth_sizes = args.bandwidth_sizes
    if bandwidth_sizes is None:
        bandwidth_sizes = [1e5] if args.quick else DEFAULT_BANDWIDTH[device.type]
    min_rounds = max(1, args.rounds)
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 6.0)
    report = Report(args.out, args.threads)  # closed in the finally below
    echo, log = report.echo, report.log

    contenders, skipped = ["plain"], []  # plain first: the baseline every ratio and deviation refers to
    for name in dict.fromkeys(args.contenders or CONTENDERS):
        why = unavailable(name, device)
        if why:
            skipped.append(f"{name} ({why})")
        elif name != "plain":
            contenders.append(name)
    try:
        import flow_matching

        fm_version = getattr(flow_matching, "__version__", "?")
    except ImportError:
        fm_version = "not installed"
    echo("# fastinterp sampling benchmark\n")
    echo(
        f"machine: {machine(device)}; torch {torch.__version__}; fastinterp "
        f"{getattr(fi, '__version__', 'not importable') if fi else 'not importable'}; flow_matching {fm_version}; "
        f"{args.dtype}; {time.strftime('%Y-%m-%d %H:%M')}; load average {load_average()} at the start"
    )
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        echo("\nnote: TRITON_INTERPRET=1 is set: fastinterp's fused kernels run in Triton's CPU interpreter here.")
    if FI_IMPORT_ERROR:
        echo(f"\nnote: {FI_IMPORT_ERROR}")
    if skipped:
        echo(f"\nskipped: {', '.join(skipped)}")
    echo(
        f"\nRK4, {args.steps} steps ({STAGES * args.steps} NFE), linear-schedule velocity model served under the "
        f"cosine schedule through the transfer map on [{T_MIN:g}, {T_MAX:g}].\n\n"
        "- first call: cold at each model's first size (torch._dynamo.reset() and a fresh, empty inductor cache dir\n"
        "  per compiled contender), then what default torch.compile does on a new shape;\n"
        f"- median / call: over >= {min_rounds} rounds alternating the contenders, the first one rotating "
        f"(~{budget:g} s per configuration);\n  IQR as % of the median; vs X: median of the per-round ratios;\n"
        f"- overhead/step: time per step - {STAGES} x the model alone; max rel. dev.: max |x - plain| / max |plain|."
    )
    configs: list[Config] = []
    caches = CacheDirs()
    try:
        with torch.no_grad():
            for model_name in models:
                if any(name in COMPILED for name in contenders):
                    torch._dynamo.reset()  # each model's first size compiles cold
                echo(f"\n### {model_name}\n")
                echo(TABLE_HEADER)
                for n in sizes[model_name]:
                    cfg = run_config(
                        model_name, n, contenders, args.steps, device, dtype, caches, min_rounds, budget, log
                    )
                    configs.append(cfg)
                    for row in table_rows(cfg, args.steps):
                        echo(row)
                    echo(f"| | | | ({cfg.rounds} rounds) | | | | | | | | |")
            bandwidth: list[Bandwidth] = []
            if bandwidth_sizes:
                echo("\n### Fused update (5 inputs -> 2 outputs, the RK4 middle stage) vs a plain copy\n")
                if device.type == "cuda":
                    echo("Sizes below 1.6e7 may sit in L2 (not flushed).\n")
                echo("| N | kernel | fused GB/s | copy GB/s | fraction of copy (median, IQR) |")
                echo("|---|---|---|---|---|")
                bandwidth = bench_bandwidth(bandwidth_sizes, device, dtype, min_rounds, budget, log)
                for b in bandwidth:
                    if b.error:
                        echo(f"| {b.n:.1e} | error: {b.error} | | | |")
                    else:
                        f = b.fraction
                        echo(
                            f"| {b.n:.1e} | {b.kernel} | {b.fused_gbs:.1f} | {b.copy_gbs:.1f} | "
                            f"{f[0]:.0%} ({f[1]:.0%}-{f[2]:.0%}) |"
                        )
            if device.type == "cuda":
                echo("\n### Host syncs (one warmed-up call under torch.cuda.set_sync_debug_mode('error'))\n")
                echo("| model | N | backend | result |\n|---|---|---|---|")
                for cfg in configs:
                    for name in ("graph", "fused", "compile"):
                        e = cfg.entries.get(name)
                        if e is not None and e.sync_check:
                            echo(f"| {cfg.model} | {cfg.n:.0e} | {name} | {e.sync_check} |")
        busy, warning = max(report.start_load, _load()), None
        if busy > max(1, (os.cpu_count() or 1) - 1) and torch.get_num_threads() > 1:
            warning = (
                f"load average up to {busy:.2f} on {os.cpu_count()} CPUs: other processes hold the cores, "
                "so each multi-threaded parallel region may wait for a descheduled thread; rerun on an idle machine "
                "or with --threads 1 for stable figures."
            )
        report.finish(goals(configs, bandwidth, args.steps, device), warning)
    finally:
        caches.close()
        report.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
