"""PDE engine benchmark: stochastic Navier-Stokes steps/s, FFT pairs, thread scaling, Gaussian fields/s, and the
stochastic Allen-Cahn samplers (SPDE steps/s dense vs FFT, float64 vs float32; pCN steps/s).

    python benchmarks/bench_pde.py [--quick | --tiny] [--only {engine,fft,allen-cahn,torch}] [--rounds R]
        [--torch-device DEV] [--out FILE]

Prints one markdown report naming the command, the machine and the load average at the start and the end, and writes
it to --out (default benchmarks/results/pde_cpu.md for the full run and for --only engine, pde_fft.md for --only fft,
allen_cahn_cpu.md for --only allen-cahn, pde_torch_DEV.md for --only torch; with --tiny, a smoke test on 32^2 grids,
only where --out says). The torch section (the twins at batch 64 on --torch-device, default cuda when available,
against the C++ solver on all cores) is part of the full run when a device is given or CUDA is present.

Baselines are measured in the same run: a numpy implementation of the same schemes (scipy.fft with workers=1 when
installed, else numpy.fft); for the FFT pair FFTW through pyfftw (the `bench` extra) when installed, and FFTW compiled
into the extension when it was built with it; for Allen-Cahn the dense modal transforms and float64. Comparisons of
the engine sections alternate their contenders (:func:`alternate`, ``--rounds`` rounds, the first contender rotating)
and report medians with quartiles, ratios as medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

# The numpy baseline is single-threaded like the C++ runs it is compared with: OpenBLAS (numpy's tensordot of the
# forcing modes) otherwise spins up a thread per core, and on a shared machine its spinning threads collapsed the
# baseline to ~130 steps/s in some runs. Must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from fastinterp import _core  # noqa: E402
from fastinterp.pde import AllenCahn1D, AllenCahnSPDE, GaussianField, NavierStokes2D  # noqa: E402

try:
    import scipy.fft as _sfft

    def rfft2(x):
        return _sfft.rfft2(x, workers=1)

    def irfft2(x, s):
        return _sfft.irfft2(x, s=s, workers=1)

    FFT_NAME = "scipy.fft (pocketfft, workers=1)"
except ImportError:  # pragma: no cover
    rfft2, irfft2, FFT_NAME = np.fft.rfft2, (lambda x, s: np.fft.irfft2(x, s=s)), "numpy.fft"


def vector_isa() -> str:
    """The widest x86 vector extension the CPU reports (the FFT and RNG loops are compiled for each)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    if "avx512f" in flags and "avx512dq" in flags:
        return "AVX-512"
    return "AVX2" if "avx2" in flags else "no AVX2"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class NumpyNS:
    """The same dealiased pseudo-spectral schemes in numpy (the baseline, one trajectory).

    ``basdevant=False`` evaluates the advection directly (u, v, w_x, w_y back, the product forward: five transforms);
    ``True`` in Basdevant's form like the C++ solver (u, v back, v^2 - u^2 and u v forward: four).
    """

    def __init__(self, ns: NavierStokes2D, basdevant: bool = False) -> None:
        self.basdevant = basdevant
        n = self.n = ns.n
        kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
        ky = np.fft.rfftfreq(n, 1.0 / n)[None, :]
        k2 = kx**2 + ky**2
        kmax = (n - 1) // 3
        self.keep = ((np.abs(kx) <= kmax) & (ky <= kmax)).astype(float)
        self.ikx, self.iky = 1j * kx, 1j * ky
        self.c1, self.c2 = kx * ky * self.keep, (kx**2 - ky**2) * self.keep
        self.inv_k2 = np.where(k2 > 0, 1 / np.maximum(k2, 1), 0.0) * self.keep
        rate = ns.nu * k2 + ns.alpha
        self.lin = 1 / (1 + ns.dt * rate) if ns.scheme == "em_imex" else np.exp(-rate * ns.dt)
        self.scheme, self.dt, self.eps = ns.scheme, ns.dt, ns.eps
        x = 2 * np.pi * np.arange(n) / n
        X, Y = np.meshgrid(x, x, indexing="ij")
        fs = [np.sin(6 * X), np.cos(7 * X), np.sin(5 * (X + Y)), np.cos(8 * (X + Y)),
              np.cos(6 * X), np.sin(7 * X), np.cos(5 * (X + Y)), np.sin(8 * (X + Y))][: ns.modes]  # fmt: skip
        self.F = np.stack([rfft2(f) for f in fs])

    def nonlinear(self, w):
        s = (self.n, self.n)
        wk = w * self.keep
        psi = wk * self.inv_k2
        u, v = irfft2(self.iky * psi, s), irfft2(-self.ikx * psi, s)
        if self.basdevant:  # N = -P(A), A^ = -kx ky FFT(v^2 - u^2) + (ky^2 - kx^2) FFT(u v)
            return self.c1 * rfft2((v - u) * (v + u)) + self.c2 * rfft2(u * v)
        wx, wy = irfft2(self.ikx * wk, s), irfft2(self.iky * wk, s)
        return -self.keep * rfft2(u * wx + v * wy)

    def step(self, w, dW):
        xi = self.eps * np.tensordot(dW, self.F, 1)
        n1 = self.nonlinear(w)
        if self.scheme == "em_imex":
            return (w + self.dt * n1 + xi) * self.lin
        s = w + (self.dt / 2) * n1 + xi
        return self.lin * s + (self.dt / 2) * self.nonlinear(self.lin * (s + (self.dt / 2) * n1))


