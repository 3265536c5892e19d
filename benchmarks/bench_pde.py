"""PDE engine benchmark: stochastic Navier-Stokes steps/s, FFT pairs, thread scaling, Gaussian fields/s, and the
stochastic Allen-Cahn samplers (SPDE steps/s dense vs FFT, float64 vs float32; pCN steps/s).

    python benchmarks/bench_pde.py [--quick] [--only {engine,allen-cahn,torch}] [--torch-device DEV] [--out FILE]

Prints one markdown report naming the machine and writes it to --out (default benchmarks/results/pde_cpu.md for the
full run and for --only engine, benchmarks/results/allen_cahn_cpu.md for --only allen-cahn, pde_torch_DEV.md for
--only torch). The torch section (the twins at batch 64 on --torch-device, default cuda when available, against the C++
solver on all cores) is part of the full run when a device is given or CUDA is present. Baselines are measured
in the same run: a numpy implementation of the same schemes (scipy.fft with workers=1 when installed, else numpy.fft)
and, when the extension was built with it, FFTW; for Allen-Cahn the dense modal transforms and float64.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

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


def timeit_interleaved(fns, min_time: float, rounds: int = 6) -> tuple[list[float], list[list[float]]]:
    """Seconds per call of each of ``fns``, timed in alternation: every round runs each function for about
    ``min_time / rounds / len(fns)``, so all of them see the same moments of a shared machine. Returns the best time
    per call of each and the per-round times (``[round][fn]``), from which per-round ratios can be taken."""
    for fn in fns:
        fn()
    per_round = []
    for _ in range(rounds):
        row = []
        for fn in fns:
            reps, t0 = 0, time.perf_counter()
            while True:
                fn()
                reps += 1
                el = time.perf_counter() - t0
                if el >= min_time / rounds / len(fns):
                    break
            row.append(el / reps)
        per_round.append(row)
    return [min(r[i] for r in per_round) for i in range(len(fns))], per_round


def calibrated_steps(run, seconds: float) -> int:
    """Steps that make one call of run(steps) take about `seconds` (from a timed 4-step call)."""
    run(4)
    t0 = time.perf_counter()
    run(4)
    per = (time.perf_counter() - t0) / 4
    return max(4, int(seconds / max(per, 1e-9)))


def allen_cahn_section(out, T: float) -> None:
    """SPDE steps/s per trajectory (dense vs FFT transforms, float64 vs float32) and pCN steps/s per chain."""
    import torch

    torch.set_num_threads(1)

    def rate(fn, work):  # work units per second of the best batch
        return work / timeit(fn, T / 4)

    out("## Stochastic Allen-Cahn SPDE: steps/s per trajectory, C++, one thread")
    out()
    out("Exponential Euler-Maruyama, double well, free ends (2-D: free), 2 trajectories per call, generated noise. "
        "Dense: the modal basis as matrix products (O(n^2) per row); FFT: DCT-I via a real FFT of size 2n. "
        "`auto` is the transform `AllenCahnSPDE(n, dim=d)` picks.")  # fmt: skip
    out()
    out("| dim | n | nodes | dense f64 | dense f32 | FFT f64 | FFT f32 | FFT / dense (f64) | f32 / f64 (FFT) | auto |")
    out("|---|---|---|---|---|---|---|---|---|---|")
    for dim, sizes in ((1, (32, 64, 128, 256, 512, 2048)), (2, (8, 16, 32, 64, 128))):
        for n in sizes:
            r = {}
            for tr in ("dense", "fft"):
                sp = AllenCahnSPDE(n, dim=dim, transform=tr)
                for dt in ("float64", "float32"):
                    a = sp.initial_state(2, seed=0, dtype=dt)
                    steps = calibrated_steps(lambda k: sp.integrate(a, k, seed=0), T / 40)
                    r[tr, dt] = rate(lambda: sp.integrate(a, steps, seed=0), 2 * steps)
            auto = AllenCahnSPDE(n, dim=dim).transform
            d64, d32, f64, f32 = r["dense", "float64"], r["dense", "float32"], r["fft", "float64"], r["fft", "float32"]
            out(f"| {dim} | {n} | {sp.nodes}^{dim} | {d64:,.0f} | {d32:,.0f} | {f64:,.0f} | {f32:,.0f} | "
                f"{f64 / d64:.2f}x | {f32 / f64:.2f}x | {auto} |")  # fmt: skip
    out()
    sp = AllenCahnSPDE(128)
    a64 = sp.initial_state(64, seed=0)
    t = rate(lambda: sp.integrate(a64, 50, seed=0, backend="torch"), 64 * 50)
    out(f"Torch twin (dense, float64, batch 64, 1 torch thread), 1-D n = 128: {t:,.0f} steps/s per trajectory.")
    out()

    out("## Allen-Cahn pCN (exact MCMC): steps/s per chain")
    out()
    steps = 20000 if T >= 1 else 5000
    out(
        f"Free ends, double well, 8 chains x {steps:,} steps, `thin=10`; torch: 64 chains x 200 steps. float32 rounds "
        "the recorded samples only (the chain runs in float64), so its rate should equal float64's within noise."
    )
    out()
    out("| N | C++ 1 thread f64 | C++ 1 thread f32 | C++ 2 threads f64 (scaling) | torch twin f64, batch 64 |")
    out("|---|---|---|---|---|")
    for N in (32, 64, 128):
        ac = AllenCahn1D(N)
        st, st64 = ac.initial_state(8, seed=0), ac.initial_state(64, seed=0)
        r1 = rate(lambda: ac.run(st, steps, seed=0, thin=10, threads=1), 8 * steps)
        r32 = rate(lambda: ac.run(st, steps, seed=0, thin=10, threads=1, dtype="float32"), 8 * steps)
        r2 = rate(lambda: ac.run(st, steps, seed=0, thin=10, threads=2), 8 * steps)
        rt = rate(lambda: ac.run(st64, 200, seed=0, thin=10, backend="torch"), 64 * 200)
        out(f"| {N} | {r1:,.0f} | {r32:,.0f} | {r2:,.0f} ({r2 / r1:.2f}x) | {rt:,.0f} |")
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter timings (smoke run)")
    ap.add_argument(
        "--only",
        choices=("engine", "allen-cahn", "torch"),
        default=None,
        help="only the engine sections (Navier-Stokes, FFT, threads, fields), only Allen-Cahn, or only the torch "
        "twins on --torch-device",
    )
    ap.add_argument(
        "--torch-device",
        default=None,
        help="device for the torch-twin section (default: cuda when available, else the section is skipped; 'cpu' "
        "runs it on the CPU as a smoke test)",
    )
    ap.add_argument("--out", default=None, help="report file (default depends on --only, see the module docstring)")
    args = ap.parse_args()
    results = os.path.join(os.path.dirname(__file__), "results")
    if args.torch_device is None:
        import torch

        args.torch_device = "cuda" if torch.cuda.is_available() else None
    if args.only == "torch" and args.torch_device is None:
        ap.error("--only torch needs a CUDA device or --torch-device")
    if args.out is None:
        default = {"allen-cahn": "allen_cahn_cpu.md", "torch": f"pde_torch_{args.torch_device}.md"}
        args.out = os.path.join(results, default.get(args.only, "pde_cpu.md"))
    T = 0.6 if args.quick else 3.0
    n = 128
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    info = _core.build_info()
    title = {"allen-cahn": "Stochastic Allen-Cahn benchmark (CPU)", "torch": "PDE engine: torch twins"}
    out(f"# {title.get(args.only, 'PDE engine benchmark (CPU)')}")
    out()
    out(f"- machine: {cpu_name()} ({vector_isa()}), {os.cpu_count()} logical cores visible, {platform.system()} "
        f"{platform.machine()}; bulk normals: {_core.rng_kernel()} kernels")  # fmt: skip
    out(f"- build: {info['compiler']}, FFT backends {_core.fft_backends()}; baseline FFT {FFT_NAME}, numpy "
        f"{np.__version__} (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}); python "
        f"{platform.python_version()}")  # fmt: skip
    out(f"- load average at start: {os.getloadavg()[0]:.2f} (shared machines make every rate noisy)")
    out()
    if args.only in (None, "engine"):
        engine_sections(out, T, n, args.quick)
    if args.only in (None, "allen-cahn"):
        allen_cahn_section(out, T)
    if args.only in (None, "torch"):
        if args.torch_device is None:
            out("## Torch twins on CUDA: skipped (no CUDA device; `--torch-device cpu` runs the section on the CPU)")
            out()
        else:
            torch_section(out, T, n, args.torch_device)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written to {args.out}")


def engine_sections(out, T: float, n: int, quick: bool) -> None:
    """Navier-Stokes steps/s against numpy, FFT pairs, thread scaling, Gaussian fields/s."""
    out(f"## Stochastic Navier-Stokes {n}^2, float64, one thread")
    out()
    out("C++ evaluates the advection in Basdevant's form (four real transforms a step); numpy is timed both in the")
    out("direct form (five transforms, what a numpy script usually does) and in the same form as the C++ solver.")
    out("The three are timed in alternation (6 rounds); rates are the best round, ratios the median of the rounds'.")
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
        fns = [lambda: ns.integrate(s0, steps, seed=1)] + [lambda r=r: r.step(w, dW) for r in refs]
        best, rounds = timeit_interleaved(fns, 3 * T)
        t_cpp, t_np = best[0] / steps, best[1:]
        ratio = [float(np.median([r[k] / (r[0] / steps) for r in rounds])) for k in (1, 2)]
        out(f"| {scheme} | {dt:g} | {1 / t_cpp:,.0f} | {1 / t_np[0]:,.0f} | {ratio[0]:.1f}x | "
            f"{1 / t_np[1]:,.0f} | {ratio[1]:.1f}x | {dt / t_cpp:,.2f} |")  # fmt: skip
    out()

    out(f"## FFT: one r2c + c2r pair at {n}^2")
    out()
    out("| implementation | float64 us | float32 us |")
    out("|---|---|---|")
    reps = 300 if quick else 2000
    row = lambda name, f64, f32: out(f"| {name} | {f64 * 1e6:.1f} | {f32 * 1e6:.1f} |")  # noqa: E731
    # ours and FFTW alternate, best of 5 each: on a shared machine both then see the same quiet moments
    have_fftw = "fftw" in _core.fft_backends()
    ours, raw = [math.inf, math.inf], [math.inf, math.inf]
    for _ in range(5):
        for i, d in enumerate(("float64", "float32")):
            ours[i] = min(ours[i], _core.fft_bench_pair(n, n, reps, dtype=d))
            if have_fftw:
                raw[i] = min(raw[i], _core.fft_bench_pair(n, n, reps, backend="fftw_raw", dtype=d))
    row("fastinterp builtin (timed in C++)", *ours)
    if have_fftw:
        row("FFTW 3 FFTW_MEASURE, interleaved (timed in C++)", *raw)
        split = [min(_core.fft_bench_pair(n, n, reps, backend="fftw", dtype=d) for _ in range(3))
                 for d in ("float64", "float32")]  # fmt: skip
        row("FFTW 3 behind our split-plane interface (copies)", *split)
    x64 = np.random.default_rng(1).standard_normal((n, n))
    x32 = x64.astype(np.float32)
    for name, f, g in [("numpy.fft", np.fft.rfft2, lambda X: np.fft.irfft2(X, s=(n, n))),
                       (FFT_NAME, rfft2, lambda X: irfft2(X, (n, n)))]:  # fmt: skip
        row(name + " (from Python)", timeit(lambda: g(f(x64)), T / 3), timeit(lambda: g(f(x32)), T / 3))
    if "fftw" in _core.fft_backends():
        out()
        out(f"builtin / FFTW (raw) per pair: float64 {ours[0] / raw[0]:.2f}x, float32 {ours[1] / raw[1]:.2f}x")
    out()

    out(f"## Thread scaling: if_heun {n}^2 float64, 4 trajectories x 100 steps")
    out()
    ns = NavierStokes2D(n, dt=5e-3)
    s4 = ns.initial_state(4, seed=0)
    t1 = timeit(lambda: ns.integrate(s4, 100, seed=1, threads=1), T)
    t2 = timeit(lambda: ns.integrate(s4, 100, seed=1, threads=2), T)
    out(f"1 thread {400 / t1:,.0f} steps/s, 2 threads {400 / t2:,.0f} steps/s: speed-up {t1 / t2:.2f}x "
        f"(os.cpu_count() = {os.cpu_count()}; other processes share these cores)")  # fmt: skip
    out()

    out(f"## Gaussian random fields {n}^2 (s = 3, tau = 1), float64")
    out()
    g = GaussianField(n)
    m = 256
    for th in (1, 2):
        t = timeit(lambda: g.sample(m, seed=0, threads=th), T)
        out(f"- C++, {th} thread(s): {m / t:,.0f} fields/s")
    if _core.rng_kernel() == "avx2":  # the hand-written AVX2 normals against the portable loops they replace

        def portable():
            _core.set_rng_kernel("portable")
            try:
                g.sample(m, seed=0, threads=1)
            finally:
                _core.set_rng_kernel("avx2")

        (tp, ta), rounds = timeit_interleaved([portable, lambda: g.sample(m, seed=0, threads=1)], 2 * T)
        ratio = statistics.median(r[0] / r[1] for r in rounds)
        out(f"- C++, 1 thread, AVX2 normal kernels vs the portable loops (timed in alternation): {m / ta:,.0f} vs "
            f"{m / tp:,.0f} fields/s, {ratio:.2f}x (median of per-round ratios)")  # fmt: skip
    # where a field's time goes: its normals (n (n/2 + 1) pairs, drawn in calls of 4 fields' worth) and its c2r
    # (half an r2c + c2r pair timed inside C++): neither includes writing the field to fresh memory
    k, half = 4, n // 2 + 1
    t_norm = timeit(lambda: _core.normals(1, 1, 0, 0, 0, 2 * n * half * k), T) / k
    t_c2r = min(_core.fft_bench_pair(n, n, 200) for _ in range(3)) / 2
    bound = 1 / (t_norm + t_c2r)
    out(f"- per field: its {2 * n * half:,} normals {t_norm * 1e6:.1f} us, half an r2c + c2r pair "
        f"{t_c2r * 1e6:.1f} us; together {bound:,.0f} fields/s before the field is written out")  # fmt: skip
    t = timeit(lambda: g.sample(m, seed=0, backend="torch"), T)
    out(f"- torch twin (CPU, torch default threads): {m / t:,.0f} fields/s")
    out()


if __name__ == "__main__":
    main()
