"""Shard files in The Well's HDF5 layout, plus a ``fastinterp/`` group for provenance and integrity.

One shard file holds ``count`` trajectories:

    t0_fields/<name>        float32 (trajectory, time, H, W)   [1-D: (trajectory, time, N)]
    t1_fields/, t2_fields/  empty (The Well keeps vector and tensor fields there)
    dimensions/             attrs spatial_dims; datasets x [, y] (cell centres on the periodic box), time
    boundary_conditions/    one group per axis: bc_type (PERIODIC; WALL for Allen-Cahn's ends), associated_dims, mask
    scalars/                the numeric equation parameters (The Well's constant scalars; well.py writes these
                            groups and the attributes The Well's reader needs)
    attrs                   dataset_name, n_spatial_dims, n_trajectories, grid_type, simulation_parameters and
                            one attribute per equation parameter (scheme included)
    fastinterp/             trajectory (indices), completed (bool), rms (per trajectory);
                            attrs generator_version, config (JSON), fingerprint, sha256 of every field

A shard is written trajectory by trajectory to a temporary file (never whole in memory), fsynced and renamed into
place, so a file that exists is complete; a failed write (full disk, file too large, I/O error) removes the
temporary file and raises :class:`WriteError`. Every reader goes through :func:`verify_shard` (once per file and
process): the configuration's fingerprint (a foreign shard), the trajectory range (a swapped or renamed shard),
the completion flags, the field's shape and dtype, and the SHA-256 of the field's C-order float32 bytes, computed
streaming trajectory by trajectory (the same digest as over the whole array); h5py's own checks catch truncation.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .config import DatasetConfig
from .well import DELTA_KEYS, VALUE_KEYS, delta_moments, value_moments, write_metadata

__all__ = [
    "FIELD_NAMES",
    "ShardError",
    "WriteError",
    "import_h5py",
    "os_error_message",
    "read_shard",
    "shard_index",
    "shard_moments",
    "shard_name",
    "trajectory_shape",
    "verify_shard",
    "write_shard",
]

FIELD_NAMES = {"navier-stokes": "vorticity", "grf": "u", "allen-cahn": "u"}


class ShardError(ValueError):
    """A shard file is missing, unreadable, damaged, or from another configuration."""


class WriteError(OSError):
    """Writing a dataset file failed (full disk, file too large, I/O error, permission): ``str()`` is one line
    naming the file and the cause, e.g. ``d/shard_00003.h5: cannot write: No space left on device (ENOSPC)``."""

    def __init__(self, path: str | Path, cause: OSError, action: str = "write") -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.action = action

    def __str__(self) -> str:
        code = errno.errorcode.get(self.errno) if self.errno else None
        return f"{self.filename}: cannot {self.action}: {self.strerror}" + (f" ({code})" if code else "")


def os_error_message(exc: OSError) -> str:
    """One line for a failed file operation: the file and the cause (a :class:`WriteError` reads so already)."""
    if isinstance(exc, WriteError) or not exc.filename:
        return str(exc)
    return f"{exc.filename}: {exc.strerror or exc}"


def import_h5py():
    """The ``h5py`` module, or an ImportError that says how to install it (shared with :mod:`.loader`)."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("fastinterp datasets need h5py: pip install 'fastinterp[data]'") from None
    return h5py


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.h5"


def shard_index(path: str | Path) -> int:
    """The shard number ``k`` of a file named ``shard_<k>.h5`` (ShardError for any other name)."""
    m = re.fullmatch(r"shard_(\d{5,})\.h5", Path(path).name)
    if m is None:
        raise ShardError(f"{path}: not a shard file name (shard_NNNNN.h5); pass shard= to say which shard it is")
    return int(m.group(1))


def trajectory_shape(config: DatasetConfig) -> tuple[int, ...]:
    """The shape ``(time, *grid)`` of one trajectory of ``config``."""
    p = config.params
    if config.equation == "navier-stokes":
        return (p["snapshots"], config.res, config.res)
    if config.equation == "grf":
        return (1,) + (config.res,) * p["dim"]
    return (p["samples"], config.res + 1)  # allen-cahn: a chain of samples on the N + 1 nodes


