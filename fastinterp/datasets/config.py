"""Dataset configurations: what to generate, split into fixed shards, with a fingerprint that names it."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DEFAULTS", "EQUATIONS", "DatasetConfig"]

#: Generation parameters per equation, with their provenance (docs/datasets.md has the full table).
DEFAULTS: dict[str, dict[str, Any]] = {
    # REFERENCE section 6: nu 1e-3, damping +0.1, eps 1, 8 Brownian modes; if_heun at dt 5e-3 (the paper's
    # em_imex needs dt 1e-4); burn-in 50 time units; a snapshot every 0.5.
    "navier-stokes": {
        "nu": 1e-3,
        "alpha": 0.1,
        "eps": 1.0,
        "modes": 8,
        "dt": 5e-3,
        "scheme": "if_heun",
        "t_burn": 50.0,
        "t_snap": 0.5,
        "snapshots": 10,
    },  # fmt: skip
    # The Lipschitz paper's fields: s = 3, tau = 1, S = 1 at |k| = 2 pi, orthonormal-DFT convention.
    "grf": {"dim": 2, "s": 3.0, "tau": 1.0, "normalization": "ortho"},
    # The paper's 1-D Allen-Cahn Gibbs measure (N + 1 nodes, free ends), sampled exactly by pCN: a "trajectory" is a
    # chain and its "time" axis the recorded samples (every `thin` steps after `burn_in`; docs/allen_cahn.md).
    "allen-cahn": {"samples": 1000, "burn_in": 2000, "thin": 2, "boundary": "free", "potential": "double_well"},
}
EQUATIONS = tuple(DEFAULTS)


@dataclass(frozen=True)
class DatasetConfig:
    """A dataset: ``num`` trajectories of ``equation`` at resolution ``res``, in shards of ``shard_size``.

    Trajectory ``i`` is a deterministic function of ``(seed, i)`` (counter-based noise in the engine), so the
    dataset does not depend on how the work is split across threads, ranks or interrupted runs.
    """

    equation: str
    num: int
    res: int
    seed: int = 0
    shard_size: int = 50
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.equation not in DEFAULTS:
            raise ValueError(f"equation must be one of {EQUATIONS}, got {self.equation!r}")
        for name in ("num", "res", "shard_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        unknown = set(self.params) - set(DEFAULTS[self.equation])
        if unknown:
            raise ValueError(f"unknown {self.equation} parameters {sorted(unknown)}; known: "
                             f"{sorted(DEFAULTS[self.equation])}")  # fmt: skip
        merged = {**DEFAULTS[self.equation], **self.params}
        for k, v in merged.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"parameter {k} must be finite, got {v}")
        object.__setattr__(self, "params", merged)

    @property
    def shards(self) -> list[tuple[int, int, int]]:
        """``(shard, first trajectory, count)`` for every shard."""
        return [(k, f, min(self.shard_size, self.num - f)) for k, f in enumerate(range(0, self.num, self.shard_size))]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DatasetConfig:
        return DatasetConfig(**d)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of the configuration (first 16 hex digits)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
