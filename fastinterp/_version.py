"""The package version (one home: imported by ``fastinterp`` and by whatever records it in files)."""

__version__ = "0.1.0"