def _shard_count(config: DatasetConfig, first: int) -> int:
    for _, f, count in config.shards:
        if f == first:
            return count
    raise ValueError(f"no shard of this dataset starts at trajectory {first} (shard size {config.shard_size})")


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """HDF5 chunks of one trajectory and as many snapshots as fill about 64 kB (one snapshot when it is larger):
    a 128^2 field is a chunk, an Allen-Cahn chain of 33 nodes ~500 samples per chunk (one per sample made 10^5
    chunks a chain, and writing and reading them cost more than the chain itself)."""
    snapshot = 4 * math.prod(shape[2:])
    return (1, max(1, min(shape[1], 65536 // snapshot)), *shape[2:])


class _Sink(io.RawIOBase):
    """The file h5py's ``fileobj`` driver writes a shard through.

    The first failed write is kept in ``error`` and every later write is skipped (reported as done), so HDF5 itself
    never sees a failure: a write failing inside HDF5 leaves it a file it can neither flush nor close, and the
    interpreter crashed at exit (segfault on a full disk, h5py 3.16 / HDF5 2.0). The caller raises ``error``.
    """

    def __init__(self, fh: io.FileIO) -> None:
        super().__init__()
        self.fh, self.error = fh, None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()

    def readinto(self, b) -> int:
        return self.fh.readinto(b)

    def write(self, b) -> int:
        view = memoryview(b).cast("B")
        start = self.fh.tell()
        if self.error is None:
            try:
                done = 0
                while done < len(view):  # a file-size limit can write part of a buffer before failing
                    done += self.fh.write(view[done:])
                return len(view)
            except OSError as exc:
                self.error = exc
        self.fh.seek(start + len(view))
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self.fh.truncate(size)
            except OSError as exc:
                self.error = exc
        return self.fh.tell() if size is None else size


def write_shard(
    path: Path, config: DatasetConfig, first: int, trajectories: Iterable[np.ndarray], version: str
) -> None:
    """Write shard ``path`` of ``config`` from its trajectories: one at a time, atomically (temporary file, fsync,
    rename), with the SHA-256 and the float64 sums of the data computed as it is written.

    Args:
        path: the shard file.
        config: the dataset.
        first: the shard's first trajectory (the shard holds the count ``config.shards`` gives it).
        trajectories: the shard's trajectories in order, each shaped :func:`trajectory_shape` (cast to float32).
        version: the generator's version, stored in the file.

    Raises:
        WriteError: the file system refused a write (naming the file and the cause); the temporary file is removed.
        ValueError: a trajectory of another shape, or another number of them.
    """
    h5py = import_h5py()
    name = FIELD_NAMES[config.equation]
    count = _shard_count(config, first)
    shape = (count, *trajectory_shape(config))
    grid = shape[2:]
    tmp = path.with_name(path.name + ".tmp")
    try:
        raw = open(tmp, "w+b", buffering=0)  # noqa: SIM115 - closed below on every path
    except OSError as exc:
        raise WriteError(path, exc) from None
    sink = _Sink(raw)
    f = None
    try:
        f = h5py.File(sink, "w", track_order=True)
        f.attrs["dataset_name"] = f"fastinterp-{config.equation}"
        f.attrs["n_spatial_dims"] = len(grid)
        f.attrs["n_trajectories"] = count
        f.attrs["grid_type"] = "cartesian"
        params = {k: v for k, v in config.params.items()}
        f.attrs["simulation_parameters"] = sorted(params)
        for k, v in params.items():
            f.attrs[k] = v
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = [name]
        dset = t0.create_dataset(name, shape=shape, dtype=np.float32, chunks=_chunks(shape), track_times=False)
        # t1/t2 groups, dimensions, boundary conditions, scalars, field attributes: what The Well's reader needs
        write_metadata(f, config, shape)
        digest, rms, parts = hashlib.sha256(), np.empty(count), []
        n = 0
        for traj in trajectories:
            a = np.ascontiguousarray(traj, dtype=np.float32)
            if n >= count or a.shape != shape[1:]:
                raise ValueError(f"{path}: trajectory {first + n} is {a.shape} (number {n + 1} of the shard), "
                                 f"expected {count} trajectories of {shape[1:]}")  # fmt: skip
            dset[n] = a
            digest.update(a.data)  # C-order bytes in order: the digest of the whole (count, ...) array
            d = a.astype(np.float64)
            sq = float((d * d).sum())
            rms[n] = math.sqrt(sq / d.size)
            parts.append({"sum": float(d.sum()), "sum_sq": sq, **delta_moments(a[None])})
            n += 1
        if n != count:
            raise ValueError(f"{path}: got {n} trajectories, expected {count}")
        fi = f.create_group("fastinterp")
        fi.attrs["generator_version"] = version
        fi.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
        fi.attrs["fingerprint"] = config.fingerprint
        fi.attrs["seed"] = config.seed
        fi.attrs[f"sha256/{name}"] = digest.hexdigest()
        fi.create_dataset("trajectory", data=np.arange(first, first + count, dtype=np.int64), track_times=False)
        fi.create_dataset("completed", data=np.ones(count, dtype=bool), track_times=False)
        fi.create_dataset("rms", data=rms, track_times=False)
        fi.attrs["n_values"] = int(math.prod(shape))
        # float64 sums of the values and of u[:, t + 1] - u[:, t] (stats.yaml, well.py), trajectory by trajectory
        for key in ("sum", "sum_sq", "sum_delta", "sum_sq_delta"):
            fi.attrs[key] = math.fsum(part[key] for part in parts)
        fi.attrs["n_deltas"] = sum(int(part["n_deltas"]) for part in parts)
        f.close()
        f = None
        if sink.error is not None:
            raise WriteError(path, sink.error)
        try:
            os.fsync(raw.fileno())
            raw.close()
        except OSError as exc:
            raise WriteError(path, exc) from None
        try:
            tmp.replace(path)
        except OSError as exc:
            raise WriteError(path, exc, "move the finished shard into place") from None
    except BaseException as exc:
        if f is not None:
            try:
                f.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
        for cleanup in (raw.close, lambda: tmp.unlink(missing_ok=True)):
            try:
                cleanup()
            except OSError:
                pass
        if sink.error is not None and not isinstance(exc, WriteError):
            raise WriteError(path, sink.error) from None  # HDF5's own error after a skipped write is a symptom
        raise


#: Shards verified in this process: (path, device, inode, size, mtime, ctime, fingerprint, first, count) -> sums.
#: A file replaced or rewritten since has another identity and is verified again.
_VERIFIED: dict[tuple, dict] = {}


def _summary(cfg: dict) -> str:
    try:
        return f"{cfg['equation']}, res {cfg['res']}, num {cfg['num']}, seed {cfg['seed']}"
    except (KeyError, TypeError):
        return "unknown"


def verify_shard(path: str | Path, config: DatasetConfig, first: int, count: int) -> dict:
    """Check that ``path`` is the complete, undamaged shard of ``config`` holding trajectories ``first ..
    first + count - 1``; returns its stored float64 sums (``sum``, ``sum_sq``, ``n_values``).

    Checks the fingerprint of the configuration (a shard of another dataset), the trajectory indices (a swapped
    or renamed shard), the completion flags, the field's shape and dtype, and the SHA-256 of the field data, read
    one trajectory at a time. A file is verified once per process: the result is cached under its path and
    identity (device, inode, size, modification and change times), so a replaced or rewritten file is checked
    again.

    Raises:
        ShardError: naming the file and what is wrong.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ShardError(f"{path}: missing") from None
    except OSError as exc:
        raise ShardError(f"{path}: unreadable ({exc.strerror})") from None
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
           config.fingerprint, first, count)  # fmt: skip
    if key not in _VERIFIED:
        _VERIFIED[key] = _verify(path, config, first, count)
    return dict(_VERIFIED[key])


def _same_configuration(stored_json: object, config: DatasetConfig) -> bool:
    """Whether a shard's stored configuration is ``config`` once normalised: shards written before numbers were
    normalised to their parameter's type (``t_burn=200`` stored as an int) carry another fingerprint for the same
    dataset."""
    try:
        return DatasetConfig.from_dict(json.loads(stored_json)).fingerprint == config.fingerprint
    except (TypeError, ValueError):
        return False


def _verify(path: Path, config: DatasetConfig, first: int, count: int) -> dict:
    h5py = import_h5py()
    name = FIELD_NAMES[config.equation]
    expected = (count, *trajectory_shape(config))
    try:
        with h5py.File(path, "r") as f:
            fi = f["fastinterp"]
            fingerprint = fi.attrs["fingerprint"]
            if fingerprint != config.fingerprint and not _same_configuration(fi.attrs.get("config"), config):
                try:
                    theirs = _summary(json.loads(fi.attrs["config"]))
                except (KeyError, ValueError):
                    theirs = "unknown"
                raise ShardError(f"{path}: a shard of another dataset (fingerprint {fingerprint}: {theirs}), "
                                 f"expected {config.fingerprint} ({_summary(config.to_dict())})")  # fmt: skip
            traj = fi["trajectory"][...]
            if not np.array_equal(traj, np.arange(first, first + count)):
                span = f"{traj[0]}..{traj[-1]}" if traj.ndim == 1 and traj.size else repr(traj.tolist())
                raise ShardError(f"{path}: holds trajectories {span}, expected {first}..{first + count - 1} "
                                 "(a shard renamed, swapped or copied from another place)")  # fmt: skip
            completed = fi["completed"][...]
            if completed.shape != (count,):
                raise ShardError(f"{path}: fastinterp/completed is shaped {completed.shape}, expected ({count},)")
            if not completed.all():
                raise ShardError(f"{path}: trajectories not marked complete: {traj[~completed].tolist()}")
            dset = f["t0_fields"][name]
            if dset.shape != expected or dset.dtype != np.float32:
                raise ShardError(f"{path}: t0_fields/{name} is {dset.dtype} {dset.shape}, expected float32 {expected}")
            digest = hashlib.sha256()
            for i in range(count):
                digest.update(np.ascontiguousarray(dset[i], dtype=np.float32).data)
            stored = fi.attrs[f"sha256/{name}"]
            stats = {k: fi.attrs[k].item() for k in ("sum", "sum_sq", "n_values")}
    except ShardError:
        raise
    except Exception as exc:  # truncated or garbled HDF5, missing groups or attributes
        raise ShardError(f"{path}: unreadable or incomplete ({type(exc).__name__}: {exc})") from None
    if digest.hexdigest() != stored:
        raise ShardError(f"{path}: checksum mismatch in t0_fields/{name}: the file is damaged")
    return stats


def read_shard(path: str | Path, config: DatasetConfig, shard: int | None = None) -> np.ndarray:
    """All of a verified shard's field data, ``(trajectory, time, *grid)`` float32 (the whole shard in memory).

    Args:
        path: the shard file.
        config: its dataset's configuration.
        shard: which shard of ``config`` it is (default: the ``k`` of its name ``shard_<k>.h5``).

    Raises:
        ShardError: :func:`verify_shard` found the file missing, damaged, foreign or misplaced.
    """
    path = Path(path)
    k = shard_index(path) if shard is None else shard
    shards = config.shards
    if not 0 <= k < len(shards):
        raise ShardError(f"{path}: shard {k} does not exist in a dataset of {len(shards)} shards")
    _, first, count = shards[k]
    verify_shard(path, config, first, count)
    h5py = import_h5py()
    try:
        with h5py.File(path, "r") as f:
            return f["t0_fields"][FIELD_NAMES[config.equation]][...]
    except OSError as exc:
        raise ShardError(f"{path}: unreadable ({exc})") from None


def shard_moments(path: Path, field: str) -> dict[str, float | int]:
    """The sums :func:`.well.combine_moments` needs, from a shard's ``fastinterp/`` attributes (computed from its data,
    with the same float64 sums, for a shard written before they were stored)."""
    try:
        with import_h5py().File(path, "r") as f:
            attrs = f["fastinterp"].attrs
            if all(k in attrs for k in VALUE_KEYS + DELTA_KEYS):
                return {k: attrs[k].item() for k in VALUE_KEYS + DELTA_KEYS}
            data = f["t0_fields"][field][...]
    except (OSError, KeyError) as exc:
        raise ShardError(f"{path}: unreadable or incomplete ({type(exc).__name__}: {exc})") from None
    return {**value_moments(data), **delta_moments(data)}
