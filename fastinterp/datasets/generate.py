"""Resumable, sharded dataset generation: crash-safe, identical whatever the split of the work.

Layout of a dataset directory:

    manifest.json          format, configuration, fingerprint, shard plan, and (when complete) statistics
    shard_00000.h5 ...     complete shards (format.py); a file that exists is whole
    .work/shard_k/         trajectories of unfinished shards, one ``traj_<i>.<sha256>.npy`` each (the SHA-256 of
                           the file's bytes is in its name), written to a temporary name and renamed
    .lock                  held (``flock``) by the generator at work; a second generator on the directory is refused

Every trajectory is a deterministic function of ``(seed, trajectory index)``, every file is written to a temporary
name and renamed, and a shard is assembled only from trajectory files that match their checksums. So a run killed
at any instant loses at most the trajectories in flight, ``--resume`` regenerates exactly those (and any trajectory
file found damaged or truncated, named in a log line), and the dataset is bit-identical to an uninterrupted run;
ranks of ``torchrun`` take shards round-robin and produce the same files.

Before anything is written the configuration is checked in full (the engine objects are built), and so are the
available memory (against one generation chunk) and the free disk space (against what remains to write). A failed
write (full disk, file too large, I/O error, permission) raises :class:`~fastinterp.datasets.format.WriteError`
naming the file and the cause, and leaves nothing behind that could later pass for finished work.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .config import DatasetConfig
from .format import ShardError, WriteError, shard_name, trajectory_shape, verify_shard, write_shard

__all__ = [
    "chunk_memory",
    "config_differences",
    "dataset_status",
    "generate",
    "load_manifest",
    "space_needed",
    "trajectory_function",
]

FORMAT = "fastinterp-dataset"
LOCK = ".lock"
_TRAJ = re.compile(r"traj_(\d{7})\.([0-9a-f]{64})\.npy")
# files of our own that may be left in a directory without a manifest (a run stopped before writing it)
_OWN_LEFTOVERS = {LOCK, "manifest.json.tmp"}


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
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WriteError(path, exc) from None


def load_manifest(root: str | Path) -> tuple[DatasetConfig, dict]:
    """The configuration and manifest of a dataset directory (ValueError if it is not one)."""
    root = Path(root)
    path = root / "manifest.json"
    if not root.is_dir():
        raise ValueError(f"the dataset directory {root} {'is not a directory' if root.exists() else 'does not exist'}")
    if not path.exists():
        raise ValueError(f"{path}: not a fastinterp dataset manifest (no such file)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a fastinterp dataset manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastinterp dataset manifest")
    try:
        config = DatasetConfig.from_dict(manifest["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the manifest's configuration is not valid ({exc})") from None
    return config, manifest


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


def _show(v) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def config_differences(stored: DatasetConfig, given: DatasetConfig) -> list[str]:
    """Every setting in which ``given`` differs from ``stored`` (a directory's), as ``"res: 64 in the directory,
    32 given"`` (:meth:`DatasetConfig.differences`: normalised values, so ``200`` equals ``200.0``). Empty when
    they are the same dataset."""
    return [
        f"{key.removeprefix('params.')}: {_show(old)} in the directory, {_show(new)} given"
        for key, old, new in stored.differences(given)
    ]


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def chunk_memory(config: DatasetConfig, threads: int) -> int:
    """Bytes of memory one generation chunk needs: ``threads`` trajectories at once, as the engine returns them
    (float64 for Navier-Stokes and Gaussian fields, plus their float32 copy; float32 for Allen-Cahn), plus the
    solvers' working arrays (an allowance of 64 float64 values per grid point and trajectory)."""
    shape = trajectory_shape(config)
    per_value = 4 if config.equation == "allen-cahn" else 12
    return threads * (math.prod(shape) * per_value + 64 * 8 * math.prod(shape[1:]))


def _available_memory() -> int | None:
    """MemAvailable of /proc/meminfo, else the free physical pages; None when neither can be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _check_memory(config: DatasetConfig, threads: int) -> None:
    need, avail = chunk_memory(config, threads), _available_memory()
    if avail is not None and need > avail:
        shape = "x".join(map(str, trajectory_shape(config)))
        raise ValueError(
            f"one generation chunk ({threads} trajector{'y' if threads == 1 else 'ies'} of {shape} values at once) "
            f"needs about {_size(need)} of memory, {_size(avail)} available: use fewer --threads, fewer "
            "snapshots/samples per trajectory, or a smaller --res"
        )


_BLOCK = 4096  # file systems allocate whole blocks


def _blocks(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


def _trajectory_file_bytes(config: DatasetConfig) -> int:
    return _blocks(4 * math.prod(trajectory_shape(config)) + 128)  # .npy: 128-byte header


def _shard_file_bytes(config: DatasetConfig, count: int) -> int:
    # the data, HDF5's chunk index (a B-tree, well under 100 bytes per chunk = snapshot) and 64 kB of metadata
    snapshots = trajectory_shape(config)[0]
    return _blocks(count * (4 * math.prod(trajectory_shape(config)) + 100 * snapshots) + 65536)


def _valid_name(name: str, first: int, count: int) -> int | None:
    m = _TRAJ.fullmatch(name)
    return int(m.group(1)) if m and first <= int(m.group(1)) < first + count else None


def space_needed(root: str | Path, config: DatasetConfig, world: int = 1) -> int:
    """Bytes of disk that finishing ``config`` in ``root`` still needs: every shard not on disk, plus the
    trajectory files of the shards being assembled at once (one per rank) that are not written yet."""
    root = Path(root)
    need, transient = 0, []
    for k, first, count in config.shards:
        if (root / shard_name(k)).exists():
            continue
        work = root / ".work" / f"shard_{k:05d}"
        have = {_valid_name(p.name, first, count) for p in work.iterdir()} - {None} if work.is_dir() else set()
        need += _shard_file_bytes(config, count)
        transient.append((count - len(have)) * _trajectory_file_bytes(config))
    return need + sum(sorted(transient, reverse=True)[: max(world, 1)])


def _check_disk(root: Path, config: DatasetConfig, world: int) -> None:
    need = space_needed(root, config, world)
    if need == 0:
        return
    where = root
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if need > free:
        raise ValueError(
            f"{root}: the dataset needs {_size(need)} more disk space, {_size(free)} free there: free some space, "
            "or choose another --out on a larger disk (or fewer --num, a smaller --res)"
        )


def _holds_data(root: Path) -> bool:
    """Whether ``root`` holds any shard or trajectory file (finished or not): work a new configuration would lose."""
    if any(root.glob("shard_*")):
        return True
    work = root / ".work"
    return work.is_dir() and any(p.is_file() for p in work.rglob("*"))


def _check_directory(root: Path, config: DatasetConfig, resume: bool, log: Callable[[str], None]):
    """``(configuration, write a manifest?)`` for generating ``config`` into ``root``; ValueError naming the
    conflict if ``root`` holds another dataset, this one without ``resume``, or anything else."""
    if (root / "manifest.json").exists():
        stored, _ = load_manifest(root)
        diffs = config_differences(stored, config)
        data = _holds_data(root)
        if diffs and data:
            raise ValueError(
                f"{root} holds another configuration: {'; '.join(diffs)}. A dataset's configuration cannot change: "
                f"give the directory's (`fastinterp pde info {root}` prints it) or use another --out"
            )
        if diffs:
            log(f"{root}: replacing the manifest of another configuration that has no data yet ({'; '.join(diffs)})")
            return config, True
        if data and not resume:
            raise ValueError(f"{root} already holds this dataset; pass --resume to finish or check it")
        return stored, False  # the directory's own: equal as numbers, and the fingerprint its shards carry
    others = sorted(p.name for p in root.iterdir() if p.name not in _OWN_LEFTOVERS)
    if others:
        listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise ValueError(f"{root} is not empty ({listed}) and holds no dataset manifest; refusing to write there")
    return config, True


def _lock(root: Path) -> int:
    """An exclusive ``flock`` on ``root/.lock`` (its descriptor); ValueError naming the directory if held."""
    path = root / LOCK
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WriteError(path, exc, "create the lock file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ValueError(
                f"{root} is being written by another generator (process {holder} holds {path}): wait for it to "
                "finish, or use another --out"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise WriteError(path, exc, "lock") from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    with contextlib.suppress(OSError):  # the holder's pid, for the message above; a full disk may refuse it
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _unlock(root: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(root / LOCK)  # while still held: the inode check in _lock keeps a newcomer off the old file
    os.close(fd)


class _HashingWriter:
    def __init__(self, fh, digest) -> None:
        self.fh, self.digest = fh, digest

    def write(self, b) -> int:
        self.digest.update(b)
        return self.fh.write(b)


def _save_trajectory(work: Path, i: int, traj: np.ndarray) -> tuple[Path, str]:
    """Write trajectory ``i`` as ``work/traj_<i>.<sha256>.npy`` (temporary name, rename); its path and digest."""
    tmp = work / f"traj_{i:07d}.npy.tmp"
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as fh:
            np.save(_HashingWriter(fh, digest), np.ascontiguousarray(traj, dtype=np.float32), allow_pickle=False)
        final = work / f"traj_{i:07d}.{digest.hexdigest()}.npy"
        tmp.replace(final)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WriteError(work / f"traj_{i:07d}.npy", exc) from None
    return final, digest.hexdigest()


def _trajectory_problem(path: Path, digest: str, shape: tuple[int, ...]) -> str | None:
    """Why the trajectory file ``path`` cannot be used (None if it can): checksum, shape, dtype."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if hashlib.sha256(data).hexdigest() != digest:
        return "checksum mismatch (damaged or truncated)"
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        return f"not a .npy array ({exc})"
    if a.shape != shape or a.dtype != np.float32:
        return f"holds {a.dtype} {a.shape}, expected float32 {shape}"
    return None


def _scan_work(work: Path, first: int, count: int, shape, log) -> dict[int, tuple[Path, str]]:
    """The usable trajectory files of an unfinished shard, by index; damaged or foreign ones are named in a log
    line and removed (their trajectories are generated again), leftovers of interrupted writes removed."""
    have: dict[int, tuple[Path, str]] = {}
    if not work.is_dir():
        return have
    for path in sorted(work.iterdir()):
        if path.name.endswith(".tmp"):  # a write interrupted before its rename
            path.unlink(missing_ok=True)
            continue
        i = _valid_name(path.name, first, count)
        if i is None or not path.is_file():
            problem, what = "not a checksummed trajectory file of this shard", "removed"
        else:
            digest = _TRAJ.fullmatch(path.name).group(2)
            problem = _trajectory_problem(path, digest, shape)
            if problem is None:
                have[i] = (path, digest)
                continue
            what = f"removed; regenerating trajectory {i}"
        log(f"{path}: {problem}; {what}")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return have


def _load_trajectories(have: dict, first: int, count: int) -> Iterator[np.ndarray]:
    """The shard's trajectories from their files, each checked against its checksum as it is read."""
    for i in range(first, first + count):
        path, digest = have[i]
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            path.unlink()
            raise ShardError(f"{path}: checksum mismatch (damaged since it was written); removed: run again with "
                             f"--resume to regenerate trajectory {i}")  # fmt: skip
        yield np.load(io.BytesIO(data), allow_pickle=False)


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

    Nothing is written before the configuration (the engine objects), the memory of one chunk and the disk space
    still needed are checked; a directory holding only the manifest of another configuration (no shard or
    trajectory file) takes the new one, with a log line.

    Args:
        root: dataset directory (created; refused if it holds anything else).
        config: what to generate. If ``root`` holds the same configuration with numbers written differently
            (``200`` for ``200.0``), the directory's is used.
        threads: engine threads (one trajectory per thread).
        resume: finish an interrupted dataset: verified shards are kept, damaged ones set aside as
            ``*.damaged-<time>`` and regenerated, damaged trajectory files removed and regenerated, and missing
            trajectories generated.
        progress: a ``tqdm`` progress bar on stderr (trajectories, with trajectories/s and solver steps/s).
        rank, world, barrier: this process's share when several run (``torchrun``): shard ``k`` belongs to rank
            ``k % world``; ``barrier`` synchronises them (rank 0 holds the lock, writes the manifest and the
            statistics).
        log: called with one line per notable event (a damaged file, a replaced manifest).

    Returns:
        The final manifest (rank 0) or ``{}`` (other ranks).

    Raises:
        ValueError: a configuration the engine rejects, another configuration in ``root`` (each differing setting
            named with both values), a directory busy with another generator, too little memory or disk space
            (with the numbers); :class:`ShardError` for a trajectory file damaged during the run.
        WriteError: a write the file system refused, naming the file and the cause.
    """
    from tqdm import tqdm

    from .._version import __version__

    root = Path(root)
    barrier = barrier or (lambda: None)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    fn, steps = trajectory_function(config)  # the engine objects: a rejected parameter fails before any write
    _check_memory(config, threads)
    created = root  # the topmost directory this call creates, removed again if it is refused
    while not created.parent.exists() and created.parent != created:
        created = created.parent
    created = None if created.exists() else created
    lock = None
    try:
        if rank == 0:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WriteError(root, exc, "create the dataset directory") from None
            lock = _lock(root)
            config, new = _check_directory(root, config, resume, log)
            _check_disk(root, config, world)
            if new:
                _write_json(root / "manifest.json", {"format": FORMAT, "version": 1, "config": config.to_dict(),
                                                     "fingerprint": config.fingerprint,
                                                     "shards": [shard_name(k) for k, _, _ in config.shards],
                                                     "complete": False})  # fmt: skip
        barrier()
        if rank != 0:
            stored, _ = load_manifest(root)  # written by rank 0 before the barrier
            diffs = config_differences(stored, config)
            if diffs:
                raise ValueError(f"{root} holds another configuration: {'; '.join(diffs)}")
            config = stored

        shape = trajectory_shape(config)
        mine = [s for s in config.shards if s[0] % world == rank]
        pending, done = [], 0
        for k, first, count in mine:  # what is already done: verified shards, checksummed trajectory files
            path = root / shard_name(k)
            work = root / ".work" / f"shard_{k:05d}"
            path.with_name(path.name + ".tmp").unlink(missing_ok=True)  # a shard write interrupted before its rename
            if path.exists():
                try:
                    verify_shard(path, config, first, count)
                    done += count
                    # a run killed between renaming the shard into place and clearing its trajectories left them
                    shutil.rmtree(work, ignore_errors=True)
                    continue
                except ShardError as exc:
                    aside = path.with_name(path.name + f".damaged-{int(time.time())}")
                    log(f"{exc}; moved to {aside.name} and regenerating shard {k}")
                    path.replace(aside)
            have = _scan_work(work, first, count, shape, log)
            done += len(have)
            pending.append((k, first, count, have))

        label = f"rank {rank}/{world}" if world > 1 else config.equation
        tty = sys.stderr.isatty()
        bar = tqdm(total=sum(c for _, _, c in mine), initial=done, desc=label, unit="traj", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True, mininterval=0.5 if tty else 10.0,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} trajectories "
                              "[{elapsed}<{remaining}{postfix}]")  # fmt: skip
        t0, new = time.perf_counter(), 0
        try:
            for k, first, count, have in pending:
                work = root / ".work" / f"shard_{k:05d}"
                try:
                    work.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise WriteError(work, exc, "create the work directory") from None
                todo = [i for i in range(first, first + count) if i not in have]
                i = 0
                while i < len(todo):
                    # contiguous runs of missing trajectories, `threads` at a time (one per thread)
                    j = i
                    while j + 1 < len(todo) and todo[j + 1] == todo[j] + 1 and j + 1 - i < threads:
                        j += 1
                    chunk = fn(todo[i], j - i + 1, threads)
                    for offset, traj in enumerate(chunk):
                        have[todo[i] + offset] = _save_trajectory(work, todo[i] + offset, traj)
                    new += j - i + 1
                    rate = new / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix_str(f"{rate:.2f} traj/s, {rate * steps:,.0f} steps/s", refresh=False)
                    bar.update(j - i + 1)
                    i = j + 1
                path = root / shard_name(k)
                write_shard(path, config, first, _load_trajectories(have, first, count), f"fastinterp {__version__}")
                shutil.rmtree(work)
        finally:
            bar.close()
        barrier()
        if rank != 0:
            return {}
        return _finalise(root, config)
    finally:
        if lock is not None:
            _unlock(root, lock)
            if created is not None:  # refused before writing anything: leave no trace
                with contextlib.suppress(OSError):
                    for d in [root, *root.parents]:
                        d.rmdir()  # only if empty
                        if d == created:
                            break


def _field(config: DatasetConfig) -> str:
    from .format import FIELD_NAMES

    return FIELD_NAMES[config.equation]


def _finalise(root: Path, config: DatasetConfig) -> dict:
    from .format import shard_moments
    from .well import combine_moments, write_stats_yaml

    parts = []
    for k, first, count in config.shards:
        verify_shard(root / shard_name(k), config, first, count)
        parts.append(shard_moments(root / shard_name(k), _field(config)))
    stats = combine_moments(parts)  # float64 sums of every shard: mean, std, rms of values and time differences
    # The Well's normalisation statistics (WellDataset(..., use_normalization=True)), before the manifest says
    # complete: a complete dataset always has them
    write_stats_yaml(root / "stats.yaml", _field(config), stats, source=str(root))
    _, manifest = load_manifest(root)
    manifest.update(complete=True, stats={k: stats[k] for k in ("mean", "std", "rms", "values")})
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
