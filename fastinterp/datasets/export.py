"""The Well's ``data/<split>/`` layout of a complete dataset.

:func:`export_well` lays a complete dataset out as ``OUT/data/{train,valid,test}/shard_*.h5`` plus
``OUT/stats.yaml`` (of the training split, as The Well's own) and ``OUT/split.json``, splitting by whole shards
(hard links where the file system allows, verified copies otherwise).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from .format import FIELD_NAMES, shard_moments, shard_name, verify_shard
from .generate import load_manifest
from .well import combine_moments, write_stats_yaml

__all__ = ["DEFAULT_SPLIT", "SPLITS", "export_well", "parse_split", "split_shards"]

#: The Well's split folders, in the order shards are assigned to them.
SPLITS = ("train", "valid", "test")
DEFAULT_SPLIT = "train=0.8,valid=0.1,test=0.1"


def parse_split(text: str) -> dict[str, float]:
    """``"train=0.8,valid=0.1,test=0.1"`` as a dict (the fractions are checked by :func:`split_shards`)."""
    out: dict[str, float] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise ValueError(f"--split takes name=fraction[,name=fraction...], got {item!r} in {text!r}")
        if key in out:
            raise ValueError(f"--split names {key!r} twice in {text!r}")
        try:
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"--split fraction of {key!r} must be a number, got {value!r}") from None
    return out


def split_shards(n_shards: int, split: dict[str, float]) -> dict[str, list[int]]:
    """Assign shards ``0 .. n_shards - 1`` to splits in proportion to ``split`` (whole shards, contiguous, in the
    order train, valid, test; counts by largest remainder).

    Raises:
        ValueError: unknown split names, no ``train``, fractions outside ``(0, 1]`` or not summing to 1, or a
            split that gets no shard.
    """
    unknown = sorted(set(split) - set(SPLITS))
    if unknown:
        raise ValueError(f"--split names must be among {', '.join(SPLITS)}, got {', '.join(unknown)}")
    if "train" not in split:
        raise ValueError(f"--split needs a train fraction (stats.yaml is computed from it), got {_fmt(split)}")
    for name, v in split.items():
        if not (math.isfinite(v) and 0.0 < v <= 1.0):
            raise ValueError(f"--split fraction of {name} must be in (0, 1], got {v}")
    total = math.fsum(split.values())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"--split fractions must sum to 1, got {total:.12g} from {_fmt(split)}")
    names = [s for s in SPLITS if s in split]
    raw = {s: split[s] * n_shards for s in names}
    counts = {s: math.floor(raw[s]) for s in names}
    for s in sorted(names, key=lambda s: counts[s] - raw[s])[: n_shards - sum(counts.values())]:
        counts[s] += 1
    empty = [s for s in names if counts[s] == 0]
    if empty:
        raise ValueError(
            f"--split {_fmt(split)} over {n_shards} shards leaves {', '.join(empty)} without a shard "
            f"({'/'.join(str(counts[s]) for s in names)}; shards are whole files): give fractions that leave each "
            "split one shard at least, or generate the dataset with a smaller --shard-size"
        )
    out, k = {}, 0
    for s in names:
        out[s], k = list(range(k, k + counts[s])), k + counts[s]
    return out


def _fmt(split: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in split.items())


def export_well(root: str | Path, out: str | Path, split: dict[str, float], *, log=print) -> dict:
    """Lay the complete dataset ``root`` out in The Well's form: ``out/data/<split>/shard_*.h5``, ``out/stats.yaml``
    (statistics of the training split), ``out/split.json`` (source, configuration, shards of each split).

    Shards are whole files, so the split is by shard (:func:`split_shards`). Each shard is verified (checksum,
    trajectory range) before it is exported; it is hard-linked when ``out`` is on the same file system (the same
    bytes: the generator never writes a shard in place) and copied, then verified again, otherwise. The layout is
    built under a temporary name beside ``out`` and renamed into place, so ``out`` exists only when complete.

    Args:
        root: a complete dataset directory of ``fastinterp pde generate``.
        out: the new layout's directory; refused unless absent or empty.
        split: fractions per split, e.g. ``{"train": 0.8, "valid": 0.1, "test": 0.1}``.
        log: called with one line per split.

    Returns:
        ``{"splits": {name: {"shards": [...], "trajectories": n}}, "linked": n, "copied": n, "stats": {...}}``.

    Raises:
        ValueError: an incomplete or damaged dataset (ShardError naming the file), a bad ``split``, or an ``out``
            that holds something.
    """
    root, out = Path(root), Path(out)
    config, manifest = load_manifest(root)
    if not manifest.get("complete"):
        raise ValueError(f"{root}: the dataset is incomplete; finish it with `fastinterp pde generate ... --resume`")
    plan = split_shards(len(config.shards), split)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty directory; refusing to overwrite it")
    field = FIELD_NAMES[config.equation]
    shards = {k: (first, count) for k, first, count in config.shards}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    result: dict[str, Any] = {"splits": {}, "linked": 0, "copied": 0}
    try:
        for name, ks in plan.items():
            folder = tmp / "data" / name
            folder.mkdir(parents=True)
            for k in ks:
                src, dst = root / shard_name(k), folder / shard_name(k)
                verify_shard(src, config, *shards[k])
                try:
                    os.link(src, dst)
                    result["linked"] += 1
                except OSError:  # another file system, or links not supported: copy, and check the copy
                    shutil.copyfile(src, dst)
                    with open(dst, "rb") as fh:
                        os.fsync(fh.fileno())
                    verify_shard(dst, config, *shards[k])
                    result["copied"] += 1
            n = sum(shards[k][1] for k in ks)
            result["splits"][name] = {"shards": [shard_name(k) for k in ks], "trajectories": n}
            log(f"{out / 'data' / name}: {len(ks)} shard{'s' * (len(ks) != 1)}, {n} trajectories")
        stats = combine_moments([shard_moments(root / shard_name(k), field) for k in plan["train"]])
        write_stats_yaml(tmp / "stats.yaml", field, stats, source=f"the train split of {root}")
        result["stats"] = stats
        (tmp / "split.json").write_text(
            json.dumps(
                {
                    "format": "fastinterp-well-layout",
                    "version": 1,
                    "source": str(root.resolve()),
                    "config": config.to_dict(),
                    "fingerprint": config.fingerprint,
                    "split": split,
                    "splits": result["splits"],
                    "stats": "train",
                },
                indent=2,
                sort_keys=True,
            )
        )
        tmp.replace(out)  # an empty `out` directory is replaced too
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result
