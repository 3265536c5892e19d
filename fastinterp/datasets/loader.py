"""A ``torch.utils.data.Dataset`` of snapshots over a dataset directory's shards."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .format import FIELD_NAMES, import_h5py, shard_name
from .generate import load_manifest

__all__ = ["PDEDataset"]


class PDEDataset(torch.utils.data.Dataset):
    """Random access to every snapshot ``(trajectory, time)`` of a complete dataset, as float32 tensors.

    Files are opened lazily in each process (so ``DataLoader(num_workers > 0)`` works: each worker opens its own
    handles) and read one chunk (one snapshot) at a time.

    Args:
        root: dataset directory.
        normalize: return ``(u - mean) / std`` with the dataset's stored statistics.

    Example:
        >>> ds = PDEDataset("ns128", normalize=True)
        >>> loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=2)
    """

    def __init__(self, root: str | Path, *, normalize: bool = False) -> None:
        self.root = Path(root)
        self.config, manifest = load_manifest(self.root)
        if not manifest.get("complete"):
            raise ValueError(f"{self.root}: the dataset is incomplete; finish it with `fastinterp pde generate ... "
                             f"--resume`")  # fmt: skip
        self.stats = manifest["stats"]
        self.normalize = normalize
        self.field = FIELD_NAMES[self.config.equation]
        self._shards = self.config.shards
        h5py = import_h5py()
        with h5py.File(self.root / shard_name(0), "r") as f:
            self.snapshots = f["t0_fields"][self.field].shape[1]
            self.grid = tuple(f["t0_fields"][self.field].shape[2:])
        self._files: dict[int, object] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self.config.num * self.snapshots

    def _file(self, k: int):
        if self._pid != os.getpid():  # forked into a worker: never share HDF5 handles across processes
            self._files, self._pid = {}, os.getpid()
        if k not in self._files:
            self._files[k] = import_h5py().File(self.root / shard_name(k), "r")
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
        return state
