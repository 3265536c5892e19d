"""Resumable, sharded dataset generation: crash-safe, identical whatever the split of the work.

Layout of a dataset directory:

    manifest.json          format, configuration, fingerprint, shard plan, and (when complete) statistics
    shard_00000.h5 ...     complete shards (format.py); a file that exists is whole
    .work/shard_k/         trajectories of unfinished shards, one .npy each, written atomically

Every trajectory is a deterministic function of ``(seed, trajectory index)``, every file is written to a temporary
name and renamed, and a shard is assembled only from trajectories that are all on disk. So a run killed at any
instant loses at most the trajectories in flight, ``--resume`` regenerates exactly those, and the dataset is
bit-identical to an uninterrupted run; ranks of ``torchrun`` take shards round-robin and produce the same files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import DatasetConfig
from .format import ShardError, shard_name, verify_shard, write_shard

__all__ = ["dataset_status", "generate", "load_manifest", "trajectory_function"]

FORMAT = "fastinterp-dataset"


def trajectory_function(config: DatasetConfig) -> tuple[Callable[[int, int, int], np.ndarray], int]:
    """``(fn, steps)``: ``fn(first, count, threads)`` returns trajectories ``(count, time, *grid)`` float32;
    ``steps`` is the number of solver steps per trajectory (for rates)."""
    p = config.params
    if config.equation == "navier-stokes":
        from ..pde import NavierStokes2D

        ns = NavierStokes2D(config.res, nu=p["nu"], alpha=p["alpha"], eps=p["eps"], modes=p["modes"], dt=p["dt"],
                            scheme=p["scheme"])  # fmt: skip
        steps = round(p["t_burn"] / p["dt"]) + (p["snapshots"] - 1) * round(p["t_snap"] / p["dt"])

        def fn(first: int, count: int, threads: int) -> np.ndarray:
            w = ns.sample(count, seed=config.seed, first=first, t_burn=p["t_burn"], t_snap=p["t_snap"],
                          snapshots=p["snapshots"], threads=threads)  # fmt: skip
            return w.astype(np.float32)

        return fn, steps
    if config.equation == "grf":
        from ..pde import GaussianField

        field = GaussianField(config.res, p["dim"], s=p["s"], tau=p["tau"], normalization=p["normalization"])

        def fn(first: int, count: int, threads: int) -> np.ndarray:
            return field.sample(count, seed=config.seed, first=first, threads=threads)[:, None].astype(np.float32)

        return fn, 1
    if config.equation == "allen-cahn":
        from ..pde import AllenCahn1D

        chain = AllenCahn1D(config.res, boundary=p["boundary"], potential=p["potential"])

        def fn(first: int, count: int, threads: int) -> np.ndarray:
            # float32 samples rounded from the float64 chain (the same bits as .astype, half the peak memory)
            return chain.sample(count, p["samples"], seed=config.seed, first=first, burn_in=p["burn_in"],
                                thin=p["thin"], threads=threads, dtype="float32")  # fmt: skip

        return fn, p["burn_in"] + p["samples"] * p["thin"]
    raise ValueError(f"no generator for {config.equation!r}")  # pragma: no cover - config validates


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    tmp.replace(path)


def load_manifest(root: str | Path) -> tuple[DatasetConfig, dict]:
    """The configuration and manifest of a dataset directory (ValueError if it is not one)."""
    path = Path(root) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a fastinterp dataset manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastinterp dataset manifest")
    return DatasetConfig.from_dict(manifest["config"]), manifest


def dataset_status(root: str | Path) -> dict[str, list]:
    """Shards of a dataset by state: ``complete`` (verified), ``missing``, ``damaged`` (with the reason)."""
    root = Path(root)
    config, _ = load_manifest(root)
    status: dict[str, list] = {"complete": [], "missing": [], "damaged": []}
    for k, first, count in config.shards:
        path = root / shard_name(k)
        if not path.exists():
            status["missing"].append(k)
            continue
        try:
            verify_shard(path, config, first, count)
            status["complete"].append(k)
        except ShardError as exc:
            status["damaged"].append((k, str(exc)))
    return status


class _Progress:
    def __init__(self, total: int, steps_per_traj: int, enabled: bool, label: str) -> None:
        self.total, self.steps, self.enabled, self.label = total, steps_per_traj, enabled, label
        self.done, self.new, self.t0 = 0, 0, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def advance(self, n: int, generated: bool) -> None:
        self.done += n
        self.new += n if generated else 0
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = self.new / max(now - self.t0, 1e-9)
        eta = f"{(self.total - self.done) / rate:.0f} s" if rate > 0 else "--"
        line = (f"{self.label}: {self.done}/{self.total} trajectories, {rate:.2f} traj/s, "
                f"{rate * self.steps:,.0f} steps/s, ETA {eta}")  # fmt: skip
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif now - self.last > 5 or self.done == self.total:
            print(line, file=sys.stderr, flush=True)
            self.last = now

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)


def _prepare(root: Path, config: DatasetConfig, resume: bool, is_main: bool, barrier: Callable[[], None]) -> None:
    manifest_path = root / "manifest.json"
    if is_main:
        if manifest_path.exists():
            old, _ = load_manifest(root)
            if old.fingerprint != config.fingerprint:
                raise ValueError(
                    f"{root} holds another configuration ({old.equation}, res {old.res}, num {old.num}, "
                    f"fingerprint {old.fingerprint}); refusing to mix: use another directory"
                )
            if not resume:
                raise ValueError(f"{root} already holds this dataset; pass --resume to finish or check it")
        else:
            if root.exists() and any(root.iterdir()):
                raise ValueError(f"{root} is not empty and holds no dataset manifest; refusing to write there")
            root.mkdir(parents=True, exist_ok=True)
            _write_json(manifest_path, {"format": FORMAT, "version": 1, "config": config.to_dict(),
                                        "fingerprint": config.fingerprint,
                                        "shards": [shard_name(k) for k, _, _ in config.shards],
                                        "complete": False})  # fmt: skip
    barrier()
    if not is_main:
        old, _ = load_manifest(root)  # written by rank 0 before the barrier
        if old.fingerprint != config.fingerprint:
            raise ValueError(f"{root} holds another configuration; refusing to mix")


def generate(
    root: str | Path,
    config: DatasetConfig,
    *,
    threads: int = 1,
    resume: bool = False,
    progress: bool = True,
    rank: int = 0,
    world: int = 1,
    barrier: Callable[[], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Generate (or finish, with ``resume``) the dataset ``config`` in ``root``; see the module docstring.

    Args:
        root: dataset directory (created; refused if it holds anything else).
        config: what to generate.
        threads: engine threads (one trajectory per thread).
        resume: finish an interrupted dataset: verified shards are kept, damaged ones set aside as
            ``*.damaged`` and regenerated, and missing trajectories generated.
        progress: progress line on stderr.
        rank, world, barrier: this process's share when several run (``torchrun``): shard ``k`` belongs to rank
            ``k % world``; ``barrier`` synchronises them (rank 0 writes the manifest and the statistics).

    Returns:
        The final manifest (rank 0) or ``{}`` (other ranks).
    """
    from .._version import __version__

    root = Path(root)
    barrier = barrier or (lambda: None)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    _prepare(root, config, resume, rank == 0, barrier)
    fn, steps = trajectory_function(config)
    mine = [s for s in config.shards if s[0] % world == rank]
    bar = _Progress(sum(c for _, _, c in mine), steps, progress, f"rank {rank}" if world > 1 else config.equation)
    for k, first, count in mine:
        path = root / shard_name(k)
        work = root / ".work" / f"shard_{k:05d}"
        if path.exists():
            try:
                verify_shard(path, config, first, count)
                bar.advance(count, generated=False)
                # a run killed between renaming the shard into place and clearing its trajectories left them
                shutil.rmtree(work, ignore_errors=True)
                continue
            except ShardError as exc:
                aside = path.with_name(path.name + f".damaged-{int(time.time())}")
                log(f"{exc}; moved to {aside.name} and regenerating shard {k}")
                path.replace(aside)
        work.mkdir(parents=True, exist_ok=True)
        todo = [i for i in range(first, first + count) if not (work / f"traj_{i:07d}.npy").exists()]
        bar.advance(count - len(todo), generated=False)
        i = 0
        while i < len(todo):
            # contiguous runs of missing trajectories, `threads` at a time (one per thread)
            j = i
            while j + 1 < len(todo) and todo[j + 1] == todo[j] + 1 and j + 1 - i < threads:
                j += 1
            chunk = fn(todo[i], j - i + 1, threads)
            for offset, traj in enumerate(chunk):
                final = work / f"traj_{todo[i] + offset:07d}.npy"
                tmp = final.with_name(final.stem + ".tmp.npy")
                np.save(tmp, traj)
                tmp.replace(final)  # atomic: a trajectory file that exists is whole
            bar.advance(j - i + 1, generated=True)
            i = j + 1
        data = np.stack([np.load(work / f"traj_{i:07d}.npy") for i in range(first, first + count)])
        write_shard(path, config, first, {_field(config): data}, f"fastinterp {__version__}")
        shutil.rmtree(work)
    bar.close()
    barrier()
    if rank != 0:
        return {}
    return _finalise(root, config)


def _field(config: DatasetConfig) -> str:
    from .format import FIELD_NAMES

    return FIELD_NAMES[config.equation]


def _finalise(root: Path, config: DatasetConfig) -> dict:
    total, total_sq, n = 0.0, 0.0, 0
    for k, first, count in config.shards:
        stats = verify_shard(root / shard_name(k), config, first, count)
        total, total_sq, n = total + stats["sum"], total_sq + stats["sum_sq"], n + int(stats["n_values"])
    mean = total / n
    std = math.sqrt(max(total_sq / n - mean * mean, 0.0))
    _, manifest = load_manifest(root)
    manifest.update(complete=True, stats={"mean": mean, "std": std, "rms": math.sqrt(total_sq / n), "values": n})
    _write_json(root / "manifest.json", manifest)
    work = root / ".work"
    if work.exists() and not any(work.iterdir()):
        work.rmdir()
    return manifest


def distributed_context() -> tuple[int, int, Callable[[], None]]:
    """``(rank, world, barrier)`` under ``torchrun`` (gloo process group: the work itself is on the CPU engine),
    or ``(0, 1, no-op)`` in a plain process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, lambda: None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), dist.barrier
