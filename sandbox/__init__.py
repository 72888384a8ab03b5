"""Local fake of the Northpass LMS v2 API for integration tests and demos.

Usage::

    from sandbox import SandboxServer, SandboxOptions, FaultConfig

    with SandboxServer(SandboxOptions(seed=42, requests_per_second=10)) as sb:
        sb.base_url                    # its root, plain HTTP on 127.0.0.1:PORT (no /v2)
        sb.expected_records("people")  # what the connector should emit
        sb.mutate()                    # change data between two syncs
        sb.add_activity()              # new events and quiz attempts (learning activity logs)
        sb.change_transcripts(evidence=3, silent=2)  # transcript changes with and without evidence
        sb.clock()                     # the sandbox's now, sent as every response's Date header
        sb.set_faults(FaultConfig.soak())
        sb.stats()

Admin endpoints (no auth, not rate limited, not counted): ``GET
/_sandbox/stats``, ``POST /_sandbox/reset-stats``, ``GET /_sandbox/dataset``,
``GET /_sandbox/expected[?stream=NAME]`` (every stream of ALL_STREAMS; NAME may also be one of
TRANSCRIPT_STREAMS), ``POST /_sandbox/mutate``, ``POST /_sandbox/activity``, ``POST /_sandbox/transcripts``
(body: the arguments of ``change_transcripts``), ``GET /_sandbox/clock``, ``POST /_sandbox/clock``
(``{"at": ISO 8601}`` or ``{"advance_seconds": n}``), ``GET|POST /_sandbox/faults``.

CLI: ``python -m sandbox serve|dump --help`` (run from the
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
