"""Shard files in The Well's HDF5 layout, plus a ``fastinterp/`` group for provenance and integrity.

One shard file holds ``count`` trajectories:

    t0_fields/<name>        float32 (trajectory, time, H, W)   [1-D: (trajectory, time, N)]
    t1_fields/, t2_fields/  empty (The Well keeps vector and tensor fields there)
    dimensions/             attrs spatial_dims; datasets x [, y] (cell centres on the periodic box), time
    boundary_conditions/    one group per periodic axis: attrs bc_type="PERIODIC", associated_dims
    attrs                   dataset_name, n_spatial_dims, n_trajectories, grid_type, simulation_parameters and
                            one attribute per equation parameter (scheme included)
    fastinterp/             trajectory (indices), completed (bool), rms (per trajectory);
                            attrs generator_version, config (JSON), fingerprint, sha256 of every field

A shard is written whole to a temporary file and renamed into place, so a file that exists is complete; the
per-field SHA-256 catches later damage (bit flips), and h5py's own checks catch truncation.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .config import DatasetConfig

__all__ = ["FIELD_NAMES", "ShardError", "import_h5py", "read_shard", "shard_name", "verify_shard", "write_shard"]

FIELD_NAMES = {"navier-stokes": "vorticity", "grf": "u", "allen-cahn": "u"}
_BOX = {"navier-stokes": 2 * np.pi, "grf": 1.0, "allen-cahn": 1.0}
# Allen-Cahn lives on the N + 1 nodes of [0, 1] with free (natural, Neumann) or pinned (Dirichlet) ends; the other
# equations on periodic cells.
_AC_BC = {"free": "NEUMANN", "pinned": "DIRICHLET"}


class ShardError(ValueError):
    """A shard file is missing, unreadable, damaged, or from another configuration."""


def import_h5py():
    """The ``h5py`` module, or an ImportError that says how to install it (shared with :mod:`.loader`)."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("fastinterp datasets need h5py: pip install 'fastinterp[data]'") from None
    return h5py


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.h5"


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def write_shard(path: Path, config: DatasetConfig, first: int, fields: dict[str, np.ndarray], version: str) -> None:
    """Write a complete shard atomically (temporary file, fsync, rename)."""
    h5py = import_h5py()
    name = FIELD_NAMES[config.equation]
    data = np.ascontiguousarray(fields[name], dtype=np.float32)
    count, T = data.shape[:2]
    grid = data.shape[2:]
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w", track_order=True) as f:
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
        t0.create_dataset(name, data=data, chunks=(1, 1, *grid), track_times=False)
        f.create_group("t1_fields").attrs["field_names"] = []
        f.create_group("t2_fields").attrs["field_names"] = []
        dims = f.create_group("dimensions")
        axes = ["x", "y"][: len(grid)]
        dims.attrs["spatial_dims"] = axes
        p = config.params
        ac = config.equation == "allen-cahn"
        for ax, n in zip(axes, grid, strict=True):
            coords = np.linspace(0.0, 1.0, n) if ac else (np.arange(n) + 0.5) * _BOX[config.equation] / n
            dims.create_dataset(ax, data=coords, track_times=False)
        if config.equation == "navier-stokes":
            times = p["t_burn"] + p["t_snap"] * np.arange(T)
        elif ac:  # MCMC step of each recorded sample
            times = p["burn_in"] + p["thin"] * (np.arange(T) + 1.0)
        else:
            times = np.zeros(T)
        dims.create_dataset("time", data=times, track_times=False)
        bcs = f.create_group("boundary_conditions")
        bc_type = _AC_BC[p["boundary"]] if ac else "PERIODIC"
        for ax in axes:
            g = bcs.create_group(f"{ax}_{bc_type.lower()}")
            g.attrs["bc_type"] = bc_type
            g.attrs["associated_dims"] = [ax]
        fi = f.create_group("fastinterp")
        fi.attrs["generator_version"] = version
        fi.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
        fi.attrs["fingerprint"] = config.fingerprint
        fi.attrs["seed"] = config.seed
        fi.attrs[f"sha256/{name}"] = _digest(data)
        fi.create_dataset("trajectory", data=np.arange(first, first + count, dtype=np.int64), track_times=False)
        fi.create_dataset("completed", data=np.ones(count, dtype=bool), track_times=False)
        rms = np.sqrt((data.astype(np.float64) ** 2).reshape(count, -1).mean(1))
        fi.create_dataset("rms", data=rms, track_times=False)
        fi.attrs["sum"] = float(data.astype(np.float64).sum())
        fi.attrs["sum_sq"] = float((data.astype(np.float64) ** 2).sum())
        fi.attrs["n_values"] = int(data.size)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)


def verify_shard(path: Path, config: DatasetConfig, first: int, count: int) -> dict:
    """Check that ``path`` is a complete, undamaged shard of ``config``; returns its statistics.

    Raises:
        ShardError: naming the file and what is wrong.
    """
    h5py = import_h5py()
    name = FIELD_NAMES[config.equation]
    if not path.exists():
        raise ShardError(f"{path}: missing")
    try:
        with h5py.File(path, "r") as f:
            fi = f["fastinterp"]
            if fi.attrs["fingerprint"] != config.fingerprint:
                raise ShardError(f"{path}: written for configuration {fi.attrs['fingerprint']}, "
                                 f"expected {config.fingerprint}")  # fmt: skip
            data = f["t0_fields"][name][...]
            traj = fi["trajectory"][...]
            completed = fi["completed"][...]
            digest = fi.attrs[f"sha256/{name}"]
            stats = {k: fi.attrs[k] for k in ("sum", "sum_sq", "n_values")}
    except ShardError:
        raise
    except Exception as exc:  # truncated or garbled HDF5, missing groups
        raise ShardError(f"{path}: unreadable or incomplete ({type(exc).__name__}: {exc})") from None
    if data.shape[0] != count or not np.array_equal(traj, np.arange(first, first + count)):
        raise ShardError(f"{path}: holds trajectories {traj[:1]}..{traj[-1:]}, expected {first}..{first + count - 1}")
    if not completed.all():
        raise ShardError(f"{path}: trajectories not marked complete: {traj[~completed].tolist()}")
    if _digest(data) != digest:
        raise ShardError(f"{path}: checksum mismatch in t0_fields/{name}: the file is damaged")
    return stats


def read_shard(path: Path, config: DatasetConfig) -> np.ndarray:
    """All of a shard's field data, ``(trajectory, time, *grid)`` float32."""
    h5py = import_h5py()
    with h5py.File(path, "r") as f:
        return f["t0_fields"][FIELD_NAMES[config.equation]][...]
