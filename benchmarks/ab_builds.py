"""A/B two builds of the C++ extension on one workload: are they bit-identical, and which is faster?

    python benchmarks/ab_builds.py DIR_A DIR_B [--workload {ns,heun,fields}] [--pairs N]

DIR_A and DIR_B each hold a built `_core*.so` (for instance copied from the installed package before and after a
change, or two CMake build folders). Each build runs in its own long-lived process: loading a second `_core` into a
process that holds one gives back the first module (seen with CPython 3.11 and this project's pybind11 build: the
second module's __file__ is the first's), so an in-process A/B silently times a build against itself. The two
processes take turns, one call each (the order flipping every pair), and the report is the median of the per-pair
time ratios with its quartiles: on shared machines whose speed drifts by +-30% over seconds, ratios of neighbouring
calls are far steadier than best-of-N rates timed a process at a time. Both processes are pinned to the same CPU (two
cores of a shared VM can differ by several %).

Build both sides the same way (same CMake configuration, the same version define): on the 2-core Zen 3 VM two builds
of the same source that differed only in the version string timed 4-9% apart (code layout), while a build against
itself gives 1.00 (quartiles +-2%). So run A/B in both orders, and do not read effects under ~5% into one comparison.

Before timing, both processes write the workload's outputs at a few sizes and dtypes, and the report says whether they
are bit-identical.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def load(folder: str):
    paths = glob.glob(os.path.join(folder, "_core*.so")) + glob.glob(os.path.join(folder, "_core*.pyd"))
    if len(paths) != 1:
        raise SystemExit(f"{folder}: expected one _core extension, found {len(paths)}")
    spec = importlib.util.spec_from_file_location("_core", paths[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ns_run(c, st, *, dt: float, scheme: str, **kw):
    """``c.ns_run`` with the paper's parameters, for builds taking an ``NSConfig`` and for older ones (keywords)."""
    p = dict(nu=1e-3, alpha=0.1, eps=1.0, dt=dt, modes=8, scheme=scheme)
    if hasattr(c, "NSConfig"):
        return c.ns_run(st, c.NSConfig(n=st.shape[1], advection=True, **p), **kw)
    return c.ns_run(st, **p, **kw)


def outputs(c, workload: str) -> list[np.ndarray]:
    """The workload at small sizes, both dtypes: what the bit-identity check compares."""
    out = []
    if workload == "fields":
        for n in (8, 64, 128):
            for dim in (1, 2):
                for dtype in ("float64", "float32"):
                    out.append(c.grf_sample(n, dim, 3.0, 1.0, 1.0, 5, seed=5, dtype=dtype))
        out.append(c.normals(3, 1, 2, 3, 0, 100_001))
        return out
    scheme, dt = ("em_imex", 1e-3) if workload == "ns" else ("if_heun", 5e-3)
    for n in (32, 64):
        for dtype in ("float64", "float32"):
            st = c.ns_initial_state(n, 2, seed=4, k0=2.0, w_rms=3.0, dtype=dtype)
            w, snaps = ns_run(c, st, dt=dt, scheme=scheme, burn=100, every=50, snapshots=2, seed=9)
            out += [w, snaps]
    return out


def timed_call(c, workload: str):
    """One call of the timed workload at 128^2, float64."""
    if workload == "fields":
        return lambda: c.grf_sample(128, 2, 3.0, 1.0, 1.0, 32, seed=0)
    st = c.ns_initial_state(128, 1, seed=1, k0=2.0, w_rms=3.0)
    scheme, dt, steps = ("em_imex", 1e-4, 100) if workload == "ns" else ("if_heun", 5e-3, 50)
    return lambda: ns_run(c, st, dt=dt, scheme=scheme, burn=steps)


def serve(folder: str, workload: str, dump: str, cpu: int) -> None:
    """Child process: dump the outputs, then time one call per line read from stdin, on CPU `cpu`."""
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    c = load(folder)
    np.savez(dump, *outputs(c, workload))
    f = timed_call(c, workload)
    f()
    print("ready", flush=True)
    for _ in sys.stdin:
        t = time.perf_counter()
        f()
        print(time.perf_counter() - t, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", nargs="?", help="folder holding build A's _core*.so")
    ap.add_argument("b", nargs="?", help="folder holding build B's _core*.so")
    ap.add_argument("--workload", choices=("ns", "heun", "fields"), default="ns",
                    help="ns: em_imex 128^2, 100 steps a call; heun: if_heun 128^2, 50 steps; fields: 32 Gaussian "
                    "fields 128^2 a call")  # fmt: skip
    ap.add_argument("--pairs", type=int, default=200, help="alternating pairs of calls (default 200)")
    ap.add_argument("--serve", nargs=3, metavar=("DIR", "DUMP", "CPU"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], args.workload, args.serve[1], int(args.serve[2]))
        return
    if args.a is None or args.b is None:
        ap.error("two build folders are needed")
    if args.pairs < 1:
        ap.error("--pairs must be >= 1")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    # both processes on one CPU: they take turns anyway, and two cores of a shared VM can differ in speed by several %
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else -1
    with tempfile.TemporaryDirectory() as tmp:
        dumps = [os.path.join(tmp, "a.npz"), os.path.join(tmp, "b.npz")]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--workload", args.workload, "--serve", d, dump, str(cpu)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for d, dump in zip((args.a, args.b), dumps, strict=True)
        ]
        try:
            for p in procs:
                if p.stdout.readline().strip() != "ready":
                    raise SystemExit("a build failed to load or to run the workload (see its error above)")
            a_out, b_out = (np.load(d) for d in dumps)
            same = a_out.files == b_out.files and all(np.array_equal(a_out[k], b_out[k]) for k in a_out.files)
            ta, tb = [], []
            for i in range(args.pairs):
                t = [0.0, 0.0]
                for k in (0, 1) if i % 2 == 0 else (1, 0):
                    procs[k].stdin.write("x\n")
                    procs[k].stdin.flush()
                    line = procs[k].stdout.readline()
                    if not line:
                        raise SystemExit(f"build {'AB'[k]} stopped during the timing (see its error above)")
                    t[k] = float(line)
                ta.append(t[0])
                tb.append(t[1])
        finally:
            for p in procs:
                p.stdin.close()
                p.wait()
    ratios = [x / y for x, y in zip(ta, tb, strict=True)]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(f"workload {args.workload}: outputs bit-identical: {same}")
    print(f"B faster than A by {statistics.median(ratios):.3f}x (median of {len(ratios)} pairs; quartiles "
          f"{q[0]:.3f}-{q[2]:.3f}); best call A {min(ta) * 1e3:.2f} ms, B {min(tb) * 1e3:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
