"""Progress of a long sync: every 30 s, one log line per stream that moved. Silent otherwise."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from airbyte_cdk.models import AirbyteLogMessage, AirbyteMessage, Level, Type
from airbyte_cdk.sources.message import MessageRepository

PROGRESS_INTERVAL_SECONDS = 30.0  # often enough to show a sync is alive, rare enough not to flood the log


@dataclass
class _Counts:
    records: int = 0
    pages: int = 0
    pages_at_last_report: int = 0


class SyncProgress:
    """Counts pages and records per stream; the worker that crosses the interval writes the report.

    No thread of its own: the report goes through the message repository, which the main thread drains
    between records, so it is printed in order with everything else.
    """

    def __init__(
        self,
        message_repository: MessageRepository,
        requests_made: Callable[[], int],
        interval: float = PROGRESS_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repository = message_repository
        self._requests_made = requests_made
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Dict[str, _Counts] = {}
        self._last_report = clock()
        self._requests_at_last_report = 0

    def page_read(self, stream: str, records: int) -> None:
        with self._lock:
            counts = self._counts.setdefault(stream, _Counts())
            counts.records += records
            counts.pages += 1
            now = self._clock()
            if now - self._last_report < self._interval:
                return
            report = self._report(now)
        self._repository.emit_message(
            AirbyteMessage(type=Type.LOG, log=AirbyteLogMessage(level=Level.INFO, message=report))
        )

    def _report(self, now: float) -> Optional[str]:
        elapsed = now - self._last_report
        requests = self._requests_made()
        lines = [
            f"Progress: {(requests - self._requests_at_last_report) / elapsed:.1f} requests/s over the last {elapsed:.0f} s."
        ]
        for stream, counts in sorted(self._counts.items()):
            if counts.pages == counts.pages_at_last_report:
                continue
            lines.append(
                f"  {stream}: {counts.records} records, {counts.pages} pages so far, "
                f"{(counts.pages - counts.pages_at_last_report) / elapsed:.1f} pages/s"
            )
            counts.pages_at_last_report = counts.pages
        self._last_report = now
        self._requests_at_last_report = requests
        return "\n".join(lines)
