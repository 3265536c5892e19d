"""PDE datasets on disk: resumable sharded generation in The Well's HDF5 layout, and a loader.

See ``fastinterp pde generate --help`` and docs/datasets.md.
"""

from .config import DEFAULTS, EQUATIONS, DatasetConfig
from .format import FIELD_NAMES, ShardError, read_shard, verify_shard
from .generate import dataset_status, generate, load_manifest
from .loader import PDEDataset

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
