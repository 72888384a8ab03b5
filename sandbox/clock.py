"""The sandbox's own clock: the "now" of the fake account, sent as every response's ``Date`` header.

The generated data lies in 2020-2024, so the machine's clock would put every record years in the past; a
client that takes its cutoff from the server's ``Date`` needs a clock that stands just after the data and
moves on in real time, and that tests can set or push forward.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import formatdate


class SandboxClock:
    """A UTC clock that starts at a given instant and advances in real time (monotonic) from there."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._base = start.astimezone(timezone.utc)
        self._anchor = time.monotonic()

    def now(self) -> datetime:
        with self._lock:
            return self._base + timedelta(seconds=time.monotonic() - self._anchor)

    def set(self, at: datetime) -> None:
        """Jump to ``at`` (earlier or later) and advance in real time from there."""
        with self._lock:
            self._base = at.astimezone(timezone.utc)
            self._anchor = time.monotonic()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._base += timedelta(seconds=seconds)

    def http_date(self) -> str:
        """``now`` as an RFC 7231 ``Date`` header value (whole seconds, GMT)."""
        return formatdate(self.now().timestamp(), usegmt=True)
