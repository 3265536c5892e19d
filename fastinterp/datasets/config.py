"""Dataset configurations: what to generate, split into fixed shards, with a fingerprint that names it.

Every field and parameter is checked against the equation's spec (:mod:`fastinterp.pde.spec`, the one home of the
defaults, ranges and provenance), fully: a configuration the engine would refuse is refused here, before any file is
written. Numbers are normalised to the parameter's type (``200`` and ``200.0`` are one configuration, one
fingerprint).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..pde.spec import COMMON, EQUATIONS, SPECS

__all__ = ["DEFAULTS", "EQUATIONS", "DatasetConfig"]

#: Generation parameters per equation, derived from the specs (``fastinterp.pde.spec.SPECS[eq]`` has their ranges,
#: units, documentation and provenance; docs/datasets.md has the table).
DEFAULTS: dict[str, dict[str, Any]] = {name: spec.defaults() for name, spec in SPECS.items()}


@dataclass(frozen=True)
class DatasetConfig:
    """A dataset: ``num`` trajectories of ``equation`` at resolution ``res``, in shards of ``shard_size``.

    Trajectory ``i`` is a deterministic function of ``(seed, i)`` (counter-based noise in the engine), so the
    dataset does not depend on how the work is split across threads, ranks or interrupted runs. ``params`` are the
    equation's parameters (``fastinterp pde generate --help`` lists them); after construction it holds all of them,
    defaults filled in, each of its declared type.
    """

    equation: str
    num: int
    res: int
    seed: int = 0
    shard_size: int = 50
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.equation not in SPECS:
            raise ValueError(f"equation must be one of {', '.join(EQUATIONS)}, got {self.equation!r}")
        spec = SPECS[self.equation]
        for name, p in COMMON.items():
            object.__setattr__(self, name, p.check(getattr(self, name)))
        res = spec.res.check(self.res, where=f"{self.equation} ")
        object.__setattr__(self, "res", res)
        object.__setattr__(self, "params", spec.validate(self.params, res=res))

    @property
    def shards(self) -> list[tuple[int, int, int]]:
        """``(shard, first trajectory, count)`` for every shard."""
        return [(k, f, min(self.shard_size, self.num - f)) for k, f in enumerate(range(0, self.num, self.shard_size))]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DatasetConfig:
        return DatasetConfig(**d)

    def differences(self, other: DatasetConfig) -> list[tuple[str, Any, Any]]:
        """``(name, value here, value in other)`` for every field or parameter that differs (``params.dt`` etc.)."""
        a, b = self.to_dict(), other.to_dict()
        out = [(k, a[k], b[k]) for k in ("equation", "num", "res", "seed", "shard_size") if a[k] != b[k]]
        pa, pb = a["params"], b["params"]
        out += [(f"params.{k}", pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
        return out

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of the configuration (first 16 hex digits). Normalised values make equal
        configurations equal fingerprints; those of earlier versions' configurations are unchanged (tested)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
