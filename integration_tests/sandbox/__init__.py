"""Local fake of the Northpass LMS v2 API for integration tests and demos."""

from .data import Dataset, generate_dataset
from .server import FaultConfig, SandboxOptions, SandboxServer

__all__ = [
    "Dataset",
    "FaultConfig",
    "SandboxOptions",
    "SandboxServer",
    "generate_dataset",
]
