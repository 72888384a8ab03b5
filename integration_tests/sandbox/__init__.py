"""Local fake of the Northpass LMS v2 API for integration tests and demos.

Usage::

    from integration_tests.sandbox import SandboxServer, SandboxOptions, FaultConfig

    with SandboxServer(SandboxOptions(seed=42, requests_per_second=10)) as sb:
        sb.base_url                    # http://127.0.0.1:PORT (no /v2)
        sb.expected_records("people")  # what the connector should emit
        sb.mutate()                    # change data between two syncs
        sb.add_activity()              # new events and quiz attempts (learning activity logs)
        sb.set_faults(FaultConfig.soak())
        sb.stats()

Admin endpoints (no auth, not rate limited, not counted): ``GET
/_sandbox/stats``, ``POST /_sandbox/reset-stats``, ``GET /_sandbox/dataset``,
``GET /_sandbox/expected[?stream=NAME]``, ``POST /_sandbox/mutate``, ``POST /_sandbox/activity``,
``GET|POST /_sandbox/faults``.

CLI: ``python -m integration_tests.sandbox serve|dump --help`` (run from the
repository root).
"""

from .data import Dataset, generate_dataset
from .server import FaultConfig, SandboxOptions, SandboxServer

__all__ = [
    "Dataset",
    "FaultConfig",
    "SandboxOptions",
    "SandboxServer",
    "generate_dataset",
]
