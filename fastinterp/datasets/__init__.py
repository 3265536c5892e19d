"""PDE datasets on disk: resumable sharded generation in The Well's HDF5 layout, and a loader.

See ``fastinterp pde generate --help`` and docs/datasets.md.
"""

from .config import DEFAULTS, EQUATIONS, DatasetConfig
from .format import FIELD_NAMES, ShardError, read_shard, verify_shard
from .generate import dataset_status, generate, load_manifest

__all__ = [
    "DEFAULTS",
    "EQUATIONS",
    "FIELD_NAMES",
    "DatasetConfig",
    "PDEDataset",
    "ShardError",
    "dataset_status",
    "generate",
    "load_manifest",
    "read_shard",
    "verify_shard",
]


def __getattr__(name: str):
    # PDEDataset is a torch Dataset: importing torch only when it is asked for keeps `fastinterp pde generate`,
    # `info` and `export` free of torch's start-up time
    if name == "PDEDataset":
        from .loader import PDEDataset

        return PDEDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
