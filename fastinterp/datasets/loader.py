"""A ``torch.utils.data.Dataset`` of snapshots over a dataset directory's shards, verified before it serves them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from . import format as _format
from .format import FIELD_NAMES, ShardError, import_h5py, shard_name, trajectory_shape, verify_shard
from .generate import load_manifest

__all__ = ["PDEDataset"]


class PDEDataset(torch.utils.data.Dataset):
    """Random access to every snapshot ``(trajectory, time)`` of a complete dataset, as float32 tensors.

    Every shard is verified when the dataset is built (:func:`~fastinterp.datasets.verify_shard`: checksum,
    configuration fingerprint, trajectory range, shape; once per file and process), so a damaged, foreign or
    swapped shard raises :class:`~fastinterp.datasets.ShardError` naming the file before anything is served. A
    process that opens a shard later (a ``DataLoader`` worker, forked or spawned: the verification travels with
    the dataset) checks that the file is still the one verified (same inode, size and times) and verifies it
    again if not.

    Files are opened lazily in each process (so ``DataLoader(num_workers > 0)`` works: each worker opens its own
    handles) and read one chunk (one snapshot) at a time.

    Args:
        root: dataset directory.
        normalize: return ``(u - mean) / std`` with the dataset's stored statistics.

    Raises:
        ValueError: ``root`` is not a complete dataset; :class:`~fastinterp.datasets.ShardError` (a ValueError)
            for a shard that does not verify.

    Example:
        >>> ds = PDEDataset("ns128", normalize=True)
        >>> loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=2)
    """

    def __init__(self, root: str | Path, *, normalize: bool = False) -> None:
        self.root = Path(root)
        self.config, manifest = load_manifest(self.root)
        if not manifest.get("complete") or "stats" not in manifest:
            raise ValueError(f"{self.root}: the dataset is incomplete; finish it with `fastinterp pde generate ... "
                             f"--resume`")  # fmt: skip
        self.stats = manifest["stats"]
        if normalize and not self.stats["std"] > 0:
            raise ValueError(f"{self.root}: normalize=True needs a std > 0, the dataset's is {self.stats['std']}")
        self.normalize = normalize
        self.field = FIELD_NAMES[self.config.equation]
        self._shards = self.config.shards
        for k, first, count in self._shards:
            verify_shard(self.root / shard_name(k), self.config, first, count)
        shape = trajectory_shape(self.config)
        self.snapshots, self.grid = shape[0], tuple(shape[1:])
        self._files: dict[int, object] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self.config.num * self.snapshots

    def _file(self, k: int):
        if self._pid != os.getpid():  # forked into a worker: never share HDF5 handles across processes
            self._files, self._pid = {}, os.getpid()
        if k not in self._files:
            _, first, count = self._shards[k]
            path = self.root / shard_name(k)
            verify_shard(path, self.config, first, count)  # cached: a stat unless the file changed (or a new process)
            try:
                self._files[k] = import_h5py().File(path, "r")
            except OSError as exc:
                raise ShardError(f"{path}: unreadable ({exc})") from None
        return self._files[k]

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} snapshots")
        index %= len(self)
        traj, snap = divmod(index, self.snapshots)
        k = traj // self.config.shard_size
        u = self._file(k)["t0_fields"][self.field][traj - k * self.config.shard_size, snap]
        x = torch.from_numpy(np.asarray(u, dtype=np.float32))
        return self.to_normalized(x) if self.normalize else x

    def to_normalized(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.stats["mean"]) / self.stats["std"]

    def from_normalized(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.stats["std"] + self.stats["mean"]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"] = {}
        paths = {str((self.root / shard_name(k)).resolve()) for k, _, _ in self._shards}
        state["_verified"] = {key: v for key, v in _format._VERIFIED.items() if key[0] in paths}
        return state

    def __setstate__(self, state):
        _format._VERIFIED.update(state.pop("_verified", {}))  # keyed by file identity: a changed file is checked
        self.__dict__.update(state)