def timeit(fn, min_time: float) -> float:
    """Seconds per call: warm up once, then repeat until min_time has passed; best of 3 batches."""
    fn()
    best = math.inf
    for _ in range(3):
        reps, t0 = 0, time.perf_counter()
        while True:
            fn()
            reps += 1
            el = time.perf_counter() - t0
            if el >= min_time / 3:
                break
        best = min(best, el / reps)
    return best


def alternate(contenders: dict[str, Callable[[int], float]], seconds: float, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, timed in alternation so that all of them see the same moments of a shared
    machine. ``contenders`` maps a name to ``run(k)``, which makes ``k`` calls and returns the seconds per call (timed
    in Python, or inside C++ where a contender times itself). Each is warmed up and calibrated once so that one of its
    turns takes about ``seconds / rounds / len(contenders)``; then every round gives each contender one turn, the
    first contender rotating from round to round. Returns ``{name: [seconds per call in round r]}``."""
    slot = seconds / rounds / len(contenders)
    reps = {}
    for name, run in contenders.items():
        run(1)  # warm-up: plans, caches, first touch of the buffers
        per = run(1)
        per = run(max(1, int(0.01 / max(per, 1e-9))))
        reps[name] = max(1, round(slot / max(per, 1e-9)))
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(contenders[name](reps[name]))
    return times


def python_calls(fn: Callable[[], object]) -> Callable[[int], float]:
    """``run(k)`` for :func:`alternate`: ``k`` calls of ``fn`` timed from Python."""

    def run(k: int) -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        return (time.perf_counter() - t0) / k

    return run


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    """Median and the lower and upper quartiles (inclusive method) of ``xs``."""
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q2, q1, q3


def ratios(a: list[float], b: list[float]) -> list[float]:
    """Per-round ratios ``a[r] / b[r]`` of two contenders timed by the same :func:`alternate` call."""
    return [x / y for x, y in zip(a, b, strict=True)]


def show(xs: list[float], fmt: str, scale: float = 1.0, invert: bool = False, unit: str = "") -> str:
    """``median<unit> (q1-q3)`` of ``xs`` (times ``scale``, or ``scale / x`` for rates when ``invert``), each number
    in format ``fmt``."""
    vals = [scale / x if invert else scale * x for x in xs]
    med, lo, hi = quartiles(vals)
    return f"{med:{fmt}}{unit} ({lo:{fmt}}-{hi:{fmt}})"


def calibrated_steps(run, seconds: float) -> int:
    """Steps that make one call of run(steps) take about `seconds` (from a timed 4-step call)."""
    run(4)
    t0 = time.perf_counter()
    run(4)
    per = (time.perf_counter() - t0) / 4
    return max(4, int(seconds / max(per, 1e-9)))


def allen_cahn_section(out, T: float, rounds: int) -> None:
    """SPDE steps/s per trajectory (dense vs FFT transforms, float64 vs float32) and pCN steps/s per chain, the
    contenders of each row alternated (:func:`alternate`): rates are medians over the rounds, ratios medians of the
    per-round ratios with their quartiles."""
    import torch

    torch.set_num_threads(1)

    def rates(contenders: dict, work: int) -> tuple[dict, dict]:
        """Median work units per second of each contender, and the per-round seconds for :func:`ratios`."""
        t = alternate({k: python_calls(fn) for k, fn in contenders.items()}, T, rounds)
        return {k: work / quartiles(v)[0] for k, v in t.items()}, t

    def ratio(t: dict, a, b) -> str:  # "a / b" as rates: seconds of b over seconds of a
        return show(ratios(t[b], t[a]), ".2f", unit="x")

    out("## Stochastic Allen-Cahn SPDE: steps/s per trajectory, C++, one thread")
    out()
    out("Exponential Euler-Maruyama, double well, free ends (2-D: free), 2 trajectories per call, generated noise. "
        "Dense: the modal basis as matrix products (O(n^2) per row); FFT: DCT-I via a real FFT of size 2n. "
        f"The four contenders of a row alternate ({rounds} rounds, the first rotating); rates are medians, ratios "
        "the median (quartiles) of the per-round ratios. `auto` is the transform `AllenCahnSPDE(n, dim=d)` picks, "
        "`faster` the one measured faster here in float64.")  # fmt: skip
    out()
    out("| dim | n | nodes | dense f64 | dense f32 | FFT f64 | FFT f32 | FFT / dense (f64) | f32 / f64 (FFT) | auto | "
        "faster |")  # fmt: skip
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for dim, sizes in ((1, (32, 64, 128, 256, 512, 2048)), (2, (8, 16, 32, 64, 128))):
        for n in sizes:
            calls, steps = {}, 0  # steps per call: ~T/40 for the slowest contender, the same for all four
            for tr in ("dense", "fft"):
                sp = AllenCahnSPDE(n, dim=dim, transform=tr)
                for dt in ("float64", "float32"):
                    a = sp.initial_state(2, seed=0, dtype=dt)
                    k = calibrated_steps(lambda k, sp=sp, a=a: sp.integrate(a, k, seed=0), T / 40)
                    steps = k if not steps else min(steps, k)
                    calls[tr, dt] = (sp, a)
            calls = {key: lambda sp=sp, a=a: sp.integrate(a, steps, seed=0) for key, (sp, a) in calls.items()}
            r, t = rates(calls, 2 * steps)
            auto = AllenCahnSPDE(n, dim=dim).transform
            faster = "fft" if r["fft", "float64"] > r["dense", "float64"] else "dense"
            out(f"| {dim} | {n} | {sp.nodes}^{dim} | {r['dense', 'float64']:,.0f} | {r['dense', 'float32']:,.0f} | "
                f"{r['fft', 'float64']:,.0f} | {r['fft', 'float32']:,.0f} | "
                f"{ratio(t, ('fft', 'float64'), ('dense', 'float64'))} | "
                f"{ratio(t, ('fft', 'float32'), ('fft', 'float64'))} | {auto} | {faster} |")  # fmt: skip
    out()
    sp = AllenCahnSPDE(128)
    a64 = sp.initial_state(64, seed=0)
    r, _ = rates({"torch": lambda: sp.integrate(a64, 50, seed=0, backend="torch")}, 64 * 50)
    out(f"Torch twin (dense, float64, batch 64, 1 torch thread), 1-D n = 128: {r['torch']:,.0f} steps/s per "
        "trajectory.")  # fmt: skip
    out()

    out("## Allen-Cahn pCN (exact MCMC): steps/s per chain")
    out()
    steps = 2000 if T >= 1 else 500
    out(
        f"Free ends, double well, 8 chains x {steps:,} steps per call, `thin=10`; torch: 64 chains x 200 steps. The "
        f"four alternate ({rounds} rounds). float32 rounds the recorded samples only (the chain runs in float64), "
        "so its rate should equal float64's within noise."
    )
    out()
    out("| N | C++ 1 thread f64 | C++ 1 thread f32 | C++ 2 threads f64 | 2 threads / 1 | torch twin f64, batch 64 |")
    out("|---|---|---|---|---|---|")
    for N in (32, 64, 128):
        ac = AllenCahn1D(N)
        st, st64 = ac.initial_state(8, seed=0), ac.initial_state(64, seed=0)
        t = alternate({
            "f64": python_calls(lambda: ac.run(st, steps, seed=0, thin=10, threads=1)),
            "f32": python_calls(lambda: ac.run(st, steps, seed=0, thin=10, threads=1, dtype="float32")),
            "2t": python_calls(lambda: ac.run(st, steps, seed=0, thin=10, threads=2)),
            "torch": python_calls(lambda: ac.run(st64, 200, seed=0, thin=10, backend="torch")),
        }, T, rounds)  # fmt: skip
        r = {k: (64 * 200 if k == "torch" else 8 * steps) / quartiles(v)[0] for k, v in t.items()}
        out(f"| {N} | {r['f64']:,.0f} | {r['f32']:,.0f} | {r['2t']:,.0f} | {ratio(t, '2t', 'f64')} | "
            f"{r['torch']:,.0f} |")  # fmt: skip
    out()


def torch_section(out, T: float, n: int, device: str, batch: int = 64) -> None:
    """The torch twins on ``device`` at ``batch`` trajectories (the GPU path), beside the C++ solver on all CPU cores
    in the same run. On a CPU device it only keeps this code path exercised (tests, smoke runs)."""
    import torch

    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({cpu_name()})"
    threads = os.cpu_count() or 1

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def rate(fn, work):
        def run():
            fn()
            sync()

        return work / timeit(run, T / 4)

    out(f"## Torch twins on {dev.type} ({name}), batch {batch}")
    out()
    out(f"Trajectory-steps/s of the torch backend (`backend='torch', device='{device}'`; Navier-Stokes draws its "
        f"normals in C++ on the CPU and copies them once per 1024 steps) against the C++ solver on all {threads} CPU "
        f"cores, same states; fields/s for the Gaussian fields (torch draws its own normals there).")  # fmt: skip
    out()
    out(f"| solver | dtype | torch {dev.type} | C++ {threads} threads | torch / C++ |")
    out("|---|---|---|---|---|")
    steps = 10 if T < 1 else 40
    for scheme, dt in [("em_imex", 1e-4), ("if_heun", 5e-3)]:
        ns = NavierStokes2D(n, dt=dt, scheme=scheme)
        for dtype in (np.float64, np.float32):
            s0 = ns.initial_state(batch, seed=0, dtype=dtype)
            rt = rate(lambda: ns.integrate(s0, steps, seed=1, backend="torch", device=device), batch * steps)
            rc = rate(lambda: ns.integrate(s0, steps, seed=1, threads=threads), batch * steps)
            out(f"| Navier-Stokes {n}^2 {scheme} | {np.dtype(dtype).name} | {rt:,.0f} | {rc:,.0f} | {rt / rc:.2f}x |")
    g = GaussianField(n)
    m = 4 * batch
    for dtype in (np.float64, np.float32):
        rt = rate(lambda: g.sample(m, seed=0, dtype=dtype, backend="torch", device=device), m)
        rc = rate(lambda: g.sample(m, seed=0, dtype=dtype, threads=threads), m)
        out(f"| Gaussian fields {n}^2 (fields/s) | {np.dtype(dtype).name} | {rt:,.0f} | {rc:,.0f} | {rt / rc:.2f}x |")
    out()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter timings (smoke run)")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="smoke test of the code paths: 32^2 grids, millisecond timings, meaningless rates; the report is only "
        "written where --out says",
    )
    ap.add_argument(
        "--only",
        choices=("engine", "fft", "allen-cahn", "torch"),
        default=None,
        help="only the engine sections (Navier-Stokes, FFT, threads, fields), only the FFT pair comparison, only "
        "Allen-Cahn, or only the torch twins on --torch-device",
    )
    ap.add_argument("--rounds", type=int, default=None, help="alternation rounds per comparison (default 7; --quick 5)")
    ap.add_argument(
        "--torch-device",
        default=None,
        help="device for the torch-twin section (default: cuda when available, else the section is skipped; 'cpu' "
        "runs it on the CPU as a smoke test)",
    )
    ap.add_argument("--out", default=None, help="report file (default depends on --only, see the module docstring)")
    args = ap.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.tiny else 5 if args.quick else 7
    if args.rounds < 2:
        ap.error(f"--rounds must be >= 2 (a spread needs two rounds), got {args.rounds}")
    results = os.path.join(os.path.dirname(__file__), "results")
    if args.torch_device is None:
        import torch

        args.torch_device = "cuda" if torch.cuda.is_available() else None
    if args.only == "torch" and args.torch_device is None:
        ap.error("--only torch needs a CUDA device or --torch-device")
    if args.out is None and not args.tiny:
        default = {"allen-cahn": "allen_cahn_cpu.md", "torch": f"pde_torch_{args.torch_device}.md", "fft": "pde_fft.md"}
        args.out = os.path.join(results, default.get(args.only, "pde_cpu.md"))
    T = 0.05 if args.tiny else 0.6 if args.quick else 3.0
    n = 32 if args.tiny else 128
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    info = _core.build_info()
    title = {"allen-cahn": "Stochastic Allen-Cahn benchmark (CPU)", "torch": "PDE engine: torch twins"}
    out(f"# {title.get(args.only, 'PDE engine benchmark (CPU)')}")
    out()
    command = " ".join(["python benchmarks/bench_pde.py", *(sys.argv[1:] if argv is None else argv)])
    out(f"- command: `{command}`")
    out(f"- machine: {cpu_name()} ({vector_isa()}), {os.cpu_count()} logical cores visible, {platform.system()} "
        f"{platform.machine()}; bulk normals: {_core.rng_kernel()} kernels")  # fmt: skip
    out(f"- build: {info['compiler']}, FFT backends {_core.fft_backends()}; baseline FFT {FFT_NAME}, numpy "
        f"{np.__version__} (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}); {pyfftw_version()}; "
        f"python {platform.python_version()}")  # fmt: skip
    out(f"- {time.strftime('%Y-%m-%d %H:%M')}; load average at start: {os.getloadavg()[0]:.2f} (shared machines "
        f"make every rate noisy)")  # fmt: skip
    out()
    t_start = time.perf_counter()
    if args.only in (None, "engine"):
        engine_sections(out, T, n, args.rounds)
    if args.only == "fft":
        fft_section(out, T, n, args.rounds)
    if args.only in (None, "allen-cahn"):
        allen_cahn_section(out, T, args.rounds)
    if args.only in (None, "torch"):
        if args.torch_device is None:
            out("## Torch twins on CUDA: skipped (no CUDA device; `--torch-device cpu` runs the section on the CPU)")
            out()
        else:
            torch_section(out, T, n, args.torch_device)
    out(f"load average at the end: {os.getloadavg()[0]:.2f}; run took {time.perf_counter() - t_start:.0f} s")

    if args.out is not None:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"written to {args.out}")
    return 0


def engine_sections(out, T: float, n: int, rounds: int) -> None:
    """Navier-Stokes steps/s against numpy, FFT pairs, thread scaling, Gaussian fields/s."""
    ns_section(out, T, n, rounds)
    fft_section(out, T, n, rounds)
    threads_section(out, T, n, rounds)
    fields_section(out, T, n, rounds)


def ns_section(out, T: float, n: int, rounds: int) -> None:
    """C++ Navier-Stokes steps/s against the same schemes in numpy, alternated."""
    out(f"## Stochastic Navier-Stokes {n}^2, float64, one thread")
    out()
    out("C++ evaluates the advection in Basdevant's form (four real transforms a step); numpy is timed both in the")
    out("direct form (five transforms, what a numpy script usually does) and in the same form as the C++ solver.")
    out(f"The three are timed in alternation ({rounds} rounds, the first contender rotating): rates are medians of "
        "the rounds, ratios medians of the per-round ratios, with the quartiles in brackets.")  # fmt: skip
    out()
    out("| scheme | dt | C++ steps/s | numpy direct steps/s | ratio | numpy Basdevant steps/s | ratio | C++ time/s |")
    out("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for scheme, dt in [("em_imex", 1e-4), ("if_heun", 5e-3)]:
        ns = NavierStokes2D(n, dt=dt, scheme=scheme)
        s0 = ns.initial_state(1, seed=0)
        steps = 50
        w = s0[0].copy()
        dW = rng.standard_normal(8) * math.sqrt(dt)
        one = ns.integrate(s0, 1, dW=dW.reshape(1, 1, 8))[0]
        refs = [NumpyNS(ns, basdevant=form) for form in (False, True)]
        for form, ref in zip((False, True), refs, strict=True):
            err = np.abs(ref.step(w, dW) - one).max() / np.abs(one).max()
            assert err < 1e-12, f"the numpy baseline (basdevant={form}) disagrees with C++ by {err:.1e}"
        t = alternate(
            {
                "cpp": python_calls(lambda: ns.integrate(s0, steps, seed=1)),  # seconds per call of `steps` steps
                "direct": python_calls(lambda: refs[0].step(w, dW)),
                "basdevant": python_calls(lambda: refs[1].step(w, dW)),
            },
            3 * T,
            rounds,
        )
        c = [x / steps for x in t["cpp"]]  # seconds per step
        out(f"| {scheme} | {dt:g} | {show(c, ',.0f', invert=True)} | {show(t['direct'], ',.0f', invert=True)} | "
            f"{show(ratios(t['direct'], c), '.1f', unit='x')} | {show(t['basdevant'], ',.0f', invert=True)} | "
            f"{show(ratios(t['basdevant'], c), '.1f', unit='x')} | {dt / quartiles(c)[0]:,.2f} |")  # fmt: skip
    out()


def pyfftw_version() -> str:
    """'pyfftw X' when installed, else 'no pyfftw'."""
    try:
        import pyfftw
    except ImportError:
        return "no pyfftw"
    return f"pyfftw {pyfftw.__version__}"


def pyfftw_pair(n: int, dtype):
    """pyfftw's r2c + c2r pair at ``n``^2 in ``dtype`` (FFTW_MEASURE plans, one thread), or None when pyfftw is not
    installed: ``(execute, call)``, two zero-argument functions. ``execute`` runs the two planned transforms on their
    own aligned buffers (the c2r reading the r2c's output; no copies, no normalisation: the closest to a C++ caller);
    ``call`` is ``pyfftw.builders``' rfft2 / irfft2 objects called on an array, as a Python user calls them (input
    copied into the plan's buffer, the inverse normalised). Both are checked to give the input back first."""
    try:
        import pyfftw
    except ImportError:
        return None
    x = np.random.default_rng(1).standard_normal((n, n)).astype(dtype)
    cdtype = np.result_type(dtype, np.complex64)
    a = pyfftw.empty_aligned((n, n), dtype=dtype)
    b = pyfftw.empty_aligned((n, n // 2 + 1), dtype=cdtype)
    c = pyfftw.empty_aligned((n, n), dtype=dtype)
    flags = ("FFTW_MEASURE",)
    fwd = pyfftw.FFTW(a, b, axes=(0, 1), direction="FFTW_FORWARD", flags=flags, threads=1)
    inv = pyfftw.FFTW(b, c, axes=(0, 1), direction="FFTW_BACKWARD", flags=flags, threads=1)
    a[:] = x  # FFTW_MEASURE planning overwrites the buffers

    def execute():
        fwd.execute()
        inv.execute()

    f = pyfftw.builders.rfft2(x, threads=1, planner_effort="FFTW_MEASURE")
    g = pyfftw.builders.irfft2(f(x), s=(n, n), threads=1, planner_effort="FFTW_MEASURE")

    def call():
        return g(f(x))

    tol = 1e-12 if dtype == np.float64 else 1e-5
    execute()
    for name, y in (("execute()", c / n**2), ("builders", call())):
        err = float(np.abs(y - x).max() / np.abs(x).max())
        assert err < tol, f"pyfftw's {name} round trip ({np.dtype(dtype).name}) is off by {err:.1e} (tolerance {tol})"
    return execute, call


# The FFT pair's contenders: key -> row label.
FFT_ROWS = {
    "ours_cpp": "fastinterp builtin, timed in C++",
    "ours_py": "fastinterp builtin from Python (`_core.fft_rfft2` + `fft_irfft2`)",
    "pyfftw_exec": "FFTW via pyfftw, planned `FFTW.execute()` (no copies)",
    "pyfftw_call": "FFTW via pyfftw, `builders.rfft2` / `irfft2` objects called",
    "fftw_raw": "FFTW compiled into the extension, own buffers, timed in C++",
    "fftw_split": "FFTW compiled into the extension, behind our split-plane interface, timed in C++",
    "numpy": "numpy.fft (from Python)",
    "scipy": f"{FFT_NAME} (from Python)",
}


def fft_section(out, T: float, n: int, rounds: int) -> None:
    """One 2-D r2c + c2r pair: ours (timed in C++ and from Python), FFTW through pyfftw and, when compiled into the
    extension, FFTW behind our interface; numpy.fft and scipy.fft. All contenders of a dtype alternate in one run."""
    have_fftw = "fftw" in _core.fft_backends()
    out(f"## FFT: one r2c + c2r pair at {n}^2, one thread")
    out()
    out(f"Microseconds per pair, median of {rounds} rounds in which every contender of the dtype takes a turn (the "
        "first rotating), quartiles in brackets. \"timed in C++\": `_core.fft_bench_pair` times its own loop in "
        "C++ (no Python per pair); every other row is timed from Python around the calls, same process, same "
        "rounds.")  # fmt: skip
    out()
    x = {d: np.random.default_rng(1).standard_normal((n, n)).astype(d) for d in (np.float64, np.float32)}
    for d, xd in x.items():  # ours from Python must be numpy's round trip (a wrong answer is no contender)
        err = float(np.abs(_core.fft_irfft2(_core.fft_rfft2(xd)) - xd).max() / np.abs(xd).max())
        assert err < (1e-12 if d == np.float64 else 1e-5), f"fastinterp's round trip ({d.__name__}) is off by {err:.1e}"
    times: dict[str, dict[str, list[float]]] = {}  # key -> dtype -> per-round seconds per pair
    pyfftw_missing = False
    for dname, d in (("float64", np.float64), ("float32", np.float32)):
        xd = x[d]
        c: dict[str, Callable[[int], float]] = {
            "ours_cpp": lambda k, dn=dname: _core.fft_bench_pair(n, n, k, dtype=dn),
            "ours_py": python_calls(lambda xd=xd: _core.fft_irfft2(_core.fft_rfft2(xd))),
        }
        pair = pyfftw_pair(n, d)
        if pair is None:
            pyfftw_missing = True
        else:
            c["pyfftw_exec"], c["pyfftw_call"] = python_calls(pair[0]), python_calls(pair[1])
        if have_fftw:
            c["fftw_raw"] = lambda k, dn=dname: _core.fft_bench_pair(n, n, k, backend="fftw_raw", dtype=dn)
            c["fftw_split"] = lambda k, dn=dname: _core.fft_bench_pair(n, n, k, backend="fftw", dtype=dn)
        c["numpy"] = python_calls(lambda xd=xd: np.fft.irfft2(np.fft.rfft2(xd), s=(n, n)))
        c["scipy"] = python_calls(lambda xd=xd: irfft2(rfft2(xd), (n, n)))
        for key, ts in alternate(c, 2 * T, rounds).items():
            times.setdefault(key, {})[dname] = ts
    out("| implementation | float64 us | float32 us |")
    out("|---|---|---|")
    for key, by in times.items():
        out(f"| {FFT_ROWS[key]} | {show(by['float64'], '.1f', 1e6)} | {show(by['float32'], '.1f', 1e6)} |")
    out()
    if pyfftw_missing:
        out("pyfftw: skipped (not installed; `pip install pyfftw`, part of the `bench` extra, brings FFTW in its "
            "wheels)")  # fmt: skip
        out()
    out("Per-round ratios, ours / theirs (above 1: ours slower), median (quartiles):")
    out()
    pairs = [("builtin timed in C++ / pyfftw `execute()`", "ours_cpp", "pyfftw_exec"),
             ("builtin from Python / pyfftw builders called from Python", "ours_py", "pyfftw_call"),
             ("builtin / compiled-in FFTW, both timed in C++", "ours_cpp", "fftw_raw"),
             (f"builtin from Python / {FFT_NAME}", "ours_py", "scipy")]  # fmt: skip
    for what, ours, theirs in pairs:
        if theirs in times:
            r = [
                f"{d} {show(ratios(times[ours][d], times[theirs][d]), '.2f', unit='x')}" for d in ("float64", "float32")
            ]
            out(f"- {what}: {', '.join(r)}")
    out()


def threads_section(out, T: float, n: int, rounds: int) -> None:
    """if_heun steps/s of 4 trajectories on 1 and 2 threads, alternated."""
    out(f"## Thread scaling: if_heun {n}^2 float64, 4 trajectories x 100 steps")
    out()
    ns = NavierStokes2D(n, dt=5e-3)
    s4 = ns.initial_state(4, seed=0)
    t = alternate({th: python_calls(lambda th=th: ns.integrate(s4, 100, seed=1, threads=th)) for th in (1, 2)},
                  2 * T, rounds)  # fmt: skip
    speedup = show(ratios(t[1], t[2]), ".2f", unit="x")
    out(f"1 thread {show(t[1], ',.0f', 400, invert=True)} steps/s, 2 threads {show(t[2], ',.0f', 400, invert=True)} "
        f"steps/s (alternated, {rounds} rounds): speed-up {speedup}, median (quartiles) of the per-round ratios "
        f"(os.cpu_count() = {os.cpu_count()}; other processes share these cores)")  # fmt: skip
    out()


def fields_section(out, T: float, n: int, rounds: int) -> None:
    """Gaussian fields/s on 1 and 2 threads (and the AVX2 normal kernels against the portable loops), alternated;
    the parts of a field alone; the torch twin."""
    out(f"## Gaussian random fields {n}^2 (s = 3, tau = 1), float64")
    out()
    g = GaussianField(n)
    m = 256
    c = {f"{th} thread(s)": python_calls(lambda th=th: g.sample(m, seed=0, threads=th)) for th in (1, 2)}
    avx2 = _core.rng_kernel() == "avx2"
    if avx2:  # the hand-written AVX2 normals against the portable loops they replace

        def portable():
            _core.set_rng_kernel("portable")
            try:
                g.sample(m, seed=0, threads=1)
            finally:
                _core.set_rng_kernel("avx2")

        c["portable"] = python_calls(portable)
    t = alternate(c, 3 * T, rounds)
    out(f"Fields/s, median (quartiles) of {rounds} alternated rounds:")
    out()
    for th in (1, 2):
        out(f"- C++, {th} thread(s): {show(t[f'{th} thread(s)'], ',.0f', m, invert=True)} fields/s")
    if avx2:
        one, portable_rate = show(t["1 thread(s)"], ",.0f", m, invert=True), show(t["portable"], ",.0f", m, invert=True)
        out(f"- C++, 1 thread, AVX2 normal kernels vs the portable loops: {one} vs {portable_rate} fields/s, "
            f"{show(ratios(t['portable'], t['1 thread(s)']), '.2f', unit='x')} (per-round ratios)")  # fmt: skip
    # where a field's time goes: its normals (n (n/2 + 1) pairs, drawn in calls of 4 fields' worth) and its c2r
    # (half an r2c + c2r pair timed inside C++): neither includes writing the field to fresh memory
    k, half = 4, n // 2 + 1
    t_norm = timeit(lambda: _core.normals(1, 1, 0, 0, 0, 2 * n * half * k), T) / k
    t_c2r = min(_core.fft_bench_pair(n, n, 200) for _ in range(3)) / 2
    bound = 1 / (t_norm + t_c2r)
    out(f"- per field (best of 3): its {2 * n * half:,} normals {t_norm * 1e6:.1f} us, half an r2c + c2r pair "
        f"{t_c2r * 1e6:.1f} us; together {bound:,.0f} fields/s before the field is written out")  # fmt: skip
    tt = timeit(lambda: g.sample(m, seed=0, backend="torch"), T)
    out(f"- torch twin (CPU, torch default threads, best of 3): {m / tt:,.0f} fields/s")
    out()


if __name__ == "__main__":
    raise SystemExit(main())
