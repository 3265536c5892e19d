"""The Well compatibility: what The Well's reader needs in a shard, ``stats.yaml``, and its ``data/<split>/`` layout.

The Well (PyPI ``the-well``) reads a folder of ``*.h5`` / ``*.hdf5`` files with ``the_well.data.WellDataset``.
Every shard of ``fastinterp pde generate`` is such a file; :func:`write_metadata` writes the part The Well's reader
touches (format.py writes the field data and the ``fastinterp/`` integrity group):

    t0_fields/<name>.attrs  dim_varying (true per axis), sample_varying, time_varying (true)
    t1_fields, t2_fields    empty (field_names = [])
    dimensions/             spatial_dims; x [, y] (cell centres of the periodic box, Allen-Cahn: the N + 1 nodes of
                            [0, 1]) and time, each with sample_varying (false) and time_varying (time only)
    boundary_conditions/    <axis>_<condition> per axis: bc_type in The Well's vocabulary (PERIODIC, or WALL for
                            Allen-Cahn's free = Neumann and pinned = Dirichlet ends, whose name is kept in the
                            ``condition`` attribute and the group's name), associated_dims, associated_fields, and
                            a boolean ``mask`` over the axis, true at its two boundary points
    scalars/                the numeric equation parameters as constant float64 scalars (string parameters, such
                            as the scheme, stay root attributes only: The Well stacks scalars into one tensor)

Statistics: each shard stores float64 sums of its values and of its time differences ``u[:, t + 1] - u[:, t]``
(:func:`delta_moments`); :func:`combine_moments` turns the sums of several shards into the mean, std and rms of
both, and :func:`write_stats_yaml` writes them as The Well's ``stats.yaml`` (keys ``mean``, ``std``, ``rms``,
``mean_delta``, ``std_delta``, ``rms_delta``, one entry per field), which ``WellDataset(...,
use_normalization=True, normalization_type=ZScoreNormalization)`` (or ``RMSNormalization``) reads.
The ``data/<split>/`` layout is written by :mod:`.export`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .config import DatasetConfig

__all__ = [
    "combine_moments",
    "delta_moments",
    "value_moments",
    "write_metadata",
    "write_stats_yaml",
]

_BOX = {"navier-stokes": 2 * np.pi, "grf": 1.0, "allen-cahn": 1.0}
# Allen-Cahn lives on the N + 1 nodes of [0, 1] with free (natural, Neumann) or pinned (Dirichlet) ends; the other
# equations on periodic cells. The Well knows PERIODIC, WALL and OPEN: both Allen-Cahn ends are walls to it.
_AC_CONDITION = {"free": "NEUMANN", "pinned": "DIRICHLET"}
_WELL_BC_TYPE = {"PERIODIC": "PERIODIC", "NEUMANN": "WALL", "DIRICHLET": "WALL"}
VALUE_KEYS = ("sum", "sum_sq", "n_values")
DELTA_KEYS = ("sum_delta", "sum_sq_delta", "n_deltas")


def write_metadata(f: Any, config: DatasetConfig, shape: tuple[int, ...]) -> None:
    """Write the groups and attributes The Well's reader needs into an open shard file ``f`` (h5py ``File``).

    Call it once the ``t0_fields`` group lists its fields (their datasets may still be empty).

    Args:
        f: the shard, open for writing.
        config: the dataset's configuration.
        shape: the field data's shape ``(trajectory, time, *grid)``.
    """
    _, snapshots, *grid = shape
    axes = ["x", "y"][: len(grid)]
    for name in f["t0_fields"].attrs["field_names"]:
        attrs = f["t0_fields"][name].attrs
        attrs["dim_varying"] = [True] * len(grid)
        attrs["sample_varying"] = True
        attrs["time_varying"] = True
    f.create_group("t1_fields").attrs["field_names"] = []
    f.create_group("t2_fields").attrs["field_names"] = []

    p = config.params
    ac = config.equation == "allen-cahn"
    dims = f.create_group("dimensions")
    dims.attrs["spatial_dims"] = axes
    for ax, n in zip(axes, grid, strict=True):
        coords = np.linspace(0.0, 1.0, n) if ac else (np.arange(n) + 0.5) * _BOX[config.equation] / n
        d = dims.create_dataset(ax, data=coords, track_times=False)
        d.attrs["sample_varying"] = False
        d.attrs["time_varying"] = False
    if config.equation == "navier-stokes":
        times = p["t_burn"] + p["t_snap"] * np.arange(snapshots)
    elif ac:  # MCMC step of each recorded sample
        times = p["burn_in"] + p["thin"] * (np.arange(snapshots) + 1.0)
    else:  # independent fields: one snapshot, no time
        times = np.zeros(snapshots)
    d = dims.create_dataset("time", data=times, track_times=False)
    d.attrs["sample_varying"] = False
    d.attrs["time_varying"] = True

    bcs = f.create_group("boundary_conditions")
    condition = _AC_CONDITION[p["boundary"]] if ac else "PERIODIC"
    for ax, n in zip(axes, grid, strict=True):
        g = bcs.create_group(f"{ax}_{condition.lower()}")
        g.attrs["bc_type"] = _WELL_BC_TYPE[condition]
        g.attrs["condition"] = condition
        g.attrs["associated_dims"] = [ax]
        g.attrs["associated_fields"] = []
        g.attrs["sample_varying"] = False
        g.attrs["time_varying"] = False
        mask = np.zeros(n, dtype=bool)
        mask[[0, -1]] = True
        g.create_dataset("mask", data=mask, track_times=False)

    numeric = sorted(k for k, v in p.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    scalars = f.create_group("scalars")
    scalars.attrs["field_names"] = numeric
    for k in numeric:
        s = scalars.create_dataset(k, data=np.float64(p[k]), track_times=False)
        s.attrs["sample_varying"] = False
        s.attrs["time_varying"] = False


def value_moments(data: np.ndarray) -> dict[str, float | int]:
    d = np.asarray(data, dtype=np.float64)
    return {"sum": float(d.sum()), "sum_sq": float((d * d).sum()), "n_values": int(d.size)}


def delta_moments(data: np.ndarray) -> dict[str, float | int]:
    """Float64 sums of the time differences ``u[:, t + 1] - u[:, t]`` of ``data`` shaped ``(trajectory, time,
    *grid)``: ``sum_delta``, ``sum_sq_delta``, ``n_deltas`` (the difference of two float32 values is exact in
    float64). Sums of blocks of whole trajectories add up to the sums of their union."""
    d = np.asarray(data, dtype=np.float64)
    diff = d[:, 1:] - d[:, :-1]
    return {"sum_delta": float(diff.sum()), "sum_sq_delta": float((diff * diff).sum()), "n_deltas": int(diff.size)}


def combine_moments(parts: list[dict[str, float | int]]) -> dict[str, float | int]:
    """Mean, std (population), rms and count of the values and of the time differences of several shards.

    A dataset of single snapshots (``grf``) has no time differences: its ``*_delta`` statistics are 0 over
    ``deltas = 0`` values (The Well's ZScoreNormalization requires the keys; its delta normalisation needs two
    snapshots per trajectory, so it never applies to such data).
    """
    out: dict[str, float | int] = {}
    for suffix, (s_key, sq_key, n_key), count in (("", VALUE_KEYS, "values"), ("_delta", DELTA_KEYS, "deltas")):
        s = math.fsum(p[s_key] for p in parts)
        sq = math.fsum(p[sq_key] for p in parts)
        n = sum(int(p[n_key]) for p in parts)
        mean = s / n if n else 0.0
        out[f"mean{suffix}"] = mean
        out[f"std{suffix}"] = math.sqrt(max(sq / n - mean * mean, 0.0)) if n else 0.0
        out[f"rms{suffix}"] = math.sqrt(sq / n) if n else 0.0
        out[count] = n
    return out


def _yaml_float(v: float) -> str:
    # 17 significant digits round-trip a float64; the mantissa's "." and the signed exponent make YAML 1.1 readers
    # (PyYAML, which The Well uses) read a float, not a string ("1e-05" would be one).
    if not math.isfinite(v):
        raise ValueError(f"statistics must be finite, got {v}")
    return f"{v:.16e}"


def write_stats_yaml(path: Path, field: str, stats: dict[str, float | int], *, source: str) -> None:
    """Write ``stats`` (from :func:`combine_moments`) as The Well's ``stats.yaml`` for one field, atomically."""
    lines = [
        f"# The Well's normalisation statistics of {source}: population mean, std and rms of every value",
        "# (float64 sums over the shards) and of the time differences u[t + 1] - u[t]; n_* count them.",
    ]
    for key in ("mean", "std", "rms", "mean_delta", "std_delta", "rms_delta"):
        lines += [f"{key}:", f"  {field}: {_yaml_float(float(stats[key]))}"]
    for key, count in (("n_values", "values"), ("n_deltas", "deltas")):
        lines += [f"{key}:", f"  {field}: {int(stats[count])}"]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
