"""Progress of a long sync: every 30 s, one log line per stream that moved. Silent otherwise.

A child stream that knows how many parents it reads in this attempt says how many are done and how long the rest
should take, and gets an ESTIMATE trace (rows and bytes extrapolated from the parents done) with each report.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from airbyte_cdk.models import (
    AirbyteEstimateTraceMessage,
    AirbyteLogMessage,
    AirbyteMessage,
    AirbyteTraceMessage,
    EstimateType,
    Level,
    TraceType,
    Type,
)
from airbyte_cdk.sources.message import MessageRepository

PROGRESS_INTERVAL_SECONDS = 30.0  # often enough to show a sync is alive, rare enough not to flood the log


@dataclass
class _Counts:
    records: int = 0
    pages: int = 0
    bytes: int = 0  # of the response bodies
    pages_at_last_report: int = 0
    parent: Optional[str] = None  # a child stream's parent list, e.g. "people"
    parents_total: Optional[int] = None  # the slices of this attempt, once the child has made them
    parents_done: int = 0
    parents_at_last_report: int = 0
    first_parent_done_at: Optional[float] = None

    @property
    def parents_known(self) -> bool:
        return self.parents_total is not None and self.parents_done <= self.parents_total

    def moved(self) -> bool:
        return self.pages != self.pages_at_last_report or self.parents_done != self.parents_at_last_report


class SyncProgress:
    """Counts pages, records, bytes and parents per stream; the worker that crosses the interval writes the report.

    No thread of its own: the report and the estimates go through the message repository, which the main thread
    drains between records, so they are printed in order with everything else.
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

    def page_read(self, stream: str, records: int, size: int = 0) -> None:
        """One page of `stream` was read: `records` records in a body of `size` bytes."""
        with self._lock:
            counts = self._counts.setdefault(stream, _Counts())
            counts.records += records
            counts.pages += 1
            counts.bytes += size
            self._report_if_due()

    def parents_to_read(self, stream: str, parent: str, total: int) -> None:
        """The child `stream` reads the collections of `total` parents from the list `parent` in this attempt."""
        with self._lock:
            counts = self._counts.setdefault(stream, _Counts())
            counts.parent, counts.parents_total = parent, total
            counts.parents_done, counts.parents_at_last_report, counts.first_parent_done_at = 0, 0, None

    def parent_read(self, stream: str) -> None:
        """The child `stream` has read one parent's collection to its end."""
        with self._lock:
            counts = self._counts.setdefault(stream, _Counts())
            counts.parents_done += 1
            if counts.first_parent_done_at is None:
                counts.first_parent_done_at = self._clock()
            self._report_if_due()

    def _report_if_due(self) -> None:
        """The report and its estimates once the interval has passed. Called under the lock, which keeps reports
        in order: a later one never reaches the repository before an earlier one."""
        now = self._clock()
        elapsed = now - self._last_report
        if elapsed < self._interval:
            return
        requests = self._requests_made()
        lines = [
            f"Progress: {_rate(requests - self._requests_at_last_report, elapsed)} requests/s over the last {elapsed:.0f} s."
        ]
        estimates: List[AirbyteMessage] = []
        for stream, counts in sorted(self._counts.items()):
            if not counts.moved():
                continue
            if counts.parents_known:
                lines.append(f"  {stream}: {_parents_line(counts, now)}")
                if counts.parents_done:
                    estimates.append(_estimate(stream, counts))
            else:
                lines.append(
                    f"  {stream}: {counts.records} records, {counts.pages} pages so far, "
                    f"{_rate(counts.pages - counts.pages_at_last_report, elapsed)} pages/s"
                )
            counts.pages_at_last_report, counts.parents_at_last_report = counts.pages, counts.parents_done
        self._last_report = now
        self._requests_at_last_report = requests
        report = AirbyteMessage(type=Type.LOG, log=AirbyteLogMessage(level=Level.INFO, message="\n".join(lines)))
        for message in (report, *estimates):
            self._repository.emit_message(message)


def _parents_line(counts: _Counts, now: float) -> str:
    """`12,000 of 30,000 people read, 41,233 records, about 50 min left at 6.6 people/s`."""
    assert counts.parents_total is not None
    noun = str(counts.parent).replace("_", " ")
    line = f"{counts.parents_done:,} of {counts.parents_total:,} {noun} read, {counts.records:,} records"
    remaining = counts.parents_total - counts.parents_done
    if not remaining or counts.parents_done < 2 or counts.first_parent_done_at is None:
        return line
    # The pace counts from the first parent done: before it, the child may have waited for the parent list.
    seconds = now - counts.first_parent_done_at
    if seconds > 0:
        pace = (counts.parents_done - 1) / seconds
        shown = f"{pace:.1f}" if pace >= 1 else f"{pace:.2g}"  # a slow child (many pages a parent) is not "0.0/s"
        line += f", {_time_left(remaining / pace)} left at {shown} {noun}/s"
    return line


def _estimate(stream: str, counts: _Counts) -> AirbyteMessage:
    """Rows and bytes of the whole read, from those of the parents done so far."""
    assert counts.parents_total is not None
    scale = counts.parents_total / counts.parents_done
    estimate = AirbyteEstimateTraceMessage(
        name=stream,
        type=EstimateType.STREAM,
        namespace=None,
        row_estimate=round(counts.records * scale),
        byte_estimate=round(counts.bytes * scale),
    )
    trace = AirbyteTraceMessage(type=TraceType.ESTIMATE, emitted_at=time.time() * 1000, estimate=estimate)
    return AirbyteMessage(type=Type.TRACE, trace=trace)


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.1f}" if seconds > 0 else "-"


def _time_left(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "less than a minute"
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60} min"
